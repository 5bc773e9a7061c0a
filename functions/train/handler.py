"""The train Lambda function's entry point (SQS FIFO event source, batch size 1)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from functions.logs import configure_logging
from functions.settings import get_settings
from functions.store import ObjectStore, open_store
from functions.train.records import process_records


@lru_cache(maxsize=1)
def _store() -> ObjectStore:
    return open_store(get_settings().model_store_uri)


def handler(event: dict[str, Any], context: Any) -> dict[str, list]:
    """SQS event → ``{"batchItemFailures": [...]}`` (see `functions.train.records`)."""
    configure_logging(get_settings().log_level)
    return process_records(event.get("Records") or [], get_settings(), _store())
