"""The Label Studio stand-in's project detail, ML backend connections and webhooks
(tests/ls_standin.py routes ``/api/projects/<id>``, ``/api/ml…`` and ``/api/webhooks/…`` here), as
Label Studio 1.23.2 answered them (tests/ls_wire_runs/60–142, README (f)):

- ``POST /api/ml`` and ``PATCH /api/ml/<id>`` validate with the fields sent only: ``url`` is
  needed for the ``/health`` call (else 500), ``project`` for ``/setup`` (else 500); Basic auth
  is sent whenever a user and a password are among them; ``auth_method: BASIC_AUTH`` without both
  keys is a 400; an empty password on update keeps the stored one. A failed /health or /setup
  is a 400 with Label Studio's texts (the backend's own detail is not passed on). Then the
  connection is saved and checked again (``state`` CO / DI / ER, ``model_version``), and a create
  adds the webhook ``<url>/webhook`` (all actions, no headers) unless one calls that url.
- ``GET /api/ml?project=N`` (404 without or for an unknown project) and ``GET /api/ml/<id>``
  (an HTML 404 for an unknown id, and for ``/api/ml/<id>/``) check each connection again.
- Webhooks: ``GET /api/webhooks/[?project=N]`` (unknown project: 400), ``POST``, and
  ``GET/PATCH/DELETE /api/webhooks/<id>[/]``. A PATCH sets ``actions`` to what it sends (``[]``
  when it sends none); ``project`` cannot change; ``headers`` must be an object of strings.
- ``ml_block_local_ip`` / ``ssrf_protection`` (both off by default, like Label Studio started with
  ``ML_BLOCK_LOCAL_IP=false SSRF_PROTECTION_ENABLED=false``): a loopback or private url answers 403
  "URL resolves to a reserved network address"; with only ``ssrf_protection`` on, a create saves
  the connection, then answers that 403 when making its webhook. A host name that does not
  resolve: 500 "Can't resolve hostname <host>".

`emit(project, action, payload)` sends a project event to its webhooks, with their headers, as
Label Studio does when an annotation is saved.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import socket
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx

if TYPE_CHECKING:
    from tests.ls_standin import LabelStudioStandIn

VERSION = "1.23.2"
NOT_FOUND_HTML = b"\n\n\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n<title>Label Studio</title></head><body>404</body></html>"
STAMP = "2026-12-03T13:25:31.323989Z"
READABLE_STATES = {"CO": "Connected", "DI": "Disconnected", "ER": "Error"}
BASIC_REQUIRED = "Authentication username and password is required for Basic Authentication."
BLOCKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128")  # a few of Label Studio's
ML_ITEM = re.compile(r"^/api/ml/(\d+)(/?)$")
WEBHOOK_ITEM = re.compile(r"^/api/webhooks/(\d+)/?$")
PROJECT_ITEM = re.compile(r"^/api/projects/(\d+)/?$")


def admin_path(path: str) -> bool:
    """Whether `path` (without the stand-in's prefix) is one of the endpoints `MLBackends` answers."""
    return path.startswith(("/api/ml", "/api/webhooks/")) or bool(PROJECT_ITEM.match(path))


class Refused(Exception):
    """An answer other than success: (status, body)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class MLBackends:
    """The connections and webhooks of every project of `standin`."""

    def __init__(self, standin: "LabelStudioStandIn") -> None:
        self.standin = standin
        self.connections: dict[int, dict[str, Any]] = {}  # with the password, which replies never show
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.ml_block_local_ip = False
        self.ssrf_protection = False
        self.backend_calls: list[dict[str, Any]] = []  # {"url", "authorization", "status"}: what this Label Studio called
        self._ids = {"ml": itertools.count(1), "webhook": itertools.count(1)}

    def handle(self, method: str, path: str, query: str, body: bytes) -> tuple[int, Any] | None:
        """The answer to an admin request, or None if `path` is not one of these endpoints."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, error_body(400, "JSON parse error")
        try:
            with self.standin._lock:
                if PROJECT_ITEM.match(path) and method == "GET":
                    return 200, self._project(int(PROJECT_ITEM.match(path).group(1)))
                if path in ("/api/ml", "/api/ml/"):
                    return (200, self._list(params)) if method == "GET" else (201, self._create(data)) if method == "POST" else None
                if ML_ITEM.match(path):
                    number, slash = ML_ITEM.match(path).groups()
                    if slash or int(number) not in self.connections:
                        return 404, NOT_FOUND_HTML
                    return self._connection(method, int(number), data)
                if path == "/api/webhooks/":
                    return (200, self._webhook_list(params)) if method == "GET" else (201, self._webhook_create(data)) if method == "POST" else None
                if WEBHOOK_ITEM.match(path):
                    return self._webhook(method, int(WEBHOOK_ITEM.match(path).group(1)), data)
        except Refused as refused:
            return refused.status, refused.body
        return None

    def add_connection(self, project: int, url: str, **fields: Any) -> int:
        """Store a connection as it is, unchecked (one made earlier, to a backend that may be gone); its id."""
        with self.standin._lock:
            return self._add({"project": project, "url": url} | fields)

    def add_webhook(self, project: int, url: str, **fields: Any) -> dict[str, Any]:
        """Store a webhook as a user would make it (Settings → Webhooks); a copy of it."""
        with self.standin._lock:
            return dict(self._store_webhook({"project": project, "url": url} | fields))

    def _add(self, fields: dict[str, Any]) -> int:
        number = next(self._ids["ml"])
        self.connections[number] = {
            "id": number, "state": "DI", "is_interactive": False, "error_message": None, "title": "default", "auth_method": "NONE",
            "basic_auth_user": "", "basic_auth_pass": "", "description": "", "extra_params": None, "model_version": "",
            "timeout": 100.0, "created_at": STAMP, "updated_at": STAMP, "auto_update": True} | fields
        return number

    def emit(self, project: int, action: str, payload: dict[str, Any]) -> list[tuple[int, int | str]]:
        """Send `action` to the project's active webhooks for it; [(webhook id, status or error name)]."""
        with self.standin._lock:
            hooks = [dict(w) for w in self.webhooks.values() if w["project"] == project and w["is_active"]
                     and (w["send_for_all_actions"] or action in w["actions"])]
        sent = []
        for hook in hooks:
            body = {"action": action, **(payload if hook["send_payload"] else {})}
            try:
                sent.append((hook["id"], httpx.post(hook["url"], json=body, headers=hook["headers"], timeout=1.0).status_code))
            except httpx.HTTPError as error:
                sent.append((hook["id"], type(error).__name__))
        return sent

    # -- connections ---------------------------------------------------------------------------

    def _project(self, project: int) -> dict[str, Any]:
        if project not in self.standin.projects:
            raise Refused(404, error_body(404, "No Project matches the given query."))
        return {"id": project, "title": f"Project {project}", "description": "", "created_at": "2026-12-03T13:25:30.500432Z",
                "label_config": self.standin.label_configs.get(project, "<View></View>"), "model_version": "",
                "organization": 1, "task_number": len(self.standin.projects[project].tasks)}

    def _list(self, params: dict[str, str]) -> list[dict[str, Any]]:
        project = int(params["project"]) if params.get("project", "").isdigit() else 0
        self._project(project)
        return [self._checked(c) for _, c in sorted(self.connections.items()) if c["project"] == project]

    def _create(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("project") not in self.standin.projects:
            raise Refused(400, error_body(400, "Validation error", {"project": [f'Invalid pk "{data.get("project")}" - object does not exist.']}))
        attrs = self._validated(data, None)
        connection = self.connections[self._add(attrs)]
        hook_url = connection["url"].rstrip("/") + "/webhook"
        if not any(w["project"] == connection["project"] and w["url"] == hook_url for w in self.webhooks.values()):
            self._check_webhook_url(hook_url)  # Label Studio answers this 403 with the connection already saved
            self._store_webhook({"project": connection["project"], "url": hook_url, "send_for_all_actions": True})
        return self._checked(connection)

    def _connection(self, method: str, number: int, data: dict[str, Any]) -> tuple[int, Any]:
        connection = self.connections[number]
        if method == "GET":
            return 200, self._checked(connection)
        if method == "DELETE":
            del self.connections[number]
            return 204, b""
        if method == "PATCH":
            connection.update(self._validated(data, connection))
            return 200, self._checked(connection)
        return 405, {"detail": f'Method "{method}" not allowed.'}

    def _validated(self, data: dict[str, Any], instance: dict[str, Any] | None) -> dict[str, Any]:
        """The serializer's validation: field checks, then /health and /setup with these fields only."""
        fields = ("url", "project", "title", "is_interactive", "auth_method", "basic_auth_user", "basic_auth_pass", "description",
                  "extra_params", "timeout", "auto_update")
        attrs = {k: v for k, v in data.items() if k in fields}
        if "url" in attrs:
            _resolve(attrs["url"])
            if self.ml_block_local_ip:
                _refuse_local(attrs["url"])
        if "basic_auth_pass" in attrs and not attrs["basic_auth_pass"]:
            if not (instance and instance["basic_auth_pass"]):
                raise Refused(400, error_body(400, "Validation error", {"basic_auth_pass": [BASIC_REQUIRED.replace("username and ", "")]}))
            attrs["basic_auth_pass"] = instance["basic_auth_pass"]
        if attrs.get("auth_method") == "BASIC_AUTH" and not {"basic_auth_user", "basic_auth_pass"} <= attrs.keys():
            raise Refused(400, error_body(400, "Validation error", {"non_field_errors": [BASIC_REQUIRED]}))
        if "url" not in attrs:
            raise Refused(500, error_body(500, "MLBackend.healthcheck_() missing 1 required positional argument: 'url'"))
        auth = (attrs.get("basic_auth_user"), attrs.get("basic_auth_pass"))
        status, error, _ = self._call(attrs["url"], "health", auth)
        if error:
            message = ("Able to connect to ML Server, but authentication parameters were either not provided or are incorrect."
                       if status == 401 else
                       f"Can't connect to ML backend {attrs['url']}, health check failed. Make sure it is up and your firewall is "
                       f'properly configured. <a href="https://labelstud.io/guide/ml.html">Learn more</a> about how to set up an '
                       f"ML backend. Additional info: {error}")
            raise Refused(400, error_body(400, "Validation error", {"non_field_errors": [message]}))
        if "project" not in attrs:
            raise Refused(500, error_body(500, "MLBackend.setup_() missing 1 required positional argument: 'project'"))
        _, error, _ = self._call(attrs["url"], "setup", auth, self._setup_body(attrs["project"], attrs.get("extra_params")))
        if error:
            message = (f"Successfully connected to {attrs['url']} but it doesn't look like a valid ML backend. Reason: {error}.\n"
                       "Check the ML backend server console logs to check the status.There might be something wrong with your "
                       "model or it might be incompatible with the current labeling configuration.")
            raise Refused(400, error_body(400, "Validation error", {"non_field_errors": [message]}))
        return attrs

    def _checked(self, connection: dict[str, Any]) -> dict[str, Any]:
        """`update_state`: /health, then /setup with the stored fields; the reply (no password)."""
        auth = (connection["basic_auth_user"], connection["basic_auth_pass"])
        if self._call(connection["url"], "health", auth)[1]:
            connection["state"] = "DI"
        else:
            _, error, reply = self._call(connection["url"], "setup", auth, self._setup_body(connection["project"], connection["extra_params"]))
            if error:
                connection.update(state="ER", error_message=error)
            else:
                connection.update(state="CO", error_message=None, model_version=reply.get("model_version"))
        shown = {k: v for k, v in connection.items() if k != "basic_auth_pass"}
        return shown | {"readable_state": READABLE_STATES[connection["state"]], "basic_auth_pass_is_set": bool(connection["basic_auth_pass"])}

    def _setup_body(self, project: int, extra_params: Any) -> dict[str, Any]:
        return {"project": f"{project}.1796304330", "schema": self.standin.label_configs.get(project, "<View></View>"),
                "hostname": "http://localhost:8080", "access_token": "<legacy token of the project creator>", "extra_params": extra_params}

    def _call(self, url: str, endpoint: str, auth: tuple[Any, Any], body: Any = None) -> tuple[int, str | None, Any]:
        """One call of Label Studio's ML API client: (status, error text as requests words it, JSON reply)."""
        target = url.rstrip("/") + "/" + endpoint
        basic = httpx.BasicAuth(*auth) if auth[0] and auth[1] else None
        if self.ml_block_local_ip and _reserved(target):
            return 0, f"URL resolves to a reserved network address (block: {_reserved(target)})", None
        try:
            if body is None:
                response = httpx.get(target, auth=basic, timeout=httpx.Timeout(1.0))
            else:
                response = httpx.post(target, json=body, auth=basic, timeout=httpx.Timeout(3.0, connect=1.0))
        except httpx.HTTPError as error:
            parts = urlsplit(target)
            return 0, (f"HTTPConnectionPool(host='{parts.hostname}', port={parts.port}): Max retries exceeded with url: "
                       f"{parts.path} (Caused by {type(error).__name__})"), None
        self.backend_calls.append({"url": target, "authorization": "Basic" if basic else None, "status": response.status_code})
        if response.status_code >= 400:
            kind = "Client" if response.status_code < 500 else "Server"
            return response.status_code, f"{response.status_code} {kind} Error: {response.reason_phrase} for url: {target}", None
        try:
            return response.status_code, None, response.json()
        except ValueError as error:
            return response.status_code, str(error), None

    # -- webhooks ------------------------------------------------------------------------------

    def _webhook_list(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if "project" in params:
            project = int(params["project"]) if params["project"].isdigit() else None
            if project not in self.standin.projects:
                raise Refused(400, error_body(400, "Validation error", {"project": ["Select a valid choice. That choice is not one of the available choices."]}))
            return [dict(w) for _, w in sorted(self.webhooks.items()) if w["project"] == project]
        return [dict(w) for _, w in sorted(self.webhooks.items())]

    def _webhook_create(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("project") not in self.standin.projects:
            raise Refused(400, error_body(400, "Validation error", {"project": [f'Invalid pk "{data.get("project")}" - object does not exist.']}))
        _check_headers(data)
        self._check_webhook_url(str(data.get("url")))
        return dict(self._store_webhook(data))

    def _webhook(self, method: str, number: int, data: dict[str, Any]) -> tuple[int, Any]:
        hook = self.webhooks.get(number)
        if hook is None:
            return 404, error_body(404, "No Webhook matches the given query.")
        if method == "GET":
            return 200, dict(hook)
        if method == "DELETE":
            del self.webhooks[number]
            return 204, b""
        if method in ("PATCH", "PUT"):
            _check_headers(data)
            if "url" in data:
                self._check_webhook_url(str(data["url"]))
            hook.update({k: v for k, v in data.items() if k in ("url", "send_payload", "send_for_all_actions", "headers", "is_active")})
            hook["actions"] = sorted(data.get("actions") or [])  # Label Studio 1.23.2: unsent actions become []
            return 200, dict(hook)
        return 405, {"detail": f'Method "{method}" not allowed.'}

    def _store_webhook(self, data: dict[str, Any]) -> dict[str, Any]:
        hook = {"id": next(self._ids["webhook"]), "organization": 1, "project": data["project"], "url": data["url"],
                "send_payload": data.get("send_payload", True), "send_for_all_actions": data.get("send_for_all_actions", True),
                "headers": data.get("headers") or {}, "is_active": data.get("is_active", True),
                "actions": sorted(data.get("actions") or []), "created_at": STAMP, "updated_at": STAMP}
        self.webhooks[hook["id"]] = hook
        return hook

    def _check_webhook_url(self, url: str) -> None:
        if self.ssrf_protection:
            _refuse_local(url)


def _check_headers(data: dict[str, Any]) -> None:
    headers = data.get("headers")
    if "headers" in data and not (isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())):
        raise Refused(400, error_body(400, "Validation error", {"headers": [f"{headers} failed JSON schema check"]}))


def _resolve(url: str) -> None:
    """Label Studio resolves a connection's host name before anything else (capture 142)."""
    host = urlsplit(url).hostname or ""
    try:
        socket.gethostbyname(host)
    except OSError:
        raise Refused(500, error_body(500, f"Can't resolve hostname {host}")) from None


def _reserved(url: str) -> str | None:
    """The blocked network `url`'s host resolves to, or None."""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(urlsplit(url).hostname or ""))
    except (OSError, ValueError):
        return None
    for block in BLOCKS:
        if address in ipaddress.ip_network(block):
            return block
    return None


def _refuse_local(url: str) -> None:
    block = _reserved(url)
    if block:
        raise Refused(403, error_body(403, f"URL resolves to a reserved network address (block: {block})"))


def auth_error(authorization: str, legacy_token: str) -> dict[str, Any]:
    """Label Studio 1.23.2's 401 body for a refused Authorization header (captures 100–102, 108):
    `legacy_token` is the stand-in's own, refused while legacy tokens are off."""
    scheme, _, token = authorization.partition(" ")
    if scheme == "Token" and token == legacy_token:
        return error_body(401, "Authentication token no longer valid: legacy token authentication has been disabled for this organization")
    if scheme == "Token":
        return error_body(401, "Invalid token.")
    return error_body(401, "Authentication credentials were not provided.")


def error_body(status: int, detail: str, validation_errors: Any = None) -> dict[str, Any]:
    """Label Studio 1.23.2's error body."""
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "status_code": status, "version": VERSION, "detail": detail, "exc_info": None}
    if validation_errors is not None:
        body["validation_errors"] = validation_errors
    return body
