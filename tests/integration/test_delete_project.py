"""Delete a project's data (issue 11, item 2): `python -m functions.cli delete-project` on a local
store and on a versioned S3 bucket (moto), with and without a store prefix.

GIVEN projects 1, 12 and 2 with data of every kind (versions, pointer, pin, annotation log,
deleted-annotation events, jobs, staged request, queued slot, runs with chunk and claim records,
connected.json) WHEN project 1 is deleted THEN nothing under projects/1/ is left (on S3 with
--all-versions, no version or delete marker either) and projects 12 and 2 are byte for byte
what they were; a dry run deletes nothing and counts right; a busy project is refused; the
prompt wants the project id; a second run has nothing to delete; the project trains again.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from functions import keys, versions
from functions.api.app import create_app
from functions.cli import main
from functions.ids import new_job_id
from functions.jobs import START_TRAINING, Job, JobState, save_job
from functions.model.classifier import ModelParams, fit
from functions.model.export import to_compact
from functions.runs.records import Run, RunState, save_run
from functions.settings import Settings
from functions.store import LocalStore, open_store
from tests.conftest import sample_config, sample_tasks

BUCKET = "delete-test-models"
SIGNING_KEY = "delete-test-signing-key"
CONFIG = sample_config()
# What `populate` writes per project, by kind (the command's --json counts).
KINDS = {"versions": 10, "annotations": 3, "jobs": 4, "runs": 3, "other": 3}


class Terminal(io.StringIO):
    """Standard input that is a terminal, with what the user types."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def fitted():
    return fit(["good match", "great goal", "rain storm", "snow wind"], ["Sport", "Sport", "Weather", "Weather"], ModelParams())


@pytest.fixture(params=["local", "s3", "s3-prefix"])
def uri(request, tmp_path, monkeypatch):
    """A store URI the command is given (--store); S3 ones on a versioned moto bucket."""
    monkeypatch.setenv("MODEL_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal unless a test says so
    if request.param == "local":
        yield f"file://{tmp_path / 'store'}"
        return
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield f"s3://{BUCKET}/team" if request.param == "s3-prefix" else f"s3://{BUCKET}"


def store_of(uri):
    return open_store(uri, Settings(model_store_uri=uri))


def populate(store, project: str, fitted) -> None:
    """Every kind of object a project gets, written by the backend's own helpers where it has them."""
    settings = Settings(model_signing_key=SIGNING_KEY)
    for job_id in ("job-a", "job-b"):  # p<id>-v1, p<id>-v2: 5 objects each
        versions.publish(store, project, job_id, {"topic": fitted.pipeline}, {"topic": to_compact(fitted.pipeline)},
                         {"topic": fitted.classes}, {"report": {"n": 4}}, settings=settings)
    store.put_json(keys.serving_pin(project), {"version": f"p{project}-v1", "source": "operator", "since": "2026-01-01"})
    store.put_json(keys.connected_key(project), {"connected_at": "2026-01-01T00:00:00+00:00"})
    store.put_json(keys.annotation_task(project, 7), {"task": 7, "project": project, "result": ["Sport"]})
    store.put_json(keys.annotation_task(project, 7), {"task": 7, "project": project, "result": ["Weather"]})  # rewritten
    store.put_json(keys.annotation_task(project, 8), {"task": 8, "project": project})
    store.put_json(keys.deleted_annotations(project, "event-1"), {"ids": [3]})
    for state in (JobState.SUCCEEDED, JobState.FAILED):
        save_job(store, Job(job_id=new_job_id(), project=project, state=state, source=START_TRAINING, label_config=CONFIG))
    store.put(keys.staged_request(project, "job-c"), b'{"annotations": []}', expiring=True)
    store.put_json(keys.queued_slot(project), {"job_id": "job-c", "claimed_at": "2026-01-01"})
    run = save_run(store, Run(run_id=new_job_id(), project=project, state=RunState.SUCCEEDED, model_version=f"p{project}-v2"))
    store.put_json(keys.chunk_key(project, run.run_id, 1), {"page": 1, "tasks_done": 3})
    store.put_json(keys.claim_key(project, run.run_id, 1), {"released": True})


@pytest.fixture
def stores(uri, fitted):
    """Projects 1, 12 and 2 populated; returns the store."""
    store = store_of(uri)
    for project in ("1", "12", "2"):
        populate(store, project, fitted)
    return store


def everything(store) -> dict[str, bytes]:
    """Every current object of the store, key → bytes."""
    return {key: store.get(key).data for key in store.list_keys("projects/")}


def all_versions(store, prefix: str = "projects/") -> list[tuple[str, str, bool]]:
    """S3: (key, version id, delete marker) of every version under `prefix`, sorted; [] locally."""
    if not hasattr(store, "list_object_versions"):
        return []
    return sorted((v.key, v.version_id, v.delete_marker) for v in store.list_object_versions(prefix))


def others(snapshot: dict, project: str = "1") -> dict:
    return {key: value for key, value in snapshot.items() if not key.startswith(f"projects/{project}/")}


def delete(uri, *args: str) -> int:
    return main(["delete-project", "--store", uri, "--project", "1", *args])


def test_a_delete_leaves_nothing_of_the_project_and_every_other_project_byte_for_byte(stores, uri, capsys):
    before, versions_before = everything(stores), all_versions(stores)
    assert len([k for k in before if k.startswith("projects/1/")]) == sum(KINDS.values())
    assert delete(uri, "--yes") == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"deleted from {uri}/projects/1/:") and "2 model version(s): p1-v1, p1-v2" in out
    assert out.splitlines()[-1].split()[:3] == ["total", "23", "objects"]
    assert stores.list_keys("projects/1/") == []
    assert stores.get(keys.latest("1")) is None and versions.list_versions(stores, "1") == []
    assert everything(stores) == others(before)  # projects 12 and 2: every key, every byte
    if uri.startswith("s3://"):
        # Versioning keeps what was deleted, hidden behind delete markers, until --all-versions or the lifecycle rule.
        left = all_versions(stores, "projects/1/")
        # 23 deleted objects, plus the earlier versions of the two rewritten ones (latest.json, annotation of task 7)
        assert sum(1 for _, _, marker in left if marker) == 23 and sum(1 for _, _, marker in left if not marker) == 25
        assert "S3 versioning keeps 25 earlier version(s)" in err and "and 23 delete marker(s)" in err
        assert "--all-versions removes them now" in err
        assert [v for v in all_versions(stores) if not v[0].startswith("projects/1/")] == \
            [v for v in versions_before if not v[0].startswith("projects/1/")]
    else:
        assert not (stores.root / "projects" / "1").exists() and stores.list_folders("projects/") == ["12", "2"]
    assert "stop serving the project within POINTER_TTL_SECONDS" in err and "Label Studio's own copy" in err


