"""`sls invoke local` runs both handlers against a local store (infra/invoke_local.sh)."""

import json
import subprocess

from tests.conftest import ROOT


def test_both_handlers_run_locally_from_the_ready_event_files(sls_env, tmp_path):
    env = sls_env | {"MODEL_STORE_URI": f"file://{tmp_path}"}
    done = subprocess.run(["bash", "infra/invoke_local.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(":", 1) for line in done.stdout.strip().splitlines())
    assert json.loads(lines["health"])["status"] == "UP"
    assert json.loads(lines["worker"]) == {"batchItemFailures": []}
    assert json.loads(lines["setup"]) == {"model_version": "p1-v1"}
    predictions = json.loads(lines["predict"])["results"]
    assert [p["result"][0]["value"]["choices"] for p in predictions] == [["Weather"], ["Sport"]]
    assert (tmp_path / "projects/1/models/p1-v1/model.pkl").exists()
