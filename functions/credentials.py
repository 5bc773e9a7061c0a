"""The API's credentials: the HTTP Basic user and password, and the webhook secret.

Two sources, chosen by the settings:

- ``CREDENTIALS_SECRET`` set (the deployment sets it to the ARN of a Secrets Manager secret):
  the secret's SecretString, JSON ``{"basic_auth_user": …, "basic_auth_pass": …,
  "webhook_secret": …}``, read at runtime with GetSecretValue. It is cached for
  ``CREDENTIALS_TTL_SECONDS`` (300 s), so a rotation (``aws secretsmanager put-secret-value``)
  applies within that time, without a redeploy. ``basic_auth_user`` and ``basic_auth_pass``
  must be non-empty strings; ``webhook_secret`` may be absent. Other keys are ignored.
- otherwise the settings' own ``BASIC_AUTH_USER``, ``BASIC_AUTH_PASS`` and ``WEBHOOK_SECRET``
  (``make dev``, tests); an empty value counts as unset.

Failures never fall back to "no credentials": a secret that cannot be read, or does not hold
the JSON above, raises `CredentialsUnavailable` (503), whose message names no secret value and
no ARN (it may reach an unauthenticated client); the log gets the details. Two exceptions keep a
backend that has read its secret once serving through a Secrets Manager outage or a bad edit of
the secret: the credentials last read stay in force for up to `STALE_SECONDS` past their TTL
while reads fail (with a warning in the log), and a failed read is not retried for
`RETRY_AFTER_FAILURE_SECONDS`, so an outage costs one slow request, not one per request.

boto3 is imported, and the client made, on first use (the api's cold start imports no boto3);
the client has short timeouts (S3_CONNECT_TIMEOUT / S3_READ_TIMEOUT, 1 s / 2 s) and two
attempts at most, and uses the region of the secret's ARN.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from functions.errors import CredentialsUnavailable
from functions.settings import Settings

__all__ = ["Credentials", "CredentialsUnavailable", "current_credentials", "fresh_credentials", "reset_cache"]

log = logging.getLogger(__name__)

SECRET_KEYS = ("basic_auth_user", "basic_auth_pass", "webhook_secret")
REQUIRED_KEYS = ("basic_auth_user", "basic_auth_pass")
STALE_SECONDS = 3600.0
RETRY_AFTER_FAILURE_SECONDS = 5.0


@dataclass(frozen=True)
class Credentials:
    """What a request must present. None means not configured. The secrets stay out of repr()."""

    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


@dataclass
class _Entry:
    credentials: Credentials | None = None
    read_at: float = float("-inf")
    error: CredentialsUnavailable | None = None
    failed_at: float = float("-inf")


_cache: dict[str, _Entry] = {}
_clients: dict[tuple[str | None, float, float], Any] = {}
_lock = threading.Lock()


def current_credentials(settings: Settings) -> Credentials:
    """The credentials in force now.

    Raises:
        CredentialsUnavailable: CREDENTIALS_SECRET is set, but the secret cannot be read or does
            not hold the expected JSON (and no earlier read of it may stand in).
    """
    secret_id = (settings.credentials_secret or "").strip()
    if not secret_id:
        return _from_settings(settings)
    with _lock:
        entry = _cache.setdefault(secret_id, _Entry())
        now = time.monotonic()
        if entry.credentials is not None and now - entry.read_at < settings.credentials_ttl_seconds:
            return entry.credentials
        if entry.error is None or now - entry.failed_at >= RETRY_AFTER_FAILURE_SECONDS:
            try:
                credentials = _read_secret(settings, secret_id)
            except CredentialsUnavailable as error:
                entry.error, entry.failed_at = error, now
            else:
                entry.credentials, entry.read_at, entry.error = credentials, now, None
                return credentials
        if entry.credentials is not None and now - entry.read_at < settings.credentials_ttl_seconds + STALE_SECONDS:
            log.warning("credentials secret unreadable (%s): keeping the credentials read %.0f s ago", entry.error, now - entry.read_at)
            return entry.credentials
        assert entry.error is not None
        raise entry.error


def fresh_credentials(settings: Settings) -> Credentials | None:
    """The credentials if `current_credentials` can answer without reading AWS (the settings'
    own, or a secret read less than CREDENTIALS_TTL_SECONDS ago); else None. Never blocks on I/O."""
    secret_id = (settings.credentials_secret or "").strip()
    if not secret_id:
        return _from_settings(settings)
    with _lock:
        entry = _cache.get(secret_id)
        if entry and entry.credentials is not None and time.monotonic() - entry.read_at < settings.credentials_ttl_seconds:
            return entry.credentials
    return None


def reset_cache() -> None:
    """Forget every cached secret and client (tests; a process never needs it)."""
    with _lock:
        _cache.clear()
        _clients.clear()


def _from_settings(settings: Settings) -> Credentials:
    password = settings.basic_auth_pass.get_secret_value() if settings.basic_auth_pass is not None else ""
    webhook = settings.webhook_secret.get_secret_value() if settings.webhook_secret is not None else ""
    return Credentials(settings.basic_auth_user or None, password or None, webhook or None)


def _read_secret(settings: Settings, secret_id: str) -> Credentials:
    try:
        reply = _client(settings, secret_id).get_secret_value(SecretId=secret_id)
    except Exception as error:  # noqa: BLE001 - botocore raises many types; each means "cannot read it now"
        code = _error_code(error)
        log.error("cannot read the credentials secret %s: %s: %s", secret_id, code, error)
        raise CredentialsUnavailable(
            f"the credentials secret cannot be read ({code}): check that CREDENTIALS_SECRET names an existing "
            "secret and that the api function's role may call secretsmanager:GetSecretValue on it"
        ) from error
    text = reply.get("SecretString")
    if not isinstance(text, str):
        raise _invalid(secret_id, "it holds binary data, not a JSON SecretString")
    try:
        values = json.loads(text)
    except ValueError:
        raise _invalid(secret_id, "its SecretString is not JSON") from None
    return _parse(secret_id, values)


def _parse(secret_id: str, values: Any) -> Credentials:
    if not isinstance(values, dict):
        raise _invalid(secret_id, "its SecretString is not a JSON object")
    for key in SECRET_KEYS:
        if values.get(key) is not None and not isinstance(values[key], str):
            raise _invalid(secret_id, f"{key} is not a string")
    missing = [key for key in REQUIRED_KEYS if not values.get(key)]
    if missing:
        raise _invalid(secret_id, f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing or empty")
    return Credentials(values["basic_auth_user"], values["basic_auth_pass"], values.get("webhook_secret") or None)


def _invalid(secret_id: str, why: str) -> CredentialsUnavailable:
    log.error("the credentials secret %s is not usable: %s", secret_id, why)
    return CredentialsUnavailable(
        f"the credentials secret is not usable: {why}; it must hold JSON "
        '{"basic_auth_user": "…", "basic_auth_pass": "…", "webhook_secret": "…"}'
    )


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(error).__name__


def _region_of(secret_id: str) -> str | None:
    """The region of a secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)."""
    parts = secret_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


def _client(settings: Settings, secret_id: str) -> Any:
    """A Secrets Manager client with short timeouts (made once per region; called under _lock)."""
    key = (_region_of(secret_id), settings.s3_connect_timeout, settings.s3_read_timeout)
    if key not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        _clients[key] = boto3.client("secretsmanager", region_name=key[0], config=config)
    return _clients[key]
