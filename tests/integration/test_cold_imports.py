"""/health and /setup answer from a fresh process without importing scikit-learn (Label Studio
calls them before every prediction, with 1 s and 3 s timeouts), and /predict serves the
compact model without scikit-learn, SciPy, joblib or any unpickling."""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, sample_config, sample_tasks

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from functions.api.app import create_app
    from functions.settings import Settings
    from functions.store import LocalStore

    from functions import signing
    from functions.store import json_bytes

    store_dir = sys.argv[1]
    store, settings = LocalStore(store_dir), Settings(model_store_uri="file://" + store_dir)
    manifest = json_bytes({"version": "p9-v3", "number": 3})  # /setup verifies the signed manifest, loads no model
    store.put("projects/9/models/p9-v3/manifest.json", manifest)
    store.put_json("projects/9/models/p9-v3/signature.json", signing.signer_for(store, settings).sign(manifest))
    store.put_json("projects/9/latest.json", {"version": "p9-v3", "number": 3})
    client = TestClient(create_app(settings))
    health = client.get("/health").json()
    setup = client.post("/setup", json={"project": "9.1700000000", "schema": "<View/>"}).json()
    print(json.dumps({"health": health, "setup": setup, "sklearn": [m for m in sys.modules if m.startswith("sklearn")]}))
    """
)


def test_health_and_setup_do_not_import_scikit_learn(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["health"]["status"] == "UP"
    assert result["setup"] == {"model_version": "p9-v3"}
    assert result["sklearn"] == []


HANDLER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from functions.api.handler import handler

    event = json.load(open(sys.argv[1]))
    reply = handler(event, None)
    heavy = ("sklearn", "scipy", "numpy", "boto3", "botocore", "httpx")
    print(json.dumps({"reply": reply, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(heavy))}))
    """
)


def test_the_lambda_api_handler_answers_health_cold_without_heavy_imports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_STORE", "TRAIN_QUEUE", "BASIC_AUTH"))}
    env["MODEL_STORE_URI"] = f"file://{tmp_path}"
    done = subprocess.run(
        [sys.executable, "-c", HANDLER_SCRIPT, str(ROOT / "events" / "http_health.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reply"]["statusCode"] == 200
    assert json.loads(result["reply"]["body"])["status"] == "UP"
    assert result["heavy"] == []  # only the first /predict (NumPy) or an S3 read (boto3) pays for these


PREDICT_SCRIPT = textwrap.dedent(
    """
    import json, pickle, sys
    from fastapi.testclient import TestClient
    from functions.api.app import create_app
    from functions.settings import Settings

    def refuse(*args, **kwargs):
        raise AssertionError("the api path unpickled something")

    pickle.loads = pickle.load = refuse
    store_dir, config, cold_start = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    client = TestClient(create_app(Settings(model_store_uri="file://" + store_dir, cold_start=cold_start)))
    tasks = [{"id": 1, "data": {"text": "the striker scored a late goal"}}, {"id": 2, "data": {"text": "heavy rain and snow"}}]
    replies = [
        client.get("/health").json(),
        client.post("/setup", json={"project": "4.1700000000", "schema": config}).json(),
        client.post("/predict", json={"tasks": tasks, "project": "4.1700000000", "label_config": config}).json(),
    ]
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "joblib", "threadpoolctl"})
    print(json.dumps({"replies": replies, "heavy": heavy}))
    """
)


def _predict_in_fresh_process(store_dir, cold_start=False):
    config = sample_config()
    done = subprocess.run(
        [sys.executable, "-c", PREDICT_SCRIPT, str(store_dir), config, "1" if cold_start else "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_predict_serves_a_trained_version_without_scikit_learn_or_unpickling(tmp_path):
    from functions.jobs import TRAIN_REQUEST, Job, save_job
    from functions.settings import Settings
    from functions.store import LocalStore
    from functions.training import run_job

    store = LocalStore(tmp_path)
    store.put_json("projects/4/requests/r.json", {"annotations": sample_tasks()})
    job = Job(job_id="0" * 32, project="4", source=TRAIN_REQUEST, label_config=sample_config(), request_key="projects/4/requests/r.json")
    save_job(store, job)
    assert run_job(job.message(), Settings(model_store_uri=f"file://{tmp_path}"), store).version == "p4-v1"

    result = _predict_in_fresh_process(tmp_path)
    health, setup, predict = result["replies"]
    assert health["status"] == "UP" and setup == {"model_version": "p4-v1"}
    assert [item["result"][0]["value"]["choices"] for item in predict["results"]] == [["Sport"], ["Weather"]]
    assert all(item["model_version"] == "p4-v1" and 0.25 < item["score"] <= 1 for item in predict["results"])
    assert result["heavy"] == []


def test_the_cold_start_model_is_fitted_without_scikit_learn(tmp_path):
    result = _predict_in_fresh_process(tmp_path, cold_start=True)
    predict = result["replies"][2]
    assert len(predict["results"]) == 2 and predict["model_version"] == "cold-start"
    assert result["heavy"] == []
