"""The queue interface between the API (producer) and the training worker (consumer)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from functions.jobs import JobMessage


class TrainQueue(ABC):
    """Hands training jobs to a worker. Jobs of one project run one at a time."""

    @abstractmethod
    def send(self, message: JobMessage, dedup_id: str) -> None:
        """Queue `message`. Messages with the same `dedup_id` sent within a few minutes may be
        delivered once (SQS FIFO deduplication)."""
