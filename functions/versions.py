"""Model versions in the store: publish, point at, list and load them.

A version ``p<project>-v<n>`` (n = 1, 2, … per project) is immutable once published. It holds
``model.pkl`` (the fitted scikit-learn pipelines, the canonical artifact, as in the original
tutorial), ``model.npz`` (the same models as data: what the API serves, see
`functions.model.compact`), ``labels.json`` and ``manifest.json`` with the SHA-256 of both
models. Publishing claims the number by writing the manifest (if-none-match), writes the
models and labels, then ``signature.json`` (the manifest's signature, `functions.signing`),
then moves ``latest.json`` (conditional on its etag, never backwards). A crash before the
pointer moves leaves the previous version serving. The manifest records the job id, so a
redelivered job finishes its own version instead of publishing a second one.

**Completion.** ``signature.json`` is written after every other object of the version, so it
is the completion marker: a version is published when all five objects exist and the pointer
has reached it (`list_versions`). A half-published version (crash or full store mid-way) is
listed nowhere and never served. The manifest is immutable once signed and holds the whole
report (quality, calibration, auto-label thresholds, suspects); ``charts.json`` (the model
card's charts) is covered by its SHA-256 in the manifest. Versions published before the report
was complete at publishing time may have an unsigned ``report.json`` beside them (hold-out
quality), which `read_manifests` still shows.

Loading verifies the signature, then the SHA-256 of ``model.npz`` and ``labels.json`` against
the manifest, and reads ``model.npz`` only: serving never unpickles and never imports
scikit-learn. Every object is read defensively: garbage raises `CorruptModel` /
`CorruptObject` (callers skip the version), never an unexpected exception.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from functions import keys, signing
from functions.errors import CorruptModel, CorruptObject, PreconditionFailed
from functions.store import ObjectStore, StoredObject, json_bytes

if TYPE_CHECKING:  # NumPy is imported by the first load, not by /health and /setup
    from functions.model import compact
    from functions.settings import Settings

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^p(\d{1,20})-v(\d{1,20})$")  # bounded: int() refuses 4,300+ digits
MODEL, SERVING_MODEL, LABELS, MANIFEST = "model.pkl", "model.npz", "labels.json", "manifest.json"
SIGNATURE, REPORT, CHARTS = "signature.json", "report.json", "charts.json"
COMPLETE = frozenset({MANIFEST, MODEL, SERVING_MODEL, LABELS, SIGNATURE})  # signature.json is written last


def version_name(project: str, number: int) -> str:
    """The `model_version` string Label Studio shows, e.g. ``p12-v3``."""
    return f"p{project}-v{number}"


def version_number(version: str) -> int | None:
    """``3`` for ``p12-v3``; None for a name that is not a version."""
    match = _VERSION.match(version)
    return int(match.group(2)) if match else None


@dataclass(frozen=True)
class Pointer:
    """The content of ``latest.json``: the newest published version of a project. ``job_id``
    (the job that made it; absent in pointers written before 2026-12) tells a version from one
    of the same name made after the project's data was deleted."""

    version: str
    number: int
    job_id: str | None = field(default=None, compare=False)


def read_pointer(store: ObjectStore, project: str) -> Pointer | None:
    """The project's serving version, or None before its first training.

    Raises CorruptObject when ``latest.json`` exists but is not a pointer to a version of this
    project (truncated, garbage); StoreUnavailable when the store cannot be read.
    """
    found = store.get(keys.latest(project))
    if found is None:
        return None
    pointer = _parse_pointer(found, project)
    if pointer is None:
        raise CorruptObject(f"{keys.latest(project)} is not a version pointer ({len(found.data)} bytes)")
    return pointer


def _parse_pointer(found: StoredObject, project: str) -> Pointer | None:
    try:
        body = found.json()
        version, number = body["version"], body["number"]
    except (ValueError, RecursionError, TypeError, KeyError):
        return None
    if not isinstance(version, str) or not version.startswith(f"p{project}-v") or version_number(version) != number:
        return None
    job_id = body.get("job_id")
    return Pointer(version, number, job_id if isinstance(job_id, str) else None)


def list_versions(store: ObjectStore, project: str) -> list[str]:
    """The project's published versions, oldest first: every object present (``signature.json``,
    written last, included) and the pointer at or past them. With a garbage pointer, every
    complete version. Half-published versions are never listed. Raises StoreUnavailable."""
    try:
        pointer = read_pointer(store, project)
    except CorruptObject as error:
        log.warning("project %s: %s; listing every complete version", project, error)
        return complete_versions(store, project, None)
    return complete_versions(store, project, pointer.number) if pointer else []


