"""Ask for a training: record the job, stage what it needs, queue it. Never trains here.

Called by /webhook START_TRAINING and /train; both must answer Label Studio at once.

At most one job per project waits in the queue (a cost guard that no change of content can
bypass). The project's slot object (``projects/<id>/queued_job.json``, written conditionally)
names it. A request that finds that job still queued collapses into it, whatever it asks:
the job takes the newest request's label config, source and staged /train body (the newest
request wins) and, since it has not gathered its annotations yet, it will see every change
made until it runs. Once it runs or has finished, a new request makes a new job. Each job is
one queue message (deduplication id = job id).

A queued or running job that nobody works on any more (`functions.jobs.abandonment`) is
failed with its reason when a request or a job listing looks at it, so it never swallows a
new Start Training.
"""

from __future__ import annotations

import logging

from functions import keys
from functions.errors import CorruptObject, NotFound, PreconditionFailed
from functions.ids import new_job_id
from functions.jobs import (
    START_TRAINING, TRAIN_REQUEST, Job, JobState, Liveness, abandonment, list_jobs, load_job, now, reap,
    save_job,
)
from functions.label_config import parse_label_config
from functions.settings import Settings
from functions.store import ObjectStore, StoredObject
from functions.train_queue import TrainQueue

log = logging.getLogger(__name__)

SLOT_ATTEMPTS = 8  # conditional-write races lost before a request gives up


def liveness(settings: Settings, queue: TrainQueue) -> Liveness:
    """The abandonment rule for jobs sent through `queue`."""
    return Liveness(settings.job_lease_seconds, queue.hold_seconds, queue.worker_alive)


def request_training(
    store: ObjectStore,
    queue: TrainQueue,
    settings: Settings,
    project: str,
    label_config: str,
    *,
    staged_body: bytes | None = None,
) -> Job:
    """Queue a training job for `project`, or fold the request into its queued one; returns the record.

    With `staged_body` (a /train request's raw JSON) the job trains on the tasks in it; without,
    on the project's annotations (Label Studio's export when allowed, else the annotation log).

    Raises:
        UnsupportedLabelConfig: the label config has no control to train (checked up front, so
            the user sees the reason at once).
        QueueUnavailable, StoreUnavailable: the job could not be queued (then recorded failed).
        PreconditionFailed: concurrent requests kept winning the slot (retry).
    """
    parse_label_config(label_config).require_controls()
    request_id = new_job_id()
    source, request_key = START_TRAINING, None
    if staged_body is not None:
        source, request_key = TRAIN_REQUEST, keys.staged_request(project, request_id)
        store.put(request_key, staged_body, expiring=True)
    live = liveness(settings, queue)
    for _ in range(SLOT_ATTEMPTS):
        slot = store.get(keys.queued_slot(project))
        queued = _queued_job(store, project, slot, live)
        if queued is not None:
            if _fold(store, queued, source, label_config, request_key):
                return queued
            continue  # it started meanwhile
        job = Job(job_id=request_id, project=project, label_config=label_config, source=source,
                  request_key=request_key, worker=queue.worker_id, dedup_id=request_id)
        save_job(store, job)
        if _claim(store, project, slot, job.job_id):
            return _send(store, queue, job)
        job.state, job.reason = JobState.SUPERSEDED, "a concurrent training request of this project was queued first"
        save_job(store, job)
        request_id = new_job_id()
    raise PreconditionFailed(f"training requests of project {project} kept racing; send the request again")


def project_jobs(store: ObjectStore, queue: TrainQueue, settings: Settings, project: str) -> list[Job]:
    """The project's newest jobs, newest first, abandoned ones marked failed."""
    return reap(store, list_jobs(store, project), liveness(settings, queue))


def job_status(store: ObjectStore, queue: TrainQueue, settings: Settings, project: str, job_id: str) -> Job:
    """One job record, marked failed first if it is abandoned. Raises NotFound, CorruptObject."""
    job = load_job(store, project, job_id)
    live = liveness(settings, queue)
    if abandonment(job, live) is not None:  # confirm against the older jobs it may wait behind
        reap(store, [job, *(j for j in list_jobs(store, project) if j.job_id != job_id)], live)
    return job


def _queued_job(store: ObjectStore, project: str, slot: StoredObject | None, live: Liveness) -> Job | None:
    """The job the slot names if it is still queued and not abandoned, else None."""
    try:
        job_id = slot.json().get("job_id") if slot else None
        job = load_job(store, project, job_id) if isinstance(job_id, str) else None
    except (ValueError, AttributeError, NotFound, CorruptObject):
        log.warning("project %s: the queued-job slot names no readable job; a new job takes it", project)
        return None
    if job is None or job.state != JobState.QUEUED:
        return None
    if abandonment(job, live) is None:
        return job
    reap(store, [job, *(j for j in list_jobs(store, project) if j.job_id != job.job_id)], live)
    return job if job.state == JobState.QUEUED else None


def _fold(store: ObjectStore, job: Job, source: str, label_config: str, request_key: str | None) -> bool:
    """Make the queued `job` answer the newest request too; False if it changed meanwhile."""
    job.source, job.label_config, job.request_key = source, label_config, request_key
    job.requests, job.requested_at = job.requests + 1, now()
    try:
        save_job(store, job, if_match=job._etag)
    except PreconditionFailed:
        return False
    log.info("project %s: training request folded into queued job %s (%d requests)", job.project, job.job_id, job.requests)
    return True


def _claim(store: ObjectStore, project: str, slot: StoredObject | None, job_id: str) -> bool:
    """Point the project's slot at `job_id` unless another request did since `slot` was read."""
    condition = {"if_match": slot.etag} if slot else {"if_none_match": True}
    try:
        store.put_json(keys.queued_slot(project), {"job_id": job_id, "claimed_at": now()}, expiring=True, **condition)
    except PreconditionFailed:
        return False
    return True


def _send(store: ObjectStore, queue: TrainQueue, job: Job) -> Job:
    try:
        queue.send(job.message(), job.dedup_id)
    except Exception as error:
        job.state, job.reason = JobState.FAILED, f"could not queue the job: {error}"
        save_job(store, job)
        raise
    log.info("project %s: training job %s queued (%s)", job.project, job.job_id, job.source)
    return job
