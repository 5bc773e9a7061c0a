"""When a queued or running job counts as abandoned (`functions.jobs.abandonment`), and which
Label Studio projects a Start Training may export (`functions.projects`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from functions.jobs import Job, JobState, Liveness, abandonment
from functions.projects import allowed_projects, export_refusal
from functions.settings import Settings
from functions.store import LocalStore

AT = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
LIVE = Liveness(lease_seconds=900, queue_hold_seconds=5400)


def job(state, seconds_ago, *, heartbeat_ago=None, job_id="b" * 32, worker=None):
    record = Job(job_id=job_id, project="1", source="start_training", label_config="<View/>", state=state, worker=worker)
    record.updated_at = (AT - timedelta(seconds=seconds_ago)).isoformat()
    if heartbeat_ago is not None:
        record.heartbeat_at = (AT - timedelta(seconds=heartbeat_ago)).isoformat()
    return record


def test_a_running_job_is_abandoned_once_its_heartbeat_is_older_than_the_lease():
    assert abandonment(job(JobState.RUNNING, 3000, heartbeat_ago=899), LIVE, at=AT) is None
    stale = job(JobState.RUNNING, 3000, heartbeat_ago=901)
    assert abandonment(stale, LIVE, at=AT) == (
        f"abandoned: no heartbeat since {stale.heartbeat_at} (the worker died?); request training again"
    )


def test_a_queued_job_may_wait_the_lease_plus_the_queue_visibility_timeout():
    assert abandonment(job(JobState.QUEUED, 900 + 5400 - 1), LIVE, at=AT) is None
    lost = abandonment(job(JobState.QUEUED, 900 + 5400 + 1), LIVE, at=AT)
    assert lost.startswith("abandoned: queued, and no worker took it since") and "(the queue lost it or the worker died?)" in lost


def test_a_queued_job_waiting_behind_a_live_older_job_is_not_abandoned():
    waiting = job(JobState.QUEUED, 9000, job_id="b" * 32)
    ahead = job(JobState.RUNNING, 9000, heartbeat_ago=10, job_id="a" * 32)
    newer = job(JobState.RUNNING, 9000, heartbeat_ago=10, job_id="c" * 32)
    assert abandonment(waiting, LIVE, [ahead], at=AT) is None
    assert abandonment(waiting, LIVE, [newer], at=AT) is not None  # a newer job is not what it waits for


def test_finished_jobs_and_jobs_of_live_local_workers_are_never_abandoned_but_a_gone_worker_is():
    assert abandonment(job(JobState.FAILED, 10**6), LIVE, at=AT) is None
    alive = Liveness(900, 0, worker_alive=lambda worker: worker == "local:h:1:a")
    assert abandonment(job(JobState.QUEUED, 10**6, worker="local:h:1:a"), alive, at=AT) is None
    gone = abandonment(job(JobState.QUEUED, 1, worker="local:h:2:b"), alive, at=AT)
    assert gone == "abandoned: its worker (local:h:2:b) is gone (the process was stopped or crashed); request training again"


def test_queued_jobs_wait_forever_when_jobs_are_run_by_hand():
    assert abandonment(job(JobState.QUEUED, 10**7), Liveness(900, float("inf")), at=AT) is None


def test_label_studio_projects_lists_the_projects_that_may_be_exported(tmp_path):
    store = LocalStore(tmp_path)
    assert allowed_projects(Settings(label_studio_projects=" 12, 007 ,,")) == {"12", "7"}
    assert allowed_projects(Settings(label_studio_projects=" ")) is None
    listed = Settings(label_studio_projects="12")
    assert export_refusal(store, listed, "12") is None
    assert export_refusal(store, listed, "13") == (
        "project 13 is not in LABEL_STUDIO_PROJECTS, so it was not read from Label Studio; "
        "add 13 to LABEL_STUDIO_PROJECTS to train on all its annotations"
    )
    refusal = export_refusal(store, Settings(), "13")
    assert "never connected to this backend through an authenticated /setup" in refusal and "LABEL_STUDIO_PROJECTS=13" in refusal
    store.put_json("projects/13/connected.json", {"project": "13", "connected_at": "2026-01-01T00:00:00+00:00"})
    assert export_refusal(store, Settings(), "13") is None
    assert export_refusal(store, listed, "13") is not None  # the list, when set, is all that counts
