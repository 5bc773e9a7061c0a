"""`python -m functions.cli connect` against the Label Studio stand-in (tests/ls_standin.py and
tests/ls_standin_ml.py, built from what a real Label Studio 1.23.2 answered: tests/ls_wire_runs/
60–142) and a real backend app under uvicorn with HTTP Basic credentials and a webhook secret.

The stand-in calls the backend's /health and /setup when a connection is saved or read, as Label
Studio does, and sends project events to its webhooks with their headers (`standin.ml.emit`)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from functions import credentials, label_studio_token
from functions.api.app import create_app
from functions.cli import main
from functions.cli.connect import DEFAULT_TITLE
from functions.label_studio import LabelStudioRefused, LabelStudioUnreachable
from functions.label_studio_admin import LabelStudioAdmin, LabelStudioBlockedUrl, LabelStudioUnexpected
from functions.settings import Settings
from tests.conftest import sample_config, sample_tasks
from tests.ls_standin import LEGACY_TOKEN, PERSONAL_ACCESS_TOKEN, LabelStudioStandIn, make_tasks
from tests.unit.test_credentials import secretsmanager  # noqa: F401 - the moto fixture
from tests.served import serve

PROJECT = 12
USER, PASSWORD, SECRET = "labelstudio", "connect-test-password-0123", "connect-test-webhook-secret-456789"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CONFIG = sample_config()
WIRE = Path(__file__).resolve().parents[1] / "ls_wire_runs"
SECRETS = (PERSONAL_ACCESS_TOKEN, LEGACY_TOKEN, PASSWORD, SECRET, BASIC.split()[1])
CLEARED = ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_API_KEY_SECRET", "CREDENTIALS_SECRET", "BASIC_AUTH_USER",
           "BASIC_AUTH_PASS", "WEBHOOK_SECRET", "MODEL_STORE_URI")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    """A store in which project 12 has one trained version, p12-v1 (for the Extra params pin)."""
    root = tmp_path_factory.mktemp("connect")
    export, config = root / "export.json", root / "config.xml"
    export.write_text(json.dumps(sample_tasks()), encoding="utf-8")
    config.write_text(CONFIG, encoding="utf-8")
    store = f"file://{root / 'store'}"
    assert main(["train", "--store", store, "--project", str(PROJECT), "--export", str(export), "--label-config", str(config), "-q"]) == 0
    return store


@pytest.fixture(scope="module")
def backend(store_uri) -> Iterator[str]:
    """The backend app, with Basic credentials and a webhook secret, on a loopback port."""
    settings = Settings(model_store_uri=store_uri, basic_auth_user=USER, basic_auth_pass=PASSWORD, webhook_secret=SECRET,
                        pointer_ttl_seconds=0)
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture()
def standin() -> Iterator[LabelStudioStandIn]:
    with LabelStudioStandIn(tasks={PROJECT: make_tasks(3)}, label_configs={PROJECT: CONFIG}, legacy_tokens=False) as server:
        yield server


@pytest.fixture()
def env(monkeypatch) -> dict[str, str]:
    """The command's environment: a personal access token and the backend's credentials."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    values = {"LABEL_STUDIO_API_KEY": PERSONAL_ACCESS_TOKEN, "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, "WEBHOOK_SECRET": SECRET}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def connect(capsys, standin: LabelStudioStandIn, backend: str, *extra: str) -> tuple[int, list[str], str]:
    """Run the command; (exit status, stdout lines, stderr). No secret may appear in either."""
    status = main(["connect", "--label-studio-url", standin.url, "--project", str(PROJECT), "--backend-url", backend, *extra])
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out and secret not in err, "a secret was printed"
    return status, out.splitlines(), err


def connections(standin: LabelStudioStandIn) -> list[dict[str, Any]]:
    return [dict(c) for _, c in sorted(standin.ml.connections.items())]


def webhooks(standin: LabelStudioStandIn) -> list[dict[str, Any]]:
    return [dict(w) for _, w in sorted(standin.ml.webhooks.items())]


