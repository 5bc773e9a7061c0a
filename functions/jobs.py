"""Training jobs: the small message that travels over the queue and the record kept in the store.

The message names a job (``{"project": "12", "job_id": "…"}``, well under SQS's 256 KiB);
the record ``projects/<id>/jobs/<job_id>.json`` holds what the job needs and what became of it.
States: queued → running → succeeded | failed, or superseded (a queued job that finds a newer
queued job of its project when its turn comes leaves the training to that one).

A job that nobody works on any more is *abandoned* (`abandonment`): a running job whose
heartbeat is older than JOB_LEASE_SECONDS, a queued job that no worker took within the lease
plus what the queue may legitimately hold it, or a job whose local worker process is gone.
Whoever looks at it next marks it failed with the reason (`reap`).

Records are written with ``expiring=True``: the bucket's lifecycle rule (tag
``lifecycle=expiring``) deletes them some days after their last write, so listing a project's
jobs stays short. Readers read at most the newest `limit` records (job ids sort by age).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from functions import keys
from functions.errors import CorruptObject, NotFound, PreconditionFailed
from functions.ids import checked_job_id, project_id
from functions.store import ObjectStore, StoredObject

log = logging.getLogger(__name__)

# What triggered a job (Job.source).
START_TRAINING = "start_training"  # trains on the project's annotations: Label Studio's export, else the log
TRAIN_REQUEST = "train_request"    # trains on the tasks of a staged /train body

RECENT_JOBS = 50  # job records any reader reads at most (the newest)


class JobState(str, Enum):
    """A job's state; `FINISHED` ones never change again."""
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"


FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.SUPERSEDED}
UNFINISHED = {JobState.QUEUED, JobState.RUNNING}


class JobMessage(BaseModel):
    """What the queue carries: ids only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    project: str
    job_id: str

    @classmethod
    def parse(cls, body: str | bytes) -> "JobMessage":
        """Parse and validate a message body (raises ValueError / InvalidRequest / NotFound)."""
        message = cls.model_validate_json(body)
        return cls(project=project_id(message.project), job_id=checked_job_id(message.job_id))


class Job(BaseModel):
    """A training job record.

    Attributes:
        source: ``start_training`` (the webhook) or ``train_request`` (a staged /train body).
            A request that collapses into a queued job replaces its source, label config and
            staged body: the newest request wins.
        requests: how many training requests this job answers (1 + those collapsed into it).
        requested_at: when the newest of them arrived.
        dedup_id: the queue message's deduplication id (the job id: one message per job).
        label_config: the project's label config of the newest request.
        request_key: store key of the staged /train body, for ``source == "train_request"``.
        worker: the local worker (``local:<host>:<pid>:<token>``) that holds the job, if any.
        heartbeat_at: refreshed every JOB_LEASE_SECONDS/5 while the job runs.
        attempts: how many times a worker started it.
        version: the published model version, once succeeded.
        reason: why it failed or was superseded (or why it was re-run).
        report: counts and metrics of the training (see `functions.dataset.TrainingSet.report`).
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    project: str
    state: JobState = JobState.QUEUED
    source: str
    requests: int = 1
    requested_at: str = Field(default_factory=lambda: now())
    dedup_id: str = ""
    label_config: str
    request_key: str | None = None
    worker: str | None = None
    created_at: str = Field(default_factory=lambda: now())
    updated_at: str = Field(default_factory=lambda: now())
    heartbeat_at: str | None = None
    attempts: int = 0
    version: str | None = None
    reason: str | None = None
    report: dict[str, Any] | None = None
    _etag: str | None = PrivateAttr(default=None)

    def message(self) -> JobMessage:
        """The queue message that names this job."""
        return JobMessage(project=self.project, job_id=self.job_id)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (without the label config)."""
        return self.model_dump(mode="json", exclude={"label_config"})

    def last_sign_of_life(self) -> str:
        """ISO time of the newest of its heartbeat and its last write."""
        return max(self.updated_at, self.heartbeat_at or "")


def slot_job_id(store: ObjectStore, project: str) -> str | None:
    """The job id the project's slot names, or None (no slot, or an unreadable one)."""
    found = store.get(keys.queued_slot(project))
    try:
        job_id = found.json().get("job_id") if found else None
    except (ValueError, AttributeError):
        log.warning("project %s: unreadable queued-job slot ignored", project)
        return None
    return job_id if isinstance(job_id, str) else None


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat()


def age_seconds(iso: str, at: datetime | None = None) -> float:
    """Seconds from the ISO time `iso` to `at` (now); an unreadable time counts as very old."""
    try:
        then = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return float("inf")
    return ((at or datetime.now(timezone.utc)) - then).total_seconds()