@pytest.mark.parametrize("first_plain", [False, True])
def test_all_versions_leaves_no_version_and_no_delete_marker(stores, uri, capsys, first_plain):
    versions_before = all_versions(stores)
    if first_plain:
        assert delete(uri, "--yes") == 0
        capsys.readouterr()
    assert delete(uri, "--yes", "--all-versions", "--json") == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["deleted"] is (not first_plain or uri.startswith("s3://"))  # locally the plain delete left nothing
    assert stores.list_keys("projects/1/") == []
    assert all_versions(stores, "projects/1/") == []  # nothing left to restore
    if uri.startswith("s3://"):
        client, prefix = boto3.client("s3"), ("team/" if uri.endswith("/team") else "") + "projects/1/"
        listed = client.list_object_versions(Bucket=BUCKET, Prefix=prefix)
        assert "Versions" not in listed and "DeleteMarkers" not in listed
        assert reply["objects"] == (0 if first_plain else 23)
        earlier = everything_bytes_of_project_1 = reply["all_versions"]["earlier_bytes"]
        assert reply["all_versions"] == {"earlier_versions": 25 if first_plain else 2, "earlier_bytes": earlier,
                                         "delete_markers": 23 if first_plain else 0}
        assert everything_bytes_of_project_1 > (13_000 if first_plain else 0)
    assert [v for v in all_versions(stores) if not v[0].startswith("projects/1/")] == \
        [v for v in versions_before if not v[0].startswith("projects/1/")]


