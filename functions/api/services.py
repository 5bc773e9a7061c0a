"""What the routes need (settings, store, model cache, queue), built lazily once per app."""

from __future__ import annotations

import threading
from typing import Annotated, Callable, TypeVar

from fastapi import Depends, Request

from functions.serving import ModelCache
from functions.settings import Settings, get_settings
from functions.store import ObjectStore, open_store
from functions.train_queue import TrainQueue, open_queue

T = TypeVar("T")


class Services:
    """Lazily made collaborators: the first request that needs the store opens it, and so on.

    Nothing is built at import or app-creation time, so the Lambda module loads fast and tests
    can set the environment (or pass `settings`) before anything reads it.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._made: dict[str, object] = {}
        self._lock = threading.RLock()  # making the cache makes the store

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    @property
    def store(self) -> ObjectStore:
        return self._once("store", lambda: open_store(self.settings.model_store_uri, self.settings))

    @property
    def cache(self) -> ModelCache:
        return self._once("cache", lambda: ModelCache(self.store, self.settings))

    @property
    def queue(self) -> TrainQueue:
        return self._once("queue", lambda: open_queue(self.settings, self.store))

    def _once(self, name: str, make: Callable[[], T]) -> T:
        if name not in self._made:
            with self._lock:
                if name not in self._made:
                    self._made[name] = make()
        return self._made[name]  # type: ignore[return-value]


async def get_services(request: Request) -> Services:
    """The app's `Services` (a coroutine: FastAPI would run a plain function in the thread pool)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
