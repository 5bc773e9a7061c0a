"""Store keys of DESIGN §5, in one place. Ids must already be validated (`functions.ids`)."""

from __future__ import annotations

PROJECTS = "projects/"


def latest(project: str) -> str:
    return f"projects/{project}/latest.json"


def serving_pin(project: str) -> str:
    """Store key of the project's pin (`functions.pins`): the version served instead of the newest."""
    return f"projects/{project}/serving.json"


def models_prefix(project: str) -> str:
    return f"projects/{project}/models/"


def version_object(project: str, version: str, name: str) -> str:
    """``model.pkl``, ``labels.json`` or ``manifest.json`` of one version."""
    return f"projects/{project}/models/{version}/{name}"


def annotations_prefix(project: str) -> str:
    return f"projects/{project}/annotations/"


def annotation_task(project: str, task_id: int) -> str:
    return f"projects/{project}/annotations/{task_id}.json"


def deleted_prefix(project: str) -> str:
    return f"projects/{project}/deleted_annotations/"


def deleted_annotations(project: str, event_id: str) -> str:
    """The ids one ANNOTATIONS_DELETED event named."""
    return f"projects/{project}/deleted_annotations/{event_id}.json"


def jobs_prefix(project: str) -> str:
    return f"projects/{project}/jobs/"


def job(project: str, job_id: str) -> str:
    return f"projects/{project}/jobs/{job_id}.json"


def staged_request(project: str, job_id: str) -> str:
    return f"projects/{project}/requests/{job_id}.json"


def queued_slot(project: str) -> str:
    """Store key of the project's slot ``{"job_id": …, "claimed_at": …}``: the one job of the
    project that may be queued (`functions.scheduling`)."""
    return f"projects/{project}/queued_job.json"


def connected_key(project: str) -> str:
    """Store key of the record of a project's first authenticated /setup."""
    return f"projects/{project}/connected.json"


def runs_prefix(project: str) -> str:
    return f"projects/{project}/runs/"


def run_key(project: str, run_id: str) -> str:
    return f"projects/{project}/runs/{run_id}.json"


def chunks_prefix(project: str, run_id: str) -> str:
    return f"projects/{project}/runs/{run_id}/chunks/"


def chunk_key(project: str, run_id: str, page: int) -> str:
    return f"projects/{project}/runs/{run_id}/chunks/{page}.json"


def claim_key(project: str, run_id: str, page: int) -> str:
    return f"projects/{project}/runs/{run_id}/claims/{page}.json"