def test_a_dry_run_counts_every_kind_and_deletes_nothing(stores, uri, capsys):
    before, versions_before = everything(stores), all_versions(stores)
    assert delete(uri, "--dry-run", "--json") == 0
    reply = json.loads(capsys.readouterr().out)
    assert {kind: counts["objects"] for kind, counts in reply["kinds"].items()} == KINDS
    assert reply["objects"] == 23 and reply["bytes"] == sum(len(v) for k, v in before.items() if k.startswith("projects/1/"))
    assert reply["model_versions"] == ["p1-v1", "p1-v2"] and reply["dry_run"] is True and reply["deleted"] is False
    assert reply["busy"] == [] and reply["all_versions"] is None and reply["prefix"] == "projects/1/"
    assert delete(uri, "--dry-run") == 0  # the text for people
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"would delete from {uri}/projects/1/:" and out[-1] == "dry run: nothing deleted"
    assert [line.split()[:3] for line in out[1:7]] == [
        ["versions", "10", "objects"], ["annotations", "3", "objects"], ["jobs", "4", "objects"], ["runs", "3", "objects"],
        ["other", "3", "objects"], ["total", "23", "objects"]]
    assert out[5].endswith("connected.json, latest.json, serving.json")
    assert everything(stores) == before and all_versions(stores) == versions_before


def test_a_dry_run_with_all_versions_counts_what_s3_keeps(stores, uri, capsys):
    assert delete(uri, "--dry-run", "--all-versions", "--json") == 0
    reply = json.loads(capsys.readouterr().out)
    if uri.startswith("s3://"):  # latest.json (moved to v2) and the annotation of task 7 were rewritten: one earlier version each
        pointer_v1 = len(json.dumps({"version": "p1-v1", "number": 1, "job_id": "job-a", "updated_at": "2026-01-01T00:00:00.000000+00:00"},
                                    separators=(",", ":")))
        first_annotation = len(b'{"task":7,"project":"1","result":["Sport"]}')
        earlier = pointer_v1 + first_annotation
        assert reply["all_versions"] == {"earlier_versions": 2, "earlier_bytes": earlier, "delete_markers": 0}
    else:
        assert reply["all_versions"] is None
    assert stores.list_keys("projects/1/") != []


def running_job(store, project: str, state: JobState, age: timedelta = timedelta(0), worker: str | None = None) -> Job:
    """A job record whose last sign of life is `age` ago (written raw: save_job stamps now)."""
    at = (datetime.now(timezone.utc) - age).isoformat()
    job = Job(job_id=new_job_id(), project=project, state=state, source=START_TRAINING, label_config=CONFIG,
              updated_at=at, heartbeat_at=at if state == JobState.RUNNING else None, worker=worker)
    store.put(keys.job(project, job.job_id), job.model_dump_json().encode(), expiring=True)
    return job


@pytest.mark.parametrize("state", [JobState.RUNNING, JobState.QUEUED])
def test_a_queued_or_running_job_refuses_the_delete_unless_forced(stores, uri, capsys, state):
    job = running_job(stores, "1", state)
    before = everything(stores)
    assert delete(uri, "--yes") == 1
    err = capsys.readouterr().err
    assert f"error: project 1 is busy: training job {job.job_id} is {state.value}" in err
    assert "wait until it finishes (GET /projects/1 shows it), or pass --force" in err
    assert everything(stores) == before
    assert delete(uri, "--dry-run") == 0
    assert f"the delete would refuse now (pass --force to delete anyway): training job {job.job_id}" in capsys.readouterr().out
    assert delete(uri, "--yes", "--force") == 0
    assert stores.list_keys("projects/1/") == [] and everything(stores) == others(before)


def test_an_unfinished_prediction_run_refuses_the_delete(stores, uri, capsys):
    run = save_run(stores, Run(run_id=new_job_id(), project="1", state=RunState.RUNNING, model_version="p1-v2"))
    assert delete(uri, "--yes") == 1
    assert f"error: project 1 is busy: prediction run {run.run_id} is running" in capsys.readouterr().err
    assert stores.get(keys.latest("1")) is not None


def test_abandoned_jobs_and_runs_and_another_projects_job_do_not_refuse(stores, uri, capsys):
    running_job(stores, "1", JobState.RUNNING, age=timedelta(hours=1))  # no heartbeat for an hour (lease 900 s)
    running_job(stores, "1", JobState.QUEUED, worker="local:gone-host-but-this-one:1:abcd")
    dead = f"local:{__import__('socket').gethostname()}:999999999:dead"  # this host, no such process
    running_job(stores, "1", JobState.QUEUED, worker=dead)
    save_run(stores, Run(run_id=new_job_id(), project="1", state=RunState.RUNNING, worker=dead))
    running_job(stores, "12", JobState.RUNNING)  # project 12 is busy, project 1 is not
    assert delete(uri, "--dry-run", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["busy"]) == 1  # the one with an unknown host's worker: it may run
    assert delete(uri, "--yes", "--force") == 0


