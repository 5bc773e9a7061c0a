"""`predict`: add predictions of a stored version to a Label Studio tasks file."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from functions import versions
from functions.cli.common import CliError, add_common_options, project_arg, read_label_config, settings_and_store
from functions.cli.task_files import JSONL_SUFFIXES, Progress, TaskOutput, chunks, open_input, peak_rss_mib, read_tasks
from functions.errors import CorruptModel
from functions.label_config import ChoicesControl, LabelConfig

log = logging.getLogger("functions.cli")

DEFAULT_CHUNK = 1000


def predict_command(args: argparse.Namespace) -> int:
    """Run `predict`; returns the exit status (errors raise CliError or BackendError)."""
    from functions.serving import ModelCache, predict_tasks

    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1")
    settings, store = settings_and_store(args)
    project = project_arg(args.project)
    model = _load_model(ModelCache(store, settings), project, args.version)
    if args.label_config:
        _, config = read_label_config(args.label_config)
    else:
        config = config_of_version(model)
    usable = usable_controls(config, model)
    if not usable:
        raise CliError(
            f"{model.version} predicts none of the label config's controls "
            f"({', '.join(c.name for c in config.controls)}): it knows {', '.join(sorted(model.models)) or 'none'}, "
            "each with at least 2 labels of the config"
        )

    out_format = args.format or ("jsonl" if str(args.out) == "-" or args.out.suffix.lower() in JSONL_SUFFIXES else "json")
    started = time.monotonic()
    counts = {"tasks": 0, "predicted": 0, "skipped": 0}
    source = open_input(args.tasks)
    progress = Progress(source.size, enabled=not args.quiet)
    threshold = settings.multilabel_threshold
    try:
        with TaskOutput(args.out, out_format) as out:
            for chunk in chunks(read_tasks(source), args.chunk_size):
                items = predict_tasks([{"data": data} for data, _ in chunk], config, model, threshold)
                for (data, task), item in zip(chunk, items):
                    counts["tasks"] += 1
                    if item["result"]:
                        counts["predicted"] += 1
                        out.write(with_prediction(task, data, item))
                    else:
                        counts["skipped"] += 1
                        out.write(task)
                progress.update(source.tell(), counts["tasks"])
    finally:
        source.close()
    progress.close()
    seconds = time.monotonic() - started
    if not args.quiet:
        rate = counts["tasks"] / seconds if seconds > 0 else 0.0
        print(
            f"{counts['tasks']:,} tasks: {counts['predicted']:,} predicted with {model.version}, "
            f"{counts['skipped']:,} skipped without text; {seconds:.1f} s ({rate:,.0f} tasks/s), "
            f"peak RSS {peak_rss_mib():.0f} MiB; wrote {'stdout' if str(args.out) == '-' else args.out} ({out_format})",
            file=sys.stderr,
        )
    return 0


def _load_model(cache: Any, project: str, version: str | None) -> versions.StoredModel:
    """The named version (verified), else the version the project serves now: the newest good
    version at or below its pointer, skipping versions that fail verification, as /predict does."""
    if version:
        if versions.version_number(version) is None or not version.startswith(f"p{project}-v"):
            raise CliError(f"--version {version!r} is not a version of project {project} (e.g. p{project}-v1)")
        try:
            return cache.model(project, version)
        except CorruptModel as error:
            published = versions.list_versions(cache.store, project)
            raise CliError(f"{error} (published versions: {', '.join(published) or 'none'})") from None
    for _ in range(1000):
        resolved = cache.resolve(project)
        if resolved is None:
            raise CliError(
                f"project {project} has no published model version in {cache.store!r}; train one first "
                f"(python -m functions.cli train --project {project} --export export.json) or check MODEL_STORE_URI"
            )
        try:
            return cache.model(project, resolved)
        except CorruptModel as error:
            log.warning("%s", error)
            cache.mark_bad(project, resolved, str(error))
    raise CliError(f"project {project}: no version could be verified")


def config_of_version(model: versions.StoredModel) -> LabelConfig:
    """The label config a version was trained for, as far as it matters to predictions: each
    control with its text object, data key, every label the model learnt, and single/multiple."""
    controls = model.manifest.get("controls") or {}
    made = []
    for name in model.models:
        about = controls.get(name) or {}
        labels = tuple(model.labels.get(name) or ())
        if not about.get("to_name") or not about.get("data_key") or len(labels) < 2:
            continue
        made.append(ChoicesControl(name, about["to_name"], about["data_key"], labels, bool(about.get("multiple"))))
    if not made:
        raise CliError(f"{model.version}'s manifest does not describe its controls; pass --label-config")
    return LabelConfig(tuple(made))


def usable_controls(config: LabelConfig, model: versions.StoredModel) -> list[ChoicesControl]:
    """The controls `predict_tasks` predicts (a model and at least 2 of its labels left in the config)."""
    return [
        control for control in config.controls
        if control.name in model.models and sum(label in control.labels for label in model.labels.get(control.name, [])) >= 2
    ]


def with_prediction(task: dict[str, Any], data: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """`task` with `item` in its predictions (Label Studio's import format). A flat task (no
    ``data`` key: Label Studio takes the whole object as data) is wrapped as ``{"data": …}``;
    a prediction it holds of the same model version is replaced, others are kept."""
    prediction = {"result": item["result"], "score": item["score"], "model_version": item["model_version"]}
    out = dict(task) if "data" in task else {"data": data}
    held = out.get("predictions")
    version = prediction["model_version"]
    kept = [p for p in held if not (isinstance(p, dict) and p.get("model_version") == version)] if isinstance(held, list) else []
    out["predictions"] = [*kept, prediction]
    return out


def register(commands: Any) -> None:
    """Add the `predict` sub-command to `commands` (argparse sub-parsers)."""
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
    add_common_options(predict)
    predict.set_defaults(run=predict_command)

