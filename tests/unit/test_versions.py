import pytest

from functions import keys, versions
from functions.model.classifier import ModelParams, fit
from functions.errors import CorruptModel
from functions.store import LocalStore


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path)


@pytest.fixture(scope="module")
def fitted():
    return fit(["good match", "great goal", "rain storm", "snow wind"], ["Sport", "Sport", "Weather", "Weather"], ModelParams())


def publish(store, fitted, job_id, project="5"):
    return versions.publish(store, project, job_id, {"topic": fitted.pipeline}, {"topic": fitted.classes}, {"report": {"n": 4}})


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


def test_load_returns_the_models_labels_and_manifest(store, fitted):
    publish(store, fitted, "job-a")
    loaded = versions.load(store, "5", "p5-v1")
    assert loaded.labels == {"topic": ["Sport", "Weather"]}
    assert loaded.manifest["job_id"] == "job-a" and loaded.manifest["report"] == {"n": 4}
    assert list(loaded.models["topic"].predict(["goal"])) == ["Sport"]


def test_an_altered_model_is_refused(store, fitted):
    publish(store, fitted, "job-a")
    key = keys.version_object("5", "p5-v1", "model.pkl")
    store.put(key, store.get(key).data + b"tampered")
    with pytest.raises(CorruptModel, match="checksum"):
        versions.load(store, "5", "p5-v1")
