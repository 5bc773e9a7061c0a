"""START_TRAINING pulls the project's annotations from Label Studio's export API (a real HTTP
stand-in serving a shared data set), and falls back to the annotation log when it is down."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.settings import Settings
from tests.conftest import annotation_created, dataset, gold_label, label_config_of, predict_accuracy, sample_config, sample_tasks, shared, wait_for_job
from tests.ls_standin import PERSONAL_ACCESS_TOKEN, LabelStudioStandIn

pytestmark = pytest.mark.slow


def app_with(tmp_path, url: str) -> TestClient:
    settings = Settings(
        model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0,
        label_studio_url=url, label_studio_api_key=PERSONAL_ACCESS_TOKEN, label_studio_timeout=20,
        label_studio_projects="31,32",  # the projects Start Training may export
    )
    return TestClient(create_app(settings))


def test_start_training_trains_on_label_studio_export(tmp_path):
    config = label_config_of("bbc_news")
    with LabelStudioStandIn({31: shared("data", "bbc_news", "labeled_train.json")}, prefix="/ls") as standin:
        client = app_with(tmp_path, standin.url)
        reply = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 31, "label_config": config}})
        job = wait_for_job(client, "31", reply.json()["job"])
    assert job["state"] == "succeeded" and job["version"] == "p31-v1"
    report = job["report"]
    assert report["source"] == "label_studio" and report["label_studio_url"] == standin.url
    assert report["tasks_fetched"] == report["tasks_seen"] == 1699 and report["dropped"] == {}
    topic = report["controls"]["topic"]
    assert topic["examples"] == 1699
    assert topic["labels"] == dict(Counter(gold_label(task) for task in dataset("bbc_news", "labeled_train")))
    assert topic["quality"]["validated_on"] == 1699 and topic["quality"]["folds"] == 5
    assert topic["quality"]["accuracy"] >= 0.95 and topic["quality"]["macro_f1"] >= 0.95
    assert sum(map(sum, topic["quality"]["confusion"]["matrix"])) == 1699
    assert topic["auto_label"]["threshold"] is not None and topic["auto_label"]["validated_on"] == 1699
    accuracy, _ = predict_accuracy(client, "31.1", config, dataset("bbc_news", "labeled_test"))
    assert accuracy >= 0.95
    assert PERSONAL_ACCESS_TOKEN not in json.dumps(job)
    store_text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "store").rglob("*.json"))
    assert PERSONAL_ACCESS_TOKEN not in store_text and "access-1" not in store_text


def test_with_label_studio_down_training_uses_the_annotation_log_and_says_so(tmp_path):
    standin = LabelStudioStandIn({})
    with standin:
        url = standin.url
    client = app_with(tmp_path, url)  # nothing listens there any more
    config = sample_config()
    for task in sample_tasks():
        client.post("/webhook", json=annotation_created(task, 32, config))
    reply = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 32, "label_config": config}})
    job = wait_for_job(client, "32", reply.json()["job"])
    assert job["state"] == "succeeded"
    report = job["report"]
    assert report["source"] == "annotation_log" and report["tasks_fetched"] == 32
    assert f"could not reach Label Studio at {url}" in report["label_studio_error"]
    assert report["label_studio_error"].endswith("trained on the annotation log instead")


def test_refused_credentials_fail_the_job_with_a_reason(tmp_path):
    with LabelStudioStandIn({33: sample_tasks()}) as standin:
        settings = Settings(model_store_uri=f"file://{tmp_path}", label_studio_url=standin.url, label_studio_api_key="stale-legacy-token",
                            label_studio_projects="33")
        client = TestClient(create_app(settings))
        reply = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 33, "label_config": sample_config()}})
        job = wait_for_job(client, "33", reply.json()["job"])
    assert job["state"] == "failed"
    assert f"Label Studio at {standin.url} answered 401" in job["reason"] and "stale-legacy-token" not in job["reason"]
