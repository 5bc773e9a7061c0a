"""`sls package` builds the deployment offline: one zip per function (api and predict without the
scientific stack, from the same module folder; train with it), and the CloudFormation template the
deployment issue asks for."""

import json
import os
import zipfile
from pathlib import PurePosixPath

import pytest

from tests.deploy.cfn import actions, archive_files, bucket_pattern, by_type, event_source_mappings, resources_for, statements_by_role

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes, function + layers
API_UNZIPPED_LIMIT = 73_400_320  # 70 MiB with its bytecode: the api zip carries no scikit-learn/SciPy
SCIENTIFIC = {"sklearn", "scipy", "joblib", "threadpoolctl", "scipy.libs", "scikit_learn.libs"}
WEB = {"fastapi", "starlette", "mangum"}
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}


def top_level(archive: zipfile.ZipFile) -> set[str]:
    """Importable top-level names in the zip (packages, modules, their bytecode) and `*.libs` folders."""
    names = set()
    for name in archive.namelist():
        parts = name.split("/")
        if parts[0] == "__pycache__" and len(parts) > 1:
            names.add(parts[1].split(".")[0])
        elif len(parts) == 1:
            names.add(parts[0].removesuffix(".py"))
        else:
            names.add(parts[0])
    return names


def unzipped_size(archive: zipfile.ZipFile) -> int:
    return sum(info.file_size for info in archive.infolist())


def test_each_function_deploys_its_own_zip(packaged):
    assert set(packaged.s3_keys) == {"functions/api/handler.handler", "functions/train/handler.handler",
                                     "functions/predict/handler.handler"}
    assert [PurePosixPath(key).name for key in sorted(packaged.s3_keys.values())] == ["api.zip", "predict.zip", "train.zip"]


def test_the_predict_zip_is_the_api_zip_numpy_without_the_scientific_stack(packaged):
    """predict uses the api's module folder (infra/zip/api): the same files, so a prediction-run worker
    loads the compact model with NumPy only, like /predict. (Only the bytecode may differ byte-wise:
    marshal's output depends on the compiling process's state.)"""
    api, predict = archive_files(packaged.api), archive_files(packaged.predict)
    assert predict.keys() == api.keys()
    assert {n: c for n, c in predict.items() if not n.endswith(".pyc")} == {n: c for n, c in api.items() if not n.endswith(".pyc")}
    names, modules = set(packaged.predict.namelist()), top_level(packaged.predict)
    assert {"functions/predict/handler.py", "functions/serving.py", "functions/label_studio.py"} <= names
    assert "numpy" in modules
    assert not SCIENTIFIC & modules, SCIENTIFIC & modules
    assert not RUNTIME_PROVIDED & modules


def test_the_api_zip_has_the_web_stack_and_numpy_but_not_the_scientific_stack_within_70_mib(packaged):
    archive = packaged.api
    names, modules = set(archive.namelist()), top_level(packaged.api)
    assert {"functions/api/handler.py", "functions/training.py"} <= names  # the whole shared package
    assert WEB | {"pydantic", "pydantic_core", "pydantic_settings", "defusedxml", "httpx", "numpy", "orjson"} <= modules
    assert not SCIENTIFIC & modules, SCIENTIFIC & modules
    assert not RUNTIME_PROVIDED & modules
    assert not any(n.startswith(("tests/", "samples/", "node_modules/", "infra/", "requirements/")) for n in names)
    assert unzipped_size(archive) <= API_UNZIPPED_LIMIT, f"{unzipped_size(archive) / 2**20:.1f} MiB unzipped"


def test_the_train_zip_has_the_scientific_stack_under_the_lambda_limit(packaged):
    archive = packaged.train
    names, modules = set(archive.namelist()), top_level(packaged.train)
    assert {"functions/train/handler.py", "functions/training.py"} <= names
    assert SCIENTIFIC | {"numpy", "pydantic", "pydantic_core", "pydantic_settings", "defusedxml", "httpx"} <= modules
    assert not WEB & modules, WEB & modules  # nothing the train handler imports needs them
    assert not RUNTIME_PROVIDED & modules
    assert not any(n.startswith(("tests/", "samples/", "node_modules/", "infra/", "requirements/")) for n in names)
    assert unzipped_size(archive) < LAMBDA_UNZIPPED_LIMIT, f"{unzipped_size(archive) / 2**20:.0f} MiB unzipped"


