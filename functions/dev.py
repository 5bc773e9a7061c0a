"""`make dev`: the API under uvicorn with the in-process training worker and a local store."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from functions.api.app import create_app
from functions.logs import configure_logging
from functions.settings import get_settings


def app() -> FastAPI:
    """The app, with the local training worker started now (TRAIN_QUEUE=local): its child
    process imports scikit-learn while nobody waits, not at the first Start Training."""
    app = create_app()
    services = app.state.services
    if services.settings.train_queue == "local":
        services.queue  # noqa: B018 - made for its side effect
    return app


def main() -> None:
    """Serve the app on HOST:PORT until interrupted."""
    settings = get_settings()
    configure_logging(settings.log_level)
    logging.getLogger(__name__).info("model store: %s, training queue: %s", settings.model_store_uri, settings.train_queue)
    uvicorn.run(
        "functions.dev:app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
