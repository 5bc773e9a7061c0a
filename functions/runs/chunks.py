"""One chunk of a prediction run: fetch a task page, predict, import, record the counts once.

Idempotent per chunk:

- a chunk whose record exists is done: a redelivered message does nothing;
- a claim object (a lease of `CLAIM_SECONDS`) keeps a second delivery of the same chunk from
  working on it at the same time (`ChunkBusy`: the queue redelivers it later);
- tasks that already hold a prediction of the run's model version are skipped, so a chunk
  that died half-way (its imports partly done) never imports a duplicate when it runs again;
- the chunk record is written with if-none-match, once.

Predictions come from the compact model (`functions.serving.predict_tasks`, NumPy only) of the
run's version, loaded and verified once per process. Tasks without text for any control are
skipped and counted (``skipped.no_text``). Label Studio's ``created`` is checked against what was
sent: a shortfall counts as failed tasks, with a reason.

A run started with ``auto_label`` (and thresholds: `functions.runs.auto_label`) reads its page
with each task's annotations, drafts and prediction scores, imports the predictions as above,
then turns the predictions of the chosen tasks into annotations with one Label Studio call
(`LabelStudioClient.annotations_from_predictions`). Tasks that hold the version's prediction
already are considered too. Redelivery creates no duplicate: a chunk whose record exists does
nothing; one that died after annotating finds those tasks annotated when it runs again (and
Label Studio never makes a second annotation from the same prediction). A refusal of that call
is recorded in the chunk (``auto_label_reason``), its predictions still count.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from functions.errors import PreconditionFailed
from functions.jobs import age_seconds, now
from functions.label_config import parse_label_config
from functions.label_studio import LabelStudioRefused
from functions.runs import auto_label
from functions.runs.planning import RunMessage
from functions.keys import chunk_key, claim_key
from functions.runs.records import FINISHED, Run, empty_counts, fail_run, load_run
from functions.serving import ModelCache, predict_tasks
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

CLAIM_SECONDS = 900.0  # > the predict function's timeout: an older claim belongs to a dead worker
# One annotation call at a time per process: Label Studio on SQLite failed two of four concurrent
# ones ("database is locked" while recounting, after storing the annotations; tests/ls_wire_runs/README.md (e)).
ANNOTATING = threading.Lock()


class ChunkBusy(Exception):
    """Another worker holds this chunk right now: try again later (the queue redelivers)."""


class NothingToPredict(Exception):
    """The model predicts nothing for the run's label config (no control it was trained for)."""


def chunk_done(store: ObjectStore, message: RunMessage) -> bool:
    return store.get(chunk_key(message.project, message.run, message.page or 0)) is not None


def run_chunk(
    store: ObjectStore, settings: Settings, message: RunMessage, client: Any, cache: ModelCache, worker: str,
    run: Run | None = None,
) -> dict[str, Any] | None:
    """Do the chunk `message` names; returns its record, or None when there was nothing to do
    (done before, or the run is finished). Raises ChunkBusy, LabelStudioUnreachable and store
    errors (retry); a refusal by Label Studio fails the run (and records the chunk failed)."""
    page = message.page or 0
    run = run or load_run(store, message.project, message.run)
    if run.state in FINISHED:
        log.info("prediction run %s is %s; chunk %d skipped", run.run_id, run.state.value, page)
        return None
    if chunk_done(store, message):
        log.info("prediction run %s: chunk %d was done before; nothing to do", run.run_id, page)
        return None
    claim = _claim(store, message, worker)
    try:
        started = time.monotonic()
        try:
            counts = _predict_and_import(store, settings, run, page, client, cache)
        except LabelStudioRefused as error:
            counts = failed_counts(run, page, str(error))
            _record(store, message, counts, started)
            fail_run(store, run.project, run.run_id, str(error))
            return counts
        except NothingToPredict as error:
            counts = failed_counts(run, page, str(error))
            _record(store, message, counts, started)
            fail_run(store, run.project, run.run_id, str(error))
            return counts
        _record(store, message, counts, started)
        return counts
    except BaseException:
        _release(store, message, claim)
        raise


