"""Label configs as people write them, trained and predicted end to end through the HTTP API:
two <Choices> over one text, multiple choice, aliases, and labels renamed or removed later."""

from __future__ import annotations

import pickle

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.model import compact
from functions.settings import Settings

from tests.conftest import sample_tasks, wait_for_job, wait_for_version

TOPICS = ["Politics", "Technology", "Sport", "Weather"]
MOODS = {"Positive": "what a wonderful and happy outcome", "Negative": "a terrible and sad disaster"}


def choices(control: str, values: list[str], to_name: str = "news") -> dict:
    return {"from_name": control, "to_name": to_name, "type": "choices", "value": {"choices": values}}


def task(task_id: int, text: str, *result: dict) -> dict:
    return {"id": task_id, "data": {"text": text}, "annotations": [{"id": task_id, "result": list(result), "was_cancelled": False}]}


def topic_of(sample: dict) -> str:
    return sample["annotations"][0]["result"][0]["value"]["choices"][0]


def train_and_wait(client, project: int, config: str, tasks: list[dict]) -> dict:
    reply = client.post("/train", json={"annotations": tasks, "project": f"{project}.1", "label_config": config})
    assert reply.status_code == 201, reply.text
    job = wait_for_job(client, str(project), reply.json()["job"])
    assert job["state"] == "succeeded", job
    wait_for_version(client, f"{project}.1", config, "untrained")
    return job


