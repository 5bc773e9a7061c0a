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

from functions import projects
from functions.api.services import Services, ServicesDep
from functions.api.wire import PredictReply, PredictRequest, SetupReply, SetupRequest
from functions.errors import InvalidRequest, PayloadTooLarge
from functions.ids import project_id
from functions.label_config import LabelConfig, parse_label_config
from functions.serving import predict_tasks
from functions.settings import Settings

router = APIRouter(tags=["label-studio"])

INLINE_TASKS = 32  # up to this many tasks are scored on the event loop (about 3 ms of work)


@router.post("/setup")
async def setup(body: SetupRequest, services: ServicesDep) -> SetupReply:
    """The project's serving version, from the store's pointer only (3 s timeout in Label Studio)."""
    project = project_id(body.project)
    if projects.needs_recording(services.store, project):  # Start Training may then export it
        # Beside the reply, never before it: a hung store must not cost /setup its 3 s.
        threading.Thread(target=projects.record_connected, args=(services.store, project), daemon=True).start()
    if services.cache.in_memory(project):
        version = services.cache.serving_version(project)
    else:
        version = await run_in_threadpool(services.cache.serving_version, project)
    return SetupReply(model_version=version)


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
    check_limits(body, services.settings)
    tasks = [{"data": task.data} for task in body.tasks]  # all that scoring reads
    if len(tasks) <= INLINE_TASKS and services.cache.in_memory(project):
        reply = _predict(services, project, config, tasks)
    else:
        reply = await run_in_threadpool(_predict, services, project, config, tasks)
    return Response(orjson.dumps(reply), media_type="application/json")


def check_limits(body: PredictRequest, settings: Settings) -> None:
    """Refuse more than MAX_TASKS_PER_PREDICT tasks (413) or a text over MAX_TEXT_CHARS (422)."""
    if len(body.tasks) > settings.max_tasks_per_predict:
        raise PayloadTooLarge(
            f"{len(body.tasks):,} tasks in one /predict; this backend takes at most {settings.max_tasks_per_predict:,} "
            "(MAX_TASKS_PER_PREDICT): select fewer tasks in the Data Manager"
        )
    too_long = [task.id for task in body.tasks if any(isinstance(v, str) and len(v) > settings.max_text_chars for v in task.data.values())]
    if too_long:
        raise InvalidRequest(
            f"task(s) {', '.join(map(str, too_long[:10]))} hold a text over {settings.max_text_chars:,} characters "
            "(MAX_TEXT_CHARS); shorten them or raise the limit"
        )


def _predict(services: Services, project: str, config: LabelConfig, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The /predict reply as a dict (`PredictReply`'s shape)."""
    cache = services.cache
    model = cache.serving_model(project, config)
    if model is None or not tasks:
        return {"results": [], "model_version": model.version if model else cache.serving_version(project)}
    results = predict_tasks(tasks, config, model, services.settings.multilabel_threshold)
    return {"results": results, "model_version": model.version}