def failed_counts(run: Run, page: int, reason: str) -> dict[str, Any]:
    """The counts of a chunk none of whose tasks could be done: every task of its page failed."""
    total = run.tasks_total or 0
    tasks = max(0, min(run.chunk_tasks, total - (page - 1) * run.chunk_tasks))
    return empty_counts() | {"page": page, "tasks": tasks, "tasks_done": tasks, "tasks_failed": tasks, "reason": reason}


def record_failed_chunk(store: ObjectStore, message: RunMessage, reason: str) -> None:
    """The last attempt of a chunk failed: record all its tasks failed (once), so the run can end."""
    run = load_run(store, message.project, message.run)
    try:
        _record(store, message, failed_counts(run, message.page or 0, reason), time.monotonic())
    except PreconditionFailed:
        pass


def _predict_and_import(
    store: ObjectStore, settings: Settings, run: Run, page: int, client: Any, cache: ModelCache
) -> dict[str, Any]:
    counts = empty_counts() | {"page": page, "tasks": 0, "reason": None}
    del counts["chunks_done"]
    annotate = run.auto_label and bool(run.auto_label_thresholds)
    if annotate:
        tasks = client.task_page(run.project, page, run.chunk_tasks, annotations=True).tasks
    else:
        tasks = client.task_page(run.project, page, run.chunk_tasks).tasks
    counts["tasks"] = len(tasks)
    version = run.model_version or ""
    fresh = [task for task in tasks if version not in (task.get("prediction_versions") or ())]
    counts["skipped"]["already_predicted"] = len(tasks) - len(fresh)
    items: list[dict[str, Any]] = []
    if fresh:
        cache.pointer(run.project)  # forgets versions held here if the project was deleted and trained again since
        model = cache.model(run.project, version)
        config = parse_label_config(run.label_config)
        predicted = predict_tasks(fresh, config, model, settings.multilabel_threshold)
        if not predicted:
            raise NothingToPredict(
                f"{version} predicts none of the label config's controls (renamed or removed since training?); "
                "train again, or start the run with the label config the model was trained for"
            )
        for task, item in zip(fresh, predicted):
            if item["result"]:
                items.append({"task": task["id"], "result": item["result"], "score": item["score"], "model_version": version})
        counts["skipped"]["no_text"] = len(fresh) - len(items)
    created = _import(client, run.project, items) if items else 0
    counts["predictions_created"] = created
    counts["tasks_skipped"] = sum(counts["skipped"].values())
    if created < len(items):
        counts["tasks_failed"] = len(items) - created
        counts["reason"] = (f"Label Studio created {created} of the {len(items)} predictions sent (it skips items it "
                            "finds invalid, e.g. a task deleted meanwhile)")
    counts["tasks_done"] = len(tasks)
    if annotate:
        sent = {int(item["task"]): float(item["score"]) for item in items}
        if created < len(items):  # which predictions Label Studio skipped is unknown: read the page again
            tasks, sent = client.task_page(run.project, page, run.chunk_tasks, annotations=True).tasks, {}
        counts |= _auto_label(client, run, page, tasks, sent)
    return counts


