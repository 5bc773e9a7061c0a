"""Jobs left behind by a dead worker never swallow a new request (heartbeats, abandonment,
recovery of `make dev`'s jobs); one queued job per project whatever the requests say; pulls
only from allowed Label Studio projects; at most MAX_TRAINING_TASKS tasks per job."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from functions import training
from functions.api.app import create_app
from functions.jobs import TRAIN_REQUEST, Job, JobState, load_job, save_job
from functions.keys import queued_slot
from functions.scheduling import project_jobs, request_training
from functions.settings import Settings
from functions.store import open_store
from functions.train_queue import StoreOnlyQueue
from functions.train_queue.base import TrainQueue
from functions.train_queue.local import HOST, LocalQueue
from tests.conftest import ROOT, annotation_created, dataset, label_config_of, sample_config, sample_tasks, wait_for_job
from tests.ls_standin import PERSONAL_ACCESS_TOKEN, LabelStudioStandIn

CONFIG = sample_config()
START = {"action": "START_TRAINING", "project": {"id": 4, "label_config": CONFIG}}


class SentQueue(TrainQueue):
    """Like SQS seen from the API: messages leave the process, held at most `hold_seconds`."""

    def __init__(self, hold_seconds: float = 0.0) -> None:
        self.hold_seconds, self.sent = hold_seconds, []

    def send(self, message, dedup_id):
        self.sent.append((message.job_id, dedup_id))


def ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat()


def dead_worker() -> str:
    """The worker id of a local process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"local:{HOST}:{process.pid}:dead"


def record(store, job_id, project="3", state=JobState.QUEUED, **fields):
    key = f"projects/{project}/requests/{job_id}.json"
    store.put_json(key, {"annotations": sample_tasks()})
    job = Job(job_id=job_id, project=project, source=TRAIN_REQUEST, label_config=CONFIG, request_key=key, state=state, **fields)
    return save_job(store, job)


def test_a_running_job_without_heartbeat_is_failed_when_looked_at_and_start_training_makes_a_new_job(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}", train_queue="none", job_lease_seconds=1)
    client = TestClient(create_app(settings))
    first = client.post("/webhook", json=START).json()["job"]
    assert client.post("/webhook", json=START).json()["job"] == first  # still queued: collapses
    store = client.app.state.services.store
    job = load_job(store, "4", first)
    job.state, job.heartbeat_at = JobState.RUNNING, ago(30)  # a worker took it, then died
    save_job(store, job)
    job.updated_at = job.heartbeat_at  # (save_job stamps the write time; age it like the heartbeat)
    store.put(f"projects/4/jobs/{first}.json", job.model_dump_json().encode())

    second = client.post("/webhook", json=START).json()["job"]
    assert second != first
    dead = client.get(f"/projects/4/jobs/{first}").json()
    assert dead["state"] == "failed" and dead["reason"] == (
        f"abandoned: no heartbeat since {job.heartbeat_at} (the worker died?); request training again"
    )
    states = {j["job_id"]: j["state"] for j in client.get("/projects/4/jobs").json()["jobs"]}
    assert states == {second: "queued", first: "failed"}


def test_a_queued_job_that_no_worker_took_in_time_is_abandoned(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}", job_lease_seconds=1)
    store, queue = open_store(settings.model_store_uri), SentQueue(hold_seconds=1)
    lost = request_training(store, queue, settings, "4", CONFIG)
    assert request_training(store, queue, settings, "4", CONFIG).job_id == lost.job_id
    time.sleep(2.2)  # lease + visibility timeout, and no worker ever took it
    fresh = request_training(store, queue, settings, "4", CONFIG)
    assert fresh.job_id != lost.job_id and [job_id for job_id, _ in queue.sent] == [lost.job_id, fresh.job_id]
    assert [dedup for _, dedup in queue.sent] == [lost.job_id, fresh.job_id]  # one message per job
    old = load_job(store, "4", lost.job_id)
    assert old.state == JobState.FAILED and old.reason.startswith("abandoned: queued, and no worker took it since")


