"""Call this backend as Label Studio 1.23.2 does, from the operator's machine, to check a
connection: ``GET /health``, ``POST /setup`` and ``POST /webhook`` (with the project webhook's
own headers), and ``GET /projects/<id>`` for what the backend knows of the project.

Each check returns a `Check`; none raises for an answer it does not like. Error texts quote the
backend's ``detail`` (never a credential).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx

# Label Studio 1.23.2 waits this long (ml/api_connector.py TIMEOUT_HEALTH, TIMEOUT_SETUP; settings.WEBHOOK_TIMEOUT).
LABEL_STUDIO_WAITS = {"/health": 1.0, "/setup": 3.0, "/webhook": 1.0}
# A webhook that changes nothing: no annotation named, so the annotation log is left as it is.
TEST_WEBHOOK = {"action": "ANNOTATIONS_DELETED", "annotations": []}


@dataclass(frozen=True)
class Check:
    """One check: `name` (e.g. ``"backend /setup"``), whether it passed, a one-line `detail`, and
    the `value` it found (the model_version of /setup, the status reply of /projects/<id>)."""

    name: str
    ok: bool
    detail: str
    value: Any = None


def basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic (UTF-8, as the backend decodes it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class BackendProbe:
    """Checks against the backend at `base_url` (path prefix kept), with its Basic credentials.

    Args:
        timeout: seconds per call (generous: an AWS Lambda cold start can take several seconds;
            a call slower than Label Studio waits is still reported, with a note).
    """

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 15.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = basic_authorization(user, password)
        self._http = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def health(self) -> Check:
        """``GET /health`` (public): ok on 200 ``{"status": "UP"}``."""
        name = "backend /health"
        reply = self._send(name, "GET", "/health", authorization=False)
        if isinstance(reply, Check):
            return reply
        response, seconds = reply
        body = _json(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("status") == "UP":
            return Check(name, True, "UP" + _slow("/health", seconds))
        return Check(name, False, _failure(response, body))

    def setup(self, project_ref: str, label_config: str, hostname: str, extra_params: Any) -> Check:
        """``POST /setup`` with Basic auth and the body Label Studio sends (``project`` as
        ``"<id>.<ts>"``, the config under ``schema``, the connection's ``extra_params``); ok when the
        reply holds a ``model_version`` (the `value`)."""
        body = {"project": project_ref, "schema": label_config, "hostname": hostname, "access_token": "", "extra_params": extra_params}
        name = "backend /setup with Basic auth"
        reply = self._send(name, "POST", "/setup", json=body)
        if isinstance(reply, Check):
            return reply
        response, seconds = reply
        answer = _json(response)
        version = answer.get("model_version") if isinstance(answer, dict) else None
        if response.status_code == 200 and isinstance(version, str):
            return Check(name, True, f"model_version {version}" + _slow("/setup", seconds), version)
        return Check(name, False, _failure(response, answer))

    def credentials(self, project: int) -> Check:
        """Whether the Basic credentials are accepted, without changing anything (``GET
        /projects/<id>``: 200 or 404 both mean accepted)."""
        name = "backend accepts the Basic credentials"
        reply = self._send(name, "GET", f"/projects/{project}")
        if isinstance(reply, Check):
            return reply
        response, _ = reply
        if response.status_code in (200, 404):
            return Check(name, True, f"GET /projects/{project}: {response.status_code}")
        return Check(name, False, _failure(response, _json(response)))

    def webhook(self, path: str, headers: dict[str, str], project: int) -> Check:
        """``POST <path>`` (``/webhook`` or ``/webhook/<secret>``) with `headers` exactly as the
        project webhook holds them (no Basic auth of ours) and a body that changes nothing
        (`TEST_WEBHOOK`); ok on a 2xx JSON reply."""
        sent = {key: value for key, value in headers.items() if key.lower() != "content-type"}
        name = "test webhook with the webhook's headers"
        reply = self._send(name, "POST", path, authorization=False, headers=sent, json={**TEST_WEBHOOK, "project": {"id": project}})
        if isinstance(reply, Check):
            return reply
        response, seconds = reply
        body = _json(response)
        if 200 <= response.status_code < 300 and body is not None:
            shown = ", ".join(f"{k}: {v}" for k, v in body.items() if k in ("status", "deleted")) if isinstance(body, dict) else ""
            return Check(name, True, f"{response.status_code} {shown}".rstrip() + _slow("/webhook", seconds))
        return Check(name, False, _failure(response, body, webhook=True))

    def status(self, project: int) -> Check:
        """``GET /projects/<id>``: what the backend knows of the project; ok on 200 with
        ``connected_at`` set (a /setup of this project reached it)."""
        name = f"backend knows project {project}"
        reply = self._send(name, "GET", f"/projects/{project}")
        if isinstance(reply, Check):
            return reply
        response, _ = reply
        body = _json(response)
        if response.status_code == 404:
            return Check(name, False, "GET /projects/{0}: 404, the backend has no record of project {0}: no /setup of it reached "
                         "this backend".format(project))
        if response.status_code != 200 or not isinstance(body, dict):
            return Check(name, False, _failure(response, body))
        serving = body.get("serving") if isinstance(body.get("serving"), dict) else {}
        pinned = serving.get("pinned") if isinstance(serving.get("pinned"), dict) else None
        log = body.get("annotation_log") if isinstance(body.get("annotation_log"), dict) else {}
        parts = [f"serving {serving.get('version')}" + (f" (pinned by {pinned.get('source')})" if pinned else "")]
        parts.append(f"annotation log {log.get('tasks', 0)} task(s)")
        parts.append(f"connected at {body.get('connected_at')}")
        return Check(name, bool(body.get("connected_at")), ", ".join(parts), body)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _send(self, name: str, method: str, path: str, authorization: bool = True, headers: dict[str, str] | None = None,
              **kwargs: Any) -> tuple[httpx.Response, float] | Check:
        """The reply and its duration, or a failed `Check` named `name` when there is none."""
        sent = dict(headers or {})
        if authorization:
            sent["Authorization"] = self._authorization
        started = time.monotonic()
        try:
            response = self._http.request(method, self.base_url + path, headers=sent, **kwargs)
        except httpx.TimeoutException:
            return Check(name, False, f"{self.base_url} did not answer {method} {_shown(path)} within {self._http.timeout.read:g} s")
        except httpx.HTTPError as error:
            return Check(name, False, f"cannot reach {self.base_url} ({type(error).__name__}: {_reason(error)})")
        return response, time.monotonic() - started


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _failure(response: httpx.Response, body: Any, webhook: bool = False) -> str:
    """One line for a reply that did not pass: status, the backend's detail, what to do."""
    detail = body.get("detail") if isinstance(body, dict) else None
    text = f"{response.status_code}" + (f": {str(detail)[:300]}" if detail else "" if body is not None else ": not a JSON reply")
    if response.status_code == 401:
        text += (" (the webhook's headers are not accepted)" if webhook else
                 " (use the backend's BASIC_AUTH_USER / BASIC_AUTH_PASS, or in AWS the credentials secret)")
    elif response.status_code in (301, 302, 303, 307, 308):
        text += (f" (a redirect to {response.headers.get('location')}: give the final URL; "
                 "Label Studio does not follow redirects of POSTs)")
    return text


def _slow(path: str, seconds: float) -> str:
    limit = LABEL_STUDIO_WAITS[path]
    return f" (took {seconds:.1f} s; Label Studio waits {limit:g} s: run again once the backend is warm)" if seconds > limit else ""


def _shown(path: str) -> str:
    """`path` without a webhook secret in it."""
    return "/webhook/…" if path.startswith("/webhook/") else path


def _reason(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return text.split("] ", 1)[-1][:200]
