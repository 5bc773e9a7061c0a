"""The per-project annotation log that Label Studio's webhooks build, so training never needs
to reach Label Studio.

One object per task (``annotations/<task_id>.json``: the task's data and its annotations by
id, newest `updated_at` kept) and one tombstone object per ANNOTATIONS_DELETED event
(``deleted_annotations/<event>.json``, the ids it names): Label Studio 1.23's event names
annotation ids only, and a tombstone also beats an update that arrives after the delete
(Label Studio never reuses an annotation id).
Writes are conditional (etag) and retried, so concurrent webhooks for one task lose nothing.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from functions import keys
from functions.dataset import timestamp_of
from functions.errors import InvalidRequest, PreconditionFailed
from functions.ids import new_job_id, preview
from functions.store import ObjectStore

KEPT_FIELDS = ("id", "result", "was_cancelled", "ground_truth", "created_at", "updated_at", "completed_by", "lead_time")


def record_annotation(store: ObjectStore, project: str, annotation: Mapping[str, Any], task: Mapping[str, Any] | None) -> None:
    """Upsert `annotation` (a webhook's ``annotation`` object) into the log of its task.

    Skips (``was_cancelled``) and empty results are kept as they are; training ignores them.

    Raises:
        InvalidRequest: the annotation has no integer ``id`` or no task id.
    """
    annotation_id = _integer(annotation.get("id"), "annotation.id")
    task_id = _integer(annotation.get("task", (task or {}).get("id")), "annotation.task")
    if not isinstance(annotation.get("result", []), list):
        raise InvalidRequest("annotation.result must be a list of results (Label Studio's format)")
    entry = {name: annotation.get(name) for name in KEPT_FIELDS if name in annotation}
    data = (task or {}).get("data") if isinstance((task or {}).get("data"), dict) else None
    key = keys.annotation_task(project, task_id)
    for _ in range(10):
        current = store.get(key)
        document = current.json() if current else {"id": task_id, "data": None, "annotations": {}}
        previous = document["annotations"].get(str(annotation_id))
        if previous is None or timestamp_of(entry.get("updated_at")) >= timestamp_of(previous.get("updated_at")):
            document["annotations"][str(annotation_id)] = entry
        if data is not None:
            document["data"] = data
        try:
            if current is None:
                store.put_json(key, document, if_none_match=True)
            else:
                store.put_json(key, document, if_match=current.etag)
            return
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"task {task_id} of project {project} kept changing; annotation {annotation_id} not recorded")


def record_deletions(store: ObjectStore, project: str, annotations: Iterable[Any]) -> int:
    """Record the deletion of each ``{"id": N}`` in `annotations` (one object, whatever their
    number); returns how many distinct ids."""
    ids = sorted({_integer(item.get("id") if isinstance(item, Mapping) else None, "annotations[].id") for item in annotations})
    if ids:
        store.put_json(keys.deleted_annotations(project, new_job_id()), {"ids": ids})
    return len(ids)


def read_log(store: ObjectStore, project: str) -> list[dict[str, Any]]:
    """The log as Label Studio export-format tasks ``{"id", "data", "annotations": [...]}``,
    deleted annotations left out, in task id order."""
    tombstones = store.get_many(store.list_keys(keys.deleted_prefix(project)))
    deleted = {str(i) for found in tombstones if found for i in found.json().get("ids", [])}
    tasks = []
    for found in store.get_many(store.list_keys(keys.annotations_prefix(project))):
        if found is None:
            continue
        document = found.json()
        annotations = [a for a_id, a in document["annotations"].items() if a_id not in deleted]
        if annotations:  # like Label Studio's export: tasks whose annotations were all deleted are not annotated
            tasks.append({"id": document["id"], "data": document.get("data") or {}, "annotations": annotations})
    return sorted(tasks, key=lambda task: task["id"])


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidRequest(f"{field} must be a Label Studio id (an integer from 0 to 2**63-1), got {preview(value)}")
    return value
