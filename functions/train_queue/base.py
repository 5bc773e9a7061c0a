"""The queue interface between the API (producer) and the training worker (consumer)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from functions.jobs import JobMessage


class TrainQueue(ABC):
    """Hands training jobs to a worker. Jobs of one project run one at a time.

    Attributes:
        worker_id: written into the records of the jobs this queue's own worker holds (a
            local worker), None when the worker is elsewhere (SQS → train Lambda).
        hold_seconds: how long the queue may legitimately keep a message from every worker
            before one takes it (see `functions.jobs.abandonment`).
    """

    worker_id: str | None = None
    hold_seconds: float = 0.0

    @abstractmethod
    def send(self, message: JobMessage, dedup_id: str) -> None:
        """Queue `message`. Messages with the same `dedup_id` sent within a few minutes may be
        delivered once (SQS FIFO deduplication)."""

    def worker_alive(self, worker: str) -> bool | None:
        """Whether the worker a job record names still runs: True, False, or None (unknown)."""
        return None
