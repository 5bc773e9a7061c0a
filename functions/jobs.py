"""Training jobs: the small message that travels over the queue and the record kept in the store.

The message names a job (``{"project": "12", "job_id": "…"}``, well under SQS's 256 KiB);
the record ``projects/<id>/jobs/<job_id>.json`` holds what the job needs and what became of it.
States: queued → running → succeeded | failed, or superseded: a queued job that finds a newer
queued request of its project when its turn comes leaves the training to that one (it will
see the same annotations and more).
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions import keys
from functions.errors import NotFound
from functions.ids import checked_job_id, project_id
from functions.store import ObjectStore


# What triggered a job (Job.source).
START_TRAINING = "start_training"  # trains on the project's annotations: Label Studio's export, else the log
TRAIN_REQUEST = "train_request"    # trains on the tasks of a staged /train body


class JobState(str, Enum):
    """A job's state; `FINISHED` ones never change again."""
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"


FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.SUPERSEDED}


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
        trigger_digest: equal for requests that would train on the same data with the same
            settings (repeated triggers).
        dedup_id: the queue message's deduplication id (the digest; salted for a retry).
        label_config: the project's label config when the job was requested.
        request_key: store key of the staged /train body, for ``source == "train_request"``.
        version: the published model version, once succeeded.
        reason: why it failed or was superseded.
        report: counts and metrics of the training (see `functions.dataset.TrainingSet.report`).
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    project: str
    state: JobState = JobState.QUEUED
    source: str
    trigger_digest: str = ""
    dedup_id: str = ""
    label_config: str
    request_key: str | None = None
    created_at: str = Field(default_factory=lambda: now())
    updated_at: str = Field(default_factory=lambda: now())
    version: str | None = None
    reason: str | None = None
    report: dict[str, Any] | None = None

    def message(self) -> JobMessage:
        """The queue message that names this job."""
        return JobMessage(project=self.project, job_id=self.job_id)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (without the label config)."""
        return self.model_dump(mode="json", exclude={"label_config"})


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat()


def save_job(store: ObjectStore, job: Job) -> Job:
    """Write `job` (stamping ``updated_at``) and return it."""
    job.updated_at = now()
    store.put(keys.job(job.project, job.job_id), job.model_dump_json().encode("utf-8"))
    return job


def load_job(store: ObjectStore, project: str, job_id: str) -> Job:
    """The job record, or NotFound."""
    found = store.get(keys.job(project, job_id))
    if found is None:
        raise NotFound(f"project {project} has no training job {job_id}")
    return Job.model_validate_json(found.data)


def newest_job(store: ObjectStore, project: str) -> Job | None:
    """The project's most recently created job record, or None."""
    newest = store.list_keys(keys.jobs_prefix(project))[-1:]
    found = store.get(newest[0]) if newest else None
    return Job.model_validate_json(found.data) if found else None


def list_jobs(store: ObjectStore, project: str, limit: int = 50) -> list[Job]:
    """The project's most recent jobs, newest first."""
    newest = store.list_keys(keys.jobs_prefix(project))[-limit:]  # job ids sort by creation time
    jobs = [Job.model_validate_json(found.data) for found in store.get_many(newest) if found is not None]
    return sorted(jobs, key=lambda job: job.job_id, reverse=True)
