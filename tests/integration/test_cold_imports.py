"""/health and /setup answer from a fresh process without importing scikit-learn (Label Studio
calls them before every prediction, with 1 s and 3 s timeouts)."""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from functions.api.app import create_app
    from functions.settings import Settings
    from functions.store import LocalStore

    store_dir = sys.argv[1]
    LocalStore(store_dir).put_json("projects/9/latest.json", {"version": "p9-v3", "number": 3})
    client = TestClient(create_app(Settings(model_store_uri="file://" + store_dir)))
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
    assert result["heavy"] == []  # only the first /predict (scikit-learn) or a store read (boto3) pays for these