def complete_versions(store: ObjectStore, project: str, up_to: int | None) -> list[str]:
    """Versions of `project` numbered at most `up_to` (None: any) whose objects are all stored,
    oldest first (one listing of the project's models; no object is read)."""
    prefix = keys.models_prefix(project)
    files: dict[str, set[str]] = {}
    for key in store.list_keys(prefix):
        version, _, name = key[len(prefix) :].partition("/")
        files.setdefault(version, set()).add(name)
    numbered = [(version_number(v), v) for v, names in files.items() if COMPLETE <= names]
    return [v for n, v in sorted((n, v) for n, v in numbered if n is not None and (up_to is None or n <= up_to))]


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
    *,
    charts: dict[str, dict[str, str]] | None = None,
    settings: Settings | None = None,
    signer: signing.Signer | None = None,
) -> str:
    """Store a new version, sign it and serve it; returns its name.

    `models` maps each control to its fitted pipeline (pickled into ``model.pkl``),
    `serving_models` to its compact model (checked against the pipeline by the caller),
    `labels` to its classes in the models' column order. `manifest` holds the report fields
    to keep (counts, metrics, parameters); the SHA-256 of both models and of the labels is
    added to it. `charts` (control → chart name → SVG, the model card's) go to ``charts.json``,
    its SHA-256 to the manifest (``charts_sha256``). The signer is `signer`, else the one `settings` (default: the process
    settings) name. Raises SigningUnavailable (no key: before anything is written),
    StoreUnavailable / StoreNotWritable (nothing served changes), PreconditionFailed.
    """
    from functions.model import compact

    if signer is None:
        from functions.settings import get_settings

        signer = signing.signer_for(store, settings or get_settings())
    signer.mac(signing.CONTEXT)  # fails now, not after a half-written version, if there is no key
    artifact = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
    serving, label_bytes = compact.dumps(serving_models), json_bytes(labels)
    digests = {
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "serving": {"file": SERVING_MODEL, "format": compact.FORMAT, "sha256": hashlib.sha256(serving).hexdigest()},
        "labels_sha256": hashlib.sha256(label_bytes).hexdigest(),
    }
    chart_bytes = json_bytes(charts) if charts is not None else None
    if chart_bytes is not None:
        digests["charts_sha256"] = hashlib.sha256(chart_bytes).hexdigest()
    number, manifest_bytes, complete = _claim_number(store, project, job_id, manifest | digests)
    version = version_name(project, number)
    if not complete:
        store.put(keys.version_object(project, version, MODEL), artifact)
        store.put(keys.version_object(project, version, SERVING_MODEL), serving)
        store.put(keys.version_object(project, version, LABELS), label_bytes)
        if chart_bytes is not None:
            store.put(keys.version_object(project, version, CHARTS), chart_bytes)
        store.put_json(keys.version_object(project, version, SIGNATURE), signer.sign(manifest_bytes))
    _move_pointer(store, project, Pointer(version, number, job_id))
    log.info("project %s: published %s (model.pkl %d bytes, model.npz %d bytes)", project, version, len(artifact), len(serving))
    return version


def _claim_number(store: ObjectStore, project: str, job_id: str, manifest: dict[str, Any]) -> tuple[int, bytes, bool]:
    """(number, manifest bytes, already complete): this job's own version if a redelivery
    finds one among the newest three (a complete one is left untouched: it may be served),
    else a new number claimed with an if-none-match manifest."""
    existing = sorted(version_number(v) or 0 for v in store.list_folders(keys.models_prefix(project)))
    for number in existing[::-1][:3]:
        version = version_name(project, number)
        found = store.get(keys.version_object(project, version, MANIFEST))
        claimed = _json_dict(found)
        if claimed is None or claimed.get("job_id") != job_id:
            continue
        if store.get(keys.version_object(project, version, SIGNATURE)) is not None:
            return number, found.data, True  # type: ignore[union-attr]
        body = json_bytes(claimed | manifest | {"job_id": job_id})
        store.put(keys.version_object(project, version, MANIFEST), body)
        return number, body, False
    number = max(existing, default=0) + 1
    for _ in range(20):
        version = version_name(project, number)
        body = json_bytes(manifest | {
            "version": version,
            "number": number,
            "project": project,
            "job_id": job_id,
            "created_at": datetime.now(timezone.utc).isoformat(),
        })
        try:
            store.put(keys.version_object(project, version, MANIFEST), body, if_none_match=True)
            return number, body, False
        except PreconditionFailed:
            number += 1
    raise PreconditionFailed(f"project {project}: could not claim a new version number")


