"""Command line: pre-annotate a Label Studio tasks file with a stored version, or train a version
from a Label Studio export, against the store MODEL_STORE_URI names (a local folder or S3).

    python -m functions.cli predict --project 12 --tasks tasks.json --out predicted.json
    python -m functions.cli train --project 12 --export export.json --label-config config.xml

``predict`` streams: it reads the tasks file (a JSON array, read with ijson, or JSONL) one
chunk of tasks at a time, scores each chunk with the version's compact model and the same
`functions.serving.predict_tasks` as ``/predict`` (same results, same scores), and writes the
tasks with ``predictions`` in Label Studio's import format as it goes, so memory stays bounded
by the chunk size whatever the file's size. Tasks without text keep no new prediction.

``train`` stages the export like a ``/train`` body and runs the training job in this process
(`functions.training.run_job`): the version is published, signed and served exactly as if the
API had trained it, and the job record shows up in ``GET /projects/<id>/jobs``.

Every error a user can fix prints one line ``error: …`` and exits with status 1 (no traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from functions.cli import connect, dead_letters, delete_project, predict, serving, train
from functions.cli.common import CliError
from functions.errors import BackendError

__all__ = ["CliError", "build_parser", "main"]

# (name, module): each module's `register(commands)` adds its sub-command, whose `run(args)` returns the exit status.
COMMANDS = (("predict", predict), ("train", train), ("serving", serving), ("delete-project", delete_project), ("connect", connect),
            ("dead-letters", dead_letters))


def build_parser() -> argparse.ArgumentParser:
    """The sub-commands of COMMANDS, with their help texts."""
    parser = argparse.ArgumentParser(
        prog="python -m functions.cli",
        description="Pre-annotate Label Studio task files with a stored model version, or train a version from a\n"
        "Label Studio JSON export. Both use the store MODEL_STORE_URI names (file://<folder> or\n"
        "s3://<bucket>[/<prefix>]; --store overrides it) and the backend's other settings (signing key,\n"
        "S3 timeouts, MULTILABEL_THRESHOLD) from the environment, like `make dev` and the Lambda functions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m functions.cli train --project 12 --export export.json --label-config config.xml\n"
        "  python -m functions.cli predict --project 12 --tasks tasks.jsonl --out predicted.json\n"
        "  MODEL_STORE_URI=s3://my-bucket/models python -m functions.cli predict --project 12 --version p12-v3 \\\n"
        "      --tasks tasks.json --out predicted.jsonl\n"
        "  python -m functions.cli delete-project --project 12 --dry-run\n"
        "  python -m functions.cli connect --label-studio-url http://localhost:8080 --project 12 --backend-url http://localhost:9090\n\n"
        "Exit status: 0 on success, 1 on an error (one line `error: …` says what to fix), 2 on a wrong command line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(name for name, _ in COMMANDS) + "}", required=True)
    for _, module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 1 on an error, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
    except BackendError as error:  # store unreachable or not writable, signing key missing, …: the message says it
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `… --out - | head`: the reader left; say nothing more to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1