def test_without_a_terminal_it_needs_yes_and_on_one_the_project_id(stores, uri, capsys, monkeypatch):
    before = everything(stores)
    assert delete(uri) == 1
    assert "error: standard input is not a terminal, so nobody can confirm: pass --yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Terminal("12\n"))  # the wrong project
    assert delete(uri) == 1
    err = capsys.readouterr().err
    assert "about to delete:" in err and "type the project id (1) to delete it:" in err
    assert "error: not confirmed (typed '12', not '1'): nothing deleted" in err
    monkeypatch.setattr("sys.stdin", Terminal(""))  # end of input (Ctrl-D)
    assert delete(uri) == 1
    assert everything(stores) == before
    monkeypatch.setattr("sys.stdin", Terminal(" 1\n"))
    assert delete(uri) == 0
    assert stores.list_keys("projects/1/") == [] and everything(stores) == others(before)


def test_a_second_delete_has_nothing_to_delete(stores, uri, capsys):
    assert delete(uri, "--yes") == 0
    capsys.readouterr()
    assert delete(uri, "--yes") == 0
    assert capsys.readouterr().out == f"project 1 has nothing under {uri}/projects/1/: nothing to delete\n"
    assert delete(uri, "--json") == 0  # nothing to confirm either
    assert json.loads(capsys.readouterr().out) == {"project": "1", "store": f"{uri}/projects/1/", "deleted": False, "objects": 0}
    assert delete(uri, "--yes", "--all-versions") == 0
    capsys.readouterr()
    assert delete(uri, "--yes", "--all-versions") == 0
    assert "nothing to delete" in capsys.readouterr().out


@pytest.mark.parametrize("project", ["1/", "../2", "x", ""])
def test_a_project_id_that_is_no_id_is_refused(stores, uri, capsys, project):
    before = everything(stores)
    assert main(["delete-project", "--store", uri, "--project", project, "--yes"]) == 1
    assert capsys.readouterr().err.startswith("error: --project:")
    assert everything(stores) == before


def test_the_project_trains_again_from_version_1(stores, uri, tmp_path, capsys):
    """After the delete the pointer and every version are gone, so the next training publishes
    p1-v1 again. (On S3 after a plain delete too: AWS lists no common prefix whose keys are all
    delete markers, so `versions.publish` finds no version folder; moto 5 still lists them and
    would number on from p1-v3, hence --all-versions here.)"""
    assert delete(uri, "--yes", "--all-versions") == 0
    capsys.readouterr()
    export = tmp_path / "export.json"
    export.write_text(json.dumps(sample_tasks()), encoding="utf-8")
    assert main(["train", "--store", uri, "--project", "1", "--export", str(export), "-q"]) == 0
    assert capsys.readouterr().out.startswith("published p1-v1 for project 1")
    assert versions.list_versions(stores, "1") == ["p1-v1"]
    with TestClient(create_app(Settings(model_store_uri=uri, model_signing_key=SIGNING_KEY))) as client:
        reply = client.post("/setup", json={"project": "1.1700000000", "schema": CONFIG})
    assert reply.status_code == 200 and reply.json()["model_version"] == "p1-v1"
    assert versions.list_versions(stores, "12") == ["p12-v1", "p12-v2"]


