"""Turn a batch of SQS records into prediction-run work and report which ones SQS should retry.

- A plan or chunk that fails transiently (Label Studio unreachable after the client's retries,
  the store, a chunk another worker holds) is reported in ``batchItemFailures``: SQS redelivers
  it after the queue's visibility timeout.
- Its last delivery (``ApproximateReceiveCount`` ≥ PREDICT_MAX_ATTEMPTS, the queue's
  maxReceiveCount) records the failure instead (a chunk: all its tasks failed; a plan: the
  run failed), so the run still ends with counts and a reason.
- A redelivered chunk whose record exists does nothing (`functions.runs.chunks`).
- A message that is not a run message is logged and dropped.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from functions.errors import BackendError
from functions.runs.planning import RunMessage
from functions.runs.worker import RunContext, handle

log = logging.getLogger(__name__)


def process_records(records: Iterable[Mapping[str, Any]], ctx: RunContext) -> dict[str, list]:
    """Handle each record; returns ``{"batchItemFailures": [{"itemIdentifier": id}]}``."""
    failures = []
    for record in records:
        message_id = record.get("messageId", "?")
        try:
            message = RunMessage.parse(record.get("body") or "")
        except (ValidationError, ValueError, BackendError) as error:
            log.error("dropping SQS message %s: not a prediction-run message (%s)", message_id, error)
            continue
        attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        try:
            handle(message, ctx, attempt)
        except Exception as error:  # noqa: BLE001 - SQS retries, then dead-letters
            log.warning("prediction run %s of project %s, page %s: attempt %d reported for retry (%s)",
                        message.run, message.project, message.page, attempt, type(error).__name__)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
