"""Bad input gets a 4xx with a `detail` that says what to fix; nothing stored is lost; no
client ever sees a traceback; Basic auth guards every endpoint when configured."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.errors import StoreUnavailable
from functions.settings import Settings
from functions.store import LocalStore
from tests.conftest import sample_config, sample_tasks

CONFIG = sample_config()
TASK = {"id": 1, "data": {"text": "rain tomorrow"}}


def test_broken_json_is_a_422_that_says_so(client):
    reply = client.post("/predict", content=b'{"tasks": [', headers={"content-type": "application/json"})
    assert reply.status_code == 422 and "JSON decode error" in reply.json()["detail"]


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"project": "1.2", "label_config": CONFIG}, "body.tasks: Field required"),
        ({"tasks": {"id": 1}, "project": "1.2", "label_config": CONFIG}, "body.tasks: Input should be a valid list"),
        ({"tasks": [{"data": "text"}], "project": "1.2", "label_config": CONFIG}, "body.tasks.0.data"),
        ({"tasks": [TASK], "label_config": CONFIG}, "body.project: Field required"),
        ({"tasks": [TASK], "project": "../../etc", "label_config": CONFIG}, "project must be a Label Studio project id"),
        ({"tasks": [TASK], "project": "1.2", "label_config": "<View><Image name='i' value='$img'/></View>"}, "supports one or more <Choices>"),
        ({"tasks": [TASK], "project": "1.2", "label_config": "<View"}, "not valid XML"),
    ],
)
def test_malformed_predict_requests_get_a_detail_naming_the_problem(client, body, detail):
    reply = client.post("/predict", json=body)
    assert reply.status_code == 422
    assert detail in reply.json()["detail"]


def test_unknown_fields_are_accepted_everywhere(client):
    body = {"tasks": [TASK | {"new_field": [1]}], "project": "1.2", "label_config": CONFIG, "params": {}, "added_in_1_24": True}
    assert client.post("/predict", json=body).status_code == 200
    assert client.post("/setup", json={"project": "1.2", "schema": CONFIG, "new": 1}).status_code == 200


@pytest.mark.parametrize("project", [True, [1], 1.5, "١٢", "7.1.2"])
def test_setup_refuses_project_ids_of_other_types(client, project):
    reply = client.post("/setup", json={"project": project, "schema": CONFIG})
    assert reply.status_code == 422 and "project must be" in reply.json()["detail"]


def test_a_huge_label_config_is_refused_before_parsing(client):
    config = "<View>" + "<Choice value='x'/>" * 60_000 + "</View>"
    reply = client.post("/predict", json={"tasks": [TASK], "project": "1.2", "label_config": config})
    assert reply.status_code == 422 and "reads at most 1,000,000" in reply.json()["detail"]


def test_setup_succeeds_even_for_a_config_the_backend_cannot_use(client):
    reply = client.post("/setup", json={"project": "7.1", "schema": "<View><Image name='i' value='$img'/></View>"})
    assert reply.json() == {"model_version": "untrained"}


@pytest.mark.parametrize(
    "body, status, detail",
    [
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"id": 5, "task": 5, "result": 7}}, 422, "annotation.result must be a list"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"id": 5, "task": 10**300}}, 422, "an integer of 997 bits"),
        ({"action": "SOMETHING_NEW", "project": {"id": 1}}, 200, None),
        ({"project": {"id": 1}}, 422, "body.action: Field required"),
        ({"action": "START_TRAINING", "project": {"id": 1}}, 422, "needs project.label_config"),
        ({"action": "START_TRAINING", "project": {"id": "x", "label_config": CONFIG}}, 422, "project must be"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}}, 422, "needs an 'annotation' object"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"id": "9", "task": 1}}, 422, "annotation.id must be"),
        ({"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": None}]}, 422, "annotations[].id"),
    ],
)
def test_webhook_bodies(client, body, status, detail):
    reply = client.post("/webhook", json=body)
    assert reply.status_code == status
    if detail:
        assert detail in reply.json()["detail"]
    else:
        assert reply.json() == {"status": "ignored", "action": "SOMETHING_NEW"}


def test_a_bad_train_request_stages_nothing(client, settings):
    store = client.app.state.services.store
    assert client.post("/train", json={"project": "1.2", "label_config": CONFIG}).status_code == 422
    reply = client.post("/train", json={"annotations": sample_tasks(), "project": "1.2", "label_config": "<View/>"})
    assert reply.status_code == 422 and "no whole-text classification control" in reply.json()["detail"]
    reply = client.post("/train", content=b"not json", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and "/train expects Label Studio's JSON" in reply.json()["detail"]
    reply = client.post("/train", json={"annotations": [], "project": "1.2"})
    assert reply.status_code == 422 and reply.json()["detail"].endswith("label_config: Field required")
    deep = b'{"annotations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = client.post("/train", content=deep, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and "nested too deeply" in reply.json()["detail"]
    assert store.list_keys("projects/") == []


def test_unknown_jobs_and_bad_ids_in_urls(client):
    assert client.get("/projects/1/jobs/0123456789abcdef0123456789abcdef").status_code == 404
    assert client.get("/projects/1/jobs/..%2F..%2Flatest").status_code == 404
    assert client.get("/projects/abc/jobs").status_code == 422
    assert client.get("/projects/7%0A/jobs").status_code == 422
    assert client.get("/projects/7/jobs/0123456789abcdef0123456789abcdef%0A").status_code == 404
    assert client.get("/projects/1/jobs").json() == {"jobs": []}
    assert client.get("/versions", params={"project": "1;drop"}).status_code == 422


class BrokenStore(LocalStore):
    def __init__(self, error: Exception) -> None:
        super().__init__("/nonexistent")
        self.error = error

    def get(self, key):
        raise self.error


@pytest.mark.parametrize(
    "error, status, detail",
    [
        (StoreUnavailable("model store: cannot read projects/1/latest.json (SlowDown)"), 503, "cannot read projects/1/latest.json"),
        (RuntimeError("secret internals at /var/task/x.py"), 500, "internal error"),
    ],
)
def test_store_failures_and_bugs_never_show_a_traceback(settings, error, status, detail):
    app = create_app(settings)
    app.state.services._made["store"] = BrokenStore(error)
    reply = TestClient(app, raise_server_exceptions=False).post("/setup", json={"project": "1.2", "schema": CONFIG})
    assert reply.status_code == status
    assert detail in reply.json()["detail"]
    assert "Traceback" not in reply.text and "/var/task" not in reply.text


@pytest.fixture
def auth_client(settings):
    return TestClient(create_app(Settings(model_store_uri=settings.model_store_uri, basic_auth_user="admin", basic_auth_pass="pa:ss é")))


def basic(user: str, password: str, encoding: str = "utf-8") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode(encoding)).decode()}


@pytest.mark.parametrize(
    "headers",
    [{}, basic("admin", "wrong"), basic("other", "pa:ss é"), {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}],
)
def test_basic_auth_rejects_missing_or_wrong_credentials_on_every_endpoint(auth_client, headers):
    assert auth_client.get("/health", headers=headers).status_code == 200  # public: Label Studio checks it first
    for method, path in [("POST", "/setup"), ("POST", "/predict"), ("POST", "/webhook"), ("POST", "/train"),
                         ("GET", "/versions"), ("GET", "/projects/1/jobs"), ("GET", "/docs"), ("GET", "/openapi.json")]:
        reply = auth_client.request(method, path, headers=headers, json={})
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"] == 'Basic realm="label-studio-ml-backend", charset="UTF-8"'


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])  # python-requests, Label Studio's client, sends latin-1
def test_basic_auth_accepts_the_right_credentials(auth_client, encoding):
    assert auth_client.get("/versions", headers=basic("admin", "pa:ss é", encoding)).status_code == 200
    schema = auth_client.get("/openapi.json", headers=basic("admin", "pa:ss é", encoding)).json()
    assert {"/health", "/setup", "/predict", "/webhook", "/train", "/versions"} <= set(schema["paths"])


@pytest.mark.parametrize("header", ["Basic \xff\xfe".encode("latin-1"), "Basic ä".encode("latin-1"), b"Basic " + b"A" * 60_000])
def test_garbage_authorization_headers_are_401_not_500(auth_client, header):
    reply = auth_client.get("/versions", headers={"Authorization": header})
    assert reply.status_code == 401
