"""Talk to Label Studio's API: read annotated tasks (export), page a project's tasks, push
predictions (import) and turn chosen predictions into annotations (auto-labelling).

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

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class TaskPage:
    """One page of a project's tasks.

    Attributes:
        total: how many tasks the project holds (Label Studio's ``total``), the same on every page.
        tasks: ``{"id": int, "data": dict, "prediction_versions": [str, ...]}`` in id order;
            ``prediction_versions`` holds the ``model_version`` of each prediction of the task.
            Pages read with ``annotations=True`` also give ``"predictions": [{"model_version": str,
            "score": float | None}, ...]`` (same order), ``"annotations": int`` (every annotation,
            cancelled ones included) and ``"drafts": int``.
    """

    total: int
    tasks: list[dict[str, Any]] = field(default_factory=list)


RETRY_STATUSES = frozenset({429, 500, 503})
UNKNOWN_TASK = re.compile(r"""\{'task': ('?)([^',}]*)\1.*contains invalid "task" field""")
CREATED_ANNOTATIONS = re.compile(r"^Created (\d+) annotations?$")
PAGE_FIELDS = "id,data,predictions"
PAGE_FIELDS_WITH_ANNOTATIONS = "id,data,predictions,annotations,drafts"


class LabelStudioUnknownTask(LabelStudioRefused):
    """Label Studio rejected a whole import because one task id is not in the project (e.g. the
    task was deleted after it was listed); nothing was stored. `task_id` is that id when known."""

    def __init__(self, message: str, task_id: int | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class LabelStudioClient:
    """A small client for the endpoints training and prediction runs need.

    Args:
        base_url: Label Studio's URL, e.g. ``http://localhost:8080`` or ``https://x.org/ls``.
        api_key: a personal access token (JWT) or a legacy token.
        timeout: seconds to wait for the export (Label Studio builds it while you wait).
        attempts: tries of one task page or import before giving up on 429/5xx/network errors.
        backoff: seconds before the first retry; doubled on each retry (with jitter), capped at
            ``max_backoff``. A ``Retry-After`` from Label Studio wins (capped at ``max_backoff``).
        sleep: the pause function (tests pass a fake one).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 300.0,
        transport: httpx.BaseTransport | None = None,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key.strip()
        self._access: str | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False, transport=transport)
        self.attempts, self.backoff, self.max_backoff, self._sleep = max(1, attempts), backoff, max_backoff, sleep

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

    def task_page(self, project: str, page: int, page_size: int, annotations: bool = False) -> TaskPage:
        """Page `page` (from 1) of `project`'s tasks, `page_size` per page, in id order; with
        `annotations`, each task also says how many annotations and drafts it holds and the score
        of each prediction (``include=…,annotations,drafts``: annotations come as ``[{"id"}]``, cancelled
        ones included; a page of 1000 takes ~3 s instead of ~1.4 s; tests/ls_wire_runs/README.md (e)).

        Label Studio 1.23.2 answers ``GET /api/tasks?project=N&page=P&page_size=S&fields=all&include=id,data,predictions`` with
        ``{"total": <tasks in project>, "total_annotations", "total_predictions", "tasks": [...]}``,
        tasks in ascending id order, no upper limit on ``page_size``. Only ``fields=all`` puts the
        ``predictions`` (full objects, each with its ``model_version``) on each task; without it
        ``predictions_model_versions`` stays ``""`` even for tasks that hold predictions. A page past
        the last (or page 0) is ``404 {"detail": "Invalid page."}``; ``include`` keeps only those keys
        (a page of 1000 took 1.4 s instead of 6 s on a 5,000-task project); an unknown project is
        ``404 {"detail": "No Project matches the given query."}`` (tests/ls_wire_runs/README.md).
        ``GET /api/projects/N/tasks`` is not used: it is a bare list, newest first, without a total.

        Raises:
            LabelStudioUnreachable: network error or 5xx/429 after `attempts` tries, or a reply
                that is not a task page.
            LabelStudioRefused: 401/403 after a token refresh, 404 (unknown project), another 4xx.
        """
        if page < 1 or page_size < 1:
            raise ValueError("page and page_size start at 1")
        path = "/api/tasks"
        include = PAGE_FIELDS_WITH_ANNOTATIONS if annotations else PAGE_FIELDS
        params = {"project": str(project), "page": str(page), "page_size": str(page_size), "fields": "all", "include": include}
        response = self._call("GET", path, params=params, retry_transport=True)
        if response.status_code == 404 and page > 1 and _detail(response) == "Invalid page.":
            return TaskPage(total=self.task_page(project, 1, 1).total, tasks=[])  # past the last page
        self._check(response, f"GET {path}?project={project}&page={page}", body=True)
        try:
            body = response.json()
            total, tasks = body["total"], body["tasks"]
            if not isinstance(total, int) or not isinstance(tasks, list):
                raise TypeError
            return TaskPage(total=total, tasks=[_task_summary(task, annotations) for task in tasks])
        except (ValueError, KeyError, TypeError) as error:
            raise LabelStudioUnreachable(
                f"Label Studio at {self.base_url} answered GET {path}?project={project} with something that is not a task page"
            ) from error

    def import_predictions(self, project: str, predictions: list[dict[str, Any]]) -> int:
        """Store `predictions` in `project`; returns how many Label Studio created.

        Each item: ``{"task": <task id>, "result": [...], "score": float, "model_version": "..."}``.
        Label Studio 1.23.2 answers ``201 {"created": n}``. It skips invalid items silently (a
        ``from_name`` or choice the config lacks, a ``result`` that is not a list, a score that is
        not a number), so ``created`` can be less than sent; an empty ``result`` is stored. One
        task id that is not in the project (or a string id) rejects the whole request with
        ``400 {"detail": "Validation error", "validation_errors": {"non_field_errors": [...]}}``
        and stores nothing. It never deduplicates: sending a prediction twice stores it twice.

        Retries (up to `attempts` tries, exponential backoff, ``Retry-After`` honoured) only
        when Label Studio most likely stored nothing: 429, 500, 503 and connection failures
        before the request was sent. (1.23.2 validates every task id before it stores anything;
        a 500 after its bulk insert, while it recounts the project's task counters, is possible
        but was not seen.) A timeout or a dropped connection after sending, or a 502/504
        from a proxy, may have stored the predictions, so it is raised at once: the caller re-reads
        the tasks (which show the predictions' model_version) before sending them again.

        Raises:
            LabelStudioUnreachable: network error or 5xx/429 after `attempts` tries.
            LabelStudioRefused: 400 (e.g. an unknown task id: nothing is stored), 401/403, 404.
        """
        if not predictions:
            return 0
        path = f"/api/projects/{project}/import/predictions"
        response = self._call("POST", path, json=predictions, retry_transport=False)
        if response.status_code == 400:
            detail = _detail(response)
            match = UNKNOWN_TASK.search(detail)
            if match:
                raise LabelStudioUnknownTask(
                    f"Label Studio at {self.base_url} answered 400 to POST {path}: task {match.group(2)} is not in "
                    f"project {project} (deleted since it was listed?); nothing was stored",
                    task_id=int(match.group(2)) if not match.group(1) and match.group(2).isdigit() else None,
                )
        self._check(response, f"POST {path}", body=True)
        try:
            created = response.json().get("created")
        except (ValueError, AttributeError):
            created = None
        if not isinstance(created, int):
            raise LabelStudioUnreachable(f"Label Studio at {self.base_url} answered POST {path} without a created count")
        log.info("project %s: %d of %d predictions created in Label Studio", project, created, len(predictions))
        return created

    def annotations_from_predictions(self, project: str, task_ids: list[int], model_version: str) -> int:
        """Turn the predictions of `model_version` on the tasks `task_ids` into annotations; returns
        how many Label Studio created.

        This is Label Studio's own Data Manager action "Create Annotations From Predictions":
        ``POST /api/dm/actions?id=predictions_to_annotations&project=N`` with
        ``{"selectedItems": {"all": false, "included": [ids]}, "model_version": v}`` → ``200
        {"detail": "Created n annotations"}``. Label Studio 1.23.2 copies each such prediction
        that has no annotation made from it yet into an annotation with the same result,
        ``parent_prediction`` = the prediction's id and ``completed_by`` = the token's user
        (``last_action`` stays null in the open-source build); a task holding two predictions of
        the version gets two annotations; it does **not** look at the task's other annotations
        (the caller chooses the tasks). The same call again creates nothing, so retrying it is safe.
        About 1 s for 1000 tasks, where one ``POST /api/tasks/<id>/annotations/`` per task takes
        0.12–0.15 s each (tests/ls_wire_runs/README.md (e)).

        An empty ``included`` list means *every task of the project* to Label Studio, so an empty
        `task_ids` sends nothing and returns 0.

        Raises:
            ValueError: a task id that is not an int, or an empty `model_version`.
            LabelStudioUnreachable: network error or 5xx/429 after `attempts` tries, or a reply
                without the created count.
            LabelStudioRefused: 401/403 (the token's user may not change tasks), 404 (unknown project), another 4xx.
        """
        if not task_ids:
            return 0
        if not model_version or any(type(task) is not int for task in task_ids):
            raise ValueError("annotations_from_predictions needs a model_version and int task ids")
        path = "/api/dm/actions"
        params = {"id": "predictions_to_annotations", "project": str(project)}
        body = {"selectedItems": {"all": False, "included": list(task_ids)}, "model_version": model_version}
        response = self._call("POST", path, params=params, json=body, retry_transport=True)
        self._check(response, f"POST {path}?id=predictions_to_annotations&project={project}", body=True)
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        match = CREATED_ANNOTATIONS.match(detail) if isinstance(detail, str) else None
        if match is None:
            raise LabelStudioUnreachable(
                f"Label Studio at {self.base_url} answered POST {path}?id=predictions_to_annotations without "
                f"'Created n annotations' ({str(detail)[:100]!r})"
            )
        created = int(match.group(1))
        log.info("project %s: %d annotations created from %d tasks' predictions of %s", project, created, len(task_ids), model_version)
        return created

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _call(self, method: str, path: str, retry_transport: bool, **kwargs: Any) -> httpx.Response:
        """One API call with token refresh on 401 and bounded retries (see import_predictions)."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(method, path, headers={"Authorization": self._authorization()}, **kwargs)
            except LabelStudioUnreachable as error:
                cause = error.__cause__
                safe = isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if attempt >= self.attempts or not (safe or retry_transport):
                    raise
                self._pause(attempt, None, f"{method} {path}: {type(cause).__name__}")
                continue
            if response.status_code == 401 and self.uses_personal_access_token and not refreshed:
                self._access, refreshed = None, True  # expired access token: refresh once and retry
                attempt -= 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.attempts:
                self._pause(attempt, response.headers.get("Retry-After"), f"{method} {path}: {response.status_code}")
                continue
            return response

    def _pause(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        wait = _retry_after_seconds(retry_after)
        if wait is not None:
            delay = min(self.max_backoff, max(wait, 0.0))
        log.warning("Label Studio at %s: %s; retry %d of %d in %.1f s", self.base_url, why, attempt, self.attempts - 1, delay)
        self._sleep(delay)

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

    def _check(self, response: httpx.Response, what: str, token_refresh: bool = False, body: bool = False) -> None:
        status = response.status_code
        if status < 300:
            return
        where = f"Label Studio at {self.base_url} answered {status} to {what}"
        if body and 400 <= status < 500 and status not in (401, 403):
            where += f": {_detail(response)}"
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


def _task_summary(task: dict[str, Any], annotations: bool = False) -> dict[str, Any]:
    """``{"id", "data", "prediction_versions"}`` of a task of ``GET /api/tasks?fields=all``; with
    `annotations` also ``predictions`` (version and score), ``annotations`` and ``drafts`` (counts)."""
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    summary = {
        "id": int(task["id"]),
        "data": task.get("data") if isinstance(task.get("data"), dict) else {},
        "prediction_versions": [str(p.get("model_version")) for p in predictions],
    }
    if annotations:
        summary["predictions"] = [{"model_version": str(p.get("model_version")), "score": _number(p.get("score"))} for p in predictions]
        summary["annotations"] = len(task.get("annotations") or [])
        summary["drafts"] = len(task.get("drafts") or [])
    return summary


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _detail(response: httpx.Response) -> str:
    """Label Studio's error text, short (it may quote the request)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return "(not a JSON reply)"
    if isinstance(body, dict):
        errors = body.get("validation_errors")
        if isinstance(errors, dict) and isinstance(errors.get("non_field_errors"), list):
            return "; ".join(str(e) for e in errors["non_field_errors"])[:500]
        for key in ("validation_errors", "detail"):
            if body.get(key):
                return str(body[key])[:500]
    return str(body)[:500]
