"""Fail-closed auth, the webhook secret, Host and content-type checks, and request limits,
through the HTTP API (issue 8 rows 1, 3, 8 and 11)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.settings import Settings

from tests.conftest import annotation_created, sample_config, sample_tasks

PROJECT = "5.1700000000"


def make_client(tmp_path: Path, **settings) -> TestClient:
    return TestClient(create_app(Settings(model_store_uri=f"file://{tmp_path / 'store'}", **settings)))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def setup(client: TestClient, **headers: str):
    return client.post("/setup", json={"project": PROJECT, "schema": sample_config()}, headers=headers)


def stored(tmp_path: Path) -> list[str]:
    root = tmp_path / "store"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    "settings",
    [{"host": "0.0.0.0"}, {"aws_lambda_function_name": "ls-textcls-prod-api"}],
    ids=["make-dev-on-all-interfaces", "lambda"],
)
def test_without_credentials_only_health_is_served(tmp_path, settings):
    client = make_client(tmp_path, **settings)
    assert client.get("/health").json()["status"] == "UP"
    for reply in (setup(client), client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 5}}), client.get("/versions")):
        assert reply.status_code == 503
        assert "no credentials configured" in reply.json()["detail"] and "ALLOW_UNAUTHENTICATED" in reply.json()["detail"]
    assert stored(tmp_path) == []


def test_loopback_make_dev_or_an_explicit_opt_out_serves_without_credentials(tmp_path):
    assert setup(make_client(tmp_path)).json() == {"model_version": "untrained"}  # host 127.0.0.1, not Lambda
    opted_out = make_client(tmp_path, host="0.0.0.0", aws_lambda_function_name="api", allow_unauthenticated=True)
    assert setup(opted_out).status_code == 200


@pytest.mark.parametrize("password", [None, ""])
def test_a_user_without_a_password_is_refused_not_accepted_with_an_empty_one(tmp_path, password):
    client = make_client(tmp_path, basic_auth_user="labelstudio", basic_auth_pass=password)
    for headers in ({}, basic("labelstudio", "")):
        reply = setup(client, **headers)
        assert reply.status_code == 503 and "password is empty" in reply.json()["detail"]


def test_basic_credentials_are_required_and_checked(tmp_path):
    client = make_client(tmp_path, basic_auth_user="labelstudio", basic_auth_pass="s3cret", host="0.0.0.0")
    assert client.get("/health").status_code == 200  # Label Studio checks it first, without caring
    assert setup(client).status_code == 401 and setup(client).headers["www-authenticate"].startswith("Basic")
    assert setup(client, **basic("labelstudio", "wrong")).status_code == 401
    assert setup(client, **basic("labelstudio", "s3cret")).json() == {"model_version": "untrained"}


def test_the_webhook_secret_opens_the_webhook_and_nothing_else(tmp_path):
    client = make_client(tmp_path, basic_auth_user="labelstudio", basic_auth_pass="s3cret", webhook_secret="hook-Zq8", host="0.0.0.0")
    event = annotation_created(sample_tasks()[0], 5, sample_config())
    assert client.post("/webhook", json=event).status_code == 401
    assert client.post("/webhook", json=event, headers={"X-Webhook-Secret": "hook-wrong"}).status_code == 401
    assert client.post("/webhook/hook-wrong", json=event).status_code == 401
    assert client.post("/webhook", json=event, headers={"X-Webhook-Secret": "hook-Zq8"}).status_code == 201
    assert client.post("/webhook/hook-Zq8", json=event).status_code == 201
    assert client.post("/webhook", json=event, headers=basic("labelstudio", "s3cret")).status_code == 201  # Start Training's way
    assert setup(client, **{"X-Webhook-Secret": "hook-Zq8"}).status_code == 401
    assert [k for k in stored(tmp_path) if "/annotations/" in k] == [f"projects/5/annotations/{sample_tasks()[0]['id']}.json"]


def test_other_hosts_are_refused_when_allowed_hosts_is_set(tmp_path):
    client = make_client(tmp_path, allowed_hosts="backend.example.org, localhost")
    assert setup(client, Host="evil.example").status_code == 400
    assert "ALLOWED_HOSTS" in setup(client, Host="evil.example").json()["detail"]
    assert setup(client, Host="backend.example.org:443").status_code == 200
    assert setup(client, Host="localhost:9090").status_code == 200


def test_bodies_must_be_json_so_a_web_page_cannot_post_them(tmp_path):
    client = make_client(tmp_path)
    body = json.dumps({"annotations": sample_tasks(), "project": PROJECT, "label_config": sample_config()})
    reply = client.post("/train", content=body, headers={"Content-Type": "text/plain"})
    assert reply.status_code == 415 and "application/json" in reply.json()["detail"]
    assert client.post("/webhook", content=b"{}", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert stored(tmp_path) == []  # nothing staged, nothing queued
    assert client.post("/train", content=body, headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 201


def test_request_limits_answer_413_or_422_with_what_to_change(tmp_path):
    client = make_client(tmp_path, max_body_mb=0.01, max_tasks_per_predict=3, max_text_chars=50)
    config = sample_config()
    big = {"tasks": [{"id": 1, "data": {"text": "x" * 20_000}}], "project": PROJECT, "label_config": config}
    reply = client.post("/predict", json=big)
    assert reply.status_code == 413 and "MAX_BODY_MB" in reply.json()["detail"]
    many = {"tasks": [{"id": i, "data": {"text": "rain"}} for i in range(4)], "project": PROJECT, "label_config": config}
    reply = client.post("/predict", json=many)
    assert reply.status_code == 413 and "MAX_TASKS_PER_PREDICT" in reply.json()["detail"]
    long = {"tasks": [{"id": 7, "data": {"text": "rain"}}, {"id": 8, "data": {"text": "y" * 51}}], "project": PROJECT, "label_config": config}
    reply = client.post("/predict", json=long)
    assert reply.status_code == 422 and "task(s) 8 " in reply.json()["detail"] and "MAX_TEXT_CHARS" in reply.json()["detail"]


def test_a_predict_over_the_time_budget_is_refused_at_once_and_pointed_to_prediction_runs(tmp_path):
    client = make_client(tmp_path, predict_time_budget_seconds=0.001)  # 2,000 characters at 2 million/s
    config = sample_config()
    small = {"tasks": [{"id": 1, "data": {"text": "rain " * 300}}], "project": PROJECT, "label_config": config}
    assert client.post("/predict", json=small).status_code == 200  # 1,500 characters
    big = {"tasks": [{"id": i, "data": {"text": "rain " * 300}} for i in range(2)], "project": PROJECT, "label_config": config}
    reply = client.post("/predict", json=big)
    assert reply.status_code == 413
    assert "PREDICT_TIME_BUDGET_SECONDS" in reply.json()["detail"] and "POST /projects/5/prediction-runs" in reply.json()["detail"]
