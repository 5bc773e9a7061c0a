"""The OpenAPI schema and Swagger UI, served as ordinary routes so Basic auth covers them too.

``/docs`` works offline: Swagger UI's script, stylesheet and favicon come from the pinned
`fastapi-offline` package (requirements/api.txt; it ships only those files and ReDoc's bundle,
which serverless.yml's slimPatterns leave out of the api zip) and are served by this app under
``/docs/static/``, never from a CDN. The page's own start-up code is a static script too
(`INITIALIZER`), so the page runs under a Content-Security-Policy that lets it load and fetch
from this origin only (`CONTENT_SECURITY_POLICY`; ``data:`` images are the icons inlined in
Swagger UI's stylesheet). All links are relative ("docs/static/…", "openapi.json"), so the page
works under any host and path prefix.
"""

from __future__ import annotations

import functools
import gzip
import html
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from functions.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSET_PACKAGE = "fastapi_offline"  # fastapi-offline: Swagger UI's dist files, no CDN
STATIC = "docs/static"  # relative to /docs: the assets are at /docs/static/<name>
# The page's start-up code: FastAPI's own Swagger UI settings, as a static script (no inline script
# under the CSP). No validator badge: Swagger UI would otherwise ask validator.swagger.io.
INITIALIZER = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""
ASSETS = {  # name under /docs/static/ → content type; all but the initializer are ASSET_PACKAGE's static/<name>
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
    "swagger-initializer.js": "text/javascript; charset=utf-8",
}
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"}
COMPRESS_OVER = 1024  # bytes: smaller assets go as they are


@router.get("/openapi.json")
def openapi(request: Request) -> dict:
    return request.app.openapi()


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(page(request.app.title), headers=PAGE_HEADERS)


@router.get("/docs/static/{name}")
def docs_asset(name: str, request: Request) -> Response:
    """One of `ASSETS`, gzipped when the client accepts it (API Gateway does not compress)."""
    if name not in ASSETS:
        raise NotFound(f"no docs asset {name[:100]!r}")
    body, compressed = asset(name)
    headers = dict(ASSET_HEADERS)
    if compressed is not None and accepts_gzip(request.headers.get("accept-encoding", "")):
        body, headers["Content-Encoding"] = compressed, "gzip"
    return Response(body, media_type=ASSETS[name], headers=headers)


def page(title: str) -> str:
    title = html.escape(title)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{STATIC}/favicon.png">
<link rel="stylesheet" type="text/css" href="{STATIC}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC}/swagger-ui-bundle.js"></script>
<script src="{STATIC}/swagger-initializer.js"></script>
</body>
</html>
"""


@functools.cache
def asset(name: str) -> tuple[bytes, bytes | None]:
    """The asset's bytes and, if worth it, their gzip; read and compressed once per process."""
    if name == "swagger-initializer.js":
        body = INITIALIZER.encode()
    else:
        body = (resources.files(ASSET_PACKAGE) / "static" / name).read_bytes()
    compressible = len(body) > COMPRESS_OVER and not ASSETS[name].startswith("image/")
    return body, gzip.compress(body, compresslevel=6, mtime=0) if compressible else None


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False
