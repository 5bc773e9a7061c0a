"""`make dev`'s training worker: one long-lived child process serves job after job; a child
that dies fails its job, never the server, and is replaced for the next job."""

from __future__ import annotations

import os
import signal
import time

from functions.jobs import TRAIN_REQUEST, Job, JobState, load_job, save_job
from functions.store import open_store
from functions.train_queue.local import LocalQueue
from tests.conftest import dataset, label_config_of, sample_config, sample_tasks


def queue_job(store, job_id, tasks, config):
    key = f"projects/3/requests/{job_id}.json"
    store.put_json(key, {"annotations": tasks})
    job = Job(job_id=job_id, project="3", source=TRAIN_REQUEST, label_config=config, request_key=key)
    save_job(store, job)
    return job


def child_pids(queue):
    return sorted(queue._child()._processes)


def test_jobs_share_one_warm_child_and_a_killed_child_fails_only_its_job(settings):
    store = open_store(settings.model_store_uri)
    queue = LocalQueue(settings, store)
    first = queue_job(store, "0001", sample_tasks(), sample_config())
    queue.send(first.message(), "a")
    assert queue.wait_idle(120)
    assert load_job(store, "3", "0001").state == JobState.SUCCEEDED
    (pid,) = child_pids(queue)

    second = queue_job(store, "0002", sample_tasks()[:-1], sample_config())
    queue.send(second.message(), "b")
    assert queue.wait_idle(120)
    assert load_job(store, "3", "0002").version == "p3-v2"
    assert child_pids(queue) == [pid]  # the same process trained both: no interpreter start per job

    big = queue_job(store, "0003", dataset("sms_spam", "labeled_train"), label_config_of("sms_spam"))
    queue.send(big.message(), "c")
    deadline = time.monotonic() + 60
    while load_job(store, "3", "0003").state != JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    assert queue.wait_idle(120)
    killed = load_job(store, "3", "0003")
    assert killed.state == JobState.FAILED and "training process died" in killed.reason

    third = queue_job(store, "0004", sample_tasks(), sample_config())
    queue.send(third.message(), "d")
    assert queue.wait_idle(120)
    assert load_job(store, "3", "0004").state == JobState.SUCCEEDED
    assert child_pids(queue) != [pid]
