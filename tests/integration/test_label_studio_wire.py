"""Replay every request a real Label Studio 1.23.2 sent (../shared/ls_wire) and check that each
reply has the shape Label Studio requires (shared/ls_contract.md)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.label_config import parse_label_config
from functions.settings import Settings
from tests.conftest import SHARED, annotation_created, sample_tasks, shared, wait_for_job, wait_for_version, wire

USER, PASSWORD = "ls-user", "s3cret-pass"
AUTH_PORT = "9192"  # the captures of the Basic-auth connection came from this port
WIRE_FILES = sorted(p.name for p in (SHARED / "ls_wire").glob("*.json")) or ["ls_wire is missing"]


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """A trained open backend (project 1) and a trained Basic-auth backend (project 2)."""
    shared("ls_wire")
    made = {}
    for name, extra in [("open", {}), ("auth", {"basic_auth_user": USER, "basic_auth_pass": PASSWORD})]:
        store = tmp_path_factory.mktemp(name)
        client = TestClient(create_app(Settings(model_store_uri=f"file://{store}", pointer_ttl_seconds=0, **extra)))
        client.headers.update(_auth_header() if extra else {})
        made[name] = client
    config = wire("02_setup.json")["body"]["schema"]
    for name, project in [("open", "1.1795968764"), ("auth", "2.1795968809")]:
        reply = made[name].post("/train", json={"annotations": sample_tasks(), "project": project, "label_config": config})
        assert reply.status_code == 201, reply.text
        wait_for_version(made[name], project, config, "untrained")
    for name, project in [("open", 1), ("auth", 3)]:  # the projects of the captured START_TRAINING webhooks
        for task in sample_tasks():
            assert made[name].post("/webhook", json=annotation_created(task, project, config)).status_code == 201
    return made


def _auth_header() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def replay(client: TestClient, capture: dict):
    headers = {k: v for k, v in capture["headers"].items() if k.lower() not in ("host", "content-length", "authorization")}
    if "Authorization" in capture["headers"]:
        headers.update(_auth_header())
    client_headers = dict(client.headers)
    client.headers.clear()  # send exactly what Label Studio sent
    try:
        return client.request(capture["method"], capture["path"], params=capture["query"], json=capture["body"], headers=headers)
    finally:
        client.headers.update(client_headers)


@pytest.mark.parametrize("name", WIRE_FILES)
def test_replayed_label_studio_request_gets_a_reply_of_the_required_shape(clients, name):
    capture = wire(name)
    is_auth = capture["headers"].get("Host", "").endswith(AUTH_PORT)
    client = clients["auth" if is_auth else "open"]
    reply = replay(client, capture)
    expected = capture["response"]["status"]
    if capture["path"] == "/health":
        expected = 200  # public here (the capture's stub required auth on it): Label Studio checks it first
    if expected == 401:
        assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Basic ")
        assert "Basic credentials" in reply.json()["detail"]
        return
    assert reply.status_code < 300, reply.text
    body = reply.json()
    path, action = capture["path"], (capture["body"] or {}).get("action") if isinstance(capture["body"], dict) else None
    if path == "/health":
        assert body["status"] == "UP"
    elif path == "/setup":
        assert isinstance(body["model_version"], str) and body["model_version"].startswith("p")
    elif path == "/predict":
        _check_predictions(client, capture["body"], body)
    elif path == "/versions":
        assert body["versions"] and all(isinstance(v, str) for v in body["versions"])
    elif path == "/train" or action == "START_TRAINING":
        assert reply.status_code == 201 and body["status"] == "ok"
        project = body["status_url"].split("/")[2]
        job = wait_for_job(client, project, body["job"])
        assert job["state"] == "succeeded", job
        assert job["report"]["source"] == ("train_request" if path == "/train" else "annotation_log")
    elif action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"):
        assert reply.status_code == 201 and body["status"] == "ok"
    else:
        assert reply.status_code == 200 and body == {"status": "ignored", "action": action}


def _check_predictions(client: TestClient, request: dict, body: dict) -> None:
    setup = client.post("/setup", json={"project": request["project"], "schema": request["label_config"]}).json()
    labels = parse_label_config(request["label_config"]).controls[0].labels
    assert len(body["results"]) == len(request["tasks"])
    for item in body["results"]:
        assert set(item) == {"result", "score", "model_version"}
        assert item["model_version"] == setup["model_version"]
        assert isinstance(item["score"], float) and 0.0 < item["score"] <= 1.0
        (result,) = item["result"]
        assert (result["from_name"], result["to_name"], result["type"]) == ("topic", "news", "choices")
        assert len(result["value"]["choices"]) == 1 and result["value"]["choices"][0] in labels


def test_the_sample_model_predicts_the_captured_weather_task(clients):
    reply = replay(clients["open"], wire("04_predict_single_on_task_open.json")).json()
    assert reply["results"][0]["result"][0]["value"]["choices"] == ["Weather"]


def test_an_untrained_project_gets_no_predictions_and_an_untrained_version(tmp_path):
    client = TestClient(create_app(Settings(model_store_uri=f"file://{tmp_path}")))
    assert replay(client, wire("02_setup.json")).json() == {"model_version": "untrained"}
    assert replay(client, wire("03_predict_batch_retrieve_predictions.json")).json() == {"results": [], "model_version": "untrained"}


def test_annotation_webhooks_fill_the_annotation_log(clients):
    from functions.annotation_log import read_log

    client = clients["open"]
    replay(client, wire("09_webhook_ANNOTATION_CREATED.json"))
    store = client.app.state.services.store
    (task,) = [t for t in read_log(store, "1") if t["id"] == 1]
    assert task["data"]["text"] == "Parliament passed the new budget law after a long vote"
    assert task["annotations"][0]["result"][0]["value"]["choices"] == ["Politics"]
    replay(client, wire("11_webhook_ANNOTATIONS_DELETED.json"))  # deletes annotation 13
    tombstones = [store.get_json(key) for key in store.list_keys("projects/1/deleted_annotations/")]
    assert {"ids": [13]} in tombstones
