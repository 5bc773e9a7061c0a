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
import threading
from typing import Any

from functions.errors import QueueUnavailable
from functions.jobs import JobMessage
from functions.train_queue.base import TrainQueue

log = logging.getLogger(__name__)

DEFAULT_VISIBILITY_SECONDS = 5400.0  # infra/queue.yml: 6 x the train function's 900 s timeout


class SqsQueue(TrainQueue):
    """`queue` is a queue URL (``https://sqs.…/123456789012/name.fifo``) or a queue name,
    resolved to its URL on first use (so serverless.yml needs no account id)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._url = queue if queue.startswith(("https://", "http://")) else None
        self._client: Any = None
        self._lock = threading.Lock()
        self._hold: float | None = None

    @property
    def hold_seconds(self) -> float:  # type: ignore[override]
        """The queue's visibility timeout in seconds (read once; the default if unreadable)."""
        if self._hold is None:
            try:
                attributes = self._sqs().get_queue_attributes(QueueUrl=self._queue_url(), AttributeNames=["VisibilityTimeout"])
                self._hold = float(attributes["Attributes"]["VisibilityTimeout"])
            except Exception as error:  # noqa: BLE001 - botocore raises many types
                log.warning("training queue %s: visibility timeout unreadable (%s); assuming %g s",
                            self.queue, type(error).__name__, DEFAULT_VISIBILITY_SECONDS)
                self._hold = DEFAULT_VISIBILITY_SECONDS
        return self._hold

    def send(self, message: JobMessage, dedup_id: str) -> None:
        try:
            self._sqs().send_message(
                QueueUrl=self._queue_url(),
                MessageBody=message.model_dump_json(),
                MessageGroupId=message.project,
                MessageDeduplicationId=dedup_id[:128],
            )
        except QueueUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - botocore raises many types
            code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code") or type(error).__name__
            raise QueueUnavailable(f"training queue {self.queue}: cannot send the job ({code})") from error

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
                self._client = boto3.client("sqs", config=config)
        return self._client

    def _queue_url(self) -> str:
        if self._url is None:
            try:
                self._url = self._sqs().get_queue_url(QueueName=self.queue)["QueueUrl"]
            except Exception as error:  # noqa: BLE001
                raise QueueUnavailable(f"training queue {self.queue!r} not found or not reachable") from error
        return self._url
