"""Training queues, picked by TRAIN_QUEUE: `local` (in-process worker), an SQS FIFO queue, or
`none` (jobs stay queued in the store until a train function is invoked for them)."""

from __future__ import annotations

from functions.jobs import JobMessage
from functions.settings import Settings
from functions.store import ObjectStore
from functions.train_queue.base import TrainQueue
from functions.train_queue.local import LocalQueue
from functions.train_queue.sqs import SqsQueue

__all__ = ["TrainQueue", "LocalQueue", "SqsQueue", "StoreOnlyQueue", "open_queue"]


class StoreOnlyQueue(TrainQueue):
    """Sends nothing: the job record waits in the store (`sls invoke local -f train` runs it),
    for as long as it takes (queued jobs are never abandoned)."""

    hold_seconds = float("inf")

    def send(self, message: JobMessage, dedup_id: str) -> None:
        return None


def open_queue(settings: Settings, store: ObjectStore) -> TrainQueue:
    """The queue TRAIN_QUEUE names."""
    if settings.train_queue == "local":
        return LocalQueue(settings, store)
    if settings.train_queue == "none":
        return StoreOnlyQueue()
    return SqsQueue(settings.train_queue)
