"""Cold start of the api Lambda handler, measured from process start, beside a bare `python -c pass`.

    .venv/bin/python bench/cold_start.py [--runs 7]

Each figure is the wall time of a fresh Python process, from spawn to exit, that:
  - reference: runs `pass`;
  - health: imports functions.api.handler and answers GET /health (API Gateway v2 event);
  - setup: the same for POST /setup (reads the serving pointer from S3);
  - first predict: POST /predict for 2 tasks, loading the model from S3 (a moto server on
    127.0.0.1 holding a model trained on 2,000 AG News tasks from ../shared/data).
Target on the 2-core dev machine: health <= 0.6 s (Label Studio gives /health 1 s). The zips
themselves are measured by bench/package_import.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
from functions.api.handler import handler
reply = handler(json.load(open(sys.argv[1])), None)
assert reply["statusCode"] == 200, reply
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_STORE", "TRAIN_QUEUE"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "MODEL_STORE_URI": "s3://bench-models", "LOG_LEVEL": "WARNING", "MODEL_SIGNING_KEY": "bench",
    }
    config = publish_model(env)
    with tempfile.TemporaryDirectory() as folder:
        events = write_events(Path(folder), config)
        rows = [("python -c pass (reference)", measure([sys.executable, "-c", "pass"], env, args.runs))]
        for name in ("health", "setup", "predict"):
            label = {"health": "cold GET /health", "setup": "cold POST /setup", "predict": "cold first POST /predict"}[name]
            rows.append((label, measure([sys.executable, "-c", CHILD, str(events[name])], env, args.runs)))
    server.stop()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), {args.runs} runs each, wall seconds from process start")
    print(f"{'what':32} {'median':>8} {'min':>8} {'max':>8}")
    for label, times in rows:
        print(f"{label:32} {statistics.median(times):8.3f} {min(times):8.3f} {max(times):8.3f}")


def publish_model(env: dict[str, str]) -> str:
    """Train on 2,000 AG News tasks and publish p1-v1 to the moto S3 server; returns the config."""
    os.environ.update(env)
    import boto3

    from functions.jobs import TRAIN_REQUEST, Job, save_job
    from functions.settings import Settings
    from functions.store import open_store
    from functions.training import run_job

    boto3.client("s3").create_bucket(Bucket="bench-models")
    config = (SHARED / "data" / "ag_news" / "label_config.xml").read_text()
    tasks = json.loads((SHARED / "data" / "ag_news" / "labeled_train.json").read_text())[:2000]
    store = open_store(env["MODEL_STORE_URI"])
    store.put_json("projects/1/requests/bench.json", {"annotations": tasks})
    job = Job(job_id="0" * 32, project="1", source=TRAIN_REQUEST, label_config=config, request_key="projects/1/requests/bench.json")
    save_job(store, job)
    finished = run_job(job.message(), Settings(model_store_uri=env["MODEL_STORE_URI"]), store)
    assert finished.version == "p1-v1", finished
    return config


def write_events(folder: Path, config: str) -> dict[str, Path]:
    template = json.loads((ROOT / "events" / "http_predict.json").read_text())
    bodies = {
        "setup": {"project": "1.1700000000", "schema": config},
        "predict": {"tasks": [{"id": 1, "data": {"text": "Stocks rally as oil prices fall"}}, {"id": 2, "data": {"text": "Striker signs for the champions"}}],
                    "project": "1.1700000000", "label_config": config},
    }
    paths = {"health": ROOT / "events" / "http_health.json"}
    for name, body in bodies.items():
        event = json.loads(json.dumps(template))
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/{name}"
        event["body"] = json.dumps(body)
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(event))
    return paths


def measure(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{command[-1]} failed:\n{done.stderr[-2000:]}")
    return times


if __name__ == "__main__":
    main()
