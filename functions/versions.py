"""Model versions in the store: publish, point at, list and load them.

A version ``p<project>-v<n>`` (n = 1, 2, … per project) is immutable once published. Publishing
claims the number by writing the manifest (if-none-match), writes the model and its labels,
then moves ``latest.json`` (conditional on its etag, never backwards). A crash before the
pointer moves leaves the previous version serving. The manifest records the job id, so a
redelivered job finishes its own version instead of publishing a second one.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from functions import keys
from functions.errors import CorruptModel, PreconditionFailed
from functions.store import ObjectStore, json_bytes

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^p(\d+)-v(\d+)$")
MODEL, LABELS, MANIFEST = "model.pkl", "labels.json", "manifest.json"


def version_name(project: str, number: int) -> str:
    """The `model_version` string Label Studio shows, e.g. ``p12-v3``."""
    return f"p{project}-v{number}"


def version_number(version: str) -> int | None:
    """``3`` for ``p12-v3``; None for a name that is not a version."""
    match = _VERSION.match(version)
    return int(match.group(2)) if match else None


@dataclass(frozen=True)
class Pointer:
    """The content of ``latest.json``: which version a project serves."""

    version: str
    number: int


def read_pointer(store: ObjectStore, project: str) -> Pointer | None:
    """The project's serving version, or None before its first training."""
    found = store.get_json(keys.latest(project))
    if not found:
        return None
    return Pointer(found["version"], int(found["number"]))


def list_versions(store: ObjectStore, project: str) -> list[str]:
    """The project's published version names, oldest first."""
    names = [n for n in store.list_folders(keys.models_prefix(project)) if version_number(n) is not None]
    return sorted(names, key=lambda name: version_number(name) or 0)


def list_projects(store: ObjectStore) -> list[str]:
    """Ids of every project the store holds anything for, in numeric order."""
    return sorted((p for p in store.list_folders(keys.PROJECTS) if p.isdigit()), key=int)


def publish(
    store: ObjectStore,
    project: str,
    job_id: str,
    models: dict[str, Any],
    labels: dict[str, list[str]],
    manifest: dict[str, Any],
) -> str:
    """Store `models` (control name → fitted pipeline) as a new version and serve it.

    `labels` maps each control to its classes in the model's column order. `manifest` holds
    the report fields to keep (counts, metrics, parameters). Returns the version name.
    """
    artifact = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
    number = _claim_number(store, project, job_id, manifest | {"sha256": hashlib.sha256(artifact).hexdigest()})
    version = version_name(project, number)
    store.put(keys.version_object(project, version, MODEL), artifact)
    store.put_json(keys.version_object(project, version, LABELS), labels)
    _move_pointer(store, project, Pointer(version, number))
    log.info("project %s: published %s (%d bytes)", project, version, len(artifact))
    return version


def _claim_number(store: ObjectStore, project: str, job_id: str, manifest: dict[str, Any]) -> int:
    existing = [version_number(v) or 0 for v in list_versions(store, project)]
    for number in sorted(existing, reverse=True)[:3]:
        claimed = store.get_json(keys.version_object(project, version_name(project, number), MANIFEST))
        if claimed and claimed.get("job_id") == job_id:
            store.put_json(keys.version_object(project, version_name(project, number), MANIFEST), claimed | manifest | {"job_id": job_id})
            return number
    number = max(existing, default=0) + 1
    for _ in range(20):
        version = version_name(project, number)
        body = manifest | {
            "version": version,
            "number": number,
            "project": project,
            "job_id": job_id,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        try:
            store.put(keys.version_object(project, version, MANIFEST), json_bytes(body), if_none_match=True)
            return number
        except PreconditionFailed:
            number += 1
    raise PreconditionFailed(f"project {project}: could not claim a new version number")


def _move_pointer(store: ObjectStore, project: str, pointer: Pointer) -> None:
    body = {"version": pointer.version, "number": pointer.number, "updated_at": datetime.now(timezone.utc).isoformat()}
    for _ in range(20):
        current = store.get(keys.latest(project))
        if current is not None and int(current.json()["number"]) >= pointer.number:
            return
        try:
            if current is None:
                store.put_json(keys.latest(project), body, if_none_match=True)
            else:
                store.put_json(keys.latest(project), body, if_match=current.etag)
            return
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"project {project}: latest.json kept changing; {pointer.version} not served")


@dataclass(frozen=True)
class StoredModel:
    """A loaded version: fitted pipelines by control name, their labels, and the manifest."""

    version: str
    models: dict[str, Any]
    labels: dict[str, list[str]]
    manifest: dict[str, Any]


def load(store: ObjectStore, project: str, version: str) -> StoredModel:
    """Load one version, checking the model's SHA-256 against its manifest.

    Unpickling imports scikit-learn. Raises CorruptModel when an object is missing or altered:
    only versions a pointer names are loaded, and those must be complete.
    """
    objects = store.get_many([keys.version_object(project, version, n) for n in (MANIFEST, LABELS, MODEL)])
    if any(found is None for found in objects):
        raise CorruptModel(f"model {version} of project {project} is incomplete in the store")
    manifest, labels, artifact = objects[0].json(), objects[1].json(), objects[2].data  # type: ignore[union-attr]
    if hashlib.sha256(artifact).hexdigest() != manifest.get("sha256"):
        raise CorruptModel(f"model {version} of project {project} does not match its manifest checksum")
    return StoredModel(version, pickle.loads(artifact), labels, manifest)


def read_manifests(store: ObjectStore, project: str, names: list[str]) -> list[dict[str, Any]]:
    """The manifests of `names` (versions of `project`), in order; ``{"version": name}`` if missing."""
    found = store.get_many([keys.version_object(project, name, MANIFEST) for name in names])
    return [obj.json() if obj else {"version": name} for obj, name in zip(found, names)]
