"""One SQS queue as the training and predict queues reach it: a lazily made boto3 client with
short timeouts, and the queue's URL (given, or resolved from its name on first use, so
serverless.yml needs no account id)."""

from __future__ import annotations

import threading
from typing import Any

from functions.errors import QueueUnavailable


class SqsEndpoint:
    """`queue` is a queue URL or name; `what` names it in errors ("training queue")."""

    def __init__(self, queue: str, what: str, client: Any = None) -> None:
        self.queue, self.what = queue, what
        self._url = queue if queue.startswith(("https://", "http://")) else None
        self._client = client
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The boto3 SQS client (made on first use)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
                self._client = boto3.client("sqs", config=config)
        return self._client

    def url(self) -> str:
        """The queue URL. Raises QueueUnavailable if the name cannot be resolved."""
        if self._url is None:
            try:
                self._url = self.client().get_queue_url(QueueName=self.queue)["QueueUrl"]
            except Exception as error:  # noqa: BLE001 - botocore raises many types
                raise QueueUnavailable(f"{self.what} {self.queue!r} not found or not reachable ({_cause(error)})") from error
        return self._url


def _cause(error: Exception) -> str:
    """The botocore error code (e.g. ``AWS.SimpleQueueService.NonExistentQueue``) or the error's
    type and message (e.g. ``NoRegionError: You must specify a region.``)."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return str(code) if code else f"{type(error).__name__}: {error}"[:200]
