"""The Label Studio token the train and predict functions use: LABEL_STUDIO_API_KEY, or in AWS
the SecretString of the Secrets Manager secret LABEL_STUDIO_API_KEY_SECRET names (the deployment
never puts the token into an environment variable). Read at runtime, cached for
CREDENTIALS_TTL_SECONDS so a rotated token applies without a redeploy.
"""

from __future__ import annotations

import logging
import threading
import time

from functions import credentials
from functions.label_studio import LabelStudioUnreachable
from functions.settings import Settings

log = logging.getLogger(__name__)

_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def label_studio_token(settings: Settings) -> str:
    """The token, or "" when neither setting is set.

    Raises:
        LabelStudioUnreachable: the secret cannot be read or is empty (a transient failure for a
            job: it trains on the annotation log; for a run: the chunk is retried).
    """
    if settings.label_studio_api_key:
        return settings.label_studio_api_key.get_secret_value()
    secret_id = (settings.label_studio_api_key_secret or "").strip()
    if not secret_id:
        return ""
    with _lock:
        cached = _cache.get(secret_id)
        if cached and time.monotonic() - cached[0] < settings.credentials_ttl_seconds:
            return cached[1]
        try:
            reply = credentials._client(settings, secret_id).get_secret_value(SecretId=secret_id)
        except Exception as error:  # noqa: BLE001 - botocore raises many types; each means "cannot read it now"
            log.error("cannot read the Label Studio token secret %s: %s", secret_id, error)
            raise LabelStudioUnreachable(
                "the Label Studio token secret (LABEL_STUDIO_API_KEY_SECRET) cannot be read: check that it exists "
                "and that this function's role may call secretsmanager:GetSecretValue on it"
            ) from error
        token = (reply.get("SecretString") or "").strip()
        if not token:
            raise LabelStudioUnreachable("the Label Studio token secret (LABEL_STUDIO_API_KEY_SECRET) holds no text token")
        _cache[secret_id] = (time.monotonic(), token)
        return token
