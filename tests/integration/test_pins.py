"""Pin and roll back (issue 11, item 1): the connection's Extra params in /setup and
PUT/DELETE /projects/{id}/serving decide what a project serves; /setup and /predict agree;
trainings still publish; bad versions, bodies and pin objects get clear errors or are ignored."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient

from functions import keys, pins
from functions.api.app import create_app
from functions.cli import main as cli
from functions.runs import start_after_training
from functions.settings import Settings
from tests.conftest import wire
from tests.integration.test_store_faults import CONFIG, MANIFEST_FAULTS, MODEL_FAULTS, PROJECT, fitted, publish, store  # noqa: F401 - fixtures

SETUP = wire("02_setup.json")["body"]  # what Label Studio 1.23.2 sends, extra_params null


@pytest.fixture
def settings(tmp_path):  # test_store_faults' `store` is made from these: a pointer trusted for a minute
    return Settings(model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=60.0)


@pytest.fixture
def client(settings, store, fitted):
    for job in ("job-1", "job-2", "job-3"):
        publish(store, fitted, job)
    with TestClient(create_app(settings)) as test_client:
        test_client.app.state.services._made["store"] = store
        yield test_client


def setup(client, extra_params=None) -> tuple[int, dict]:
    body = copy.deepcopy(SETUP) | {"project": f"{PROJECT}.1795968764", "schema": CONFIG, "extra_params": extra_params}
    reply = client.post("/setup", json=body)
    return reply.status_code, reply.json()


def setup_version(client, extra_params=None) -> str:
    status, body = setup(client, extra_params)
    assert status == 200, body
    return body["model_version"]


def predicted_versions(client) -> set[str]:
    tasks = [{"id": i, "data": {"text": text}} for i, text in enumerate(["rain storm", "great goal"], 1)]
    reply = client.post("/predict", json={"project": f"{PROJECT}.1795968764", "label_config": CONFIG, "tasks": tasks})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [item["result"][0]["value"]["choices"] for item in body["results"]] == [["Weather"], ["Sport"]]
    return {item["model_version"] for item in body["results"]} | {body["model_version"]}


def stored_pin(store) -> dict | None:
    found = store.get(keys.serving_pin(PROJECT))
    return found.json() if found else None


def test_an_operator_pin_serves_the_version_until_unpinned_while_trainings_still_publish(client, store, fitted):
    assert setup_version(client) == "p5-v3" and predicted_versions(client) == {"p5-v3"}
    reply = client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v1"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["version"] == "p5-v1" and reply.json()["pinned"]["version"] == "p5-v1"
    assert reply.json()["pinned"]["source"] == "operator"
    assert setup_version(client) == "p5-v1"  # /setup changed: Label Studio re-predicts with p5-v1
    assert predicted_versions(client) == {"p5-v1"}

    assert publish(store, fitted, "job-4") == "p5-v4"  # a training publishes while the pin holds
    client.app.state.services.cache.forget(PROJECT)
    assert setup_version(client) == "p5-v1" and predicted_versions(client) == {"p5-v1"}
    status = client.get(f"/projects/{PROJECT}").json()
    assert status["serving"]["version"] == "p5-v1" and status["serving"]["pinned"]["version"] == "p5-v1"
    assert status["newest_version"] == "p5-v4" and "DELETE /projects/5/serving unpins" in status["serving"]["note"]

    reply = client.delete(f"/projects/{PROJECT}/serving")
    assert reply.status_code == 200 and reply.json() == {"project": PROJECT, "version": "p5-v4", "pinned": None}
    assert setup_version(client) == "p5-v4" and predicted_versions(client) == {"p5-v4"}
    assert stored_pin(store)["version"] is None


def test_a_number_pins_too_and_get_shows_the_pin(client):
    assert client.put(f"/projects/{PROJECT}/serving", json={"version": 2}).json()["version"] == "p5-v2"
    reply = client.get(f"/projects/{PROJECT}/serving").json()
    assert reply["version"] == "p5-v2" and reply["pinned"]["version"] == "p5-v2" and reply["pinned"]["since"]


def test_extra_params_pin_on_setup_and_removing_them_unpins(client, store):
    assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v2"
    assert predicted_versions(client) == {"p5-v2"}
    assert stored_pin(store) | {"since": None} == {"version": "p5-v2", "source": "label_studio",
                                                     "extra_params_version": "p5-v2", "since": None}
    writes = store.root.joinpath(keys.serving_pin(PROJECT)).stat().st_mtime_ns
    for _ in range(3):  # Label Studio repeats /setup: the pin is written once
        client.app.state.services.cache.forget(PROJECT)
        assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v2"
    assert store.root.joinpath(keys.serving_pin(PROJECT)).stat().st_mtime_ns == writes

    assert setup_version(client, {"model_version": 1, "other": "kept"}) == "p5-v1"  # edited: pins again
    assert setup_version(client, None) == "p5-v3"  # removed: what they pinned is unpinned
    assert predicted_versions(client) == {"p5-v3"}
    assert stored_pin(store)["version"] is None


def test_the_last_change_wins_between_operators_and_extra_params(client):
    assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v2"
    client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v1"})
    assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v1"  # unchanged Extra params do not undo it
    assert setup_version(client, None) == "p5-v1"  # removing them does not unpin the operator's pin
    client.delete(f"/projects/{PROJECT}/serving")
    assert setup_version(client, None) == "p5-v3"
    assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v2"
    client.delete(f"/projects/{PROJECT}/serving")
    assert setup_version(client, {"model_version": "p5-v2"}) == "p5-v3"  # the operator's unpin holds


@pytest.mark.parametrize("body, status, words", [
    ({"version": "p5-v9"}, 404, "p5-v9 is not a published version of project 5 (published: p5-v1, p5-v2, p5-v3)"),
    ({"version": "p7-v1"}, 422, '"p7-v1" is not a model version of project 5'),
    ({"version": "latest"}, 422, "is not a model version of project 5"),
    ({"version": True}, 422, 'expected {"version": "p5-v3"}'),
    ({}, 422, 'expected {"version": "p5-v3"}'),
    ({"version": "p5-v1", "extra": 1}, 422, 'expected {"version": "p5-v3"}'),
])
def test_a_bad_pin_request_says_what_to_fix_and_changes_nothing(client, store, body, status, words):
    reply = client.put(f"/projects/{PROJECT}/serving", json=body)
    assert reply.status_code == status and words in reply.json()["detail"], reply.text
    assert stored_pin(store) is None and setup_version(client) == "p5-v3"


def test_a_version_that_fails_verification_cannot_be_pinned(client, store):
    MANIFEST_FAULTS["signed with another key"](store, "p5-v2")
    reply = client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v2"})
    assert reply.status_code == 409 and reply.json()["detail"].startswith("p5-v2 cannot serve: "), reply.text
    assert "signature" in reply.json()["detail"], reply.text
    status, body = setup(client, {"model_version": "p5-v2"})
    assert status == 422 and body["detail"].startswith("Extra params: p5-v2 cannot serve"), body
    assert stored_pin(store) is None


@pytest.mark.parametrize("extra_params", [{"model_version": "p5-v9"}, {"model_version": "x"}, {"model_version": [1]}])
def test_extra_params_naming_no_version_are_a_clear_setup_error(client, store, extra_params):
    status, body = setup(client, extra_params)
    assert status == 422 and body["detail"].startswith("Extra params:") and "model_version" in body["detail"], body
    assert stored_pin(store) is None


@pytest.mark.parametrize("extra_params", [None, {}, {"threshold": 0.3}, "not json", '{"model_version": ""}', [1, 2], 5])
def test_extra_params_without_a_model_version_pin_nothing(client, store, extra_params):
    assert setup_version(client, extra_params) == "p5-v3"
    assert stored_pin(store) is None


def test_a_pinned_version_that_breaks_later_falls_back_and_status_says_so(client, store, settings):
    client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v2"})
    MODEL_FAULTS["truncated model.npz"](store, "p5-v2")
    with TestClient(create_app(settings)) as other:  # another API instance, which has not loaded p5-v2
        other.app.state.services._made["store"] = store
        assert setup_version(other) == "p5-v2"  # /setup loads no model
        assert predicted_versions(other) == {"p5-v3"}  # the load finds the fault: the newest good version serves
        assert setup_version(other) == "p5-v3"
        serving = other.get(f"/projects/{PROJECT}").json()["serving"]
        assert serving["pinned"]["version"] == "p5-v2" and "which cannot serve" in serving["note"]


def test_a_version_whose_model_fails_its_checksum_cannot_be_pinned(client, store):
    MODEL_FAULTS["truncated model.npz"](store, "p5-v1")
    reply = client.put(f"/projects/{PROJECT}/serving", json={"version": 1})
    assert reply.status_code == 409 and reply.json()["detail"].startswith("p5-v1 cannot serve: "), reply.text
    assert "checksum" in reply.json()["detail"]
    status, body = setup(client, {"model_version": "p5-v1"})
    assert status == 422 and "p5-v1 cannot serve" in body["detail"]
    assert stored_pin(store) is None and setup_version(client) == "p5-v3"


def test_a_pin_changed_by_another_instance_meanwhile_is_not_overwritten(client, store, settings):
    """Each instance caches the pin for POINTER_TTL_SECONDS: a write is decided on the pin read
    fresh, so an unpin on B right after A pinned through Extra params does unpin."""
    with TestClient(create_app(settings)) as other:
        other.app.state.services._made["store"] = store
        assert other.get(f"/projects/{PROJECT}/serving").json()["pinned"] is None  # B caches "not pinned"
        assert setup_version(client, {"model_version": 1}) == "p5-v1"  # A pins through Extra params
        assert other.delete(f"/projects/{PROJECT}/serving").json()["pinned"] is None
        assert stored_pin(store)["version"] is None and stored_pin(store)["extra_params_version"] == "p5-v1"
        client.app.state.services.cache.forget(PROJECT)  # A's POINTER_TTL_SECONDS pass
        assert setup_version(client, {"model_version": 1}) == "p5-v3"  # the operator's unpin holds
        assert other.put(f"/projects/{PROJECT}/serving", json={"version": 2}).status_code == 200
        assert stored_pin(store)["version"] == "p5-v2" and stored_pin(store)["extra_params_version"] == "p5-v1"
        client.app.state.services.cache.forget(PROJECT)
        assert setup_version(client, {"model_version": 1}) == "p5-v2"  # unchanged Extra params do not undo it


def test_extra_params_as_deeply_nested_json_text_pin_nothing(client, store):
    assert setup_version(client, "[" * 100_000 + "]" * 100_000) == "p5-v3"
    assert setup_version(client, '{"a":' * 5000) == "p5-v3"
    assert stored_pin(store) is None


@pytest.mark.parametrize("garbage", [b"", b"[1]", b'{"version": 3}', b"\xff"])
def test_a_garbage_pin_object_serves_the_newest(client, store, garbage):
    store.put(keys.serving_pin(PROJECT), garbage)
    assert setup_version(client) == "p5-v3" and predicted_versions(client) == {"p5-v3"}


def test_unpinning_an_unpinned_project_writes_nothing(client, store):
    reply = client.delete(f"/projects/{PROJECT}/serving")
    assert reply.status_code == 200 and reply.json()["pinned"] is None and stored_pin(store) is None
    assert client.put("/projects/77/serving", json={"version": "p77-v1"}).status_code == 404


def test_no_prediction_run_follows_a_training_while_another_version_is_pinned(client, store, settings):
    from functions.jobs import Job

    client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v1"})
    runs_on = settings.model_copy(update={"predict_after_training": True, "label_studio_url": "http://ls.invalid",
                                          "label_studio_api_key": "token"})
    job = Job(job_id="j", project=PROJECT, source="start_training", version="p5-v3", label_config=CONFIG)
    link = start_after_training(store, runs_on, job)
    assert link["state"] == "skipped" and link["run"] is None
    assert "pinned to p5-v1, so p5-v3 does not serve" in link["reason"]


def test_the_serving_command_pins_shows_and_unpins(store, fitted, settings, capsys, monkeypatch):
    for job in ("job-1", "job-2"):
        publish(store, fitted, job)
    uri = settings.model_store_uri
    assert cli(["serving", "--project", PROJECT, "--pin", "1", "--store", uri]) == 0
    assert "project 5 serves p5-v1 (pinned by operator since" in capsys.readouterr().out
    assert cli(["serving", "--project", PROJECT, "--json", "--store", uri]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "p5-v1" and shown["pinned"]["version"] == "p5-v1" and shown["published"] == ["p5-v1", "p5-v2"]
    assert pins.read_pin(store, PROJECT).version == "p5-v1"
    assert cli(["serving", "--project", PROJECT, "--pin", "p5-v7", "--store", uri]) == 1
    assert "error: NotFound: p5-v7 is not a published version of project 5" in capsys.readouterr().err
    assert cli(["serving", "--project", PROJECT, "--unpin", "--store", uri]) == 0
    assert "project 5 serves p5-v2 (not pinned" in capsys.readouterr().out


def test_pinning_needs_the_api_credentials(settings, store, fitted):
    from tests.integration.test_api_errors import basic

    publish(store, fitted, "job-1")
    locked = Settings(model_store_uri=settings.model_store_uri, basic_auth_user="admin", basic_auth_pass="s3cret")
    with TestClient(create_app(locked)) as client:
        client.app.state.services._made["store"] = store
        for method in ("put", "delete", "get"):
            reply = client.request(method, f"/projects/{PROJECT}/serving", json={"version": "p5-v1"})
            assert reply.status_code == 401, (method, reply.text)
        assert stored_pin(store) is None
        reply = client.put(f"/projects/{PROJECT}/serving", json={"version": "p5-v1"}, headers=basic("admin", "s3cret"))
        assert reply.status_code == 200 and reply.json()["pinned"]["version"] == "p5-v1"


@pytest.mark.parametrize("given", ["²", "٢", "9" * 5000, "v2", "p5-v02"])
def test_the_serving_command_refuses_odd_version_names_in_one_line(store, fitted, settings, capsys, given):
    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    assert cli(["serving", "--project", PROJECT, "--pin", given, "--store", settings.model_store_uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not a model version of project 5" in err and "Traceback" not in err
    assert pins.read_pin(store, PROJECT).version is None


def test_the_openapi_schema_describes_the_bodies_read_by_hand(client):
    """Swagger UI's "Try it out" and generated clients need the request bodies."""
    paths = client.get("/openapi.json").json()["paths"]
    pin = paths["/projects/{project}/serving"]["put"]["requestBody"]
    assert pin["required"] is True and pin["content"]["application/json"]["schema"]["required"] == ["version"]
    run = paths["/projects/{project}/prediction-runs"]["post"]["requestBody"]
    assert run["required"] is False and {"only_missing", "auto_label", "label_config"} <= set(run["content"]["application/json"]["schema"]["properties"])
    assert {"get", "put", "delete"} <= set(paths["/projects/{project}/serving"])


def test_a_version_number_given_as_text_pins_too(client):
    assert client.put(f"/projects/{PROJECT}/serving", json={"version": " 2 "}).json()["version"] == "p5-v2"
    assert setup_version(client, {"model_version": "1"}) == "p5-v1"
    reply = client.put(f"/projects/{PROJECT}/serving", content=b"{", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and ": : " not in reply.json()["detail"], reply.text
