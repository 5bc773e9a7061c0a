"""The SQS FIFO queue of the deployment: the api function sends, the train function consumes.

`MessageGroupId` is the project id, so a project trains one job at a time while projects run
in parallel; `MessageDeduplicationId` is the job's dedup id, so repeated identical requests
within SQS's 5-minute window become one message.

A queued job may wait while SQS hides its message (a delivery to a train function that crashed
stays invisible for the queue's visibility timeout): `hold_seconds` is that timeout, read once
from the queue (``sqs:GetQueueAttributes``), else `DEFAULT_VISIBILITY_SECONDS`.
"""

from __future__ import annotations

import logging

from functions.errors import QueueUnavailable
from functions.jobs import JobMessage
from functions.sqs_endpoint import SqsEndpoint
from functions.train_queue.base import TrainQueue

log = logging.getLogger(__name__)

DEFAULT_VISIBILITY_SECONDS = 5400.0  # infra/queue.yml: 6 x the train function's 900 s timeout


class SqsQueue(TrainQueue):
    """`queue` is a queue URL (``https://sqs.…/123456789012/name.fifo``) or a queue name,
    resolved to its URL on first use (so serverless.yml needs no account id)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._endpoint = SqsEndpoint(queue, "training queue")
        self._hold: float | None = None

    @property
    def hold_seconds(self) -> float:  # type: ignore[override]
        """The queue's visibility timeout in seconds (read once; the default if unreadable)."""
        if self._hold is None:
            try:
                attributes = self._endpoint.client().get_queue_attributes(QueueUrl=self._endpoint.url(), AttributeNames=["VisibilityTimeout"])
                self._hold = float(attributes["Attributes"]["VisibilityTimeout"])
            except Exception as error:  # noqa: BLE001 - botocore raises many types
                log.warning("training queue %s: visibility timeout unreadable (%s); assuming %g s",
                            self.queue, type(error).__name__, DEFAULT_VISIBILITY_SECONDS)
                self._hold = DEFAULT_VISIBILITY_SECONDS
        return self._hold

    def send(self, message: JobMessage, dedup_id: str) -> None:
        try:
            self._endpoint.client().send_message(
                QueueUrl=self._endpoint.url(),
                MessageBody=message.model_dump_json(),
                MessageGroupId=message.project,
                MessageDeduplicationId=dedup_id[:128],
            )
        except QueueUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - botocore raises many types
            code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code") or type(error).__name__
            raise QueueUnavailable(f"training queue {self.queue}: cannot send the job ({code})") from error