def test_a_running_job_writes_heartbeats_beside_the_fit(tmp_path, monkeypatch):
    settings = Settings(model_store_uri=f"file://{tmp_path}", job_lease_seconds=0.5)  # a beat every 0.1 s
    store = open_store(settings.model_store_uri)
    job = record(store, "0" * 31 + "1")
    seen, fit = [], training.fit_and_publish

    def slow_fit(store, job, settings):
        for _ in range(8):
            time.sleep(0.1)
            stored = load_job(store, job.project, job.job_id)
            seen.append((stored.state, stored.heartbeat_at))
        return fit(store, job, settings)

    monkeypatch.setattr(training, "fit_and_publish", slow_fit)
    done = training.run_job(job.message(), settings, store)
    assert done.state == JobState.SUCCEEDED and done.attempts == 1
    assert {state for state, _ in seen} == {JobState.RUNNING}
    assert len({beat for _, beat in seen}) >= 4  # refreshed while the fit ran


def test_make_dev_reruns_the_jobs_a_killed_process_left_and_fails_those_that_keep_dying(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}", train_max_attempts=3)
    store = open_store(settings.model_store_uri)
    gone = dead_worker()
    record(store, "0" * 31 + "1", "3", JobState.RUNNING, worker=gone, attempts=1, heartbeat_at=ago(1))
    record(store, "0" * 31 + "2", "5", JobState.QUEUED, worker=gone)
    record(store, "0" * 31 + "3", "6", JobState.RUNNING, worker=gone, attempts=3)
    record(store, "0" * 31 + "4", "7", JobState.QUEUED, worker=None)  # not a local worker's: left alone
    queue = LocalQueue(settings, store)
    try:
        assert queue.wait_idle(120)
    finally:
        queue.close()
    rerun, queued, crashing, other = (load_job(store, p, "0" * 31 + n) for p, n in (("3", "1"), ("5", "2"), ("6", "3"), ("7", "4")))
    assert (rerun.state, rerun.version, rerun.attempts, rerun.worker) == (JobState.SUCCEEDED, "p3-v1", 2, queue.worker_id)
    assert (queued.state, queued.version, queued.attempts) == (JobState.SUCCEEDED, "p5-v1", 1)
    assert crashing.state == JobState.FAILED and crashing.reason == (
        f"abandoned: its worker ({gone}) stopped during each of 3 attempts (TRAIN_MAX_ATTEMPTS); see the server log"
    )
    assert other.state == JobState.QUEUED


def test_a_closed_local_queue_no_longer_owns_its_jobs(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}")
    store = open_store(settings.model_store_uri)
    first = LocalQueue(settings, store)
    first._run = lambda message: None  # it "crashes" before running the job
    job = request_training(store, first, settings, "4", CONFIG)
    assert first.wait_idle(30)
    first.close()
    second = LocalQueue(settings, store)  # the restart
    try:
        assert second.wait_idle(120)
    finally:
        second.close()
    after = load_job(store, "4", job.job_id)
    assert after.state == JobState.FAILED and after.report["source"] == "annotation_log"  # re-run: the log is empty
    assert after.reason.startswith("the annotation log of project 4 is empty") and after.worker == second.worker_id