def save_job(store: ObjectStore, job: Job, *, if_match: str | None = None) -> Job:
    """Write `job` (stamping ``updated_at``, marked expiring) and return it.

    With `if_match` (an etag from `load_job`) the write happens only if nobody wrote the
    record since. Raises PreconditionFailed (then), StoreUnavailable.
    """
    job.updated_at = now()
    conditions: dict[str, Any] = {"if_match": if_match} if if_match else {}
    job._etag = store.put(keys.job(job.project, job.job_id), job.model_dump_json().encode("utf-8"), expiring=True, **conditions)
    return job


def load_job(store: ObjectStore, project: str, job_id: str) -> Job:
    """The job record, its etag kept for a conditional `save_job`.

    Raises: NotFound (no record), CorruptObject (unreadable record), StoreUnavailable.
    """
    found = store.get(keys.job(project, job_id))
    if found is None:
        raise NotFound(f"project {project} has no training job {job_id}")
    job = _parse(found)
    if job is None:
        raise CorruptObject(f"the record of training job {job_id} of project {project} is unreadable")
    return job


def list_jobs(store: ObjectStore, project: str, limit: int = RECENT_JOBS) -> list[Job]:
    """The project's newest `limit` jobs (by job id, which sorts by creation time), newest
    first. Unreadable records are logged and skipped."""
    newest = store.list_keys(keys.jobs_prefix(project))[-limit:]
    jobs = [job for job in map(_parse, store.get_many(newest)) if job is not None]
    return sorted(jobs, key=lambda job: job.job_id, reverse=True)


def _parse(found: StoredObject | None) -> Job | None:
    if found is None:
        return None
    try:
        job = Job.model_validate_json(found.data)
    except (ValidationError, ValueError):
        log.warning("skipping an unreadable job record (%d bytes)", len(found.data))
        return None
    job._etag = found.etag
    return job


@dataclass(frozen=True)
class Liveness:
    """What decides that a job is abandoned.

    Attributes:
        lease_seconds: JOB_LEASE_SECONDS: a running job's heartbeat must be younger.
        queue_hold_seconds: how long the queue may legitimately keep a message from every
            worker (SQS: the visibility timeout; ``inf``: jobs wait for a manual run).
        worker_alive: for a record's `worker`: True (alive), False (gone) or None (unknown).
    """

    lease_seconds: float
    queue_hold_seconds: float = 0.0
    worker_alive: Callable[[str], bool | None] = lambda worker: None


def abandonment(job: Job, liveness: Liveness, older: Iterable[Job] = (), at: datetime | None = None) -> str | None:
    """Why `job` is abandoned, or None while someone may still work on it.

    - its local worker is gone (`worker_alive` says False): abandoned at once;
    - queued in a live local worker: never;
    - running: no heartbeat (or write) for `lease_seconds`;
    - queued: no sign of life, from it or from an older unfinished job of its project that it
      waits behind, for `lease_seconds + queue_hold_seconds`.
    """
    if job.state not in UNFINISHED:
        return None
    alive = liveness.worker_alive(job.worker) if job.worker else None
    if alive is False:
        return f"abandoned: its worker ({job.worker}) is gone (the process was stopped or crashed); request training again"
    if job.state == JobState.RUNNING:
        last = job.last_sign_of_life()
        if age_seconds(last, at) > liveness.lease_seconds:
            return f"abandoned: no heartbeat since {last} (the worker died?); request training again"
        return None
    if alive:
        return None
    ahead = [o.last_sign_of_life() for o in older if o.state in UNFINISHED and o.job_id < job.job_id]
    last = max([job.last_sign_of_life(), *ahead])
    if age_seconds(last, at) > liveness.lease_seconds + liveness.queue_hold_seconds:
        return (f"abandoned: queued, and no worker took it since {last} (the queue lost it or the worker died?); "
                "request training again")
    return None


def reap(store: ObjectStore, jobs: list[Job], liveness: Liveness) -> list[Job]:
    """Mark each abandoned job in `jobs` (one project's, any order) failed with the reason, in
    place; returns `jobs`. A record written meanwhile (a sign of life) is left alone."""
    for job in jobs:
        why = abandonment(job, liveness, jobs)
        if why is None:
            continue
        state, reason = job.state, job.reason
        job.state, job.reason = JobState.FAILED, why
        try:
            save_job(store, job, if_match=job._etag)
            log.warning("job %s of project %s: %s", job.job_id, job.project, why)
        except PreconditionFailed:
            job.state, job.reason = state, reason  # it changed: someone is working on it
    return jobs
