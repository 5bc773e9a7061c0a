"""The per-project annotation log that Label Studio's webhooks build, so training never needs
to reach Label Studio.

One object per task (``annotations/<task_id>.json``: the task's data and its annotations by
id, newest `updated_at` kept) and one tombstone object per ANNOTATIONS_DELETED event
(``deleted_annotations/<event>.json``, the ids it names): Label Studio 1.23's event names
annotation ids only, and a tombstone also beats an update that arrives after the delete
(Label Studio never reuses an annotation id).
Writes are conditional (etag) and retried, so concurrent webhooks for one task lose nothing.

Anyone who can reach /webhook could otherwise pin or bloat the log, so an event is accepted
only if it is plausible (`LogLimits`): its ``updated_at`` is not in the future beyond a clock
skew, its texts are not huge, and a deletion names a bounded number of ids. The task's data
follows the same newest-wins rule as annotations (``data_updated_at``): a late delivery never
overwrites newer text.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from functions import keys
from functions.dataset import timestamp_of
from functions.errors import InvalidRequest, PreconditionFailed
from functions.ids import new_job_id, preview
from functions.store import ObjectStore

log = logging.getLogger(__name__)

KEPT_FIELDS = ("id", "result", "was_cancelled", "ground_truth", "created_at", "updated_at", "completed_by", "lead_time")


@dataclass(frozen=True)
class LogLimits:
    """What an acceptable webhook event looks like (the settings MAX_TEXT_CHARS,
    MAX_IDS_PER_WEBHOOK and WEBHOOK_CLOCK_SKEW_SECONDS)."""

    max_text_chars: int = 100_000
    max_ids: int = 1_000
    clock_skew_seconds: float = 300.0

    @classmethod
    def of(cls, settings: Any) -> "LogLimits":
        """The limits a `functions.settings.Settings` sets."""
        return cls(settings.max_text_chars, settings.max_ids_per_webhook, settings.webhook_clock_skew_seconds)


def record_annotation(
    store: ObjectStore, project: str, annotation: Mapping[str, Any], task: Mapping[str, Any] | None,
    limits: LogLimits = LogLimits(),
) -> None:
    """Upsert `annotation` (a webhook's ``annotation`` object) into the log of its task.

    Skips (``was_cancelled``) and empty results are kept as they are; training ignores them.

    Raises:
        InvalidRequest: the annotation has no integer ``id`` or no task id, its ``updated_at``
            lies in the future, or the task's data is over the size limits.
    """
    annotation_id = _integer(annotation.get("id"), "annotation.id")
    task_id = _integer(annotation.get("task", (task or {}).get("id")), "annotation.task")
    if not isinstance(annotation.get("result", []), list):
        raise InvalidRequest("annotation.result must be a list of results (Label Studio's format)")
    entry = {name: annotation.get(name) for name in KEPT_FIELDS if name in annotation}
    updated = timestamp_of(entry.get("updated_at"))
    if updated > time.time() + limits.clock_skew_seconds:
        raise InvalidRequest(f"annotation.updated_at {preview(entry.get('updated_at'))} lies in the future: check "
                             f"Label Studio's clock (allowed skew {limits.clock_skew_seconds:g} s)")
    data = (task or {}).get("data") if isinstance((task or {}).get("data"), dict) else None
    if data is not None:
        _check_size(data, limits.max_text_chars)
    key = keys.annotation_task(project, task_id)
    for _ in range(10):
        current = store.get(key)
        document = _document(current, task_id)
        previous = document["annotations"].get(str(annotation_id))
        if previous is None or updated >= timestamp_of(previous.get("updated_at")):
            document["annotations"][str(annotation_id)] = entry
        if data is not None and (document.get("data") is None or updated >= timestamp_of(document.get("data_updated_at"))):
            document["data"], document["data_updated_at"] = data, entry.get("updated_at")
        try:
            if current is None:
                store.put_json(key, document, if_none_match=True)
            else:
                store.put_json(key, document, if_match=current.etag)
            return
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"task {task_id} of project {project} kept changing; annotation {annotation_id} not recorded")


def record_deletions(store: ObjectStore, project: str, annotations: Iterable[Any], limits: LogLimits = LogLimits()) -> int:
    """Record the deletion of each ``{"id": N}`` in `annotations` (one object, whatever their
    number); returns how many distinct ids.

    Raises:
        InvalidRequest: an id is not an integer, or there are more than ``limits.max_ids``.
    """
    ids = sorted({_integer(item.get("id") if isinstance(item, Mapping) else None, "annotations[].id") for item in annotations})
    if len(ids) > limits.max_ids:
        raise InvalidRequest(f"ANNOTATIONS_DELETED names {len(ids)} annotations; at most {limits.max_ids} are accepted "
                             "per event (MAX_IDS_PER_WEBHOOK)")
    if ids:
        store.put_json(keys.deleted_annotations(project, new_job_id()), {"ids": ids})
    return len(ids)


def read_log(store: ObjectStore, project: str) -> list[dict[str, Any]]:
    """The log as Label Studio export-format tasks ``{"id", "data", "annotations": [...]}``,
    deleted annotations left out, in task id order."""
    deleted: set[str] = set()
    for found in store.get_many(store.list_keys(keys.deleted_prefix(project))):
        tombstone = _readable(found, "ids", list)
        deleted.update(str(i) for i in (tombstone or {}).get("ids", []))
    tasks = []
    for found in store.get_many(store.list_keys(keys.annotations_prefix(project))):
        document = _readable(found, "annotations", dict)
        if document is None or not isinstance(document.get("id"), int):
            continue
        annotations = [a for a_id, a in document["annotations"].items() if a_id not in deleted and isinstance(a, dict)]
        if annotations:  # like Label Studio's export: tasks whose annotations were all deleted are not annotated
            data = document.get("data") if isinstance(document.get("data"), dict) else {}
            tasks.append({"id": document["id"], "data": data, "annotations": annotations})
    return sorted(tasks, key=lambda task: task["id"])


def _document(current: Any, task_id: int) -> dict[str, Any]:
    """The stored log object of a task, or a fresh one if there is none or it is unreadable."""
    document = _readable(current, "annotations", dict)
    return document if document is not None else {"id": task_id, "data": None, "annotations": {}}


def _readable(found: Any, field: str, kind: type) -> Any:
    """`found`'s JSON document if it decodes to an object whose `field` is a `kind`, else None
    (a corrupt object is logged and skipped: it must never stop training or the webhook)."""
    if found is None:
        return None
    try:
        document = found.json()
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or not isinstance(document.get(field), kind):
        log.warning("annotation log: skipping an unreadable object (%d bytes)", len(found.data))
        return None
    return document


def _check_size(data: Mapping[str, Any], max_chars: int) -> None:
    longest = max((len(value) for value in data.values() if isinstance(value, str)), default=0)
    total = len(json.dumps(data, ensure_ascii=False))
    if longest > max_chars or total > 4 * max_chars:
        raise InvalidRequest(f"the task's data is too large ({longest:,} characters in its longest text, {total:,} in "
                             f"all); the backend accepts {max_chars:,} per text and {4 * max_chars:,} in all (MAX_TEXT_CHARS)")


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidRequest(f"{field} must be a Label Studio id (an integer from 0 to 2**63-1), got {preview(value)}")
    return value
