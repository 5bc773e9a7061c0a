"""Run one training job: gather annotations → fit one model per control, with out-of-fold
predictions that give its quality, calibration, auto-label threshold and suspects → publish a
version whose signed manifest holds all of them.

The same function runs in the local worker (`functions.train_queue.local`) and in the train
Lambda. While a job runs, a thread beside the fit refreshes its record's ``heartbeat_at`` every
JOB_LEASE_SECONDS/5, so a job whose worker died is seen as abandoned (`functions.jobs`).
A job reads at most MAX_TRAINING_TASKS annotated tasks; beyond that it fails with a reason
that names the setting. It never raises for bad data or refused Label Studio credentials: the job ends
`failed` with a reason a user can act on. Other errors (store unreachable, bugs) propagate,
so the caller can retry or record them.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from functions import annotation_log, keys, versions
from functions.dataset import ControlExamples, build_training_set
from functions.errors import (
    ArtifactMismatch, BackendError, CorruptObject, NotFound, PreconditionFailed, TrainingDataError, UnsupportedLabelConfig,
)
from functions.jobs import FINISHED, TRAIN_REQUEST, Job, JobMessage, JobState, load_job, now, save_job, slot_job_id
from functions.label_config import parse_label_config
from functions.label_studio import LabelStudioClient, LabelStudioRefused, LabelStudioUnreachable
from functions.label_studio_token import label_studio_token
from functions.projects import export_refusal
from functions.settings import ModelParams, Settings
from functions.store import ObjectStore, open_store

log = logging.getLogger(__name__)

JOB_FAILURES = (TrainingDataError, UnsupportedLabelConfig, LabelStudioRefused, ArtifactMismatch)


def run_job(message: JobMessage, settings: Settings, store: ObjectStore | None = None) -> Job:
    """Execute the job `message` names and return its final record.

    A job already finished (a redelivered message) is returned unchanged. A job that finds a
    newer queued job of its project leaves the training to it (superseded): that one answers
    a newer request and will see the same annotations and more. A job left running by a
    worker that died (a redelivery, a re-run) is started again.
    """
    store = store or open_store(settings.model_store_uri)
    job = _start(store, message)
    if job.state != JobState.RUNNING:
        return job
    fitted = None
    try:
        with _heartbeat(store, job, settings.job_lease_seconds / 5):
            fitted = fit_and_publish(store, job, settings)
        job.version, job.report, job.state = fitted.version, fitted.report, JobState.SUCCEEDED
    except JOB_FAILURES as error:
        job.state, job.reason = JobState.FAILED, str(error)
        job.report = getattr(error, "report", None) or job.report
    log.info("job %s of project %s %s %s", job.job_id, job.project, job.state.value, job.version or job.reason)
    if fitted is not None:  # pre-annotate the project with the new version (PREDICT_AFTER_TRAINING)
        from functions.runs import start_after_training

        link = start_after_training(store, settings, job)
        if link is not None:
            job.report = (job.report or {}) | {"prediction_run": link}
    save_job(store, job)
    return job


def _start(store: ObjectStore, message: JobMessage) -> Job:
    """Move the job to running (conditionally: a request may be folding into it right now, and
    then its newest label config must win); returns it, or the record that says why not."""
    for _ in range(8):
        job = load_job(store, message.project, message.job_id)
        if job.state in FINISHED:
            log.info("job %s of project %s is already %s; nothing to do", job.job_id, job.project, job.state.value)
            return job
        newer = _newer_queued(store, job)
        if newer is not None:
            job.state, job.reason = JobState.SUPERSEDED, f"a newer training request of this project is queued: job {newer}"
        else:
            job.state, job.reason = JobState.RUNNING, None
            job.heartbeat_at, job.attempts = now(), job.attempts + 1
        try:
            save_job(store, job, if_match=job._etag)
        except PreconditionFailed:
            continue  # changed meanwhile: read it again
        if job.state == JobState.SUPERSEDED:
            log.info("job %s of project %s superseded by %s", job.job_id, job.project, newer)
        return job
    raise PreconditionFailed(f"the record of job {message.job_id} kept changing; not started")


def _newer_queued(store: ObjectStore, job: Job) -> str | None:
    """The id of the project's queued job (its slot) if it is newer than `job`, else None."""
    newer = slot_job_id(store, job.project)
    if newer is None or newer <= job.job_id:
        return None
    try:
        return newer if load_job(store, job.project, newer).state == JobState.QUEUED else None
    except (NotFound, CorruptObject):
        return None


