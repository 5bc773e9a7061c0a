"""This backend beside the original tutorial backend (label-studio-ml 1.0.9), in one run, interleaved.

    .venv/bin/python bench/compare_reference.py [--rounds 3] [--data ag_news]

The first run installs the reference into ~/.cache/ls-textcls-bench/reference/venv (about a
minute, PyPI needed; later runs reuse it), writes the tutorial's model.py there (reconstructed
from ../shared/reference/tutorial_text_classification_sklearn.txt), and serves it with
`label-studio-ml start` (Flask dev server). This backend runs from the project's .venv
(`python -m functions.dev`, a temporary file:// model store). Both listen on 127.0.0.1 with
OPENBLAS_NUM_THREADS=1. The data is read in place from ../shared/data/<data> (or SHARED_DIR).

Each round, for each server in turn (this backend first, then the reference):
  - Start Training -> new version served (s): this backend: the annotation log is filled once
    (one ANNOTATION_CREATED webhook per training task, before round 1), then the time from
    POST /webhook START_TRAINING until POST /setup (polled every 50 ms) reports a new
    model_version. Reference: its synchronous POST /train (it answers 500 but has trained).
    Beside them, the reference's own fit time: the tutorial's pipeline fitted in this process
    on the same texts (the figure the goal compares with).
  - server CPU per single-task /predict (ms): utime+stime of the server process (all its
    threads, /proc/<pid>/stat) over --requests sequential one-task requests on one keep-alive
    connection, divided by their number; plus the client's p50 and p99 latency.
  - server CPU per 1,000-task /predict (ms): over --bulk-repeats requests, the mean without the
    lowest and the highest (/proc counts CPU in 10 ms ticks, too coarse for a median of ~100 ms).
  - 8 clients (req/s): 8 client processes, each with its own keep-alive connection, send
    single-task /predict for --duration s; every reply must be 200 with one result.
  - the scikit-learn floor: predict_proba CPU of the in-process pipeline, 1 text / 1,000 texts.
Both servers run as they ship: this backend (uvicorn, HTTP/1.1 keep-alive) may publish a version
up to POINTER_TTL_SECONDS (2 s) before /setup reports it; the reference (Flask/Werkzeug dev
server, threaded) answers HTTP/1.0, so its clients reconnect for every request, and it logs
every request to its log (~/.cache/ls-textcls-bench/reference/server.log).
Test-split accuracy of both servers (and the in-process pipeline) is checked after round 1.
Ratios are this backend / reference, the median of the per-round ratios; the machine is
noisy, so only the ratios of one run are worth comparing. Exit status 1 if a server fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads: the in-process floor runs like the servers

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
CACHE = Path.home() / ".cache" / "ls-textcls-bench" / "reference"
PROJECT_ID = 1
PROJECT = f"{PROJECT_ID}.1700000000"  # Label Studio's "<id>.<created_ts>"
CLIENTS = 8
BULK_TASKS = 1000
TRAIN_TIMEOUT = 900.0  # s, per training
POLL_SECONDS = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")

def reference_packages() -> list[str]:
    """The reference as the shared notes install it. No further pins were needed on Python 3.11:
    label-studio-ml 1.0.9 itself pins Flask 1.1.2, Werkzeug 2.0.2, Jinja2 3.0.3, itsdangerous 2.0.1.
    scikit-learn and NumPy get the versions of the project's .venv: both run the same estimator code."""
    return ["label-studio-ml==1.0.9", "rq==1.10.1", f"scikit-learn=={metadata.version('scikit-learn')}",
            f"numpy=={metadata.version('numpy')}", "requests"]