def test_both_zips_ship_python_3_12_bytecode_when_a_3_12_interpreter_is_at_hand(packaged):
    if "no Python 3.12 found" in packaged.log:
        message = "no Python 3.12 on this machine: the package was built without bytecode (see README)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    api, train = set(packaged.api.namelist()), set(packaged.train.namelist())
    assert {"functions/api/__pycache__/handler.cpython-312.pyc", "fastapi/__pycache__/applications.cpython-312.pyc",
            "numpy/__pycache__/__init__.cpython-312.pyc"} <= api
    assert {"functions/train/__pycache__/handler.cpython-312.pyc", "functions/__pycache__/training.cpython-312.pyc",
            "sklearn/__pycache__/__init__.cpython-312.pyc", "scipy/__pycache__/__init__.cpython-312.pyc"} <= train
    assert not any(".cpython-311." in n or ".cpython-313." in n for n in api | train)


def test_functions_events_and_queue_follow_the_design(packaged):
    resources, outputs = packaged.resources, packaged.outputs
    functions = {r["Properties"]["Handler"]: r["Properties"] for r in by_type(resources, "AWS::Lambda::Function").values()}
    api, train = functions["functions/api/handler.handler"], functions["functions/train/handler.handler"]
    predict = functions["functions/predict/handler.handler"]
    assert api["Runtime"] == train["Runtime"] == predict["Runtime"] == "python3.12" and api["Architectures"] == ["x86_64"]
    assert api["Timeout"] == 29 and train["Timeout"] == 900 and train["MemorySize"] >= 3008
    assert train["Environment"]["Variables"]["OPENBLAS_NUM_THREADS"] == "1"
    assert api["Environment"]["Variables"]["TRAIN_QUEUE"] == "ls-textcls-ci-train.fifo"

    mappings = event_source_mappings(resources)
    assert set(mappings) == {"TrainQueue", "PredictQueue"}
    props = mappings["TrainQueue"]
    assert props["Function"] == "TrainLambdaFunction"
    assert props["BatchSize"] == 1 and props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] >= 2

    queues = {r["Properties"]["QueueName"]: r["Properties"] for r in by_type(resources, "AWS::SQS::Queue").values()}
    queue, dlq = queues["ls-textcls-ci-train.fifo"], queues["ls-textcls-ci-train-dlq.fifo"]
    assert queue["FifoQueue"] and dlq["FifoQueue"]
    assert queue["VisibilityTimeout"] >= 6 * train["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    assert api["Environment"]["Variables"]["TRAIN_MAX_ATTEMPTS"] == "3"
    assert "LabelStudioBackendUrl" in outputs


def test_prediction_runs_fan_out_over_a_standard_queue_with_a_dead_letter_queue(packaged):
    resources, outputs = packaged.resources, packaged.outputs
    functions = {r["Properties"]["Handler"]: r["Properties"] for r in by_type(resources, "AWS::Lambda::Function").values()}
    predict = functions["functions/predict/handler.handler"]
    assert predict["MemorySize"] == 1769 and predict["Timeout"] == 300
    assert predict["Role"] == {"Fn::GetAtt": ["PredictRole", "Arn"]}

    queue, dlq = resources["PredictQueue"]["Properties"], resources["PredictDeadLetterQueue"]["Properties"]
    assert queue["QueueName"] == "ls-textcls-ci-predict" and dlq["QueueName"] == "ls-textcls-ci-predict-dlq"
    assert "FifoQueue" not in queue and "FifoQueue" not in dlq  # standard: independent, idempotent chunks
    assert queue["VisibilityTimeout"] >= 6 * predict["Timeout"]  # a chunk is never redelivered while a worker runs it
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["PredictDeadLetterQueue", "Arn"]}, "maxReceiveCount": 3}
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]  # a dead letter outlives its source
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]

    mapping = event_source_mappings(resources)["PredictQueue"]
    assert mapping["Function"] == "PredictLambdaFunction"
    assert mapping["BatchSize"] == 1 and mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == predict["ReservedConcurrentExecutions"] == 10

    for name, function in functions.items():  # api sends runs, train starts them, predict fans out
        variables = function["Environment"]["Variables"]
        assert variables["PREDICT_QUEUE"] == {"Ref": "PredictQueue"}, name  # the queue's URL
        assert variables["PREDICT_MAX_ATTEMPTS"] == "3" and variables["PREDICT_CHUNK_TASKS"] == "1000", name
        assert variables["MODEL_SIGNING_KMS_KEY"] == "alias/ls-textcls-ci-model-signing", name
    assert predict["Environment"]["Variables"]["MODEL_STORE_URI"] == "s3://ls-textcls-ci-models"
    assert outputs["PredictQueueUrl"]["Value"] == {"Ref": "PredictQueue"}
    assert outputs["PredictDeadLetterQueueUrl"]["Value"] == {"Ref": "PredictDeadLetterQueue"}