@contextmanager
def _heartbeat(store: ObjectStore, job: Job, interval: float) -> Iterator[None]:
    """Refresh ``job.heartbeat_at`` in the store every `interval` seconds while the block runs
    (the caller writes the record only after the block, so the writes never interleave)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            job.heartbeat_at = now()
            try:
                save_job(store, job)
            except Exception as error:  # noqa: BLE001 - a missed beat is retried at the next one
                log.warning("job %s: heartbeat not written (%s)", job.job_id, error)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.job_id[:12]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass
class Published:
    """What `fit_and_publish` made: the served version, its report and the data it learnt from."""

    version: str
    report: dict[str, Any]
    controls: dict[str, ControlExamples]


def fit_and_publish(store: ObjectStore, job: Job, settings: Settings) -> Published:
    """Fit the job's models on all their examples and publish them at once.

    Each control's pipeline is fitted with out-of-fold predictions (CROSS_VALIDATION_FOLDS) that
    give its quality, calibration, auto-label threshold and suspects
    (`functions.model.validation`), and is turned into a compact serving model that must
    reproduce its probabilities on a sample of the training texts (`functions.model.export`).
    The report, charts included (`functions.model_card.charts`), is part of the signed version.

    Raises:
        TrainingDataError: no control has enough data (the error carries the report).
        UnsupportedLabelConfig: the label config has no classification control.
        LabelStudioRefused: Label Studio refused the export (credentials, project).
        ArtifactMismatch: a compact model does not reproduce its pipeline (nothing is published).
    """
    from threadpoolctl import threadpool_limits

    from functions.model_card.charts import render_charts

    config = parse_label_config(job.label_config)
    config.require_controls()
    started = time.monotonic()
    tasks, provenance = gather_tasks(store, job, settings)
    if not tasks and provenance["source"] == "annotation_log":
        pull = (
            f"Label Studio was not read: {provenance['label_studio_error']}"
            if settings.label_studio_configured()
            else "Set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to pull the annotations already in Label Studio, "
            "or save annotations again to resend them"
        )
        raise TrainingDataError(
            f"the annotation log of project {job.project} is empty: Label Studio sends an annotation to /webhook only "
            "when it is saved while the backend is connected, never for imported annotations (and, with Basic auth, "
            f"only once the project webhook carries the Authorization header). {pull}",
            provenance,
        )
    training_set = build_training_set(tasks, config)
    report: dict[str, Any] = provenance | training_set.report()
    params = settings.model_params()

    models: dict[str, Any] = {}
    serving: dict[str, Any] = {}
    labels: dict[str, list[str]] = {}
    problems: list[str] = []
    with threadpool_limits(limits=1):  # multi-threaded BLAS made fits 3-8x slower on 2 cores
        for name, examples in training_set.controls.items():
            try:
                fitted = _fit_control(examples, params, settings)
            except TrainingDataError as error:
                problems.append(f"{name}: {error}")
                continue
            models[name], serving[name], labels[name] = fitted.pipeline, fitted.serving, fitted.classes
            report["controls"][name] |= fitted.report
    report["fit_seconds"] = round(time.monotonic() - started, 3)
    if problems:
        report["problems"] = problems
    if not models:
        raise TrainingDataError("; ".join(problems) + _summary(report), report)

    manifest = {
        "report": report,
        "params": params.__dict__,
        "controls": {name: _control_manifest(training_set.controls[name]) for name in models},
        "sklearn_version": _sklearn_version(),
    }
    charts = {name: render_charts(report["controls"][name]) for name in models}
    version = versions.publish(store, job.project, job.job_id, models, serving, labels, manifest, charts=charts, settings=settings)
    return Published(version, report, {name: training_set.controls[name] for name in models})


def gather_tasks(store: ObjectStore, job: Job, settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job's tasks (export format) and where they came from, for the report.

    START_TRAINING jobs read Label Studio's export when LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY
    are set and the project may be exported (`functions.projects.export_refusal`); if it may
    not, or Label Studio cannot be reached, they train on the annotation log, and the report's
    ``label_studio_error`` says why.

    Raises:
        TrainingDataError: more than MAX_TRAINING_TASKS tasks, or a staged body without tasks.
        LabelStudioRefused: Label Studio refused the token or the project.
    """
    limit = settings.max_training_tasks
    if job.source == TRAIN_REQUEST:
        body = store.get_json(job.request_key) if job.request_key else None
        tasks = body.get("annotations") if isinstance(body, dict) else None
        if not isinstance(tasks, list):
            raise TrainingDataError("the staged /train request holds no 'annotations' list of tasks")
        _check_size(len(tasks), limit, "the /train request")
        return [task for task in tasks if isinstance(task, dict)], {"source": "train_request"}

    provenance: dict[str, Any] = {}
    refusal = export_refusal(store, settings, job.project) if settings.label_studio_configured() else None
    if refusal:
        log.warning("job %s: %s", job.job_id, refusal)
        provenance = {"label_studio_allowed": False, "label_studio_error": f"{refusal}; trained on the annotation log instead"}
    elif settings.label_studio_configured():
        client = None
        try:
            client = LabelStudioClient(settings.label_studio_url or "", label_studio_token(settings), settings.label_studio_timeout)
            tasks = client.export_tasks(job.project)
            _check_size(len(tasks), limit, f"Label Studio's export of project {job.project}")
            return tasks, {"source": "label_studio", "label_studio_url": client.base_url, "tasks_fetched": len(tasks)}
        except LabelStudioUnreachable as error:
            log.warning("job %s: %s; training on the annotation log", job.job_id, error)
            provenance["label_studio_error"] = f"{error}; trained on the annotation log instead"
        finally:
            if client is not None:
                client.close()
    else:
        provenance["label_studio_error"] = "LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY not set; trained on the annotation log"
    _check_size(len(store.list_keys(keys.annotations_prefix(job.project))), limit, f"the annotation log of project {job.project}")
    tasks = annotation_log.read_log(store, job.project)
    return tasks, {"source": "annotation_log", "tasks_fetched": len(tasks)} | provenance


