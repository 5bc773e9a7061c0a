"""``POST /setup`` and ``POST /predict``: what Label Studio calls before and for predictions.

Both are coroutines that answer on the event loop when everything they need is in memory
(a single-task /predict takes well under a millisecond then); whatever may read the store
or score many tasks runs in the thread pool, so the loop keeps serving other requests.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from functions.api.services import Services, ServicesDep
from functions.api.wire import PredictReply, PredictRequest, SetupReply, SetupRequest
from functions.ids import project_id
from functions.label_config import LabelConfig, parse_label_config
from functions.serving import predict_tasks

router = APIRouter(tags=["label-studio"])

INLINE_TASKS = 32  # up to this many tasks are scored on the event loop (about 3 ms of work)


@router.post("/setup")
async def setup(body: SetupRequest, services: ServicesDep) -> SetupReply:
    """The project's serving version, from the store's pointer only (3 s timeout in Label Studio)."""
    project = project_id(body.project)
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
    tasks = [{"data": task.data} for task in body.tasks]  # all that scoring reads
    if len(tasks) <= INLINE_TASKS and services.cache.in_memory(project):
        reply = _predict(services, project, config, tasks)
    else:
        reply = await run_in_threadpool(_predict, services, project, config, tasks)
    return Response(orjson.dumps(reply), media_type="application/json")


def _predict(services: Services, project: str, config: LabelConfig, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The /predict reply as a dict (`PredictReply`'s shape)."""
    cache = services.cache
    model = cache.serving_model(project, config)
    if model is None or not tasks:
        return {"results": [], "model_version": model.version if model else cache.serving_version(project)}
    results = predict_tasks(tasks, config, model, services.settings.multilabel_threshold)
    return {"results": results, "model_version": model.version}
