"""The predict queue and what consumes it: the same `handle` runs in the local worker threads
(`make dev`, PREDICT_QUEUE=local) and in the predict Lambda (SQS, `functions.predict.handler`).

- `SqsPredictQueue` sends plan and chunk messages to a standard SQS queue (in batches of 10).
- `LocalPredictQueue` is an in-process queue consumed by `LOCAL_WORKERS` daemon threads; a
  message that fails transiently is retried after a pause, up to PREDICT_MAX_ATTEMPTS times.
- `StoreOnlyPredictQueue` (PREDICT_QUEUE=none) sends nothing: runs wait in the store.

Label Studio is reached through a client made by `client_factory(settings)` (default: the
backend's `LabelStudioClient`), one per thread, so tests can inject a fake.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import deque
from typing import Any, Callable

from functions.errors import QueueUnavailable
from functions.label_studio import LabelStudioClient, LabelStudioUnreachable
from functions.runs.chunks import ChunkBusy, record_failed_chunk, run_chunk
from functions.runs.planning import RunMessage, plan
from functions.runs.records import fail_run
from functions.serving import ModelCache
from functions.settings import Settings
from functions.sqs_endpoint import SqsEndpoint
from functions.store import ObjectStore

log = logging.getLogger(__name__)

LOCAL_WORKERS = 4  # threads of the local worker: chunks overlap Label Studio's latency
RETRY_PAUSE = 1.0  # seconds before a local retry (doubled per attempt)

ClientFactory = Callable[[Settings], Any]


def default_client(settings: Settings) -> LabelStudioClient:
    """The backend's Label Studio client (token refresh, retries of the import)."""
    from functions.label_studio_token import label_studio_token

    return LabelStudioClient(settings.label_studio_url or "", label_studio_token(settings), settings.label_studio_timeout)


class RunContext:
    """What a predict worker needs: settings, store, a model cache, Label Studio clients (one
    per thread), a sender for the chunk messages a plan makes, and its worker id."""

    def __init__(
        self, settings: Settings, store: ObjectStore, send: Callable[[list[RunMessage]], None],
        client_factory: ClientFactory | None = None, worker: str | None = None,
    ) -> None:
        self.settings, self.store, self.send = settings, store, send
        self.client_factory = client_factory or default_client
        self.cache = ModelCache(store, settings)
        self.worker = worker or f"predict:{os.getpid()}:{secrets.token_hex(4)}"
        self._local = threading.local()

    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.client_factory(self.settings)
        return client


def handle(message: RunMessage, ctx: RunContext, attempt: int = 1) -> None:
    """Plan or do one chunk. Raises for a transient failure (the queue retries); on the last
    attempt (PREDICT_MAX_ATTEMPTS) a failure is recorded instead (chunk: its tasks failed;
    plan: the run failed) and nothing is raised. `ChunkBusy` always raises: the chunk's other
    delivery will finish it."""
    last = attempt >= ctx.settings.predict_max_attempts
    try:
        if message.page is None:
            plan(ctx.store, ctx.settings, message, ctx.client(), ctx.send)
        else:
            run_chunk(ctx.store, ctx.settings, message, ctx.client(), ctx.cache, ctx.worker)
    except ChunkBusy:
        raise
    except Exception as error:
        what = "plan" if message.page is None else f"chunk {message.page}"
        log.warning("prediction run %s of project %s, %s: attempt %d failed: %s", message.run, message.project, what,
                    attempt, error, exc_info=not isinstance(error, LabelStudioUnreachable))
        if not last:
            raise
        reason = f"{type(error).__name__}: {error} (after {attempt} attempts)"
        try:
            if message.page is None:
                fail_run(ctx.store, message.project, message.run, f"could not plan the run: {reason}")
            else:
                record_failed_chunk(ctx.store, message, reason)
        except Exception:  # noqa: BLE001 - the store may be what fails; the DLQ keeps the message
            log.exception("could not record the failure of run %s, %s", message.run, what)
            raise error from None


class PredictQueue:
    """Where plan and chunk messages go."""

    worker_id: str | None = None

    def send(self, messages: list[RunMessage]) -> None:
        raise NotImplementedError

    def worker_alive(self, worker: str) -> bool | None:
        from functions.train_queue.local import worker_alive

        return worker_alive(worker)


class StoreOnlyPredictQueue(PredictQueue):
    """PREDICT_QUEUE=none: nothing is sent; runs wait in the store."""

    def send(self, messages: list[RunMessage]) -> None:
        return None


class SqsPredictQueue(PredictQueue):
    """A standard SQS queue (URL, or name resolved on first use): sends in batches of 10."""

    def __init__(self, queue: str, client: Any = None) -> None:
        self.queue = queue
        self._endpoint = SqsEndpoint(queue, "predict queue", client)

    def send(self, messages: list[RunMessage]) -> None:
        sqs = self._endpoint.client()
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": m.model_dump_json()} for i, m in enumerate(batch)]
            for _ in range(5):
                try:
                    reply = sqs.send_message_batch(QueueUrl=self._endpoint.url(), Entries=entries)
                except QueueUnavailable:
                    raise
                except Exception as error:  # noqa: BLE001 - botocore raises many types
                    code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code") or type(error).__name__
                    raise QueueUnavailable(f"predict queue {self.queue}: cannot send ({code})") from error
                failed = {f["Id"] for f in reply.get("Failed") or []}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                time.sleep(0.2)
            else:
                raise QueueUnavailable(f"predict queue {self.queue}: {len(entries)} message(s) kept failing")


class LocalPredictQueue(PredictQueue):
    """An in-process queue with `threads` daemon worker threads running `handle`."""

    def __init__(self, settings: Settings, store: ObjectStore, client_factory: ClientFactory | None = None,
                 threads: int = LOCAL_WORKERS) -> None:
        from functions.train_queue.local import HOST, _LIVE

        self.worker_id = f"local:{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        _LIVE.add(self.worker_id)
        self.ctx = RunContext(settings, store, self.send, client_factory, self.worker_id)
        self._messages: deque[tuple[float, int, RunMessage]] = deque()
        self._busy = 0
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"predict-worker-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def send(self, messages: list[RunMessage]) -> None:
        with self._changed:
            self._messages.extend((0.0, 1, message) for message in messages)
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no message waits or runs (tests); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._messages and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._messages))
                not_before, attempt, message = self._messages.popleft()
                self._busy += 1
            try:
                pause = not_before - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                handle(message, self.ctx, attempt)
            except ChunkBusy:
                self._retry(message, attempt, RETRY_PAUSE * 5)
            except Exception:  # noqa: BLE001 - retried; `handle` records the last attempt's failure
                self._retry(message, attempt + 1, RETRY_PAUSE * 2 ** (attempt - 1))
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def _retry(self, message: RunMessage, attempt: int, pause: float) -> None:
        with self._changed:
            self._messages.append((time.monotonic() + pause, attempt, message))
            self._changed.notify_all()


_local_queues: dict[str, LocalPredictQueue] = {}
_local_lock = threading.Lock()


def open_predict_queue(settings: Settings, store: ObjectStore, client_factory: ClientFactory | None = None) -> PredictQueue:
    """The queue PREDICT_QUEUE names. `local`: one queue (and its threads) per store per process."""
    if settings.predict_queue == "none":
        return StoreOnlyPredictQueue()
    if settings.predict_queue != "local":
        return SqsPredictQueue(settings.predict_queue)
    with _local_lock:
        key = repr(store)
        if key not in _local_queues or client_factory is not None:
            _local_queues[key] = LocalPredictQueue(settings, store, client_factory)
        return _local_queues[key]