def _check_size(count: int, limit: int, where: str) -> None:
    """Raise TrainingDataError when `where` holds more than `limit` (MAX_TRAINING_TASKS) tasks."""
    if count > limit:
        raise TrainingDataError(
            f"{where} holds {count} tasks, more than the {limit} one training job may read (MAX_TRAINING_TASKS); "
            "raise MAX_TRAINING_TASKS (the training needs memory for them) or train on fewer tasks",
            {"tasks_seen": count, "max_training_tasks": limit},
        )


AGREEMENT_SAMPLE = 200  # training texts on which a compact model must reproduce its pipeline


@dataclass
class FittedControl:
    """One control's fitted pipeline, its calibrated compact model, classes and report entries."""

    pipeline: Any
    serving: Any
    classes: list[str]
    report: dict[str, Any]


def _fit_control(examples: ControlExamples, params: ModelParams, settings: Settings) -> FittedControl:
    """Fit, cross-validate, calibrate and export one control's model.

    Raises:
        TrainingDataError: fewer than 2 labels, or no vocabulary.
        ArtifactMismatch: the compact model does not reproduce the pipeline.
    """
    from dataclasses import replace

    from functions.model.export import check_agreement, to_compact
    from functions.model.out_of_fold import fit_with_out_of_fold
    from functions.model.validation import ValidationOptions, suspect_entries, validate

    multiple = examples.control.multiple
    classifier, oof = fit_with_out_of_fold(examples.texts, examples.targets, multiple, params, settings.cross_validation_folds)
    serving = to_compact(classifier.pipeline)
    stride = max(1, len(examples.texts) // AGREEMENT_SAMPLE)
    agreement = check_agreement(classifier.pipeline, serving, [*examples.texts[::stride], ""])
    options = ValidationOptions(
        settings.calibrate_scores, settings.auto_label_target, settings.multilabel_threshold, settings.suspects_limit
    )
    calibration, report = validate(oof, classifier.classes, multiple, options)
    report |= suspect_entries(oof, classifier.classes, multiple, examples.texts, examples.task_ids, settings.suspects_limit)
    report["serving_max_abs_diff"] = agreement
    return FittedControl(classifier.pipeline, replace(serving, calibration=calibration), classifier.classes, report)


def _control_manifest(examples: ControlExamples) -> dict[str, Any]:
    control = examples.control
    return {"to_name": control.to_name, "data_key": control.data_key, "multiple": control.multiple}


def _summary(report: dict[str, Any]) -> str:
    dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(report["dropped"].items()))
    return f" (tasks seen: {report['tasks_seen']}" + (f"; dropped: {dropped})" if dropped else ")")


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
