"""Read a project's annotated tasks back from Label Studio (its export API).

Rules from Label Studio 1.23 (shared/ls_contract.md):
- ``GET /api/projects/<id>/export?exportType=JSON`` returns every task with at least one
  annotation (skips included), with full annotation objects.
- A personal access token is a JWT refresh token: ``POST /api/token/refresh/ {"refresh": PAT}``
  gives ``{"access": …}``, sent as ``Authorization: Bearer <access>``; access tokens are
  short-lived, so a 401 means refresh once and retry. A legacy token is sent as
  ``Authorization: Token <key>`` (disabled by default in new 1.23 organisations).
- A base URL with a path prefix (``https://host/ls``) keeps its prefix.

No token ever appears in an error message or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from functions.errors import BackendError

log = logging.getLogger(__name__)


class LabelStudioUnreachable(BackendError):
    """Label Studio could not be reached or failed (network error, timeout, 5xx): fall back."""

    status_code = 502


class LabelStudioRefused(BackendError):
    """Label Studio refused the credentials or the request (401/403/404…): the user must act."""

    status_code = 502


class LabelStudioClient:
    """A small client for the two endpoints training needs.

    Args:
        base_url: Label Studio's URL, e.g. ``http://localhost:8080`` or ``https://x.org/ls``.
        api_key: a personal access token (JWT) or a legacy token.
        timeout: seconds to wait for the export (Label Studio builds it while you wait).
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 300.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key.strip()
        self._access: str | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False, transport=transport)

    @property
    def uses_personal_access_token(self) -> bool:
        """A JWT (three dot-separated parts): exchanged at /api/token/refresh/."""
        return self._key.count(".") == 2 and self._key.startswith("eyJ")

    def export_tasks(self, project: str) -> list[dict[str, Any]]:
        """Every annotated task of `project`, in Label Studio's JSON export format.

        Raises:
            LabelStudioUnreachable: network error, timeout or 5xx (training may fall back).
            LabelStudioRefused: 401/403 after a token refresh, 404, or another 4xx.
        """
        path = f"/api/projects/{project}/export"
        response = self._get(path, params={"exportType": "JSON"})
        if response.status_code == 401 and self.uses_personal_access_token:
            self._access = None  # expired access token: refresh once and retry
            response = self._get(path, params={"exportType": "JSON"})
        self._check(response, f"GET {path}")
        try:
            tasks = response.json()
        except ValueError as error:
            raise LabelStudioUnreachable(f"Label Studio at {self.base_url} sent an export that is not JSON") from error
        if not isinstance(tasks, list):
            raise LabelStudioUnreachable(f"Label Studio at {self.base_url} sent an export that is not a list of tasks")
        log.info("project %s: %d tasks exported from Label Studio at %s", project, len(tasks), self.base_url)
        return [task for task in tasks if isinstance(task, dict)]

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        return self._send("GET", path, params=params, headers={"Authorization": self._authorization()})

    def _authorization(self) -> str:
        if not self.uses_personal_access_token:
            return f"Token {self._key}"
        if self._access is None:
            path = "/api/token/refresh/"
            response = self._send("POST", path, json={"refresh": self._key})
            self._check(response, f"POST {path}", token_refresh=True)
            try:
                access = response.json().get("access")
            except (ValueError, AttributeError):
                access = None
            if not isinstance(access, str):
                raise LabelStudioRefused(f"Label Studio at {self.base_url} answered POST {path} without an access token")
            self._access = access
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base_url + path
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as error:
            raise LabelStudioUnreachable(f"Label Studio at {self.base_url} did not answer {method} {path} in time") from error
        except httpx.HTTPError as error:
            raise LabelStudioUnreachable(
                f"could not reach Label Studio at {self.base_url} ({type(error).__name__}); check LABEL_STUDIO_URL "
                "and that the training process can reach that address"
            ) from error

    def _check(self, response: httpx.Response, what: str, token_refresh: bool = False) -> None:
        status = response.status_code
        if status < 300:
            return
        where = f"Label Studio at {self.base_url} answered {status} to {what}"
        if status >= 500:
            raise LabelStudioUnreachable(where)
        if status in (401, 403):
            if token_refresh or self.uses_personal_access_token:
                hint = "LABEL_STUDIO_API_KEY is not a valid personal access token of a user who can see this project (Account & Settings → Personal Access Token)"
            else:
                hint = "LABEL_STUDIO_API_KEY looks like a legacy token, which new Label Studio 1.23 organisations disable; use a personal access token"
            raise LabelStudioRefused(f"{where}: {hint}")
        if status == 404:
            raise LabelStudioRefused(f"{where}: check that LABEL_STUDIO_URL (with any path prefix) points at the Label Studio that owns this project")
        raise LabelStudioRefused(f"{where}")
