"""Prediction-run records in the store, and the counts a run reports.

``projects/<id>/runs/<run_id>.json`` is the run record: what the run was started with (model
version, label config, chunk size), its plan (``tasks_total``, ``chunks``) and its state. It is
written by the starter, the planner and whoever finishes the run, always conditionally on its
etag, so writers never undo each other.

``projects/<id>/runs/<run_id>/chunks/<page>.json`` is one finished chunk: its counts. It is
written once, with if-none-match, by the worker that did the chunk; a redelivered chunk message
finds it and does nothing. The run's counts are the sums over its chunk records, computed when
someone reads the run, so concurrent chunk workers never read-modify-write a shared counter and
no update is ever lost. Once every chunk is recorded, the final counts are copied into the run
record (``counts``) and the run ends ``succeeded`` (or ``failed`` if no task could be predicted).

``projects/<id>/runs/<run_id>/claims/<page>.json`` says which worker is doing a chunk right now
(a lease), so two deliveries of one chunk message never import the same predictions twice.

Records are written with ``expiring=True`` like job records: the bucket's lifecycle rule deletes
them some days after their last write.
"""

from __future__ import annotations

import logging
import math
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from functions.errors import CorruptObject, NotFound, PreconditionFailed
from functions.jobs import now
from functions.keys import chunks_prefix, run_key, runs_prefix
from functions.store import ObjectStore, StoredObject

log = logging.getLogger(__name__)

RECENT_RUNS = 20  # run records a listing reads at most (the newest)
COUNTS = ("tasks_done", "predictions_created", "tasks_skipped", "tasks_failed")
# Runs started with auto_label (`functions.runs.auto_label`): annotations made, tasks not auto-labelled and why.
AUTO_LABEL_COUNTS = ("annotations_created", "auto_label_skipped_annotated", "auto_label_skipped_below_threshold",
                     "auto_label_skipped_no_prediction")
SKIP_REASONS = ("no_text", "already_predicted")


class RunState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = {RunState.SUCCEEDED, RunState.FAILED}

# What started a run (Run.source).
FROM_API = "api"
FROM_TRAINING = "training"


