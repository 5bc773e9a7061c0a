"""``/projects/{id}/prediction-runs``: pre-annotate every task of a Label Studio project.

POST answers at once (202) with the run's id and status URL; a worker does the run (locally a
thread of this process, in AWS the predict function behind the predict queue)."""

from __future__ import annotations

from typing import Any

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError
from starlette.responses import JSONResponse

from functions.api.errors import describe
from functions.api.services import Services, ServicesDep
from functions.errors import InvalidRequest
from functions.ids import checked_job_id, checked_project_id

if TYPE_CHECKING:  # imported by the first runs request: /health stays free of httpx and NumPy
    from functions import runs

router = APIRouter(tags=["prediction runs"])


class RunRequest(BaseModel):
    """Optional body of POST /projects/{id}/prediction-runs."""

    model_config = ConfigDict(extra="ignore")

    only_missing: StrictBool = True
    label_config: str | None = None
    auto_label: StrictBool = False  # strict: it writes annotations, so "yes" or 1 is refused, not guessed


def predict_queue(services: Services) -> runs.PredictQueue:
    """The app's predict queue (made once, like the training queue)."""
    from functions import runs

    return services._once("predict_queue", lambda: runs.open_predict_queue(services.settings, services.store))


# The body is read by hand (optional, and a `detail` that says what to fix), so its schema is given here.
_RUN_BODY = {"requestBody": {"required": False, "content": {"application/json": {
    "schema": RunRequest.model_json_schema(), "example": {"only_missing": True, "auto_label": False}}}}}


@router.post("/projects/{project}/prediction-runs", status_code=status.HTTP_202_ACCEPTED, openapi_extra=_RUN_BODY)
async def start(project: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Start a run with the project's serving version: ``202 {"run", "status_url", "state",
    "model_version"[, "reason"][, "auto_label"]}``. Body (optional): ``{"only_missing": true,
    "label_config": "<View>…", "auto_label": false}``. With ``"auto_label": true`` the run also
    annotates the tasks nobody touched whose prediction reaches the version's auto-label
    thresholds; the reply's ``auto_label`` shows ``{"thresholds": {control: threshold}, "reason"}``
    (`functions.runs.auto_label`). A run that cannot start (no Label Studio credentials, no
    serving version…) is recorded failed with the reason."""
    project = checked_project_id(project)
    raw = await request.body()
    try:
        body = RunRequest.model_validate_json(raw) if raw.strip() else RunRequest()
    except ValidationError as error:
        raise InvalidRequest(f"expected {{\"only_missing\": true|false, \"label_config\": \"…\", \"auto_label\": true|false}}: "
                             f"{describe(error.errors())}") from error
    run = await run_in_threadpool(_start, services, project, body)
    reply: dict[str, Any] = {"run": run.run_id, "status_url": f"/projects/{project}/prediction-runs/{run.run_id}",
                             "state": run.state.value, "model_version": run.model_version}
    if run.reason:
        reply["reason"] = run.reason
    if run.auto_label:
        from functions.runs.records import auto_label_status

        reply["auto_label"] = auto_label_status(run)
    return JSONResponse(reply, status_code=status.HTTP_202_ACCEPTED)


def _start(services: Services, project: str, body: RunRequest) -> runs.Run:
    from functions import runs

    queue = predict_queue(services)
    version = services.cache.resolve(project)
    return runs.start_run(
        services.store, services.settings, project, queue.send, model_version=version, label_config=body.label_config,
        only_missing=body.only_missing, auto_label=body.auto_label, source=runs.FROM_API, worker=queue.worker_id, signer=services.cache.signer,
    )


@router.get("/projects/{project}/prediction-runs")
def list_project_runs(project: str, services: ServicesDep) -> dict:
    """The project's most recent runs, newest first, with their counts."""
    from functions import runs

    project = checked_project_id(project)
    alive = predict_queue(services).worker_alive
    return {"runs": [runs.status(services.store, run, alive) for run in runs.list_runs(services.store, project)]}


@router.get("/projects/{project}/prediction-runs/{run_id}")
def run_status(project: str, run_id: str, services: ServicesDep) -> dict:
    """One run: state (queued, running, succeeded, failed), model_version, tasks_total,
    tasks_done, predictions_created, tasks_skipped (and why), tasks_failed, reason; for an
    auto_label run also annotations_created, auto_label_skipped_{annotated,below_threshold,
    no_prediction} and ``auto_label: {"thresholds", "reason", "errors"}``."""
    from functions import runs

    project, run_id = checked_project_id(project), checked_job_id(run_id, "prediction run")
    return runs.status(services.store, runs.load_run(services.store, project, run_id), predict_queue(services).worker_alive)
