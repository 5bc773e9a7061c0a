"""The FastAPI app: Label Studio's ML-backend protocol plus job status. Builds nothing heavy:
the store, model cache and queue are made by the first request that needs them."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from functions.api.auth import require_basic_auth
from functions.api.errors import install_error_handlers
from functions.api.routes import docs, health, prediction, training, webhook
from functions.api.services import Services
from functions.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, reading `settings` (default: the environment, on first use)."""
    app = FastAPI(
        title="Label Studio text classification backend",
        summary="TF-IDF + logistic regression per project, trained asynchronously, models in S3.",
        dependencies=[Depends(require_basic_auth)],
        docs_url=None,  # served by routes.docs, behind the same auth
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = Services(settings)
    for module in (health, prediction, webhook, training, docs):
        app.include_router(module.router)
    install_error_handlers(app)
    return app
