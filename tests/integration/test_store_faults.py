"""Whole after any store fault: corrupt, forged and unsigned versions are never served (the
newest good one is, and /setup says so); a garbage pointer; a store that is down, hung,
read-only or full; half-published versions; bounded S3 calls."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections import Counter

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from functions import keys, signing, versions
from functions.api.app import create_app
from functions.errors import CorruptModel, StoreNotWritable, StoreUnavailable
from functions.model.classifier import ModelParams, fit
from functions.model.export import to_compact
from functions.serving import ModelCache
from functions.settings import Settings
from functions.store import LocalStore, S3Store, StoredObject, json_bytes, open_store
from functions.store import s3 as s3_store

CONFIG = '<View><Text name="news" value="$text"/><Choices name="topic" toName="news"><Choice value="Sport"/><Choice value="Weather"/></Choices></View>'
PROJECT = "5"


class FaultyStore(LocalStore):
    """A LocalStore that can be down, hung, or refuse given writes; counts reads per key."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.down, self.hang, self.refuse = False, 0.0, None
        self.reads: Counter[str] = Counter()

    def _check(self) -> None:
        if self.hang:
            time.sleep(self.hang)
        if self.down:
            raise StoreUnavailable("model store: cannot read (EndpointConnectionError)")

    def get(self, key: str) -> StoredObject | None:
        self._check()
        self.reads[key] += 1
        return super().get(key)

    def put(self, key: str, data: bytes, **conditions) -> str:
        self._check()
        if self.refuse and self.refuse in key:
            raise StoreNotWritable(f"the model store is full (No space left on device): cannot write {key}")
        return super().put(key, data, **conditions)

    def list_keys(self, prefix: str) -> list[str]:
        self._check()
        return super().list_keys(prefix)

    def list_folders(self, prefix: str) -> list[str]:
        self._check()
        return super().list_folders(prefix)


@pytest.fixture(scope="module")
def fitted():
    return fit(["good match", "great goal", "rain storm", "snow wind"], ["Sport", "Sport", "Weather", "Weather"], ModelParams())


@pytest.fixture
def settings(tmp_path):
    return Settings(model_store_uri=f"file://{tmp_path / 'store'}", pointer_ttl_seconds=0.0)


@pytest.fixture
def store(settings):
    return FaultyStore(open_store(settings.model_store_uri).root)


def publish(store, fitted, job_id, settings=None):
    return versions.publish(
        store, PROJECT, job_id, {"topic": fitted.pipeline}, {"topic": to_compact(fitted.pipeline)}, {"topic": fitted.classes},
        {"report": {"n": 4}, "controls": {"topic": {"multiple": False}}}, settings=settings or Settings(),
    )


@pytest.fixture
def client(settings, store):
    with TestClient(create_app(settings)) as test_client:
        test_client.app.state.services._made["store"] = store
        yield test_client


def setup_version(client) -> str:
    reply = client.post("/setup", json={"project": PROJECT, "schema": CONFIG})
    assert reply.status_code == 200, reply.text
    return reply.json()["model_version"]


