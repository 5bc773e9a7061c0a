"""``GET /projects/{project}/versions/{version}``: one published version, as its model card
(HTML, for a browser) or its signed manifest (JSON, for anything else).

Behind the same HTTP Basic auth as every route but /health (`functions.api.auth`). The manifest
is read with its signature checked (`versions.verified_manifest`); the charts come from the
version's ``charts.json``, shown only when its SHA-256 matches ``charts_sha256`` in the signed
manifest: a version without charts (published before model cards), a missing, altered or
garbage ``charts.json`` gives the page without charts and a note saying why, never an error.

Errors (mapped to HTTP in `functions.api.errors`): a project id that is not a number 422; a
version name that is not ``p<project>-v<n>`` 404; a version that is not published (unknown,
or half-published) 404; a version whose manifest fails verification 500 (CorruptModel, the
detail says why); the store or the signing key unavailable 503.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from functions import keys, signing, versions
from functions.api.services import ServicesDep
from functions.errors import NotFound
from functions.ids import checked_project_id, preview
from functions.store import ObjectStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["versions"])

CHARTS = versions.CHARTS  # "charts.json"
# The page needs inline styles and the charts are inline SVG: no script, font, frame or fetch of any kind.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COMMON_HEADERS = {"Vary": "Accept", "X-Content-Type-Options": "nosniff"}
HTML_HEADERS = COMMON_HEADERS | {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The version's model card (`Accept: text/html`) or its signed manifest (JSON).",
          "content": {"application/json": {}, "text/html": {}}},
    404: {"description": "No such published version."},
}


@router.get("/projects/{project}/versions/{version}", responses=RESPONSES, response_class=JSONResponse)
def version_details(project: str, version: str, request: Request, services: ServicesDep) -> Response:
    """The version's manifest as JSON, or its model card as HTML when the request prefers
    ``text/html`` (a browser): data counts, cross-validated quality, calibration, auto-label
    threshold, suspect annotations and the charts rendered at training time."""
    project = checked_project_id(project)
    version = checked_version(project, version)
    store = services.store
    if version not in versions.list_versions(store, project):
        raise NotFound(f"project {project} has no published version {version}: GET /versions?project={project} lists them")
    manifest = versions.verified_manifest(store, project, version, signing.signer_for(store, services.settings))
    if not prefers_html(request.headers.get("accept", "")):
        return JSONResponse(manifest, headers=COMMON_HEADERS)
    from functions.model_card.page import render_page  # only card requests load it

    charts, note = stored_charts(store, project, version, manifest)
    return HTMLResponse(render_page(manifest, charts, note), headers=HTML_HEADERS)


def checked_version(project: str, value: str) -> str:
    """`value` if it names a version of `project` (``p<project>-v<n>``), else NotFound."""
    number = versions.version_number(value)
    if number is None or value != versions.version_name(project, number):
        raise NotFound(f"no version {preview(value)} of project {project}: versions are named p{project}-v<n>, e.g. p{project}-v1")
    return value


def stored_charts(
    store: ObjectStore, project: str, version: str, manifest: dict[str, Any]
) -> tuple[dict[str, dict[str, str]], str | None]:
    """(control → chart name → SVG, None) from the version's ``charts.json`` when it matches the
    signed manifest's ``charts_sha256``; else ({}, why the page has no charts). Raises
    StoreUnavailable only (the store cannot be read at all)."""
    expected = manifest.get("charts_sha256")
    if not isinstance(expected, str) or not expected:
        return {}, "This version was published without charts (trained before model cards); press Start Training for a version with them."
    found = store.get(keys.version_object(project, version, CHARTS))
    problem = None
    if found is None:
        problem = "is missing from the store"
    elif hashlib.sha256(found.data).hexdigest() != expected:
        problem = "does not match the checksum in the signed manifest"
    else:
        try:
            charts = found.json()
        except (ValueError, RecursionError):
            charts = None
        if isinstance(charts, dict):
            return {str(name): {str(key): svg for key, svg in per.items() if isinstance(svg, str)}
                    for name, per in charts.items() if isinstance(per, dict)}, None
        problem = "is not a JSON object of charts"
    log.warning("project %s: %s of %s %s: model card served without charts", project, CHARTS, version, problem)
    return {}, f"The charts of this version are not shown: its {CHARTS} {problem}."


def prefers_html(accept: str) -> bool:
    """True when the Accept header ranks ``text/html`` above ``application/json`` (a browser:
    ``text/html,application/xhtml+xml,…,*/*;q=0.8``); a tie (``*/*``, none) answers JSON."""
    ranges = []
    for item in accept.split(",")[:50]:
        media, *parameters = item.split(";")
        kind, _, subtype = media.strip().lower().partition("/")
        if not kind or not subtype:
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((kind, subtype.strip(), q))
    html, json = _quality(ranges, "text", "html"), _quality(ranges, "application", "json")
    return html > 0 and html > json


def _quality(ranges: list[tuple[str, str, float]], kind: str, subtype: str) -> float:
    """The q of the most specific range matching kind/subtype (RFC 9110 §12.5.1); 0 if none."""
    specificity = {(kind, subtype): 2, (kind, "*"): 1, ("*", "*"): 0}
    matching = [(specificity[(k, s)], q) for k, s, q in ranges if (k, s) in specificity]
    return max(matching, key=lambda match: match[0])[1] if matching else 0.0
