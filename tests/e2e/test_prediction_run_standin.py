"""Train, then a prediction run pre-annotates every task of a 20,000-task project in the Label
Studio stand-in (real HTTP, real `LabelStudioClient`, the `make dev` path: local training
worker process, local predict threads): correct counts, 429s on the import retried, and no
duplicate after a re-run."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.settings import Settings
from tests.conftest import sample_config, sample_tasks, wait_for_job
from tests.ls_standin import PERSONAL_ACCESS_TOKEN, LabelStudioStandIn, make_tasks

CONFIG = sample_config()
TASKS = 20_000


def wait_run(client: TestClient, status_url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(status_url).json()
        if run["state"] in ("succeeded", "failed"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"the run did not finish within {timeout} s: {run}")


def test_training_pre_annotates_every_task_of_a_20000_task_project(tmp_path):
    tasks = make_tasks(TASKS, empty_every=1000)  # 20 tasks without text
    with LabelStudioStandIn(tasks={4: tasks}, label_configs={4: CONFIG}) as standin:
        settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", label_studio_url=standin.url,
                            label_studio_api_key=PERSONAL_ACCESS_TOKEN, label_studio_projects="4", predict_chunk_tasks=1000)
        assert settings.runs_after_training()
        standin.inject("import", 429, times=3, retry_after="0")
        with TestClient(create_app(settings)) as client:
            reply = client.post("/train", json={"annotations": sample_tasks(), "project": "4.1", "label_config": CONFIG})
            job = wait_for_job(client, "4", reply.json()["job"])
            assert job["state"] == "succeeded", job
            link = job["report"]["prediction_run"]
            assert link["state"] == "queued" and link["status_url"].startswith("/projects/4/prediction-runs/")
            run = wait_run(client, link["status_url"])
            seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["created_at"])).total_seconds()
            assert run["state"] == "succeeded" and run["reason"] is None, run
            assert run["model_version"] == job["version"] == "p4-v1" and run["source"] == "training"
            assert (run["tasks_total"], run["chunks"], run["tasks_done"]) == (TASKS, 20, TASKS)
            assert (run["predictions_created"], run["tasks_skipped"], run["tasks_failed"]) == (TASKS - 20, 20, 0)
            assert standin.prediction_count(4, "p4-v1") == TASKS - 20 and standin.duplicates(4) == {}
            assert len(standin.tasks_without(4, "p4-v1")) == 20

            again = client.post("/projects/4/prediction-runs", json={"only_missing": True})
            assert again.status_code == 202
            rerun = wait_run(client, again.json()["status_url"])
            assert rerun["state"] == "succeeded" and rerun["predictions_created"] == 0
            assert rerun["skipped"] == {"no_text": 20, "already_predicted": TASKS - 20}
            assert standin.prediction_count(4) == TASKS - 20 and standin.duplicates(4) == {}
    print(f"\n{TASKS} tasks pre-annotated in {seconds:.2f} s (run created -> finished): {TASKS / seconds:,.0f} tasks/s")
