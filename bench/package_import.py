"""Sizes and cold starts of the two deployment zips, under Python 3.12, as on Lambda.

    make package && python3.12 bench/package_import.py [PACKAGE_DIR] [--runs 5]

PACKAGE_DIR (default .serverless) holds api.zip and train.zip (`sls package`). Each zip is extracted
on its own, then fresh processes are timed from spawn to exit, with only that zip importable
(`python3.12 -S`: no site-packages; PYTHONPATH = the extracted zip) and PYTHONDONTWRITEBYTECODE=1,
as on Lambda's read-only /var/task, beside `python3.12 -S -c pass` measured in the same run:

  api zip:   cold GET /health (with the zip's .pyc, and .py only); cold first POST /predict of two
             tasks, loading the model of a local store (MODEL_STORE_URI=file://...);
  train zip: cold import of the train handler; a cold SQS event that trains a small job.

The model and the train jobs are prepared with the project's own code in the dev virtualenv
(.venv/bin/python, or --dev-python): TRAIN_REQUEST jobs on AG News tasks from ../shared/data, read
in place (2,000 tasks for the served model). A row that fails prints FAILED with the error; the
other rows still run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FORBIDDEN_IN_API = ("sklearn", "scipy", "joblib", "threadpoolctl")

API_CHILD = """
import json, sys
from functions.api.handler import handler
reply = handler(json.load(open(sys.argv[1])), None)
assert reply["statusCode"] == 200, reply
if len(sys.argv) > 2:  # /predict: the predictions, and whether the scientific stack was imported
    print(json.dumps({"body": json.loads(reply["body"]), "imported": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))}))
"""
TRAIN_IMPORT_CHILD = "import functions.train.handler"
TRAIN_CHILD = """
import json, sys
from functions.train.handler import handler
reply = handler(json.load(open(sys.argv[1])), None)
assert reply == {"batchItemFailures": []}, reply
"""
# Runs in the dev virtualenv, from the repository: stages TRAIN_REQUEST jobs, and runs those asked to.
PREPARE = """
import json, sys
from functions.jobs import TRAIN_REQUEST, Job, JobMessage, save_job
from functions.settings import Settings
from functions.store import open_store
from functions.training import run_job

spec = json.loads(sys.argv[1])
store = open_store(spec["store"])
config = open(spec["config"]).read()
tasks = json.load(open(spec["tasks"]))
for job in spec["jobs"]:
    key = f"projects/{job['project']}/requests/bench.json"
    store.put_json(key, {"annotations": tasks[: job["tasks"]]})
    record = Job(job_id=job["job_id"], project=job["project"], source=TRAIN_REQUEST, label_config=config, request_key=key)
    save_job(store, record)
    if job["run"]:
        done = run_job(record.message(), Settings(model_store_uri=spec["store"]), store)
        assert done.version, done
        print(done.version)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default=str(ROOT / ".serverless"), help="folder with api.zip and train.zip")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--predict-tasks", type=int, default=2000, help="AG News tasks of the served model")
    parser.add_argument("--train-tasks", type=int, default=500, help="AG News tasks of each timed training job")
    parser.add_argument("--dev-python", default=str(ROOT / ".venv" / "bin" / "python"), help="prepares the model and the jobs")
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 12):
        raise SystemExit("run this under Python 3.12, the Lambda runtime")
    zips = {name: Path(args.package) / f"{name}.zip" for name in ("api", "train")}
    for path in zips.values():
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `make package` (or `npx sls package`) first")

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s), {args.runs} runs each; wall seconds from process start")
    print(f"{'zip':10} {'zipped MiB':>11} {'unzipped MiB':>13} {'unzipped bytes':>15}  {'files':>6}")
    for name, path in zips.items():
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        unzipped = sum(info.file_size for info in infos)
        print(f"{path.name:10} {path.stat().st_size / 2**20:11.1f} {unzipped / 2**20:13.1f} {unzipped:15,}  {len(infos):6}")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        store = f"file://{work / 'store'}"
        model_note = prepare(args, store, work)
        api = extract(zips["api"], work / "api")
        api_py_only = extract(zips["api"], work / "api-py", keep=lambda name: not name.endswith(".pyc"))
        train = extract(zips["train"], work / "train")
        events = write_events(work, args.runs)
        base = {"MODEL_STORE_URI": store, "LOG_LEVEL": "WARNING", "TRAIN_QUEUE": "none"}
        api_env = base | {"PYTHONPATH": str(api)}
        train_env = base | {"PYTHONPATH": str(train), "OPENBLAS_NUM_THREADS": "1"}  # as serverless.yml sets it

        python = [sys.executable, "-S"]
        rows = [("python3.12 -S -c pass (reference)", measure([[*python, "-c", "pass"]] * args.runs, {}))]
        rows.append(("api: cold GET /health", measure([[*python, "-c", API_CHILD, str(events["health"])]] * args.runs, api_env)))
        rows.append(("api: cold GET /health, .py only", measure([[*python, "-c", API_CHILD, str(events["health"])]] * args.runs, api_env | {"PYTHONPATH": str(api_py_only)})))
        predict = measure([[*python, "-c", API_CHILD, str(events["predict"]), ",".join(FORBIDDEN_IN_API)]] * args.runs, api_env)
        if isinstance(predict, str) and any(f"'{name}" in predict for name in FORBIDDEN_IN_API):
            predict += " (the api zip has no scikit-learn/SciPy: serving must use the NumPy scorer, model.npz)"
        rows.append(("api: cold first POST /predict (2 tasks)", predict))
        rows.append(("train: cold import of the handler", measure([[*python, "-c", TRAIN_IMPORT_CHILD]] * args.runs, train_env)))
        training = measure([[*python, "-c", TRAIN_CHILD, str(event)] for event in events["train"]], train_env)
        if not isinstance(training, str):
            training = check_jobs(work / "store", args.runs) or training
        rows.append((f"train: cold SQS event, {args.train_tasks}-task job", training))

    print(model_note)
    print(f"{'what':44} {'median':>8} {'min':>8} {'max':>8}")
    for label, result in rows:
        if isinstance(result, str):
            print(f"{label:44} FAILED: {result}")
        else:
            times = result["times"]
            print(f"{label:44} {statistics.median(times):8.3f} {min(times):8.3f} {max(times):8.3f}")
    if not isinstance(predict, str):
        reply = json.loads(predict["stdout"])
        choices = [r["result"][0]["value"]["choices"] for r in reply["body"]["results"]]
        print(f"/predict answered {choices}; scientific modules imported: {reply['imported'] or 'none'}")


