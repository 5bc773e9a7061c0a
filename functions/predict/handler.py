"""The predict Lambda function's entry point (standard SQS event source, ReportBatchItemFailures).

Packaged in the api zip: NumPy and the compact models only, no scikit-learn."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from functions.logs import configure_logging
from functions.predict.records import process_records
from functions.runs.worker import RunContext, SqsPredictQueue
from functions.settings import get_settings
from functions.store import open_store


@lru_cache(maxsize=1)
def _context() -> RunContext:
    settings = get_settings()
    store = open_store(settings.model_store_uri, settings)
    return RunContext(settings, store, SqsPredictQueue(settings.predict_queue).send)


def handler(event: dict[str, Any], context: Any) -> dict[str, list]:
    """SQS event → ``{"batchItemFailures": [...]}`` (see `functions.predict.records`)."""
    configure_logging(get_settings().log_level)
    return process_records(event.get("Records") or [], _context())
