"""Which Label Studio projects a Start Training may export (guards against a confused deputy).

With LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set, the backend reads projects from Label
Studio with its own token. A START_TRAINING request names a project id, and anyone who can
send one could make the backend export a project it was never connected to. So a job exports
a project only if:

- its id is in LABEL_STUDIO_PROJECTS (comma-separated ids), when that is set; or
- when it is unset, the project was connected: Label Studio called ``/setup`` for it, through
  the API's authentication. `/setup` records ``projects/<id>/connected.json``
  (``{"project", "connected_at"}``, written once; at most one store call per process and project
  every RECHECK_SECONDS, so a record removed by `delete-project` comes back at the next /setup).

Otherwise the job trains on the annotation log and its report says why.
"""

from __future__ import annotations

import logging
import threading
import time

from functions import keys
from functions.errors import BackendError, PreconditionFailed
from functions.jobs import now
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

RECHECK_SECONDS = 60.0  # how long this process trusts that a project's record still exists
_recorded: dict[tuple[str, str], float] = {}  # (store, project) -> when this process recorded it (monotonic)
_lock = threading.Lock()


def needs_recording(store: ObjectStore, project: str) -> bool:
    """False while this process recorded `project` as connected less than RECHECK_SECONDS ago
    (no I/O: cheap on /setup)."""
    recorded = _recorded.get((repr(store), project))
    return recorded is None or time.monotonic() - recorded >= RECHECK_SECONDS


def record_connected(store: ObjectStore, project: str) -> None:
    """Record that `project` was connected through /setup (once; later calls cost nothing).

    Never raises for a store failure: /setup must answer; the next /setup tries again.
    """
    if not needs_recording(store, project):
        return
    try:
        store.put_json(keys.connected_key(project), {"project": project, "connected_at": now()}, if_none_match=True)
    except PreconditionFailed:
        pass  # recorded before (by this or another process)
    except BackendError as error:
        log.warning("project %s: could not record the connection (%s); the next /setup tries again", project, error)
        return
    with _lock:
        _recorded[(repr(store), project)] = time.monotonic()


def allowed_projects(settings: Settings) -> set[str] | None:
    """The ids in LABEL_STUDIO_PROJECTS (normalised), or None when it is unset or blank."""
    if not settings.label_studio_projects or not settings.label_studio_projects.strip():
        return None
    return {part.strip().lstrip("0") or "0" for part in settings.label_studio_projects.split(",") if part.strip()}


def export_refusal(store: ObjectStore, settings: Settings, project: str) -> str | None:
    """Why the backend must not export `project` from Label Studio, or None if it may.

    Raises StoreUnavailable when the connection record cannot be read.
    """
    allowed = allowed_projects(settings)
    if allowed is not None:
        if project in allowed:
            return None
        return (f"project {project} is not in LABEL_STUDIO_PROJECTS, so it was not read from Label Studio; "
                f"add {project} to LABEL_STUDIO_PROJECTS to train on all its annotations")
    if store.get(keys.connected_key(project)) is not None:
        return None
    return (f"project {project} was never connected to this backend through an authenticated /setup, so it was not "
            f"read from Label Studio; connect the model in the project's settings (Label Studio then calls /setup) "
            f"or set LABEL_STUDIO_PROJECTS={project}")
