"""``/projects/{project}/serving``: which version a project serves, and pinning it (roll back).

``PUT {"version": "p12-v3"}`` pins the project to a published version that verifies (a number,
``3``, works too); ``DELETE`` unpins it: the newest good version serves again. Trainings keep
publishing while a pin holds. The pin is one store object (`functions.pins`); this process
serves the change at once, other API instances within POINTER_TTL_SECONDS. Label Studio sees
the new version at its next /setup and re-predicts tasks whose predictions are of another one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from functions import pins
from functions.api.services import Services, ServicesDep
from functions.api.errors import describe
from functions.errors import InvalidRequest
from functions.ids import checked_project_id

router = APIRouter(tags=["status"])


class PinRequest(BaseModel):
    """Body of PUT /projects/{id}/serving."""

    model_config = ConfigDict(extra="forbid")

    version: StrictStr | StrictInt


@router.get("/projects/{project}/serving")
def serving(project: str, services: ServicesDep) -> dict[str, Any]:
    """``{"project", "version", "pinned": {"version", "source", "since"} | null}``: ``version`` is
    what /setup reports now; ``source`` says who pinned: ``operator`` or ``label_studio`` (the
    connection's Extra params)."""
    return _reply(services, checked_project_id(project))


# The body is read by hand (for a `detail` that says what to fix), so its schema is given here.
_PIN_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": PinRequest.model_json_schema(), "example": {"version": "p12-v3"}}}}}


@router.put("/projects/{project}/serving", openapi_extra=_PIN_BODY)
async def pin(project: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Pin the project to ``{"version": "p12-v3"}``; the reply is GET's. 404 for a version that is not
    published, 409 for one that fails verification; nothing changes then."""
    project = checked_project_id(project)
    try:
        body = PinRequest.model_validate_json(await request.body())
    except ValidationError as error:
        raise InvalidRequest(f'expected {{"version": "p{project}-v3"}}: {describe(error.errors())}') from None
    version = pins.version_named(body.version, project)
    return await run_in_threadpool(_pin, services, project, version)


@router.delete("/projects/{project}/serving")
def unpin(project: str, services: ServicesDep) -> dict[str, Any]:
    """Unpin: the newest good version serves again; the reply is GET's."""
    return _pin(services, checked_project_id(project), None)


def _pin(services: Services, project: str, version: str | None) -> dict[str, Any]:
    pins.pin_by_operator(services.cache, project, version)
    return _reply(services, project)


def _reply(services: Services, project: str) -> dict[str, Any]:
    cache = services.cache
    return {"project": project, "version": cache.serving_version(project), "pinned": cache.pin(project).summary()}