class Run(BaseModel):
    """A prediction-run record.

    Attributes:
        model_version: the version every prediction of the run carries (the serving version
            when the run started, or the version a training just published).
        label_config: the label config the predictions follow (see `functions.runs.planning.label_config_for`).
        label_config_source: where it came from: ``request``, ``training_job`` or ``manifest``.
        only_missing: as requested (tasks holding a prediction of `model_version` are skipped either way).
        chunk_tasks: tasks per chunk (PREDICT_CHUNK_TASKS when the run started): the task page size.
        tasks_total: the project's task count when the run was planned.
        chunks: how many chunk messages the plan sent (pages 1..chunks).
        planned: every chunk message was sent.
        worker: the local worker that runs it (``local:<host>:<pid>:<token>``), if any.
        counts: the final counts, once finished (`aggregate` otherwise).
        auto_label: started with ``{"auto_label": true}``: also annotate confident predictions.
        auto_label_thresholds: ``{control: threshold}`` from the version's signed manifest, or None
            when the version cannot auto-label (`auto_label_reason` says why).
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    project: str
    state: RunState = RunState.QUEUED
    source: str = FROM_API
    job_id: str | None = None
    model_version: str | None = None
    label_config: str | None = None
    label_config_source: str | None = None
    only_missing: bool = True
    chunk_tasks: int = 1000
    tasks_total: int | None = None
    chunks: int | None = None
    planned: bool = False
    worker: str | None = None
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    counts: dict[str, Any] | None = None
    auto_label: bool = False
    auto_label_thresholds: dict[str, float] | None = None
    auto_label_reason: str | None = None
    _etag: str | None = PrivateAttr(default=None)

    def model_post_init(self, __context: Any) -> None:
        if not self.created_at:
            self.created_at = now()

    @property
    def pages(self) -> int:
        """Chunks a project of `tasks_total` tasks needs."""
        return math.ceil((self.tasks_total or 0) / self.chunk_tasks)


def save_run(store: ObjectStore, run: Run, *, if_match: str | None = None, if_none_match: bool = False) -> Run:
    """Write `run` (stamping ``updated_at``); conditionally with `if_match` / `if_none_match`.
    Raises PreconditionFailed, StoreUnavailable."""
    run.updated_at = now()
    conditions: dict[str, Any] = {}
    if if_match:
        conditions["if_match"] = if_match
    if if_none_match:
        conditions["if_none_match"] = True
    run._etag = store.put(run_key(run.project, run.run_id), run.model_dump_json().encode("utf-8"), expiring=True, **conditions)
    return run


def load_run(store: ObjectStore, project: str, run_id: str) -> Run:
    """The run record with its etag. Raises NotFound, CorruptObject, StoreUnavailable."""
    found = store.get(run_key(project, run_id))
    if found is None:
        raise NotFound(f"project {project} has no prediction run {run_id}")
    run = _parse(found)
    if run is None:
        raise CorruptObject(f"the record of prediction run {run_id} of project {project} is unreadable")
    return run


def list_runs(store: ObjectStore, project: str, limit: int = RECENT_RUNS) -> list[Run]:
    """The newest `limit` runs of `project`, newest first (run ids sort by age)."""
    newest = [key for key in store.list_keys(runs_prefix(project)) if key.count("/") == 3 and key.endswith(".json")][-limit:]
    runs = [run for run in map(_parse, store.get_many(newest)) if run is not None]
    return sorted(runs, key=lambda run: run.run_id, reverse=True)


def _parse(found: StoredObject | None) -> Run | None:
    if found is None:
        return None
    try:
        run = Run.model_validate_json(found.data)
    except (ValidationError, ValueError):
        log.warning("skipping an unreadable prediction-run record (%d bytes)", len(found.data))
        return None
    run._etag = found.etag
    return run


def update_run(store: ObjectStore, project: str, run_id: str, change: Any, attempts: int = 20) -> Run:
    """Load the run, apply ``change(run) -> bool`` (False: nothing to write) and write it back
    conditionally; re-read and re-apply when another writer got there first."""
    for _ in range(attempts):
        run = load_run(store, project, run_id)
        if not change(run):
            return run
        try:
            return save_run(store, run, if_match=run._etag)
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"the record of prediction run {run_id} kept changing")


def fail_run(store: ObjectStore, project: str, run_id: str, reason: str) -> Run:
    """Mark the run failed with `reason` (a finished run is left as it is)."""

    def change(run: Run) -> bool:
        if run.state in FINISHED:
            return False
        run.state, run.reason, run.finished_at = RunState.FAILED, reason, now()
        return True

    run = update_run(store, project, run_id, change)
    log.warning("prediction run %s of project %s: %s", run_id, project, run.reason)
    return run


def empty_counts() -> dict[str, Any]:
    return {name: 0 for name in COUNTS + AUTO_LABEL_COUNTS} | {"skipped": {reason: 0 for reason in SKIP_REASONS}, "chunks_done": 0}


def read_chunks(store: ObjectStore, project: str, run_id: str) -> list[dict[str, Any]]:
    """Every chunk record of the run (unreadable ones are logged and left out)."""
    keys = store.list_keys(chunks_prefix(project, run_id))
    chunks = []
    for found in store.get_many(keys, workers=32):
        try:
            value = found.json() if found is not None else None
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            chunks.append(value)
    return chunks


def aggregate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's counts: sums over its chunk records, and the first chunk failure reasons."""
    counts = empty_counts()
    reasons: list[str] = []
    auto_label_reasons: list[str] = []
    for chunk in chunks:
        counts["chunks_done"] += 1
        for name in COUNTS + AUTO_LABEL_COUNTS:
            value = chunk.get(name)
            counts[name] += value if isinstance(value, int) and not isinstance(value, bool) else 0
        for reason, value in (chunk.get("skipped") or {}).items():
            if reason in counts["skipped"] and isinstance(value, int):
                counts["skipped"][reason] += value
        if chunk.get("reason") and len(reasons) < 3:
            reasons.append(f"page {chunk.get('page')}: {chunk['reason']}")
        if chunk.get("auto_label_reason") and len(auto_label_reasons) < 3:
            auto_label_reasons.append(f"page {chunk.get('page')}: {chunk['auto_label_reason']}")
    counts["chunk_reasons"] = reasons
    counts["auto_label_reasons"] = auto_label_reasons
    return counts


