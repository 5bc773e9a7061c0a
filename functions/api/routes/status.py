"""``GET /projects/{project}``: what a project serves and what last happened to it, in one reply.

Read-only and bounded: one read of ``connected.json``, the pointer and one listing of the
project's models (`versions.list_versions`), the newest job records as ``GET /projects/{id}/jobs``
reads them (at most `functions.jobs.RECENT_JOBS`), the newest prediction-run record (and its
chunk records while it is unfinished, as ``GET …/prediction-runs/{run}`` does), and one listing
of the annotation log's keys, counted, never read.

The serving version comes from the app's `ModelCache`, the very object /setup asks, so the two
always agree (including the walk back past a version that fails verification, and the
POINTER_TTL_SECONDS during which a freshly published version is not served yet).

While the store is unreachable the reply is still 200: ``store`` says ``{"ok": false, "error":
…}``, the serving version comes from memory if this process has one, and what only the store
knows is null. A project with nothing stored (never connected, no version, job, run or
annotation) is a 404.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import APIRouter

from functions import keys, versions
from functions.api.routes.runs import predict_queue
from functions.api.services import Services, ServicesDep
from functions.errors import NotFound, SigningUnavailable, StoreUnavailable
from functions.ids import checked_project_id
from functions.jobs import FINISHED, Job, JobState, abandonment, list_jobs
from functions.scheduling import liveness

router = APIRouter(tags=["status"])

RUN_COUNTS = ("tasks_total", "tasks_done", "predictions_created", "tasks_skipped", "tasks_failed")
AUTO_LABEL_COUNTS = ("annotations_created",)


@router.get("/projects/{project}")
def project_status(project: str, services: ServicesDep) -> dict[str, Any]:
    """The project's status.

    Reply::

        {"project": "12",
         "serving": {"version": "p12-v3", "pinned": null},
         "newest_version": "p12-v3", "versions_published": 3,
         "last_job": {"job_id", "state", "reason", "version", "source", "requested_at", "finished_at",
                      "status_url"} | null,
         "last_run": {"run", "state", "reason", "model_version", "source", "created_at", "finished_at",
                      "counts": {"tasks_total", "tasks_done", "predictions_created", "tasks_skipped", "tasks_failed"},
                      "status_url"} | null,
         "annotation_log": {"tasks": 120},
         "connected_at": "2026-11-02T10:00:00+00:00" | null,
         "store": {"ok": true, "error": null}}

    ``serving.version`` is what /setup reports (``untrained`` or ``cold-start`` before the
    first version). ``serving.pinned`` is null while the newest good version serves, else
    ``{"version", "source", "since"}`` (`functions.pins`; the pinned version then serves).
    ``newest_version`` is the newest published version (``latest.json``); when it differs
    from the serving version, ``serving.note`` says why. A queued or running job that nobody
    works on any more shows as failed with the reason, as ``GET /projects/{id}/jobs`` reports it.
    404 when nothing of the project is stored; 200 with ``store.ok`` false when the store is
    unreachable.
    """
    project = checked_project_id(project)
    return _status(services, project)


def _status(services: Services, project: str) -> dict[str, Any]:
    store = services.store
    reply: dict[str, Any] = {
        "project": project, "serving": None, "newest_version": None, "versions_published": None, "last_job": None,
        "last_run": None, "annotation_log": None, "connected_at": None, "store": {"ok": True, "error": None},
    }
    try:  # the first read tells whether the store answers at all; if not, nothing else asks it
        connected = store.read_json(keys.connected_key(project))
    except StoreUnavailable as error:
        reply["store"] = {"ok": False, "error": str(error)}
        reply["serving"] = _serving(services, project, None)
        return reply
    reply["connected_at"] = connected.get("connected_at") if connected else None
    sections: dict[str, Callable[[], Any]] = {
        "versions": lambda: versions.list_versions(store, project),
        "last_job": lambda: _last_job(services, project),
        "last_run": lambda: _last_run(services, project),
        "annotation_log": lambda: {"tasks": _log_size(services, project)},
    }
    with ThreadPoolExecutor(max_workers=len(sections), thread_name_prefix="status") as pool:
        futures = {name: pool.submit(section) for name, section in sections.items()}
    found: dict[str, Any] = {}
    for name, future in futures.items():
        try:
            found[name] = future.result()
        except StoreUnavailable as error:
            if reply["store"]["ok"]:
                reply["store"] = {"ok": False, "error": str(error)}
    names = found.get("versions")
    if names is not None:
        reply["newest_version"], reply["versions_published"] = (names[-1] if names else None), len(names)
    for name in ("last_job", "last_run", "annotation_log"):
        reply[name] = found.get(name)
    known = connected or names or reply["last_job"] or reply["last_run"] or (reply["annotation_log"] or {}).get("tasks")
    if reply["store"]["ok"] and not known:
        raise NotFound(f"project {project} has nothing stored: no connection through /setup, model version, training job, "
                       "prediction run or annotation; connect the model in the project's settings in Label Studio")
    reply["serving"] = _serving(services, project, reply["newest_version"])
    return reply


def _serving(services: Services, project: str, newest: str | None) -> dict[str, Any]:
    """``{"version", "pinned"[, "note"][, "error"]}``: what /setup answers now, from the same cache
    (which keeps answering from memory while the store is down, and waits for it at most
    `functions.serving.FIRST_READ_WAIT` seconds when it has nothing in memory)."""
    serving: dict[str, Any] = {"version": None, "pinned": None}
    try:
        version = serving["version"] = services.cache.serving_version(project)
        pinned = serving["pinned"] = services.cache.pin(project).summary()
    except (StoreUnavailable, SigningUnavailable) as error:
        serving["error"] = str(error)
        return serving
    if pinned and version != pinned["version"]:
        serving["note"] = f"pinned to {pinned['version']}, which cannot serve (the log says why): {version} serves instead"
    elif pinned and newest and version != newest:
        serving["note"] = f"pinned to {version}: {newest} is the newest; DELETE /projects/{project}/serving unpins"
    elif newest and version != newest:
        serving["note"] = (f"{newest} is published but {version} serves: {newest} failed verification (the log says why) "
                           "or was published less than POINTER_TTL_SECONDS ago")
    return serving


def _log_size(services: Services, project: str) -> int:
    """Tasks in the annotation log: its keys listed and counted, none read (S3: a request per 1,000)."""
    return sum(1 for key in services.store.list_keys(keys.annotations_prefix(project)) if key.endswith(".json"))


def _last_job(services: Services, project: str) -> dict[str, Any] | None:
    """The newest job, abandoned ones shown failed with the reason (read-only: nothing is written)."""
    jobs = list_jobs(services.store, project)
    if not jobs:
        return None
    job: Job = jobs[0]
    state, reason = job.state, job.reason
    why = abandonment(job, liveness(services.settings, services.queue), jobs)
    if why is not None:
        state, reason = JobState.FAILED, why
    return {
        "job_id": job.job_id, "state": state.value, "reason": reason, "version": job.version, "source": job.source,
        "requested_at": job.requested_at, "finished_at": job.updated_at if state in FINISHED else None,
        "status_url": f"/projects/{project}/jobs/{job.job_id}",
    }


def _last_run(services: Services, project: str) -> dict[str, Any] | None:
    """The newest prediction run with its counts, as ``GET …/prediction-runs/{run}`` shows it."""
    from functions import runs  # not on the /health path

    newest = runs.list_runs(services.store, project, limit=1)
    if not newest:
        return None
    run = runs.status(services.store, newest[0], predict_queue(services).worker_alive)
    counts = {name: run.get(name) for name in RUN_COUNTS}
    if run.get("auto_label") is not None:
        counts |= {name: run.get(name) for name in AUTO_LABEL_COUNTS}
    return {
        "run": run["run"], "state": run["state"], "reason": run["reason"], "model_version": run["model_version"],
        "source": run["source"], "created_at": run["created_at"], "finished_at": run["finished_at"], "counts": counts,
        "status_url": run["status_url"],
    }
