"""A small fault-injecting HTTP proxy in front of a moto S3 server.

The backend's boto3 talks to the proxy (``AWS_ENDPOINT_URL``); the proxy forwards each
request to moto, unless a fault is switched on:

- ``pass``: forward everything (the default);
- ``down``: the listening socket is closed, so new connections are refused (and open ones
  are cut), as when the endpoint is unreachable;
- ``hung``: connections are accepted and requests read, but never answered;
- ``read-only``: writes (PUT, POST, DELETE) get ``403 AccessDenied``, as from a bucket policy
  or a read-only MinIO; reads are forwarded;
- ``throttled``: writes get ``503 SlowDown`` (S3's answer when it sheds load);
- ``full``: writes get ``507 XMinioStorageFull`` (what MinIO answers when its drives are full).

Write faults can be narrowed to keys matching a regular expression (`writes_matching`), e.g.
only the model objects of a version. Everything else is forwarded. Requests are parsed one
by one (Content-Length or chunked bodies), so keep-alive connections work as with S3.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
from typing import Iterator

WRITE_METHODS = {"PUT", "POST", "DELETE"}
MODES = {"pass", "down", "hung", "read-only", "throttled", "full"}
ERRORS = {
    "read-only": (403, "Forbidden", "AccessDenied", "Access Denied"),
    "throttled": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "full": (507, "Insufficient Storage", "XMinioStorageFull",
             "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed."),
}


class FaultProxy:
    """Forwards HTTP/1.1 requests from ``127.0.0.1:<port>`` to `upstream` with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.writes_matching: re.Pattern[str] | None = None
        self.refused: list[tuple[str, str]] = []  # (method, path) of writes answered with a fault
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._release = threading.Event()  # set: hung requests give up (their connection is closed)
        self._closed = False
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switching faults -------------------------------------------------------------------

    def set(self, mode: str, writes_matching: str | None = None) -> None:
        """Switch to `mode` (see the module doc); `writes_matching` narrows write faults to
        request paths that match it."""
        assert mode in MODES, mode
        with self._lock:
            previous, self.mode = self.mode, mode
            self.writes_matching = re.compile(writes_matching) if writes_matching else None
        if previous == "hung" and mode != "hung":
            self._release.set()
        if mode == "hung":
            self._release.clear()
        if mode == "down" and previous != "down":
            self._stop_listening()
            self._cut_connections()
        elif previous == "down" and mode != "down":
            self._listen()

    @contextlib.contextmanager
    def fault(self, mode: str, writes_matching: str | None = None) -> Iterator["FaultProxy"]:
        """`mode` for the duration of the block, then ``pass`` again; `refused` lists the
        writes refused in the block."""
        self.refused = []
        self.set(mode, writes_matching)
        try:
            yield self
        finally:
            self.set("pass")

    def close(self) -> None:
        self._closed = True
        self._release.set()
        self._stop_listening()
        self._cut_connections()

    # -- sockets ----------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="fault-proxy-accept", daemon=True).start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _cut_connections(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: down
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), name="fault-proxy-conn", daemon=True).start()

    # -- one client connection --------------------------------------------------------------

    def _serve(self, connection: socket.socket) -> None:
        upstream: http.client.HTTPConnection | None = None
        reader = connection.makefile("rb")
        try:
            while not self._closed:
                request = _read_request(reader, connection)
                if request is None:
                    return
                method, path, headers, body = request
                mode, matching = self.mode, self.writes_matching
                if mode == "hung":
                    self._release.wait()
                    return  # the connection is closed unanswered
                if mode in ERRORS and method in WRITE_METHODS and (matching is None or matching.search(path)):
                    self.refused.append((method, path))
                    connection.sendall(_error_reply(*ERRORS[mode], path))
                    continue
                if upstream is None:
                    upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
                connection.sendall(_forward(upstream, method, path, headers, body))
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                reader.close()
                connection.close()


def _read_request(reader, connection: socket.socket) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    """(method, path, headers, raw body) of the next request, None at the end of the connection.
    A chunked body is kept as sent (chunk framing included) and forwarded as it is."""
    line = reader.readline(65537)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        header = reader.readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lowered = {name.lower(): value for name, value in headers}
    if lowered.get("expect", "").lower() == "100-continue" and "chunked" in lowered.get("transfer-encoding", "").lower():
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        headers = [(name, value) for name, value in headers if name.lower() != "expect"]
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = reader.readline(65537)
            body += size_line
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = reader.readline(65537)
                    body += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                break
            body += reader.read(size + 2)
        return method, path, headers, bytes(body)
    length = int(lowered.get("content-length", "0") or 0)
    if lowered.get("expect", "").lower() == "100-continue":
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # then forwarded without the Expect header
        headers = [(name, value) for name, value in headers if name.lower() != "expect"]
    return method, path, headers, reader.read(length) if length else b""


def _forward(upstream: http.client.HTTPConnection, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Send the request to moto as it came; the reply, re-framed with a Content-Length."""
    for attempt in range(2):  # moto may have closed an idle keep-alive connection
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in ("connection", "proxy-connection", "keep-alive"):
                    upstream.putheader(name, value)
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            data = response.read()
            break
        except (http.client.HTTPException, ConnectionError):
            upstream.close()
            if attempt:
                raise
    head = [f"HTTP/1.1 {response.status} {response.reason}"]
    for name, value in response.getheaders():
        if name.lower() not in ("transfer-encoding", "content-length", "connection", "keep-alive"):
            head.append(f"{name}: {value}")
    length = response.getheader("content-length") if method == "HEAD" else str(len(data))
    head.append(f"Content-Length: {length or 0}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else data)


def _error_reply(status: int, reason: str, code: str, message: str, path: str) -> bytes:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{path}</Resource><RequestId>FAULTPROXY</RequestId></Error>").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nx-amz-request-id: FAULTPROXY\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body
