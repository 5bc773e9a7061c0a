"""Training jobs through the API: failures are recorded with reasons and never move the
serving pointer; repeated triggers collapse; the report counts what was used and dropped."""

from __future__ import annotations

import threading

from tests.conftest import annotation_created, sample_config, sample_tasks, wait_for_job, wait_for_version

CONFIG = sample_config()


def train(client, tasks, project="4.1"):
    reply = client.post("/train", json={"annotations": tasks, "project": project, "label_config": CONFIG})
    assert reply.status_code == 201, reply.text
    return reply.json()["job"]


def test_a_successful_job_reports_its_source_counts_and_version(client):
    tasks = sample_tasks()
    tasks[0]["annotations"][0]["was_cancelled"] = True
    tasks[1]["annotations"][0]["result"] = []
    tasks[2]["data"] = {"other": "x"}
    job = wait_for_job(client, "4", train(client, tasks))
    assert job["state"] == "succeeded" and job["version"] == "p4-v1" and job["reason"] is None
    report = job["report"]
    assert report["source"] == "train_request" and report["tasks_seen"] == 32
    assert report["dropped"] == {"skipped": 1, "empty": 1}
    assert report["controls"]["topic"]["examples"] == 29 and report["controls"]["topic"]["dropped"] == {"no_text": 1}
    assert sum(report["controls"]["topic"]["labels"].values()) == 29
    assert client.get("/versions").json() == {"versions": ["p4-v1"]}
    narrowed = client.get("/versions", params={"project": 4}).json()
    assert narrowed["versions"] == ["p4-v1"]
    (manifest,) = narrowed["details"]
    assert manifest["version"] == "p4-v1" and manifest["job_id"] == job["job_id"] and manifest["report"] == report
    assert manifest["controls"] == {"topic": {"to_name": "news", "data_key": "text", "multiple": False}}
    assert report["controls"]["topic"]["quality"]["validated_on"] == 0
    assert report["controls"]["topic"]["auto_label"]["threshold"] is None and report["controls"]["topic"]["suspects"] == []


def test_one_label_fails_the_job_with_a_reason_and_keeps_the_serving_version(client):
    wait_for_job(client, "4", train(client, sample_tasks()))
    only_sport = [t for t in sample_tasks() if t["annotations"][0]["result"][0]["value"]["choices"] == ["Sport"]]
    job = wait_for_job(client, "4", train(client, only_sport))
    assert job["state"] == "failed"
    assert "at least 2 different labels, found only 'Sport' in 8 usable task(s)" in job["reason"]
    assert job["report"]["controls"]["topic"]["labels"] == {"Sport": 8}
    assert client.post("/setup", json={"project": "4.1", "schema": CONFIG}).json() == {"model_version": "p4-v1"}


def hold_jobs(client, monkeypatch) -> threading.Event:
    """Jobs sent from now on wait in the local queue until the returned event is set."""
    queue, gate = client.app.state.services.queue, threading.Event()
    run = queue._run
    monkeypatch.setattr(queue, "_run", lambda message: gate.wait(60) and run(message))
    return gate


def test_a_crashed_training_is_recorded_and_never_moves_the_pointer(client, monkeypatch):
    wait_for_job(client, "4", train(client, sample_tasks()))
    gate = hold_jobs(client, monkeypatch)
    job_id = train(client, sample_tasks()[:-1])
    store = client.app.state.services.store
    store.put(f"projects/4/requests/{job_id}.json", b"\x00 not json")  # corrupt the staged body
    gate.set()
    job = wait_for_job(client, "4", job_id)
    assert job["state"] == "failed" and job["reason"].startswith("training failed: JSONDecodeError")
    assert client.post("/setup", json={"project": "4.1", "schema": CONFIG}).json() == {"model_version": "p4-v1"}


