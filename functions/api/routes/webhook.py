"""``POST /webhook``: Label Studio's project events. Answers within its 1 s timeout: records
or queues, never trains."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from functions import annotation_log
from functions.api.routes.training import job_reply
from functions.api.services import ServicesDep
from functions.api.wire import WebhookRequest
from functions.errors import InvalidRequest
from functions.ids import project_id
from functions.scheduling import request_training

router = APIRouter(tags=["label-studio"])

ANNOTATION_CHANGED = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


@router.post("/webhook")
@router.post("/webhook/{secret}", include_in_schema=False)  # the webhook secret as the URL's last segment
def webhook(body: WebhookRequest, services: ServicesDep) -> JSONResponse:
    """START_TRAINING queues a job; annotation events update the annotation log (201).
    Any other action is acknowledged with 200 and ignored. `functions.api.auth` has checked
    the Basic credentials or the webhook secret before."""
    if body.action == "START_TRAINING":
        project = project_id(body.project)
        label_config = body.project.get("label_config") if isinstance(body.project, dict) else None
        if not isinstance(label_config, str):
            raise InvalidRequest("START_TRAINING needs project.label_config (Label Studio 1.23 sends it)")
        job = request_training(services.store, services.queue, services.settings, project, label_config)
        return JSONResponse(job_reply(project, job.job_id).model_dump(), status_code=201)
    if body.action in ANNOTATION_CHANGED:
        if body.annotation is None:
            raise InvalidRequest(f"{body.action} needs an 'annotation' object")
        limits = annotation_log.LogLimits.of(services.settings)
        annotation_log.record_annotation(services.store, project_id(body.project), body.annotation, body.task, limits)
        return JSONResponse({"status": "ok"}, status_code=201)
    if body.action == "ANNOTATIONS_DELETED":
        limits = annotation_log.LogLimits.of(services.settings)
        count = annotation_log.record_deletions(services.store, project_id(body.project), body.annotations or [], limits)
        return JSONResponse({"status": "ok", "deleted": count}, status_code=201)
    return JSONResponse({"status": "ignored", "action": body.action}, status_code=200)
