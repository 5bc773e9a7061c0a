"""`make dev`: the API under uvicorn with the in-process training worker and a local store."""

from __future__ import annotations

import logging

import uvicorn

from functions.logs import configure_logging
from functions.settings import get_settings


def main() -> None:
    """Serve the app on HOST:PORT until interrupted."""
    settings = get_settings()
    configure_logging(settings.log_level)
    logging.getLogger(__name__).info("model store: %s, training queue: %s", settings.model_store_uri, settings.train_queue)
    uvicorn.run(
        "functions.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
