"""Label Studio's admin API for connecting a project to this backend: the project, its ML backend
connections (``/api/ml``) and its webhooks (``/api/webhooks/``). Authentication (personal access
token or legacy token, refresh on 401) is `functions.label_studio.LabelStudioClient`'s.

Rules measured on Label Studio 1.23.2 (tests/ls_wire_runs/ 60–142, README (f)):

- ``GET /api/ml?project=N`` lists the project's connections in id order; no or an unknown project:
  ``404 "No Project matches the given query."``. Label Studio calls each connection's ``/health``
  and ``/setup`` to fill ``state`` (``CO`` connected, ``DI`` disconnected, ``ER`` error).
- ``POST /api/ml`` calls ``/health`` (1 s) and ``/setup`` (3 s) with exactly the fields sent, before
  saving; a failure is ``400 "Validation error"`` whose ``non_field_errors`` say why (the backend's
  own error text is not passed on). It answers ``201`` with the connection (the password never
  comes back: ``basic_auth_pass_is_set``) and creates the project webhook ``<url>/webhook``
  (trailing slash of the url dropped; all actions, payload, no headers) unless the project
  already has one at that url.
- ``PATCH /api/ml/<id>`` (no trailing slash: ``/api/ml/<id>/`` is an HTML 404) validates with the
  fields sent only: without ``url`` or ``project`` it answers 500, without ``auth_method`` it calls
  ``/setup`` without credentials, without ``extra_params`` it calls ``/setup`` without them (which
  unpins a version pinned through them). So an update sends all of them. A changed url gets no webhook.
- A url that resolves to a loopback or private address: ``403 "URL resolves to a reserved network
  address (block: 127.0.0.0/8)"`` unless Label Studio runs with ``ML_BLOCK_LOCAL_IP=false``
  (connections) and ``SSRF_PROTECTION_ENABLED=false`` (webhooks). With only the first, ``POST
  /api/ml`` saves the connection and then answers that 403 while creating its webhook.
- ``GET /api/webhooks/?project=N`` lists the project's webhooks (an unknown project: 400).
  ``PATCH /api/webhooks/<id>/`` sets ``actions`` to ``[]`` unless they are sent, so an update sends
  ``actions`` and ``send_for_all_actions`` back. ``headers`` is an object of strings, shown in
  clear to anyone who may view the project's webhooks.

No token or password ever appears in an error message or a log line.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

import httpx

from functions.label_studio import LabelStudioClient, LabelStudioRefused, LabelStudioUnreachable, _detail

BLOCKED_URL = "reserved network address"
LEGACY_DISABLED = "legacy token authentication has been disabled"


class LabelStudioInvalid(LabelStudioRefused):
    """Label Studio answered 400: `str(error)` carries its validation messages."""


class LabelStudioBlockedUrl(LabelStudioRefused):
    """Label Studio refuses to call a loopback or private address (ML_BLOCK_LOCAL_IP /
    SSRF_PROTECTION_ENABLED are on): 403 "URL resolves to a reserved network address"."""


class LabelStudioNotFound(LabelStudioRefused):
    """Label Studio answered 404: the project (or connection, webhook) does not exist, or the
    token's user cannot see it."""


class LabelStudioUnexpected(LabelStudioUnreachable):
    """Label Studio answered 2xx with JSON this client cannot use (not an object, no ``id``…)."""


