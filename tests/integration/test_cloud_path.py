"""The whole cloud path under moto, with real event shapes: API Gateway v2 event → api handler
→ SQS FIFO message → SQS event → train handler → versioned objects in S3 → api handler serves
the new version. Plus data failures (recorded, not retried), transient failures (reported for
retry, then dead-lettered) and redelivery (one version per training request)."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from functions.api import handler as api_handler
from functions.api.services import Services
from functions.settings import get_settings
from functions.train import handler as train_handler
from tests.conftest import sample_config, sample_tasks, shared

BUCKET, QUEUE = "ls-textcls-test-models", "ls-textcls-test-train.fifo"
CONFIG = sample_config()


@pytest.fixture
def cloud(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "MODEL_STORE_URI": f"s3://{BUCKET}", "TRAIN_QUEUE": QUEUE, "TRAIN_MAX_ATTEMPTS": "3", "MODEL_SIGNING_KEY": "test-signing-key",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dlq = sqs.create_queue(QueueName="ls-textcls-test-train-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue = sqs.create_queue(QueueName=QUEUE, Attributes={
            "FifoQueue": "true", "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        })["QueueUrl"]
        _fresh_handlers()
        yield {"s3": s3, "sqs": sqs, "queue": queue, "dlq": dlq}
    _fresh_handlers()


def _fresh_handlers():
    """Both handler modules cache settings and clients per process, as in Lambda; reset them."""
    get_settings.cache_clear()
    train_handler._store.cache_clear()
    api_handler.app.state.services = Services()


def http_event(method: str, path: str, body: dict | None = None, query: str = "") -> dict:
    event = copy.deepcopy(json.loads(shared("aws_events", "http_predict.json").read_text()))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    event["body"] = json.dumps(body) if body is not None else None
    return event


def call_api(method: str, path: str, body: dict | None = None, query: str = "") -> tuple[int, dict]:
    reply = api_handler.handler(http_event(method, path, body, query), None)
    return reply["statusCode"], json.loads(reply["body"])


def sqs_event(cloud) -> dict:
    """The SQS event Lambda would deliver for the next message on the queue (real shape); the
    message leaves the queue, as Lambda deletes it after the handler returns."""
    template = json.loads(shared("aws_events", "sqs_train.json").read_text())["Records"][0]
    received = cloud["sqs"].receive_message(
        QueueUrl=cloud["queue"], MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    (message,) = received
    cloud["sqs"].delete_message(QueueUrl=cloud["queue"], ReceiptHandle=message["ReceiptHandle"])  # as Lambda does
    record = copy.deepcopy(template) | {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "md5OfBody": message["MD5OfBody"],
    }
    record["attributes"] = template["attributes"] | {k: v for k, v in message["Attributes"].items() if k != "SequenceNumber"}
    return {"Records": [record]}


def versions_in_s3(cloud, project: str) -> set[str]:
    listed = cloud["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"projects/{project}/models/")
    return {item["Key"].split("/")[3] for item in listed.get("Contents", [])}


def test_train_request_to_served_predictions(cloud):
    status, reply = call_api("POST", "/train", {"annotations": sample_tasks(), "project": "8.1795968764", "label_config": CONFIG})
    assert status == 201
    event = sqs_event(cloud)
    record = event["Records"][0]
    assert json.loads(record["body"]) == {"project": "8", "job_id": reply["job"]}
    assert record["attributes"]["MessageGroupId"] == "8"

    assert train_handler.handler(event, None) == {"batchItemFailures": []}
    assert versions_in_s3(cloud, "8") == {"p8-v1"}
    keys = {o["Key"] for o in cloud["s3"].list_object_versions(Bucket=BUCKET, Prefix="projects/8/")["Versions"]}
    assert {"projects/8/latest.json", "projects/8/models/p8-v1/model.pkl", "projects/8/models/p8-v1/labels.json"} <= keys

    assert call_api("POST", "/setup", {"project": "8.1795968764", "schema": CONFIG}) == (200, {"model_version": "p8-v1"})
    status, predicted = call_api("POST", "/predict", {
        "tasks": [{"id": 1, "data": {"text": "Heavy snow and wind tonight"}}, {"id": 2, "data": {"text": "Parliament votes on the budget"}}],
        "project": "8.1795968764", "label_config": CONFIG,
    })
    assert status == 200
    assert [r["result"][0]["value"]["choices"] for r in predicted["results"]] == [["Weather"], ["Politics"]]
    assert {r["model_version"] for r in predicted["results"]} == {"p8-v1"}
    status, job = call_api("GET", f"/projects/8/jobs/{reply['job']}")
    assert job["state"] == "succeeded" and job["version"] == "p8-v1"
    assert call_api("GET", "/versions") == (200, {"versions": ["p8-v1"]})


def test_start_training_webhook_trains_on_the_annotation_log(cloud):
    for task in sample_tasks():
        body = {"action": "ANNOTATION_CREATED", "project": {"id": 9}, "annotation": task["annotations"][0], "task": {"id": task["id"], "data": task["data"]}}
        assert call_api("POST", "/webhook", body)[0] == 201
    status, reply = call_api("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": 9, "label_config": CONFIG}})
    assert status == 201
    assert call_api("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": 9, "label_config": CONFIG}})[1]["job"] == reply["job"]
    assert train_handler.handler(sqs_event(cloud), None) == {"batchItemFailures": []}
    assert call_api("POST", "/setup", {"project": "9.1", "schema": CONFIG})[1] == {"model_version": "p9-v1"}
    assert "Messages" not in cloud["sqs"].receive_message(QueueUrl=cloud["queue"], WaitTimeSeconds=0)


def test_a_data_failure_is_recorded_and_not_retried(cloud):
    only_sport = [t for t in sample_tasks() if t["annotations"][0]["result"][0]["value"]["choices"] == ["Sport"]]
    _, reply = call_api("POST", "/train", {"annotations": only_sport, "project": "8.1", "label_config": CONFIG})
    assert train_handler.handler(sqs_event(cloud), None) == {"batchItemFailures": []}
    _, job = call_api("GET", f"/projects/8/jobs/{reply['job']}")
    assert job["state"] == "failed" and "at least 2 different labels" in job["reason"]
    assert versions_in_s3(cloud, "8") == set()


def test_a_transient_failure_is_reported_for_retry_then_the_last_attempt_fails_the_job(cloud, monkeypatch):
    _, reply = call_api("POST", "/train", {"annotations": sample_tasks(), "project": "8.1", "label_config": CONFIG})
    event = sqs_event(cloud)
    message_id = event["Records"][0]["messageId"]

    def store_down(*args, **kwargs):
        from functions.errors import StoreUnavailable

        raise StoreUnavailable("model store: cannot write projects/8/models/p8-v1/model.pkl (SlowDown)")

    monkeypatch.setattr("functions.training.versions.publish", store_down)
    assert train_handler.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    _, job = call_api("GET", f"/projects/8/jobs/{reply['job']}")
    assert job["state"] == "queued" and job["reason"].startswith("attempt 1 of 3 failed (StoreUnavailable")

    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"
    assert train_handler.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    _, job = call_api("GET", f"/projects/8/jobs/{reply['job']}")
    assert job["state"] == "failed" and "dead-letter" in job["reason"]
    assert versions_in_s3(cloud, "8") == set()


def test_the_same_message_delivered_twice_publishes_one_version(cloud):
    _, reply = call_api("POST", "/train", {"annotations": sample_tasks(), "project": "8.1", "label_config": CONFIG})
    event = sqs_event(cloud)
    assert train_handler.handler(event, None) == {"batchItemFailures": []}
    assert train_handler.handler(event, None) == {"batchItemFailures": []}
    assert versions_in_s3(cloud, "8") == {"p8-v1"}

    # A crash after publishing but before the job record said so: the redelivery finishes v1.
    store = train_handler._store()
    record = json.loads(store.get(f"projects/8/jobs/{reply['job']}.json").data)
    store.put_json(f"projects/8/jobs/{reply['job']}.json", record | {"state": "running", "version": None})
    assert train_handler.handler(event, None) == {"batchItemFailures": []}
    assert versions_in_s3(cloud, "8") == {"p8-v1"}
    assert call_api("GET", f"/projects/8/jobs/{reply['job']}")[1]["version"] == "p8-v1"


def test_a_malformed_message_is_dropped_not_retried(cloud):
    event = {"Records": [{"messageId": "m-1", "body": "{\"project\": \"../x\", \"job_id\": \"1\"}", "attributes": {}}]}
    assert train_handler.handler(event, None) == {"batchItemFailures": []}


def test_a_message_whose_job_record_is_gone_is_dropped_not_retried(cloud, caplog):
    """After `delete-project` (or when the record expired), a queued message names a job nobody
    can run: retrying would only dead-letter it."""
    body = json.dumps({"project": "31", "job_id": "0" * 32})
    event = {"Records": [{"messageId": "m-2", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}]}
    assert train_handler.handler(event, None) == {"batchItemFailures": []}
    assert "dropping SQS message m-2: project 31 has no training job 00000000000000000000000000000000" in caplog.text
