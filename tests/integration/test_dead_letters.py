"""Dead letters under moto, driven the way SQS drives them: the event source receives a message, the
handler reports it failed (or Lambda gives up on it), and after the queue's maxReceiveCount (3)
deliveries SQS moves it to the dead-letter queue. Then `dead-letters` shows it with its job's or
run's reason and leaves it there; `--redrive` moves it back, and the handler, the fault cleared,
trains or predicts. A redrive that could not delete its dead letter cannot queue the job twice
(FIFO deduplication); a message nothing can run is kept, or deleted on request; a queue without a
dead-letter queue, or `make dev`'s local one, says so."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from functions import dead_letters
from functions.api import handler as api_handler
from functions.api.services import Services
from functions.cli import main
from functions.errors import QueueUnavailable, StoreUnavailable
from functions.predict import handler as predict_handler
from functions.settings import get_settings
from functions.train import handler as train_handler
from tests.conftest import sample_config, sample_tasks
from tests.integration.test_prediction_runs import PROJECT as RUN_PROJECT
from tests.integration.test_prediction_runs import project_tasks, publish
from tests.integration.test_prediction_runs_sqs import call_api
from tests.runs_fakes import FakeLabelStudio

BUCKET = "ls-textcls-test-dead-letters"
TRAIN, TRAIN_DLQ = "ls-textcls-test-train.fifo", "ls-textcls-test-train-dlq.fifo"
PREDICT, PREDICT_DLQ = "ls-textcls-test-predict", "ls-textcls-test-predict-dlq"
CONFIG = sample_config()


@pytest.fixture
def cloud(monkeypatch):
    fake = FakeLabelStudio(tasks={RUN_PROJECT: project_tasks(1_200, no_text={3})})
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = {}
        for name, dlq, fifo in ((TRAIN, TRAIN_DLQ, True), (PREDICT, PREDICT_DLQ, False)):
            extra = {"FifoQueue": "true"} if fifo else {}
            urls[dlq] = sqs.create_queue(QueueName=dlq, Attributes=extra)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=urls[dlq], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            urls[name] = sqs.create_queue(QueueName=name, Attributes=extra | {
                "VisibilityTimeout": "0",  # a failed delivery is visible again at once (AWS: after 5400 s / 1800 s)
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"}),
            })["QueueUrl"]
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "MODEL_STORE_URI": f"s3://{BUCKET}", "TRAIN_QUEUE": TRAIN, "PREDICT_QUEUE": urls[PREDICT],
            "TRAIN_MAX_ATTEMPTS": "3", "PREDICT_MAX_ATTEMPTS": "3", "MODEL_SIGNING_KEY": "test-signing-key",
            "ALLOW_UNAUTHENTICATED": "true", "LABEL_STUDIO_URL": "http://ls.invalid", "LABEL_STUDIO_API_KEY": "token",
            "LABEL_STUDIO_PROJECTS": RUN_PROJECT, "PREDICT_CHUNK_TASKS": "500", "PREDICT_AFTER_TRAINING": "false",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setattr(dead_letters, "WAIT_SECONDS", 0)  # moto answers every receive from all its messages
        monkeypatch.setattr("functions.runs.worker.default_client", fake.client)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        _fresh_handlers()
        yield {"sqs": sqs, "urls": urls, "fake": fake, "s3": boto3.client("s3")}
    _fresh_handlers()


def _fresh_handlers():
    get_settings.cache_clear()
    train_handler._store.cache_clear()
    predict_handler._context.cache_clear()
    api_handler.app.state.services = Services()




def deliver(cloud, queue: str, handler) -> dict | None:
    """One delivery as the Lambda event source makes it: receive one message (SQS counts the receive;
    at the 4th it moves the message to the dead-letter queue instead), hand it to the handler, delete
    it if the handler did not report it failed. Returns the handler's reply (None: nothing received)."""
    sqs, url = cloud["sqs"], cloud["urls"][queue]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]).get("Messages")
    if not messages:
        return None
    (message,) = messages
    record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
              "attributes": message["Attributes"], "eventSource": "aws:sqs"}
    reply = handler({"Records": [record]}, None)
    if not reply["batchItemFailures"]:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return reply


def messages_in(cloud, queue: str) -> list[dict]:
    """Every message of `queue` with its attributes, left in it (received, then made visible again)."""
    sqs, url = cloud["sqs"], cloud["urls"][queue]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30)
    found = found.get("Messages", [])
    for message in found:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return found


def cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["dead-letters", *args])
    out, err = capsys.readouterr()
    return status, out, err


