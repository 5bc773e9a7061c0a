"""GET /projects/{id}/versions/{version} through the app: JSON manifest or HTML model card by the
Accept header, behind Basic auth, charts only when charts.json matches the signed manifest,
404 for what is not a published version."""

from __future__ import annotations

import base64
import os

import pytest
from fastapi.testclient import TestClient

from functions import keys, signing, versions
from functions.api.app import create_app
from functions.api.routes.model_card import prefers_html, stored_charts
from functions.model_card.charts import render_charts
from functions.settings import Settings
from functions.store import LocalStore, open_store
from tests.card_samples import MATRIX, SCRIPT, control_report, manifest_body, publish_card

PROJECT, USER, PASSWORD = "5", "card", "card-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
HTML = AUTH | {"Accept": BROWSER}


@pytest.fixture
def settings(tmp_path):
    return Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user=USER, basic_auth_pass=PASSWORD)


@pytest.fixture
def store(settings):
    return open_store(settings.model_store_uri)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def version(store, settings):
    return publish_card(store, PROJECT, "job-1", manifest_body(), {"topic": render_charts(control_report())}, settings=settings)


def test_json_is_the_signed_manifest(client, store, settings, version):
    for headers in [AUTH, AUTH | {"Accept": "application/json"}, AUTH | {"Accept": "*/*"}]:
        reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["vary"] == "Accept"
        assert reply.json() == versions.verified_manifest(store, PROJECT, version, signing.signer_for(store, settings))
    body = reply.json()
    assert body["version"] == version == "p5-v1" and body["report"]["controls"]["topic"]["quality"]["accuracy"] == 0.8814
    assert body["charts_sha256"]


def test_a_browser_gets_the_model_card(client, version):
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=HTML)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    assert reply.headers["x-content-type-options"] == "nosniff" and reply.headers["vary"] == "Accept"
    page = reply.text
    assert f"<title>Model card {version} (project {PROJECT})</title>" in page
    assert page.count("<svg") == 3 and "not shown" not in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert all(f">{n}</text>" in page for row in MATRIX for n in row)


@pytest.mark.parametrize("accept", ["text/html", BROWSER, "text/html;q=0.9, application/json;q=0.5", "text/*"])
def test_accept_headers_that_prefer_html_get_html(client, version, accept):
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=AUTH | {"Accept": accept})
    assert reply.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "accept, html",
    [("", False), ("*/*", False), ("application/json", False), ("application/json, text/html", False),
     ("text/html;q=0", False), ("text/html;q=0.5, application/json", False), ("application/*;q=0.2, text/html;q=0.3", True),
     ("text/html;q=garbage", False), ("TEXT/HTML", True), ("text/html, */*;q=0.1", True), ("text/plain", False),
     ("image/png, text/*;q=0.4, */*;q=0.3", True), (",,;;/", False)],
)
def test_accept_negotiation(accept, html):
    assert prefers_html(accept) is html


@pytest.mark.parametrize("headers", [{}, {"Accept": BROWSER}, {"Accept": BROWSER, "Authorization": "Basic " + base64.b64encode(b"card:wrong").decode()}])
def test_no_or_wrong_credentials_are_401(client, version, headers):
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Basic ")
    assert "Model card" not in reply.text


@pytest.mark.parametrize(
    "path, status",
    [
        ("/projects/5/versions/p5-v2", 404),  # not published
        ("/projects/6/versions/p6-v1", 404),  # unknown project
        ("/projects/5/versions/p6-v1", 404),  # another project's name
        ("/projects/5/versions/v1", 404),
        ("/projects/5/versions/p5-v01", 404),
        ("/projects/5/versions/p5-v1%0A", 404),
        ("/projects/5/versions/manifest.json", 404),
        ("/projects/abc/versions/p5-v1", 422),
    ],
)
def test_what_is_not_a_published_version_is_a_client_error_with_a_detail(client, version, path, status):
    for headers in (AUTH, HTML):
        reply = client.get(path, headers=headers)
        assert reply.status_code == status, (path, reply.text)
        assert reply.json()["detail"]


def test_a_half_published_version_is_not_found(client, store, version):
    os.remove(store.root / keys.version_object(PROJECT, version, "signature.json"))
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=AUTH)
    assert reply.status_code == 404 and "has no published version p5-v1" in reply.json()["detail"]


def test_a_forged_manifest_is_refused_without_a_traceback(client, store, version):
    key = keys.version_object(PROJECT, version, "manifest.json")
    store.put_json(key, store.get_json(key) | {"job_id": "someone else"})
    for headers in (AUTH, HTML):
        reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=headers)
        assert reply.status_code == 500 and "fails verification" in reply.json()["detail"]
        assert "Traceback" not in reply.text


def charts_key(version: str) -> str:
    return keys.version_object(PROJECT, version, "charts.json")


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda store, key: os.remove(store.root / key), "is missing from the store"),
        (lambda store, key: store.put(key, store.get(key).data.replace(b"Business", b"Pleasure")), "does not match the checksum"),
        (lambda store, key: store.put(key, b'{"topic": {"confusion": "<svg>'), "does not match the checksum"),
    ],
)
def test_missing_or_altered_charts_give_the_page_without_charts_and_a_note(client, store, version, damage, why):
    damage(store, charts_key(version))
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=HTML)
    assert reply.status_code == 200, reply.text
    assert why in reply.text and "<svg" not in reply.text and "Pleasure" not in reply.text
    assert "88.1\u00a0%" in reply.text  # the rest of the card is there


def test_a_version_published_without_charts_gets_a_card_that_says_so(client, store, settings):
    old = manifest_body({"examples": 40, "labels": {"a": 20, "b": 20}, "dropped": {}, "quality": {"pending": "later"}})
    version = publish_card(store, PROJECT, "job-old", old, None, settings=settings)
    reply = client.get(f"/projects/{PROJECT}/versions/{version}", headers=HTML)
    assert reply.status_code == 200, reply.text
    assert "published without charts" in reply.text and "Not recorded in this version" in reply.text


def test_charts_that_match_but_are_not_an_object_of_charts_are_left_out(tmp_path):
    store = LocalStore(tmp_path)
    data = b'["not", "charts"]'
    store.put(keys.version_object(PROJECT, "p5-v1", "charts.json"), data)
    import hashlib

    charts, note = stored_charts(store, PROJECT, "p5-v1", {"charts_sha256": hashlib.sha256(data).hexdigest()})
    assert charts == {} and "is not a JSON object of charts" in note
    good = b'{"topic": {"confusion": "<svg/>", "reliability": 3}, "other": "x"}'
    store.put(keys.version_object(PROJECT, "p5-v1", "charts.json"), good)
    charts, note = stored_charts(store, PROJECT, "p5-v1", {"charts_sha256": hashlib.sha256(good).hexdigest()})
    assert charts == {"topic": {"confusion": "<svg/>"}} and note is None


def test_the_route_is_in_the_openapi_schema(client):
    paths = client.get("/openapi.json", headers=AUTH).json()["paths"]
    assert set(paths["/projects/{project}/versions/{version}"]["get"]["responses"]["200"]["content"]) == {"application/json", "text/html"}


def test_the_hostile_label_is_text_in_the_card_not_markup(client, version):
    page = client.get(f"/projects/{PROJECT}/versions/{version}", headers=HTML).text
    assert SCRIPT not in page
