"""A Label Studio stand-in for tests: a real HTTP server on 127.0.0.1 that answers the token
refresh and export endpoints of Label Studio 1.23 from export-format files.

Behaviours: personal access token (JWT refresh → short-lived access tokens, which `expire()`
invalidates so the next call gets 401), legacy tokens (accepted or refused), a path prefix,
and failure modes: "ok", "error" (500), "slow" (answers after `delay` seconds), "down" (the
server is stopped: connection refused).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PERSONAL_ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"


class LabelStudioStandIn:
    def __init__(self, exports: dict[int, Path | list[dict[str, Any]]], prefix: str = "", legacy_tokens: bool = True) -> None:
        self.exports, self.prefix, self.legacy_tokens = exports, prefix.rstrip("/"), legacy_tokens
        self.mode, self.delay = "ok", 0.0
        self.requests: list[dict[str, Any]] = []
        self._access: set[str] = set()
        self._issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def __enter__(self) -> "LabelStudioStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def expire(self) -> None:
        """Invalidate every access token issued so far (they are short-lived in Label Studio)."""
        self._access.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                standin.requests.append({"method": "POST", "path": self.path, "body": body.decode()})
                if self.path != f"{standin.prefix}/api/token/refresh/":
                    return self._reply(404, {"detail": "Not found."})
                if standin.mode == "error":
                    return self._reply(500, {"detail": "boom"})
                if json.loads(body or b"{}").get("refresh") != PERSONAL_ACCESS_TOKEN:
                    return self._reply(401, {"detail": "Token is invalid or expired", "code": "token_not_valid"})
                standin._issued += 1
                access = f"access-{standin._issued}"
                standin._access.add(access)
                self._reply(200, {"access": access})

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                standin.requests.append({"method": "GET", "path": self.path, "authorization": auth})
                if standin.mode == "slow":
                    time.sleep(standin.delay)
                if standin.mode == "error":
                    return self._reply(500, {"detail": "Internal Server Error"})
                path, _, query = self.path.partition("?")
                prefix = f"{standin.prefix}/api/projects/"
                if not (path.startswith(prefix) and path.endswith("/export") and "exportType=JSON" in query):
                    return self._reply(404, {"detail": "Not found."})
                scheme, _, token = auth.partition(" ")
                allowed = (scheme == "Bearer" and token in standin._access) or (
                    scheme == "Token" and token == LEGACY_TOKEN and standin.legacy_tokens
                )
                if not allowed:
                    return self._reply(401, {"detail": "Authentication credentials were not provided."})
                project = int(path[len(prefix):-len("/export")])
                export = standin.exports.get(project)
                if export is None:
                    return self._reply(404, {"detail": "Not found."})
                data = export.read_bytes() if isinstance(export, Path) else json.dumps(export).encode()
                self._reply(200, data)

            def _reply(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
