"""Who may call the API, checked before a request's body is read (a plain ASGI middleware).

- ``GET /health`` is public: Label Studio checks it before anything else. Not with a ``deep``
  query parameter (``/health?deep=1``, any value): that one reads the store and the queues
  (AWS calls, errors naming buckets and queues), so it needs credentials like the rest.
- Every other endpoint needs HTTP Basic credentials (the only auth a Label Studio 1.23 ML
  backend connection can send). ``/webhook`` also accepts the webhook secret instead, in the
  header ``X-Webhook-Secret`` or as the URL's last segment (``/webhook/<secret>``): Label
  Studio's automatic project webhook carries no Authorization header unless the user adds one.
- Fails closed: with no credentials configured, nothing but /health is served, unless the
  backend is a `make dev` bound to loopback or ALLOW_UNAUTHENTICATED=true says so. A user with
  an empty password counts as not configured.
- With ALLOWED_HOSTS set, other Host headers are refused (DNS rebinding against a local
  backend); POST bodies must be JSON (a web page cannot send that cross-site without a CORS
  preflight, which this API never grants).

Secrets are compared in constant time (`secrets.compare_digest`), whatever fails first.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import parse_qsl

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.credentials import Credentials, current_credentials, fresh_credentials
from functions.errors import BackendError
from functions.settings import Settings

PUBLIC_PATHS = frozenset({"/health"})
WEBHOOK_PATH = "/webhook"
WEBHOOK_HEADER = "x-webhook-secret"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
JSON_TYPES = ("application/json",)
MIB = 2**20
CHALLENGE = {"WWW-Authenticate": 'Basic realm="label-studio-ml-backend", charset="UTF-8"'}


class Refused(BackendError):
    """A request the gatekeeper turns away; `headers` go with the reply."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status_code, self.headers = status_code, headers or {}


class Gatekeeper:
    """ASGI middleware: host, content type and credentials of every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.allowed_hosts = _names(settings.allowed_hosts)
        self.max_body_bytes = int(settings.max_body_mb * MIB)
        self.too_large = f"the request body is over {settings.max_body_mb:g} MiB (MAX_BODY_MB); send fewer tasks at once"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self.check(scope)
            except Refused as refused:
                reply = JSONResponse({"detail": str(refused)}, status_code=refused.status_code, headers=refused.headers)
                await reply(scope, receive, send)
                return
            receive = self.limited(receive)
        await self.app(scope, receive, send)

    def limited(self, receive: Receive) -> Receive:
        """`receive` that stops a body without a Content-Length once it passes MAX_BODY_MB."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, self.too_large)  # FastAPI lets an HTTPException from here through
            return message

        return receive_limited

    async def check(self, scope: Scope) -> None:
        """Raise `Refused` unless `scope` may go on to the app."""
        headers = Headers(scope=scope)
        host = _hostname(headers.get("host", ""))
        if self.allowed_hosts and host not in self.allowed_hosts:
            raise Refused(400, f"this backend does not answer for host {host[:100]!r}: add it to ALLOWED_HOSTS")
        path = scope.get("path", "")
        if path in PUBLIC_PATHS and not _asks_deep(scope):
            return
        if int(headers.get("content-length") or 0) > self.max_body_bytes:
            raise Refused(413, self.too_large)
        if scope.get("method") in ("POST", "PUT", "PATCH") and not _is_json(headers.get("content-type", "")):
            raise Refused(415, "send the body as JSON with 'Content-Type: application/json'")
        credentials = await self.credentials()
        if _is_webhook(path) and credentials.webhook_secret and _webhook_secret_ok(scope, headers, credentials.webhook_secret):
            return
        if not credentials.basic_auth_user:
            if self.unauthenticated_allowed():
                return
            raise Refused(503, "this backend has no credentials configured and refuses to serve: set BASIC_AUTH_USER and "
                          "BASIC_AUTH_PASS (or CREDENTIALS_SECRET), or ALLOW_UNAUTHENTICATED=true to serve anyone")
        if not credentials.basic_auth_pass:
            raise Refused(503, "BASIC_AUTH_USER is set but its password is empty: set BASIC_AUTH_PASS; "
                          "an empty password is never accepted")
        user, password = _basic_credentials(headers.get("authorization", ""))
        user_ok = secrets.compare_digest(user.encode(), credentials.basic_auth_user.encode())
        pass_ok = secrets.compare_digest(password.encode(), credentials.basic_auth_pass.encode())
        if not (user_ok and pass_ok):
            raise Refused(401, "missing or wrong HTTP Basic credentials: set the same user and password on the Label "
                          "Studio model connection (and the webhook secret or Authorization header on the project webhook)",
                          CHALLENGE)

    async def credentials(self) -> Credentials:
        """The current credentials; read off the event loop only when AWS must be asked."""
        try:
            cached = fresh_credentials(self.settings)
            return cached if cached is not None else await to_thread.run_sync(current_credentials, self.settings)
        except BackendError as error:  # CredentialsUnavailable: refuse, never serve unauthenticated
            raise Refused(error.status_code, str(error)) from error

    def unauthenticated_allowed(self) -> bool:
        """ALLOW_UNAUTHENTICATED, or a `make dev` (not Lambda) listening on loopback only."""
        local = self.settings.aws_lambda_function_name is None and self.settings.host in LOOPBACK_HOSTS
        return self.settings.allow_unauthenticated or local


def _asks_deep(scope: Scope) -> bool:
    """True if the query string has a ``deep`` parameter, whatever its value (decoded as the app
    decodes it, so ``de%65p=1`` counts too)."""
    query = scope.get("query_string", b"").decode("latin-1")
    return any(name == "deep" for name, _ in parse_qsl(query, keep_blank_values=True))


def _is_webhook(path: str) -> bool:
    return path == WEBHOOK_PATH or path.startswith(WEBHOOK_PATH + "/")


def _webhook_secret_ok(scope: Scope, headers: Headers, expected: str) -> bool:
    path: str = scope.get("path", "")
    offered = headers.get(WEBHOOK_HEADER) or (path[len(WEBHOOK_PATH) + 1 :] if path.startswith(WEBHOOK_PATH + "/") else "")
    return secrets.compare_digest(offered.encode(), expected.encode())


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:9090
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _names(value: str | None) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in (value or "").split(",") if name.strip())


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters in the header
        return "", ""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")  # python-requests (Label Studio's client) encodes str credentials as latin-1
    user, _, password = decoded.partition(":")
    return user, password

