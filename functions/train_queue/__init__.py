"""Training queues: in-process locally, SQS FIFO in the cloud (picked by TRAIN_QUEUE_URL)."""

from __future__ import annotations

from functions.settings import Settings
from functions.store import ObjectStore
from functions.train_queue.base import TrainQueue
from functions.train_queue.local import LocalQueue

__all__ = ["TrainQueue", "LocalQueue", "open_queue"]


def open_queue(settings: Settings, store: ObjectStore) -> TrainQueue:
    """The queue the settings name: SQS when TRAIN_QUEUE_URL is set, else the local worker."""
    if settings.train_queue_url:
        raise NotImplementedError("the SQS queue comes with the deployment (issue 3)")
    return LocalQueue(settings, store)
