"""One contract, two stores: a local folder and S3 (moto), the latter also under a prefix."""

import boto3
import pytest
from moto import mock_aws

from functions.errors import PreconditionFailed, StoreUnavailable
from functions.store import LocalStore, S3Store, open_store


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(params=["local", "s3", "s3-prefix"])
def store(request, tmp_path, aws_credentials):
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="models")
        yield S3Store("models", "team/a" if request.param == "s3-prefix" else "")


def test_missing_objects_are_none(store):
    assert store.get("projects/1/latest.json") is None
    assert store.get_json("projects/1/latest.json") is None


def test_put_then_get_round_trips_bytes_and_json(store):
    etag = store.put("projects/1/models/p1-v1/model.pkl", b"\x00\x01binary")
    found = store.get("projects/1/models/p1-v1/model.pkl")
    assert found.data == b"\x00\x01binary" and found.etag == etag
    store.put_json("projects/1/latest.json", {"version": "p1-v1", "é": "ü"})
    assert store.get_json("projects/1/latest.json") == {"version": "p1-v1", "é": "ü"}


def test_if_none_match_creates_once(store):
    store.put("k/a.json", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k/a.json", b"2", if_none_match=True)
    assert store.get("k/a.json").data == b"1"


def test_if_match_needs_the_current_etag(store):
    first = store.put("k/a.json", b"1")
    second = store.put("k/a.json", b"2", if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put("k/a.json", b"3", if_match=first)
    store.put("k/a.json", b"4", if_match=second)
    assert store.get("k/a.json").data == b"4"


def test_listing_keys_and_folders(store):
    for key in ["projects/1/models/p1-v1/manifest.json", "projects/1/models/p1-v2/manifest.json", "projects/1/latest.json", "projects/12/jobs/a.json", "other/x"]:
        store.put(key, b"{}")
    assert store.list_keys("projects/1/") == ["projects/1/latest.json", "projects/1/models/p1-v1/manifest.json", "projects/1/models/p1-v2/manifest.json"]
    assert store.list_folders("projects/") == ["1", "12"]
    assert store.list_folders("projects/1/models/") == ["p1-v1", "p1-v2"]
    assert store.list_keys("projects/2/") == [] and store.list_folders("nothing/") == []


def test_expiring_objects_read_back_like_others(store):
    store.put("projects/1/requests/j.json", b"{}", expiring=True)
    assert store.get("projects/1/requests/j.json").data == b"{}"


def test_s3_tags_expiring_objects_for_the_lifecycle_rule(aws_credentials):
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="models")
        store = S3Store("models")
        store.put("a", b"x", expiring=True)
        store.put("b", b"y")
        assert client.get_object_tagging(Bucket="models", Key="a")["TagSet"] == [{"Key": "lifecycle", "Value": "expiring"}]
        assert client.get_object_tagging(Bucket="models", Key="b")["TagSet"] == []


def test_get_many_keeps_order_and_gaps(store):
    store.put("a", b"A")
    store.put("c", b"C")
    assert [f and f.data for f in store.get_many(["a", "b", "c"])] == [b"A", None, b"C"]


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/../../b"])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValueError, match="unsafe store key"):
        store.put(key, b"x")


def test_s3_errors_become_store_unavailable(aws_credentials):
    with mock_aws():
        store = S3Store("no-such-bucket")
        with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
            store.put("a", b"x")


def test_open_store_picks_by_scheme(tmp_path):
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="unknown scheme; use one of file://, s3://"):
        open_store("gs://bucket")
    with pytest.raises(ValueError, match="names no bucket"):
        open_store("s3://")
