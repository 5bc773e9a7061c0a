"""Shared fixtures: settings on a temporary store, the app and its client, and loaders for
../shared (Label Studio captures and data sets, read in place: never copied into the repo)."""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
SAMPLES = ROOT / "samples"


def shared(*parts: str) -> Path:
    """A path under ../shared; skips locally when absent, fails under CI=true."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing: tests read Label Studio captures and data sets from ../shared"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@lru_cache(maxsize=16)
def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dataset(name: str, split: str) -> list[dict[str, Any]]:
    """A shared data set split (``labeled_train`` / ``labeled_test``) in Label Studio export format."""
    return _load_json(shared("data", name, f"{split}.json"))


def label_config_of(name: str) -> str:
    return shared("data", name, "label_config.xml").read_text(encoding="utf-8")


def wire(name: str) -> dict[str, Any]:
    """One request captured from a real Label Studio 1.23.2 (``ls_wire/<name>``)."""
    return _load_json(shared("ls_wire", name))


def sample_tasks() -> list[dict[str, Any]]:
    """The project's own 32 hand-written news snippets (Politics, Technology, Sport, Weather)."""
    return json.loads((SAMPLES / "news_tasks.json").read_text(encoding="utf-8"))


def sample_config() -> str:
    return (SAMPLES / "label_config.xml").read_text(encoding="utf-8")


def gold_label(task: dict[str, Any], control: str = "topic") -> str:
    for item in task["annotations"][0]["result"]:
        if item["from_name"] == control:
            return item["value"]["choices"][0]
    raise KeyError(control)


def annotation_created(task: dict[str, Any], project: int, label_config: str) -> dict[str, Any]:
    """The ANNOTATION_CREATED webhook body Label Studio 1.23 would send for an export-format task."""
    annotation = dict(task["annotations"][0])
    annotation.setdefault("task", task["id"])
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": annotation,
        "project": {"id": project, "label_config": label_config},
        "task": {"id": task["id"], "data": task["data"]},
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0.2)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def wait_for_version(client: TestClient, project: str, label_config: str, old: str, timeout: float = 300) -> str:
    """Poll /setup like Label Studio does until the project's model_version differs from `old`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.post("/setup", json={"project": project, "schema": label_config})
        assert reply.status_code == 200, reply.text
        version = reply.json()["model_version"]
        if version != old:
            return version
        time.sleep(0.25)
    raise AssertionError(f"no new model version for project {project} within {timeout} s")


def wait_for_job(client: TestClient, project: str, job_id: str, timeout: float = 300) -> dict[str, Any]:
    """Poll the job status endpoint until the job has finished, metrics included; returns its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/projects/{project}/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "superseded") and not quality_pending(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def quality_pending(job: dict[str, Any]) -> bool:
    """True while a succeeded job's quality is still pending (releases before 10 measured it after publishing)."""
    controls = (job.get("report") or {}).get("controls") or {}
    return any("pending" in (control.get("quality") or {}) for control in controls.values())


def predict_accuracy(client: TestClient, project: str, label_config: str, tasks: list[dict[str, Any]]) -> tuple[float, dict]:
    """Accuracy of /predict on labelled `tasks` (sent without their annotations), and the reply."""
    body = {"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks], "project": project, "label_config": label_config}
    reply = client.post("/predict", json=body)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == len(tasks)
    hits = sum(r["result"][0]["value"]["choices"][0] == gold_label(t) for r, t in zip(results, tasks))
    return hits / len(tasks), reply.json()