def annotation_event(task: int, annotation: int) -> dict[str, Any]:
    """What Label Studio 1.23.2 sends with ANNOTATION_CREATED (shared/ls_wire/09, trimmed)."""
    return {"project": {"id": PROJECT, "label_config": CONFIG},
            "task": {"id": task, "data": {"text": "The striker scored twice in the cup final"}},
            "annotation": {"id": annotation, "task": task, "was_cancelled": False, "ground_truth": False,
                           "updated_at": "2026-12-03T10:00:00.000000Z",
                           "result": [{"from_name": "topic", "to_name": "news", "type": "choices", "value": {"choices": ["Sport"]}}]}}


def project_status(backend: str) -> dict[str, Any]:
    return httpx.get(f"{backend}/projects/{PROJECT}", auth=(USER, PASSWORD)).json()


# -- create, update, verify ------------------------------------------------------------------------


def test_connect_creates_the_connection_sets_the_webhook_header_verifies_and_reruns_without_creating(capsys, standin, backend, env):
    status, out, err = connect(capsys, standin, backend)
    assert status == 0, (out, err)
    (connection,) = connections(standin)
    assert {k: connection[k] for k in ("project", "url", "auth_method", "basic_auth_user", "basic_auth_pass", "title", "is_interactive",
                                       "extra_params", "state", "model_version")} == {
        "project": PROJECT, "url": backend, "auth_method": "BASIC_AUTH", "basic_auth_user": USER, "basic_auth_pass": PASSWORD,
        "title": DEFAULT_TITLE, "is_interactive": False, "extra_params": None, "state": "CO", "model_version": "p12-v1"}
    (webhook,) = webhooks(standin)  # the one the stand-in made with the connection, as Label Studio does
    assert (webhook["url"], webhook["headers"], webhook["send_for_all_actions"], webhook["is_active"]) == (
        f"{backend}/webhook", {"X-Webhook-Secret": SECRET}, True, True)
    assert out[:4] == [
        f"Label Studio {standin.url}, project {PROJECT} 'Project {PROJECT}' (personal access token)",
        f"backend {backend} (what Label Studio calls), Basic auth user 'labelstudio'",
        "✓ backend /health: UP",
        "✓ backend /setup with Basic auth: model_version p12-v1",
    ]
    assert out[4] == f"connection 1: created ({backend}, BASIC_AUTH user 'labelstudio', title '{DEFAULT_TITLE}')"
    assert out[5] == f"webhook 1 {backend}/webhook: headers set (X-Webhook-Secret)"
    assert out[6] == "✓ Label Studio reaches the backend: connection 1 Connected, model_version p12-v1"
    assert out[7] == "✓ test webhook with the webhook's headers (webhook 1): 201 status: ok, deleted: 0"
    assert out[8].startswith(f"✓ backend knows project {PROJECT}: serving p12-v1, annotation log 0 task(s), connected at 20")
    assert out[9:] == [f"connected: project {PROJECT} → {backend} (connection 1, webhook 1)"]
    assert all(call["authorization"] == "Basic" for call in standin.ml.backend_calls)

    status, again, _ = connect(capsys, standin, backend)  # re-run: updates the same connection, creates nothing
    assert status == 0
    assert again[4] == f"connection 1: updated ({backend}, BASIC_AUTH user 'labelstudio', title '{DEFAULT_TITLE}')"
    assert again[5] == f"webhook 1 {backend}/webhook: unchanged (already sends X-Webhook-Secret)"
    assert [c["id"] for c in connections(standin)] == [1] and [w["id"] for w in webhooks(standin)] == [1]

    # The point of it: annotations saved in Label Studio now reach the annotation log.
    assert standin.ml.emit(PROJECT, "ANNOTATION_CREATED", annotation_event(task=1, annotation=501)) == [(1, 201)]
    assert project_status(backend)["annotation_log"]["tasks"] == 1


