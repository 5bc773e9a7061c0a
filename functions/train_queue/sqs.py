"""The SQS FIFO queue of the deployment: the api function sends, the train function consumes.

`MessageGroupId` is the project id, so a project trains one job at a time while projects run
in parallel; `MessageDeduplicationId` is the job's dedup id, so repeated identical requests
within SQS's 5-minute window become one message.
"""

from __future__ import annotations

import threading
from typing import Any

from functions.errors import QueueUnavailable
from functions.jobs import JobMessage
from functions.train_queue.base import TrainQueue


class SqsQueue(TrainQueue):
    """`queue` is a queue URL (``https://sqs.…/123456789012/name.fifo``) or a queue name,
    resolved to its URL on first use (so serverless.yml needs no account id)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._url = queue if queue.startswith(("https://", "http://")) else None
        self._client: Any = None
        self._lock = threading.Lock()

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

                self._client = boto3.client("sqs")
        return self._client

    def _queue_url(self) -> str:
        if self._url is None:
            try:
                self._url = self._sqs().get_queue_url(QueueName=self.queue)["QueueUrl"]
            except Exception as error:  # noqa: BLE001
                raise QueueUnavailable(f"training queue {self.queue!r} not found or not reachable") from error
        return self._url
