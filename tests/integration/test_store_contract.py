"""One contract, two stores: a local folder and S3 (moto), the latter also under a prefix; deletes too
(local: folders pruned, symbolic links never followed out; S3: batches, per-key errors, versions)."""

import errno
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from functions.errors import PreconditionFailed, StoreNotWritable, StoreUnavailable
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


# --- deletes (issue 11: delete a project's data) ---------------------------------------------------


def test_delete_removes_only_the_keys_named_and_twice_is_once(store):
    kept = {"projects/1/latest.json": b"one", "projects/12/models/p12-v1/model.npz": b"twelve", "other/x": b"x"}
    gone = ["projects/1/models/p1-v1/model.npz", "projects/1/annotations/7.json", "projects/1/jobs/j.json"]
    for key, data in kept.items():
        store.put(key, data)
    for key in gone:
        store.put(key, b"{}", expiring=key.endswith("j.json"))
    store.delete(gone + ["projects/1/no-such.json"])
    assert store.list_keys("projects/1/") == ["projects/1/latest.json"]
    assert all(store.get(key) is None for key in gone)
    assert {key: store.get(key).data for key in kept} == kept
    store.delete(gone)  # nothing there any more: no error
    store.delete([])
    assert store.list_keys("projects/12/") == ["projects/12/models/p12-v1/model.npz"]


def test_list_sizes_gives_every_key_under_the_prefix_with_its_bytes(store):
    store.put("projects/1/a.json", b"12345")
    store.put("projects/1/models/p1-v1/model.npz", b"\x00" * 300)
    store.put("projects/12/a.json", b"x")
    assert store.list_sizes("projects/1/") == {"projects/1/a.json": 5, "projects/1/models/p1-v1/model.npz": 300}
    assert store.list_sizes("projects/3/") == {}


def test_a_deleted_key_can_be_created_again_with_if_none_match(store):
    store.put("projects/1/models/p1-v1/manifest.json", b"old", if_none_match=True)
    store.delete(["projects/1/models/p1-v1/manifest.json"])
    store.put("projects/1/models/p1-v1/manifest.json", b"new", if_none_match=True)
    assert store.get("projects/1/models/p1-v1/manifest.json").data == b"new"


