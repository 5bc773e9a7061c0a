"""Delete a project's data: every object under ``projects/<id>/`` (DESIGN §5), never another project's.

That is its model versions, ``latest.json`` (the pointer), ``serving.json`` (the pin), the annotation
log and the deleted-annotation events, job records, staged /train bodies, the queued-job slot,
prediction-run records with their chunk and claim records, and ``connected.json``. The prefix ends
in '/', so deleting project 1 never touches project 12.

- `inventory`: what is stored, per kind (and on S3, with `all_versions`, every earlier version and
  delete marker too);
- `busy`: the project's queued or running training jobs and unfinished prediction runs: they would
  write to the project again after the delete;
- `delete_all`: delete what an inventory lists, the pointer and pin first (so a delete cut short
  leaves nothing served), then what was written meanwhile.

Read-only until `delete_all`, and it reads no queue: the AWS role that runs it (infra/delete_role.yml)
may list, read and delete under ``projects/`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions import keys, versions
from functions.settings import Settings
from functions.store import ObjectStore, S3Store
from functions.store.s3 import ObjectVersion

KINDS = ("versions", "annotations", "jobs", "runs", "other")
_KIND_OF_FOLDER = {
    "models": "versions",
    "annotations": "annotations", "deleted_annotations": "annotations",
    "jobs": "jobs", "requests": "jobs", "queued_job.json": "jobs",
    "runs": "runs",
}
DELETE_PASSES = 3  # listings after the first delete that pick up what was written meanwhile


def project_prefix(project: str) -> str:
    """``projects/<id>/``: the trailing '/' keeps project 1 from matching project 12."""
    return f"{keys.PROJECTS}{project}/"


def kind_of(key: str, project: str) -> str:
    """The kind (one of `KINDS`) of a key under the project's prefix: ``models/…`` → versions;
    ``annotations/…``, ``deleted_annotations/…`` → annotations; ``jobs/…``, ``requests/…`` (staged
    /train bodies), ``queued_job.json`` → jobs; ``runs/…`` → runs; anything else (``latest.json``,
    ``serving.json``, ``connected.json``) → other."""
    top = key[len(project_prefix(project)) :].split("/", 1)[0]
    return _KIND_OF_FOLDER.get(top, "other")


@dataclass(frozen=True)
class Inventory:
    """What a project has in the store.

    Attributes:
        sizes: each current object's key → its size in bytes.
        versions: with `all_versions` on S3, every version and delete marker under the prefix
            (current ones included); None otherwise.
    """

    project: str
    sizes: dict[str, int]
    versions: list[ObjectVersion] | None = None

    @property
    def prefix(self) -> str:
        return project_prefix(self.project)

    @property
    def empty(self) -> bool:
        return not self.sizes and not self.versions

    def kinds(self) -> dict[str, dict[str, int]]:
        """``{kind: {"objects": n, "bytes": b}}`` over the current objects, every kind of `KINDS`."""
        counts = {kind: {"objects": 0, "bytes": 0} for kind in KINDS}
        for key, size in self.sizes.items():
            kind = counts[kind_of(key, self.project)]
            kind["objects"] += 1
            kind["bytes"] += size
        return counts

    def model_versions(self) -> list[str]:
        """Names of the version folders under ``models/`` (published or not), oldest first."""
        models = keys.models_prefix(self.project)
        names = {key[len(models) :].split("/", 1)[0] for key in self.sizes if key.startswith(models)}
        return sorted(names, key=lambda name: (versions.version_number(name) or 0, name))

    def earlier_versions(self) -> tuple[int, int, int]:
        """(earlier versions, their bytes, delete markers) among `versions` (zeros without)."""
        found = self.versions or []
        earlier = [v for v in found if not v.latest and not v.delete_marker]
        return len(earlier), sum(v.size for v in earlier), sum(1 for v in found if v.delete_marker)

    def summary(self) -> dict[str, Any]:
        """The inventory as JSON: objects, bytes, kinds, model versions, and (``all_versions``)
        ``{"earlier_versions", "earlier_bytes", "delete_markers"}`` or null."""
        earlier, earlier_bytes, markers = self.earlier_versions()
        return {
            "project": self.project, "prefix": self.prefix, "objects": len(self.sizes), "bytes": sum(self.sizes.values()),
            "kinds": self.kinds(), "model_versions": self.model_versions(),
            "all_versions": None if self.versions is None else
            {"earlier_versions": earlier, "earlier_bytes": earlier_bytes, "delete_markers": markers},
        }


def inventory(store: ObjectStore, project: str, all_versions: bool = False) -> Inventory:
    """What `project` has in `store`: one listing of its prefix (S3: a request per 1,000 keys),
    plus one listing of its versions with `all_versions` on an S3 store. Raises StoreUnavailable."""
    sizes = store.list_sizes(project_prefix(project))
    found = store.list_object_versions(project_prefix(project)) if all_versions and isinstance(store, S3Store) else None
    return Inventory(project, sizes, found)


def busy(store: ObjectStore, settings: Settings, project: str) -> list[str]:
    """Why deleting `project` now would not last: one line per queued or running training job
    and per unfinished prediction run (of the newest `functions.jobs.RECENT_JOBS` /
    `functions.runs.records.RECENT_RUNS`), which would write to the project again. Empty when idle.

    Jobs nobody works on any more (`functions.jobs.abandonment`, as ``GET /projects/{id}`` judges
    them) do not count. The queue is not asked (the deleter role may not): a queued job counts until
    the longest time the deployment's queue may hold it (the SQS visibility timeout of
    infra/queue.yml, or for ever with TRAIN_QUEUE=none). A run counts until it is finished, every
    chunk is recorded, or its local worker process is gone. Raises StoreUnavailable.
    """
    from functions.jobs import UNFINISHED, Liveness, abandonment, list_jobs
    from functions.runs.records import FINISHED, aggregate, list_runs, read_chunks
    from functions.train_queue.local import worker_alive
    from functions.train_queue.sqs import DEFAULT_VISIBILITY_SECONDS

    reasons = []
    jobs = list_jobs(store, project)
    hold = float("inf") if settings.train_queue == "none" else DEFAULT_VISIBILITY_SECONDS
    live = Liveness(settings.job_lease_seconds, hold, worker_alive)
    for job in jobs:
        if job.state in UNFINISHED and abandonment(job, live, jobs) is None:
            reasons.append(f"training job {job.job_id} is {job.state.value} (last sign of life {job.last_sign_of_life()})")
    for run in list_runs(store, project):
        if run.state in FINISHED or (run.worker and worker_alive(run.worker) is False):
            continue
        if run.planned and run.chunks is not None:
            if aggregate(read_chunks(store, project, run.run_id))["chunks_done"] >= run.chunks:
                continue  # every chunk is done: only the record's final write is missing
        reasons.append(f"prediction run {run.run_id} is {run.state.value} (created {run.created_at})")
    return reasons


def delete_all(store: ObjectStore, found: Inventory, passes: int = DELETE_PASSES) -> Inventory:
    """Delete what `found` lists (with `found.versions`: every version and delete marker, for
    good), the pointer and pin first; then list again and delete what was written meanwhile, at
    most `passes` times. Returns what is left (empty unless something keeps writing to the project).

    Raises:
        StoreNotWritable: the store refuses a delete (S3 ``AccessDenied``: the role lacks
            s3:DeleteObject or s3:DeleteObjectVersion).
        StoreUnavailable: the store fails; what was deleted stays deleted, and running again goes on.
    """
    first = {keys.latest(found.project), keys.serving_pin(found.project)}
    for _ in range(passes + 1):
        if found.empty:
            return found
        if found.versions is not None and isinstance(store, S3Store):
            store.delete_object_versions(sorted(found.versions, key=lambda v: v.key not in first))
        else:
            store.delete(sorted(found.sizes, key=lambda key: (key not in first, key)))
        found = inventory(store, found.project, found.versions is not None)
    return found


def retained_versions(store: ObjectStore, project: str) -> tuple[int, int, int] | None:
    """After a plain delete on S3: (earlier versions, their bytes, delete markers) that bucket
    versioning keeps of the project; None on a local store or when they cannot be listed."""
    from functions.errors import StoreUnavailable

    if not isinstance(store, S3Store):
        return None
    try:
        return Inventory(project, {}, store.list_object_versions(project_prefix(project))).earlier_versions()
    except StoreUnavailable:
        return None
