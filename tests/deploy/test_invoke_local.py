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


def test_invoke_local_leaves_out_the_stacks_aws_only_settings(sls_env):
    """With a generated secret CREDENTIALS_SECRET is a CloudFormation Ref, which invoke local would
    look up in the deployed stack (no AWS here): infra/deploy-guard-plugin.js leaves it and the KMS
    alias out of a local run, and needs no credentials choice for it."""
    for params in (["--param=credentials=generate"], []):
        done = subprocess.run(
            ["npx", "sls", "invoke", "local", "-f", "api", "--path", "events/http_health.json", "--stage", "ci", *params,
             "-e", "ALLOW_UNAUTHENTICATED=true"],
            cwd=ROOT, env=sls_env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        reply = json.loads(done.stdout[done.stdout.index("\n{") + 1 :])
        assert reply["statusCode"] == 200 and json.loads(reply["body"])["status"] == "UP"
