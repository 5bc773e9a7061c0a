from functions import annotation_log
from functions.store import LocalStore


def annotation(id, label, updated, task=1, cancelled=False):
    result = [] if label is None else [{"from_name": "topic", "to_name": "news", "type": "choices", "value": {"choices": [label]}}]
    return {"id": id, "task": task, "result": result, "was_cancelled": cancelled, "updated_at": updated, "unique_id": "x"}


def labels_in(log):
    return {t["id"]: sorted((a["id"], (a["result"] or [{"value": {"choices": [None]}}])[0]["value"]["choices"][0]) for a in t["annotations"]) for t in log}


def test_created_updated_replayed_out_of_order_keeps_the_newest(tmp_path):
    store = LocalStore(tmp_path)
    task = {"id": 1, "data": {"text": "hello"}}
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:02Z"), task)
    annotation_log.record_annotation(store, "3", annotation(10, "B", "2026-01-01T00:00:01Z"), task)  # late, older
    annotation_log.record_annotation(store, "3", annotation(11, None, "2026-01-01T00:00:03Z", cancelled=True), task)
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:02Z"), task)  # replay
    log = annotation_log.read_log(store, "3")
    assert log[0]["data"] == {"text": "hello"}
    assert labels_in(log) == {1: [(10, "A"), (11, None)]}
    assert log[0]["annotations"][1]["was_cancelled"] is True
    assert "unique_id" not in log[0]["annotations"][0]


def test_deletions_by_annotation_id_win_even_over_later_updates(tmp_path):
    store = LocalStore(tmp_path)
    for task_id, ann_id in [(1, 10), (2, 20)]:
        annotation_log.record_annotation(store, "3", annotation(ann_id, "A", "2026-01-01T00:00:00Z", task=task_id), {"id": task_id, "data": {"text": "t"}})
    assert annotation_log.record_deletions(store, "3", [{"id": 20}, {"id": 20}, {"id": 99}]) == 2
    annotation_log.record_annotation(store, "3", annotation(20, "B", "2026-01-02T00:00:00Z", task=2), None)
    assert labels_in(annotation_log.read_log(store, "3")) == {1: [(10, "A")]}  # task 2 has no annotation left
    assert len(store.list_keys("projects/3/deleted_annotations/")) == 1


def test_ids_and_results_of_the_wrong_shape_are_refused_before_anything_is_written(tmp_path):
    import pytest

    from functions.errors import InvalidRequest

    store = LocalStore(tmp_path)
    for bad in [{"id": 1, "task": 1, "result": 7}, {"id": 10**300, "task": 1}, {"id": 1, "task": -1}, {"id": "1", "task": 1}]:
        with pytest.raises(InvalidRequest):
            annotation_log.record_annotation(store, "3", bad, None)
    with pytest.raises(InvalidRequest, match="an integer of 997 bits"):
        annotation_log.record_deletions(store, "3", [{"id": 10**300}])
    assert store.list_keys("projects/") == []


def test_projects_are_separate(tmp_path):
    store = LocalStore(tmp_path)
    annotation_log.record_annotation(store, "3", annotation(1, "A", "2026-01-01T00:00:00Z"), {"id": 1, "data": {"text": "t"}})
    assert annotation_log.read_log(store, "4") == []


def test_a_late_delivery_never_overwrites_newer_task_text(tmp_path):
    store = LocalStore(tmp_path)
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:05Z"), {"id": 1, "data": {"text": "edited"}})
    annotation_log.record_annotation(store, "3", annotation(11, "B", "2026-01-01T00:00:01Z"), {"id": 1, "data": {"text": "original"}})
    assert annotation_log.read_log(store, "3")[0]["data"] == {"text": "edited"}
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:09Z"), {"id": 1, "data": {"text": "newest"}})
    assert annotation_log.read_log(store, "3")[0]["data"] == {"text": "newest"}


def test_implausible_events_are_refused_and_change_nothing(tmp_path):
    import pytest

    from functions.errors import InvalidRequest

    store = LocalStore(tmp_path)
    limits = annotation_log.LogLimits(max_text_chars=100, max_ids=3, clock_skew_seconds=60)
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:00Z"), {"id": 1, "data": {"text": "kept"}}, limits)
    before = sorted(store.list_keys("projects/3/"))
    with pytest.raises(InvalidRequest, match="lies in the future"):  # would pin label B forever
        annotation_log.record_annotation(store, "3", annotation(10, "B", "2999-01-01T00:00:00Z"), None, limits)
    with pytest.raises(InvalidRequest, match="MAX_TEXT_CHARS"):
        annotation_log.record_annotation(store, "3", annotation(12, "A", "2026-01-01T00:00:01Z", task=2), {"id": 2, "data": {"text": "x" * 101}}, limits)
    with pytest.raises(InvalidRequest, match="MAX_TEXT_CHARS"):  # many small fields
        annotation_log.record_annotation(store, "3", annotation(13, "A", "2026-01-01T00:00:01Z", task=3), {"id": 3, "data": {f"k{i}": "y" * 90 for i in range(10)}}, limits)
    with pytest.raises(InvalidRequest, match="at most 3"):
        annotation_log.record_deletions(store, "3", [{"id": i} for i in range(4)], limits)
    assert sorted(store.list_keys("projects/3/")) == before
    assert labels_in(annotation_log.read_log(store, "3")) == {1: [(10, "A")]}
    assert annotation_log.read_log(store, "3")[0]["data"] == {"text": "kept"}


def test_a_corrupt_log_object_is_skipped_and_then_replaced_by_the_next_event(tmp_path):
    store = LocalStore(tmp_path)
    annotation_log.record_annotation(store, "3", annotation(10, "A", "2026-01-01T00:00:00Z"), {"id": 1, "data": {"text": "one"}})
    annotation_log.record_annotation(store, "3", annotation(20, "B", "2026-01-01T00:00:00Z", task=2), {"id": 2, "data": {"text": "two"}})
    store.put("projects/3/annotations/2.json", b'{"id": 2, "annot')  # truncated
    store.put("projects/3/deleted_annotations/x.json", b"\xff\xfe garbage")
    assert labels_in(annotation_log.read_log(store, "3")) == {1: [(10, "A")]}
    annotation_log.record_annotation(store, "3", annotation(21, "B", "2026-01-02T00:00:00Z", task=2), {"id": 2, "data": {"text": "two"}})
    assert labels_in(annotation_log.read_log(store, "3")) == {1: [(10, "A")], 2: [(21, "B")]}