def test_without_a_webhook_secret_the_webhook_carries_basic_auth_and_other_headers_and_actions_are_kept(capsys, standin, backend, env,
                                                                                                          monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET")
    hook = standin.ml.add_webhook(PROJECT, f"{backend}/webhook", send_for_all_actions=False,
                                  actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED"], headers={"X-Trace": "yes"})
    status, out, err = connect(capsys, standin, backend, "--title", "News model")
    assert status == 0, (out, err)
    (webhook,) = webhooks(standin)  # Label Studio made no second one: one already called <url>/webhook
    assert webhook["id"] == hook["id"] and webhook["headers"] == {"X-Trace": "yes", "Authorization": BASIC}
    assert webhook["actions"] == ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"] and webhook["send_for_all_actions"] is False
    assert f"webhook 1 {backend}/webhook: headers set (Authorization: Basic)" in out
    assert connections(standin)[0]["title"] == "News model"
    assert standin.ml.emit(PROJECT, "ANNOTATION_CREATED", annotation_event(task=2, annotation=502)) == [(1, 201)]
    assert standin.ml.emit(PROJECT, "ANNOTATIONS_DELETED", {"project": {"id": PROJECT}, "annotations": [{"id": 502}]}) == []


def test_a_legacy_token_works_when_the_organisation_allows_it(capsys, backend, env, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LEGACY_TOKEN)
    with LabelStudioStandIn(tasks={PROJECT: make_tasks(2)}, label_configs={PROJECT: CONFIG}, legacy_tokens=True) as standin:
        status, out, err = connect(capsys, standin, backend)
        assert status == 0, (out, err)
        assert out[0].endswith("(legacy token)") and len(connections(standin)) == 1
        sent = {r.get("authorization") for r in standin.requests if r["path"].startswith("/api/")} - {None}
        assert sent == {f"Token {LEGACY_TOKEN}"}


def test_an_existing_connection_to_another_url_is_updated_and_gets_a_webhook(capsys, standin, backend, env):
    old = standin.ml.add_connection(PROJECT, "http://old-backend.invalid:9090", title="old", extra_params={"threshold": 1})
    status, out, err = connect(capsys, standin, backend)
    assert status == 0, (out, err)
    (connection,) = connections(standin)
    assert (connection["id"], connection["url"], connection["title"], connection["extra_params"]) == (old, backend, "old", {"threshold": 1})
    assert f"connection {old}: updated ({backend}, BASIC_AUTH user 'labelstudio', title 'old', extra_params {{\"threshold\": 1}}, " \
           "url was http://old-backend.invalid:9090)" in out
    (webhook,) = webhooks(standin)  # Label Studio makes none for a changed url: the command did
    assert webhook["url"] == f"{backend}/webhook" and webhook["headers"] == {"X-Webhook-Secret": SECRET}
    assert f"webhook {webhook['id']} {backend}/webhook: created for all actions (X-Webhook-Secret)" in out


def test_extra_params_pin_a_version_and_are_kept_on_the_next_run(capsys, standin, backend, env):
    status, out, _ = connect(capsys, standin, backend, "--extra-params", '{"model_version": "p12-v1"}')
    assert status == 0 and connections(standin)[0]["extra_params"] == {"model_version": "p12-v1"}
    assert project_status(backend)["serving"]["pinned"]["source"] == "label_studio"
    assert connect(capsys, standin, backend)[0] == 0  # no --extra-params: kept, so the pin holds
    assert connections(standin)[0]["extra_params"] == {"model_version": "p12-v1"}
    assert project_status(backend)["serving"]["pinned"]["version"] == "p12-v1"
    assert connect(capsys, standin, backend, "--extra-params", "null")[0] == 0
    assert connections(standin)[0]["extra_params"] is None and project_status(backend)["serving"]["pinned"] is None


def test_dry_run_changes_nothing(capsys, standin, backend, env):
    status, out, _ = connect(capsys, standin, backend, "--dry-run")
    assert status == 0
    assert out[2:] == [
        "✓ backend /health: UP",
        "✓ backend accepts the Basic credentials: GET /projects/12: 200",
        "dry run: nothing was changed; this would:",
        f"  create a connection to {backend} (Basic auth, title '{DEFAULT_TITLE}', extra_params null)",
        f"  use the webhook Label Studio makes with the connection: {backend}/webhook, all actions, header X-Webhook-Secret",
    ]
    assert connections(standin) == [] and webhooks(standin) == []
    assert not [r for r in standin.requests if r["method"] in ("POST", "PATCH", "DELETE") and r["path"] != "/api/token/refresh/"]


def test_a_dry_run_after_connecting_says_the_webhook_stays_as_it_is(capsys, standin, backend, env):
    assert connect(capsys, standin, backend)[0] == 0
    status, out, _ = connect(capsys, standin, backend, "--dry-run")
    assert status == 0 and any(line.startswith("  leave webhook ") and "(it already sends X-Webhook-Secret)" in line for line in out), out
    assert not any("set the X-Webhook-Secret header" in line for line in out)


def test_in_aws_the_credentials_and_the_token_come_from_secrets_manager(capsys, standin, backend, env, monkeypatch,
                                                                        secretsmanager):  # noqa: F811
    """What the deployment holds (moto): the credentials secret (--credentials-secret) and the token secret."""
    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "WEBHOOK_SECRET", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(name)
    value = {"basic_auth_user": USER, "basic_auth_pass": PASSWORD, "webhook_secret": SECRET}
    credentials_arn = secretsmanager.create_secret(Name="ls-textcls-prod-credentials", SecretString=json.dumps(value))["ARN"]
    token_arn = secretsmanager.create_secret(Name="ls-textcls-prod-label-studio-token", SecretString=PERSONAL_ACCESS_TOKEN)["ARN"]
    monkeypatch.setenv("LABEL_STUDIO_API_KEY_SECRET", token_arn)
    try:
        status, out, err = connect(capsys, standin, backend, "--credentials-secret", credentials_arn)
    finally:
        credentials.reset_cache()
        label_studio_token._cache.clear()
    assert status == 0, (out, err)
    assert connections(standin)[0]["basic_auth_pass"] == PASSWORD
    assert webhooks(standin)[0]["headers"] == {"X-Webhook-Secret": SECRET}


# -- what goes wrong -------------------------------------------------------------------------------


def test_a_wrong_personal_access_token_is_a_clear_error(capsys, standin, backend, env, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", PERSONAL_ACCESS_TOKEN[:-4] + "AAAA")
    status, out, err = connect(capsys, standin, backend)
    assert (status, out) == (1, [])
    assert err == (f"error: Label Studio at {standin.url} answered 401 to the token refresh: the token is not a valid personal "
                   "access token of this Label Studio (Account & Settings → Personal Access Token)\n")


def test_a_disabled_legacy_token_says_what_to_do(capsys, standin, backend, env, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LEGACY_TOKEN)
    status, _, err = connect(capsys, standin, backend)
    assert status == 1
    assert f"answered 401 to project {PROJECT}: legacy tokens are disabled in this organisation" in err
    assert "use a personal access token" in err and '{"legacy_api_tokens_enabled": true}' in err


def test_an_unknown_project_is_a_clear_error(capsys, standin, backend, env):
    status = main(["connect", "--label-studio-url", standin.url, "--project", "99", "--backend-url", backend])
    assert status == 1
    assert capsys.readouterr().err == (f"error: Label Studio at {standin.url} answered 404 to project 99: not found (check the id "
                                       "and that the token's user belongs to its organisation)\n")


def test_label_studio_unreachable(capsys, standin, backend, env):
    standin.stop()
    status, _, err = connect(capsys, standin, backend)
    assert status == 1 and err.startswith(f"error: could not reach Label Studio at {standin.url} (ConnectError)")


def test_backend_unreachable_leaves_label_studio_unchanged(capsys, standin, env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    status, out, _ = connect(capsys, standin, closed)
    assert status == 1
    assert out[2].startswith(f"✗ backend /health: cannot reach {closed} (ConnectError: ")
    assert out[3:] == ["Label Studio left unchanged: fix what the check above says, then run this command again"]
    assert connections(standin) == [] and webhooks(standin) == []


def test_a_wrong_backend_password_fails_the_setup_check_and_changes_nothing(capsys, standin, backend, env, monkeypatch):
    monkeypatch.setenv("BASIC_AUTH_PASS", "not-the-password")
    status, out, _ = connect(capsys, standin, backend)
    assert status == 1
    assert out[3].startswith("✗ backend /setup with Basic auth: 401: missing or wrong HTTP Basic credentials")
    assert out[3].endswith("(use the backend's BASIC_AUTH_USER / BASIC_AUTH_PASS, or in AWS the credentials secret)")
    assert connections(standin) == []


def test_a_pin_of_an_unknown_version_is_refused_by_the_setup_check(capsys, standin, backend, env):
    status, out, _ = connect(capsys, standin, backend, "--extra-params", '{"model_version": "p12-v9"}')
    assert status == 1 and out[3].startswith("✗ backend /setup with Basic auth: 422: Extra params: ")
    assert "p12-v9" in out[3] and connections(standin) == []


def test_label_studio_refusing_a_loopback_backend_says_how_to_start_it(capsys, standin, backend, env):
    standin.ml.ml_block_local_ip = standin.ml.ssrf_protection = True
    status, out, err = connect(capsys, standin, backend)
    assert status == 1 and connections(standin) == []
    assert err.startswith(f"error: Label Studio refuses to call {backend}: it resolves to a loopback or private address.")
    assert "ML_BLOCK_LOCAL_IP=false (the connection) and SSRF_PROTECTION_ENABLED=false (its webhook)" in err


def test_ssrf_protection_alone_saves_the_connection_without_webhook_and_a_rerun_finishes_the_job(capsys, standin, backend, env):
    standin.ml.ssrf_protection = True  # Label Studio started with ML_BLOCK_LOCAL_IP=false only
    status, out, err = connect(capsys, standin, backend)
    assert status == 1 and "SSRF_PROTECTION_ENABLED=false" in err
    assert "connection 1: saved by Label Studio, but it refused to create its webhook" in out
    assert [c["id"] for c in connections(standin)] == [1] and webhooks(standin) == []
    standin.ml.ssrf_protection = False  # restarted as the message says
    status, out, _ = connect(capsys, standin, backend)
    assert status == 0 and "connection 1: updated" in out[4] and [c["id"] for c in connections(standin)] == [1]
    assert [w["url"] for w in webhooks(standin)] == [f"{backend}/webhook"]


def test_several_connections_need_a_choice(capsys, standin, backend, env):
    first = standin.ml.add_connection(PROJECT, "http://a.invalid:9090", title="a")
    second = standin.ml.add_connection(PROJECT, "http://b.invalid:9090", title="b")
    status, _, err = connect(capsys, standin, backend)
    assert status == 1
    assert err == (f"error: project {PROJECT} has 2 connections, none to {backend} ({first}: http://a.invalid:9090 'a'; "
                   f"{second}: http://b.invalid:9090 'b'): pass --connection ID to update one of them\n")
    status, out, _ = connect(capsys, standin, backend, "--connection", str(second))
    assert status == 0 and [c["url"] for c in connections(standin)] == ["http://a.invalid:9090", backend]
    assert connect(capsys, standin, backend)[0] == 0  # now one of them calls the URL: no choice needed
    assert len(connections(standin)) == 2 and len(webhooks(standin)) == 1


def test_label_studio_that_cannot_reach_the_backend_url_is_explained(capsys, standin, backend, env):
    # This machine reaches the backend at --check-url; Label Studio would call an address it cannot reach.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    status, out, err = connect(capsys, standin, closed, "--check-url", backend)
    assert status == 1 and out[1] == f"backend {closed} (what Label Studio calls, checked from here at {backend}), Basic auth user 'labelstudio'"
    assert out[3] == "✓ backend /setup with Basic auth: model_version p12-v1"
    assert f"answered 400 to creating the connection: Can't connect to ML backend {closed}, health check failed." in err
    assert f"This command reached the backend, Label Studio did not: {closed} must work from where Label Studio runs" in err
    status, _, err = connect(capsys, standin, "http://unreachable.invalid:9090", "--check-url", backend)
    assert status == 1 and "answered 500 to creating the connection: Can't resolve hostname unreachable.invalid. This command" in err
    assert connections(standin) == []


@pytest.mark.parametrize("argv, message", [
    (["--backend-url", "localhost:9090"], "--backend-url must be an http:// or https:// URL, got 'localhost:9090'"),
    (["--backend-url", "http://h:1/?x=1"], "--backend-url must not have a query string or fragment"),
    (["--backend-url", "http://u:secret@h:1"], "--backend-url must not hold a user or password"),
])
def test_malformed_urls(capsys, standin, env, argv, message):
    status = main(["connect", "--label-studio-url", standin.url, "--project", str(PROJECT), *argv])
    assert status == 1 and capsys.readouterr().err.startswith(f"error: {message}")


def test_missing_credentials(capsys, standin, backend, env, monkeypatch):
    monkeypatch.delenv("BASIC_AUTH_PASS")
    assert connect(capsys, standin, backend)[2] == "error: no backend password: set BASIC_AUTH_PASS (or CREDENTIALS_SECRET) as the backend has it\n"
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    assert connect(capsys, standin, backend)[2].startswith("error: no Label Studio token: set LABEL_STUDIO_API_KEY (or pass --token)")


@pytest.mark.parametrize("status, body, error, message", [
    (403, {"detail": "You do not have permission to perform this action."}, LabelStudioRefused,
     "answered 403 to project 12: the token's user may not do this (You do not have permission to perform this action.)"),
    (403, {"detail": "URL resolves to a reserved network address (block: 10.0.0.0/8)"}, LabelStudioBlockedUrl,
     "answered 403 to project 12: URL resolves to a reserved network address (block: 10.0.0.0/8)"),
    (502, {"detail": "Bad gateway"}, LabelStudioUnreachable, "answered 502 to project 12: Bad gateway"),
    (200, b"<html>login</html>", LabelStudioUnreachable, "answered project 12 with something that is not JSON"),
])
def test_other_label_studio_answers_map_to_errors_that_say_what_happened(status, body, error, message):
    """A 403 for permissions (not captured: every member of an open-source organisation may do everything) and proxies."""
    def reply(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"content-type": "text/html" if isinstance(body, bytes) else "application/json"})

    admin = LabelStudioAdmin("http://ls.test", LEGACY_TOKEN, transport=httpx.MockTransport(reply))
    with pytest.raises(error) as raised:
        admin.project(PROJECT)
    assert message in str(raised.value) and LEGACY_TOKEN not in str(raised.value)


# -- the stand-in answers as Label Studio 1.23.2 did ----------------------------------------------


def replay(standin: LabelStudioStandIn, backend: str, name: str) -> tuple[httpx.Response, dict[str, Any]]:
    """Send capture `name`'s request to the stand-in (the capture's backend replaced by `backend`);
    the reply and the capture."""
    text = (WIRE / f"{name}.json").read_text(encoding="utf-8").replace("http://127.0.0.1:9787", backend)
    capture = json.loads(text.replace("<PASSWORD>", PASSWORD))
    request = capture["request"]
    access = httpx.post(f"{standin.url}/api/token/refresh/", json={"refresh": PERSONAL_ACCESS_TOKEN}).json()["access"]
    reply = httpx.request(request["method"], standin.url + request["path"], params=request["query"], json=request["json"],
                          headers={"Authorization": f"Bearer {access}"})
    return reply, capture


@pytest.mark.parametrize("name", [
    "62_ml_list_unknown_project", "66_ml_create_wrong_password", "68_ml_create_basic_auth_without_password",
    "69_ml_create_unknown_project", "70_ml_patch_full", "71_ml_patch_without_password", "72_ml_patch_title_only",
    "80_ml_patch_url_project_only", "92_webhooks_list_unknown_project", "94_webhook_create_unknown_project",
    "95_webhook_get_unknown", "97_webhook_headers_not_object", "104_project_unknown", "142_ml_create_unresolvable_host",
])
def test_the_standin_answers_errors_as_label_studio_did(backend, name):
    with LabelStudioStandIn(tasks={1: make_tasks(2), 4: []}, label_configs={1: CONFIG, 4: CONFIG}) as standin:  # the captures' projects
        standin.ml.add_connection(1, backend, auth_method="BASIC_AUTH", basic_auth_user=USER, basic_auth_pass=PASSWORD)
        standin.ml.add_webhook(1, f"{backend}/webhook")
        reply, capture = replay(standin, backend, name)
        body = reply.json()
        assert reply.status_code == capture["status"]
        assert (body.get("detail"), body.get("validation_errors")) == (capture["body"]["detail"], capture["body"].get("validation_errors"))


def test_the_standin_creates_and_patches_as_label_studio_did(backend):
    with LabelStudioStandIn(tasks={1: make_tasks(2)}, label_configs={1: CONFIG}) as standin:
        reply, capture = replay(standin, backend, "63_ml_create_basic_auth")
        assert reply.status_code == 201 and reply.json().keys() == capture["body"].keys()
        assert {k: reply.json()[k] for k in ("state", "readable_state", "auth_method", "basic_auth_pass_is_set", "title")} == {
            k: capture["body"][k] for k in ("state", "readable_state", "auth_method", "basic_auth_pass_is_set", "title")}
        listed, capture = replay(standin, backend, "64_webhooks_list_project")
        assert [{k: w[k] for k in ("url", "headers", "send_for_all_actions", "actions")} for w in listed.json()] == [
            {k: w[k] for k in ("url", "headers", "send_for_all_actions", "actions")} for w in capture["body"]]
        reply, capture = replay(standin, backend, "87_webhook_create_some_actions")
        assert reply.json()["actions"] == capture["body"]["actions"]
        reply, capture = replay(standin, backend, "88_webhook_patch_headers_only_actions")  # actions are wiped
        assert (reply.json()["actions"], reply.json()["headers"]) == (capture["body"]["actions"], capture["body"]["headers"])
        reply, capture = replay(standin, backend, "76_ml_patch_trailing_slash")  # an HTML 404
        assert (reply.status_code, reply.headers["content-type"]) == (404, "text/html; charset=utf-8") == (capture["status"], capture["headers"]["content-type"])


# --- replies no Label Studio should give: one clear error, never a traceback or a secret ---------------


def _admin(reply: httpx.Response) -> LabelStudioAdmin:
    return LabelStudioAdmin("http://ls.invalid", "0" * 40, transport=httpx.MockTransport(lambda request: reply))


@pytest.mark.parametrize("body", [b"[]", b"null", b'"text"', b"{}", b'{"id": "7"}', b'{"id": true}', b"[" * 50_000 + b"]" * 50_000])
def test_a_project_reply_that_is_not_a_record_is_one_clear_error(body):
    with pytest.raises(LabelStudioUnexpected, match="answered project 12 with (JSON that is not a record with an id|something that is not JSON)"):
        _admin(httpx.Response(200, content=body, headers={"content-type": "application/json"})).project(12)


def test_list_replies_keep_only_records_and_coerce_urls():
    body = b'[{"id": 3, "url": null}, {"id": "x"}, 5, {"id": 4, "url": "http://b/webhook"}]'
    found = _admin(httpx.Response(200, content=body, headers={"content-type": "application/json"})).webhooks(12)
    assert found == [{"id": 3, "url": ""}, {"id": 4, "url": "http://b/webhook"}]
    with pytest.raises(LabelStudioUnexpected, match="with JSON that is not a list"):
        _admin(httpx.Response(200, json={"results": []})).connections(12)


def test_an_error_that_quotes_the_request_never_shows_the_password():
    echo = {"detail": "Validation error", "validation_errors": {"non_field_errors": ['bad body {"basic_auth_pass": "s3cret-pw"}']}}
    with pytest.raises(LabelStudioRefused) as raised:
        _admin(httpx.Response(400, json=echo)).create_connection({"project": 12, "url": "http://b", "basic_auth_pass": "s3cret-pw"})
    assert "s3cret-pw" not in str(raised.value) and "<hidden>" in str(raised.value)
    with pytest.raises(LabelStudioUnreachable) as raised:  # a 5xx
        _admin(httpx.Response(500, json={"detail": "header X-Webhook-Secret: hook-secret-1"})).update_webhook(
            4, {"headers": {"X-Webhook-Secret": "hook-secret-1"}})
    assert "hook-secret-1" not in str(raised.value)


def test_a_reply_that_trickles_in_forever_ends_at_the_deadline():
    """httpx bounds each read; a Label Studio that sends a byte every 0.2 s never trips that."""
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def trickle() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        with contextlib.suppress(OSError):
            for byte in itertools.cycle(b"HTTP/1.1 200 OK\r\nX-Slow: "):
                if stop.is_set():
                    break
                connection.sendall(bytes([byte]))
                time.sleep(0.2)
        connection.close()

    threading.Thread(target=trickle, daemon=True).start()
    admin = LabelStudioAdmin(f"http://127.0.0.1:{listener.getsockname()[1]}", "0" * 40, timeout=1.0, deadline=1.5)
    started = time.monotonic()
    try:
        with pytest.raises(LabelStudioUnreachable, match=r"did not finish answering GET /api/projects/12 within 1.5 s"):
            admin.project(12)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        listener.close()
