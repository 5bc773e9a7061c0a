"""/docs works with no network (issue 11, item 6): Swagger UI's script, stylesheet and favicon
are served by the app itself under /docs/static/, behind the same Basic auth as /docs, and the
page links nothing outside the app. Sockets are closed for the whole module: a CDN URL, or any
code that tries the network, fails here rather than in a user's air-gapped network."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import socket
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from mangum import Mangum

from functions.api.app import create_app
from functions.api.routes import docs
from functions.settings import Settings
from tests.conftest import shared

USER, PASSWORD = "docs", "docs-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
PAGE = "http://testserver/docs"
LAMBDA_PAYLOAD_LIMIT = 6_291_556  # bytes: a synchronous Lambda reply, as API Gateway gets it
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Links(HTMLParser):
    """Every URL the page loads (script src, link href, img src) and whether it has inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) is not None:
                self.urls.append((tag, values[name] or ""))
        if tag == "script" and not values.get("src"):
            self.inline_scripts += 1
        if any(name.startswith("on") for name in values):  # inline event handlers are inline script too
            self.inline_scripts += 1


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"the docs tried the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user=USER, basic_auth_pass=PASSWORD)
    return TestClient(create_app(settings))


def links(page: str) -> Links:
    parser = Links()
    parser.feed(page)
    return parser


def test_the_docs_page_and_its_assets_need_the_basic_credentials(client):
    page = client.get("/docs", headers=AUTH)
    assert page.status_code == 200
    for tag, url in links(page.text).urls:
        path = urlsplit(urljoin(PAGE, url)).path
        refused = client.get(path)
        assert refused.status_code == 401, (tag, url)
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert client.get(path, auth=(USER, "wrong")).status_code == 401
    assert client.get("/docs").status_code == 401
    assert client.get("/openapi.json").status_code == 401


def test_every_asset_of_the_page_is_relative_and_served_by_the_app(client):
    page = client.get("/docs", headers=AUTH)
    assert page.headers["content-type"].startswith("text/html")
    parsed = links(page.text)
    assert {tag for tag, _ in parsed.urls} == {"script", "link"}
    assert len(parsed.urls) == 4  # favicon, stylesheet, Swagger UI, its initializer
    assert "://" not in page.text and "cdn" not in page.text.lower()
    for tag, url in parsed.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), f"{tag} {url!r} is not a relative path"
        served = client.get(urlsplit(urljoin(PAGE, url)).path, headers=AUTH)
        assert served.status_code == 200, url
        expected = TYPES[Path(parts.path).suffix]
        assert served.headers["content-type"].split(";")[0] == expected, url
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.content, url
    bundle = client.get("/docs/static/swagger-ui-bundle.js", headers=AUTH)
    assert len(bundle.content) > 500_000 and b"SwaggerUIBundle" in bundle.content
    assert len(client.get("/docs/static/swagger-ui.css", headers=AUTH).content) > 50_000
    assert client.get("/docs/static/favicon.png", headers=AUTH).content.startswith(b"\x89PNG")


def test_the_page_runs_no_inline_script_under_a_self_only_policy(client):
    page = client.get("/docs", headers=AUTH)
    assert links(page.text).inline_scripts == 0
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'"  # scripts, styles, fetches, fonts, frames: this origin only
    assert policy["img-src"] == "'self' data:"  # the icons inlined in Swagger UI's stylesheet
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert not {"script-src", "style-src", "connect-src"} & policy.keys()  # nothing loosens default-src


def test_the_initializer_loads_the_schema_from_the_app_without_the_online_validator(client):
    initializer = client.get("/docs/static/swagger-initializer.js", headers=AUTH).text
    assert 'url: "openapi.json"' in initializer and "validatorUrl: null" in initializer
    assert "://" not in initializer
    schema = client.get(urljoin(PAGE, "openapi.json"), headers=AUTH)
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.1")  # Swagger UI 5 renders OpenAPI 3.1
    assert {"/setup", "/predict", "/webhook", "/versions"} <= schema.json()["paths"].keys()


def test_large_assets_go_gzipped_when_the_client_accepts_it(client):
    plain = client.get("/docs/static/swagger-ui-bundle.js", headers=AUTH | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    raw = client.get("/docs/static/swagger-ui-bundle.js", headers=AUTH | {"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == plain.content  # httpx decodes it
    assert int(raw.headers["content-length"]) < len(plain.content) // 2
    refused = client.get("/docs/static/swagger-ui.css", headers=AUTH | {"Accept-Encoding": "gzip;q=0, br"})
    assert "content-encoding" not in refused.headers
    png = client.get("/docs/static/favicon.png", headers=AUTH | {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in png.headers


@pytest.mark.parametrize("name", ["redoc.standalone.js", "core.py", "..%2Fcore.py", "%2E%2E%2Fcore.py", "swagger-ui.js"])
def test_only_the_listed_assets_are_served(client, name):
    assert client.get(f"/docs/static/{name}", headers=AUTH).status_code == 404


def test_the_asset_list_matches_the_package():
    for name in docs.ASSETS:
        body, _ = docs.asset(name)
        assert body, name


def test_through_the_lambda_handler_the_assets_fit_a_reply_and_decode(tmp_path):
    """Mangum (the api function's adapter) turns the gzipped bundle into a base64 body that API
    Gateway decodes; page and assets each fit a synchronous Lambda reply."""
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user=USER, basic_auth_pass=PASSWORD)
    handler = Mangum(create_app(settings), lifespan="off")
    template = json.loads(shared("aws_events", "http_health.json").read_text(encoding="utf-8"))

    def invoke(path: str, **headers: str) -> dict:
        event = copy.deepcopy(template)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["headers"] |= {"authorization": AUTH["Authorization"], **headers}
        reply = handler(event, None)
        assert len(json.dumps(reply)) < LAMBDA_PAYLOAD_LIMIT, path
        return reply

    page = invoke("/docs", accept="text/html")
    assert page["statusCode"] == 200 and not page["isBase64Encoded"] and "swagger-ui-bundle.js" in page["body"]
    expected = docs.asset("swagger-ui-bundle.js")[0]
    zipped = invoke("/docs/static/swagger-ui-bundle.js", **{"accept-encoding": "gzip, deflate, br"})
    assert zipped["statusCode"] == 200 and zipped["isBase64Encoded"] and zipped["headers"]["content-encoding"] == "gzip"
    assert gzip.decompress(base64.b64decode(zipped["body"])) == expected
    plain = invoke("/docs/static/swagger-ui-bundle.js")
    assert plain["statusCode"] == 200 and plain["body"].encode() == expected
    icon = invoke("/docs/static/favicon.png")
    assert icon["isBase64Encoded"] and base64.b64decode(icon["body"]).startswith(b"\x89PNG")
    assert invoke("/docs/static/swagger-ui.css")["headers"]["content-type"].startswith("text/css")
