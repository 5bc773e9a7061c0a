"""The inputs of `connect` (functions/cli/connect.py): its flags, else the backend's own settings
from the environment, checked; secrets never shown."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from functions.backend_checks import basic_authorization
from functions.cli.common import CliError


@dataclass
class Inputs:
    """What the command works with; the secrets stay out of repr()."""

    label_studio_url: str
    project: int
    backend_url: str
    check_url: str
    user: str
    token: str = field(repr=False)
    password: str = field(repr=False)
    webhook_headers: dict[str, str] = field(repr=False)
    webhook_auth: str  # "secret" or "basic"


def read_inputs(args: argparse.Namespace) -> Inputs:
    """The flags, else the backend's settings from the environment (LABEL_STUDIO_URL,
    LABEL_STUDIO_API_KEY or LABEL_STUDIO_API_KEY_SECRET; BASIC_AUTH_USER, BASIC_AUTH_PASS and
    WEBHOOK_SECRET, or CREDENTIALS_SECRET); a password prompt when none is set and stdin is a terminal.

    Raises:
        CliError: something is missing or malformed.
    """
    from pydantic import ValidationError

    from functions.credentials import current_credentials
    from functions.label_studio_token import label_studio_token
    from functions.settings import Settings, describe_settings_error

    try:
        settings = Settings(**({"credentials_secret": args.credentials_secret} if args.credentials_secret else {}))
    except ValidationError as error:
        raise CliError(f"invalid settings in the environment: {describe_settings_error(error)}") from None
    label_studio_url = _url(args.label_studio_url or settings.label_studio_url, "--label-studio-url (or LABEL_STUDIO_URL)")
    backend_url = _url(args.backend_url, "--backend-url")
    check_url = _url(args.check_url, "--check-url") if args.check_url else backend_url
    token = (args.token or "").strip() or label_studio_token(settings)
    if not token:
        raise CliError("no Label Studio token: set LABEL_STUDIO_API_KEY (or pass --token) to a personal access token "
                       "(Account & Settings → Personal Access Token) or a legacy token")
    credentials = current_credentials(settings)  # BASIC_AUTH_* / WEBHOOK_SECRET, or the CREDENTIALS_SECRET secret
    user = args.basic_auth_user or credentials.basic_auth_user
    if not user:
        raise CliError("no backend user: pass --basic-auth-user or set BASIC_AUTH_USER (or CREDENTIALS_SECRET) as the backend has it")
    password = credentials.basic_auth_pass or ""
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"backend password of {user!r} (BASIC_AUTH_PASS): ")
    if not password:
        raise CliError("no backend password: set BASIC_AUTH_PASS (or CREDENTIALS_SECRET) as the backend has it")
    webhook_auth = args.webhook_auth or ("secret" if credentials.webhook_secret else "basic")
    if webhook_auth == "secret" and not credentials.webhook_secret:
        raise CliError("--webhook-auth secret needs the backend's webhook secret: set WEBHOOK_SECRET (or CREDENTIALS_SECRET)")
    headers = ({"X-Webhook-Secret": credentials.webhook_secret or ""} if webhook_auth == "secret"
               else {"Authorization": basic_authorization(user, password)})
    return Inputs(label_studio_url, args.project, backend_url, check_url, user, token, password, headers, webhook_auth)


def _url(value: str | None, name: str) -> str:
    """`value` as an http(s) URL without a trailing slash, query or fragment (Label Studio appends
    the endpoint's path to it)."""
    value = (value or "").strip()
    if not value:
        raise CliError(f"{name} is required")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"{name} must be an http:// or https:// URL, got {value.rsplit('@', 1)[-1]!r}")  # no user info shown
    if parts.username is not None:
        raise CliError(f"{name} must not hold a user or password: the backend's user goes in --basic-auth-user, "
                       "its password in BASIC_AUTH_PASS")
    if parts.query or parts.fragment:
        raise CliError(f"{name} must not have a query string or fragment (Label Studio appends /health, /setup … to it)")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


UNSET = object()  # --extra-params not given: keep the connection's


def extra_params_arg(value: str) -> Any:
    """`--extra-params`: a JSON object or null (argparse shows an ArgumentTypeError as a usage error)."""
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error})") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError('must be a JSON object such as {"model_version": "p12-v3"}, or null')
    return parsed


def project_arg(value: str) -> int:
    """`--project`: a Label Studio project id (digits)."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a Label Studio project id such as 12, got {value!r}")
    return int(value)
