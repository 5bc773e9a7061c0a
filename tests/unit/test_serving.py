import pytest

from functions.model.classifier import ModelParams, fit
from functions.model.export import to_compact
from functions.label_config import parse_label_config
from functions.serving import predict_tasks
from functions.versions import StoredModel

TEXTS = ["goal match striker", "league cup win", "election vote minister", "parliament law vote", "rain snow wind", "storm forecast rain"]
LABELS = ["Sport", "Sport", "Politics", "Politics", "Weather", "Weather"]


@pytest.fixture(scope="module")
def model():
    classifier = fit(TEXTS, LABELS, ModelParams())
    return StoredModel("p1-v4", {"topic": to_compact(classifier.pipeline)}, {"topic": classifier.classes}, {})


def config(*labels, name="topic", key="text"):
    choices = "".join(f'<Choice value="{label}"/>' for label in labels)
    return parse_label_config(f'<View><Text name="news" value="${key}"/><Choices name="{name}" toName="news">{choices}</Choices></View>')


def test_one_item_per_task_in_order_with_plain_float_scores(model):
    tasks = [{"data": {"text": "rain and wind"}}, {"data": {"text": "the minister won the vote"}}, {"data": {"text": "cup match"}}]
    items = predict_tasks(tasks, config("Sport", "Politics", "Weather"), model)
    assert [item["result"][0]["value"]["choices"] for item in items] == [["Weather"], ["Politics"], ["Sport"]]
    for item in items:
        assert type(item["score"]) is float and 1 / 3 < item["score"] <= 1
        assert item["model_version"] == "p1-v4"
        assert item["result"][0] | {"value": None} == {"from_name": "topic", "to_name": "news", "type": "choices", "value": None}


def test_labels_removed_from_the_config_are_never_predicted(model):
    items = predict_tasks([{"data": {"text": "rain snow storm forecast"}}], config("Sport", "Politics"), model)
    assert items[0]["result"][0]["value"]["choices"] in (["Sport"], ["Politics"])
    assert 0.5 <= items[0]["score"] <= 1


def test_no_predictions_when_the_config_no_longer_matches_the_model(model):
    assert predict_tasks([{"data": {"text": "x"}}], config("Sport", "Renamed"), model) == []
    assert predict_tasks([{"data": {"text": "x"}}], config("Sport", "Politics", name="other"), model) == []


def test_tasks_without_text_get_an_empty_result_but_keep_their_place(model):
    tasks = [{"data": {"body": "rain"}}, {"data": {"text": "rain snow"}}, {"data": {"text": 42}}, {}]
    items = predict_tasks(tasks, config("Sport", "Politics", "Weather"), model)
    assert [len(item["result"]) for item in items] == [0, 1, 0, 0]
    assert items[0]["score"] == 0.0
