"""Prediction runs with ``{"auto_label": true}`` against the Label Studio stand-in (real HTTP,
the real `LabelStudioClient`, local predict threads): which tasks get an annotation, what it
holds and how it is marked, nothing for tasks a person touched, the counts, no duplicate on a
re-run or a redelivered chunk, and no annotation (with a reason) for a version without a
threshold. Versions carry hand-made ``report.controls.topic.auto_label`` in their signed manifest.
The stand-in's annotation endpoints are checked against the real Label Studio captures
(tests/ls_wire_runs/19–48) at the end."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions import signing, versions
from functions.api.app import create_app
from functions.ids import new_job_id
from functions.label_config import parse_label_config
from functions.label_studio import LabelStudioClient
from functions.runs import chunks as run_chunks
from functions.runs.auto_label import select, thresholds_of
from functions.runs.planning import RunMessage
from functions.runs.worker import LocalPredictQueue, RunContext, handle
from functions.scheduling import request_training
from functions.serving import predict_tasks
from functions.settings import Settings
from functions.store import open_store
from functions.train_queue import StoreOnlyQueue
from functions.training import run_job
from tests.conftest import sample_config, sample_tasks
from tests.ls_standin import PERSONAL_ACCESS_TOKEN, LabelStudioStandIn

CONFIG = sample_config()
PROJECT = "4"
TASKS = 60
NO_TEXT = {7, 50}
ANNOTATED, SKIPPED, DRAFTED = 3, 4, 5  # a person annotated task 3, skipped (cancelled) task 4, has a draft on task 5
HUMAN = [{"from_name": "topic", "to_name": "news", "type": "choices", "value": {"choices": ["Weather"]}}]
WIRE = Path(__file__).resolve().parents[1] / "ls_wire_runs"


def project_tasks() -> list[dict[str, Any]]:
    """60 tasks mixing halves of the sample snippets (varied scores); tasks 7 and 50 have no text."""
    texts = [task["data"]["text"].split() for task in sample_tasks()]
    tasks = []
    for i in range(1, TASKS + 1):
        a, b = texts[i % len(texts)], texts[(i * 7) % len(texts)]
        text = "" if i in NO_TEXT else " ".join(a[: len(a) // 2] + b[len(b) // 2 :])
        tasks.append({"id": i, "data": {"text": text}})
    return tasks


def train(settings: Settings) -> str:
    """A version trained on the sample tasks in this process (its manifest has no auto-label threshold)."""
    store = open_store(settings.model_store_uri)
    body = json.dumps({"annotations": sample_tasks(), "project": PROJECT, "label_config": CONFIG}).encode()
    job = request_training(store, StoreOnlyQueue(), settings, PROJECT, CONFIG, staged_body=body)
    return run_job(job.message(), settings, store).version


def republish(settings: Settings, auto_label: dict[str, Any] | None) -> str:
    """Publish the serving version's models again as a new version whose signed manifest has
    ``report.controls.topic.auto_label = auto_label`` (None: no such key, as in older versions)."""
    store = open_store(settings.model_store_uri)
    serving = versions.read_pointer(store, PROJECT).version
    stored = versions.load(store, PROJECT, serving, signing.signer_for(store, settings))
    manifest = copy.deepcopy(stored.manifest)
    for key in ("version", "number", "project", "job_id", "created_at", "sha256", "serving", "labels_sha256", "charts_sha256"):
        manifest.pop(key, None)
    control = manifest.setdefault("report", {}).setdefault("controls", {}).setdefault("topic", {})
    control.pop("auto_label", None)
    if auto_label is not None:
        control["auto_label"] = auto_label
    return versions.publish(store, PROJECT, new_job_id(), dict(stored.models), dict(stored.models), stored.labels, manifest,
                            settings=settings)


def model_predictions(settings: Settings, version: str) -> dict[int, tuple[list[dict[str, Any]], float]]:
    """What `version` predicts for each task with text: (result, score), as a run imports it."""
    store = open_store(settings.model_store_uri)
    model = versions.load(store, PROJECT, version, signing.signer_for(store, settings))
    tasks = project_tasks()
    items = predict_tasks(tasks, parse_label_config(CONFIG), model, settings.multilabel_threshold)
    return {task["id"]: (item["result"], item["score"]) for task, item in zip(tasks, items) if item["result"]}


def middle_threshold(scores: list[float]) -> float:
    """A threshold between two distinct scores near the median: about half the tasks reach it."""
    distinct = sorted(set(round(s, 9) for s in scores))
    assert len(distinct) >= 4, distinct
    k = len(distinct) // 2
    return round((distinct[k - 1] + distinct[k]) / 2, 9)


def auto_label_report(threshold: float | None) -> dict[str, Any]:
    return {"target": 0.95, "threshold": threshold, "coverage": 0.5 if threshold else 0.0,
            "estimated_accuracy": 0.96 if threshold else None, "validated_on": 400}


class Backend:
    """The API app with local predict threads talking to the stand-in through the real client."""

    def __init__(self, tmp_path: Path, standin: LabelStudioStandIn) -> None:
        self.settings = Settings(
            model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0, label_studio_url=standin.url,
            label_studio_api_key=PERSONAL_ACCESS_TOKEN, label_studio_projects=PROJECT, predict_after_training=False,
            predict_chunk_tasks=10, train_queue="none",
        )
        self.standin = standin
        self.client_factory = lambda settings: LabelStudioClient(standin.url, PERSONAL_ACCESS_TOKEN, sleep=lambda s: None)
        self.app = create_app(self.settings)
        self.queue = LocalPredictQueue(self.settings, self.app.state.services.store, self.client_factory)
        self.app.state.services._made["predict_queue"] = self.queue
        self.http = TestClient(self.app)

    def start(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.http.post(f"/projects/{PROJECT}/prediction-runs", json=body or {})
        assert reply.status_code == 202, reply.text
        return reply.json()

    def run(self, body: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        reply = self.start(body)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.http.get(reply["status_url"]).json()
            if run["state"] in ("succeeded", "failed"):
                return run | {"started": reply}
            time.sleep(0.05)
        raise AssertionError(f"run {reply['run']} did not finish")


@pytest.fixture
def backend(tmp_path):
    with LabelStudioStandIn(tasks={4: project_tasks()}, label_configs={4: CONFIG}) as standin:
        standin.annotate(4, ANNOTATED, HUMAN)
        standin.annotate(4, SKIPPED, [], was_cancelled=True)
        standin.add_draft(4, DRAFTED, HUMAN)
        made = Backend(tmp_path, standin)
        train(made.settings)
        with made.http:
            yield made


def with_threshold(backend: Backend) -> tuple[str, float, dict[int, tuple[list[dict[str, Any]], float]]]:
    """Publish a version with a threshold near the median score; (version, threshold, predictions)."""
    trained = versions.read_pointer(open_store(backend.settings.model_store_uri), PROJECT).version
    predicted = model_predictions(backend.settings, trained)
    threshold = middle_threshold([score for task, (_, score) in predicted.items() if task not in (ANNOTATED, SKIPPED, DRAFTED)])
    version = republish(backend.settings, auto_label_report(threshold))
    return version, threshold, predicted


def human_tasks_untouched(standin: LabelStudioStandIn) -> None:
    annotations = standin.annotations(4)
    assert [(a["result"], a["was_cancelled"], a["parent_prediction"]) for a in annotations[ANNOTATED]] == [(HUMAN, False, None)]
    assert [(a["result"], a["was_cancelled"]) for a in annotations[SKIPPED]] == [([], True)]
    assert DRAFTED not in annotations


def test_an_auto_label_run_annotates_exactly_the_confident_untouched_tasks(backend):
    version, threshold, predicted = with_threshold(backend)
    run = backend.run({"auto_label": True})
    assert run["started"]["auto_label"] == {"thresholds": {"topic": threshold}, "reason": None, "errors": []}
    assert run["state"] == "succeeded" and run["reason"] is None and run["model_version"] == version, run
    human = {ANNOTATED, SKIPPED, DRAFTED}
    expected = {task for task, (_, score) in predicted.items() if score >= threshold and task not in human}
    below = {task for task, (_, score) in predicted.items() if score < threshold and task not in human}
    assert expected and below

    annotations = backend.standin.annotations(4)
    made = {task for task, items in annotations.items() if any(a["parent_prediction"] for a in items)}
    assert made == expected
    predictions = backend.standin.predictions(4)
    for task in expected:
        (annotation,) = annotations[task]
        (prediction,) = [p for p in predictions[task] if p["model_version"] == version]
        assert annotation["result"] == prediction["result"] == predicted[task][0]
        assert annotation["parent_prediction"] == prediction["id"]  # the mark: made from the model's prediction
        assert (annotation["completed_by"], annotation["last_action"], annotation["was_cancelled"]) == (1, None, False)
    human_tasks_untouched(backend.standin)
    assert not set(annotations) - expected - {ANNOTATED, SKIPPED}

    assert (run["tasks_total"], run["tasks_done"], run["predictions_created"]) == (TASKS, TASKS, TASKS - len(NO_TEXT))
    assert run["annotations_created"] == len(expected)
    assert run["auto_label_skipped_annotated"] == 3
    assert run["auto_label_skipped_below_threshold"] == len(below)
    assert run["auto_label_skipped_no_prediction"] == len(NO_TEXT)
    assert run["auto_label"] == {"thresholds": {"topic": threshold}, "reason": None, "errors": []}
    selections = [json.loads(r["body"])["selectedItems"] for r in backend.standin.requests if "/api/dm/actions" in r["path"]]
    assert len(selections) <= 6 and all(s["all"] is False and s["included"] for s in selections)  # never an empty selection
    assert sorted(t for s in selections for t in s["included"]) == sorted(expected)

    again = backend.run({"auto_label": True})
    assert again["state"] == "succeeded" and (again["annotations_created"], again["predictions_created"]) == (0, 0)
    assert again["auto_label_skipped_annotated"] == len(expected) + 3
    assert again["auto_label_skipped_below_threshold"] == len(below)
    assert backend.standin.annotations(4) == annotations


def test_a_plain_run_then_an_auto_label_run_annotates_from_the_existing_predictions(backend):
    version, threshold, predicted = with_threshold(backend)
    plain = backend.run()
    assert plain["annotations_created"] == 0 and plain["auto_label"] is None and plain["predictions_created"] == TASKS - 2
    assert set(backend.standin.annotations(4)) == {ANNOTATED, SKIPPED}
    # a prediction of the version stored by someone else, with a score the model would not give
    LabelStudioClient(backend.standin.url, PERSONAL_ACCESS_TOKEN).import_predictions(
        PROJECT, [{"task": 7, "result": HUMAN, "score": 0.9999, "model_version": version}])  # task 7 has no text

    run = backend.run({"auto_label": True})
    assert run["state"] == "succeeded" and run["predictions_created"] == 0
    assert run["skipped"] == {"no_text": 1, "already_predicted": TASKS - 1}
    expected = {t for t, (_, score) in predicted.items() if score >= threshold and t not in (ANNOTATED, SKIPPED, DRAFTED)} | {7}
    annotations = backend.standin.annotations(4)
    assert {t for t, items in annotations.items() if items[0]["parent_prediction"]} == expected
    assert annotations[7][0]["result"] == HUMAN  # the stored prediction's result and score decided
    assert run["annotations_created"] == len(expected) and run["auto_label_skipped_no_prediction"] == 1
    assert all(len(items) == 1 for items in annotations.values())
    human_tasks_untouched(backend.standin)


@pytest.mark.parametrize("case", ["no_auto_label_key", "null_threshold", "not_a_score"])
def test_a_version_without_a_threshold_creates_no_annotation_and_says_why(backend, case):
    report = {"no_auto_label_key": None, "null_threshold": auto_label_report(None), "not_a_score": auto_label_report(1.5)}[case]
    version = republish(backend.settings, report)
    run = backend.run({"auto_label": True})
    assert run["state"] == "succeeded" and run["model_version"] == version
    assert run["predictions_created"] == TASKS - 2 and run["annotations_created"] == 0
    assert set(backend.standin.annotations(4)) == {ANNOTATED, SKIPPED}
    assert not [r for r in backend.standin.requests if "/api/dm/actions" in r["path"]]
    expected = {
        "no_auto_label_key": f"auto-labelling off: {version} records no auto-label threshold for control topic (trained before",
        "null_threshold": f"auto-labelling off: no score threshold of {version} reached the target accuracy 0.95 for control topic",
        "not_a_score": f"auto-labelling off: the auto-label threshold of {version} for control topic is not a score (1.5)",
    }[case]
    assert run["auto_label"]["thresholds"] is None and run["auto_label"]["reason"].startswith(expected), run["auto_label"]
    assert run["started"]["auto_label"]["reason"] == run["auto_label"]["reason"]


def test_redelivered_and_crashed_chunks_create_no_duplicate(backend, monkeypatch):
    version, threshold, predicted = with_threshold(backend)
    real = run_chunks._record
    crashed: list[int] = []

    def crash_once(store, message, counts, started):
        if message.page == 2 and not crashed:
            crashed.append(message.page)
            raise RuntimeError("the worker died after annotating, before recording the chunk")
        return real(store, message, counts, started)

    monkeypatch.setattr(run_chunks, "_record", crash_once)
    monkeypatch.setattr("functions.runs.worker.RETRY_PAUSE", 0.01)
    run = backend.run({"auto_label": True})
    assert crashed == [2] and run["state"] == "succeeded"
    expected = {t for t, (_, score) in predicted.items() if score >= threshold and t not in (ANNOTATED, SKIPPED, DRAFTED)}
    annotations = backend.standin.annotations(4)
    assert {t for t, items in annotations.items() if items[0]["parent_prediction"]} == expected
    assert all(len(items) == 1 for items in annotations.values())
    page_two = {t for t in expected if 11 <= t <= 20}
    assert page_two  # the second attempt of chunk 2 found its tasks annotated
    assert run["annotations_created"] == len(expected) - len(page_two)
    assert run["auto_label_skipped_annotated"] == 3 + len(page_two)

    actions = len([r for r in backend.standin.requests if "/api/dm/actions" in r["path"]])
    ctx = RunContext(backend.settings, backend.app.state.services.store, backend.queue.send, backend.client_factory)
    for page in (1, 3, 6):
        handle(RunMessage(project=PROJECT, run=run["run"], page=page), ctx)  # a second delivery of done chunks
    assert len([r for r in backend.standin.requests if "/api/dm/actions" in r["path"]]) == actions
    assert backend.standin.annotations(4) == annotations


def test_a_refused_annotation_call_keeps_the_predictions_and_is_reported(backend):
    with_threshold(backend)
    backend.standin.inject("actions", 403, times=1)
    run = backend.run({"auto_label": True})
    assert run["state"] == "succeeded" and run["predictions_created"] == TASKS - 2 and run["tasks_failed"] == 0
    (error,) = run["auto_label"]["errors"]
    assert "answered 403 to POST /api/dm/actions?id=predictions_to_annotations" in error and "no annotation created for" in error
    chosen = run["annotations_created"] + int(error.split("no annotation created for ")[1].split()[0])
    assert chosen > run["annotations_created"] > 0


def test_annotations_stored_by_a_call_that_then_failed_are_counted_once(backend):
    version, threshold, predicted = with_threshold(backend)
    backend.standin.fail_after_actions = 2  # stored, then 500: the client's retry answers "Created 0 annotations"
    run = backend.run({"auto_label": True})
    expected = {t for t, (_, score) in predicted.items() if score >= threshold and t not in (ANNOTATED, SKIPPED, DRAFTED)}
    annotations = backend.standin.annotations(4)
    assert {t for t, items in annotations.items() if items[0]["parent_prediction"]} == expected
    assert all(len(items) == 1 for items in annotations.values())
    assert run["state"] == "succeeded" and run["annotations_created"] == len(expected) and run["auto_label"]["errors"] == []
    replies = [r for r in backend.standin.requests if "/api/dm/actions" in r["path"]]
    assert len(replies) == len({r["body"] for r in replies}) + 2  # two calls were sent twice


def test_the_request_body_is_checked(backend):
    for loose in ("sometimes", "yes", 1, "true"):  # it writes annotations: only a JSON true turns it on
        reply = backend.http.post(f"/projects/{PROJECT}/prediction-runs", json={"auto_label": loose})
        assert reply.status_code == 422 and "auto_label" in reply.text, loose
    reply = backend.http.get(f"/projects/{PROJECT}/prediction-runs/not-a-run")
    assert reply.status_code == 404 and reply.json()["detail"].startswith("no prediction run 'not-a-run'")


# -- the rules, without Label Studio ------------------------------------------------------------

TWO_CONTROLS = ('<View><Text name="news" value="$text"/><Choices name="topic" toName="news"><Choice value="A"/>'
                '<Choice value="B"/></Choices><Choices name="tone" toName="news"><Choice value="up"/><Choice value="down"/>'
                '</Choices></View>')


def manifest(topic: Any = 0.6, tone: Any = 0.9) -> dict[str, Any]:
    controls = {}
    for name, threshold in (("topic", topic), ("tone", tone)):
        controls[name] = {"examples": 100} if threshold == "absent" else {"auto_label": auto_label_report(threshold)}
    return {"controls": {"topic": {}, "tone": {}}, "report": {"controls": controls}}


def test_every_control_needs_a_threshold_and_the_highest_one_decides():
    chosen = thresholds_of(manifest(), "p4-v9", TWO_CONTROLS)
    assert (chosen.thresholds, chosen.reason, chosen.bar) == ({"topic": 0.6, "tone": 0.9}, None, 0.9)
    assert thresholds_of(manifest(tone="absent"), "p4-v9", TWO_CONTROLS).reason.startswith(
        "auto-labelling off: p4-v9 records no auto-label threshold for control tone")
    assert "for control topic" in thresholds_of(manifest(topic=None), "p4-v9", TWO_CONTROLS).reason
    assert thresholds_of(manifest(topic=True), "p4-v9", TWO_CONTROLS).thresholds is None
    # a control the run's label config lacks needs no threshold
    only_topic = TWO_CONTROLS.replace('<Choices name="tone" toName="news"><Choice value="up"/><Choice value="down"/></Choices>', "")
    assert thresholds_of(manifest(tone="absent"), "p4-v9", only_topic).thresholds == {"topic": 0.6}
    assert "predicts none" in thresholds_of({"controls": {"other": {}}}, "p4-v9", TWO_CONTROLS).reason


def test_select_counts_every_task_once():
    v = "p4-v2"

    def task(i, scores=(), annotations=0, drafts=0, other=()):
        predictions = [{"model_version": v, "score": s} for s in scores] + [{"model_version": "p4-v1", "score": s} for s in other]
        return {"id": i, "predictions": predictions, "annotations": annotations, "drafts": drafts}

    tasks = [task(1, [0.95]), task(2, [0.85]), task(3, [0.99], annotations=1), task(4, [0.99], drafts=1), task(5),
             task(6, [0.95, 0.96]), task(7, other=[0.99]), task(8), task(9, [None]), task(10, [0.9])]
    chosen = select(tasks, v, 0.9, sent={8: 0.97, 5: 0.5})
    assert chosen.tasks == [1, 8, 10]  # 10: exactly at the threshold
    assert (chosen.annotated, chosen.below_threshold, chosen.no_prediction) == (2, 2, 3)  # 2, 5 below; 6, 7, 9 none


def test_the_client_never_sends_an_empty_selection():
    with LabelStudioStandIn(tasks={4: project_tasks()[:5]}) as standin:
        client = LabelStudioClient(standin.url, PERSONAL_ACCESS_TOKEN)
        assert client.annotations_from_predictions(PROJECT, [], "p4-v1") == 0
        with pytest.raises(ValueError):
            client.annotations_from_predictions(PROJECT, ["1"], "p4-v1")  # type: ignore[list-item]
        with pytest.raises(ValueError):
            client.annotations_from_predictions(PROJECT, [1], "")
        assert not [r for r in standin.requests if "/api/dm/" in r["path"]]


# -- the stand-in answers as Label Studio 1.23.2 did (tests/ls_wire_runs/19–48) -----------------

def capture(name: str) -> dict[str, Any]:
    return json.loads(next(WIRE.glob(f"{name}_*.json")).read_text())


def test_the_stand_in_answers_the_annotation_endpoints_as_the_real_label_studio():
    import httpx

    region = capture("19")["request"]["json"]["result"]
    tasks = [{"id": i, "data": {"text": f"placeholder {i}"}} for i in (1, 2, 3, 4)]
    with LabelStudioStandIn(tasks={4: tasks}) as standin:
        client = LabelStudioClient(standin.url, PERSONAL_ACCESS_TOKEN)
        client.import_predictions(PROJECT, [{"task": i, "result": region, "score": 0.9, "model_version": "p4-v1"} for i in (1, 2, 3)])
        client.import_predictions(PROJECT, [{"task": 2, "result": region, "score": 0.5, "model_version": "p4-v1"}])
        prediction = standin.predictions(4)[1][0]["id"]
        http = httpx.Client(base_url=standin.url, headers={"Authorization": client._authorization()})

        def post(path: str, body: Any, params: dict | None = None) -> httpx.Response:
            return http.post(path, json=body, params=params)

        def same(reply: httpx.Response, name: str) -> dict:
            real = capture(name)
            assert reply.status_code == real["status"], (name, reply.text)
            body = reply.json()
            if isinstance(real["body"], dict):
                assert set(body) == set(real["body"]), name
                for key in ("detail", "validation_errors", "last_action", "was_cancelled", "completed_by", "created_username"):
                    if key in real["body"] and key != "validation_errors":
                        assert body[key] == real["body"][key], (name, key)
                    elif key == "validation_errors" and key in real["body"]:
                        assert set(body[key]) == set(real["body"][key]), name
            return body

        marked = same(post("/api/tasks/1/annotations/", capture("19")["request"]["json"] | {"parent_prediction": prediction}), "19")
        assert marked["parent_prediction"] == prediction and marked["result"] == region
        same(post("/api/tasks/2/annotations/", capture("21")["request"]["json"]), "21")
        same(post("/api/tasks/3/annotations", capture("22")["request"]["json"]), "22")
        same(post("/api/tasks/3/annotations/", capture("25")["request"]["json"]), "25")
        same(post("/api/tasks/3/annotations/", capture("26")["request"]["json"]), "26")
        unique = capture("28")["request"]["json"] | {"parent_prediction": prediction}
        same(post("/api/tasks/3/annotations/", unique), "28")
        same(post("/api/tasks/4/annotations/", unique), "29")
        same(post("/api/tasks/4/annotations/", capture("30")["request"]["json"]), "30")
        same(post("/api/tasks/99999999/annotations/", capture("31")["request"]["json"]), "31")
        same(post("/api/tasks/4/annotations/", capture("32")["request"]["json"]), "32")
        same(post("/api/tasks/4/annotations/", capture("33")["request"]["json"]), "33")
        same(post("/api/tasks/4/annotations/", capture("34")["request"]["json"]), "34")

        listing = http.get("/api/tasks", params=capture("36")["request"]["query"] | {"project": 4}).json()
        real_task = capture("36")["body"]["tasks"][0]
        assert set(listing["tasks"][0]) == set(real_task) and listing["tasks"][0]["annotations"][0] == {"id": marked["id"]}
        assert listing["tasks"][2]["cancelled_annotations"] == 1 and listing["tasks"][2]["total_annotations"] == 1

        dm = {"id": "predictions_to_annotations", "project": 4}
        same(post("/api/dm/actions", {"selectedItems": {"all": False, "included": [2]}, "model_version": "p4-v1"}, dm), "40")
        same(post("/api/dm/actions", {"selectedItems": {"all": False, "included": [2]}, "model_version": "p4-v1"}, dm), "44")
        same(post("/api/dm/actions", {"selectedItems": {"all": False, "included": [99999999]}, "model_version": "p4-v1"}, dm), "43")
        same(post("/api/dm/actions", {"selectedItems": {"all": False, "included": [1]}}, {"id": "predictions_to_annotations", "project": 99999}), "45")
        same(post("/api/dm/actions", {"selectedItems": {"all": False, "included": [1]}}, {"id": "no_such_action", "project": 4}), "46")
        everything = post("/api/dm/actions", {"selectedItems": {"all": False, "included": []}, "model_version": "p4-v1"}, dm)
        assert everything.json() == {"detail": "Created 1 annotations"}  # task 3's prediction: the others have a child
        annotations = standin.annotations(4)
        made = annotations[2][1:]  # the first is the minimal annotation of capture 21
        assert [a["parent_prediction"] for a in made] == [p["id"] for p in standin.predictions(4)[2]]
        assert [(a["last_action"], a["completed_by"], a["result"]) for a in made] == [(None, 1, region)] * 2
