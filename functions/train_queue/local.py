"""The in-process queue of `make dev`: one worker thread feeding one long-lived child process.

The child process keeps scikit-learn's CPU time and memory out of the API process (so
/predict stays responsive and never imports scikit-learn) and turns a crash, such as running
out of memory, into a failed job instead of a dead server. It is started (and imports
scikit-learn) when the queue is made, and serves job after job, so a Start Training pays for
neither an interpreter start nor the imports; a child that dies is replaced for the next job.
Jobs run one at a time, in the order they were sent.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from functions.jobs import JobMessage, JobState, load_job, save_job
from functions.logs import configure_logging
from functions.settings import Settings
from functions.store import ObjectStore
from functions.train_queue.base import TrainQueue

log = logging.getLogger(__name__)


class LocalQueue(TrainQueue):
    """A FIFO of job messages consumed by one daemon thread, started by the first `send`."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings, self.store = settings, store
        self._messages: deque[JobMessage] = deque()
        self._busy = False
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._child()  # start it now: the imports happen before the first Start Training

    def send(self, message: JobMessage, dedup_id: str) -> None:
        with self._changed:
            self._messages.append(message)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="train-worker", daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job waits or runs (for tests and shutdown); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._messages and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._messages))
                message = self._messages.popleft()
                self._busy = True
            try:
                self._run(message)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _child(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_prepare_child, initargs=(self.settings.log_level,))
            self._pool.submit(_warm_up)
        return self._pool

    def _run(self, message: JobMessage) -> None:
        from functions.training import run_job

        try:
            self._child().submit(run_job, message, self.settings).result()
        except BrokenProcessPool:
            self._pool = None  # a new child for the next job
            self._fail(message, "the training process died (out of memory?); see the server log")
        except Exception as error:  # noqa: BLE001 - any failure must end as a failed job, not a dead worker
            log.exception("job %s of project %s crashed", message.job_id, message.project)
            self._fail(message, f"training failed: {type(error).__name__}: {error}")

    def _fail(self, message: JobMessage, reason: str) -> None:
        try:
            job = load_job(self.store, message.project, message.job_id)
            job.state, job.reason = JobState.FAILED, reason
            save_job(self.store, job)
        except Exception:  # noqa: BLE001
            log.exception("could not record the failure of job %s", message.job_id)


def _prepare_child(level: str) -> None:
    configure_logging(level)


def _warm_up() -> None:
    """Import what a training needs (scikit-learn: ~1 s), ahead of the first job."""
    import functions.model.classifier  # noqa: F401
    import functions.model.evaluation  # noqa: F401
    import functions.model.export  # noqa: F401
    import functions.training  # noqa: F401
