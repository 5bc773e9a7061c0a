"""Run one training job: gather annotations → fit one model per control → publish a version →
measure its quality on a hold-out (after publishing, so that never delays the new version).

The same function runs in the local worker (`functions.train_queue.local`) and in the train
Lambda. It never raises for bad data or refused Label Studio credentials: the job ends
`failed` with a reason a user can act on. Other errors (store unreachable, bugs) propagate,
so the caller can retry or record them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from functions import annotation_log, versions
from functions.dataset import ControlExamples, build_training_set
from functions.errors import ArtifactMismatch, BackendError, TrainingDataError, UnsupportedLabelConfig
from functions.jobs import FINISHED, TRAIN_REQUEST, Job, JobMessage, JobState, list_jobs, load_job, save_job
from functions.label_config import parse_label_config
from functions.label_studio import LabelStudioClient, LabelStudioRefused, LabelStudioUnreachable
from functions.settings import ModelParams, Settings
from functions.store import ObjectStore, open_store

log = logging.getLogger(__name__)

JOB_FAILURES = (TrainingDataError, UnsupportedLabelConfig, LabelStudioRefused, ArtifactMismatch)


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
    fitted = None
    try:
        fitted = fit_and_publish(store, job, settings)
        job.version, job.report, job.state = fitted.version, fitted.report, JobState.SUCCEEDED
    except JOB_FAILURES as error:
        job.state, job.reason = JobState.FAILED, str(error)
        job.report = getattr(error, "report", None) or job.report
    log.info("job %s of project %s %s %s", job.job_id, job.project, job.state.value, job.version or job.reason)
    save_job(store, job)
    for twin in recent:  # identical requests that raced past the API's check
        if twin.job_id != job.job_id and twin.state == JobState.QUEUED and twin.trigger_digest == job.trigger_digest:
            _supersede(store, twin, job.job_id, "an identical training request ran")
    if fitted is not None:  # the new version is served already; the record gets its metrics next
        job.report = measure_quality(store, job.project, fitted, settings)
        save_job(store, job)
    return job


@dataclass
class Published:
    """What `fit_and_publish` made: the served version, its report and the data it learnt from."""

    version: str
    report: dict[str, Any]
    controls: dict[str, ControlExamples]


def fit_and_publish(store: ObjectStore, job: Job, settings: Settings) -> Published:
    """Fit the job's models on all their examples and publish them at once.

    Each control's pipeline is turned into a compact serving model that must reproduce its
    probabilities on a sample of the training texts (`functions.model.export`). Hold-out
    quality is measured afterwards (`measure_quality`), so it never delays the new version.

    Raises:
        TrainingDataError: no control has enough data (the error carries the report).
        UnsupportedLabelConfig: the label config has no classification control.
        LabelStudioRefused: Label Studio refused the export (credentials, project).
        ArtifactMismatch: a compact model does not reproduce its pipeline (nothing is published).
    """
    from threadpoolctl import threadpool_limits

    config = parse_label_config(job.label_config)
    config.require_controls()
    started = time.monotonic()
    tasks, provenance = gather_tasks(store, job, settings)
    if not tasks and provenance["source"] == "annotation_log":
        pull = (
            f"Label Studio could not be read: {provenance['label_studio_error']}"
            if settings.label_studio_url and settings.label_studio_api_key
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
                models[name], serving[name], labels[name], agreement = _fit_control(examples, params)
            except TrainingDataError as error:
                problems.append(f"{name}: {error}")
                continue
            report["controls"][name]["quality"] = {"pending": "measured on a hold-out after publishing"}
            report["controls"][name]["serving_max_abs_diff"] = agreement
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
    version = versions.publish(store, job.project, job.job_id, models, serving, labels, manifest)
    return Published(version, report, {name: training_set.controls[name] for name in models})


def measure_quality(store: ObjectStore, project: str, published: Published, settings: Settings) -> dict[str, Any]:
    """Hold-out quality of each published control, written into the version's manifest; returns
    the completed report. A failure here is recorded in the report and never unpublishes."""
    from threadpoolctl import threadpool_limits

    from functions.model.evaluation import holdout_metrics

    report = published.report
    with threadpool_limits(limits=1):
        for name, examples in published.controls.items():
            try:
                quality = holdout_metrics(
                    examples.texts, examples.targets, examples.control.multiple, settings.model_params(), settings.multilabel_threshold
                )
            except Exception as error:  # noqa: BLE001 - the version is already served; only the metrics are lost
                log.exception("project %s: hold-out quality of %s failed", project, name)
                quality = {"holdout": None, "note": f"not measured: {type(error).__name__}: {error}"}
            report["controls"][name]["quality"] = quality
    try:
        versions.update_report(store, project, published.version, report)
    except BackendError as error:
        log.warning("project %s: could not add quality to the manifest of %s: %s", project, published.version, error)
    return report


def gather_tasks(store: ObjectStore, job: Job, settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job's tasks (export format) and where they came from, for the report.

    START_TRAINING jobs read Label Studio's export when LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY
    are set; if Label Studio cannot be reached they fall back to the annotation log, and say so.
    """
    if job.source == TRAIN_REQUEST:
        body = store.get_json(job.request_key) if job.request_key else None
        tasks = body.get("annotations") if isinstance(body, dict) else None
        if not isinstance(tasks, list):
            raise TrainingDataError("the staged /train request holds no 'annotations' list of tasks")
        return [task for task in tasks if isinstance(task, dict)], {"source": "train_request"}

    provenance: dict[str, Any] = {}
    if settings.label_studio_url and settings.label_studio_api_key:
        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), settings.label_studio_timeout)
        try:
            tasks = client.export_tasks(job.project)
            return tasks, {"source": "label_studio", "label_studio_url": client.base_url, "tasks_fetched": len(tasks)}
        except LabelStudioUnreachable as error:
            log.warning("job %s: %s; training on the annotation log", job.job_id, error)
            provenance["label_studio_error"] = f"{error}; trained on the annotation log instead"
        finally:
            client.close()
    else:
        provenance["label_studio_error"] = "LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY not set; trained on the annotation log"
    tasks = annotation_log.read_log(store, job.project)
    return tasks, {"source": "annotation_log", "tasks_fetched": len(tasks)} | provenance


