"""The queue interface between the API (producer) and the training worker (consumer)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from functions.jobs import JobMessage


class TrainQueue(ABC):
    """Hands training jobs to a worker. Jobs of one project run one at a time."""

    @abstractmethod
    def send(self, message: JobMessage) -> str | None:
        """Queue `message`. Returns the id of a still-waiting job of the same project that this
        one replaces (repeated triggers collapse into the newest), or None."""