# The tutorial's model.py. The listing lost the loop bodies, an `else:`, a few closing brackets
# and the `self.reset_model()` call of the cold start; they are filled in as the original did.
REFERENCE_MODEL = '''\
import pickle
import os
import numpy as np

from sklearn.linear_model import LogisticRegression
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from label_studio_ml.model import LabelStudioMLBase


class SimpleTextClassifier(LabelStudioMLBase):

    def __init__(self, **kwargs):
        # don't forget to initialize base class...
        super(SimpleTextClassifier, self).__init__(**kwargs)

        # then collect all keys from config which will be used to extract data from task and to form prediction
        # Parsed label config contains only one output of <Choices> type
        assert len(self.parsed_label_config) == 1
        self.from_name, self.info = list(self.parsed_label_config.items())[0]
        assert self.info['type'] == 'Choices'

        # the model has only one textual input
        assert len(self.info['to_name']) == 1
        assert len(self.info['inputs']) == 1
        assert self.info['inputs'][0]['type'] == 'Text'
        self.to_name = self.info['to_name'][0]
        self.value = self.info['inputs'][0]['value']

        if not self.train_output:
            # If there is no trainings, define cold-started the simple TF-IDF text classifier
            self.reset_model()
            # This is an array of <Choice> labels
            self.labels = self.info['labels']
            # make some dummy initialization
            self.model.fit(X=self.labels, y=list(range(len(self.labels))))
            print('Initialized with from_name={from_name}, to_name={to_name}, labels={labels}'.format(
                from_name=self.from_name, to_name=self.to_name, labels=str(self.labels)
            ))
        else:
            # otherwise load the model from the latest training results
            self.model_file = self.train_output['model_file']
            with open(self.model_file, mode='rb') as f:
                self.model = pickle.load(f)
            # and use the labels from training outputs
            self.labels = self.train_output['labels']
            print('Loaded from train output with from_name={from_name}, to_name={to_name}, labels={labels}'.format(
                from_name=self.from_name, to_name=self.to_name, labels=str(self.labels)
            ))

    def reset_model(self):
        self.model = make_pipeline(TfidfVectorizer(ngram_range=(1, 3)), LogisticRegression(C=10, verbose=True))

    def predict(self, tasks, **kwargs):
        # collect input texts
        input_texts = []
        for task in tasks:
            input_text = task['data'].get(self.value)
            input_texts.append(input_text)

        # get model predictions
        probabilities = self.model.predict_proba(input_texts)
        predicted_label_indices = np.argmax(probabilities, axis=1)
        predicted_scores = probabilities[np.arange(len(predicted_label_indices)), predicted_label_indices]
        predictions = []
        for idx, score in zip(predicted_label_indices, predicted_scores):
            predicted_label = self.labels[idx]
            # prediction result for the single task
            result = [{
                'from_name': self.from_name,
                'to_name': self.to_name,
                'type': 'choices',
                'value': {'choices': [predicted_label]}
            }]

            # expand predictions with their scores for all tasks
            predictions.append({'result': result, 'score': score})

        return predictions

    def fit(self, completions, workdir=None, **kwargs):
        input_texts = []
        output_labels, output_labels_idx = [], []
        label2idx = {l: i for i, l in enumerate(self.labels)}

        for completion in completions:
            # get input text from task data
            if completion['annotations'][0].get('skipped') or completion['annotations'][0].get('was_cancelled'):
                continue

            input_text = completion['data'][self.value]
            input_texts.append(input_text)

            # get an annotation
            output_label = completion['annotations'][0]['result'][0]['value']['choices'][0]
            output_labels.append(output_label)
            output_label_idx = label2idx[output_label]
            output_labels_idx.append(output_label_idx)

        new_labels = set(output_labels)
        if len(new_labels) != len(self.labels):
            self.labels = list(sorted(new_labels))
            print('Label set has been changed:' + str(self.labels))
            label2idx = {l: i for i, l in enumerate(self.labels)}
            output_labels_idx = [label2idx[label] for label in output_labels]

        # train the model
        self.model.fit(input_texts, output_labels_idx)

        # save output resources
        model_file = os.path.join(workdir, 'model.pkl')
        with open(model_file, mode='wb') as fout:
            pickle.dump(self.model, fout)

        train_output = {
            'labels': self.labels,
            'model_file': model_file
        }
        return train_output
'''


class BenchmarkError(RuntimeError):
    """A server failed to start, died, or answered wrongly."""


# ---------------------------------------------------------------------------------------- data


@dataclass
class Data:
    """One shared data set: its label config, train and test tasks (export format)."""

    name: str
    config: str
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]

    @property
    def test_labels(self) -> list[str]:
        return [gold_label(task) for task in self.test]


def load_data(name: str) -> Data:
    folder = SHARED / "data" / name
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: the benchmark reads the shared data sets in place (set SHARED_DIR)")
    read = lambda file: json.loads((folder / file).read_text(encoding="utf-8"))  # noqa: E731
    return Data(name, (folder / "label_config.xml").read_text(encoding="utf-8"), read("labeled_train.json"), read("labeled_test.json"))


