"""``GET /projects/{project}/suspects``: the annotations the serving version's training found
least plausible (confident learning on out-of-fold predictions, `functions.model.confident_learning`).

Read-only: the list comes from the signed manifest of the version the project serves (the one
/setup reports: the newest good version at or below ``latest.json``), where training stored it
as ``report.controls.<control>.suspects`` (ranked, most suspicious first) and
``suspects_found``. Nothing is ever changed in Label Studio or in the annotation log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from functions import versions
from functions.api.services import Services, ServicesDep
from functions.errors import NotFound
from functions.ids import checked_project_id, preview

router = APIRouter(tags=["training"])

MAX_LIMIT = 500
OLDER_VERSION_NOTE = ("{version} was trained before suspect annotations were computed; "
                      "press Start Training to publish a version that lists them")
NOT_COMPUTED_NOTE = "no suspects were computed for this control"


@router.get("/projects/{project}/suspects")
async def suspects(
    project: str,
    services: ServicesDep,
    control: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> dict[str, Any]:
    """The suspect annotations of the project's serving version, per control, most suspicious first.

    Reply: ``{"project", "version", "controls": {<name>: {"suspects": [{"task", "given",
    "suggested", "confidence", "given_probability", "text"}, …], "found": <int>}}}``; `found`
    counts every annotation flagged at training, `suspects` holds the stored top ones (at most
    `limit`). ``?control=`` keeps one control (404 if the version has no such control). 404
    before the first training; a version trained before this feature answers empty lists with
    `found` null and a `note`.
    """
    project = checked_project_id(project)
    return await run_in_threadpool(_suspects, services, project, control, limit)


def _suspects(services: Services, project: str, control: str | None, limit: int | None) -> dict[str, Any]:
    version = services.cache.resolve(project)
    if version is None:
        raise NotFound(f"project {project} has no trained model version yet: press Start Training in Label Studio "
                       "(or POST /train) first; suspect annotations are listed after each training")
    manifest = versions.verified_manifest(services.store, project, version, services.cache.signer)
    report = manifest.get("report") if isinstance(manifest.get("report"), dict) else {}
    controls = report.get("controls") if isinstance(report.get("controls"), dict) else {}
    if control is not None:
        if control not in controls:
            known = ", ".join(sorted(controls)) or "none"
            raise NotFound(f"version {version} has no control {preview(control)} (its controls: {known})")
        controls = {control: controls[control]}
    reply: dict[str, Any] = {"project": project, "version": version, "controls": {}}
    older = True
    for name, entry in controls.items():
        entry = entry if isinstance(entry, dict) else {}
        listed = entry.get("suspects")
        if isinstance(listed, list):
            older = False
            found = entry.get("suspects_found")
            item: dict[str, Any] = {
                "suspects": [s for s in listed if isinstance(s, dict)][:limit],
                "found": found if isinstance(found, int) else len(listed),
            }
            if entry.get("suspects_note"):
                item["note"] = str(entry["suspects_note"])
        else:
            item = {"suspects": [], "found": None, "note": str(entry.get("suspects_note") or NOT_COMPUTED_NOTE)}
        reply["controls"][name] = item
    if older:
        reply["note"] = OLDER_VERSION_NOTE.format(version=version)
    return reply
