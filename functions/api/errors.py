"""Errors → HTTP, in one place. Every error body is ``{"detail": "<what to fix>"}``; no client
ever sees a traceback (unexpected errors are logged with an id the client gets)."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.errors import BackendError, StoreUnavailable

log = logging.getLogger("functions.api")


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping of errors to HTTP replies on `app`."""
    app.add_exception_handler(BackendError, _backend_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(LastResort)


async def _backend_error(request: Request, error: BackendError) -> JSONResponse:
    level = logging.WARNING if isinstance(error, StoreUnavailable) or error.status_code >= 500 else logging.INFO
    log.log(level, "%s %s -> %d: %s", request.method, request.url.path, error.status_code, error)
    return JSONResponse({"detail": str(error)}, status_code=error.status_code)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": "invalid request: " + describe(error.errors())}, status_code=422)


def describe(errors: Sequence[Mapping[str, Any]]) -> str:
    """``"body.tasks.0.data: Input should be a valid dictionary; …"``: where and what, no input echo."""
    problems = [": ".join(filter(None, (".".join(str(part) for part in item.get("loc", ())), str(item.get("msg", "invalid")))))
                for item in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(problems) + more


class LastResort:
    """ASGI middleware: any exception no handler took becomes a 500 with an incident id.

    A plain ASGI wrapper, not Starlette's BaseHTTPMiddleware: that one costs about a quarter of
    a single-task /predict (measured with py-spy). If the reply has already started, the
    exception goes on up: nothing more can be sent from here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:  # noqa: BLE001 - the one place that turns any bug into a clean 500
            if started:  # too late for a 500; outer layers (e.g. the body-size limit's 413) handle or log it
                raise
            incident = uuid.uuid4().hex[:12]
            log.exception("unhandled error %s on %s %s", incident, scope.get("method"), scope.get("path"))
            reply = JSONResponse({"detail": f"internal error {incident}; the backend's log has the details"}, status_code=500)
            await reply(scope, receive, send)
