"""Ask for a training: record the job, stage what it needs, queue it. Never trains here.

Called by /webhook START_TRAINING and /train; both must answer Label Studio at once.

Repeated triggers collapse. A request like the project's newest job (same trigger, label config,
settings and, for /train, body: same `trigger_digest`) returns that job while it is still
queued: it has not gathered its annotations yet, so it will see every change made since. Once
that job runs or has finished, a new request makes a new job. The job's `dedup_id`, the digest
salted with the id of the newest job before it, is the SQS message deduplication id: identical
requests racing past this check still make one message.
"""

from __future__ import annotations

import hashlib
import logging

from functions import keys
from functions.ids import new_job_id
from functions.jobs import START_TRAINING, TRAIN_REQUEST, Job, JobState, newest_job, save_job
from functions.label_config import parse_label_config
from functions.settings import Settings
from functions.store import ObjectStore
from functions.train_queue import TrainQueue

log = logging.getLogger(__name__)


def request_training(
    store: ObjectStore,
    queue: TrainQueue,
    settings: Settings,
    project: str,
    label_config: str,
    *,
    staged_body: bytes | None = None,
) -> Job:
    """Queue a training job for `project` (or find the identical one) and return its record.

    With `staged_body` (a /train request's raw JSON) the job trains on the tasks in it; without,
    on the project's annotations (Label Studio's export when configured, else the annotation log).

    Raises:
        UnsupportedLabelConfig: the label config has no control to train (checked up front, so
            the user sees the reason at once).
    """
    parse_label_config(label_config).require_controls()
    source = START_TRAINING if staged_body is None else TRAIN_REQUEST
    body_digest = hashlib.sha256(staged_body).hexdigest() if staged_body is not None else ""
    digest = _digest(project, source, label_config, body_digest, repr(settings.model_params()))

    newest = newest_job(store, project)
    if newest and newest.trigger_digest == digest and newest.state == JobState.QUEUED:
        log.info("project %s: identical training request collapsed into queued job %s", project, newest.job_id)
        return newest

    job = Job(
        job_id=new_job_id(), project=project, label_config=label_config, source=source,
        trigger_digest=digest, dedup_id=_digest(digest, newest.job_id if newest else ""),
    )
    if staged_body is not None:
        job.request_key = keys.staged_request(project, job.job_id)
        store.put(job.request_key, staged_body, expiring=True)
    save_job(store, job)
    try:
        queue.send(job.message(), job.dedup_id)
    except Exception as error:
        job.state, job.reason = JobState.FAILED, f"could not queue the job: {error}"
        save_job(store, job)
        raise
    log.info("project %s: training job %s queued (%s)", project, job.job_id, job.source)
    return job


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
