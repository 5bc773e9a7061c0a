"""Prediction runs: pre-annotate every task of a Label Studio project with one model version.

A run is started by ``POST /projects/<id>/prediction-runs`` or by a successful training
(PREDICT_AFTER_TRAINING). A worker plans it (one chunk per Label Studio task page of
PREDICT_CHUNK_TASKS tasks); chunk workers predict each page with the compact model and import
the predictions through Label Studio's ``/api/projects/<id>/import/predictions``. Locally the
workers are threads of the process that started the run; in AWS, the predict Lambda consumes
the plan and chunk messages from an SQS queue.

- `records`: run and chunk records, counts summed from chunk records;
- `planning`: start a run, plan it;
- `chunks`: do one chunk, idempotently;
- `auto_label`: runs started with ``{"auto_label": true}``: thresholds from the signed manifest,
  which tasks get an annotation made from their prediction;
- `worker`: the predict queues and the message handler shared by the local worker and Lambda.
"""

from __future__ import annotations

import logging
from typing import Any

from functions import pins
from functions.runs.planning import RunMessage, start_run
from functions.runs.records import FROM_API, FROM_TRAINING, Run, RunState, list_runs, load_run, status
from functions.runs.worker import (
    LocalPredictQueue, PredictQueue, RunContext, SqsPredictQueue, handle, open_predict_queue,
)
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

__all__ = [
    "RunMessage", "Run", "RunState", "PredictQueue", "LocalPredictQueue", "SqsPredictQueue", "RunContext",
    "handle", "open_predict_queue", "start_run", "load_run", "list_runs", "status", "start_after_training",
    "FROM_API", "FROM_TRAINING",
]


def start_after_training(store: ObjectStore, settings: Settings, job: Any, queue: PredictQueue | None = None) -> dict[str, Any] | None:
    """The training hook: when PREDICT_AFTER_TRAINING is on (default: with Label Studio
    credentials), start a run of the version `job` just published, with the job's label config.
    Returns what the job record keeps (``{"run", "status_url", "state"[, "reason"]}``), or None
    when runs after training are off; ``{"run": null, "state": "skipped", "reason"}`` while the
    project is pinned to another version (`functions.pins`). Never raises: the version is published already."""
    if not settings.runs_after_training() or not job.version:
        return None
    try:
        pinned = pins.read_pin(store, job.project).version
        if pinned and pinned != job.version:  # the new version does not serve: its predictions would not match /setup
            return {"run": None, "state": "skipped", "reason": f"project {job.project} is pinned to {pinned}, so {job.version} "
                    f"does not serve; unpin it (DELETE /projects/{job.project}/serving) to serve {job.version}, then start a run"}
        queue = queue or open_predict_queue(settings, store)
        run = start_run(
            store, settings, job.project, queue.send, model_version=job.version, label_config=job.label_config,
            label_config_source="training_job", source=FROM_TRAINING, job_id=job.job_id, worker=queue.worker_id,
        )
    except Exception as error:  # noqa: BLE001 - a run that cannot start must not fail the training
        log.exception("job %s of project %s: the prediction run could not start", job.job_id, job.project)
        return {"run": None, "state": "failed", "reason": f"the prediction run could not start: {type(error).__name__}: {error}"}
    link: dict[str, Any] = {"run": run.run_id, "status_url": f"/projects/{run.project}/prediction-runs/{run.run_id}",
                            "state": run.state.value}
    if run.reason:
        link["reason"] = run.reason
    return link
