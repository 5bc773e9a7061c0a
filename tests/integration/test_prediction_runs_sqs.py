"""A multi-chunk prediction run end to end through SQS under moto: the api handler queues the
plan → the predict handler plans it into chunk messages on the same queue → predict handlers
do the chunks (one record per event, as the event source delivers them) → Label Studio (a fake
client) holds one prediction per task; a redelivered chunk and a busy chunk behave."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from functions.api import handler as api_handler
from functions.api.services import Services
from functions.predict import handler as predict_handler
from functions.settings import get_settings
from tests.integration.test_prediction_runs import PROJECT, project_tasks, publish
from tests.runs_fakes import FakeLabelStudio

BUCKET, QUEUE = "ls-textcls-test-runs", "ls-textcls-test-predict"


@pytest.fixture
def cloud(monkeypatch):
    fake = FakeLabelStudio(tasks={PROJECT: project_tasks(2_345, no_text={100, 2_000})})
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "MODEL_STORE_URI": f"s3://{BUCKET}", "TRAIN_QUEUE": "none", "PREDICT_QUEUE": queue, "MODEL_SIGNING_KEY": "k",
            "LABEL_STUDIO_URL": "http://ls.invalid", "LABEL_STUDIO_API_KEY": "token", "LABEL_STUDIO_PROJECTS": PROJECT,
            "PREDICT_CHUNK_TASKS": "500", "PREDICT_AFTER_TRAINING": "false",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setattr("functions.runs.worker.default_client", fake.client)
        get_settings.cache_clear()
        predict_handler._context.cache_clear()
        api_handler.app.state.services = Services()
        yield {"sqs": sqs, "queue": queue, "fake": fake}
    get_settings.cache_clear()
    predict_handler._context.cache_clear()
    api_handler.app.state.services = Services()


def call_api(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "api.example.org", "content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1", "protocol": "HTTP/1.1"},
                           "domainName": "api.example.org", "stage": "$default"},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }
    reply = api_handler.handler(event, None)
    return reply["statusCode"], json.loads(reply["body"])


def receive(cloud, delete: bool = True) -> list[dict]:
    """The next messages as SQS event records (deleted as Lambda does after success)."""
    messages = cloud["sqs"].receive_message(QueueUrl=cloud["queue"], MaxNumberOfMessages=10, AttributeNames=["All"],
                                            WaitTimeSeconds=0).get("Messages", [])
    records = []
    for message in messages:
        if delete:
            cloud["sqs"].delete_message(QueueUrl=cloud["queue"], ReceiptHandle=message["ReceiptHandle"])
        records.append({"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
                        "attributes": message["Attributes"], "eventSource": "aws:sqs"})
    return records


def test_a_multi_chunk_run_through_the_queue(cloud, monkeypatch):
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")
    get_settings.cache_clear()
    version = publish(get_settings())
    status, reply = call_api("POST", f"/projects/{PROJECT}/prediction-runs", {})
    assert status == 202 and reply["state"] == "queued" and reply["model_version"] == version

    (plan,) = receive(cloud)
    assert json.loads(plan["body"]) == {"project": PROJECT, "run": reply["run"], "page": None}
    assert predict_handler.handler({"Records": [plan]}, None) == {"batchItemFailures": []}
    chunk_records = []
    while batch := receive(cloud):
        chunk_records += batch
    assert sorted(json.loads(r["body"])["page"] for r in chunk_records) == [1, 2, 3, 4, 5]
    _, running = call_api("GET", reply["status_url"])
    assert running["state"] == "running" and running["chunks"] == 5 and running["tasks_done"] == 0

    for record in chunk_records:  # batch size 1, as the event source is configured
        assert predict_handler.handler({"Records": [record]}, None) == {"batchItemFailures": []}
    _, run = call_api("GET", reply["status_url"])
    assert run["state"] == "succeeded", run
    assert (run["tasks_total"], run["tasks_done"], run["predictions_created"], run["tasks_skipped"], run["tasks_failed"]) == (
        2_345, 2_345, 2_343, 2, 0)
    counts = cloud["fake"].count(version)
    assert len(counts) == 2_343 and set(counts.values()) == {1}

    imports = cloud["fake"].imports
    assert predict_handler.handler({"Records": chunk_records[:2] + [plan]}, None) == {"batchItemFailures": []}  # redelivered
    assert cloud["fake"].imports == imports and set(cloud["fake"].count(version).values()) == {1}
    assert receive(cloud) == []


def test_transient_failures_go_back_to_the_queue_and_the_last_attempt_is_recorded(cloud, monkeypatch):
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")
    get_settings.cache_clear()
    version = publish(get_settings())
    _, reply = call_api("POST", f"/projects/{PROJECT}/prediction-runs", {"only_missing": True})
    (plan,) = receive(cloud)
    predict_handler.handler({"Records": [plan]}, None)
    records = []
    while batch := receive(cloud):
        records += batch
    cloud["fake"].unreachable_imports = 10**6
    first = records[0]
    assert predict_handler.handler({"Records": [first]}, None) == {"batchItemFailures": [{"itemIdentifier": first["messageId"]}]}
    first["attributes"]["ApproximateReceiveCount"] = "3"  # the queue's last delivery (maxReceiveCount 3)
    assert predict_handler.handler({"Records": [first]}, None) == {"batchItemFailures": []}
    cloud["fake"].unreachable_imports = 0
    assert predict_handler.handler({"Records": records[1:]}, None) == {"batchItemFailures": []}
    _, run = call_api("GET", reply["status_url"])
    assert run["state"] == "succeeded" and run["tasks_failed"] == 500 and run["predictions_created"] == 2_345 - 2 - 499
    assert "page 1" in run["reason"] and "after 3 attempts" in run["reason"]
    assert predict_handler.handler({"Records": [{"messageId": "x", "body": "{\"project\": \"../\"}"}]}, None) == {"batchItemFailures": []}
