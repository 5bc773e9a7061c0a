"""Optional HTTP Basic auth on every endpoint (BASIC_AUTH_USER / BASIC_AUTH_PASS).

Label Studio can only send Basic auth (ML backend connection: "Basic Authentication").
Its automatic project webhook sends no header unless the user adds one (see README).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import HTTPException, Request, status


CHALLENGE = {"WWW-Authenticate": 'Basic realm="label-studio-ml-backend", charset="UTF-8"'}


async def require_basic_auth(request: Request) -> None:
    """Pass when auth is off or the request carries the right credentials; else 401.

    User and password are both compared in constant time, whatever fails first. A coroutine
    only so that FastAPI calls it on the event loop (it never waits).
    """
    settings = request.app.state.services.settings
    if not settings.basic_auth_user:
        return
    expected_pass = settings.basic_auth_pass.get_secret_value() if settings.basic_auth_pass else ""
    user, password = _credentials(request.headers.get("authorization", ""))
    user_ok = secrets.compare_digest(user.encode(), settings.basic_auth_user.encode())
    pass_ok = secrets.compare_digest(password.encode(), expected_pass.encode())
    if not (user_ok and pass_ok):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong HTTP Basic credentials: set the same user and password on the "
            "Label Studio model connection (and on the project webhook's Authorization header)",
            headers=CHALLENGE,
        )


def _credentials(header: str) -> tuple[str, str]:
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
