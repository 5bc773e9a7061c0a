"""``POST /setup`` and ``POST /predict``: what Label Studio calls before and for predictions."""

from __future__ import annotations

from fastapi import APIRouter

from functions.api.services import ServicesDep
from functions.api.wire import PredictReply, PredictRequest, SetupReply, SetupRequest
from functions.ids import project_id
from functions.label_config import parse_label_config
from functions.serving import predict_tasks

router = APIRouter(tags=["label-studio"])


@router.post("/setup")
def setup(body: SetupRequest, services: ServicesDep) -> SetupReply:
    """The project's serving version, from the store's pointer only (3 s timeout in Label Studio)."""
    return SetupReply(model_version=services.cache.serving_version(project_id(body.project)))


@router.post("/predict")
def predict(body: PredictRequest, services: ServicesDep) -> PredictReply:
    """One prediction per task, in order, all tasks in one vectorised call.

    Before the project's first training there is no model: the reply has no results and Label
    Studio 1.23.2 stores no prediction (it logs "ML backend returns an incorrect response,
    results field must be a list with at least one item").
    """
    project = project_id(body.project)
    config = parse_label_config(body.label_config)
    config.require_controls()
    cache = services.cache
    pointer = cache.pointer(project)
    if pointer is not None:
        model = cache.model(project, pointer.version)
    elif services.settings.cold_start:
        model = cache.cold_start_model(config)
    else:
        model = None
    if model is None or not body.tasks:
        return PredictReply(results=[], model_version=model.version if model else cache.serving_version(project))
    tasks = [task.model_dump() for task in body.tasks]
    results = predict_tasks(tasks, config, model, services.settings.multilabel_threshold)
    return PredictReply(results=results, model_version=model.version)
