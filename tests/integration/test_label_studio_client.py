"""The Label Studio client against a real HTTP stand-in: token kinds, refresh on 401, path
prefixes, and every failure a user must be able to act on, without leaking the token."""

from __future__ import annotations

import pytest

from functions.label_studio import LabelStudioClient, LabelStudioRefused, LabelStudioUnreachable
from tests.conftest import sample_tasks
from tests.ls_standin import LEGACY_TOKEN, PERSONAL_ACCESS_TOKEN, LabelStudioStandIn


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
