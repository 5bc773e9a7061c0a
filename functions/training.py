"""Run one training job: gather annotations → fit one model per control → publish a version.

The same function runs in the local worker (`functions.work_queue.local`) and in the train
Lambda. It never raises for bad data: the job ends `failed` with a reason a user can act on.
Other errors (store unreachable, bugs) propagate, so the caller can retry or record them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from functions import annotation_log, versions
from functions.dataset import TrainingSet, build_training_set
from functions.errors import TrainingDataError, UnsupportedLabelConfig
from functions.jobs import FINISHED, Job, JobMessage, JobState, list_jobs, load_job, save_job
from functions.label_config import parse_label_config
from functions.settings import Settings
from functions.store import ObjectStore, open_store

log = logging.getLogger(__name__)

SOURCE_LOG = "annotation_log"
SOURCE_REQUEST = "request"


def run_job(message: JobMessage, settings: Settings, store: ObjectStore | None = None) -> Job:
    """Execute the job `message` names and return its final record.

    A job already finished (a redelivered message) is returned unchanged. A job that finds a
    newer queued request of its project (for other data) leaves the training to it: superseded.
    """
    store = store or open_store(settings.model_store_uri)
    job = load_job(store, message.project, message.job_id)
    if job.state in FINISHED:
        log.info("job %s of project %s is already %s; nothing to do", job.job_id, job.project, job.state.value)
        return job
    recent = list_jobs(store, job.project)
    newer = next((j for j in recent if j.job_id > job.job_id and j.state == JobState.QUEUED and j.trigger_digest != job.trigger_digest), None)
    if newer is not None:
        return _supersede(store, job, newer.job_id, "a newer training request of this project is queued")
    job.state, job.reason = JobState.RUNNING, None
    save_job(store, job)
    try:
        job.version, job.report = train_and_publish(store, job, settings)
        job.state = JobState.SUCCEEDED
    except (TrainingDataError, UnsupportedLabelConfig) as error:
        job.state, job.reason = JobState.FAILED, str(error)
        job.report = getattr(error, "report", None) or job.report
    log.info("job %s of project %s %s %s", job.job_id, job.project, job.state.value, job.version or job.reason)
    save_job(store, job)
    for twin in recent:  # identical requests that raced past the API's check
        if twin.job_id != job.job_id and twin.state == JobState.QUEUED and twin.trigger_digest == job.trigger_digest:
            _supersede(store, twin, job.job_id, "an identical training request ran")
    return job


def _supersede(store: ObjectStore, job: Job, by: str, why: str) -> Job:
    job.state, job.reason = JobState.SUPERSEDED, f"{why}: job {by}"
    log.info("job %s of project %s superseded by %s", job.job_id, job.project, by)
    return save_job(store, job)


def train_and_publish(store: ObjectStore, job: Job, settings: Settings) -> tuple[str, dict[str, Any]]:
    """Fit the job's models and publish them; returns (version, report).

    Raises:
        TrainingDataError: no control has enough data (the error carries the report).
        UnsupportedLabelConfig: the label config has no classification control.
    """
    from threadpoolctl import threadpool_limits

    from functions.classifier import fit

    config = parse_label_config(job.label_config)
    config.require_controls()
    started = time.monotonic()
    training_set = build_training_set(_gather_tasks(store, job), config)
    report: dict[str, Any] = {"source": job.source} | training_set.report()
    params = settings.model_params()

    models: dict[str, Any] = {}
    labels: dict[str, list[str]] = {}
    problems: list[str] = []
    with threadpool_limits(limits=1):  # multi-threaded BLAS made fits 3-8x slower on 2 cores
        for name, examples in training_set.controls.items():
            if examples.control.multiple:
                problems.append(f"{name}: multi-label (choice=\"multiple\") training is not supported yet")
                continue
            try:
                classifier = fit(examples.texts, [target[0] for target in examples.targets], params)
            except TrainingDataError as error:
                problems.append(f"{name}: {error}")
                continue
            models[name], labels[name] = classifier.pipeline, classifier.classes
    report["fit_seconds"] = round(time.monotonic() - started, 3)
    if problems:
        report["problems"] = problems
    if not models:
        raise TrainingDataError("; ".join(problems) + _summary(training_set), report)

    manifest = {
        "report": report,
        "params": params.__dict__,
        "controls": {name: _control_manifest(training_set, name) for name in models},
        "sklearn_version": _sklearn_version(),
    }
    return versions.publish(store, job.project, job.job_id, models, labels, manifest), report


def _gather_tasks(store: ObjectStore, job: Job) -> list[dict[str, Any]]:
    if job.source == SOURCE_REQUEST:
        body = store.get_json(job.request_key) if job.request_key else None
        tasks = body.get("annotations") if isinstance(body, dict) else None
        if not isinstance(tasks, list):
            raise TrainingDataError("the staged /train request holds no 'annotations' list of tasks")
        return [task for task in tasks if isinstance(task, dict)]
    return annotation_log.read_log(store, job.project)


def _control_manifest(training_set: TrainingSet, name: str) -> dict[str, Any]:
    control = training_set.controls[name].control
    return {"to_name": control.to_name, "data_key": control.data_key, "multiple": control.multiple}


def _summary(training_set: TrainingSet) -> str:
    dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(training_set.dropped.items()))
    return f" (tasks seen: {training_set.tasks_seen}" + (f"; dropped: {dropped})" if dropped else ")")


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
