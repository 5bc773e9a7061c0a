"""``POST /train`` (older Label Studio), job status and ``GET /versions``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, status
from pydantic import ValidationError

from functions import versions
from functions.api.errors import describe
from functions.api.services import ServicesDep
from functions.api.wire import JobReply, TrainRequest, VersionsReply
from functions.errors import InvalidRequest
from functions.ids import checked_job_id, checked_project_id, project_id
from functions.scheduling import job_status as read_job, project_jobs, request_training

router = APIRouter(tags=["training"])


def job_reply(project: str, job_id: str) -> JobReply:
    """The reply to a queued training request (Label Studio keeps ``job``)."""
    return JobReply(job=job_id, status_url=f"/projects/{project}/jobs/{job_id}")


@router.post("/train", status_code=status.HTTP_201_CREATED, openapi_extra={"requestBody": {"content": {"application/json": {"schema": TrainRequest.model_json_schema()}}}})
async def train(request: Request, services: ServicesDep) -> JobReply:
    """Stage the annotated tasks in the store and queue a job that trains on them.

    The raw body is staged as received (it can be several MB), after checking its shape.
    """
    raw = await request.body()
    try:
        body = TrainRequest.model_validate(json.loads(raw))
    except ValidationError as error:
        raise InvalidRequest(f"/train expects Label Studio's JSON {{annotations, project, label_config}}: {describe(error.errors())}") from error
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"/train expects Label Studio's JSON {{annotations, project, label_config}}: {_first_line(error)}") from error
    project = project_id(body.project)
    job = request_training(services.store, services.queue, services.settings, project, body.label_config, staged_body=raw)
    return job_reply(project, job.job_id)


@router.get("/projects/{project}/jobs")
def jobs(project: str, services: ServicesDep) -> dict:
    """The project's most recent training jobs, newest first."""
    project = checked_project_id(project)
    return {"jobs": [job.public() for job in project_jobs(services.store, services.queue, services.settings, project)]}


@router.get("/projects/{project}/jobs/{job_id}")
def job_status(project: str, job_id: str, services: ServicesDep) -> dict:
    """One job: state (queued, running, succeeded, failed, superseded), reason, report, version."""
    project, job_id = checked_project_id(project), checked_job_id(job_id)
    return read_job(services.store, services.queue, services.settings, project, job_id).public()


@router.get("/versions", response_model_exclude_none=True)
def list_model_versions(services: ServicesDep, project: str | None = None) -> VersionsReply:
    """Published model versions, oldest first (half-published ones never appear: see
    `versions.list_versions`). Label Studio sends no project and reads `versions`;
    `?project=12` narrows the list and adds each version's manifest (training report, quality)."""
    store = services.store
    if not project:
        return VersionsReply(versions=[v for p in versions.list_projects(store) for v in versions.list_versions(store, p)])
    project = checked_project_id(project)
    names = versions.list_versions(store, project)
    return VersionsReply(versions=names, details=versions.read_manifests(store, project, names))


def _first_line(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "the JSON is nested too deeply"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
