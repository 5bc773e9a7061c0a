import hashlib
import pickle

import numpy as np
import pytest

from functions import keys, signing, versions
from functions.settings import Settings
from functions.model.classifier import ModelParams, fit
from functions.model.export import to_compact
from functions.errors import CorruptModel
from functions.model import compact
from functions.store import LocalStore


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path)


@pytest.fixture(scope="module")
def fitted():
    return fit(["good match", "great goal", "rain storm", "snow wind"], ["Sport", "Sport", "Weather", "Weather"], ModelParams())


def resign(store, project, version):
    """Sign the version's current manifest with the store's key (as if it had been published so)."""
    manifest = store.get(keys.version_object(project, version, "manifest.json")).data
    signer = signing.signer_for(store, Settings())
    store.put_json(keys.version_object(project, version, "signature.json"), signer.sign(manifest))


def publish(store, fitted, job_id, project="5"):
    return versions.publish(
        store, project, job_id, {"topic": fitted.pipeline}, {"topic": to_compact(fitted.pipeline)}, {"topic": fitted.classes}, {"report": {"n": 4}}
    )


def test_versions_are_monotonic_and_the_pointer_follows(store, fitted):
    assert versions.read_pointer(store, "5") is None
    assert [publish(store, fitted, f"job{i}") for i in range(3)] == ["p5-v1", "p5-v2", "p5-v3"]
    assert versions.read_pointer(store, "5") == versions.Pointer("p5-v3", 3)
    assert versions.list_versions(store, "5") == ["p5-v1", "p5-v2", "p5-v3"]
    assert versions.list_projects(store) == ["5"]


def test_a_redelivered_job_finishes_its_own_version_instead_of_adding_one(store, fitted):
    assert publish(store, fitted, "job-a") == "p5-v1"
    assert publish(store, fitted, "job-a") == "p5-v1"
    assert versions.list_versions(store, "5") == ["p5-v1"]


def test_the_pointer_never_moves_backwards(store, fitted):
    publish(store, fitted, "job-a")
    publish(store, fitted, "job-b")
    versions._move_pointer(store, "5", versions.Pointer("p5-v1", 1))
    assert versions.read_pointer(store, "5").version == "p5-v2"


def test_load_returns_the_compact_models_labels_and_manifest(store, fitted):
    publish(store, fitted, "job-a")
    loaded = versions.load(store, "5", "p5-v1")
    assert loaded.labels == {"topic": ["Sport", "Weather"]}
    assert loaded.manifest["job_id"] == "job-a" and loaded.manifest["report"] == {"n": 4}
    assert loaded.manifest["serving"]["file"] == "model.npz" and len(loaded.manifest["sha256"]) == 64
    np.testing.assert_allclose(loaded.models["topic"].predict_proba(["goal", "rain"]), fitted.predict_proba(["goal", "rain"]), atol=1e-12)


def test_the_pickle_stays_the_canonical_artifact_beside_the_serving_model(store, fitted):
    publish(store, fitted, "job-a")
    artifact = store.get(keys.version_object("5", "p5-v1", "model.pkl")).data
    assert hashlib.sha256(artifact).hexdigest() == versions.load(store, "5", "p5-v1").manifest["sha256"]
    assert list(pickle.loads(artifact)["topic"].predict(["goal"])) == ["Sport"]


@pytest.mark.parametrize("change", [lambda data: data + b"tampered", lambda data: data[:100], lambda data: b""])
def test_an_altered_serving_model_is_refused_before_it_is_read(store, fitted, change, monkeypatch):
    publish(store, fitted, "job-a")
    key = keys.version_object("5", "p5-v1", "model.npz")
    store.put(key, change(store.get(key).data))
    monkeypatch.setattr(compact, "loads", lambda data: pytest.fail("an altered artifact was read"))
    with pytest.raises(CorruptModel, match="checksum"):
        versions.load(store, "5", "p5-v1")


def test_a_version_without_a_serving_model_says_how_to_get_one(store, fitted):
    publish(store, fitted, "job-a")
    manifest_key = keys.version_object("5", "p5-v1", "manifest.json")
    store.put_json(manifest_key, {k: v for k, v in store.get_json(manifest_key).items() if k != "serving"})
    resign(store, "5", "p5-v1")
    with pytest.raises(CorruptModel, match="Start Training"):
        versions.load(store, "5", "p5-v1")


def test_an_older_versions_report_json_shows_but_never_overrides_a_signed_report(store, fitted):
    publish(store, fitted, "job-a")
    signed = store.get(keys.version_object("5", "p5-v1", "manifest.json")).data
    store.put_json(keys.version_object("5", "p5-v1", "report.json"), {"report": {"n": 4, "quality": {"accuracy": 1.0}}})
    (manifest,) = versions.read_manifests(store, "5", ["p5-v1"])
    assert manifest["report"]["quality"] == {"accuracy": 1.0} and manifest["serving"]["sha256"]
    assert store.get(keys.version_object("5", "p5-v1", "manifest.json")).data == signed  # the signed manifest stays as published
    assert versions.load(store, "5", "p5-v1").version == "p5-v1"

    serving = {"topic": to_compact(fitted.pipeline)}
    versions.publish(store, "5", "job-b", {"topic": fitted.pipeline}, serving, {"topic": fitted.classes}, {"report": {"n": 9}}, charts={"topic": {}})
    store.put_json(keys.version_object("5", "p5-v2", "report.json"), {"report": {"n": 1}})
    (manifest,) = versions.read_manifests(store, "5", ["p5-v2"])
    assert manifest["report"] == {"n": 9} and manifest["charts_sha256"]
    assert store.get_json(keys.version_object("5", "p5-v2", "charts.json")) == {"topic": {}}



def test_a_version_name_with_thousands_of_digits_is_not_a_version():
    assert versions.version_number("p6-v" + "1" * 5000) is None and versions.version_number("p6-v12") == 12