def status(store: ObjectStore, run: Run, worker_alive: Any = None) -> dict[str, Any]:
    """The run as the API shows it: state, model version, counts and reason.

    An unfinished run's counts are summed from its chunk records now; when they show that every
    chunk is done, the run is finished (and recorded so) here. A local run whose worker process
    is gone is reported failed ("abandoned")."""
    if run.state not in FINISHED and run.planned and run.chunks is not None:
        counts = aggregate(read_chunks(store, run.project, run.run_id))
        if counts["chunks_done"] >= run.chunks:
            run = finish(store, run.project, run.run_id, counts)
    if run.state in FINISHED and run.counts is not None:
        counts = run.counts
    elif run.chunks is not None:
        counts = aggregate(read_chunks(store, run.project, run.run_id))
    else:
        counts = empty_counts() | {"chunk_reasons": []}
    state, reason = run.state, run.reason
    if state not in FINISHED and run.worker and worker_alive is not None and worker_alive(run.worker) is False:
        state = RunState.FAILED
        reason = (f"abandoned: its worker ({run.worker}) stopped before the run finished; start a new run "
                  "(tasks that already hold a prediction of this version are skipped)")
    reply = {
        "run": run.run_id,
        "project": run.project,
        "state": state.value,
        "model_version": run.model_version,
        "source": run.source,
        "job_id": run.job_id,
        "only_missing": run.only_missing,
        "label_config_source": run.label_config_source,
        "tasks_total": run.tasks_total,
        "chunks": run.chunks,
        "chunk_tasks": run.chunk_tasks,
        "reason": reason,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status_url": f"/projects/{run.project}/prediction-runs/{run.run_id}",
    }
    reply |= {name: counts.get(name, 0) for name in COUNTS + AUTO_LABEL_COUNTS}
    reply["auto_label"] = auto_label_status(run, counts)
    return reply | {"skipped": counts["skipped"], "chunks_done": counts["chunks_done"]}


def auto_label_status(run: Run, counts: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What the run reply says about auto-labelling: None for a run started without it, else
    ``{"thresholds": {control: threshold} | None, "reason": why not | None, "errors": [first chunk problems]}``."""
    if not run.auto_label:
        return None
    return {"thresholds": run.auto_label_thresholds, "reason": run.auto_label_reason,
            "errors": list((counts or {}).get("auto_label_reasons") or [])}


def finish(store: ObjectStore, project: str, run_id: str, counts: dict[str, Any]) -> Run:
    """Record the final `counts` and end the run: failed if tasks failed and none was done
    otherwise, else succeeded (with the chunk failures, if any, as its reason)."""

    def change(run: Run) -> bool:
        if run.state in FINISHED:
            return False
        run.counts, run.finished_at = counts, now()
        failed, total = counts["tasks_failed"], counts["tasks_done"]
        if failed and failed >= total:
            run.state = RunState.FAILED
            run.reason = "no task could be predicted: " + "; ".join(counts.get("chunk_reasons") or [])
        else:
            run.state = RunState.SUCCEEDED
            if failed:
                run.reason = f"{failed} task(s) failed: " + "; ".join(counts.get("chunk_reasons") or [])
        return True

    run = update_run(store, project, run_id, change)
    log.info("prediction run %s of project %s %s: %s", run_id, project, run.state.value, run.counts)
    return run
