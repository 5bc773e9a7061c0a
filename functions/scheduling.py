"""Ask for a training: record the job, stage what it needs, queue it. Never trains here.

Called by /webhook START_TRAINING and /train; both must answer Label Studio at once.
"""

from __future__ import annotations

import logging

from functions import keys
from functions.ids import new_job_id
from functions.jobs import Job, JobState, load_job, save_job
from functions.label_config import parse_label_config
from functions.store import ObjectStore
from functions.train_queue import TrainQueue
from functions.training import SOURCE_LOG, SOURCE_REQUEST

log = logging.getLogger(__name__)


def request_training(
    store: ObjectStore, queue: TrainQueue, project: str, label_config: str, staged_body: bytes | None = None
) -> Job:
    """Queue a training job for `project` and return its record (state ``queued``).

    With `staged_body` (a /train request's raw JSON), the job trains on the tasks in it;
    without, on the project's annotation log. A job of the same project still waiting in the
    queue is superseded by this one.

    Raises:
        UnsupportedLabelConfig: the label config has no control to train (checked up front so
            Label Studio's user sees the reason at once).
    """
    parse_label_config(label_config).require_controls()
    job = Job(job_id=new_job_id(), project=project, label_config=label_config, source=SOURCE_LOG)
    if staged_body is not None:
        job.source, job.request_key = SOURCE_REQUEST, keys.staged_request(project, job.job_id)
        store.put(job.request_key, staged_body)
    save_job(store, job)
    replaced = queue.send(job.message())
    if replaced:
        _supersede(store, project, replaced, job.job_id)
    log.info("project %s: training job %s queued (%s)", project, job.job_id, job.source)
    return job


def _supersede(store: ObjectStore, project: str, job_id: str, by: str) -> None:
    old = load_job(store, project, job_id)
    if old.state == JobState.QUEUED:
        old.state, old.reason = JobState.SUPERSEDED, f"replaced by job {by}, queued before this one started"
        save_job(store, old)