def test_local_delete_prunes_the_folders_it_empties_and_keeps_the_root(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put("projects/1/models/p1-v1/model.npz", b"m")
    store.put("projects/1/runs/r/chunks/1.json", b"c")
    store.put("projects/2/latest.json", b"p")
    store.delete(store.list_keys("projects/1/"))
    assert not (tmp_path / "store" / "projects" / "1").exists()
    assert store.list_folders("projects/") == ["2"]
    store.delete(["projects/2/latest.json"])
    assert (tmp_path / "store").is_dir() and not (tmp_path / "store" / "projects").exists()


def test_local_delete_never_follows_a_symbolic_link_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(b"keep me")
    store = LocalStore(tmp_path / "store")
    store.put("projects/1/latest.json", b"p")
    (tmp_path / "store" / "projects" / "1" / "link.json").symlink_to(outside / "secret.json")
    (tmp_path / "store" / "projects" / "9").symlink_to(outside, target_is_directory=True)
    store.delete(["projects/1/link.json", "projects/1/latest.json"])  # the link goes, never its target
    assert (outside / "secret.json").read_bytes() == b"keep me" and not (tmp_path / "store" / "projects" / "1").exists()
    with pytest.raises(StoreNotWritable, match="leads out of the model store"):
        store.delete(["projects/9/secret.json"])
    assert (outside / "secret.json").read_bytes() == b"keep me"


def test_local_delete_never_follows_a_project_folder_linked_to_another_project(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put("projects/2/latest.json", b"p2")
    (tmp_path / "store" / "projects" / "15").symlink_to(tmp_path / "store" / "projects" / "2", target_is_directory=True)
    assert store.list_keys("projects/15/") == ["projects/15/latest.json"]  # the listing sees through the link...
    with pytest.raises(StoreNotWritable, match="leads elsewhere in the model store"):
        store.delete(["projects/15/latest.json"])  # ...the delete does not
    assert store.get("projects/2/latest.json").data == b"p2"


def test_local_delete_in_a_read_only_folder_is_store_not_writable(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    store.put("projects/1/latest.json", b"p")

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "unlink", refuse)  # chmod would not stop root, who runs the tests in containers
    with pytest.raises(StoreNotWritable, match=r"refuses deletes \(Permission denied\): cannot delete projects/1/latest.json"):
        store.delete(["projects/1/latest.json"])
    monkeypatch.undo()
    assert store.get("projects/1/latest.json").data == b"p"


def test_s3_deletes_in_batches_of_1000(aws_credentials):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="models")
        store = S3Store("models", "team")
        keys = [f"projects/1/annotations/{n}.json" for n in range(2001)]
        for key in keys:
            store.client.put_object(Bucket="models", Key=f"team/{key}", Body=b"{}")
        batches = []
        store.client.meta.events.register("provide-client-params.s3.DeleteObjects",
                                          lambda params, **_: batches.append(len(params["Delete"]["Objects"])))
        store.delete(keys)
        assert batches == [1000, 1000, 1]
        assert store.list_keys("projects/1/") == []


class _DeleteRefusingClient:
    """Answers DeleteObjects with per-key errors, as S3 does when some keys may not be deleted."""

    def __init__(self, code: str) -> None:
        self.code = code

    def delete_objects(self, Bucket, Delete):  # noqa: N803 - boto3's parameter names
        return {"Errors": [{"Key": o["Key"], "Code": self.code, "Message": "no"} for o in Delete["Objects"]]}


@pytest.mark.parametrize("code, error, words", [
    ("AccessDenied", StoreNotWritable, "refuses deletes (AccessDenied): cannot delete 2 object(s), e.g. projects/1/a"),
    ("InternalError", StoreUnavailable, "cannot delete 2 of 2 objects, e.g. projects/1/a (InternalError: no)"),
])
def test_s3_per_key_delete_errors_are_not_ignored(code, error, words):
    store = S3Store("models", "team")
    store._client = _DeleteRefusingClient(code)
    with pytest.raises(error) as raised:
        store.delete(["projects/1/a", "projects/1/b"])
    assert words in str(raised.value)


def test_s3_access_denied_on_delete_is_store_not_writable(aws_credentials):
    with mock_aws():
        store = S3Store("no-such-bucket")
        with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
            store.delete(["a"])

    class Denying:
        def delete_objects(self, **_):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "DeleteObjects")

    store._client = Denying()
    with pytest.raises(StoreNotWritable, match="check the role's s3:DeleteObject"):
        store.delete(["a"])


@pytest.mark.parametrize("prefix", ["", "team/a"])
def test_s3_versions_survive_a_delete_until_deleted_by_version(aws_credentials, prefix):
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="models")
        client.put_bucket_versioning(Bucket="models", VersioningConfiguration={"Status": "Enabled"})
        store = S3Store("models", prefix)
        store.put("projects/1/annotations/7.json", b"first")
        store.put("projects/1/annotations/7.json", b"second!")
        store.put("projects/12/annotations/7.json", b"other project")
        store.delete(["projects/1/annotations/7.json"])
        assert store.get("projects/1/annotations/7.json") is None and store.list_keys("projects/1/") == []
        found = store.list_object_versions("projects/1/")
        assert sorted((v.key, v.size, v.latest, v.delete_marker) for v in found) == [
            ("projects/1/annotations/7.json", 0, True, True),
            ("projects/1/annotations/7.json", 5, False, False),
            ("projects/1/annotations/7.json", 7, False, False),
        ]
        store.delete_object_versions(found)
        assert store.list_object_versions("projects/1/") == []
        full = f"{prefix}/projects/" if prefix else "projects/"
        listed = client.list_object_versions(Bucket="models", Prefix=full)
        assert [v["Key"] for v in listed.get("Versions", [])] == [f"{full}12/annotations/7.json"]
        assert "DeleteMarkers" not in listed
        assert store.get("projects/12/annotations/7.json").data == b"other project"
