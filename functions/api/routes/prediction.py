"""``POST /setup`` and ``POST /predict``: what Label Studio calls before and for predictions.

Both are coroutines that answer on the event loop when everything they need is in memory
(a single-task /predict takes well under a millisecond then); whatever may read the store
or score many tasks runs in the thread pool, so the loop keeps serving other requests.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from functions import pins, projects
from functions.api.services import Services, ServicesDep
from functions.api.wire import PredictReply, PredictRequest, SetupReply, SetupRequest
from functions.errors import InvalidRequest, PayloadTooLarge
from functions.ids import project_id
from functions.label_config import LabelConfig, parse_label_config
from functions.serving import predict_tasks
from functions.settings import Settings

router = APIRouter(tags=["label-studio"])

# Text the compact model scores per second on one Lambda vCPU, with margin: this machine scores
# AG News at about 6.5 million characters/s in process (README, Speed).
PREDICT_CHARS_PER_SECOND = 2_000_000
INLINE_TASKS = 32  # up to this many tasks are scored on the event loop (about 3 ms of work)


@router.post("/setup")
async def setup(body: SetupRequest, services: ServicesDep) -> SetupReply:
    """The project's serving version, from the store's pointer and pin (3 s timeout in Label Studio).

    The connection's Extra params may pin a version: ``{"model_version": "p12-v3"}`` (`functions.pins`)."""
    project = project_id(body.project)
    if projects.needs_recording(services.store, project):  # Start Training may then export it
        # Beside the reply, never before it: a hung store must not cost /setup its 3 s.
        threading.Thread(target=projects.record_connected, args=(services.store, project), daemon=True).start()
    cache = services.cache
    if cache.in_memory(project) and pins.after_setup(cache.pin(project), pins.requested_version(body.extra_params, project)) is None:
        return SetupReply(model_version=cache.serving_version(project))
    return SetupReply(model_version=await run_in_threadpool(_setup_version, services, project, body.extra_params))


def _setup_version(services: Services, project: str, extra_params: Any) -> str:
    """The serving version after the connection's Extra params are applied (`functions.pins`)."""
    pins.follow_extra_params(services.cache, project, extra_params)
    return services.cache.serving_version(project)


@router.post("/predict", response_model=PredictReply)
async def predict(body: PredictRequest, services: ServicesDep) -> Response:
    """One prediction per task, in order, all tasks in one vectorised call.

    Before the project's first training there is no model: the reply has no results and Label
    Studio 1.23.2 stores no prediction (it logs "ML backend returns an incorrect response,
    results field must be a list with at least one item").
    """
    project = project_id(body.project)
    config = parse_label_config(body.label_config)
    config.require_controls()
    check_limits(body, services.settings, project)
    tasks = [{"data": task.data} for task in body.tasks]  # all that scoring reads
    if len(tasks) <= INLINE_TASKS and services.cache.in_memory(project):
        reply = _predict(services, project, config, tasks)
    else:
        reply = await run_in_threadpool(_predict, services, project, config, tasks)
    return Response(orjson.dumps(reply), media_type="application/json")


def check_limits(body: PredictRequest, settings: Settings, project: str) -> None:
    """Refuse what one synchronous /predict should not do: more than MAX_TASKS_PER_PREDICT tasks
    or more text than PREDICT_TIME_BUDGET_SECONDS allows at PREDICT_CHARS_PER_SECOND (413, the
    detail points to prediction runs), or a text over MAX_TEXT_CHARS (422)."""
    runs = f"start a prediction run instead (POST /projects/{project}/prediction-runs), or select fewer tasks"
    if len(body.tasks) > settings.max_tasks_per_predict:
        raise PayloadTooLarge(f"{len(body.tasks):,} tasks in one /predict; this backend takes at most "
                              f"{settings.max_tasks_per_predict:,} (MAX_TASKS_PER_PREDICT): {runs}")
    lengths = [[len(v) for v in task.data.values() if isinstance(v, str)] for task in body.tasks]
    too_long = [task.id for task, sizes in zip(body.tasks, lengths) if sizes and max(sizes) > settings.max_text_chars]
    if too_long:
        raise InvalidRequest(
            f"task(s) {', '.join(map(str, too_long[:10]))} hold a text over {settings.max_text_chars:,} characters "
            "(MAX_TEXT_CHARS); shorten them or raise the limit"
        )
    seconds = sum(map(sum, lengths)) / PREDICT_CHARS_PER_SECOND
    if seconds > settings.predict_time_budget_seconds:
        raise PayloadTooLarge(f"these {len(body.tasks):,} tasks would take about {seconds:.0f} s to predict, more than "
                              f"PREDICT_TIME_BUDGET_SECONDS ({settings.predict_time_budget_seconds:g} s): {runs}")


def _predict(services: Services, project: str, config: LabelConfig, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The /predict reply as a dict (`PredictReply`'s shape)."""
    cache = services.cache
    model = cache.serving_model(project, config)
    if model is None or not tasks:
        return {"results": [], "model_version": model.version if model else cache.serving_version(project)}
    results = predict_tasks(tasks, config, model, services.settings.multilabel_threshold)
    # A task without text gets `[]`: Label Studio 1.23.2 then stores the others' predictions and
    # leaves that task unpredicted; `{"result": []}` would store an empty prediction that counts
    # as one (tests/ls_wire_runs/README.md, checked with Retrieve Predictions).
    return {"results": [item if item["result"] else [] for item in results], "model_version": model.version}
