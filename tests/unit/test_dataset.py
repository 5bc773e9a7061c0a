from functions.dataset import build_training_set, choose_annotation
from functions.label_config import parse_label_config

CONFIG = parse_label_config(
    '<View><Text name="news" value="$text"/><Text name="title" value="$title"/>'
    '<Choices name="topic" toName="news"><Choice value="A"/><Choice value="B"/></Choices>'
    '<Choices name="tone" toName="title"><Choice value="up"/><Choice value="down"/></Choices></View>'
)


def choice(control, *values):
    return {"from_name": control, "to_name": "news", "type": "choices", "value": {"choices": list(values)}}


def annotation(id, *result, cancelled=False, ground_truth=False, updated="2026-01-01T00:00:00Z"):
    return {"id": id, "result": list(result), "was_cancelled": cancelled, "ground_truth": ground_truth, "updated_at": updated}


def task(id, annotations, text="some text", title="a title"):
    return {"id": id, "data": {"text": text, "title": title}, "annotations": annotations}


def test_each_drop_reason_is_counted_once_per_task_or_control():
    tasks = [
        task(1, [annotation(1, choice("topic", "A"), choice("tone", "up"))]),
        task(2, [annotation(2, cancelled=True)]),                      # skipped
        task(3, [annotation(3)]),                                      # empty result
        task(4, []),                                                   # never annotated
        task(5, [annotation(5, choice("other", "x"))]),                # no result for our controls
        task(6, [annotation(6, choice("topic", "Gone"), choice("tone", "down"))]),  # topic label removed
        task(7, [annotation(7, choice("topic", "B"))]),                # tone not annotated
        task(8, [annotation(8, choice("topic", "A"), choice("tone", "up"))], text="  "),  # no text for topic
    ]
    result = build_training_set(tasks, CONFIG)
    assert result.tasks_seen == 8
    assert dict(result.dropped) == {"skipped": 1, "empty": 3}
    topic, tone = result.controls["topic"], result.controls["tone"]
    assert topic.texts == ["some text", "some text"] and topic.targets == [("A",), ("B",)]
    assert dict(topic.dropped) == {"unknown_label": 1, "no_text": 1}
    assert tone.targets == [("up",), ("down",), ("up",)]
    assert dict(tone.dropped) == {"only_some_controls": 1}
    report = result.report()
    assert report["controls"]["topic"] == {"examples": 2, "dropped": {"unknown_label": 1, "no_text": 1}, "labels": {"A": 1, "B": 1}}


def test_ground_truth_wins_else_the_latest_update():
    older = annotation(1, choice("topic", "A"), updated="2026-01-02T00:00:00Z")
    newer = annotation(2, choice("topic", "B"), updated="2026-01-03T00:00:00+00:00")
    truth = annotation(3, choice("topic", "A"), ground_truth=True, updated="2026-01-01T00:00:00Z")
    skipped_latest = annotation(4, cancelled=True, updated="2026-02-01T00:00:00Z")
    assert choose_annotation([older, newer, skipped_latest])[0]["id"] == 2
    assert choose_annotation([older, newer, truth])[0]["id"] == 3
    assert choose_annotation([skipped_latest]) == (None, "skipped")


def test_multiple_choice_control_keeps_known_labels_only():
    config = parse_label_config(
        '<View><Text name="t" value="$text"/><Choices name="tags" toName="t" choice="multiple">'
        '<Choice value="x"/><Choice value="y"/></Choices></View>'
    )
    tasks = [task(1, [annotation(1, choice("tags", "x", "gone", "y"))]), task(2, [annotation(2, choice("tags", "gone"))])]
    tags = build_training_set(tasks, config).controls["tags"]
    assert tags.targets == [("x", "y")] and dict(tags.dropped) == {"unknown_label": 1}


def test_junk_in_tasks_and_annotations_is_counted_never_fatal():
    config = parse_label_config('<View><Text name="t" value="$text"/><Choices name="topic" toName="t"><Choice value="A"/><Choice value="B"/></Choices></View>')
    tasks = [
        "not a task", {"id": 2, "annotations": 5}, {"id": 3, "annotations": [7, None]},
        {"id": 4, "annotations": [{"result": 7}]}, {"id": 5, "annotations": [{"result": [1, {"type": "choices", "value": 3}]}]},
        {"id": 6, "data": "text", "annotations": [annotation(6, choice("topic", "A"))]},
        {"id": 7, "data": {"text": "fine"}, "annotations": [annotation(7, {"from_name": "topic", "type": "choices", "value": {"choices": [1, "B"]}})]},
    ]
    result = build_training_set(tasks, config)
    assert dict(result.dropped) == {"empty": 5}
    topic = result.controls["topic"]
    assert dict(topic.dropped) == {"no_text": 1} and topic.targets == [("B",)]


def test_annotations_the_model_made_are_not_trained_on_until_a_person_touches_them():
    result = [{"from_name": "topic", "to_name": "news", "type": "choices", "value": {"choices": ["World"]}}]
    made = {"id": 7, "result": result, "parent_prediction": 15650, "lead_time": None, "updated_by": None, "updated_at": "2026-12-03T10:39:30Z"}
    assert choose_annotation([made]) == (None, "auto_labeled")
    edited = made | {"updated_by": 1}  # a person changed the model's annotation
    submitted = made | {"id": 8, "lead_time": 12.5}  # a person submitted from the prediction in the editor
    assert choose_annotation([edited])[0]["id"] == 7 and choose_annotation([submitted])[0]["id"] == 8
    human = {"id": 9, "result": result, "updated_at": "2026-12-01T00:00:00Z"}
    assert choose_annotation([made, human])[0]["id"] == 9  # the person's, though the model's is newer
