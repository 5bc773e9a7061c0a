"""A Label Studio stand-in for tests: a real HTTP server on 127.0.0.1 that answers the token
refresh, export, task listing, prediction import and annotation endpoints of Label Studio 1.23.

Behaviours: personal access token (JWT refresh → short-lived access tokens, which `expire()`
invalidates so the next call gets 401), legacy tokens (accepted or refused), a path prefix,
and failure modes: "ok", "error" (500), "slow" (answers after `delay` seconds), "down" (the
server is stopped: connection refused). "slow" delays the export, listing and import calls.

Task listing and import follow what a real Label Studio 1.23.2 answered (captures in
tests/ls_wire_runs/, how they were made in tests/ls_wire_runs/README.md):

- ``GET /api/tasks?project=N&page=P&page_size=S[&fields=all][&include=id,data,predictions]`` →
  ``{"total_annotations", "total_predictions", "total", "tasks": [...]}``, ascending id, default
  page size 100, no maximum. ``predictions`` (full objects with ``model_version``),
  ``annotations`` and ``drafts`` only with ``fields=all``; without it ``predictions_model_versions``
  is ``""``; ``include`` keeps only the listed keys of each task. A page past the last, or page 0: ``404 {"detail": "Invalid page."}``; an unknown
  project: ``404 {"detail": "No Project matches the given query."}``.
- ``POST /api/projects/N/import/predictions`` with a list → ``201 {"created": n}``. One task id
  that is not an int of the project rejects the whole request with 400 (nothing stored);
  invalid items (result not a list, a from_name/choice the config lacks, a score that is not a
  number) are skipped silently; an empty result is stored; nothing is deduplicated. A body that is
  not a list: 500. An unknown project: 404 with an HTML page.

Annotations follow what it answered in tests/ls_wire_runs/ 19–48 (README (e)):

- tasks may hold ``annotations`` (cancelled ones too) and ``drafts``. The listing shows them with
  ``fields=all``: full objects, but ``include=…,annotations`` gives ``[{"id"}]`` only; each task has
  ``total_annotations`` (not cancelled) and ``cancelled_annotations``.
- ``POST /api/tasks/<id>/annotations[/]`` → 201 with the annotation (completed_by = the token's
  user 1 unless given; an unknown user, prediction, or ``last_action`` → 400; a result that is not
  a list → 400; ``unique_id``: not a UUID → 500, a second time → 409; an unknown task → 404).
  The result is not validated against the label config.
- ``POST /api/dm/actions?id=predictions_to_annotations&project=N {"selectedItems": {"all": false,
  "included": [...]}, "model_version": v}`` → ``200 {"detail": "Created n annotations"}``: one
  annotation per prediction of `v` on the selected tasks that has no child annotation yet
  (``parent_prediction`` set, ``last_action`` null), whatever other annotations the task holds.
  An empty ``included`` list, or no ``selectedItems``, selects every task, as in Label Studio.

The project detail (``GET /api/projects/<id>``), ML backend connections (``/api/ml``) and
webhooks (``/api/webhooks/``) are `tests.ls_standin_ml.MLBackends` (``standin.ml``): they call
the backend's /health and /setup like Label Studio 1.23.2 (tests/ls_wire_runs/ 60–142, README (f)).

Fault injection: `inject("import", 429, times=2, retry_after="1")` makes the next two import
calls answer 429 (also "tasks" for the listing, "actions" for /api/dm/actions; any status).
`fail_after_actions = n`: the next n actions store their annotations, then answer 500 "database is
locked" (what Label Studio 1.23.2 on SQLite did to concurrent actions while recounting tasks).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.ls_standin_ml import NOT_FOUND_HTML, MLBackends, admin_path, auth_error
from tests.ls_standin_ml import error_body as _error

PERSONAL_ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"

WORDS = "market vote team storm chip election league rain server budget match wind cloud".split()
USERS = {1: ("", "", "admin@example.com"), 2: ("Auto-label", "(model)", "auto-label@example.com")}  # the token's user is 1
LAST_ACTIONS = ("prediction", "propagated_annotation", "imported", "submitted", "updated", "skipped", "accepted", "rejected",
                "fixed_and_accepted", "deleted_review")
TASK_ANNOTATIONS = re.compile(r"^/api/tasks/(\d+)/annotations/?$")


def make_tasks(count: int, start_id: int = 1, empty_every: int = 0) -> list[dict[str, Any]]:
    """`count` tasks ``{"id", "data": {"text"}}`` with ids from `start_id`; every `empty_every`-th
    task has an empty text (0: none)."""
    tasks = []
    for n in range(count):
        text = "" if empty_every and (n + 1) % empty_every == 0 else f"{WORDS[n % 13]} {WORDS[(n * 7) % 13]} report number {n}"
        tasks.append({"id": start_id + n, "data": {"text": text}})
    return tasks


def choices_of(label_config: str) -> dict[str, set[str]]:
    """The Choices controls of a label config: name -> allowed values (aliases included)."""
    controls: dict[str, set[str]] = {}
    for element in ET.fromstring(label_config).iter("Choices"):
        values = set()
        for choice in element.iter("Choice"):
            values.update(v for v in (choice.get("value"), choice.get("alias")) if v)
        controls[element.get("name", "")] = values
    return controls


class _Project:
    def __init__(self, tasks: list[dict[str, Any]], label_config: str | None) -> None:
        self.tasks = sorted(({"id": int(t["id"]), "data": t.get("data", {})} for t in tasks), key=lambda t: t["id"])
        self.ids = {t["id"] for t in self.tasks}
        self.predictions: dict[int, list[dict[str, Any]]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.drafts: dict[int, list[dict[str, Any]]] = {}
        self.controls = choices_of(label_config) if label_config else None
        for task in tasks:
            for prediction in task.get("predictions") or []:
                self.predictions.setdefault(int(task["id"]), []).append(dict(prediction))
            for annotation in task.get("annotations") or []:
                self.annotations.setdefault(int(task["id"]), []).append(dict(annotation))
            for draft in task.get("drafts") or []:
                self.drafts.setdefault(int(task["id"]), []).append(dict(draft))


class LabelStudioStandIn:
    def __init__(
        self,
        exports: dict[int, Path | list[dict[str, Any]]] | None = None,
        prefix: str = "",
        legacy_tokens: bool = True,
        tasks: dict[int, list[dict[str, Any]]] | None = None,
        label_configs: dict[int, str] | None = None,
    ) -> None:
        """`tasks`: project id -> tasks (``{"id", "data"}``, optionally ``predictions`` with a
        ``model_version``). `label_configs`: project id -> label config, to skip predictions whose
        from_name or choice it lacks, as Label Studio does (without one any Choices item passes)."""
        self.exports, self.prefix, self.legacy_tokens = exports or {}, prefix.rstrip("/"), legacy_tokens
        self.mode, self.delay = "ok", 0.0
        self.requests: list[dict[str, Any]] = []
        self.projects = {int(p): _Project(t, (label_configs or {}).get(int(p))) for p, t in (tasks or {}).items()}
        self._faults: dict[str, list[tuple[int, str | None]]] = {"import": [], "tasks": [], "actions": []}
        self.fail_after_actions = 0  # the next N actions store their annotations, then answer 500 "database is locked"
        self._lock = threading.Lock()
        self._prediction_ids = itertools.count(1)
        self._annotation_ids = itertools.count(1)
        self._unique_ids: set[str] = set()
        for kind in ("predictions", "annotations"):  # objects given without an id get one; new ids follow the given ones
            given = [x for project in self.projects.values() for stored in getattr(project, kind).values() for x in stored]
            ids = itertools.count(max((int(x["id"]) for x in given if "id" in x), default=0) + 1)
            for item in given:
                item.setdefault("id", next(ids))
            setattr(self, "_prediction_ids" if kind == "predictions" else "_annotation_ids", ids)
        self._access: set[str] = set()
        self.label_configs = {int(p): c for p, c in (label_configs or {}).items()}
        self.ml = MLBackends(self)  # project detail, ML backend connections, webhooks (tests/ls_standin_ml.py)
        self._issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
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

    # -- projects, predictions, faults -------------------------------------------------------

    def inject(self, endpoint: str, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` calls of `endpoint` ("import", "tasks" or "actions") answer `status`."""
        with self._lock:
            self._faults[endpoint].extend([(status, retry_after)] * times)

    def delete_task(self, project: int, task_id: int) -> None:
        """Remove a task (as a user deleting it in Label Studio)."""
        with self._lock:
            p = self.projects[project]
            p.tasks = [t for t in p.tasks if t["id"] != task_id]
            p.ids.discard(task_id)
            p.predictions.pop(task_id, None)
            p.annotations.pop(task_id, None)
            p.drafts.pop(task_id, None)

    def predictions(self, project: int) -> dict[int, list[dict[str, Any]]]:
        """Task id -> its predictions (``{"id", "task", "result", "score", "model_version"}``)."""
        with self._lock:
            return {task: list(items) for task, items in self.projects[project].predictions.items()}

    def prediction_count(self, project: int, model_version: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for items in self.projects[project].predictions.values()
                for p in items
                if model_version is None or p.get("model_version") == model_version
            )

    def duplicates(self, project: int) -> dict[tuple[int, str], int]:
        """(task, model_version) pairs stored more than once, with their count."""
        with self._lock:
            counts = Counter((task, p.get("model_version")) for task, items in self.projects[project].predictions.items() for p in items)
        return {key: n for key, n in counts.items() if n > 1}

    def annotate(self, project: int, task_id: int, result: list[dict[str, Any]] | None = None, was_cancelled: bool = False,
                 user: int = 1) -> dict[str, Any]:
        """Store an annotation as a person would (``was_cancelled``: a skip); returns it."""
        with self._lock:
            p = self.projects[project]
            return self._add_annotation(p, project, task_id, {"result": result or [], "was_cancelled": was_cancelled, "completed_by": user})

    def add_draft(self, project: int, task_id: int, result: list[dict[str, Any]] | None = None) -> None:
        """A person's unsaved draft on the task."""
        with self._lock:
            drafts = self.projects[project].drafts.setdefault(task_id, [])
            drafts.append({"id": len(drafts) + 1, "user": USERS[1][2], "result": result or [], "lead_time": 1.0, "task": task_id,
                           "annotation": None, "was_postponed": False})

    def annotations(self, project: int) -> dict[int, list[dict[str, Any]]]:
        """Task id -> its annotations (full objects, cancelled ones included)."""
        with self._lock:
            return {task: [dict(a) for a in items] for task, items in self.projects[project].annotations.items() if items}

    def tasks_without(self, project: int, model_version: str) -> list[int]:
        """Ids of the tasks that hold no prediction of `model_version`."""
        with self._lock:
            p = self.projects[project]
            return [t["id"] for t in p.tasks if not any(x.get("model_version") == model_version for x in p.predictions.get(t["id"], ()))]

    # -- the server ----------------------------------------------------------------------------

    def _fault(self, endpoint: str) -> tuple[int, str | None] | None:
        with self._lock:
            return self._faults[endpoint].pop(0) if self._faults[endpoint] else None

    def _allowed(self, auth: str) -> bool:
        scheme, _, token = auth.partition(" ")
        return (scheme == "Bearer" and token in self._access) or (scheme == "Token" and token == LEGACY_TOKEN and self.legacy_tokens)

    def _task_page(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        def number(name: str, default: int) -> int | None:
            value = query.get(name, [str(default)])[0]
            return int(value) if value.isdigit() else None

        project_id = number("project", 0)
        if project_id is None:
            return 400, _error(400, "Validation error", {"project": f'Incorrect value in key "project" = "{query["project"][0]}". It should be digit string.'})
        if not project_id:
            return 404, {"detail": "Neither project nor view id specified"}
        project = self.projects.get(project_id)
        if project is None:
            return 404, _error(404, "No Project matches the given query.")
        page, size = number("page", 1), number("page_size", 100)
        all_fields = query.get("fields", [""])[0] == "all"
        include = set(query["include"][0].split(",")) if query.get("include") else None
        with self._lock:
            total = len(project.tasks)
            if page is None or size is None or page < 1 or (page - 1) * max(size, 1) >= max(total, 1):
                return 404, _error(404, "Invalid page.")
            size = size or 100
            chunk = project.tasks[(page - 1) * size : page * size]
            total_predictions = sum(len(v) for v in project.predictions.values())
            tasks = []
            for task in chunk:
                predictions = project.predictions.get(task["id"], [])
                annotations = project.annotations.get(task["id"], [])
                cancelled = sum(1 for a in annotations if a.get("was_cancelled"))
                item: dict[str, Any] = {"id": task["id"]}
                if all_fields:
                    shown = [{"id": a["id"]} for a in annotations] if include is not None else [dict(a) for a in annotations]
                    item.update(predictions=[dict(p) for p in predictions], annotations=shown,
                                drafts=[dict(d) for d in project.drafts.get(task["id"], [])])
                item.update(
                    inner_id=task["id"], total_annotations=len(annotations) - cancelled, cancelled_annotations=cancelled,
                    total_predictions=len(predictions), predictions_model_versions="", data=task["data"], meta={},
                    is_labeled=len(annotations) > cancelled, overlap=1, project=project_id,
                )
                tasks.append(item if include is None else {k: v for k, v in item.items() if k in include})
            total_annotations = sum(1 for items in project.annotations.values() for a in items if not a.get("was_cancelled"))
        return 200, {"total_annotations": total_annotations, "total_predictions": total_predictions, "total": total, "tasks": tasks}

    def _add_annotation(self, project: _Project, project_id: int, task_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Store an annotation (the lock is held); the object Label Studio 1.23.2 answers with."""
        first, last, email = USERS[int(body.get("completed_by") or 1)]
        annotation = {
            "id": next(self._annotation_ids), "result": body.get("result"),
            "created_username": f"{first}{' ' + last if last else ''} {email}, {int(body.get('completed_by') or 1)}",
            "created_ago": "0\u00a0minutes", "completed_by": int(body.get("completed_by") or 1),
            "was_cancelled": bool(body.get("was_cancelled", False)), "ground_truth": bool(body.get("ground_truth", False)),
            "created_at": "2026-12-03T10:34:36.207074Z", "updated_at": "2026-12-03T10:34:36.207201Z", "draft_created_at": None,
            "lead_time": body.get("lead_time"), "import_id": None, "last_action": body.get("last_action"), "bulk_created": False,
            "task": task_id, "project": project_id, "updated_by": 1, "parent_prediction": body.get("parent_prediction"),
            "parent_annotation": None, "last_created_by": None,
        }
        project.annotations.setdefault(task_id, []).append(annotation)
        return annotation

    def _create_annotation(self, task_id: int, body: bytes) -> tuple[int, Any]:
        """``POST /api/tasks/<id>/annotations/`` as Label Studio 1.23.2 answered it (captures 19–34)."""
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return 400, _error(400, "JSON parse error")
        with self._lock:
            found = [(pid, p) for pid, p in self.projects.items() if task_id in p.ids]
            if not found or not isinstance(data, dict):
                return 404, _error(404, "No Task matches the given query.")
            project_id, project = found[0]
            errors: dict[str, list[str]] = {}
            if "result" in data and not isinstance(data["result"], list):
                errors["result"] = ['annotation "result" field in annotation must be list']
            if data.get("last_action") is not None and data["last_action"] not in LAST_ACTIONS:
                errors["last_action"] = [f'"{data["last_action"]}" is not a valid choice.']
            prediction_ids = {x["id"] for p in self.projects.values() for items in p.predictions.values() for x in items}
            if data.get("parent_prediction") is not None and data["parent_prediction"] not in prediction_ids:
                errors["parent_prediction"] = [f'Invalid pk "{data["parent_prediction"]}" - object does not exist.']
            if data.get("completed_by") is not None and data["completed_by"] not in USERS:
                errors["completed_by"] = [f'Invalid pk "{data["completed_by"]}" - object does not exist.']
            if errors:
                return 400, _error(400, "Validation error", errors)
            unique_id = data.get("unique_id")
            if unique_id is not None:
                try:
                    unique_id = str(uuid.UUID(str(unique_id)))
                except ValueError:
                    return 500, _error(500, f"['\u201c{data['unique_id']}\u201d is not a valid UUID.']")
                if unique_id in self._unique_ids:
                    return 409, _error(409, "Annotation with this unique id already exists")
                self._unique_ids.add(unique_id)
            return 201, self._add_annotation(project, project_id, task_id, data)

    def _action(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        """``POST /api/dm/actions?id=predictions_to_annotations&project=N`` (captures 39–48)."""
        action = query.get("id", [""])[0]
        project_id = query.get("project", ["0"])[0]
        project = self.projects.get(int(project_id)) if project_id.isdigit() else None
        if project is None:
            return 404, _error(404, "No Project matches the given query.")
        if action != "predictions_to_annotations":
            return 500, _error(500, f"Can't find '{action}' in registered actions")
        data = json.loads(body or b"{}")
        selected = data.get("selectedItems", {"all": True, "excluded": []})
        version = data.get("model_version")
        with self._lock:
            if selected.get("all") or not selected.get("included"):  # Label Studio: an empty selection is everything
                ids = [t["id"] for t in project.tasks if t["id"] not in set(selected.get("excluded") or ())]
            else:
                ids = [t for t in selected["included"] if t in project.ids]
            converted = {a.get("parent_prediction") for items in project.annotations.values() for a in items}
            created = 0
            for task_id in ids:
                for prediction in project.predictions.get(task_id, []):
                    if prediction["id"] in converted:
                        continue
                    if version is not None and prediction.get("model_version") not in (version if isinstance(version, list) else [version]):
                        continue
                    self._add_annotation(project, int(project_id), task_id, {"result": prediction["result"], "parent_prediction": prediction["id"]})
                    created += 1
        return 200, {"detail": f"Created {created} annotations"}

    def _import(self, project_id: int, body: bytes) -> tuple[int, Any]:
        project = self.projects.get(project_id)
        if project is None:
            return 404, NOT_FOUND_HTML
        try:
            items = json.loads(body or b"null")
        except ValueError:
            return 400, _error(400, "JSON parse error")
        if not isinstance(items, list):
            return 500, _error(500, "'str' object has no attribute 'get'")
        with self._lock:
            for item in items:
                task = item.get("task") if isinstance(item, dict) else None
                if type(task) is not int or task not in project.ids:
                    message = f'{item} contains invalid "task" field: corresponding task ID couldn\'t be retrieved from project stand-in (id={project_id}) tasks'
                    return 400, _error(400, "Validation error", {"non_field_errors": [message]})
            created = 0
            for item in items:
                if not _valid(item, project.controls):
                    continue
                prediction = {
                    "id": next(self._prediction_ids), "task": item["task"], "project": project_id, "result": item["result"],
                    "score": item.get("score"), "model_version": item.get("model_version", "undefined"),
                }
                project.predictions.setdefault(item["task"], []).append(prediction)
                created += 1
        return 201, {"created": created}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:
                pass

            def _refused(self, auth: str, fault_kind: str | None) -> bool:
                """Answer for the stand-in's modes (slow, error), a bad token or an injected
                `fault_kind` fault, as a POST of Label Studio would; True when it answered."""
                if standin.mode == "slow":
                    time.sleep(standin.delay)
                if standin.mode == "error":
                    self._reply(500, _error(500, "Internal Server Error"))
                    return True
                if not standin._allowed(auth):
                    self._reply(401, _error(401, "Authentication credentials were not provided."))
                    return True
                fault = standin._fault(fault_kind) if fault_kind else None
                if fault:
                    self._reply(fault[0], _error(fault[0], "injected fault"), retry_after=fault[1])
                    return True
                return False

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                path = self.path.partition("?")[0]
                projects = f"{standin.prefix}/api/projects/"
                if path.startswith(projects) and path.endswith("/import/predictions"):
                    standin.requests.append({"method": "POST", "path": self.path, "authorization": auth, "bytes": len(body)})
                    if self._refused(auth, "import"):
                        return None
                    project = path[len(projects) : -len("/import/predictions")]
                    if not project.isdigit():
                        return self._reply(404, NOT_FOUND_HTML)
                    return self._reply(*standin._import(int(project), body))
                local = path[len(standin.prefix):] if path.startswith(standin.prefix) else path
                if TASK_ANNOTATIONS.match(local) or local in ("/api/dm/actions", "/api/dm/actions/"):
                    standin.requests.append({"method": "POST", "path": self.path, "authorization": auth, "body": body.decode()})
                    if self._refused(auth, "actions" if local.startswith("/api/dm/") else None):
                        return None
                    if local.startswith("/api/dm/"):
                        answer = standin._action(parse_qs(self.path.partition("?")[2]), body)
                        with standin._lock:
                            failed, standin.fail_after_actions = standin.fail_after_actions > 0, max(0, standin.fail_after_actions - 1)
                        if failed:  # Label Studio 1.23.2 on SQLite, concurrent actions: stored, then failed recounting
                            return self._reply(500, _error(500, "database is locked"))
                        return self._reply(*answer)
                    return self._reply(*standin._create_annotation(int(TASK_ANNOTATIONS.match(local).group(1)), body))
                standin.requests.append({"method": "POST", "path": self.path, "body": body.decode()})
                if self._admin("POST", body):
                    return None
                if self.path != f"{standin.prefix}/api/token/refresh/":
                    return self._reply(404, {"detail": "Not found."})
                if standin.mode == "error":
                    return self._reply(500, {"detail": "boom"})
                if json.loads(body or b"{}").get("refresh") != PERSONAL_ACCESS_TOKEN:
                    return self._reply(401, {"detail": "Token is invalid or expired", "code": "token_not_valid"})
                with standin._lock:
                    standin._issued += 1
                    access = f"access-{standin._issued}"
                    standin._access.add(access)
                self._reply(200, {"access": access})

            def do_PATCH(self) -> None:
                self._write("PATCH")

            def do_DELETE(self) -> None:
                self._write("DELETE")

            def _write(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                standin.requests.append({"method": method, "path": self.path, "body": body.decode()})
                if not self._admin(method, body):
                    self._reply(404, {"detail": "Not found."})

            def _admin(self, method: str, body: bytes) -> bool:
                """Project detail, ML backend connections and webhooks (tests/ls_standin_ml.py); True when answered."""
                path, _, query = self.path.partition("?")
                local = path[len(standin.prefix):] if path.startswith(standin.prefix) else None
                if local is None or not admin_path(local):
                    return False
                if standin.mode == "slow":
                    time.sleep(standin.delay)
                auth = self.headers.get("Authorization", "")
                if standin.mode == "error":
                    self._reply(500, _error(500, "Internal Server Error"))
                elif not standin._allowed(auth):
                    self._reply(401, auth_error(auth, LEGACY_TOKEN))
                else:
                    self._reply(*(standin.ml.handle(method, local, query, body) or (405, {"detail": f'Method "{method}" not allowed.'})))
                return True

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                standin.requests.append({"method": "GET", "path": self.path, "authorization": auth})
                if self._admin("GET", b""):
                    return None
                if standin.mode == "slow":
                    time.sleep(standin.delay)
                if standin.mode == "error":
                    return self._reply(500, {"detail": "Internal Server Error"})
                path, _, query = self.path.partition("?")
                if path in (f"{standin.prefix}/api/tasks", f"{standin.prefix}/api/tasks/"):
                    if not standin._allowed(auth):
                        return self._reply(401, _error(401, "Authentication credentials were not provided."))
                    fault = standin._fault("tasks")
                    if fault:
                        return self._reply(fault[0], _error(fault[0], "injected fault"), retry_after=fault[1])
                    return self._reply(*standin._task_page(parse_qs(query)))
                prefix = f"{standin.prefix}/api/projects/"
                if not (path.startswith(prefix) and path.endswith("/export") and "exportType=JSON" in query):
                    return self._reply(404, {"detail": "Not found."})
                if not standin._allowed(auth):
                    return self._reply(401, {"detail": "Authentication credentials were not provided."})
                project = int(path[len(prefix):-len("/export")])
                export = standin.exports.get(project)
                if export is None:
                    return self._reply(404, {"detail": "Not found."})
                data = export.read_bytes() if isinstance(export, Path) else json.dumps(export).encode()
                self._reply(200, data)

            def _reply(self, status: int, body: Any, retry_after: str | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                html = body is NOT_FOUND_HTML
                self.send_header("Content-Type", "text/html; charset=utf-8" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _valid(item: dict[str, Any], controls: dict[str, set[str]] | None) -> bool:
    """Whether Label Studio 1.23.2 stores this prediction (it skips the others silently)."""
    result, score = item.get("result"), item.get("score")
    if not isinstance(result, list) or (score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)))):
        return False
    for region in result:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            return False
        if controls is not None:
            allowed = controls.get(region.get("from_name"))
            choices = region["value"].get("choices")
            if allowed is None or not isinstance(choices, list) or not set(choices) <= allowed:
                return False
    return True
