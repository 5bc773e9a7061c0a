"""Model versions in the store: publish, point at, list and load them.

A version ``p<project>-v<n>`` (n = 1, 2, … per project) is immutable once published. It holds
``model.pkl`` (the fitted scikit-learn pipelines, the canonical artifact, as in the original
tutorial), ``model.npz`` (the same models as data: what the API serves, see
`functions.model.compact`), ``labels.json`` and ``manifest.json`` with the SHA-256 of both
models. Publishing claims the number by writing the manifest (if-none-match), writes the
objects, then moves ``latest.json`` (conditional on its etag, never backwards). A crash before
the pointer moves leaves the previous version serving. The manifest records the job id, so a
redelivered job finishes its own version instead of publishing a second one.

Loading reads ``model.npz`` only: serving never unpickles and never imports scikit-learn.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from functions import keys
from functions.errors import CorruptModel, PreconditionFailed
from functions.store import ObjectStore, json_bytes

if TYPE_CHECKING:  # NumPy is imported by the first load, not by /health and /setup
    from functions.model import compact

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^p(\d+)-v(\d+)$")
MODEL, SERVING_MODEL, LABELS, MANIFEST = "model.pkl", "model.npz", "labels.json", "manifest.json"


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
    serving_models: dict[str, compact.CompactModel],
    labels: dict[str, list[str]],
    manifest: dict[str, Any],
) -> str:
    """Store a new version and serve it; returns its name.

    `models` maps each control to its fitted pipeline (pickled into ``model.pkl``),
    `serving_models` to its compact model (checked against the pipeline by the caller),
    `labels` to its classes in the models' column order. `manifest` holds the report fields
    to keep (counts, metrics, parameters); the SHA-256 of both artifacts is added to it.
    """
    from functions.model import compact

    artifact = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
    serving = compact.dumps(serving_models)
    digests = {
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "serving": {"file": SERVING_MODEL, "format": compact.FORMAT, "sha256": hashlib.sha256(serving).hexdigest()},
    }
    number = _claim_number(store, project, job_id, manifest | digests)
    version = version_name(project, number)
    store.put(keys.version_object(project, version, MODEL), artifact)
    store.put(keys.version_object(project, version, SERVING_MODEL), serving)
    store.put_json(keys.version_object(project, version, LABELS), labels)
    _move_pointer(store, project, Pointer(version, number))
    log.info("project %s: published %s (model.pkl %d bytes, model.npz %d bytes)", project, version, len(artifact), len(serving))
    return version


def update_report(store: ObjectStore, project: str, version: str, report: dict[str, Any]) -> None:
    """Replace the report in a published version's manifest (metrics computed after publishing)."""
    key = keys.version_object(project, version, MANIFEST)
    manifest = store.get_json(key)
    if isinstance(manifest, dict):
        store.put_json(key, manifest | {"report": report})


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
    """A loaded version: compact models by control name, their labels, and the manifest."""

    version: str
    models: dict[str, compact.CompactModel]
    labels: dict[str, list[str]]
    manifest: dict[str, Any]


def load(store: ObjectStore, project: str, version: str) -> StoredModel:
    """Load one version's serving models (``model.npz``), checking its SHA-256 against the manifest.

    Executes nothing it reads: no pickle, no scikit-learn. Raises CorruptModel when an object
    is missing, altered or unreadable, or the version predates compact models: only versions a
    pointer names are loaded, and those must be complete.
    """
    from functions.model import compact

    objects = store.get_many([keys.version_object(project, version, n) for n in (MANIFEST, LABELS, SERVING_MODEL)])
    if objects[0] is None or objects[1] is None:
        raise CorruptModel(f"model {version} of project {project} is incomplete in the store")
    manifest, labels = objects[0].json(), objects[1].json()
    expected = (manifest.get("serving") or {}).get("sha256")
    if objects[2] is None or not expected:
        raise CorruptModel(
            f"model {version} of project {project} has no {SERVING_MODEL} (published by an older release?): "
            "press Start Training to publish a version this backend can serve"
        )
    if hashlib.sha256(objects[2].data).hexdigest() != expected:
        raise CorruptModel(f"model {version} of project {project} does not match its manifest checksum")
    return StoredModel(version, compact.loads(objects[2].data), labels, manifest)


def read_manifests(store: ObjectStore, project: str, names: list[str]) -> list[dict[str, Any]]:
    """The manifests of `names` (versions of `project`), in order; ``{"version": name}`` if missing."""
    found = store.get_many([keys.version_object(project, name, MANIFEST) for name in names])
    return [obj.json() if obj else {"version": name} for obj, name in zip(found, names)]