def job_record(project: str, job_id: str) -> dict:
    return call_api("GET", f"/projects/{project}/jobs/{job_id}")[1]


def versions_in_s3(cloud, project: str) -> set[str]:
    listed = cloud["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"projects/{project}/models/")
    return {item["Key"].split("/")[3] for item in listed.get("Contents", [])}


def dead_letter_a_training(cloud, monkeypatch, project: str = "8") -> str:
    """A /train whose every attempt fails publishing (S3 down) until SQS dead-letters it; returns the job id."""
    status, reply = call_api("POST", "/train", {"annotations": sample_tasks(), "project": f"{project}.1", "label_config": CONFIG})
    assert status == 201

    def store_down(*args, **kwargs):
        raise StoreUnavailable(f"model store: cannot write projects/{project}/models/p{project}-v1/model.pkl (SlowDown)")

    with monkeypatch.context() as patched:
        patched.setattr("functions.training.versions.publish", store_down)
        for _ in range(3):
            assert deliver(cloud, TRAIN, train_handler.handler)["batchItemFailures"]
    assert deliver(cloud, TRAIN, train_handler.handler) is None  # the 4th receive moved it to the dead-letter queue
    assert len(messages_in(cloud, TRAIN_DLQ)) == 1
    return reply["job"]


def test_a_dead_lettered_training_is_listed_with_its_reason_redriven_and_then_trains(cloud, monkeypatch, capsys):
    job_id = dead_letter_a_training(cloud, monkeypatch)
    job = job_record("8", job_id)
    assert job["state"] == "failed" and job["reason"].startswith("attempt 3 of 3 failed (StoreUnavailable")
    ((dead,),) = [messages_in(cloud, TRAIN_DLQ)]

    # GIVEN the dead letter, WHEN it is listed, THEN it shows the job's failure and stays in the queue
    status, out, _ = cli(capsys, "--queue", "train", "--json")
    assert status == 0
    (shown,) = json.loads(out)
    assert shown == {
        "queue": "train", "message_id": dead["MessageId"], "project": "8", "job_id": job_id,
        "received": 5,  # 3 deliveries + this test's 2 looks (messages_in): every receive counts
        "sent_at": shown["sent_at"], "state": "failed", "reason": job["reason"], "note": None, "keep": None,
    }
    assert shown["sent_at"].startswith("20") and shown["sent_at"].endswith("+00:00")
    status, out, err = cli(capsys)  # --queue all: the predict dead-letter queue too
    assert status == 0
    assert out.splitlines() == [
        f"train dead-letter queue {TRAIN_DLQ}: 1 message(s)",
        f"  {dead['MessageId']}  project 8, job {job_id}, received 6 times, sent {shown['sent_at']}",
        f"    job is failed: {job['reason']}",
        f"predict dead-letter queue {PREDICT_DLQ}: empty",
    ]
    assert "--redrive" in err
    assert [m["MessageId"] for m in messages_in(cloud, TRAIN_DLQ)] == [dead["MessageId"]]
    assert messages_in(cloud, TRAIN) == []

    # WHEN it is redriven, THEN the job is queued again and the message is back on the training queue
    status, out, _ = cli(capsys, "--queue", "train", "--redrive")
    assert status == 0
    (line,) = out.splitlines()
    assert line.startswith(f"train: redriven {dead['MessageId']} (project 8, job {job_id}): sent to {TRAIN} as message ")
    assert line.endswith("; the job is queued again")
    assert messages_in(cloud, TRAIN_DLQ) == []
    (copy,) = messages_in(cloud, TRAIN)
    assert json.loads(copy["Body"]) == {"project": "8", "job_id": job_id}
    assert copy["Attributes"]["MessageGroupId"] == "8"
    assert copy["Attributes"]["MessageDeduplicationId"] == f"redrive-{dead['MessageId']}"
    job = job_record("8", job_id)
    assert job["state"] == "queued"
    assert job["reason"].startswith("redriven from the dead-letter queue at ")
    assert "(before: failed: attempt 3 of 3 failed (StoreUnavailable" in job["reason"]

    # WHEN the train function gets it with the fault cleared, THEN it trains and publishes
    assert deliver(cloud, TRAIN, train_handler.handler) == {"batchItemFailures": []}
    job = job_record("8", job_id)
    assert (job["state"], job["version"], job["reason"], job["attempts"]) == ("succeeded", "p8-v1", None, 4)
    assert versions_in_s3(cloud, "8") == {"p8-v1"}
    assert call_api("POST", "/setup", {"project": "8.1", "schema": CONFIG})[1] == {"model_version": "p8-v1"}
    assert messages_in(cloud, TRAIN) == []


def test_a_redrive_whose_delete_failed_cannot_queue_the_job_twice(cloud, monkeypatch, capsys):
    """The copy is deduplicated by the dead letter's message id, so redriving the same dead letter
    again within SQS's 5-minute window adds nothing (the original id, the job id, was used by the
    first send: SQS would have dropped a copy carrying it, and it did not drop ours)."""
    job_id = dead_letter_a_training(cloud, monkeypatch)
    ((dead,),) = [messages_in(cloud, TRAIN_DLQ)]
    original_call = dead_letters.DeadLetterQueue._call
    deletes = []

    def delete_fails_once(self, operation, doing, **params):
        if operation == "delete_message" and not deletes:
            deletes.append(params)
            raise QueueUnavailable(f"cannot {doing} {TRAIN_DLQ}: ServiceUnavailable")
        return original_call(self, operation, doing, **params)

    monkeypatch.setattr(dead_letters.DeadLetterQueue, "_call", delete_fails_once)
    status, out, _ = cli(capsys, "--queue", "train", "--redrive")
    assert status == 0 and "but it is still in the dead-letter queue" in out and deletes
    assert [m["MessageId"] for m in messages_in(cloud, TRAIN_DLQ)] == [dead["MessageId"]]  # visible again
    assert len(messages_in(cloud, TRAIN)) == 1

    status, out, _ = cli(capsys, "--queue", "train", "--redrive")  # the operator runs it again
    assert status == 0 and out.startswith(f"train: redriven {dead['MessageId']}")
    assert messages_in(cloud, TRAIN_DLQ) == []
    assert len(messages_in(cloud, TRAIN)) == 1  # SQS dropped the second copy: same deduplication id
    reason = job_record("8", job_id)["reason"]
    assert reason.startswith("redriven from the dead-letter queue") and reason.count("redriven") == 1

    assert deliver(cloud, TRAIN, train_handler.handler) == {"batchItemFailures": []}
    assert deliver(cloud, TRAIN, train_handler.handler) is None
    assert versions_in_s3(cloud, "8") == {"p8-v1"} and job_record("8", job_id)["state"] == "succeeded"


def test_a_message_whose_job_record_is_gone_is_kept_and_can_be_deleted(cloud, monkeypatch, capsys):
    job_id = dead_letter_a_training(cloud, monkeypatch, project="9")
    cloud["s3"].delete_object(Bucket=BUCKET, Key=f"projects/9/jobs/{job_id}.json")  # expired, or the project deleted
    ((dead,),) = [messages_in(cloud, TRAIN_DLQ)]

    status, out, _ = cli(capsys, "--queue", "train", "--redrive")
    assert status == 0
    assert out.startswith(f"train: skipped {dead['MessageId']} (project 9, job {job_id}): the job record is gone")
    assert [m["MessageId"] for m in messages_in(cloud, TRAIN_DLQ)] == [dead["MessageId"]]
    assert messages_in(cloud, TRAIN) == []

    status, _, err = cli(capsys, "--queue", "train", "--delete")
    assert status == 1 and "error: --delete removes one message for good: name it with --id" in err
    status, _, err = cli(capsys, "--queue", "train", "--delete", "--id", "no-such-message")
    assert status == 1 and f"error: no dead-lettered message no-such-message in {TRAIN_DLQ}" in err
    assert len(messages_in(cloud, TRAIN_DLQ)) == 1
    status, out, _ = cli(capsys, "--queue", "train", "--delete", "--id", dead["MessageId"])
    assert status == 0 and out == f"train: deleted {dead['MessageId']} (project 9, job {job_id}): deleted from {TRAIN_DLQ}\n"
    assert messages_in(cloud, TRAIN_DLQ) == []


def test_a_dead_lettered_prediction_chunk_is_redriven_and_completes_its_run(cloud, monkeypatch, capsys):
    version = publish(get_settings(), RUN_PROJECT)
    status, run = call_api("POST", f"/projects/{RUN_PROJECT}/prediction-runs", {})
    assert status == 202
    assert deliver(cloud, PREDICT, predict_handler.handler) == {"batchItemFailures": []}  # the plan: 3 chunks of 500
    for _ in range(2):
        assert deliver(cloud, PREDICT, predict_handler.handler) == {"batchItemFailures": []}
    # The last chunk: Label Studio refuses imports, and on the last attempt the store cannot even record it.
    cloud["fake"].unreachable_imports = 10**6
    with monkeypatch.context() as patched:
        patched.setattr("functions.runs.worker.record_failed_chunk",
                        lambda *a, **k: (_ for _ in ()).throw(StoreUnavailable("model store: SlowDown")))
        for _ in range(3):
            assert deliver(cloud, PREDICT, predict_handler.handler)["batchItemFailures"]
    assert deliver(cloud, PREDICT, predict_handler.handler) is None
    ((dead,),) = [messages_in(cloud, PREDICT_DLQ)]
    page = json.loads(dead["Body"])["page"]
    running = call_api("GET", run["status_url"])[1]
    assert (running["state"], running["chunks"], running["chunks_done"]) == ("running", 3, 2)  # it cannot finish

    status, out, _ = cli(capsys, "--queue", "predict", "--json")
    assert status == 0
    (shown,) = json.loads(out)
    assert shown == {
        "queue": "predict", "message_id": dead["MessageId"], "project": RUN_PROJECT, "run_id": run["run"], "page": page,
        "received": 4, "sent_at": shown["sent_at"], "state": "running", "reason": None, "note": None, "keep": None,
    }
    status, out, _ = cli(capsys, "--queue", "predict")
    what = f"project {RUN_PROJECT}, run {run['run']}, chunk {page}"
    assert out.splitlines()[1] == f"  {dead['MessageId']}  {what}, received 5 times, sent {shown['sent_at']}"
    assert out.splitlines()[2] == "    run is running"
    assert len(messages_in(cloud, PREDICT_DLQ)) == 1

    cloud["fake"].unreachable_imports = 0
    status, out, _ = cli(capsys, "--queue", "predict", "--redrive", "--id", dead["MessageId"])
    assert status == 0 and out.startswith(f"predict: redriven {dead['MessageId']} ({what}): sent to {PREDICT} as message ")
    assert messages_in(cloud, PREDICT_DLQ) == []
    assert deliver(cloud, PREDICT, predict_handler.handler) == {"batchItemFailures": []}
    done = call_api("GET", run["status_url"])[1]
    counts = (done["state"], done["tasks_done"], done["predictions_created"], done["tasks_failed"])
    assert counts == ("succeeded", 1_200, 1_199, 0)
    assert set(cloud["fake"].count(version).values()) == {1}  # one prediction per task, none twice


def test_without_a_dead_letter_queue_the_command_says_so(cloud, monkeypatch, capsys):
    monkeypatch.setenv("TRAIN_QUEUE", "local")
    status, _, err = cli(capsys, "--queue", "train")
    assert status == 1
    assert err.startswith("error: TRAIN_QUEUE is `local` (make dev): its in-process worker has no dead-letter queue; a job "
                          "that fails TRAIN_MAX_ATTEMPTS times is recorded failed")

    status, out, err = cli(capsys)  # all: the predict queue still has one
    assert status == 0 and out == f"predict dead-letter queue {PREDICT_DLQ}: empty\n"
    assert err.startswith("note: TRAIN_QUEUE is `local` (make dev)")

    monkeypatch.setenv("PREDICT_QUEUE", "none")
    status, _, err = cli(capsys)
    assert status == 1 and "TRAIN_QUEUE is `local`" in err and "; and PREDICT_QUEUE is `none`: messages wait in the store" in err

    plain = cloud["sqs"].create_queue(QueueName="no-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    status, _, err = cli(capsys, "--queue", "train", "--train-queue", plain)
    assert status == 1
    assert err == ("error: the training queue no-dlq.fifo has no dead-letter queue (no RedrivePolicy): SQS retries a failing "
                   "message there until its retention period ends, and nothing is dead-lettered\n")

    status, _, err = cli(capsys, "--queue", "train", "--train-queue", "missing-queue.fifo")
    assert status == 1 and err == "error: QueueUnavailable: training queue 'missing-queue.fifo' not found or not reachable (AWS.SimpleQueueService.NonExistentQueue)\n"


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_limit_below_one_is_refused(limit, capsys):
    assert main(["dead-letters", "--limit", limit]) == 1
    assert capsys.readouterr().err == f"error: --limit must be at least 1 (got {limit})\n"


def test_a_queue_name_that_cannot_be_resolved_says_why(monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("TRAIN_QUEUE", "ls-textcls-prod-train.fifo")
    get_settings.cache_clear()
    assert main(["dead-letters", "--queue", "train", "--store", "file:///nonexistent-store"]) == 1
    err = capsys.readouterr().err
    assert "training queue 'ls-textcls-prod-train.fifo' not found or not reachable (NoRegionError: You must specify a region.)" in err
