"""The OpenAPI schema and Swagger UI, served as ordinary routes so Basic auth covers them too."""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request) -> dict:
    return request.app.openapi()


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="openapi.json", title=request.app.title)
