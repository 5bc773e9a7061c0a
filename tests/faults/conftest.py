"""The fault-injection suite's harness: the real `make dev` process (``python -m functions.dev``)
on a free port, with HTTP Basic credentials and a webhook secret, driven over HTTP like Label
Studio drives it; a moto S3 server behind `s3_proxy.FaultProxy` for the S3 faults.

Each test module shares one server (and one trained project) between its tests: a test
records what is served before its fault, injects the fault, checks that the same version
gives the same predictions, then checks that the backend recovers by itself.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import sample_config, sample_tasks

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
USER, PASSWORD, WEBHOOK_SECRET = "faults", "fault-suite-password", "fault-suite-webhook-secret-0123456789"
SIGNING_KEY = "fault-suite-signing-key"
CONFIG = sample_config()
FINISHED = {"succeeded", "failed", "superseded"}
PROBES = [  # texts /predict is asked about before and after each fault
    "Parliament votes on the new budget tonight",
    "The striker scored twice in the cup final",
    "Heavy snow and strong wind expected tomorrow",
    "The new phone ships with a faster chip",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: fault-injection suite (real server process; moto S3 behind a fault proxy)")


def ls_project(project: int | str) -> str:
    """The project field Label Studio sends to /setup and /predict: ``<id>.<created timestamp>``."""
    return f"{project}.1700000000"


def iso(seconds_from_now: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)).isoformat().replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Backend:
    """One `python -m functions.dev` process (own session, log in `folder`)."""

    def __init__(self, folder: Path, store_uri: str, **env: str) -> None:
        self.folder, self.store_uri = folder, store_uri
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_", "BASIC_AUTH", "WEBHOOK_", "S3_"))}
        self.env = base | {
            "PORT": str(self.port), "HOST": "127.0.0.1", "MODEL_STORE_URI": store_uri, "LOG_LEVEL": "INFO",
            "OPENBLAS_NUM_THREADS": "1", "POINTER_TTL_SECONDS": "0.2", "TRAIN_QUEUE": "local",
            "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PYTHONUNBUFFERED": "1",
        } | env
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> "Backend":
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen([PYTHON, "-m", "functions.dev"], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.call("GET", "/health", timeout=1)[0] == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer /health within {timeout} s:\n{self.log_tail()}")

    def kill9(self) -> None:
        """kill -9 of the whole `make dev` (the server and its training process)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
                break
        with contextlib.suppress(ProcessLookupError):  # the training child, if it outlived the server
            os.killpg(self.proc.pid, signal.SIGKILL)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # -- HTTP --------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True, headers: dict[str, str] | None = None,
             timeout: float = 30.0, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON reply) of one request on a fresh connection."""
        sent = {"Content-Type": "application/json"} if method != "GET" else {}
        if auth:
            sent["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        sent |= headers or {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=sent)
            reply = connection.getresponse()
            content = reply.read()
        finally:
            connection.close()
        try:
            return reply.status, json.loads(content) if content else None
        except ValueError:
            return reply.status, content.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, reply = self.call(method, path, body, **kwargs)
        assert 200 <= status < 300, f"{method} {path} -> {status} {reply}\n{self.log_tail(15)}"
        return reply

    def setup_version(self, project: int | str, timeout: float = 30.0) -> str:
        return self.ok("POST", "/setup", {"project": ls_project(project), "schema": CONFIG}, timeout=timeout)["model_version"]

    def predict(self, project: int | str, texts: list[str] = PROBES, timeout: float = 30.0) -> tuple[int, Any]:
        body = {"tasks": [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)], "project": ls_project(project),
                "label_config": CONFIG}
        return self.call("POST", "/predict", body, timeout=timeout)

    def served(self, project: int | str, timeout: float = 30.0) -> tuple[str, list[tuple[list[str], float]]]:
        """(model_version, [(labels, score) per probe]) that /predict answers now."""
        status, reply = self.predict(project, timeout=timeout)
        assert status == 200, f"/predict -> {status} {reply}\n{self.log_tail(15)}"
        results = [(item["result"][0]["value"]["choices"], round(item["score"], 9)) for item in reply["results"]]
        assert len(results) == len(PROBES), reply
        assert {item["model_version"] for item in reply["results"]} == {reply["model_version"]}, reply
        return reply["model_version"], results

    # -- Label Studio's webhooks and training --------------------------------------------------

    def annotate(self, project: int, task: dict[str, Any], *, label: str | None = None, text: str | None = None,
                 updated_at: str | None = None, annotation_id: int | None = None, action: str = "ANNOTATION_CREATED",
                 via: str = "path") -> tuple[int, Any]:
        """One annotation webhook, as Label Studio's project webhook sends it (with the webhook
        secret in the URL, `via="path"`, or in the X-Webhook-Secret header, `via="header"`)."""
        annotation = json.loads(json.dumps(task["annotations"][0]))
        annotation["task"] = task["id"]
        if annotation_id is not None:
            annotation["id"] = annotation_id
        if label is not None:
            annotation["result"][0]["value"]["choices"] = [label]
        if updated_at is not None:
            annotation["updated_at"] = updated_at
        data = {"text": text} if text is not None else task["data"]
        body = {"action": action, "annotation": annotation, "project": {"id": project}, "task": {"id": task["id"], "data": data}}
        if via == "path":
            return self.call("POST", f"/webhook/{WEBHOOK_SECRET}", body, auth=False)
        return self.call("POST", "/webhook", body, auth=False, headers={"X-Webhook-Secret": WEBHOOK_SECRET})

    def start_training(self, project: int, config: str = CONFIG) -> tuple[int, Any]:
        return self.call("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": project, "label_config": config}})

    def train_request(self, project: int, tasks: list[dict[str, Any]]) -> str:
        """POST /train (Label Studio < 1.12); returns the job id."""
        return self.ok("POST", "/train", {"annotations": tasks, "project": ls_project(project), "label_config": CONFIG},
                       timeout=60)["job"]

    def job(self, project: int, job_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/projects/{project}/jobs/{job_id}")

    def wait_job(self, project: int, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(project, job_id)
            if job["state"] in FINISHED and not _quality_pending(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} of project {project} did not finish within {timeout} s: {job}\n{self.log_tail()}")

    def train(self, project: int, tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One training that must succeed: /train with `tasks`, else Start Training on the log."""
        if tasks is not None:
            job_id = self.train_request(project, tasks)
        else:
            status, reply = self.start_training(project)
            assert status == 201, (status, reply)
            job_id = reply["job"]
        job = self.wait_job(project, job_id)
        assert job["state"] == "succeeded", f"{job}\n{self.log_tail()}"
        return job

    def wait_served(self, project: int, version: str, timeout: float = 10.0) -> tuple[str, list]:
        """Poll /predict until it serves `version` (a new version is picked up within the pointer TTL)."""
        deadline = time.monotonic() + timeout
        while True:
            served = self.served(project)
            if served[0] == version or time.monotonic() > deadline:
                assert served[0] == version, f"/predict still serves {served[0]}, not {version}"
                return served
            time.sleep(0.1)


def _quality_pending(job: dict[str, Any]) -> bool:
    controls = (job.get("report") or {}).get("controls") or {}
    return any("pending" in (control.get("quality") or {}) for control in controls.values())


def label_of(task: dict[str, Any]) -> str:
    return task["annotations"][0]["result"][0]["value"]["choices"][0]


def label_counts(job: dict[str, Any]) -> dict[str, int]:
    return job["report"]["controls"]["topic"]["labels"]


@pytest.fixture(scope="module")
def tasks() -> list[dict[str, Any]]:
    return sample_tasks()


@contextlib.contextmanager
def running(backend: Backend) -> Iterator[Backend]:
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
        if os.environ.get("FAULTS_SHOW_LOG"):
            print(backend.log_tail(200))


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[tuple[str, int]]:
    """A moto S3 server on 127.0.0.1 (threaded, in this process)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield server.get_host_and_port()
    finally:
        server.stop()