def gold_label(task: dict[str, Any]) -> str:
    return task["annotations"][0]["result"][0]["value"]["choices"][0]


def tutorial_examples(tasks: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Texts and labels as the tutorial's fit() takes them: first annotation, cancelled ones skipped."""
    texts, labels = [], []
    for task in tasks:
        first = task["annotations"][0]
        if first.get("skipped") or first.get("was_cancelled"):
            continue
        texts.append(task["data"]["text"])
        labels.append(first["result"][0]["value"]["choices"][0])
    return texts, labels


def predict_body(tasks: list[dict[str, Any]], config: str) -> bytes:
    """A /predict body as Label Studio 1.23 sends it (tasks without their annotations)."""
    body = {"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks], "project": PROJECT, "label_config": config, "params": {}}
    return json.dumps(body).encode()


def annotation_created(task: dict[str, Any], config: str) -> bytes:
    """The ANNOTATION_CREATED webhook Label Studio would send (as tests/conftest.py builds it)."""
    annotation = dict(task["annotations"][0])
    annotation.setdefault("task", task["id"])
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation, "project": {"id": PROJECT_ID, "label_config": config},
            "task": {"id": task["id"], "data": task["data"]}}
    return json.dumps(body).encode()


# ------------------------------------------------------------------------------------------ http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | dict | None = None) -> tuple[int, Any]:
    """One request on a keep-alive connection (reconnects once if the server closed it); (status, JSON or text)."""
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=payload, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            break
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if attempt == 2:
                raise
    try:
        return reply.status, json.loads(data)
    except ValueError:
        return reply.status, data.decode("utf-8", "replace")


def one_result(status: int, reply: Any, tasks: int = 1) -> bool:
    """True for a 200 /predict reply carrying one non-empty result per task."""
    results = reply.get("results") if isinstance(reply, dict) else None
    return status == 200 and isinstance(results, list) and len(results) == tasks and all(r.get("result") for r in results)


def predicted_labels(reply: dict[str, Any]) -> list[str]:
    return [item["result"][0]["value"]["choices"][0] for item in reply["results"]]


# --------------------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server process we started (in its own session, so stopping it stops its children too)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    cmdline_marker: str  # picks the process that serves (and whose CPU we read) among the descendants
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    pid: int = 0

    def start(self, timeout: float = 120.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            self.pid = find_descendant(self.proc.pid, self.cmdline_marker)  # again each time: a shell may start it
            if self.pid and self._healthy():
                return
            time.sleep(0.2)
        raise BenchmarkError(f"{self.name} did not answer GET /health within {timeout:.0f} s\n{self.log_tail()}")

    def _healthy(self) -> bool:
        conn = self.connection(timeout=2)
        try:
            return call(conn, "GET", "/health")[0] == 200
        except OSError:
            return False
        finally:
            conn.close()

    def connection(self, timeout: float = 300) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def cpu_seconds(self) -> float:
        """utime + stime of the serving process, all its threads included."""
        return process_cpu_seconds(self.pid)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = self.proc.returncode if self.proc else None
            raise BenchmarkError(f"{self.name} exited (status {code})\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)  # our own session: the server, its shell and training children
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
                if not group_alive(self.proc.pid):
                    break
        self.proc = None


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def find_descendant(root: int, marker: str) -> int:
    """The deepest of `root` and its descendants whose command line contains `marker` (not the
    shell that started it, `sh -c "python …/_wsgi.py"`); 0 if none yet."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    found, queue = 0, [root]
    while queue:  # bounded: every pid is visited once (a process tree has no cycles)
        pid = queue.pop(0)
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found = pid
        queue.extend(parents.get(pid, []))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_STORE", "TRAIN_QUEUE", "BASIC_AUTH", "LABEL_STUDIO", "PYTHON"))}
    return env | {"OPENBLAS_NUM_THREADS": "1"} | extra


def this_backend(store: Path, log_dir: Path) -> Server:
    server = Server("this backend", [str(ROOT / ".venv" / "bin" / "python"), "-m", "functions.dev"], {}, ROOT,
                    log_dir / "this_backend.log", "functions.dev")
    server.env = server_env(MODEL_STORE_URI=f"file://{store}", PORT=str(server.port), HOST="127.0.0.1")
    return server


def reference_backend(venv: Path) -> Server:
    app = CACHE / "app"
    run(venv / "bin" / "label-studio-ml", "init", str(app), "--script", str(CACHE / "model.py"), "--force", cwd=CACHE,
        env=reference_env(venv))
    server = Server("reference", [], reference_env(venv), CACHE, CACHE / "server.log", "_wsgi.py")
    # `label-studio-ml start` runs `python <app>/_wsgi.py` through a shell: `python` must be the venv's.
    server.argv = [str(venv / "bin" / "label-studio-ml"), "start", str(app), "--host", "127.0.0.1", "--port", str(server.port)]
    return server


def reference_env(venv: Path) -> dict[str, str]:
    return server_env(PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", VIRTUAL_ENV=str(venv))


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise BenchmarkError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def install_reference(python: str) -> Path:
    """The reference's venv under CACHE, created once per package set (a marker file records it)."""
    venv = CACHE / "venv"
    packages = reference_packages()
    marker = venv / ".bench-installed"
    if not (marker.exists() and marker.read_text() == " ".join(packages) and (venv / "bin" / "label-studio-ml").exists()):
        print(f"installing the reference into {venv}: pip install {' '.join(packages)}", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        run(python, "-m", "venv", venv, cwd=CACHE)
        run(venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", *packages, cwd=CACHE)
        marker.write_text(" ".join(packages))
    (CACHE / "model.py").write_text(REFERENCE_MODEL, encoding="utf-8")
    return venv


# -------------------------------------------------------------------------------------- training


def fill_annotation_log(server: Server, data: Data) -> float:
    """One ANNOTATION_CREATED webhook per training task; returns the seconds it took."""
    conn, started = server.connection(), time.perf_counter()
    for task in data.train:
        status, reply = call(conn, "POST", "/webhook", annotation_created(task, data.config))
        if status != 201:
            raise BenchmarkError(f"{server.name}: ANNOTATION_CREATED webhook answered {status}: {reply}")
    conn.close()
    return time.perf_counter() - started


def setup_version(conn: http.client.HTTPConnection, server: Server, config: str) -> str:
    status, reply = call(conn, "POST", "/setup", {"project": PROJECT, "schema": config})
    if status != 200:
        raise BenchmarkError(f"{server.name}: /setup answered {status}: {reply}")
    return reply["model_version"]


def train_this_backend(server: Server, config: str) -> dict[str, Any]:
    """Start Training → the new version on /setup; returns seconds, the version and the job record."""
    conn = server.connection()
    old = setup_version(conn, server, config)
    started = time.perf_counter()
    status, reply = call(conn, "POST", "/webhook", {"action": "START_TRAINING", "project": {"id": PROJECT_ID, "label_config": config}})
    if status != 201:
        raise BenchmarkError(f"{server.name}: START_TRAINING answered {status}: {reply}")
    deadline = time.monotonic() + TRAIN_TIMEOUT
    for polls in range(1, 10**6):  # bounded in count and, below, in time
        if (version := setup_version(conn, server, config)) != old:
            break
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{server.name}: no new version within {TRAIN_TIMEOUT:.0f} s; job {reply}\n{server.log_tail()}")
        if polls % 20 == 0:  # about once a second: a failed job never publishes a version
            server.check_alive()
            job = call(conn, "GET", f"/projects/{PROJECT_ID}/jobs/{reply['job']}")[1]
            if isinstance(job, dict) and job.get("state") in ("failed", "superseded"):
                raise BenchmarkError(f"{server.name}: training job {job.get('state')}: {job.get('reason')}\n{server.log_tail()}")
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    job = wait_for_job(conn, server, reply["job"])
    first = time.perf_counter()
    status, _ = call(conn, "POST", "/predict", predict_body([{"id": 0, "data": {"text": "warm up"}}], config))
    first_predict = time.perf_counter() - first
    conn.close()
    if status != 200:
        raise BenchmarkError(f"{server.name}: first /predict after training answered {status}")
    return {"seconds": seconds, "version": version, "job": job, "first_predict": first_predict}


def wait_for_job(conn: http.client.HTTPConnection, server: Server, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job record once it has finished (its child process is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = call(conn, "GET", f"/projects/{PROJECT_ID}/jobs/{job_id}")
        if status == 200 and job.get("state") in ("succeeded", "failed", "superseded"):
            return job
        time.sleep(0.1)
    raise BenchmarkError(f"{server.name}: job {job_id} did not finish within {timeout:.0f} s")


def train_reference(server: Server, data: Data) -> dict[str, Any]:
    """The reference's synchronous /train: fetch() re-creates the model, fit() trains it in the request."""
    conn = server.connection(timeout=TRAIN_TIMEOUT)
    body = json.dumps({"annotations": data.train, "project": PROJECT, "label_config": data.config}).encode()
    cpu, started = server.cpu_seconds(), time.perf_counter()
    status, reply = call(conn, "POST", "/train", body)
    seconds, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu
    conn.close()
    # label-studio-ml 1.0.9 trains, then fails in get_or_create (`key in ModelWrapper`): a 500 after the fit.
    if status not in (201, 500):
        raise BenchmarkError(f"reference /train answered {status}: {str(reply)[:500]}")
    return {"seconds": seconds, "server_cpu": cpu, "status": status}


# ------------------------------------------------------------------------------------- measuring


def measure_single(server: Server, bodies: list[bytes], budget: float = 600) -> dict[str, float]:
    """Server CPU per sequential single-task /predict, and the client's p50 / p99 latency."""
    conn = server.connection()
    for body in bodies[:20]:  # warm-up: connection, caches, first-request paths
        call(conn, "POST", "/predict", body)
    latencies, bad = [], 0
    deadline = time.monotonic() + budget
    cpu = server.cpu_seconds()
    for body in bodies:
        started = time.perf_counter()
        status, reply = call(conn, "POST", "/predict", body)
        latencies.append(time.perf_counter() - started)
        bad += not one_result(status, reply)
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{server.name}: {len(bodies)} single-task requests took over {budget:.0f} s")
    cpu = server.cpu_seconds() - cpu
    conn.close()
    latencies.sort()
    return {"cpu_ms": 1000 * cpu / len(bodies), "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99), "bad": bad}


def measure_bulk(server: Server, body: bytes, repeats: int) -> dict[str, float]:
    """Median server CPU and wall time of one /predict carrying BULK_TASKS tasks."""
    conn = server.connection()
    call(conn, "POST", "/predict", body)  # warm-up
    cpus, walls, bad = [], [], 0
    for _ in range(repeats):
        cpu, started = server.cpu_seconds(), time.perf_counter()
        status, reply = call(conn, "POST", "/predict", body)
        walls.append(time.perf_counter() - started)
        cpus.append(server.cpu_seconds() - cpu)
        bad += not one_result(status, reply, BULK_TASKS)
    conn.close()
    return {"cpu_ms": 1000 * trimmed_mean(cpus), "wall_ms": 1000 * statistics.median(walls), "bad": bad}


def client_worker(port: int, bodies: list[bytes], start_at: float, duration: float) -> tuple[int, int, float]:
    """One of the concurrent clients: single-task /predict on its own keep-alive connection from
    `start_at` (time.time()) for `duration` s. Returns (good replies, bad replies, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    call(conn, "POST", "/predict", bodies[0])  # connect before the clock starts
    time.sleep(max(0.0, start_at - time.time()))
    good = bad = 0
    begin = time.perf_counter()
    for i in range(10**7):  # bounded in count and, below, in time
        if time.perf_counter() - begin >= duration:
            break
        try:
            status, reply = call(conn, "POST", "/predict", bodies[i % len(bodies)])
            ok = one_result(status, reply)
        except OSError:
            ok = False
            conn.close()
        good, bad = good + ok, bad + (not ok)
    elapsed = time.perf_counter() - begin
    conn.close()
    return good, bad, elapsed


def measure_concurrent(server: Server, bodies: list[bytes], pool: ProcessPoolExecutor, duration: float) -> dict[str, float]:
    """Requests/s of CLIENTS client processes, and the server's CPU per request meanwhile."""
    start_at = time.time() + 1.0
    shares = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    futures = [pool.submit(client_worker, server.port, share, start_at, duration) for share in shares]
    time.sleep(max(0.0, start_at - time.time()))
    cpu = server.cpu_seconds()
    results = [future.result(timeout=duration + 120) for future in futures]
    cpu = server.cpu_seconds() - cpu
    good = sum(r[0] for r in results)
    return {"rps": sum(r[0] / r[2] for r in results), "cpu_ms": 1000 * cpu / max(good, 1), "bad": sum(r[1] for r in results)}


def trimmed_mean(values: list[float]) -> float:
    """The mean without the lowest and highest value: robust like a median, but not stuck on the
    10 ms grid of /proc CPU ticks (a 1,000-task request costs only ~100 ms)."""
    ordered = sorted(values)
    return statistics.mean(ordered[1:-1] if len(ordered) > 2 else ordered)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Floor:
    """The tutorial's pipeline fitted in this process: the reference's own fit time and the predict floor."""

    pipeline: Any = None

    def fit(self, data: Data) -> dict[str, float]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        texts, labels = tutorial_examples(data.train)
        index = {label: i for i, label in enumerate(sorted(set(labels)))}
        # As the tutorial's reset_model(), less verbose=True (it only prints the solver's progress).
        pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 3)), LogisticRegression(C=10))
        cpu, started = time.process_time(), time.perf_counter()
        pipeline.fit(texts, [index[label] for label in labels])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        self.pipeline, self.classes = pipeline, sorted(index)
        return {"seconds": seconds, "cpu": cpu}

    def predict_cpu(self, texts: list[str], repeats: int) -> float:
        """CPU ms of predict_proba(texts), the trimmed mean over `repeats` calls."""
        cpus = []
        for _ in range(repeats):
            cpu = time.process_time()
            self.pipeline.predict_proba(texts)
            cpus.append(time.process_time() - cpu)
        return 1000 * trimmed_mean(cpus)

    def single_cpu(self, texts: list[str]) -> float:
        """Mean CPU ms of predict_proba([text]) over `texts`, one at a time."""
        cpu = time.process_time()
        for text in texts:
            self.pipeline.predict_proba([text])
        return 1000 * (time.process_time() - cpu) / len(texts)

    def labels(self, texts: list[str]) -> list[str]:
        return [self.classes[i] for i in self.pipeline.predict_proba(texts).argmax(axis=1)]


# ------------------------------------------------------------------------------------------ runs


@dataclass
class Results:
    """Per-round figures, keyed by metric then by side ("ours", "ref", "floor")."""

    rounds: list[dict[str, dict[str, float]]] = field(default_factory=list)

    def add(self, metric: str, side: str, value: float) -> None:
        self.rounds[-1].setdefault(metric, {})[side] = value

    def median(self, metric: str, side: str) -> float | None:
        values = [r[metric][side] for r in self.rounds if side in r.get(metric, {})]
        return statistics.median(values) if values else None

    def count_bad(self, side: str, bad: int) -> None:
        self.add("bad", side, self.rounds[-1].get("bad", {}).get(side, 0) + bad)

    def ratio(self, metric: str, ours: str = "ours", ref: str = "ref") -> float | None:
        values = [r[metric][ours] / r[metric][ref] for r in self.rounds
                  if ours in r.get(metric, {}) and r[metric].get(ref)]
        return statistics.median(values) if values else None


def check_accuracy(ours: Server, ref: Server, floor: Floor, data: Data) -> None:
    """Both servers' and the in-process pipeline's accuracy on the test split, and their agreement."""
    body, gold = predict_body(data.test, data.config), data.test_labels
    labels = {}
    for server in (ours, ref):
        conn = server.connection()
        status, reply = call(conn, "POST", "/predict", body)
        conn.close()
        if not one_result(status, reply, len(data.test)):
            raise BenchmarkError(f"{server.name}: /predict of the test split answered {status}: {str(reply)[:300]}")
        labels[server.name] = predicted_labels(reply)
    labels["in-process"] = floor.labels([t["data"]["text"] for t in data.test])
    accuracy = {name: sum(a == b for a, b in zip(predicted, gold)) / len(gold) for name, predicted in labels.items()}
    agree = sum(a == b for a, b in zip(labels[ours.name], labels[ref.name])) / len(gold)
    print(f"test accuracy ({len(gold)} tasks): " + ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items())
          + f"; the two servers agree on {agree:.1%} of the tasks", flush=True)
    if min(accuracy[ours.name], accuracy[ref.name]) < 0.5:
        raise BenchmarkError("a server predicts no better than chance: it did not train")


def run_round(number: int, ours: Server, ref: Server, floor: Floor, data: Data, args: argparse.Namespace,
              pool: ProcessPoolExecutor, results: Results) -> None:
    results.rounds.append({})
    say = lambda text: print(f"  round {number}: {text}", flush=True)  # noqa: E731

    trained = train_this_backend(ours, data.config)
    results.add("train", "ours", trained["seconds"])
    results.add("train_request", "ours", trained["seconds"])
    report = (trained["job"].get("report") or {})
    say(f"this backend: Start Training -> {trained['version']} served in {trained['seconds']:.2f} s "
        f"(job {trained['job'].get('state')}, report fit_seconds {report.get('fit_seconds')}; "
        f"first /predict after it {trained['first_predict']:.2f} s)")
    reference = train_reference(ref, data)
    results.add("train_request", "ref", reference["seconds"])
    say(f"reference: /train {reference['seconds']:.2f} s (HTTP {reference['status']}, server CPU {reference['server_cpu']:.2f} s)")
    fitted = floor.fit(data)
    results.add("train", "ref", fitted["seconds"])
    say(f"in-process fit of the tutorial's pipeline: {fitted['seconds']:.2f} s wall, {fitted['cpu']:.2f} s CPU")
    if number == 1:
        check_accuracy(ours, ref, floor, data)

    texts = [t["data"]["text"] for t in data.test]
    singles = [predict_body([data.test[i % len(data.test)]], data.config) for i in range(args.requests)]
    bulk = predict_body((data.test * (BULK_TASKS // len(data.test) + 1))[:BULK_TASKS], data.config)
    sides = (("ours", ours), ("ref", ref))
    for side, server in sides:
        single = measure_single(server, singles)
        results.add("single_cpu", side, single["cpu_ms"])
        results.add("p50", side, single["p50_ms"])
        results.add("p99", side, single["p99_ms"])
        results.count_bad(side, single["bad"])
        say(f"{server.name}: single-task CPU {single['cpu_ms']:.3f} ms, p50 {single['p50_ms']:.2f} ms, p99 {single['p99_ms']:.2f} ms")
    results.add("single_cpu", "floor", floor.single_cpu(texts[: min(len(texts), args.requests)]))
    say(f"in-process predict_proba of 1 text: CPU {results.rounds[-1]['single_cpu']['floor']:.3f} ms")
    for side, server in sides:
        bulk_figures = measure_bulk(server, bulk, args.bulk_repeats)
        results.add("bulk_cpu", side, bulk_figures["cpu_ms"])
        results.count_bad(side, bulk_figures["bad"])
        say(f"{server.name}: 1,000-task CPU {bulk_figures['cpu_ms']:.0f} ms (wall {bulk_figures['wall_ms']:.0f} ms)")
    results.add("bulk_cpu", "floor", floor.predict_cpu((texts * (BULK_TASKS // len(texts) + 1))[:BULK_TASKS], args.bulk_repeats))
    say(f"in-process predict_proba of 1,000 texts: CPU {results.rounds[-1]['bulk_cpu']['floor']:.0f} ms")
    for side, server in sides:
        concurrent = measure_concurrent(server, singles, pool, args.duration)
        results.add("rps", side, concurrent["rps"])
        results.add("rps_cpu", side, concurrent["cpu_ms"])
        results.count_bad(side, concurrent["bad"])
        say(f"{server.name}: {CLIENTS} clients {concurrent['rps']:.0f} req/s, server CPU {concurrent['cpu_ms']:.3f} ms/req")
    for _, server in sides:
        server.check_alive()


# ----------------------------------------------------------------------------------------- table


GOALS: dict[str, tuple[str, float]] = {"single_cpu": ("<=", 0.6), "rps": (">=", 1.5), "bulk_cpu": ("<=", 0.7), "train": ("<=", 1.0)}
ROWS = [  # metric key, label, unit, format
    ("train", "Start Training -> served (ref: in-process fit)", "s", "{:.2f}"),
    ("train_request", "  (ref: its /train request)", "s", "{:.2f}"),
    ("single_cpu", "server CPU per single-task /predict", "ms", "{:.3f}"),
    ("p50", "  client p50 latency, single task", "ms", "{:.2f}"),
    ("p99", "  client p99 latency, single task", "ms", "{:.2f}"),
    ("rps", f"{CLIENTS} clients, single-task /predict", "req/s", "{:.0f}"),
    ("rps_cpu", f"  server CPU per request at {CLIENTS} clients", "ms", "{:.3f}"),
    ("bulk_cpu", "server CPU per 1,000-task /predict", "ms", "{:.0f}"),
]


def print_table(results: Results) -> bool:
    """The summary table; True if every goal is met."""
    header = f"{'metric':48} {'unit':>5} {'this backend':>13} {'reference':>10} {'ratio':>6} {'goal':>7} {'met?':>5} {'sklearn floor':>14}"
    print("\n" + header + "\n" + "-" * len(header))
    all_met = True
    for key, label, unit, fmt in ROWS:
        ours, ref, floor, ratio = (results.median(key, "ours"), results.median(key, "ref"),
                                   results.median(key, "floor"), results.ratio(key))
        show = lambda value, f=fmt: f.format(value) if value is not None else "-"  # noqa: E731
        goal, met = "", ""
        if key in GOALS and ratio is not None:
            sign, bound = GOALS[key]
            ok = ratio <= bound if sign == "<=" else ratio >= bound
            goal, met, all_met = f"{sign} {bound:.1f}", "yes" if ok else "NO", all_met and ok
        print(f"{label:48} {unit:>5} {show(ours):>13} {show(ref):>10} {show(ratio, '{:.2f}'):>6} {goal:>7} {met:>5} {show(floor):>14}")
    print("ratio = this backend / reference, the median of the per-round ratios; figures are medians over the rounds.")
    return all_met


def print_machine(venv: Path) -> None:
    ref_python = run(venv / "bin" / "python", "-c", "import sys, sklearn; print(sys.version.split()[0], sklearn.__version__)", cwd=CACHE).split()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cpu(s), load average {load}; this backend: python {sys.version.split()[0]}, "
          f"scikit-learn {metadata.version('scikit-learn')}; reference: python {ref_python[0]}, scikit-learn {ref_python[1]}, "
          "label-studio-ml 1.0.9 (Flask dev server)", flush=True)


# ------------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--data", default="ag_news", help="data set under ../shared/data (default ag_news)")
    parser.add_argument("--requests", type=int, default=1000, help="sequential single-task requests per server and round")
    parser.add_argument("--bulk-repeats", type=int, default=7, help="1,000-task requests per server and round")
    parser.add_argument("--duration", type=float, default=8.0, help=f"seconds of the {CLIENTS}-client test")
    parser.add_argument("--python", default="python3.11", help="interpreter for the reference's venv")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    data = load_data(args.data)
    venv = install_reference(args.python)
    print_machine(venv)
    print(f"data: {args.data}, {len(data.train)} training and {len(data.test)} test tasks; {args.rounds} round(s)", flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped below
    servers: list[Server] = []
    floor, results = Floor(), Results()
    with tempfile.TemporaryDirectory(prefix="ls-textcls-bench-") as tmp, \
            ProcessPoolExecutor(CLIENTS, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            ours, ref = this_backend(Path(tmp) / "store", Path(tmp)), reference_backend(venv)
            for server in (ours, ref):
                servers.append(server)
                server.start()
            print(f"this backend: pid {ours.pid}, port {ours.port}; reference: pid {ref.pid}, port {ref.port} "
                  f"(/setup: {setup_version(ref.connection(), ref, data.config)})", flush=True)
            print(f"filled this backend's annotation log: {len(data.train)} webhooks in {fill_annotation_log(ours, data):.1f} s", flush=True)
            for number in range(1, args.rounds + 1):
                run_round(number, ours, ref, floor, data, args, pool, results)
        except BenchmarkError as error:
            print(f"\nFAILED: {error}", file=sys.stderr)
            if len(results.rounds) > 1:  # the rounds that completed before the failure
                results.rounds.pop()
                print_table(results)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        finally:
            for server in servers:
                server.stop()
    all_met = print_table(results)
    bad = {side: sum(r.get("bad", {}).get(side, 0) for r in results.rounds) for side in ("ours", "ref")}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bad /predict replies: this backend {bad['ours']}, reference {bad['ref']}; "
          f"goals met: {'all' if all_met else 'not all'}; load average now {load}; took {time.perf_counter() - began:.0f} s")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