def _auto_label(client: Any, run: Run, page: int, tasks: list[dict[str, Any]], sent: dict[int, float]) -> dict[str, Any]:
    """Annotate the chosen tasks of the page (`functions.runs.auto_label.select`); the chunk's
    auto-label counts. When Label Studio reports fewer annotations than tasks chosen (e.g. a
    retried call whose first attempt stored them and then failed: the retry creates nothing),
    the page is read again and the chosen tasks that now hold an annotation are counted.
    Raises LabelStudioUnreachable (the chunk is retried)."""
    version = run.model_version or ""
    bar = max((run.auto_label_thresholds or {}).values())
    chosen = auto_label.select(tasks, version, bar, sent)
    counts: dict[str, Any] = {
        "annotations_created": 0, "auto_label_skipped_annotated": chosen.annotated,
        "auto_label_skipped_below_threshold": chosen.below_threshold, "auto_label_skipped_no_prediction": chosen.no_prediction,
        "auto_label_reason": None,
    }
    if not chosen.tasks:
        return counts
    try:
        with ANNOTATING:
            created = int(client.annotations_from_predictions(run.project, chosen.tasks, version))
    except LabelStudioRefused as error:
        counts["auto_label_reason"] = f"no annotation created for {len(chosen.tasks)} task(s): {error}"
        log.warning("prediction run %s: %s", run.run_id, counts["auto_label_reason"])
        return counts
    if created < len(chosen.tasks):
        now = client.task_page(run.project, page, run.chunk_tasks, annotations=True).tasks
        created = max(created, len(set(chosen.tasks) & {int(t["id"]) for t in now if t.get("annotations")}))
    counts["annotations_created"] = created
    if created != len(chosen.tasks):
        counts["auto_label_reason"] = (f"Label Studio created {created} annotation(s) for the {len(chosen.tasks)} task(s) chosen "
                                       "(a prediction deleted, or annotated, meanwhile?)")
    return counts


def _import(client: Any, project: str, items: list[dict[str, Any]]) -> int:
    """Import `items`; when Label Studio rejects the whole request because of one item (400, e.g.
    a task deleted since its page was read), import the halves separately, so only the bad
    item(s) fail. Other refusals propagate."""
    try:
        return int(client.import_predictions(project, items))
    except LabelStudioRefused as error:
        if not _rejected_request(error) or len(items) == 1:
            if len(items) == 1 and _rejected_request(error):
                return 0
            raise
    middle = len(items) // 2
    return _import(client, project, items[:middle]) + _import(client, project, items[middle:])


def _rejected_request(error: LabelStudioRefused) -> bool:
    status = getattr(error, "status", None) or getattr(error, "status_code_received", None)
    return status == 400 or " 400 " in f" {error} " or "answered 400" in str(error)


def _claim(store: ObjectStore, message: RunMessage, worker: str) -> str:
    """Take the chunk's lease; raises ChunkBusy while another worker holds a live one."""
    key = claim_key(message.project, message.run, message.page or 0)
    body = {"worker": worker, "claimed_at": now()}
    for _ in range(5):
        found = store.get(key)
        try:
            if found is None:
                return store.put_json(key, body, if_none_match=True, expiring=True)
            current = found.json() if found.data else {}
            if not current.get("released") and age_seconds(str(current.get("claimed_at")), None) < CLAIM_SECONDS:
                if current.get("worker") == worker:
                    return store.put_json(key, body, if_match=found.etag, expiring=True)
                raise ChunkBusy(f"chunk {message.page} of run {message.run} is being done by {current.get('worker')}")
            return store.put_json(key, body, if_match=found.etag, expiring=True)
        except PreconditionFailed:
            continue
        except ValueError:
            return store.put_json(key, body, if_match=found.etag, expiring=True)  # type: ignore[union-attr]
    raise ChunkBusy(f"chunk {message.page} of run {message.run}: its claim kept changing")


def _release(store: ObjectStore, message: RunMessage, etag: str) -> None:
    try:
        store.put_json(claim_key(message.project, message.run, message.page or 0), {"released": True, "at": now()},
                       if_match=etag, expiring=True)
    except Exception:  # noqa: BLE001 - the lease runs out by itself
        log.debug("claim of chunk %s not released", message.page)


def _record(store: ObjectStore, message: RunMessage, counts: dict[str, Any], started: float) -> None:
    counts = counts | {"finished_at": now(), "seconds": round(time.monotonic() - started, 3)}
    counts.pop("chunks_done", None)
    try:
        store.put_json(chunk_key(message.project, message.run, message.page or 0), counts, if_none_match=True, expiring=True)
    except PreconditionFailed:
        log.warning("prediction run %s: chunk %s was recorded by another worker", message.run, message.page)