def predict(client, project: int, config: str, texts: list[str]) -> list[dict]:
    body = {"tasks": [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)], "project": f"{project}.1", "label_config": config}
    reply = client.post("/predict", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["results"]


def pickled_scores(client, project: int, version: str, texts: list[str]) -> dict[str, list[float]]:
    """Per control, the top predict_proba of the canonical model.pkl (scikit-learn) for `texts`,
    calibrated as the version serves it (the calibration is stored in model.npz only; fewer than 50
    examples have none)."""
    store = client.app.state.services.store
    pipelines = pickle.loads(store.get(f"projects/{project}/models/{version}/model.pkl").data)
    served = compact.loads(store.get(f"projects/{project}/models/{version}/model.npz").data)
    scores = {}
    for name, pipeline in pipelines.items():
        probabilities, calibration = pipeline.predict_proba(texts), served[name].calibration
        scores[name] = (calibration.apply(probabilities) if calibration else probabilities).max(axis=1).tolist()
    return scores


def chosen(item: dict) -> dict[str, list[str]]:
    return {result["from_name"]: result["value"]["choices"] for result in item["result"]}


TWO_CONTROLS = (
    '<View><Text name="news" value="$text"/>'
    '<Choices name="topic" toName="news">' + "".join(f'<Choice value="{t}"/>' for t in TOPICS) + "</Choices>"
    '<Choices name="mood" toName="news" choice="single-radio"><Choice value="Positive"/><Choice value="Negative"/></Choices>'
    "</View>"
)


def test_two_controls_train_one_model_each_and_predict_one_result_each(client):
    tasks = []
    for sample in sample_tasks():
        for mood, phrase in MOODS.items():
            tasks.append(task(len(tasks) + 1, f"{sample['data']['text']}, {phrase}", choices("topic", [topic_of(sample)]), choices("mood", [mood])))
    tasks.append(task(999, "Parliament debates the weather", choices("topic", ["Politics"])))  # mood not annotated
    job = train_and_wait(client, 41, TWO_CONTROLS, tasks)
    report = job["report"]["controls"]
    assert report["topic"]["examples"] == 65 and report["mood"]["examples"] == 64
    assert report["mood"]["dropped"] == {"only_some_controls": 1} and report["topic"]["dropped"] == {}
    assert report["topic"]["quality"]["validated_on"] == 65 and 0 <= report["mood"]["quality"]["accuracy"] <= 1

    texts = ["Heavy snow and strong wind tonight, a terrible and sad disaster",
             "The striker scored twice in the final, what a wonderful and happy outcome"]
    items = predict(client, 41, TWO_CONTROLS, texts)
    expected = pickled_scores(client, 41, "p41-v1", texts)  # served from model.npz: the same scores
    assert [item["score"] for item in items] == pytest.approx([min(t, m) for t, m in zip(expected["topic"], expected["mood"])], abs=1e-9)
    assert [chosen(item) for item in items] == [
        {"topic": ["Weather"], "mood": ["Negative"]},
        {"topic": ["Sport"], "mood": ["Positive"]},
    ]
    for item in items:
        assert [r["to_name"] for r in item["result"]] == ["news", "news"]
        assert item["score"] <= 1 and item["model_version"] == "p41-v1"


MULTI = (
    '<View><Text name="news" value="$text"/><Choices name="tags" toName="news" choice="multiple">'
    + "".join(f'<Choice value="{t}"/>' for t in TOPICS) + "</Choices></View>"
)


def test_multiple_choice_predicts_every_label_above_the_threshold(settings):
    client = TestClient(create_app(Settings(model_store_uri=settings.model_store_uri, multilabel_threshold=0.3)))
    samples = sample_tasks()
    tasks = [task(s["id"], s["data"]["text"], choices("tags", [topic_of(s)])) for s in samples]
    for a, b in zip(samples, samples[1:] + samples[:1]):
        tasks.append(task(len(tasks) + 100, f"{a['data']['text']}. {b['data']['text']}", choices("tags", sorted({topic_of(a), topic_of(b)}))))
    job = train_and_wait(client, 42, MULTI, tasks)
    quality = job["report"]["controls"]["tags"]["quality"]
    assert {"micro_f1", "macro_f1", "exact_match"} <= set(quality) and quality["calibration"]["method"] == "per_label_platt"

    items = predict(client, 42, MULTI, [
        "Heavy rain and flooding expected tomorrow. The striker scored twice as the team won the cup final",
        "Heavy rain and flooding expected along the coast tomorrow",
    ])
    both, one = chosen(items[0])["tags"], chosen(items[1])["tags"]
    assert both == ["Sport", "Weather"]  # most probable first
    assert one == ["Weather"]
    assert 0.3 <= items[0]["score"] < items[1]["score"]  # the lowest probability among the listed labels


ALIASED = (
    '<View><Text name="doc" value="$body"/><Choices name="kind" toName="doc">'
    '<Choice value="Politics news" alias="POL"/><Choice value="Technology news" alias="TECH"/>'
    '<Choice value="Sport news" alias="SPORT"/><Choice value="Weather report" alias="WX"/></Choices></View>'
)
ALIAS = dict(zip(TOPICS, ["POL", "TECH", "SPORT", "WX"]))


def test_aliases_are_trained_on_and_predicted(client):
    tasks = [
        {"id": s["id"], "data": {"body": s["data"]["text"]},
         "annotations": [{"id": s["id"], "result": [choices("kind", [ALIAS[topic_of(s)]], "doc")], "was_cancelled": False}]}
        for s in sample_tasks()
    ]
    job = train_and_wait(client, 43, ALIASED, tasks)
    assert job["report"]["controls"]["kind"]["labels"] == {"POL": 8, "TECH": 8, "SPORT": 8, "WX": 8}
    body = {"tasks": [{"id": 1, "data": {"body": "Forecasters warn of snow and frost overnight"}}], "project": "43.1", "label_config": ALIASED}
    (item,) = client.post("/predict", json=body).json()["results"]
    assert item["result"] == [{"from_name": "kind", "to_name": "doc", "type": "choices", "value": {"choices": ["WX"]}}]
    assert item["score"] == pytest.approx(pickled_scores(client, 43, "p43-v1", [body["tasks"][0]["data"]["body"]])["kind"][0], abs=1e-9)


def simple_config(labels: list[str]) -> str:
    return '<View><Text name="news" value="$text"/><Choices name="topic" toName="news">' + "".join(f'<Choice value="{l}"/>' for l in labels) + "</Choices></View>"


@pytest.fixture
def trained_topics(client):
    train_and_wait(client, 44, simple_config(TOPICS), sample_tasks())
    return client


def test_a_label_removed_from_the_config_is_never_predicted(trained_topics):
    config = simple_config(["Politics", "Technology", "Sport"])
    items = predict(trained_topics, 44, config, ["Heavy snow and strong wind forecast for the weekend", "The striker scored twice"])
    assert all(chosen(item)["topic"][0] in {"Politics", "Technology", "Sport"} for item in items)
    assert chosen(items[1])["topic"] == ["Sport"]


def test_renamed_labels_are_never_predicted_and_a_config_left_with_one_known_label_gets_none(trained_topics):
    renamed = simple_config(["Government", "Tech", "Sport", "Weather"])
    items = predict(trained_topics, 44, renamed, ["Parliament passed the law", "Snow and frost tomorrow"])
    assert {chosen(item)["topic"][0] for item in items} <= {"Sport", "Weather"}  # the names the model knows
    assert chosen(items[1])["topic"] == ["Weather"]
    assert predict(trained_topics, 44, simple_config(["Government", "Tech", "Athletics", "Weather"]), ["Snow tomorrow"]) == []


def test_a_config_without_a_usable_control_still_connects_but_predict_says_what_is_supported(client):
    config = '<View><Image name="img" value="$image"/><RectangleLabels name="box" toName="img"><Label value="Car"/></RectangleLabels></View>'
    assert client.post("/setup", json={"project": "45.1", "schema": config}).json() == {"model_version": "untrained"}
    reply = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "x.png"}}], "project": "45.1", "label_config": config})
    assert reply.status_code == 422
    assert "supports one or more <Choices> over a <Text>" in reply.json()["detail"] and "RectangleLabels" in reply.json()["detail"]


def test_a_task_without_text_gets_an_empty_list_so_label_studio_leaves_it_unpredicted(trained_topics):
    # Label Studio 1.23.2 stores `{"result": []}` as a prediction (the task then counts as
    # predicted) but skips a `[]` item and still stores the others (tests/ls_wire_runs/README.md).
    config = simple_config(TOPICS)
    body = {"tasks": [{"id": 1, "data": {"text": "Heavy rain tonight"}}, {"id": 2, "data": {"text": "   "}}, {"id": 3, "data": {}}],
            "project": "44.1", "label_config": config}
    results = trained_topics.post("/predict", json=body).json()["results"]
    assert results[1:] == [[], []]
    assert chosen(results[0]) == {"topic": ["Weather"]} and results[0]["model_version"] == "p44-v1"