AGREEMENT_SAMPLE = 200  # training texts on which a compact model must reproduce its pipeline


def _fit_control(examples: ControlExamples, params: ModelParams) -> tuple[Any, Any, list[str], float]:
    """(pipeline, compact model, classes, max |Δp| between them on a sample of the texts)."""
    from functions.model.classifier import fit, fit_multilabel, require_two_labels
    from functions.model.export import check_agreement, to_compact

    require_two_labels(sorted({label for target in examples.targets for label in target}), len(examples.targets))
    if examples.control.multiple:
        classifier = fit_multilabel(examples.texts, examples.targets, params)
    else:
        classifier = fit(examples.texts, [t[0] for t in examples.targets], params)
    serving = to_compact(classifier.pipeline)
    stride = max(1, len(examples.texts) // AGREEMENT_SAMPLE)
    agreement = check_agreement(classifier.pipeline, serving, [*examples.texts[::stride], ""])
    return classifier.pipeline, serving, classifier.classes, agreement


def _supersede(store: ObjectStore, job: Job, by: str, why: str) -> Job:
    job.state, job.reason = JobState.SUPERSEDED, f"{why}: job {by}"
    log.info("job %s of project %s superseded by %s", job.job_id, job.project, by)
    return save_job(store, job)


def _control_manifest(examples: ControlExamples) -> dict[str, Any]:
    control = examples.control
    return {"to_name": control.to_name, "data_key": control.data_key, "multiple": control.multiple}


def _summary(report: dict[str, Any]) -> str:
    dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(report["dropped"].items()))
    return f" (tasks seen: {report['tasks_seen']}" + (f"; dropped: {dropped})" if dropped else ")")


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
