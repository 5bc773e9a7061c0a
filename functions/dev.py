"""`make dev`: the API under uvicorn with the in-process training worker and a local store."""

from __future__ import annotations

import logging
import sys

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from functions.api.app import create_app
from functions.logs import configure_logging
from functions.settings import describe_settings_error, get_settings


LOOPBACK_NAMES = "127.0.0.1,localhost,::1"


def app() -> FastAPI:
    """The app, with the local training worker started now (TRAIN_QUEUE=local): its child
    process imports scikit-learn while nobody waits, not at the first Start Training.

    Bound to loopback with no ALLOWED_HOSTS, it answers only loopback Host names: a web page
    that rebinds its own DNS name to 127.0.0.1 cannot reach it.
    """
    settings = get_settings()
    if settings.host in LOOPBACK_NAMES.split(",") and not settings.allowed_hosts:
        settings = settings.model_copy(update={"allowed_hosts": LOOPBACK_NAMES})
    app = create_app(settings)
    services = app.state.services
    if services.settings.train_queue == "local":
        services.queue  # noqa: B018 - made for its side effect
    return app


def main() -> None:
    """Serve the app on HOST:PORT until interrupted; an invalid setting exits with status 1 and
    one line naming it (no traceback)."""
    try:
        settings = get_settings()
    except ValidationError as error:
        sys.exit(f"error: invalid settings in the environment: {describe_settings_error(error)}")
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