def test_a_running_api_serves_the_new_version_1_after_the_delete(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("MODEL_SIGNING_KEY", SIGNING_KEY)
    uri = f"file://{tmp_path / 'store'}"
    tasks = sample_tasks()
    rotated = {"Politics": "Sport", "Sport": "Weather", "Weather": "Technology", "Technology": "Politics"}
    relabelled = json.loads(json.dumps(tasks))
    for task in relabelled:
        for result in task["annotations"][0]["result"]:
            result["value"]["choices"] = [rotated[c] for c in result["value"]["choices"]]
    exports = []
    for name, export in (("a.json", tasks), ("b.json", relabelled)):
        exports.append(tmp_path / name)
        exports[-1].write_text(json.dumps(export), encoding="utf-8")
    config = tmp_path / "config.xml"
    config.write_text(CONFIG, encoding="utf-8")
    train = ["train", "--store", uri, "--project", "1", "--label-config", str(config), "-q", "--export"]
    body = {"project": "1.1700000000", "label_config": CONFIG, "tasks": [{"id": 1, "data": tasks[0]["data"]}]}
    settings = Settings(model_store_uri=uri, model_signing_key=SIGNING_KEY, pointer_ttl_seconds=0.0)
    assert main([*train, str(exports[0])]) == 0
    with TestClient(create_app(settings)) as client:
        before = client.post("/predict", json=body).json()["results"][0]["result"][0]["value"]["choices"]
        assert delete(uri, "--yes", "-q") == 0
        assert client.post("/setup", json={"project": "1.1700000000", "schema": CONFIG}).json()["model_version"] == "untrained"
        assert main([*train, str(exports[1])]) == 0
        after = client.post("/predict", json=body).json()["results"][0]["result"][0]["value"]["choices"]
    assert before == ["Politics"] and after == [rotated["Politics"]]  # the new p1-v1 learnt the rotated labels


def test_a_running_api_records_the_connection_again_after_the_delete(tmp_path, monkeypatch):
    """Label Studio still connected after a delete (or connected again): the next /setup records
    the project again, once this process's RECHECK_SECONDS have passed, so Start Training may pull it."""
    import time as clock

    from functions import projects

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    uri = f"file://{tmp_path / 'store'}"
    store, setup = open_store(uri), {"project": "3.1700000000", "schema": CONFIG}

    def recorded() -> bool:  # /setup records it beside its reply, in a thread
        for _ in range(100):
            if store.get(keys.connected_key("3")) is not None:
                return True
            clock.sleep(0.02)
        return False

    with TestClient(create_app(Settings(model_store_uri=uri, model_signing_key=SIGNING_KEY))) as client:
        assert client.post("/setup", json=setup).status_code == 200 and recorded()
        assert main(["delete-project", "--store", uri, "--project", "3", "--yes", "-q"]) == 0
        assert store.get(keys.connected_key("3")) is None
        monkeypatch.setattr(projects, "RECHECK_SECONDS", 0.0)
        assert client.post("/setup", json=setup).status_code == 200 and recorded()
        assert client.get("/projects/3").json()["connected_at"]


def test_a_run_whose_chunks_are_all_recorded_is_not_busy(stores, uri, capsys):
    run = save_run(stores, Run(run_id=new_job_id(), project="1", state=RunState.RUNNING, planned=True, chunks=2))
    for page in (1, 2):
        stores.put_json(keys.chunk_key("1", run.run_id, page), {"page": page, "tasks_done": 1})
    assert delete(uri, "--dry-run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["busy"] == []
    stores.delete([keys.chunk_key("1", run.run_id, 2)])
    assert delete(uri, "--dry-run", "--json") == 0
    assert json.loads(capsys.readouterr().out)["busy"] == [f"prediction run {run.run_id} is running (created {run.created_at})"]


@pytest.mark.parametrize("writes, status", [(1, 0), (100, 1)])
def test_what_is_written_while_deleting_is_deleted_too_or_named(tmp_path, fitted, monkeypatch, capsys, writes, status):
    """A webhook storing an annotation during the delete: the next listing finds it and it goes too;
    a writer that never stops leaves the command failing with what to stop."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    uri = f"file://{tmp_path / 'store'}"
    populate(store_of(uri), "1", fitted)
    real_delete, done = LocalStore.delete, []

    def delete_then_a_webhook_writes(self, keys_to_delete):
        real_delete(self, keys_to_delete)
        if len(done) < writes:
            done.append(1)
            self.put_json(keys.annotation_task("1", 1000 + len(done)), {"task": 1000 + len(done)})

    monkeypatch.setattr(LocalStore, "delete", delete_then_a_webhook_writes)
    assert delete(uri, "--yes") == status
    out, err = capsys.readouterr()
    if status == 0:
        assert store_of(uri).list_keys("projects/1/") == [] and out.startswith("deleted from")
    else:
        assert "error: 1 key(s) of project 1 were written while deleting (e.g. projects/1/annotations/" in err
        assert "stop what writes them (Label Studio's webhooks and /setup while the model is connected" in err
        assert len(store_of(uri).list_keys("projects/1/")) == 1
