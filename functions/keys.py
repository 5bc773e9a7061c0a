"""Store keys of DESIGN §5, in one place. Ids must already be validated (`functions.ids`)."""

from __future__ import annotations

PROJECTS = "projects/"


def latest(project: str) -> str:
    return f"projects/{project}/latest.json"


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