def prepare(args: argparse.Namespace, store: str, work: Path) -> str:
    """Publish project 1's model (for /predict) and queue one job per timed training run."""
    data = SHARED / "data" / "ag_news"
    jobs = [{"project": "1", "job_id": f"{0:032x}", "tasks": args.predict_tasks, "run": True}]
    jobs += [{"project": str(100 + run), "job_id": f"{run + 1:032x}", "tasks": args.train_tasks, "run": False} for run in range(args.runs)]
    spec = {"store": store, "config": str(data / "label_config.xml"), "tasks": str(data / "labeled_train.json"), "jobs": jobs}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MODEL_STORE", "AWS_", "TRAIN_QUEUE"))}
    done = subprocess.run([args.dev_python, "-c", PREPARE, json.dumps(spec)], cwd=ROOT, env=env | {"LOG_LEVEL": "WARNING"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"preparing the store with {args.dev_python} failed:\n{done.stderr[-3000:]}")
    version = done.stdout.split()[-1]
    folder = work / "store" / "projects" / "1" / "models" / version
    files = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(folder.iterdir()))
    return f"/predict model: {version}, {args.predict_tasks} AG News tasks ({files})"


def extract(archive: Path, target: Path, keep=lambda name: True) -> Path:
    with zipfile.ZipFile(archive) as source:
        source.extractall(target, [name for name in source.namelist() if keep(name)])
    return target


def write_events(work: Path, runs: int) -> dict:
    config = (SHARED / "data" / "ag_news" / "label_config.xml").read_text()
    predict = json.loads((ROOT / "events" / "http_predict.json").read_text())
    predict["rawPath"] = predict["requestContext"]["http"]["path"] = "/predict"
    predict["body"] = json.dumps({
        "tasks": [{"id": 1, "data": {"text": "Stocks rally as oil prices fall"}}, {"id": 2, "data": {"text": "Striker signs for the champions"}}],
        "project": "1.1700000000", "label_config": config,
    })
    events = {"health": ROOT / "events" / "http_health.json", "predict": work / "predict.json", "train": []}
    events["predict"].write_text(json.dumps(predict))
    for run in range(runs):
        event = json.loads((ROOT / "events" / "sqs_train.json").read_text())
        project = str(100 + run)
        event["Records"][0]["body"] = json.dumps({"project": project, "job_id": f"{run + 1:032x}"})
        event["Records"][0]["attributes"]["MessageGroupId"] = project
        events["train"].append(work / f"sqs_train_{run}.json")
        events["train"][-1].write_text(json.dumps(event))
    return events


def measure(commands: list[list[str]], env: dict[str, str]) -> dict | str:
    """Times each command in a fresh process from `/`; the error's last line if one fails."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MODEL_STORE", "AWS_", "TRAIN_QUEUE", "OPENBLAS"))}
    times, stdout = [], ""
    for command in commands:
        started = time.perf_counter()
        done = subprocess.run(command, env=base | env | {"PYTHONDONTWRITEBYTECODE": "1"}, cwd="/", capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            return failure(done.stderr) or f"exit status {done.returncode}"
        stdout = done.stdout
    return {"times": times, "stdout": stdout}


def failure(stderr: str) -> str:
    """The error a failed child reports: the logged exception behind an HTTP 500 rather than the
    child's own assertion on the status code."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    causes = [line for line in errors if not line.startswith("AssertionError: {'statusCode'")]
    message = (causes or errors or lines or [""])[-1]
    status = re.search(r"'statusCode': (\d+)", stderr)
    return message[:300] + (f" (HTTP {status[1]})" if status and causes else "")


def check_jobs(store: Path, runs: int) -> str | None:
    """None if every timed training job succeeded, else what happened to the first that did not."""
    for run in range(runs):
        record = json.loads((store / "projects" / str(100 + run) / "jobs" / f"{run + 1:032x}.json").read_text())
        if record["state"] != "succeeded":
            return f"job of project {100 + run} {record['state']}: {record.get('reason')}"
    return None


if __name__ == "__main__":
    main()
