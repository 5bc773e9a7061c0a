"""Start a prediction run and plan it into chunks.

`start_run` (the API's POST, and the training hook) checks what can be checked at once, records
the run and sends one *plan* message. The planner (`plan`, in a predict worker) reads the
project's task count from Label Studio and sends one *chunk* message per task page.

Where the label config comes from, in this order (it is kept in the run record, so every chunk
of the run predicts with the same one):

1. the request's ``label_config`` (optional in the POST body; Label Studio's current config);
2. the label config of the training job that published the version (the training hook passes
   it; for the API, the job record named by the version's manifest, while it exists: job
   records expire after some days);
3. rebuilt from the version's signed manifest (each control's ``to_name``, ``data_key`` and
   ``multiple``) and its ``labels.json``: exactly the controls and labels the model was trained on.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from functions import signing, versions
from functions.errors import BackendError, CorruptModel, CorruptObject, NotFound
from functions.ids import new_job_id
from functions.jobs import load_job, now
from functions.label_config import parse_label_config
from functions.label_studio import LabelStudioRefused
from functions.projects import allowed_projects, export_refusal
from functions.runs.records import (
    FROM_API, FROM_TRAINING, FINISHED, Run, RunState, fail_run, save_run, update_run,
)
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

NO_CREDENTIALS = ("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set: a prediction run reads the project's tasks "
                  "from Label Studio and imports the predictions into it; set both (a personal access token) and start the run again")


class RunMessage(BaseModel):
    """What the predict queue carries: a plan (no page) or one chunk (a task page, from 1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    project: str
    run: str
    page: int | None = None

    @classmethod
    def parse(cls, body: str | bytes) -> "RunMessage":
        from functions.ids import checked_job_id, project_id

        message = cls.model_validate_json(body)
        if message.page is not None and message.page < 1:
            raise ValueError("page numbers start at 1")
        return cls(project=project_id(message.project), run=checked_job_id(message.run), page=message.page)


def start_run(
    store: ObjectStore,
    settings: Settings,
    project: str,
    send: Callable[[list[RunMessage]], None],
    *,
    model_version: str | None,
    label_config: str | None = None,
    label_config_source: str | None = None,
    only_missing: bool = True,
    auto_label: bool = False,
    source: str = FROM_API,
    job_id: str | None = None,
    worker: str | None = None,
    signer: signing.Signer | None = None,
) -> Run:
    """Record a new run of `project` and send its plan message; returns the record.

    A run that cannot start (no Label Studio credentials, a project Label Studio may not be read
    for, no serving version, no label config) is recorded ``failed`` with the reason, and no
    message is sent. Raises QueueUnavailable / StoreUnavailable (the run is then recorded failed
    when the store allows).

    With `auto_label`, the thresholds of the version's signed manifest are recorded in the run
    (`functions.runs.auto_label.read_thresholds`); a version without them runs as a plain
    prediction run, its record saying why it creates no annotation."""
    run = Run(run_id=new_job_id(), project=project, source=source, job_id=job_id, only_missing=only_missing,
              chunk_tasks=settings.predict_chunk_tasks, model_version=model_version, worker=worker, auto_label=auto_label)
    reason = _refusal(store, settings, project, model_version)
    if reason is None:
        try:
            run.label_config, run.label_config_source = label_config_for(
                store, settings, project, model_version or "", label_config, label_config_source, signer
            )
        except BackendError as error:
            reason = f"no label config to predict with: {error}"
    if reason is None and auto_label:
        from functions.runs.auto_label import read_thresholds

        chosen = read_thresholds(store, settings, project, model_version or "", run.label_config, signer)
        run.auto_label_thresholds, run.auto_label_reason = chosen.thresholds, chosen.reason
    if reason is not None:
        run.state, run.reason, run.finished_at = RunState.FAILED, reason, now()
        save_run(store, run, if_none_match=True)
        log.warning("prediction run %s of project %s not started: %s", run.run_id, project, reason)
        return run
    save_run(store, run, if_none_match=True)
    try:
        send([RunMessage(project=project, run=run.run_id)])
    except Exception as error:
        fail_run(store, project, run.run_id, f"the predict queue could not take the run: {error}")
        raise
    log.info("prediction run %s of project %s queued (%s, %s)", run.run_id, project, model_version, source)
    return run


def _refusal(store: ObjectStore, settings: Settings, project: str, model_version: str | None) -> str | None:
    if not settings.label_studio_configured():
        return NO_CREDENTIALS
    if export_refusal(store, settings, project):
        if allowed_projects(settings) is not None:
            return (f"project {project} is not in LABEL_STUDIO_PROJECTS, so the backend does not write predictions into it; "
                    f"add {project} to LABEL_STUDIO_PROJECTS")
        return (f"project {project} was never connected to this backend through an authenticated /setup, so the backend "
                f"does not write predictions into it; connect the model in the project's settings or set "
                f"LABEL_STUDIO_PROJECTS={project}")
    if not model_version or versions.version_number(model_version) is None:
        return f"project {project} has no serving model version yet: press Start Training first"
    return None


def label_config_for(
    store: ObjectStore,
    settings: Settings,
    project: str,
    version: str,
    given: str | None,
    given_source: str | None = None,
    signer: signing.Signer | None = None,
) -> tuple[str, str]:
    """(label config, where it came from) for a run of `version` (see the module docstring).
    Raises UnsupportedLabelConfig (a given config without a usable control), CorruptModel."""
    if given:
        parse_label_config(given).require_controls()
        return given, given_source or "request"
    manifest = versions.verified_manifest(store, project, version, signer or signing.signer_for(store, settings))
    job_id = manifest.get("job_id")
    if isinstance(job_id, str):
        try:
            job = load_job(store, project, job_id)
            if parse_label_config(job.label_config).controls:
                return job.label_config, "training_job"
        except (NotFound, CorruptObject, BackendError):
            pass
    return config_from_manifest(store, project, version, manifest), "manifest"


def config_from_manifest(store: ObjectStore, project: str, version: str, manifest: dict[str, Any]) -> str:
    """A label config XML with exactly the controls and labels `version` was trained on."""
    from xml.sax.saxutils import quoteattr

    labels = store.read_json(f"projects/{project}/models/{version}/labels.json") or {}
    controls = manifest.get("controls") if isinstance(manifest.get("controls"), dict) else {}
    objects: dict[str, str] = {}
    parts: list[str] = []
    for name, control in controls.items():
        names = labels.get(name)
        if not isinstance(control, dict) or not isinstance(names, list) or not names:
            continue
        to_name, data_key = str(control.get("to_name") or ""), str(control.get("data_key") or "")
        if not to_name or not data_key:
            continue
        objects.setdefault(to_name, data_key)
        choice = ' choice="multiple"' if control.get("multiple") else ""
        values = "".join(f"<Choice value={quoteattr(str(label))}/>" for label in names)
        parts.append(f"<Choices name={quoteattr(name)} toName={quoteattr(to_name)}{choice}>{values}</Choices>")
    if not parts:
        raise CorruptModel(f"the manifest of {version} names no control to predict")
    texts = "".join(f"<Text name={quoteattr(n)} value={quoteattr('$' + k)}/>" for n, k in objects.items())
    return f"<View>{texts}{''.join(parts)}</View>"


def plan(
    store: ObjectStore, settings: Settings, message: RunMessage, client: Any, send: Callable[[list[RunMessage]], None]
) -> Run:
    """Read the project's task count (page 1 of size 1) and send one chunk message per page of
    the run's chunk size. A redelivered plan of a run already planned sends nothing; one whose
    sending was cut short sends every chunk again (chunks are idempotent).

    Raises LabelStudioUnreachable (retry) and store/queue errors; a refusal fails the run."""
    from functions.runs.records import load_run

    run = load_run(store, message.project, message.run)
    if run.state in FINISHED or run.planned:
        log.info("prediction run %s: already %s; plan message ignored", run.run_id, "planned" if run.planned else run.state.value)
        return run
    try:
        total = int(client.task_page(run.project, 1, 1).total)
    except LabelStudioRefused as error:
        return fail_run(store, run.project, run.run_id, str(error))

    def planned(record: Run) -> bool:
        if record.state in FINISHED:
            return False
        record.state, record.tasks_total = RunState.RUNNING, total
        record.chunks = record.pages
        record.started_at = record.started_at or now()
        return True

    run = update_run(store, run.project, run.run_id, planned)
    if run.state in FINISHED:
        return run
    pages = [RunMessage(project=run.project, run=run.run_id, page=page) for page in range(1, (run.chunks or 0) + 1)]
    if pages:
        send(pages)

    def sent(record: Run) -> bool:
        record.planned = True
        return True

    run = update_run(store, run.project, run.run_id, sent)
    log.info("prediction run %s of project %s: %d tasks in %d chunk(s) of %d", run.run_id, run.project, total,
             run.chunks, run.chunk_tasks)
    if not pages:  # an empty project: nothing to do
        from functions.runs.records import empty_counts, finish

        run = finish(store, run.project, run.run_id, empty_counts() | {"chunk_reasons": []})
    return run


__all__ = ["RunMessage", "start_run", "plan", "label_config_for", "config_from_manifest", "FROM_API", "FROM_TRAINING"]
