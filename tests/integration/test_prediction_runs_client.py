"""Prediction runs through the real `LabelStudioClient` (httpx MockTransport answering like
Label Studio 1.23.2's task list and import endpoints): 429/500 are retried by the client, and a
train → run over 20,000 tasks pre-annotates every task once, also after a re-run."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.label_studio import LabelStudioClient
from functions.runs.worker import LocalPredictQueue
from tests.integration.test_prediction_runs import PROJECT, project_tasks, publish, run_settings, start, wait_run


class MockLabelStudio:
    """GET /api/tasks?project&page&page_size&fields=all and POST /api/projects/N/import/predictions."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks
        self.by_id = {t["id"]: t for t in tasks}
        self.predictions: dict[int, list[dict[str, Any]]] = {}
        self.faults: list[int] = []  # statuses for the next import calls
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls += 1
            if request.url.path == "/api/tasks":
                q = request.url.params
                page, size = int(q["page"]), int(q["page_size"])
                window = self.tasks[(page - 1) * size : page * size]
                if not window and page > 1:
                    return httpx.Response(404, json={"detail": "Invalid page."})
                return httpx.Response(200, json={"total": len(self.tasks), "total_annotations": 0, "total_predictions": 0, "tasks": [
                    {"id": t["id"], "data": t["data"], "predictions": [{"model_version": p["model_version"]} for p in self.predictions.get(t["id"], [])]}
                    for t in window]})
            if request.url.path == f"/api/projects/{PROJECT}/import/predictions":
                if self.faults:
                    return httpx.Response(self.faults.pop(0), json={"detail": "slow down"})
                items = json.loads(request.content)
                if any(item["task"] not in self.by_id for item in items):
                    return httpx.Response(400, json={"detail": "Validation error", "validation_errors": {"non_field_errors": ["bad task"]}})
                for item in items:
                    self.predictions.setdefault(item["task"], []).append(item)
                return httpx.Response(201, json={"created": len(items)})
            return httpx.Response(404, json={"detail": "Not found."})

    def count(self, version: str) -> list[int]:
        return [sum(p["model_version"] == version for p in self.predictions.get(t["id"], [])) for t in self.tasks]


def app_with(settings, mock: MockLabelStudio) -> TestClient:
    def client_factory(s):
        return LabelStudioClient(s.label_studio_url, s.label_studio_api_key.get_secret_value(), 10,
                                 transport=httpx.MockTransport(mock), backoff=0.001)

    app = create_app(settings)
    app.state.services._made["predict_queue"] = LocalPredictQueue(settings, app.state.services.store, client_factory)
    return TestClient(app)


def test_429_and_500_are_retried_by_the_client(tmp_path):
    settings = run_settings(tmp_path)
    version = publish(settings)
    mock = MockLabelStudio(project_tasks(95))
    mock.faults = [429, 500, 503, 429]
    with app_with(settings, mock) as client:
        run = wait_run(client, start(client))
    assert run["state"] == "succeeded" and run["predictions_created"] == 95 and run["tasks_failed"] == 0
    assert set(mock.count(version)) == {1}


@pytest.mark.parametrize("tasks", [20_000])
def test_train_then_a_run_pre_annotates_every_task_once(tmp_path, tasks):
    settings = run_settings(tmp_path, predict_chunk_tasks=1000)
    version = publish(settings)
    mock = MockLabelStudio(project_tasks(tasks, no_text={5, 15_000}))
    with app_with(settings, mock) as client:
        started = time.monotonic()
        run = wait_run(client, start(client), timeout=60)
        seconds = time.monotonic() - started
        assert run["state"] == "succeeded", run
        assert (run["tasks_total"], run["tasks_done"], run["predictions_created"], run["tasks_skipped"], run["tasks_failed"]) == (
            tasks, tasks, tasks - 2, 2, 0)
        again = wait_run(client, start(client), timeout=60)
    assert again["predictions_created"] == 0 and again["skipped"] == {"no_text": 2, "already_predicted": tasks - 2}
    counts = mock.count(version)
    assert counts.count(1) == tasks - 2 and counts.count(0) == 2
    print(f"\n{tasks} tasks pre-annotated in {seconds:.2f} s: {tasks / seconds:,.0f} tasks/s")