def test_a_flood_of_start_training_queues_one_job(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}")
    store, queue = open_store(settings.model_store_uri), StoreOnlyQueue()
    configs = [CONFIG.replace("<View>", "<View>" + " " * n) for n in range(16)]  # every request differs
    replies: list[str] = []
    threads = [threading.Thread(target=lambda c=c: replies.append(request_training(store, queue, settings, "4", c).job_id)) for c in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs = project_jobs(store, queue, settings, "4")
    (queued,) = [job for job in jobs if job.state == JobState.QUEUED]
    assert set(replies) == {queued.job_id} and queued.requests == 16
    assert all(job.reason == "a concurrent training request of this project was queued first" for job in jobs if job is not queued)


def test_an_older_queued_job_leaves_the_training_to_a_newer_queued_one(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}")
    store = open_store(settings.model_store_uri)
    older, newer = record(store, "0" * 31 + "1"), record(store, "0" * 31 + "2")  # e.g. two requests that raced
    store.put_json(queued_slot("3"), {"job_id": newer.job_id})
    assert training.run_job(older.message(), settings, store).state == JobState.SUPERSEDED
    assert load_job(store, "3", older.job_id).reason == f"a newer training request of this project is queued: job {newer.job_id}"
    assert training.run_job(newer.message(), settings, store).version == "p3-v1"


def test_start_training_exports_only_projects_connected_through_setup_or_listed(tmp_path):
    with LabelStudioStandIn({4: sample_tasks()}) as standin:
        settings = Settings(model_store_uri=f"file://{tmp_path}", label_studio_url=standin.url, label_studio_api_key=PERSONAL_ACCESS_TOKEN,
                            predict_after_training=False)  # only the export is looked at here
        client = TestClient(create_app(settings))
        for task in sample_tasks()[:16]:
            client.post("/webhook", json=annotation_created(task, 4, CONFIG))
        refused = wait_for_job(client, "4", client.post("/webhook", json=START).json()["job"])
        assert refused["state"] == "succeeded" and standin.requests == []  # Label Studio never asked
        report = refused["report"]
        assert report["source"] == "annotation_log" and report["tasks_fetched"] == 16 and report["label_studio_allowed"] is False
        assert report["label_studio_error"].startswith("project 4 was never connected to this backend through an authenticated /setup")
        assert "LABEL_STUDIO_PROJECTS=4" in report["label_studio_error"]

        assert client.post("/setup", json={"project": "4.1", "schema": CONFIG}).status_code == 200
        connected = client.app.state.services.store.get_json("projects/4/connected.json")
        assert connected["project"] == "4" and connected["connected_at"][:4] == str(datetime.now(timezone.utc).year)
        pulled = wait_for_job(client, "4", client.post("/webhook", json=START).json()["job"])
        assert pulled["report"]["source"] == "label_studio" and pulled["report"]["tasks_fetched"] == 32
        assert [r["path"] for r in standin.requests if r["method"] == "GET"] == ["/api/projects/4/export?exportType=JSON"]


def test_a_job_reads_at_most_max_training_tasks(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path}", max_training_tasks=31)
    client = TestClient(create_app(settings))
    reply = client.post("/train", json={"annotations": sample_tasks(), "project": "4.1", "label_config": CONFIG})
    job = wait_for_job(client, "4", reply.json()["job"])
    assert job["state"] == "failed" and job["reason"].startswith(
        "the /train request holds 32 tasks, more than the 31 one training job may read (MAX_TRAINING_TASKS)"
    )
    assert job["report"] == {"tasks_seen": 32, "max_training_tasks": 31}
    for task in sample_tasks():
        client.post("/webhook", json=annotation_created(task, 4, CONFIG))
    job = wait_for_job(client, "4", client.post("/webhook", json=START).json()["job"])
    assert job["state"] == "failed" and job["reason"].startswith("the annotation log of project 4 holds 32 tasks, more than the 31")
    assert client.post("/setup", json={"project": "4.1", "schema": CONFIG}).json() == {"model_version": "untrained"}


def _serve(store_dir, port):
    import os
    import sys

    env = os.environ | {"MODEL_STORE_URI": f"file://{store_dir}", "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    for name in ("TRAIN_QUEUE", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        env.pop(name, None)
    server = subprocess.Popen([sys.executable, "-m", "functions.dev"], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _poll(lambda: _get(port, "/health") is not None, 60, "the server did not start")
    return server


def _get(port, path):
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).json()
    except httpx.HTTPError:
        return None


def _poll(check, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


@pytest.mark.slow
def test_kill_9_of_make_dev_mid_training_then_restart_reruns_the_job(tmp_path):
    import os
    import signal
    import socket

    import httpx

    tasks, config = dataset("sms_spam", "labeled_train"), label_config_of("sms_spam")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = _serve(tmp_path, port)
    try:
        reply = httpx.post(f"http://127.0.0.1:{port}/train", json={"annotations": tasks, "project": "3.1", "label_config": config}, timeout=30)
        job_id = reply.json()["job"]
        _poll(lambda: (_get(port, f"/projects/3/jobs/{job_id}") or {}).get("state") == "running", 60, "the job never ran")
    finally:
        os.kill(first.pid, signal.SIGKILL)  # no clean-up of any kind
        first.wait()
    second = _serve(tmp_path, port)
    try:
        done = _poll(lambda: (lambda j: j if j and j["state"] not in ("queued", "running") else None)(_get(port, f"/projects/3/jobs/{job_id}")),
                     180, "the job was not re-run after the restart")
        assert done["state"] == "succeeded" and done["version"] == "p3-v1" and done["attempts"] == 2
        assert _get(port, "/versions") == {"versions": ["p3-v1"]}  # the killed process's child published nothing
    finally:
        second.terminate()
        second.wait(30)
