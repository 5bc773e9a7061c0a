"""Turn a batch of SQS records into training jobs and report which ones SQS should retry.

- A job that fails because of its data ends `failed` in its record and is not retried.
- Any other error (store or queue unreachable, a bug) leaves the job queued with the reason
  and reports the record in ``batchItemFailures``: SQS redelivers it and, after
  TRAIN_MAX_ATTEMPTS deliveries, moves it to the dead-letter queue; the last attempt
  records the job as failed.
- A redelivered message whose job already finished does nothing (see `run_job`), and a job
  that crashed while publishing finishes its own version: one request, one version.
- A message whose job has no record (the project's data was deleted, or the record expired)
  is dropped with a warning: retrying cannot bring the record back.
The shape follows AWS's partial batch responses (``ReportBatchItemFailures``).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from functions.errors import BackendError, NotFound
from functions.jobs import JobMessage, JobState, load_job, save_job
from functions.settings import Settings
from functions.store import ObjectStore
from functions.training import run_job

log = logging.getLogger(__name__)


def process_records(records: Iterable[Mapping[str, Any]], settings: Settings, store: ObjectStore) -> dict[str, list]:
    """Run the job of each record; returns ``{"batchItemFailures": [{"itemIdentifier": id}]}``."""
    failures = []
    for record in records:
        message_id = record.get("messageId", "?")
        try:
            message = JobMessage.parse(record.get("body") or "")
        except (ValidationError, ValueError, BackendError) as error:
            log.error("dropping SQS message %s: not a training job message (%s)", message_id, error)
            continue
        attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        try:
            run_job(message, settings, store)
        except NotFound as error:  # the record is written before the message is sent: it was deleted or expired
            log.warning("dropping SQS message %s: %s (the project's data was deleted, or the record expired after 7 days); "
                        "nothing to train", message_id, error)
        except Exception as error:  # noqa: BLE001 - anything but a data failure is retried by SQS
            log.exception("job %s of project %s: attempt %d failed", message.job_id, message.project, attempt)
            _note_failed_attempt(store, message, attempt, settings.train_max_attempts, error)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def _note_failed_attempt(store: ObjectStore, message: JobMessage, attempt: int, attempts: int, error: Exception) -> None:
    last = attempt >= attempts
    try:
        job = load_job(store, message.project, message.job_id)
        job.state = JobState.FAILED if last else JobState.QUEUED
        outcome = "giving up; the message goes to the dead-letter queue" if last else "SQS will retry"
        job.reason = f"attempt {attempt} of {attempts} failed ({type(error).__name__}: {error}); {outcome}"
        save_job(store, job)
    except Exception:  # noqa: BLE001 - the store may be what is failing
        log.warning("could not record the failed attempt of job %s", message.job_id)
