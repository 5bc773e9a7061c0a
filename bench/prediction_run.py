"""A prediction run over a big project, end to end: this backend's real `make dev` process
pre-annotates every task of a Label Studio stand-in project.

    .venv/bin/python bench/prediction_run.py [--tasks 100000] [--data ag_news]

The stand-in (tests/ls_standin.py, built from what a real Label Studio 1.23.2 answered) serves
`--tasks` tasks whose texts cycle through ../shared/data/<data> (train and test splits), and
records the predictions imported into it. The backend (`python -m functions.dev`, a temporary
file:// store, OPENBLAS_NUM_THREADS=1) is first trained on the data set's training split through
POST /train; then POST /projects/1/prediction-runs starts a run, and GET polls it every 0.2 s.

Printed: the run's wall time from the POST to `succeeded`, tasks/s, the backend process's RSS
before the run and its peak (VmHWM) after it, the counts of the run, and a check that every task
holds exactly one prediction of the version. Beside them, the floor measured in the same run:
the compact model scoring the same texts in this process (functions.serving.predict_tasks),
tasks/s. Goals (issue 9): >= 2,000 tasks/s end to end, peak RSS <= 400 MiB. Exit status 1 if a
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["OPENBLAS_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import compare_reference as bench  # noqa: E402 - the server helpers (start, stop, call, CPU)

from tests.ls_standin import LEGACY_TOKEN, LabelStudioStandIn  # noqa: E402

PROJECT_ID = 1
GOAL_TASKS_PER_SECOND = 2000
GOAL_PEAK_MIB = 400


def project_tasks(data: bench.Data, count: int) -> list[dict[str, Any]]:
    texts = [task["data"]["text"] for task in data.train + data.test]
    return [{"id": n + 1, "data": {"text": texts[n % len(texts)]}} for n in range(count)]


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise bench.BenchmarkError(f"no {field} for process {pid}")


def train(server: bench.Server, data: bench.Data) -> str:
    conn = server.connection()
    body = json.dumps({"annotations": data.train, "project": f"{PROJECT_ID}.1700000000", "label_config": data.config})
    status, reply = bench.call(conn, "POST", "/train", body.encode())
    if status != 201:
        raise bench.BenchmarkError(f"/train answered {status}: {reply}")
    job = bench.wait_for_job(conn, server, reply["job"], timeout=600)
    if job.get("state") != "succeeded":
        raise bench.BenchmarkError(f"training {job.get('state')}: {job.get('reason')}")
    return job["version"]


def run(server: bench.Server, timeout: float = 1800) -> tuple[dict[str, Any], float]:
    conn = server.connection()
    started = time.perf_counter()
    status, reply = bench.call(conn, "POST", f"/projects/{PROJECT_ID}/prediction-runs", b"{}")
    if status != 202:
        raise bench.BenchmarkError(f"starting the run answered {status}: {reply}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, record = bench.call(conn, "GET", reply["status_url"])
        if status == 200 and record.get("state") in ("succeeded", "failed"):
            return record, time.perf_counter() - started
        time.sleep(0.2)
    raise bench.BenchmarkError(f"the run did not finish within {timeout:.0f} s")


def floor(store: Path, version: str, config: str, tasks: list[dict[str, Any]]) -> float:
    """Tasks/s of the compact model alone, in this process, on the same tasks."""
    from functions import versions
    from functions.label_config import parse_label_config
    from functions.serving import predict_tasks
    from functions.store import open_store

    model = versions.load(open_store(f"file://{store}"), str(PROJECT_ID), version)
    parsed = parse_label_config(config)
    started = time.process_time()
    for start in range(0, len(tasks), 1000):
        predict_tasks(tasks[start:start + 1000], parsed, model)
    return len(tasks) / (time.process_time() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the stand-in project (default 100,000)")
    parser.add_argument("--data", default="ag_news", help="data set under ../shared/data (default ag_news)")
    args = parser.parse_args()
    data = bench.load_data(args.data)
    tasks = project_tasks(data, args.tasks)
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    standin = LabelStudioStandIn(tasks={PROJECT_ID: tasks}, label_configs={PROJECT_ID: data.config})
    with standin:
        server = bench.this_backend(work / "store", work)
        server.env.update(LABEL_STUDIO_URL=standin.url, LABEL_STUDIO_API_KEY=LEGACY_TOKEN,
                          LABEL_STUDIO_PROJECTS=str(PROJECT_ID), PREDICT_AFTER_TRAINING="false")
        try:
            server.start()
            version = train(server, data)
            before = rss_mib(server.pid, "VmRSS")
            record, seconds = run(server)
            peak = rss_mib(server.pid, "VmHWM")
        finally:
            server.stop()
        per_task = {task_id: [p.get("model_version") for p in found] for task_id, found in standin.projects[PROJECT_ID].predictions.items()}
    floor_rate = floor(work / "store", version, data.config, tasks)
    rate = args.tasks / seconds
    complete = len(per_task) == args.tasks and all(versions == [version] for versions in per_task.values())
    counts = {k: record.get(k) for k in ("state", "model_version", "tasks_total", "tasks_done", "predictions_created", "tasks_skipped", "tasks_failed", "reason")}
    print(f"data: {args.data}, {args.tasks:,} tasks in the stand-in project; model {version} trained on {len(data.train):,} tasks")
    print(f"run: {json.dumps(counts)}")
    print(f"every task holds exactly one prediction of {version}: {'yes' if complete else 'NO'}")
    print(f"{'what':<44}{'value':>12}{'goal':>12}")
    print(f"{'end to end, tasks/s':<44}{rate:>12,.0f}{'>= ' + str(GOAL_TASKS_PER_SECOND):>12}")
    print(f"{'  run wall time, s':<44}{seconds:>12.1f}")
    print(f"{'backend RSS before the run, MiB':<44}{before:>12.0f}")
    print(f"{'backend peak RSS (VmHWM) after it, MiB':<44}{peak:>12.0f}{'<= ' + str(GOAL_PEAK_MIB):>12}")
    print(f"{'floor: compact model in process, tasks/s':<44}{floor_rate:>12,.0f}")
    ok = complete and record.get("state") == "succeeded" and rate >= GOAL_TASKS_PER_SECOND and peak <= GOAL_PEAK_MIB
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