class LabelStudioAdmin(LabelStudioClient):
    """Read and change a project's ML backend connections and webhooks.

    Args:
        base_url: Label Studio's URL (a path prefix is kept).
        api_key: a personal access token (JWT refresh token) or a legacy token.
        timeout: seconds Label Studio may stay silent within a call; creating or updating a
            connection waits for Label Studio's own ``/health`` and ``/setup`` calls (1 s + 3 s, twice).
        deadline: seconds one call may take in all, however its reply trickles in (then
            LabelStudioUnreachable, and this client is closed: the command ends).
        transport: an httpx transport (tests).

    Every call is tried once (a create must not be repeated behind the caller's back): the
    command that uses this client is idempotent, re-running it is the retry.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 deadline: float = 120.0) -> None:
        super().__init__(base_url, api_key, timeout=timeout, transport=transport, attempts=1)
        self.deadline = deadline

    def project(self, project: int) -> dict[str, Any]:
        """``GET /api/projects/<id>``: ``{"id", "title", "label_config", "created_at", …}``.

        Raises:
            LabelStudioNotFound: no such project (or not visible to the token's user).
            LabelStudioRefused: the token is refused (401/403).
            LabelStudioUnreachable: network error, timeout or 5xx.
        """
        return self._object("GET", f"/api/projects/{project}", f"project {project}")

    def connections(self, project: int) -> list[dict[str, Any]]:
        """``GET /api/ml?project=<id>``: the project's connections, in id order."""
        return self._records("GET", "/api/ml", f"the connections of project {project}", params={"project": str(project)})

    def connection(self, connection: int) -> dict[str, Any]:
        """``GET /api/ml/<id>``: Label Studio calls the backend's ``/health`` and ``/setup`` with the
        stored url and credentials first, so ``state`` is ``CO`` only if both answered."""
        return self._object("GET", f"/api/ml/{connection}", f"connection {connection}")

    def create_connection(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/ml`` with `fields` (``project``, ``url``, ``auth_method``, …): the new connection.

        Raises:
            LabelStudioInvalid: Label Studio could not validate it (backend unreachable, /setup failed, …).
            LabelStudioBlockedUrl: the url is a loopback/private address Label Studio refuses.
        """
        return self._object("POST", "/api/ml", "creating the connection", json=fields)

    def update_connection(self, connection: int, fields: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/ml/<id>`` with `fields`; send url, project, auth fields and extra_params (see above)."""
        return self._object("PATCH", f"/api/ml/{connection}", f"updating connection {connection}", json=fields)

    def webhooks(self, project: int) -> list[dict[str, Any]]:
        """``GET /api/webhooks/?project=<id>``: the project's webhooks."""
        return self._records("GET", "/api/webhooks/", f"the webhooks of project {project}", params={"project": str(project)})

    def webhook(self, webhook: int) -> dict[str, Any]:
        """``GET /api/webhooks/<id>/``."""
        return self._object("GET", f"/api/webhooks/{webhook}/", f"webhook {webhook}")

    def create_webhook(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/webhooks/`` with `fields` (``project``, ``url``, ``headers``, …)."""
        return self._object("POST", "/api/webhooks/", "creating the webhook", json=fields)

    def update_webhook(self, webhook: int, fields: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/webhooks/<id>/``; send ``actions`` and ``send_for_all_actions`` back (see above)."""
        return self._object("PATCH", f"/api/webhooks/{webhook}/", f"updating webhook {webhook}", json=fields)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call within `deadline`: httpx bounds each read, not a reply that trickles in forever.
        The call runs in a daemon thread; past the deadline the client is closed, which ends it."""
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["reply"] = self._send_now(method, path, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                outcome["error"] = error

        worker = threading.Thread(target=call, name="label-studio-call", daemon=True)
        worker.start()
        worker.join(self.deadline)
        if worker.is_alive():
            self.close()
            raise LabelStudioUnreachable(f"Label Studio at {self.base_url} did not finish answering {method} {path} "
                                         f"within {self.deadline:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def _send_now(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return super()._send(method, path, **kwargs)
        except LabelStudioUnreachable as error:
            if isinstance(error.__cause__, httpx.TimeoutException):
                raise
            raise LabelStudioUnreachable(f"could not reach Label Studio at {self.base_url} ({type(error.__cause__).__name__}): "
                                         "check the URL (--label-studio-url or LABEL_STUDIO_URL) and that it runs") from error.__cause__

    def _object(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """The reply as one record: a JSON object with an integer ``id`` (``url`` as a string).
        Raises LabelStudioUnexpected for anything else."""
        found = _record(self._json(method, path, what, **kwargs))
        if found is None:
            raise LabelStudioUnexpected(f"Label Studio at {self.base_url} answered {what} with JSON that is not a record with an id")
        return found

    def _records(self, method: str, path: str, what: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The reply as a list of records (items that are not records are left out)."""
        found = self._json(method, path, what, **kwargs)
        if not isinstance(found, list):
            raise LabelStudioUnexpected(f"Label Studio at {self.base_url} answered {what} with JSON that is not a list")
        return [record for item in found if (record := _record(item)) is not None]

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self._call(method, path, retry_transport=False, **kwargs)
        try:
            self._check(response, what)
        except (LabelStudioRefused, LabelStudioUnreachable) as error:  # a reply may quote the request: hide its secrets
            raise type(error)(_masked(str(error), kwargs.get("json"))) from None
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise LabelStudioUnexpected(f"Label Studio at {self.base_url} answered {what} with something that is not JSON") from None

    def _check(self, response: httpx.Response, what: str, token_refresh: bool = False, body: bool = False) -> None:
        """Raise the error that says what to do for a reply of 300 or more (see the class errors)."""
        status = response.status_code
        if status < 300:
            return
        where = f"Label Studio at {self.base_url} answered {status} to {'the token refresh' if token_refresh else what}"
        detail = _detail(response) if "json" in response.headers.get("content-type", "") else ""
        if status >= 500:
            raise LabelStudioUnreachable(f"{where}{': ' + detail if detail else ''}")
        if status == 401:
            if LEGACY_DISABLED in detail:
                hint = ("legacy tokens are disabled in this organisation (the 1.23 default): use a personal access token "
                        "(Account & Settings → Personal Access Token), or let an owner enable them "
                        "(POST /api/jwt/settings {\"legacy_api_tokens_enabled\": true})")
            elif token_refresh or self.uses_personal_access_token:
                hint = ("the token is not a valid personal access token of this Label Studio "
                        "(Account & Settings → Personal Access Token)")
            else:
                hint = "the token is not a valid legacy token of this Label Studio (or it was reset)"
            raise LabelStudioRefused(f"{where}: {hint}")
        if status == 403 and BLOCKED_URL in detail:
            raise LabelStudioBlockedUrl(f"{where}: {detail}")
        if status == 403:
            raise LabelStudioRefused(f"{where}: the token's user may not do this ({detail or 'forbidden'})")
        if status == 404:
            raise LabelStudioNotFound(f"{where}: not found (check the id and that the token's user belongs to its organisation)")
        if status == 400:
            raise LabelStudioInvalid(f"{where}: {validation_messages(response)}")
        raise LabelStudioRefused(f"{where}{': ' + detail if detail else ''}")


def _record(item: Any) -> dict[str, Any] | None:
    """`item` if it is a JSON object with an integer ``id``, its ``url`` made a string; else None."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
        return None
    return item | {"url": str(item.get("url") or "")} if "url" in item else item


def _masked(text: str, sent: Any) -> str:
    """`text` with the password and header values of the request body `sent` replaced by ``<hidden>``."""
    if not isinstance(sent, dict):
        return text
    headers = sent.get("headers") if isinstance(sent.get("headers"), dict) else {}
    for secret in [sent.get("basic_auth_pass"), *headers.values()]:
        if isinstance(secret, str) and secret:
            text = text.replace(secret, "<hidden>")
    return text


def validation_messages(response: httpx.Response) -> str:
    """Label Studio 1.23.2's ``400 {"detail": "Validation error", "validation_errors": {field: [messages]}}``
    as one line: ``non_field_errors`` as they are, other fields as ``field: message``."""
    try:
        errors = response.json().get("validation_errors")
    except (ValueError, AttributeError, RecursionError):
        errors = None
    if not isinstance(errors, dict):
        return _detail(response)
    parts = []
    for field, messages in errors.items():
        for message in messages if isinstance(messages, list) else [messages]:
            text = " ".join(re.sub(r"<[^>]+>", "", str(message)).split())  # Label Studio puts an HTML link into some
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    return "; ".join(parts)[:1000]


def setup_project_ref(project: dict[str, Any]) -> str:
    """The ``project`` Label Studio sends to ``/setup``: ``"<id>.<created_at as a Unix timestamp>"``."""
    created = str(project.get("created_at") or "")
    try:
        stamp = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return str(project["id"])
    return f"{project['id']}.{stamp}"
