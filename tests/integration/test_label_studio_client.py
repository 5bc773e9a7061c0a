"""The Label Studio client against a real HTTP stand-in: token kinds, refresh on 401, path
prefixes, and every failure a user must be able to act on, without leaking the token; task
pages and prediction import with retries, checked against captures of a real Label Studio 1.23.2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from functions.label_studio import (
    LabelStudioClient,
    LabelStudioRefused,
    LabelStudioUnknownTask,
    LabelStudioUnreachable,
    TaskPage,
)
from tests.conftest import sample_tasks
from tests.ls_standin import LEGACY_TOKEN, PERSONAL_ACCESS_TOKEN, LabelStudioStandIn, choices_of, make_tasks


@pytest.fixture
def standin():
    with LabelStudioStandIn({5: sample_tasks()}, prefix="/labelstudio") as server:
        yield server


def test_personal_access_token_is_exchanged_and_refreshed_once_on_401(standin):
    client = LabelStudioClient(standin.url, PERSONAL_ACCESS_TOKEN)
    assert len(client.export_tasks("5")) == 32
    standin.expire()
    assert [t["id"] for t in client.export_tasks("5")] == [t["id"] for t in sample_tasks()]
    calls = [(r["method"], r["path"].split("?")[0], r.get("authorization")) for r in standin.requests]
    assert calls == [
        ("POST", "/labelstudio/api/token/refresh/", None),
        ("GET", "/labelstudio/api/projects/5/export", "Bearer access-1"),
        ("GET", "/labelstudio/api/projects/5/export", "Bearer access-1"),  # expired → 401
        ("POST", "/labelstudio/api/token/refresh/", None),
        ("GET", "/labelstudio/api/projects/5/export", "Bearer access-2"),
    ]
    assert "exportType=JSON" in standin.requests[1]["path"]


def test_legacy_token_is_sent_as_token(standin):
    assert len(LabelStudioClient(standin.url + "/", LEGACY_TOKEN).export_tasks("5")) == 32
    assert standin.requests[0]["authorization"] == f"Token {LEGACY_TOKEN}"


@pytest.mark.parametrize(
    "key, message",
    [
        ("eyJhbGciOiJIUzI1NiJ9.eyJ3cm9uZyI6dHJ1ZX0.c2ln", "answered 401 to POST /api/token/refresh/: LABEL_STUDIO_API_KEY is not a valid personal access token"),
        ("not-a-real-legacy-token", "answered 401 to GET /api/projects/5/export: LABEL_STUDIO_API_KEY looks like a legacy token"),
    ],
)
def test_refused_credentials_say_what_to_check_and_never_show_the_key(standin, key, message):
    with pytest.raises(LabelStudioRefused) as refused:
        LabelStudioClient(standin.url, key).export_tasks("5")
    assert message in str(refused.value) and standin.url in str(refused.value)
    assert key not in str(refused.value)


def test_legacy_tokens_disabled_by_the_organisation(standin):
    standin.legacy_tokens = False
    with pytest.raises(LabelStudioRefused, match="new Label Studio 1.23 organisations disable"):
        LabelStudioClient(standin.url, LEGACY_TOKEN).export_tasks("5")


def test_unknown_project_or_wrong_prefix_is_a_404_with_a_hint(standin):
    with pytest.raises(LabelStudioRefused, match="answered 404 .* check that LABEL_STUDIO_URL"):
        LabelStudioClient(standin.url, PERSONAL_ACCESS_TOKEN).export_tasks("77")
    with pytest.raises(LabelStudioRefused, match="answered 404"):
        LabelStudioClient(standin.url.removesuffix("/labelstudio"), PERSONAL_ACCESS_TOKEN).export_tasks("5")


def test_server_errors_slowness_and_a_dead_host_are_unreachable(standin):
    standin.mode = "error"
    with pytest.raises(LabelStudioUnreachable, match="answered 500"):
        LabelStudioClient(standin.url, LEGACY_TOKEN).export_tasks("5")
    standin.mode, standin.delay = "slow", 1.5
    with pytest.raises(LabelStudioUnreachable, match="did not answer GET /api/projects/5/export in time"):
        LabelStudioClient(standin.url, LEGACY_TOKEN, timeout=0.3).export_tasks("5")
    url = standin.url
    standin.stop()
    with pytest.raises(LabelStudioUnreachable, match="could not reach Label Studio at .* check LABEL_STUDIO_URL") as down:
        LabelStudioClient(url, PERSONAL_ACCESS_TOKEN).export_tasks("5")
    assert PERSONAL_ACCESS_TOKEN not in str(down.value)


# -- task pages and prediction import (shapes from a real Label Studio 1.23.2: tests/ls_wire_runs/) --

WIRE = Path(__file__).resolve().parents[1] / "ls_wire_runs"
CONFIG = '<View><Text name="news" value="$text"/><Choices name="topic" toName="news"><Choice value="World"/><Choice value="Sports"/></Choices></View>'


def choice(value: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "news", "type": "choices", "value": {"choices": [value]}}]


@pytest.fixture
def projects():
    tasks = make_tasks(25)
    tasks[0]["predictions"] = [{"id": 900, "result": choice("World"), "score": 0.5, "model_version": "p3-v1"}]
    with LabelStudioStandIn(tasks={3: tasks}, label_configs={3: CONFIG}, prefix="/ls") as server:
        yield server


def fast_client(server, **kwargs) -> tuple[LabelStudioClient, list[float]]:
    pauses: list[float] = []
    return LabelStudioClient(server.url, PERSONAL_ACCESS_TOKEN, sleep=pauses.append, **kwargs), pauses


def test_task_pages_are_in_id_order_with_the_total_and_prediction_versions(projects):
    client, _ = fast_client(projects)
    pages = [client.task_page("3", page, 10) for page in (1, 2, 3)]
    assert [p.total for p in pages] == [25, 25, 25]
    assert [t["id"] for p in pages for t in p.tasks] == list(range(1, 26))
    assert pages[0].tasks[0] == {"id": 1, "data": {"text": make_tasks(1)[0]["data"]["text"]}, "prediction_versions": ["p3-v1"]}
    assert pages[0].tasks[1]["prediction_versions"] == []
    listing = [r["path"] for r in projects.requests if r["method"] == "GET"]
    assert listing[0] == "/ls/api/tasks?project=3&page=1&page_size=10&fields=all&include=id%2Cdata%2Cpredictions"


def test_a_page_past_the_last_is_empty_not_an_error(projects):
    # Label Studio 1.23.2 answers 404 {"detail": "Invalid page."} there (03_tasks_page_past_last_404.json)
    client, _ = fast_client(projects)
    assert client.task_page("3", 4, 10) == TaskPage(total=25, tasks=[])


def test_an_unknown_project_is_refused_with_label_studios_detail(projects):
    client, _ = fast_client(projects)
    with pytest.raises(LabelStudioRefused, match="answered 404 to GET /api/tasks.*No Project matches the given query"):
        client.task_page("8", 1, 10)
    with pytest.raises(LabelStudioRefused, match=r"answered 404 to POST /api/projects/8/import/predictions: \(not a JSON reply\)"):
        client.import_predictions("8", [{"task": 1, "result": choice("World"), "score": 0.5, "model_version": "v"}])


def test_import_returns_created_and_label_studio_skips_invalid_items(projects):
    client, _ = fast_client(projects)
    items = [{"task": t, "result": choice("World"), "score": 0.9, "model_version": "p3-v2"} for t in range(1, 6)]
    items.append({"task": 6, "result": choice("NotAChoice"), "score": 0.9, "model_version": "p3-v2"})
    items.append({"task": 7, "result": "not a list", "score": 0.9, "model_version": "p3-v2"})
    items.append({"task": 8, "result": [], "score": 0.0, "model_version": "p3-v2"})  # stored, as by Label Studio
    assert client.import_predictions("3", items) == 6
    assert projects.prediction_count(3, "p3-v2") == 6
    assert client.task_page("3", 1, 2).tasks[0]["prediction_versions"] == ["p3-v1", "p3-v2"]
    assert client.import_predictions("3", []) == 0  # nothing sent at all


def test_one_unknown_task_rejects_the_whole_import(projects):
    client, _ = fast_client(projects)
    projects.delete_task(3, 4)
    items = [{"task": t, "result": choice("World"), "score": 0.9, "model_version": "p3-v2"} for t in (3, 4, 5)]
    with pytest.raises(LabelStudioUnknownTask, match="task 4 is not in project 3") as unknown:
        client.import_predictions("3", items)
    assert unknown.value.task_id == 4 and isinstance(unknown.value, LabelStudioRefused)
    assert projects.prediction_count(3, "p3-v2") == 0
    assert len([r for r in projects.requests if r["path"].endswith("/import/predictions")]) == 1  # no retry


@pytest.mark.parametrize("status", [429, 500, 503])
def test_import_retries_429_and_5xx_with_exponential_backoff(projects, status):
    client, pauses = fast_client(projects, backoff=1.0)
    projects.inject("import", status, times=3)
    assert client.import_predictions("3", [{"task": 2, "result": choice("Sports"), "score": 0.8, "model_version": "v"}]) == 1
    assert len(pauses) == 3 and all(0.5 * 2**n <= p <= 2**n for n, p in enumerate(pauses))
    assert projects.prediction_count(3, "v") == 1


def test_retry_after_is_honoured_and_capped(projects):
    client, pauses = fast_client(projects, max_backoff=10.0)
    projects.inject("import", 429, times=1, retry_after="7")
    projects.inject("import", 429, times=1, retry_after="3600")
    assert client.import_predictions("3", [{"task": 2, "result": choice("Sports"), "score": 0.8, "model_version": "v"}]) == 1
    assert pauses == [7.0, 10.0]


def test_import_gives_up_after_the_attempts_and_says_so(projects):
    client, pauses = fast_client(projects, attempts=4)
    projects.inject("import", 500, times=4)
    with pytest.raises(LabelStudioUnreachable, match="answered 500 to POST /api/projects/3/import/predictions"):
        client.import_predictions("3", [{"task": 2, "result": choice("Sports"), "score": 0.8, "model_version": "v"}])
    assert len(pauses) == 3 and projects.prediction_count(3, "v") == 0


def test_task_page_retries_too_and_refreshes_an_expired_token(projects):
    client, pauses = fast_client(projects)
    assert client.task_page("3", 1, 5).total == 25
    projects.expire()
    projects.inject("tasks", 503, times=2)
    assert [t["id"] for t in client.task_page("3", 2, 5).tasks] == [6, 7, 8, 9, 10]
    assert len(pauses) == 2
    assert [r["path"] for r in projects.requests if r["method"] == "POST"] == ["/ls/api/token/refresh/"] * 2


def test_a_connection_refused_is_retried_then_unreachable():
    with LabelStudioStandIn(tasks={1: make_tasks(3)}) as server:
        url = server.url
    pauses: list[float] = []
    client = LabelStudioClient(url, LEGACY_TOKEN, sleep=pauses.append, attempts=3)
    with pytest.raises(LabelStudioUnreachable, match="could not reach Label Studio"):
        client.import_predictions("1", [{"task": 1, "result": [], "score": 0.0, "model_version": "v"}])
    assert len(pauses) == 2


def test_a_timeout_after_sending_an_import_is_not_retried_but_a_listing_is(projects):
    client, pauses = fast_client(projects, timeout=0.3)
    projects.mode, projects.delay = "slow", 0.6
    with pytest.raises(LabelStudioUnreachable, match="did not answer POST /api/projects/3/import/predictions in time"):
        client.import_predictions("3", [{"task": 2, "result": choice("Sports"), "score": 0.8, "model_version": "v"}])
    assert pauses == []  # Label Studio may have stored them: the caller re-reads the tasks instead
    time.sleep(0.5)
    assert projects.prediction_count(3, "v") == 1  # ... and here it did
    with pytest.raises(LabelStudioUnreachable, match="did not answer GET /api/tasks in time"):
        client.task_page("3", 1, 5)
    assert len(pauses) == 4  # a listing is safe to retry


def test_the_stand_in_answers_like_the_captured_label_studio(projects):
    """Same keys, status codes and bodies as the real Label Studio 1.23.2 captures."""
    client, _ = fast_client(projects)
    client.task_page("3", 1, 1)
    headers = {"Authorization": "Bearer access-1"}
    for name in ("01_tasks_page1.json", "06_tasks_fields_all_with_predictions.json", "18_tasks_fields_all_include.json", "03_tasks_page_past_last_404.json", "05_tasks_unknown_project_404.json"):
        capture = json.loads((WIRE / name).read_text())
        query = dict(capture["request"]["query"], project="3" if str(capture["request"]["query"]["project"]) == "1" else "999")
        reply = httpx.get(projects.url + "/api/tasks", params=query, headers=headers)
        assert reply.status_code == capture["status"], name
        assert set(reply.json()) == set(capture["body"]), name
        if "tasks" in capture["body"]:
            real, ours = capture["body"]["tasks"][0], reply.json()["tasks"][0]
            assert set(ours) <= set(real) and ("predictions" in ours) == ("predictions" in real), name
            if "include" in query:
                assert set(ours) == set(real) == {"id", "data", "predictions"}
        else:
            assert reply.json()["detail"] == capture["body"]["detail"], name
    for name in ("08_import_created.json", "09_import_one_unknown_task_400.json", "10_import_invalid_items_skipped.json", "11_import_empty_result.json", "14_import_empty_list.json", "15_import_score_not_float.json"):
        capture = json.loads((WIRE / name).read_text())
        items = capture["request"]["json"]
        reply = httpx.post(projects.url + "/api/projects/3/import/predictions", json=items, headers=headers)
        assert reply.status_code == capture["status"], name
        if capture["status"] == 201:
            assert reply.json() == capture["body"], name
        else:
            assert reply.json().keys() == capture["body"].keys(), name
            assert reply.json()["validation_errors"]["non_field_errors"][0].endswith(
                capture["body"]["validation_errors"]["non_field_errors"][0].split(" from project ")[-1].replace("probe (id=1)", "stand-in (id=3)")
            ), name
    assert choices_of(CONFIG) == {"topic": {"World", "Sports"}}


def test_a_hundred_thousand_tasks_page_quickly():
    with LabelStudioStandIn(tasks={1: make_tasks(100_000)}) as server:
        client = LabelStudioClient(server.url, LEGACY_TOKEN)
        start = time.perf_counter()
        first = client.task_page("1", 1, 1000)
        seen = sum(len(client.task_page("1", page, 1000).tasks) for page in range(2, first.total // 1000 + 1)) + len(first.tasks)
        elapsed = time.perf_counter() - start
    assert seen == 100_000
    assert elapsed < 20, elapsed
