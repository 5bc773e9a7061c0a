"""``GET /projects/{id}/suspects`` on versions published with hand-made manifests: the stored
suspects of the serving version per control, ?control= and ?limit=, 404 before training, an
older version's empty answer with a note, and the same auth as every other endpoint."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from functions import versions
from functions.api.app import create_app
from functions.model.classifier import ModelParams, fit
from functions.model.export import to_compact
from functions.settings import Settings

PROJECT = "7"
SUSPECTS = [
    {"task": 41, "given": "Sport", "suggested": "Weather", "confidence": 0.93, "given_probability": 0.02, "text": "heavy rain all day"},
    {"task": 17, "given": "Weather", "suggested": "Sport", "confidence": 0.81, "given_probability": 0.11, "text": "a late goal"},
    {"task": None, "given": "Sport", "suggested": "Weather", "confidence": 0.66, "given_probability": 0.3, "text": "snow"},
]
MULTIPLE_NOTE = "suspect annotations are listed for single-choice controls only"


@pytest.fixture(scope="module")
def fitted():
    return fit(["good match", "great goal", "rain storm", "snow wind"], ["Sport", "Sport", "Weather", "Weather"], ModelParams())


@pytest.fixture
def settings(tmp_path):
    return Settings(model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0.0)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def publish(settings, fitted, job_id: str, controls: dict) -> str:
    store = create_app(settings).state.services.store
    return versions.publish(
        store, PROJECT, job_id, {"topic": fitted.pipeline}, {"topic": to_compact(fitted.pipeline)}, {"topic": fitted.classes},
        {"report": {"examples": 4, "controls": controls}}, settings=settings,
    )


def current_controls() -> dict:
    return {
        "topic": {"examples": 4, "labels": ["Sport", "Weather"], "suspects": SUSPECTS, "suspects_found": 61},
        "tags": {"examples": 4, "labels": ["a", "b"], "suspects": [], "suspects_found": 0, "suspects_note": MULTIPLE_NOTE},
    }


def test_before_the_first_training_the_answer_is_404_and_says_to_train(client):
    reply = client.get(f"/projects/{PROJECT}/suspects")
    assert reply.status_code == 404
    assert "Start Training" in reply.json()["detail"]


def test_the_serving_versions_stored_suspects_per_control(client, settings, fitted):
    version = publish(settings, fitted, "job-1", current_controls())
    reply = client.get(f"/projects/{PROJECT}/suspects")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "project": PROJECT,
        "version": version,
        "controls": {
            "topic": {"suspects": SUSPECTS, "found": 61},
            "tags": {"suspects": [], "found": 0, "note": MULTIPLE_NOTE},
        },
    }


def test_control_and_limit_narrow_the_answer(client, settings, fitted):
    publish(settings, fitted, "job-1", current_controls())
    reply = client.get(f"/projects/{PROJECT}/suspects", params={"control": "topic", "limit": 2})
    assert reply.status_code == 200, reply.text
    assert reply.json()["controls"] == {"topic": {"suspects": SUSPECTS[:2], "found": 61}}
    assert client.get(f"/projects/{PROJECT}/suspects", params={"limit": 500}).json()["controls"]["topic"]["suspects"] == SUSPECTS

    unknown = client.get(f"/projects/{PROJECT}/suspects", params={"control": "sentiment"})
    assert unknown.status_code == 404
    assert "sentiment" in unknown.json()["detail"] and "tags, topic" in unknown.json()["detail"]
    for limit in (0, 501, "all"):
        bad = client.get(f"/projects/{PROJECT}/suspects", params={"limit": limit})
        assert bad.status_code == 422 and "limit" in bad.json()["detail"]
    assert client.get("/projects/seven/suspects").status_code == 422


def test_the_newest_version_answers(client, settings, fitted):
    publish(settings, fitted, "job-1", current_controls())
    newer = dict(current_controls(), topic={"suspects": SUSPECTS[2:], "suspects_found": 1})
    version = publish(settings, fitted, "job-2", newer)
    body = client.get(f"/projects/{PROJECT}/suspects").json()
    assert body["version"] == version == f"p{PROJECT}-v2"
    assert body["controls"]["topic"] == {"suspects": SUSPECTS[2:], "found": 1}


def test_a_version_older_than_suspects_answers_empty_lists_and_a_note(client, settings, fitted):
    version = publish(settings, fitted, "job-1", {"topic": {"examples": 4, "labels": ["Sport", "Weather"], "dropped": 0}})
    reply = client.get(f"/projects/{PROJECT}/suspects")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["version"] == version
    assert body["controls"]["topic"]["suspects"] == [] and body["controls"]["topic"]["found"] is None
    assert version in body["note"] and "Start Training" in body["note"]


def test_the_endpoint_is_behind_basic_auth(settings, fitted):
    publish(settings, fitted, "job-1", current_controls())
    secured = Settings(model_store_uri=settings.model_store_uri, pointer_ttl_seconds=0.0, basic_auth_user="admin", basic_auth_pass="s3cret")
    good = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    with TestClient(create_app(secured)) as client:
        for headers in ({}, bad):
            reply = client.get(f"/projects/{PROJECT}/suspects", headers=headers)
            assert reply.status_code == 401 and "suspects" not in reply.text
        reply = client.get(f"/projects/{PROJECT}/suspects", headers=good)
        assert reply.status_code == 200 and reply.json()["controls"]["topic"]["found"] == 61
