"""`serving`: show which version a project serves, pin it to a published one, or unpin it.

The same as GET / PUT / DELETE ``/projects/{id}/serving``, against the store directly (an
operator's own credentials in AWS: the pin object is the only thing written).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from functions import pins, versions
from functions.cli.common import add_common_options, project_arg, settings_and_store


def serving_command(args: argparse.Namespace) -> int:
    """Run `serving`; returns the exit status (errors raise CliError or BackendError)."""
    from functions.serving import ModelCache

    settings, store = settings_and_store(args)
    project = project_arg(args.project)
    cache = ModelCache(store, settings)
    if args.pin is not None:
        pins.pin_by_operator(cache, project, pins.version_named(args.pin, project))
    elif args.unpin:
        pins.pin_by_operator(cache, project, None)
    reply = {"project": project, "version": cache.serving_version(project), "pinned": cache.pin(project).summary(),
             "published": versions.list_versions(store, project)}
    print(json.dumps(reply) if args.json else _text(reply))
    return 0


def _text(reply: dict[str, Any]) -> str:
    pinned = reply["pinned"]
    how = f"pinned by {pinned['source']} since {pinned['since']}" if pinned else "not pinned: the newest good version serves"
    published = reply["published"]
    shown = ", ".join(published[-10:]) + (f" (and {len(published) - 10} older)" if len(published) > 10 else "")
    return f"project {reply['project']} serves {reply['version']} ({how})\npublished: {shown or 'none yet'}"


def register(commands: Any) -> None:
    """Add the `serving` sub-command to `commands` (argparse sub-parsers)."""
    serving = commands.add_parser(
        "serving",
        help="show the version a project serves; pin it to a published version (roll back) or unpin it",
        description="Show the version a project serves now (what /setup reports) and its published versions. "
        "--pin serves a published version that verifies instead of the newest (roll back a bad training; trainings "
        "still publish, the pin decides what serves); --unpin serves the newest good version again. Label Studio "
        "re-predicts at its next /setup; running API instances follow within POINTER_TTL_SECONDS.",
    )
    serving.add_argument("--project", required=True, help="Label Studio project id, e.g. 12")
    action = serving.add_mutually_exclusive_group()
    action.add_argument("--pin", metavar="VERSION", help="version to serve, e.g. p12-v3 (or its number, 3)")
    action.add_argument("--unpin", action="store_true", help="serve the newest good version again")
    serving.add_argument("--json", action="store_true", help="print {project, version, pinned, published} as JSON")
    add_common_options(serving)
    serving.set_defaults(run=serving_command)
