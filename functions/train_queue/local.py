"""The in-process queue of `make dev`: one worker thread feeding one long-lived child process.

The child process keeps scikit-learn's CPU time and memory out of the API process (so
/predict stays responsive and never imports scikit-learn) and turns a crash, such as running
out of memory, into a failed job instead of a dead server. It is started (and imports
scikit-learn) when the queue is made, and serves job after job, so a Start Training pays for
neither an interpreter start nor the imports; a child that dies is replaced for the next job,
and a child whose parent died exits at once.
Jobs run one at a time, in the order they were sent.

Each queue names itself in the records of its jobs (`worker_id`, ``local:<host>:<pid>:<token>``).
When it starts, it re-runs the queued and running jobs of the store whose worker is gone (a
previous `make dev` stopped or killed with kill -9), at most TRAIN_MAX_ATTEMPTS times per job;
beyond that the job fails with a reason.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import socket
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from functions.errors import PreconditionFailed
from functions.jobs import UNFINISHED, JobMessage, JobState, list_jobs, load_job, save_job
from functions.logs import configure_logging
from functions.settings import Settings
from functions.store import ObjectStore
from functions.train_queue.base import TrainQueue

log = logging.getLogger(__name__)

_LIVE: set[str] = set()  # worker ids of the queues open in this process
HOST = socket.gethostname()


class LocalQueue(TrainQueue):
    """A FIFO of job messages consumed by one daemon thread, which first recovers the jobs
    that a previous process of the same store left behind."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings, self.store = settings, store
        self.worker_id = f"local:{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        _LIVE.add(self.worker_id)
        self._messages: deque[JobMessage] = deque()
        self._busy = True  # until recovery is done
        self._changed = threading.Condition()
        self._pool: ProcessPoolExecutor | None = None
        self._child()  # start it now: the imports happen before the first Start Training
        self._worker = threading.Thread(target=self._work, name="train-worker", daemon=True)
        self._worker.start()

    def send(self, message: JobMessage, dedup_id: str) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def worker_alive(self, worker: str) -> bool | None:
        """True for a queue open in this process, else by its process id on this host
        (False if gone), None for another host."""
        return worker_alive(worker)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job waits or runs (for tests and shutdown); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._messages and not self._busy, timeout)

    def close(self) -> None:
        """Stop owning jobs (its records then look abandoned) and stop the child process."""
        _LIVE.discard(self.worker_id)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _work(self) -> None:
        try:
            self._recover()
        except Exception:  # noqa: BLE001 - a store problem must not stop the worker
            log.exception("could not recover the jobs of a previous process")
        while True:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
                self._changed.wait_for(lambda: bool(self._messages))
                message = self._messages.popleft()
                self._busy = True
            self._run(message)

    def _recover(self) -> None:
        """Queue again the unfinished jobs whose local worker is gone, oldest first."""
        orphans = [
            job for project in self.store.list_folders("projects/") for job in list_jobs(self.store, project)
            if job.state in UNFINISHED and job.worker and worker_alive(job.worker) is False
        ]
        for job in sorted(orphans, key=lambda job: job.job_id):
            previous, job.worker = job.worker, self.worker_id
            if job.attempts >= self.settings.train_max_attempts:
                job.state = JobState.FAILED
                job.reason = (f"abandoned: its worker ({previous}) stopped during each of {job.attempts} attempts "
                              "(TRAIN_MAX_ATTEMPTS); see the server log")
            else:
                job.state, job.reason = JobState.QUEUED, f"re-run: its worker ({previous}) stopped before the job finished"
            try:
                save_job(self.store, job, if_match=job._etag)
            except PreconditionFailed:
                continue  # another process took it
            log.warning("job %s of project %s: %s", job.job_id, job.project, job.reason)
            if job.state == JobState.QUEUED:
                self.send(job.message(), job.dedup_id)

    def _child(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                1, mp_context=context, initializer=_prepare_child, initargs=(self.settings.log_level, os.getpid())
            )
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


def worker_alive(worker: str) -> bool | None:
    """Whether the local worker ``local:<host>:<pid>:<token>`` runs: True, False, or None
    (another host, or not a local worker id)."""
    if worker in _LIVE:
        return True
    parts = worker.split(":")
    if len(parts) != 4 or parts[0] != "local" or not parts[2].isdigit():
        return None
    if parts[1] != HOST:
        return None
    pid = int(parts[2])
    if pid == os.getpid():
        return False  # this process, but no queue of it has that token any more
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has died but was not reaped yet (Linux; False where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _prepare_child(level: str, parent: int) -> None:
    configure_logging(level)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A child whose parent died (kill -9 of `make dev`) exits rather than train on alone:
    the next `make dev` re-runs its job."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _warm_up() -> None:
    """Import what a training needs (scikit-learn: ~1 s), ahead of the first job."""
    import functions.model.classifier  # noqa: F401
    import functions.model.evaluation  # noqa: F401
    import functions.model.export  # noqa: F401
    import functions.training  # noqa: F401
