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
from pathlib import Path
from typing import Sequence

from functions.cli.common import CliError
from functions.cli.predict import DEFAULT_CHUNK, predict_command
from functions.cli.train import train_command
from functions.errors import BackendError

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The `predict` and `train` sub-commands, with their help texts."""
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
        "      --tasks tasks.json --out predicted.jsonl\n\n"
        "Exit status: 0 on success, 1 on an error (one line `error: …` says what to fix), 2 on a wrong command line.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{predict,train}", required=True)

    predict = commands.add_parser(
        "predict",
        help="add predictions of a stored version to a Label Studio tasks file",
        description="Read a Label Studio tasks file (a JSON array of tasks, or JSONL: one task per line; streamed, so "
        "any size fits in bounded memory), predict every task with a stored model version, in chunks, with the same "
        "code and scores as /predict, and write the tasks with `predictions: [{result, score, model_version}]` in "
        "Label Studio's import format (Data Manager -> Import). Tasks without text get no prediction; a prediction "
        "the task already holds of the same version is replaced, others are kept. Progress goes to stderr, then "
        "a summary (tasks, predicted, skipped without text, tasks/s).",
    )
    predict.add_argument("--project", required=True, help="Label Studio project id whose model predicts, e.g. 12")
    predict.add_argument("--version", help="model version, e.g. p12-v3 (default: the version the project serves now)")
    predict.add_argument("--tasks", required=True, type=Path, help="tasks file: a JSON array or JSONL (`-` reads stdin)")
    predict.add_argument(
        "--label-config",
        type=Path,
        help="the project's label config (XML file): labels it lacks are never predicted, as in /predict. Default: "
        "a config made from the version itself (its controls, text fields and every label it learnt)",
    )
    predict.add_argument(
        "--out", required=True, type=Path,
        help="output file; .jsonl/.ndjson writes JSONL, anything else a JSON array (`-` writes JSONL to stdout)",
    )
    predict.add_argument("--format", choices=("json", "jsonl"), help="output format (default: from --out's extension)")
    predict.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK, help="tasks predicted at once; memory grows with it (default: %(default)s)"
    )
    _common(predict)

    train = commands.add_parser(
        "train",
        help="train and publish a version from a Label Studio JSON export",
        description="Train a model on a Label Studio JSON export (Export -> JSON: a JSON array of tasks with their "
        "annotations) and publish it as the project's next version (p<project>-v<n>), signed and served at once, "
        "like a Start Training. The export is staged in the store like a /train body and the job runs in this "
        "process; it is listed under GET /projects/<id>/jobs. Prints the version and the training report.",
    )
    train.add_argument("--export", required=True, type=Path, help="Label Studio JSON export file (a JSON array of tasks)")
    train.add_argument("--project", required=True, help="Label Studio project id the version belongs to, e.g. 12")
    train.add_argument(
        "--label-config",
        type=Path,
        help="the project's label config (XML file). Default: inferred from the export's choices annotations "
        "(control names, labels seen, text field); pass it to keep labels nobody has used yet or a choice=\"multiple\" "
        "control whose annotations all hold one label",
    )
    train.add_argument("--json", action="store_true", help="print the job record (version, report) as JSON on stdout")
    _common(train)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URI", help="model store URI (default: MODEL_STORE_URI, else file://.model-store)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary on stderr")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what the backend does (INFO) on stderr")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 1 on an error, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "predict":
            return predict_command(args)
        return train_command(args)
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
