"""Status (issue 11, item 3): ``GET /projects/{id}`` after a training and a prediction run, with
failed and abandoned jobs, for unknown projects and while the store is down; ``GET
/health?deep=1`` against a local store and queues, a down or hung store, SQS under moto, and
behind the API's credentials (plain /health stays public and never touches the store)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from functions import keys
from functions.api.app import create_app
from functions.api.routes import health as health_route
from functions.jobs import Job, JobState
from functions.runs.worker import LocalPredictQueue
from functions.scheduling import request_training
from functions.settings import Settings
from functions.store import open_store
from functions.train_queue import StoreOnlyQueue
from functions.training import run_job
from tests.conftest import annotation_created, sample_tasks
from tests.integration.test_api_errors import basic
from tests.integration.test_prediction_runs import CONFIG, PROJECT, project_tasks, publish, run_settings, wait_run
from tests.integration.test_store_faults import FaultyStore
from tests.runs_fakes import FakeLabelStudio

PLAIN_HEALTH = {"status": "UP", "model_class": "TfidfLogisticRegression"}


def status(client: TestClient, project: str = PROJECT) -> dict:
    reply = client.get(f"/projects/{project}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def setup_version(client: TestClient, project: str = PROJECT) -> str:
    reply = client.post("/setup", json={"project": f"{project}.1700000000", "schema": CONFIG})
    assert reply.status_code == 200, reply.text
    return reply.json()["model_version"]


def train_in_process(settings: Settings, tasks: list[dict]) -> Job:
    """A /train job recorded and run in this process (no queue), like `publish`."""
    store = open_store(settings.model_store_uri)
    body = json.dumps({"annotations": tasks, "project": PROJECT, "label_config": CONFIG}).encode()
    job = request_training(store, StoreOnlyQueue(), settings, PROJECT, CONFIG, staged_body=body)
    return run_job(job.message(), settings, store)


@pytest.fixture
def project(tmp_path):
    """Project 4 with one published version (its job recorded), 95 tasks in a fake Label
    Studio, and an app whose predict queue does runs against that fake."""
    settings = run_settings(tmp_path)
    version = publish(settings)
    fake = FakeLabelStudio(tasks={PROJECT: project_tasks(95, no_text={7, 50})})
    app = create_app(settings)
    queue = LocalPredictQueue(settings, app.state.services.store, fake.client)
    app.state.services._made["predict_queue"] = queue
    with TestClient(app) as client:
        yield client, settings, version


def test_status_after_a_training_and_a_prediction_run(project):
    client, settings, version = project
    for task in sample_tasks()[:5]:
        assert client.post("/webhook", json=annotation_created(task, int(PROJECT), CONFIG)).status_code == 201
    started = client.post(f"/projects/{PROJECT}/prediction-runs", json={})
    assert started.status_code == 202, started.text
    run = wait_run(client, started.json())
    (job,) = client.get(f"/projects/{PROJECT}/jobs").json()["jobs"]

    reply = status(client)
    assert reply["project"] == PROJECT
    assert reply["serving"] == {"version": version, "pinned": None} and version == "p4-v1"
    assert reply["serving"]["version"] == setup_version(client)  # the very answer /setup gives
    assert (reply["newest_version"], reply["versions_published"]) == ("p4-v1", 1)
    assert reply["last_job"] == {
        "job_id": job["job_id"], "state": "succeeded", "reason": None, "version": "p4-v1", "source": "train_request",
        "requested_at": job["requested_at"], "finished_at": job["updated_at"], "status_url": f"/projects/{PROJECT}/jobs/{job['job_id']}",
    }
    assert reply["last_job"]["requested_at"] <= reply["last_job"]["finished_at"]
    assert reply["last_run"] == {
        "run": run["run"], "state": "succeeded", "reason": None, "model_version": "p4-v1", "source": "api",
        "created_at": run["created_at"], "finished_at": run["finished_at"],
        "counts": {"tasks_total": 95, "tasks_done": 95, "predictions_created": 93, "tasks_skipped": 2, "tasks_failed": 0},
        "status_url": f"/projects/{PROJECT}/prediction-runs/{run['run']}",
    }
    assert reply["annotation_log"] == {"tasks": 5}
    assert reply["store"] == {"ok": True, "error": None}
    deadline = time.monotonic() + 5  # /setup records the connection beside its reply
    while status(client)["connected_at"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(client)["connected_at"] is not None


def test_a_failed_training_shows_its_reason_and_the_version_still_served(project):
    client, settings, version = project
    only_sport = [t for t in sample_tasks() if t["annotations"][0]["result"][0]["value"]["choices"] == ["Sport"]]
    failed = train_in_process(settings, only_sport)
    reply = status(client)
    assert reply["last_job"]["job_id"] == failed.job_id and reply["last_job"]["state"] == "failed"
    assert "at least 2 different labels, found only 'Sport'" in reply["last_job"]["reason"]
    assert reply["last_job"]["version"] is None and reply["last_job"]["finished_at"] is not None
    assert reply["serving"]["version"] == version == reply["newest_version"] == setup_version(client)
    assert reply["last_run"] is None and reply["annotation_log"] == {"tasks": 0}

    second = train_in_process(settings, sample_tasks())
    time.sleep(settings.pointer_ttl_seconds)  # the pointer cache's TTL, as for /setup
    reply = status(client)
    assert second.version == "p4-v2" and reply["last_job"]["version"] == "p4-v2" and reply["last_job"]["state"] == "succeeded"
    assert reply["serving"] == {"version": "p4-v2", "pinned": None} and reply["versions_published"] == 2
    assert setup_version(client) == "p4-v2"


def test_a_version_that_fails_verification_is_not_reported_as_serving(project):
    client, settings, version = project
    train_in_process(settings, sample_tasks())
    store = client.app.state.services.store
    store.put(keys.version_object(PROJECT, "p4-v2", "signature.json"), b'{"garbage": true}')
    time.sleep(settings.pointer_ttl_seconds)
    reply = status(client)
    assert reply["newest_version"] == "p4-v2" and reply["serving"]["version"] == "p4-v1" == setup_version(client)
    assert "p4-v2 is published but p4-v1 serves: p4-v2 failed verification" in reply["serving"]["note"]


def test_an_abandoned_job_shows_failed_with_the_reason_and_status_writes_nothing(project):
    client, settings, _ = project
    store = client.app.state.services.store
    old = (datetime.now(timezone.utc) - timedelta(seconds=settings.job_lease_seconds + 60)).isoformat()
    job = Job(job_id="f" * 32, project=PROJECT, state=JobState.RUNNING, source="start_training", label_config=CONFIG,
              requested_at=old, created_at=old, updated_at=old, heartbeat_at=old)
    store.put(keys.job(PROJECT, job.job_id), job.model_dump_json().encode())
    before = store.get(keys.job(PROJECT, job.job_id)).data
    last = status(client)["last_job"]
    assert last["job_id"] == job.job_id and last["state"] == "failed" and last["reason"].startswith(f"abandoned: no heartbeat since {old}")
    assert last["finished_at"] == old
    assert store.get(keys.job(PROJECT, job.job_id)).data == before  # read-only
    listed = client.get(f"/projects/{PROJECT}/jobs").json()["jobs"][0]  # the jobs listing says the same (and records it)
    assert (listed["state"], listed["reason"]) == (last["state"], last["reason"])


def test_a_queued_job_has_no_finished_time(project):
    client, settings, _ = project
    store = client.app.state.services.store
    job = request_training(store, StoreOnlyQueue(), settings, PROJECT, CONFIG)  # TRAIN_QUEUE=none: waits, never abandoned
    last = status(client)["last_job"]
    assert (last["job_id"], last["state"], last["reason"], last["finished_at"], last["version"]) == (job.job_id, "queued", None, None, None)
    assert last["source"] == "start_training"


def test_an_unknown_project_is_a_404_and_a_bad_id_a_422(project):
    client, _, _ = project
    reply = client.get("/projects/77")
    assert reply.status_code == 404
    assert reply.json()["detail"].startswith("project 77 has nothing stored")
    reply = client.get("/projects/abc")
    assert reply.status_code == 422 and "project must be a number" in reply.json()["detail"]
    assert client.post("/webhook", json=annotation_created(sample_tasks()[0], 77, CONFIG)).status_code == 201
    reply = status(client, "77")  # one annotation is enough to be known
    assert reply["annotation_log"] == {"tasks": 1} and reply["serving"] == {"version": "untrained", "pinned": None}
    assert (reply["newest_version"], reply["versions_published"], reply["last_job"], reply["last_run"]) == (None, 0, None, None)


# --- the store down --------------------------------------------------------------------------


@pytest.fixture
def faulty(tmp_path):
    settings = run_settings(tmp_path, predict_queue="none")
    version = publish(settings)
    store = FaultyStore(open_store(settings.model_store_uri).root)
    app = create_app(settings)
    app.state.services._made["store"] = store
    with TestClient(app) as client:
        yield client, store, version


def test_while_the_store_is_down_status_says_so_and_serves_from_memory(faulty):
    client, store, version = faulty
    assert setup_version(client) == version  # now in memory
    store.down = True
    time.sleep(0.25)  # past POINTER_TTL_SECONDS: the cache must try the store, and keep its pointer
    reply = status(client)
    assert reply["store"] == {"ok": False, "error": "model store: cannot read (EndpointConnectionError)"}
    assert reply["serving"] == {"version": version, "pinned": None} and setup_version(client) == version
    assert all(reply[name] is None for name in ("newest_version", "versions_published", "last_job", "last_run", "annotation_log"))

    fresh = create_app(client.app.state.services.settings)  # a new process: nothing in memory
    fresh.state.services._made["store"] = store
    reply = TestClient(fresh).get(f"/projects/{PROJECT}")
    assert reply.status_code == 200
    assert reply.json()["store"]["ok"] is False and reply.json()["serving"]["version"] is None
    assert "cannot read" in reply.json()["serving"]["error"]


def test_deep_health_is_503_with_details_while_the_store_is_down_and_plain_health_never_looks(faulty):
    client, store, _ = faulty
    reply = client.get("/health", params={"deep": "1"})
    assert reply.status_code == 200 and reply.json()["status"] == "UP"
    assert reply.json()["checks"]["store"]["ok"] is True and reply.json()["checks"]["store"]["kind"] == "file"
    store.down = True
    reads = sum(store.reads.values())
    assert client.get("/health").json() == PLAIN_HEALTH  # exactly as before: no store access
    assert client.get("/health", params={"deep": "0"}).json() == PLAIN_HEALTH
    assert sum(store.reads.values()) == reads
    reply = client.get("/health", params={"deep": "true"})
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "DOWN"
    assert body["checks"]["store"]["ok"] is False
    assert body["checks"]["store"]["error"] == "model store: cannot read (EndpointConnectionError)"
    assert body["checks"]["train_queue"]["ok"] is True and body["checks"]["train_queue"]["kind"] == "none"
    assert body["checks"]["predict_queue"]["ok"] is True and body["checks"]["predict_queue"]["kind"] == "none"
    assert client.get("/health", params={"deep": "yes please"}).status_code == 422


def test_a_hung_store_makes_deep_health_down_within_its_bound(faulty, monkeypatch):
    client, store, _ = faulty
    monkeypatch.setattr(health_route, "DEEP_CHECK_SECONDS", 0.3)
    store.hang = 2.0
    started = time.monotonic()
    reply = client.get("/health", params={"deep": "1"})
    assert time.monotonic() - started < 1.5
    assert reply.status_code == 503
    assert reply.json()["checks"]["store"] == {"ok": False, "error": "no answer within 0.3 s", "seconds": 0.3}
    assert reply.json()["checks"]["train_queue"]["ok"] is True


def test_deep_health_checks_the_local_workers(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", train_queue="local", predict_queue="local")
    with TestClient(create_app(settings)) as client:
        reply = client.get("/health?deep=1")
        assert reply.status_code == 200, reply.text
        checks = reply.json()["checks"]
        services = client.app.state.services
        assert checks["train_queue"]["ok"] is True and checks["train_queue"]["kind"] == "local"
        assert checks["train_queue"]["worker"] == services.queue.worker_id
        assert checks["predict_queue"]["ok"] is True and checks["predict_queue"]["threads_alive"] == checks["predict_queue"]["threads"] > 0
        services.queue._worker = type("Stopped", (), {"is_alive": lambda self: False})()  # a worker thread that died
        reply = client.get("/health?deep=1")
        assert reply.status_code == 503 and reply.json()["status"] == "DOWN"
        assert reply.json()["checks"]["train_queue"]["ok"] is False
        assert "training worker thread has stopped" in reply.json()["checks"]["train_queue"]["error"]
        services.queue.close()


# --- credentials -----------------------------------------------------------------------------


def test_deep_health_needs_credentials_and_plain_health_stays_public(tmp_path):
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user="admin", basic_auth_pass="secret",
                        train_queue="none", predict_queue="none")
    client = TestClient(create_app(settings))
    assert client.get("/health").json() == PLAIN_HEALTH
    for query in ("deep=1", "deep=true", "deep=0", "deep=", "de%65p=1", "x=1&deep=1"):
        reply = client.get(f"/health?{query}")
        assert reply.status_code == 401, query
        assert reply.headers["www-authenticate"].startswith("Basic")
    reply = client.get("/health?deep=1", headers=basic("admin", "secret"))
    assert reply.status_code == 200 and reply.json()["status"] == "UP" and set(reply.json()["checks"]) == {"store", "train_queue", "predict_queue"}
    assert client.get("/projects/1").status_code == 401
    assert client.get("/projects/1", headers=basic("admin", "secret")).status_code == 404


# --- SQS under moto --------------------------------------------------------------------------

BUCKET, TRAIN_QUEUE, PREDICT_QUEUE = "ls-textcls-test-status", "ls-textcls-test-status-train.fifo", "ls-textcls-test-status-predict"


@pytest.fixture
def cloud(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        train = sqs.create_queue(QueueName=TRAIN_QUEUE, Attributes={"FifoQueue": "true"})["QueueUrl"]
        predict = sqs.create_queue(QueueName=PREDICT_QUEUE)["QueueUrl"]
        settings = Settings(model_store_uri=f"s3://{BUCKET}", train_queue=TRAIN_QUEUE, predict_queue=predict, model_signing_key="k")
        yield {"s3": s3, "sqs": sqs, "train": train, "predict": predict, "client": TestClient(create_app(settings))}


def test_deep_health_reads_the_sqs_queues_and_the_bucket(cloud):
    cloud["sqs"].send_message(QueueUrl=cloud["predict"], MessageBody="{}")
    cloud["sqs"].send_message(QueueUrl=cloud["predict"], MessageBody="{}")
    reply = cloud["client"].get("/health", params={"deep": "1"})
    assert reply.status_code == 200, reply.text
    checks = reply.json()["checks"]
    assert reply.json()["status"] == "UP"
    assert checks["store"]["ok"] is True and checks["store"]["kind"] == "s3"
    train = {k: v for k, v in checks["train_queue"].items() if k != "seconds"}
    assert train == {"ok": True, "kind": "sqs", "queue": cloud["train"], "messages": 0, "in_flight": 0}  # the name, resolved
    predict = {k: v for k, v in checks["predict_queue"].items() if k != "seconds"}
    assert predict == {"ok": True, "kind": "sqs", "queue": cloud["predict"], "messages": 2, "in_flight": 0}


def test_deep_health_is_down_when_a_queue_or_the_bucket_is_gone(cloud):
    cloud["sqs"].delete_queue(QueueUrl=cloud["predict"])
    reply = cloud["client"].get("/health", params={"deep": "1"})
    assert reply.status_code == 503 and reply.json()["status"] == "DOWN"
    checks = reply.json()["checks"]
    assert checks["predict_queue"]["ok"] is False
    assert checks["predict_queue"]["error"].startswith(f"predict queue {cloud['predict']}: cannot read its attributes (")
    assert checks["train_queue"]["ok"] is True and checks["store"]["ok"] is True

    cloud["s3"].delete_bucket(Bucket=BUCKET)
    checks = cloud["client"].get("/health", params={"deep": "1"}).json()["checks"]
    assert checks["store"] == {"ok": False, "error": "model store: cannot read projects/.health-probe (NoSuchBucket)",
                               "seconds": checks["store"]["seconds"]}