def test_the_bucket_is_versioned_private_encrypted_tls_only_and_survives_removal(packaged):
    resources = packaged.resources
    bucket = resources["ModelBucket"]
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert "ExpirationInDays" not in rules["ForgetOldVersionsOfRewrittenObjects"]  # current objects never expire
    statements = {s["Sid"]: s for s in resources["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    tls = statements["TlsOnly"]
    assert tls["Effect"] == "Deny" and tls["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_each_function_has_its_own_least_privilege_role_and_no_function_deletes(packaged):
    resources = packaged.resources
    functions = by_type(resources, "AWS::Lambda::Function")
    roles = {"ApiRole", "TrainRole", "PredictRole"}
    assert {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()} == roles
    assert set(by_type(resources, "AWS::IAM::Role")) == roles | {"ProjectDataDeleterRole"}  # operators' (test_delete_role.py)
    assert not by_type(resources, "AWS::IAM::User") and not by_type(resources, "AWS::IAM::ManagedPolicy")
    granted = statements_by_role(resources)  # inline policies and attached AWS::IAM::Policy resources
    assert set(granted) == roles | {"ProjectDataDeleterRole"}
    api, train, predict = (actions(granted[role]) for role in ("ApiRole", "TrainRole", "PredictRole"))
    assert not any("Delete" in a and a.startswith("s3:") for a in api | train | predict)
    assert not any(a.endswith("*") for a in api | train | predict)  # no wildcard actions

    def queues(role: str, action: str) -> set[str]:
        return {r["Fn::GetAtt"][0] for r in resources_for(granted[role], action)}

    # Training jobs: api sends, train consumes. Prediction runs: api and train send, predict consumes.
    assert queues("ApiRole", "sqs:SendMessage") == {"TrainQueue", "PredictQueue"}
    assert queues("TrainRole", "sqs:SendMessage") == {"PredictQueue"}
    assert queues("PredictRole", "sqs:SendMessage") == {"PredictQueue"}  # a run's plan fans out into chunks
    assert queues("TrainRole", "sqs:ReceiveMessage") == queues("TrainRole", "sqs:DeleteMessage") == {"TrainQueue"}
    assert queues("PredictRole", "sqs:ReceiveMessage") == queues("PredictRole", "sqs:DeleteMessage") == {"PredictQueue"}
    assert queues("PredictRole", "sqs:GetQueueAttributes") == {"PredictQueue"}  # what the event source mapping needs
    assert not queues("ApiRole", "sqs:ReceiveMessage")
    assert actions(granted["PredictRole"], "sqs:") == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:SendMessage"}
    api_writes = json.dumps(resources_for(granted["ApiRole"], "s3:PutObject"))
    assert "/models/" not in api_writes and "latest.json" not in api_writes
    api_patterns = {bucket_pattern(r) for r in resources_for(granted["ApiRole"], "s3:PutObject")}
    assert {"projects/*/queued_job.json", "projects/*/connected.json"} <= api_patterns  # one queued job; projects a pull may read
    assert "sqs:GetQueueAttributes" in api  # how long a queued job may legitimately wait