def _move_pointer(store: ObjectStore, project: str, pointer: Pointer) -> None:
    """Point ``latest.json`` at `pointer` unless it already names that or a newer version; a
    garbage pointer is replaced (conditionally on its etag, like any other)."""
    body = {"version": pointer.version, "number": pointer.number, "job_id": pointer.job_id,
            "updated_at": datetime.now(timezone.utc).isoformat()}
    for _ in range(20):
        current = store.get(keys.latest(project))
        existing = _parse_pointer(current, project) if current is not None else None
        if existing is not None and existing.number >= pointer.number:
            return
        if current is not None and existing is None:
            log.warning("project %s: replacing a garbage latest.json (%d bytes) with %s", project, len(current.data), pointer.version)
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


def verified_manifest(store: ObjectStore, project: str, version: str, signer: signing.Signer) -> dict[str, Any]:
    """The manifest of `version`, after checking its signature with `signer`.

    Raises CorruptModel (the version must not be served: missing, unsigned, forged, altered or
    garbage manifest; the message says which), SigningUnavailable (the key cannot be used right
    now: says nothing about the version), StoreUnavailable.
    """
    manifest_obj, signature_obj = store.get_many([keys.version_object(project, version, n) for n in (MANIFEST, SIGNATURE)])
    where = f"model {version} of project {project}"
    if manifest_obj is None:
        raise CorruptModel(f"{where} has no manifest in the store")
    if signature_obj is None:
        raise CorruptModel(f"{where} is not signed (published before signing, or half-published): not served; press Start Training")
    try:
        signature = signature_obj.json()
    except (ValueError, RecursionError):
        raise CorruptModel(f"{where}: its signature.json is not JSON") from None
    problem = signer.verify(manifest_obj.data, signature)
    if problem:
        raise CorruptModel(f"{where} fails verification: {problem}")
    manifest = _json_dict(manifest_obj)
    if manifest is None or manifest.get("version") != version:
        raise CorruptModel(f"{where}: its signed manifest is not a manifest of this version")
    return manifest


def load(
    store: ObjectStore, project: str, version: str, signer: signing.Signer | None = None, manifest: dict[str, Any] | None = None
) -> StoredModel:
    """Load one version's serving models (``model.npz``) after verifying it.

    `manifest` is the already verified manifest (`verified_manifest`), else it is read and
    verified with `signer` (default: the process settings' signer). ``model.npz`` and
    ``labels.json`` must match their SHA-256 in the manifest. Executes nothing it reads: no
    pickle, no scikit-learn. Raises CorruptModel when the version must not be served (see
    `verified_manifest`; also a missing, altered or unreadable model or labels, or a version
    that predates compact models), SigningUnavailable, StoreUnavailable.
    """
    from functions.model import compact

    if manifest is None:
        if signer is None:
            from functions.settings import get_settings

            signer = signing.signer_for(store, get_settings())
        manifest = verified_manifest(store, project, version, signer)
    labels_obj, model_obj = store.get_many([keys.version_object(project, version, n) for n in (LABELS, SERVING_MODEL)])
    where = f"model {version} of project {project}"
    expected = (manifest.get("serving") or {}).get("sha256") if isinstance(manifest.get("serving"), dict) else None
    if model_obj is None or not expected:
        raise CorruptModel(
            f"{where} has no {SERVING_MODEL} (published by an older release?): press Start Training to publish a version this backend can serve"
        )
    if hashlib.sha256(model_obj.data).hexdigest() != expected:
        raise CorruptModel(f"{where}: {SERVING_MODEL} does not match its manifest checksum")
    if labels_obj is None or hashlib.sha256(labels_obj.data).hexdigest() != manifest.get("labels_sha256"):
        raise CorruptModel(f"{where}: {LABELS} is missing or does not match its manifest checksum")
    labels = _json_dict(labels_obj)
    if labels is None:
        raise CorruptModel(f"{where}: {LABELS} is not a JSON object")
    return StoredModel(version, compact.loads(model_obj.data), labels, manifest)


def read_manifests(store: ObjectStore, project: str, names: list[str]) -> list[dict[str, Any]]:
    """The manifests of `names` (versions of `project`), in order; ``{"version": name}`` for a
    missing or garbage manifest. A version published before the signed report was complete
    (no ``charts_sha256``) shows the report of its ``report.json`` when there is one."""
    found = store.get_many([keys.version_object(project, name, n) for name in names for n in (MANIFEST, REPORT)])
    details = []
    for index, name in enumerate(names):
        manifest = _json_dict(found[2 * index]) or {"version": name}
        report = _json_dict(found[2 * index + 1])
        if report is not None and "report" in report and "charts_sha256" not in manifest:
            manifest = manifest | {"report": report["report"]}
        details.append(manifest)
    return details


def _json_dict(found: StoredObject | None) -> dict[str, Any] | None:
    """`found` decoded if it is a JSON object; None if missing; garbage is logged and None."""
    if found is None:
        return None
    try:
        value = found.json()
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        log.warning("a store object (%d bytes) is not a JSON object: skipped", len(found.data))
        return None
    return value
