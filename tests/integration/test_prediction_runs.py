"""Prediction runs, locally: POST /projects/{id}/prediction-runs → the local worker threads
plan and do the chunks against a fake Label Studio client (the `task_page` /
`import_predictions` contract) → counts; re-runs create no duplicates; redelivered chunks do
nothing; transient Label Studio failures are retried; failures carry reasons. The training hook
is unit-tested at the end."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions import runs
from functions.api.app import create_app
from functions.jobs import Job
from functions.label_studio import LabelStudioUnreachable
from functions.runs import chunks as run_chunks
from functions.runs.planning import RunMessage, config_from_manifest, start_run
from functions.runs.records import load_run, read_chunks
from functions.runs.worker import LocalPredictQueue, RunContext, handle
from functions.scheduling import request_training
from functions.settings import Settings
from functions.store import open_store
from functions.train_queue import StoreOnlyQueue
from functions.training import run_job
from tests.conftest import sample_config, sample_tasks
from tests.runs_fakes import FakeLabelStudio

CONFIG = sample_config()
PROJECT = "4"


def run_settings(tmp_path, **changes: Any) -> Settings:
    values = dict(model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0.2, label_studio_url="http://ls.invalid",
                  label_studio_api_key="token", label_studio_projects=PROJECT, predict_after_training=False,
                  predict_chunk_tasks=10, train_queue="none")
    return Settings(**(values | changes))


def publish(settings: Settings, project: str = PROJECT) -> str:
    """Train and publish a version of the sample tasks in this process (no queue)."""
    settings = settings.model_copy(update={"predict_after_training": False})  # no run here
    store = open_store(settings.model_store_uri)
    job = request_training(store, StoreOnlyQueue(), settings, project, CONFIG, staged_body=_body(project))
    return run_job(job.message(), settings, store).version


def _body(project: str) -> bytes:
    import json

    return json.dumps({"annotations": sample_tasks(), "project": project, "label_config": CONFIG}).encode()


def project_tasks(count: int, start: int = 1, no_text: set[int] = frozenset()) -> list[dict[str, Any]]:
    texts = ["Heavy snow and wind tonight", "Parliament votes on the budget", "The striker scored twice", "A new phone chip"]
    return [{"id": i, "data": {"text": "" if i in no_text else f"{texts[i % 4]} #{i}"}} for i in range(start, start + count)]


@pytest.fixture
def setup(tmp_path):
    settings = run_settings(tmp_path)
    version = publish(settings)
    fake = FakeLabelStudio(tasks={PROJECT: project_tasks(95, no_text={7, 50})})
    app = create_app(settings)
    services = app.state.services
    queue = LocalPredictQueue(settings, services.store, fake.client)
    services._made["predict_queue"] = queue
    with TestClient(app) as client:
        yield client, fake, queue, version, settings


def wait_run(client: TestClient, reply: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(reply["status_url"]).json()
        if run["state"] in ("succeeded", "failed"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {reply['run']} did not finish: {run}")


def start(client: TestClient, body: dict | None = None) -> dict:
    reply = client.post(f"/projects/{PROJECT}/prediction-runs", json=body) if body is not None else client.post(
        f"/projects/{PROJECT}/prediction-runs", headers={"content-type": "application/json"})
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_a_run_predicts_every_task_with_counts_and_a_rerun_creates_no_duplicates(setup):
    client, fake, queue, version, _ = setup
    reply = start(client)
    assert reply["status_url"] == f"/projects/{PROJECT}/prediction-runs/{reply['run']}" and reply["model_version"] == version
    run = wait_run(client, reply)
    assert run["state"] == "succeeded" and run["reason"] is None, run
    assert run["model_version"] == version and run["label_config_source"] == "training_job"
    assert (run["tasks_total"], run["chunks"], run["tasks_done"]) == (95, 10, 95)
    assert (run["predictions_created"], run["tasks_skipped"], run["tasks_failed"]) == (93, 2, 0)
    assert run["skipped"] == {"no_text": 2, "already_predicted": 0}
    counts = fake.count(version)
    assert len(counts) == 93 and set(counts.values()) == {1} and 7 not in counts and 50 not in counts
    item = fake.predictions[1][0]
    assert item["result"][0]["from_name"] == "topic" and item["result"][0]["type"] == "choices" and 0 < item["score"] <= 1
    assert fake.predictions[1][0]["result"][0]["value"]["choices"] == ["Politics"]  # "Parliament votes…"

    again = wait_run(client, start(client, {"only_missing": True}))
    assert again["state"] == "succeeded" and again["predictions_created"] == 0 and again["tasks_done"] == 95
    assert again["skipped"] == {"no_text": 2, "already_predicted": 93}
    assert set(fake.count(version).values()) == {1}
    listed = client.get(f"/projects/{PROJECT}/prediction-runs").json()["runs"]
    assert [r["run"] for r in listed] == [again["run"], run["run"]]


def test_new_tasks_get_predictions_and_old_ones_are_not_repeated(setup):
    client, fake, _, version, _ = setup
    wait_run(client, start(client))
    fake.tasks[PROJECT] += project_tasks(12, start=1000)
    run = wait_run(client, start(client))
    assert (run["tasks_total"], run["predictions_created"], run["skipped"]["already_predicted"]) == (107, 12, 93)
    assert set(fake.count(version).values()) == {1} and len(fake.count(version)) == 105


def test_a_redelivered_chunk_does_nothing(setup):
    client, fake, queue, version, settings = setup
    run = wait_run(client, start(client))
    imports, pages = fake.imports, fake.pages
    ctx = RunContext(settings, client.app.state.services.store, queue.send, fake.client)
    handle(RunMessage(project=PROJECT, run=run["run"], page=3), ctx)  # a second delivery of chunk 3
    handle(RunMessage(project=PROJECT, run=run["run"]), ctx)  # and of the plan
    queue.wait_idle(10)
    assert (fake.imports, fake.pages) == (imports, pages)
    assert client.get(run["status_url"]).json()["predictions_created"] == 93


def test_a_chunk_that_died_after_importing_imports_no_duplicate_when_redelivered(setup, monkeypatch):
    client, fake, queue, version, settings = setup
    real = run_chunks._record
    crashed = []

    def crash_once(store, message, counts, started):
        if message.page == 2 and not crashed:
            crashed.append(message.page)
            raise RuntimeError("the worker died after importing, before recording the chunk")
        return real(store, message, counts, started)

    monkeypatch.setattr(run_chunks, "_record", crash_once)
    monkeypatch.setattr("functions.runs.worker.RETRY_PAUSE", 0.01)
    run = wait_run(client, start(client))
    assert crashed == [2] and run["state"] == "succeeded"
    assert set(fake.count(version).values()) == {1} and len(fake.count(version)) == 93
    # the chunk's second attempt found its 10 predictions in Label Studio and skipped them
    assert (run["predictions_created"], run["skipped"]["already_predicted"]) == (83, 10)


def test_two_deliveries_of_one_chunk_at_once_import_once(setup):
    client, fake, queue, version, settings = setup
    store = client.app.state.services.store
    run = start_run(store, settings, PROJECT, lambda messages: None, model_version=version)
    ctx = RunContext(settings, store, lambda messages: None, fake.client, worker="w1")
    handle(RunMessage(project=PROJECT, run=run.run_id), ctx)
    message = RunMessage(project=PROJECT, run=run.run_id, page=1)
    run_chunks._claim(store, message, "w2")  # another delivery is working on page 1
    with pytest.raises(run_chunks.ChunkBusy):
        handle(message, ctx)
    assert fake.imports == 0


def test_label_studio_failures_are_retried(setup, monkeypatch):
    client, fake, _, version, _ = setup
    monkeypatch.setattr("functions.runs.worker.RETRY_PAUSE", 0.01)
    fake.unreachable = 2  # the plan's first two attempts, beyond the client's own retries
    fake.unreachable_imports = 6  # imports: 429 beyond the client's own retries, six times
    run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["predictions_created"] == 93 and run["tasks_failed"] == 0
    assert set(fake.count(version).values()) == {1}


def test_a_chunk_that_keeps_failing_counts_its_tasks_failed(setup, monkeypatch):
    client, fake, _, version, settings = setup
    monkeypatch.setattr("functions.runs.worker.RETRY_PAUSE", 0.01)
    original = fake.import_predictions

    def page_five_down(project, items):
        if any(item["task"] in range(41, 51) for item in items):
            raise LabelStudioUnreachable("Label Studio at http://ls answered 503")
        return original(project, items)

    fake.import_predictions = page_five_down
    run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["tasks_failed"] == 10 and run["predictions_created"] == 84  # task 50 (no text) is on page 5
    assert "page 5" in run["reason"] and "503" in run["reason"] and "after 3 attempts" in run["reason"]


def test_created_is_checked_against_what_was_sent(setup):
    client, fake, _, _, _ = setup
    fake.drop_items = 3
    run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["tasks_failed"] == 3 and run["predictions_created"] == 90
    assert re.search(r"Label Studio created (6|7) of the (9|10) predictions sent", run["reason"])  # whichever page came first


def test_a_deleted_task_fails_alone(setup, monkeypatch):
    client, fake, _, version, _ = setup
    real_page = fake.task_page

    def page_with_a_deleted_task(project, page, size):
        result = real_page(project, page, size)
        if page == 2:
            result.tasks.append({"id": 99999, "data": {"text": "deleted meanwhile"}, "prediction_versions": []})
        return result

    fake.task_page = page_with_a_deleted_task
    run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["predictions_created"] == 93 and run["tasks_failed"] == 1
    assert "created 10 of the 11 predictions sent" in run["reason"]
    assert len(fake.count(version)) == 93


@pytest.mark.parametrize("case", ["no_credentials", "refused", "no_version", "not_allowed"])
def test_runs_fail_with_a_reason(tmp_path, case):
    settings = run_settings(tmp_path)
    fake = FakeLabelStudio(tasks={PROJECT: project_tasks(25)})
    if case != "no_version":
        publish(settings)
    if case == "no_credentials":
        settings = run_settings(tmp_path, label_studio_url=None, label_studio_api_key=None)
    if case == "not_allowed":
        settings = run_settings(tmp_path, label_studio_projects="5")
    if case == "refused":
        fake.refuse = ("Label Studio at http://ls answered 401 to GET /api/projects/4/tasks: LABEL_STUDIO_API_KEY is not "
                       "a valid personal access token")
    app = create_app(settings)
    app.state.services._made["predict_queue"] = LocalPredictQueue(settings, app.state.services.store, fake.client)
    with TestClient(app) as client:
        reply = start(client)
        run = wait_run(client, reply)
    assert run["state"] == "failed"
    expected = {
        "no_credentials": "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set",
        "refused": "answered 401",
        "no_version": "no serving model version yet: press Start Training first",
        "not_allowed": "is not in LABEL_STUDIO_PROJECTS, so the backend does not write predictions into it",
    }[case]
    assert expected in run["reason"], run["reason"]
    assert fake.predictions == {}


def test_unknown_runs_and_bad_bodies(setup):
    client, *_ = setup
    assert client.get(f"/projects/{PROJECT}/prediction-runs/{'0' * 32}").status_code == 404
    assert client.get(f"/projects/{PROJECT}/prediction-runs/nope").status_code == 404
    assert client.post(f"/projects/{PROJECT}/prediction-runs", json={"only_missing": "sometimes"}).status_code == 422


def test_the_label_config_comes_from_the_request_else_the_job_else_the_manifest(setup):
    client, fake, _, version, settings = setup
    store = client.app.state.services.store
    renamed = CONFIG.replace('name="topic"', 'name="subject"')
    run = wait_run(client, start(client, {"label_config": renamed}))
    assert run["state"] == "failed" and "predicts none of the label config's controls" in run["reason"]
    manifest = store.get_json(f"projects/{PROJECT}/models/{version}/manifest.json")
    rebuilt = config_from_manifest(store, PROJECT, version, manifest)
    from functions.label_config import parse_label_config

    (control,) = parse_label_config(rebuilt).controls
    assert (control.name, control.to_name, control.data_key) == ("topic", "news", "text")
    assert set(control.labels) == {"Politics", "Technology", "Sport", "Weather"}
    for key in store.list_keys(f"projects/{PROJECT}/jobs/"):  # the job record expired
        (store.root / key).unlink()
    run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["label_config_source"] == "manifest" and run["predictions_created"] == 93


def test_the_training_hook_starts_a_run_and_links_it(tmp_path):
    sent: list[RunMessage] = []

    class Queue(runs.PredictQueue):
        worker_id = None

        def send(self, messages):
            sent.extend(messages)

    settings = run_settings(tmp_path, predict_after_training=None)
    store = open_store(settings.model_store_uri)
    version = publish(settings)
    job = Job(job_id="0" * 32, project=PROJECT, source="start_training", label_config=CONFIG, version=version)
    link = runs.start_after_training(store, settings, job, Queue())
    assert link["state"] == "queued" and link["status_url"] == f"/projects/{PROJECT}/prediction-runs/{link['run']}"
    assert sent == [RunMessage(project=PROJECT, run=link["run"])]
    run = load_run(store, PROJECT, link["run"])
    assert (run.source, run.job_id, run.model_version, run.label_config) == ("training", job.job_id, version, CONFIG)

    assert runs.start_after_training(store, run_settings(tmp_path, predict_after_training=False), job, Queue()) is None
    no_ls = run_settings(tmp_path, predict_after_training=None, label_studio_url=None, label_studio_api_key=None)
    assert runs.start_after_training(store, no_ls, job, Queue()) is None
    forced = run_settings(tmp_path, predict_after_training=True, label_studio_url=None)
    failed = runs.start_after_training(store, forced, job, Queue())
    assert failed["state"] == "failed" and "LABEL_STUDIO_URL" in failed["reason"] and len(sent) == 1


def test_a_training_records_its_run_in_the_job(tmp_path, monkeypatch):
    settings = run_settings(tmp_path, predict_after_training=True)
    store = open_store(settings.model_store_uri)
    sent: list[RunMessage] = []

    class Queue(runs.PredictQueue):
        def send(self, messages):
            sent.extend(messages)

    monkeypatch.setattr("functions.runs.open_predict_queue", lambda settings, store: Queue())
    job = request_training(store, StoreOnlyQueue(), settings, PROJECT, CONFIG, staged_body=_body(PROJECT))
    done = run_job(job.message(), settings, store)
    link = done.report["prediction_run"]
    assert done.state.value == "succeeded" and link["state"] == "queued" and sent[0].run == link["run"]
    assert "quality" in done.report["controls"]["topic"]
    assert load_run(store, PROJECT, link["run"]).model_version == done.version
    assert read_chunks(store, PROJECT, link["run"]) == []
