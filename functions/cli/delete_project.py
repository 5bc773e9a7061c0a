"""`delete-project`: delete every object of a project from the store, after a confirmation.

What goes, in what order, and what would refuse it: `functions.project_deletion`. In AWS an
operator runs it with the role infra/delete_role.yml makes (it may list, read and delete under
``projects/`` only). There is no HTTP endpoint for it: the API's credentials are the ones Label
Studio holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from functions import project_deletion
from functions.cli.common import CliError, add_common_options, project_arg, settings_and_store
from functions.store import S3Store


def delete_project_command(args: argparse.Namespace) -> int:
    """Run `delete-project`; returns the exit status (errors raise CliError or BackendError)."""
    settings, store = settings_and_store(args)
    project = project_arg(args.project)
    where = f"{settings.model_store_uri.rstrip('/')}/{project_deletion.project_prefix(project)}"
    found = project_deletion.inventory(store, project, args.all_versions)
    if found.empty:
        _say(args, {"project": project, "store": where, "deleted": False, "objects": 0},
             f"project {project} has nothing under {where}: nothing to delete")
        return 0
    reasons = [] if args.force and not args.dry_run else project_deletion.busy(store, settings, project)
    if args.dry_run:
        lines = [f"would delete from {where}:", *_table(found)]
        if reasons:
            lines.append("the delete would refuse now (pass --force to delete anyway): " + "; ".join(reasons))
        lines.append("dry run: nothing deleted")
        _say(args, found.summary() | {"store": where, "dry_run": True, "busy": reasons, "deleted": False}, "\n".join(lines))
        return 0
    if reasons:
        raise CliError(
            f"project {project} is busy: {'; '.join(reasons)}. It would write to the project again after the delete: wait "
            f"until it finishes (GET /projects/{project} shows it), or pass --force if it will never finish"
        )
    _confirm(args, project, found)
    left = project_deletion.delete_all(store, found)
    if not left.empty:
        still = sorted({*left.sizes, *(v.key for v in left.versions or [])})
        raise CliError(
            f"{len(still)} key(s) of project {project} were written while deleting (e.g. {still[0]}): stop what writes "
            "them (Label Studio's webhooks and /setup while the model is connected, a training job or prediction run) and "
            "run the command again"
        )
    retained = None if args.all_versions else project_deletion.retained_versions(store, project)
    extra: dict[str, Any] = {"store": where, "dry_run": False, "deleted": True}
    if retained is not None:
        extra["retained"] = dict(zip(("earlier_versions", "earlier_bytes", "delete_markers"), retained))
    _say(args, found.summary() | extra, "\n".join([f"deleted from {where}:", *_table(found)]))
    if not args.quiet:
        print("\n".join(_notes(settings, store, retained, args.all_versions)), file=sys.stderr)
    return 0


def _confirm(args: argparse.Namespace, project: str, found: project_deletion.Inventory) -> None:
    """Ask for the project id on a terminal; without one, --yes is required."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError("standard input is not a terminal, so nobody can confirm: pass --yes to delete without the prompt "
                       "(--dry-run shows what would go)")
    print("\n".join(["about to delete:", *_table(found)]), file=sys.stderr)
    print(f"type the project id ({project}) to delete it: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != project:
        raise CliError(f"not confirmed (typed {answer!r}, not {project!r}): nothing deleted")


def _table(found: project_deletion.Inventory) -> list[str]:
    """The inventory for people: one line per kind, then the total."""
    lines = []
    for kind, counts in found.kinds().items():
        line = f"  {kind:<12} {_objects(counts['objects'])} {_bytes(counts['bytes']):>9}"
        if kind == "versions" and found.model_versions():
            names = found.model_versions()
            line += f"  {len(names)} model version(s): {', '.join(names[:5])}{', …' if len(names) > 5 else ''}"
        elif kind == "other" and counts["objects"]:
            others = sorted(k[len(found.prefix):] for k in found.sizes if project_deletion.kind_of(k, found.project) == "other")
            line += f"  {', '.join(others[:5])}{', …' if len(others) > 5 else ''}"
        lines.append(line)
    lines.append(f"  {'total':<12} {_objects(len(found.sizes))} {_bytes(sum(found.sizes.values())):>9}")
    if found.versions is not None:
        earlier, earlier_bytes, markers = found.earlier_versions()
        lines.append(f"  and every version S3 keeps: {earlier:,} earlier version(s) ({_bytes(earlier_bytes)}), "
                     f"{markers:,} delete marker(s)")
    return lines


def _notes(settings: Any, store: Any, retained: tuple[int, int, int] | None, all_versions: bool) -> list[str]:
    notes = []
    if retained is not None and any(retained):
        earlier, earlier_bytes, markers = retained
        notes.append(f"S3 versioning keeps {earlier:,} earlier version(s) ({_bytes(earlier_bytes)}) and {markers:,} delete "
                     "marker(s) of the project: the bucket's lifecycle rule removes earlier versions 90 days after they "
                     "became noncurrent (1 day for records tagged expiring); --all-versions removes them now")
    elif all_versions and not isinstance(store, S3Store):
        notes.append("--all-versions: a local store keeps no earlier versions; the plain delete removed everything")
    notes.append(f"running API instances stop serving the project within POINTER_TTL_SECONDS ({settings.pointer_ttl_seconds:g} s "
                 "here). Label Studio's own copy (tasks, annotations, predictions) is untouched; while the model stays "
                 "connected, its next /setup and annotation webhooks store the project anew")
    return [f"note: {note}" for note in notes]


def _objects(count: int) -> str:
    return f"{count:>7,} object{'' if count == 1 else 's'}".ljust(15)


def _bytes(count: int) -> str:
    """`count` bytes for people: 512 B, 40.1 kB, 1.3 MB, 2.0 GB (powers of 1,000)."""
    if count < 1000:
        return f"{count} B"
    size, units = count / 1000, ["kB", "MB", "GB"]
    while size >= 1000 and len(units) > 1:
        size, units = size / 1000, units[1:]
    return f"{size:.1f} {units[0]}"


def _say(args: argparse.Namespace, reply: dict[str, Any], text: str) -> None:
    print(json.dumps(reply) if args.json else text)


def register(commands: Any) -> None:
    """Add the `delete-project` sub-command to `commands` (argparse sub-parsers)."""
    parser = commands.add_parser(
        "delete-project",
        help="delete every object of a project (versions, annotation log, jobs, runs) after a confirmation",
        description="Delete everything the backend stores for a project: every object under projects/<id>/ (model "
        "versions, latest.json, the serving pin, the annotation log, job records, staged /train bodies, prediction-run "
        "records, connected.json), never another project's. --dry-run lists it and deletes nothing. Refuses while a "
        "training job is queued or running or a prediction run is unfinished (--force deletes anyway). On a versioned S3 "
        "bucket a delete keeps earlier versions (restorable) until the bucket's lifecycle rule removes them; "
        "--all-versions removes them too. Label Studio's own copy of the project is not touched.",
    )
    parser.add_argument("--project", required=True, help="Label Studio project id, e.g. 12")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted (counts per kind) and delete nothing")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="delete without asking for the project id (needed without a terminal)")
    parser.add_argument("--force", action="store_true", help="delete even while a training job or prediction run is unfinished")
    parser.add_argument("--all-versions", action="store_true",
                        help="S3: also delete every earlier version and delete marker, so nothing can be restored "
                        "(needs s3:ListBucketVersions and s3:DeleteObjectVersion); a local store: the same as without")
    parser.add_argument("--json", action="store_true", help="print what was (or would be) deleted as JSON")
    add_common_options(parser)
    parser.set_defaults(run=delete_project_command)
