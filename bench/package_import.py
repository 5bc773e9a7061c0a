"""Cold /health from the deployment zip, with and without its bytecode, under Python 3.12.

    make package && python3.12 bench/package_import.py .serverless/ls-textcls.zip [--runs 5]

Lambda's /var/task is read-only: Python cannot cache bytecode there, so a package without
.pyc files compiles every imported module at each cold start. This extracts the zip twice
(all files; .py only), then times fresh processes that import the api handler and answer one
GET /health event, with PYTHONDONTWRITEBYTECODE=1 to mimic the read-only folder, beside
`python -c pass` measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
from functions.api.handler import handler
assert handler(json.load(open(sys.argv[1])), None)["statusCode"] == 200
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("archive")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if sys.version_info[:2] != (3, 12):
        raise SystemExit("run this under Python 3.12, the Lambda runtime")
    event = ROOT / "events" / "http_health.json"
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(args.archive) as archive:
        rows = [("python -c pass (reference)", time_runs([sys.executable, "-c", "pass"], {}, args.runs))]
        for label, keep in [("cold /health, package with .pyc", lambda n: True), ("cold /health, .py only", lambda n: not n.endswith(".pyc"))]:
            target = Path(folder) / label.replace(" ", "_").replace("/", "")
            archive.extractall(target, [name for name in archive.namelist() if keep(name)])
            env = {"PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1", "MODEL_STORE_URI": f"file://{folder}/store", "LOG_LEVEL": "WARNING"}
            rows.append((label, time_runs([sys.executable, "-c", CHILD, str(event)], env, args.runs)))
    print(f"python {sys.version.split()[0]}, {args.runs} runs, wall seconds from process start")
    for label, times in rows:
        print(f"{label:36} median {statistics.median(times):.3f}  min {min(times):.3f}  max {max(times):.3f}")


def time_runs(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MODEL_STORE", "AWS_"))}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=base | env, cwd="/", check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    main()