def predict_version(client) -> str:
    reply = client.post("/predict", json={"project": PROJECT, "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "rain"}}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["results"][0]["result"][0]["value"]["choices"] == ["Weather"]
    assert body["results"][0]["model_version"] == body["model_version"]
    return body["model_version"]


def obj(version, name):
    return keys.version_object(PROJECT, version, name)


def forge_manifest(store, version):
    """What someone who can write the store but lacks the key does: new model, matching sha256."""
    import hashlib

    manifest = store.get_json(obj(version, "manifest.json"))
    model = store.get(obj(version, "model.npz")).data + b"evil"
    store.put(obj(version, "model.npz"), model)
    store.put_json(obj(version, "manifest.json"), manifest | {"serving": manifest["serving"] | {"sha256": hashlib.sha256(model).hexdigest()}})


MANIFEST_FAULTS = {
    "garbage manifest": lambda s, v: s.put(obj(v, "manifest.json"), b'{"version": "p5-v2", "serv'),
    "manifest is a list": lambda s, v: s.put(obj(v, "manifest.json"), b"[1, 2]"),
    "unsigned (signature removed)": lambda s, v: os.remove(s.root / obj(v, "signature.json")),
    "garbage signature": lambda s, v: s.put(obj(v, "signature.json"), b"\x00\xff"),
    "forged: model and sha256 replaced without the key": forge_manifest,
    "signed with another key": lambda s, v: s.put_json(obj(v, "signature.json"), signing.HmacSigner(b"k", "file:.signing-key").sign(s.get(obj(v, "manifest.json")).data)),
}
MODEL_FAULTS = {
    "truncated model.npz": lambda s, v: s.put(obj(v, "model.npz"), s.get(obj(v, "model.npz")).data[:100]),
    "empty model.npz": lambda s, v: s.put(obj(v, "model.npz"), b""),
    "garbage labels.json": lambda s, v: s.put(obj(v, "labels.json"), b'{"topic": ["Sp'),
    "labels swapped": lambda s, v: s.put_json(obj(v, "labels.json"), {"topic": ["Weather", "Sport"]}),
}


@pytest.mark.parametrize("fault", MANIFEST_FAULTS)
def test_a_version_whose_manifest_fails_verification_is_never_served_and_setup_says_so(client, store, fitted, fault, caplog):
    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    MANIFEST_FAULTS[fault](store, "p5-v2")
    with caplog.at_level(logging.ERROR, "functions.serving"):
        assert setup_version(client) == "p5-v1"
        assert predict_version(client) == "p5-v1"
        assert setup_version(client) == "p5-v1"
    assert [r.getMessage() for r in caplog.records if "p5-v2 is not served" in r.getMessage()][:1], caplog.text
    reads = store.reads[obj("p5-v2", "manifest.json")]
    for _ in range(5):
        assert setup_version(client) == "p5-v1" and predict_version(client) == "p5-v1"
    assert store.reads[obj("p5-v2", "manifest.json")] == reads  # remembered as bad: never read again


@pytest.mark.parametrize("fault", MODEL_FAULTS)
def test_a_model_that_fails_its_checksum_falls_back_to_the_previous_version(client, store, fitted, fault):
    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    MODEL_FAULTS[fault](store, "p5-v2")
    assert setup_version(client) == "p5-v2"  # /setup loads no model: the manifest is fine
    assert predict_version(client) == "p5-v1"  # the first load finds the fault
    assert setup_version(client) == "p5-v1"
    reads = store.reads[obj("p5-v2", "model.npz")]
    assert [predict_version(client) for _ in range(3)] == ["p5-v1"] * 3
    assert store.reads[obj("p5-v2", "model.npz")] == reads


def test_the_walk_back_skips_several_bad_versions_and_a_new_good_one_serves_at_once(client, store, fitted):
    for i in range(1, 5):
        publish(store, fitted, f"job-{i}")
    MODEL_FAULTS["truncated model.npz"](store, "p5-v4")
    MANIFEST_FAULTS["garbage manifest"](store, "p5-v3")
    os.remove(store.root / obj("p5-v2", "signature.json"))
    assert predict_version(client) == "p5-v1" and setup_version(client) == "p5-v1"
    assert publish(store, fitted, "job-5") == "p5-v5"
    assert setup_version(client) == "p5-v5" and predict_version(client) == "p5-v5"


def test_with_no_good_version_setup_says_untrained_and_predict_has_no_results(client, store, fitted, caplog):
    publish(store, fitted, "job-1")
    os.remove(store.root / obj("p5-v1", "signature.json"))  # e.g. published by a release before signing
    with caplog.at_level(logging.ERROR, "functions.serving"):
        assert setup_version(client) == "untrained"
    assert "p5-v1 is not served: model p5-v1 of project 5 is not signed" in caplog.text and "press Start Training" in caplog.text
    reply = client.post("/predict", json={"project": PROJECT, "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "rain"}}]})
    assert reply.status_code == 200 and reply.json() == {"results": [], "model_version": "untrained"}


@pytest.mark.parametrize("garbage", [b"", b'{"version": "p5-v', b'{"version": "p9-v2", "number": 2}', b'{"version": "p5-v2", "number": "x"}', b"null"])
def test_a_garbage_pointer_serves_the_newest_complete_version_and_the_next_training_repairs_it(client, store, fitted, garbage):
    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    store.put(keys.latest(PROJECT), garbage)
    assert setup_version(client) == "p5-v2" and predict_version(client) == "p5-v2"
    assert client.get("/versions", params={"project": PROJECT}).json()["versions"] == ["p5-v1", "p5-v2"]
    assert publish(store, fitted, "job-3") == "p5-v3"
    assert versions.read_pointer(store, PROJECT) == versions.Pointer("p5-v3", 3)
    assert setup_version(client) == "p5-v3"


def test_the_loaded_model_keeps_serving_while_the_store_is_down(client, store, fitted):
    publish(store, fitted, "job-1")
    assert predict_version(client) == "p5-v1"
    store.down = True
    assert setup_version(client) == "p5-v1" and predict_version(client) == "p5-v1"
    assert client.get("/versions").status_code == 503  # nothing in memory for that one
    store.down = False
    publish(store, fitted, "job-2")
    assert setup_version(client) == "p5-v2" and predict_version(client) == "p5-v2"


def test_with_nothing_in_memory_a_down_store_answers_503_with_a_detail(client, store):
    store.down = True
    for reply in (client.post("/setup", json={"project": PROJECT, "schema": CONFIG}),
                  client.post("/predict", json={"project": PROJECT, "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "x"}}]})):
        assert reply.status_code == 503
        assert reply.json() == {"detail": "model store: cannot read (EndpointConnectionError)"}


def test_a_hung_store_delays_setup_by_at_most_the_refresh_wait(store, fitted, settings):
    publish(store, fitted, "job-1")
    cache = ModelCache(store, settings)
    assert cache.serving_version(PROJECT) == "p5-v1"
    store.hang = 3.0
    timings = []
    for _ in range(3):
        started = time.monotonic()
        assert cache.serving_version(PROJECT) == "p5-v1"
        timings.append(time.monotonic() - started)
    assert 0.9 < timings[0] < 1.3 and max(timings[1:]) < 0.05  # later requests do not wait for the same refresh
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="no answer within 2 s"):  # nothing in memory: 503 inside Label Studio's 3 s
        ModelCache(store, settings).serving_version(PROJECT)
    assert 1.9 < time.monotonic() - started < 2.3
    store.hang = 0.0


def test_a_request_that_joins_a_read_failing_as_the_store_recovers_reads_again(store, fitted, settings):
    """The read a first request started while the store hung fails as the store recovers; a second
    request that joined it reads once more itself rather than answering 503."""
    publish(store, fitted, "job-1")
    cache = ModelCache(store, settings)
    release = threading.Event()

    class HungThenClosed(FaultyStore):
        def get(self, key):
            if key == keys.latest(PROJECT) and not release.is_set():
                release.wait(5)
                raise StoreUnavailable("model store: cannot read (ConnectionClosedError)")
            return super().get(key)

    cache.store = HungThenClosed(store.root)
    with pytest.raises(StoreUnavailable, match="no answer within 2 s"):
        cache.serving_version(PROJECT)  # the first request gives up; its read hangs on
    threading.Timer(0.2, release.set).start()
    assert cache.serving_version(PROJECT) == "p5-v1"


def test_a_full_store_mid_publish_leaves_an_invisible_version_that_a_redelivery_completes(client, store, fitted):
    publish(store, fitted, "job-1")
    store.refuse = "p5-v2/model.npz"
    with pytest.raises(StoreNotWritable, match="full"):
        publish(store, fitted, "job-2")
    assert LocalStore.list_folders(store, keys.models_prefix(PROJECT)) == ["p5-v1", "p5-v2"]  # claimed, half-written
    assert versions.list_versions(store, PROJECT) == ["p5-v1"]
    assert client.get("/versions").json() == {"versions": ["p5-v1"]}
    assert [d["version"] for d in client.get("/versions", params={"project": PROJECT}).json()["details"]] == ["p5-v1"]
    assert setup_version(client) == "p5-v1" and predict_version(client) == "p5-v1"
    store.refuse = None
    assert publish(store, fitted, "job-2") == "p5-v2"  # the redelivered job finishes its own version
    assert client.get("/versions").json() == {"versions": ["p5-v1", "p5-v2"]}
    assert setup_version(client) == "p5-v2" and predict_version(client) == "p5-v2"


def test_a_complete_version_the_pointer_has_not_reached_is_not_listed(store, fitted):
    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    store.put_json(keys.latest(PROJECT), {"version": "p5-v1", "number": 1})  # as if the pointer move had not happened
    assert versions.list_versions(store, PROJECT) == ["p5-v1"]
    assert versions.complete_versions(store, PROJECT, None) == ["p5-v1", "p5-v2"]


def test_a_redelivered_job_leaves_its_complete_version_untouched(store, fitted):
    publish(store, fitted, "job-1")
    before = {name: store.get(obj("p5-v1", name)).data for name in versions.COMPLETE}
    other = fit(["sunny day", "cloudy sky", "final whistle", "home team"], ["Weather", "Weather", "Sport", "Sport"], ModelParams())
    assert publish(store, other, "job-1") == "p5-v1"
    assert {name: store.get(obj("p5-v1", name)).data for name in versions.COMPLETE} == before
    assert versions.load(store, PROJECT, "p5-v1").version == "p5-v1"


def test_publishing_to_an_s3_store_without_a_key_writes_nothing(fitted, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="models")
        s3 = S3Store("models")
        with pytest.raises(Exception, match="set MODEL_SIGNING_KMS_KEY"):
            publish(s3, fitted, "job-1")
        assert s3.list_keys("projects/") == []
        assert publish(s3, fitted, "job-1", Settings(model_signing_key="secret")) == "p5-v1"
        cache = ModelCache(s3, Settings(model_signing_key="secret"))
        assert cache.serving_version(PROJECT) == "p5-v1"
        assert ModelCache(s3, Settings(model_signing_key="other")).serving_version(PROJECT) == "untrained"


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "full"), (errno.EROFS, "read-only"), (errno.EACCES, "read-only")])
def test_a_full_or_read_only_folder_is_a_503_that_loses_nothing(tmp_path, monkeypatch, code, words):
    store = LocalStore(tmp_path)
    store.put("projects/1/latest.json", b'{"version": "p1-v1", "number": 1}')

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    for attempt in (lambda: store.put("projects/1/latest.json", b"{}"), lambda: store.put("projects/1/latest.json", b"{}", if_none_match=False, if_match=store.get("projects/1/latest.json").etag)):
        with pytest.raises(StoreNotWritable, match=f"model store is {words} .*cannot write projects/1/latest.json") as raised:
            attempt()
        assert raised.value.status_code == 503
    assert store.get("projects/1/latest.json").data == b'{"version": "p1-v1", "number": 1}'
    assert sorted(p.name for p in (tmp_path / "projects" / "1").iterdir()) == ["latest.json"]  # no temporary file left


def test_a_store_folder_that_cannot_even_be_locked_is_a_503(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    real_open = open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(StoreNotWritable, match="read-only"):
        store.put("a.json", b"1", if_none_match=True)


def test_a_read_only_store_answers_503_with_a_detail_through_the_api(client, store):
    store.refuse = "projects/"
    reply = client.post("/train", json={"project": PROJECT, "label_config": CONFIG, "annotations": []})
    assert reply.status_code == 503
    assert reply.json()["detail"].startswith("the model store is full (No space left on device): cannot write projects/5/")


def test_s3_access_denied_on_put_is_not_writable(monkeypatch):
    from botocore.exceptions import ClientError

    s3 = S3Store("models", connect_timeout=0.5, read_timeout=0.5)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    class Client:
        def put_object(self, **kwargs):
            raise denied

    s3._client = Client()
    with pytest.raises(StoreNotWritable, match=r"refuses writes \(AccessDenied\): cannot write projects/1/latest.json to s3://models"):
        s3.put("projects/1/latest.json", b"{}")


def test_the_s3_client_is_lazy_and_every_call_is_bounded(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    store = open_store("s3://models/x", Settings(s3_connect_timeout=0.7, s3_read_timeout=1.3))
    assert store._client is None
    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.7, 1.3)
    assert config.retries == {"total_max_attempts": s3_store.MAX_ATTEMPTS, "mode": "standard"} and s3_store.MAX_ATTEMPTS == 2
    default = open_store("s3://models").client.meta.config  # no settings given: the process settings
    assert (default.connect_timeout, default.read_timeout) == (1.0, 2.0)


def test_a_hung_s3_endpoint_fails_within_the_timeouts(monkeypatch):
    """A server that accepts connections and never answers (the hung endpoint of issue 8)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{listener.getsockname()[1]}"}.items():
        monkeypatch.setenv(name, value)
    try:
        store = S3Store("models", connect_timeout=0.3, read_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot read projects/1/latest.json"):
            store.get("projects/1/latest.json")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()
    assert len(accepted) == 2  # two attempts, then it gives up
    assert 0.6 <= elapsed < 2.0, elapsed


def test_corrupt_model_is_refused_by_load_with_its_reason(store, fitted):
    publish(store, fitted, "job-1")
    MODEL_FAULTS["labels swapped"](store, "p5-v1")
    with pytest.raises(CorruptModel, match="labels.json is missing or does not match its manifest checksum"):
        versions.load(store, PROJECT, "p5-v1")
    assert json_bytes({"a": 1}) == b'{"a":1}'


def test_a_project_deleted_and_trained_again_serves_its_new_versions_not_the_ones_in_memory(client, store, fitted):
    """After `delete-project`, a new training starts again at p5-v1: a running API must not
    serve the deleted p5-v1 it has loaded, nor take the new one for a forgery."""
    import shutil

    from functions.label_config import parse_label_config

    publish(store, fitted, "job-1"), publish(store, fitted, "job-2")
    assert setup_version(client) == "p5-v2" and predict_version(client) == "p5-v2"
    other = fit(["good match", "great goal", "rain storm", "snow wind", "cold front"], ["Sport", "Sport", "Weather", "Weather", "Weather"],
                ModelParams())
    cache = client.app.state.services.cache
    for model, job, seen in ((other, "new-job-1", True), (fitted, "new-job-2", False)):  # the API saw the project gone, or not
        shutil.rmtree(store.root / "projects" / PROJECT)
        if seen:
            assert setup_version(client) == "untrained"
        assert publish(store, model, job) == "p5-v1"
        assert setup_version(client) == "p5-v1" and predict_version(client) == "p5-v1"
        assert cache.serving_model(PROJECT, parse_label_config(CONFIG)).manifest["job_id"] == job
        assert not cache._bad
