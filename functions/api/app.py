"""The FastAPI app: Label Studio's ML-backend protocol plus job status. Builds nothing heavy:
the store, model cache and queue are made by the first request that needs them."""

from __future__ import annotations

from fastapi import FastAPI

from functions.api.auth import Gatekeeper
from functions.api.errors import install_error_handlers
from functions.api.routes import docs, health, model_card, prediction, runs, serving, status, suspects, training, webhook
from functions.api.services import Services
from functions.settings import Settings, get_settings



def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, reading `settings` (default: the environment, read now)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Label Studio text classification backend",
        summary="TF-IDF + logistic regression per project, trained asynchronously, models in S3.",
        docs_url=None,  # served by routes.docs, behind the same auth
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = Services(settings)
    for module in (health, prediction, webhook, training, runs, suspects, model_card, status, serving, docs):
        app.include_router(module.router)
    app.add_middleware(Gatekeeper, settings=settings)
    install_error_handlers(app)
    return app