def test_requests_collapse_into_the_queued_job_whatever_their_content_and_the_newest_config_wins(client, monkeypatch):
    for task in sample_tasks():
        client.post("/webhook", json=annotation_created(task, 4, CONFIG))
    start = {"action": "START_TRAINING", "project": {"id": 4, "label_config": CONFIG}}
    gate = hold_jobs(client, monkeypatch)
    first = train(client, sample_tasks()[:8])  # a /train body: queued, held at the gate
    assert client.post("/webhook", json=start).json()["job"] == first
    spaced = {"action": "START_TRAINING", "project": {"id": 4, "label_config": CONFIG.replace("<View>", "<View>  \n ")}}
    assert client.post("/webhook", json=spaced).json()["job"] == first  # whitespace no longer makes a new job

    relabelled = annotation_created(sample_tasks()[0], 4, CONFIG)
    relabelled["annotation"]["updated_at"] = "2026-11-02T00:00:00Z"
    client.post("/webhook", json=relabelled | {"action": "ANNOTATION_UPDATED"})
    new_config = CONFIG.replace('<Choice value="Weather"/>', '<Choice value="Weather"/><Choice value="Science"/>')
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4, "label_config": new_config}}).json()["job"] == first
    store = client.app.state.services.store
    record = store.get_json(f"projects/4/jobs/{first}.json")
    assert record["label_config"] == new_config and record["source"] == "start_training" and record["requests"] == 4
    assert store.get_json("projects/4/queued_job.json")["job_id"] == first

    gate.set()
    done = wait_for_job(client, "4", first)
    assert done["state"] == "succeeded" and done["version"] == "p4-v1" and done["requests"] == 4 and done["attempts"] == 1
    assert done["report"]["source"] == "annotation_log" and done["report"]["controls"]["topic"]["examples"] == 32  # the newest request's data
    assert [j["job_id"] for j in client.get("/projects/4/jobs").json()["jobs"]] == [first]
    second = client.post("/webhook", json=start).json()["job"]  # the queued job has run: a new one
    assert second != first and wait_for_job(client, "4", second)["version"] == "p4-v2"


def test_a_failed_request_sent_again_is_a_new_job(client):
    only_sport = [t for t in sample_tasks() if t["annotations"][0]["result"][0]["value"]["choices"] == ["Sport"]]
    first = train(client, only_sport)
    assert wait_for_job(client, "4", first)["state"] == "failed"
    second = train(client, only_sport)
    assert second != first and wait_for_job(client, "4", second)["state"] == "failed"


def test_start_training_with_an_empty_annotation_log_says_how_to_get_annotations(client):
    job = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4, "label_config": CONFIG}}).json()["job"]
    job = wait_for_job(client, "4", job)
    assert job["state"] == "failed" and job["reason"].startswith("the annotation log of project 4 is empty")
    assert "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in job["reason"] and job["report"]["source"] == "annotation_log"


def test_webhook_deletions_remove_annotations_from_the_next_training(client):
    tasks = sample_tasks()
    for task in tasks:
        client.post("/webhook", json=annotation_created(task, 4, CONFIG))
    weather_ids = [t["annotations"][0]["id"] for t in tasks if t["annotations"][0]["result"][0]["value"]["choices"] == ["Weather"]]
    client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 4}, "annotations": [{"id": i} for i in weather_ids]})
    job = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4, "label_config": CONFIG}}).json()["job"]
    report = wait_for_job(client, "4", job)["report"]
    assert report["controls"]["topic"]["labels"] == {"Politics": 8, "Technology": 8, "Sport": 8}
    assert report["dropped"] == {} and report["tasks_seen"] == 24  # tasks left with no annotation are not annotated
    version = wait_for_version(client, "4.1", CONFIG, "untrained")
    reply = client.post("/predict", json={"tasks": [{"data": {"text": "heavy rain and snow"}}], "project": "4.1", "label_config": CONFIG})
    assert reply.json()["results"][0]["model_version"] == version
    assert reply.json()["results"][0]["result"][0]["value"]["choices"] != ["Weather"]
