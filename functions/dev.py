"""`make dev`: the API under uvicorn with the in-process training worker and a local store."""

from __future__ import annotations

import logging

import uvicorn

from functions.settings import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("model store: %s", settings.model_store_uri)
    uvicorn.run(
        "functions.api.app:create_app", factory=True, host=settings.host, port=settings.port, log_level=settings.log_level.lower()
    )


if __name__ == "__main__":
    main()
