"""`train`: train and publish a version from a Label Studio JSON export."""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson

from functions import keys, signing
from functions.cli.common import CliError, add_common_options, project_arg, read_label_config, settings_and_store
from functions.ids import new_job_id
from functions.label_config import parse_label_config


def train_command(args: argparse.Namespace) -> int:
    """Run `train`; returns the exit status (errors raise CliError or BackendError)."""
    from functions.jobs import TRAIN_REQUEST, Job, JobState, save_job
    from functions.training import run_job

    settings, store = settings_and_store(args)
    project = project_arg(args.project)
    raw, tasks = _read_export(args.export)
    if args.label_config:
        xml, _ = read_label_config(args.label_config)
    else:
        xml = infer_label_config(tasks, str(args.export))
        parse_label_config(xml).require_controls()
        if not args.quiet:
            print(f"label config inferred from the export (pass --label-config to use the project's own):\n{xml}", file=sys.stderr)
    del tasks
    no_run = None
    if getattr(settings, "predict_queue", "local") == "local" and getattr(settings, "runs_after_training", lambda: False)():
        # A local prediction run would run in this process, which ends with the training: none starts.
        settings = settings.model_copy(update={"predict_after_training": False})
        no_run = (f"no prediction run started after training (PREDICT_QUEUE=local would run it in this process, which "
                  f"ends now); start one from the backend: POST /projects/{project}/prediction-runs")
    signing.signer_for(store, settings).mac(signing.CONTEXT)  # no signing key: say so before staging anything

    job_id = new_job_id()
    request_key = keys.staged_request(project, job_id)
    # The /train body Label Studio would send, built around the export's own bytes (not re-encoded).
    body = b'{"project":' + orjson.dumps(project) + b',"label_config":' + orjson.dumps(xml) + b',"annotations":' + raw + b"}"
    store.put(request_key, body, expiring=True)
    del body, raw
    job = Job(job_id=job_id, project=project, label_config=xml, source=TRAIN_REQUEST, request_key=request_key, dedup_id=job_id)
    save_job(store, job)
    if not args.quiet:
        print(f"training project {project} from {args.export} (job {job_id}) …", file=sys.stderr)
    job = run_job(job.message(), settings, store)
    if args.json:
        print(orjson.dumps(job.public(), option=orjson.OPT_INDENT_2).decode())
    if job.state != JobState.SUCCEEDED:
        raise CliError(f"training failed: {job.reason or job.state.value}")
    if not args.json:
        print(f"published {job.version} for project {project} (job {job.job_id}, store {settings.model_store_uri})")
        for line in report_lines(job.report or {}):
            print(f"  {line}")
    if no_run and not args.quiet:
        print(f"note: {no_run}", file=sys.stderr)
    return 0


def _read_export(path: Path) -> tuple[bytes, list[Any]]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read the export {path}: {error.strerror}") from None
    try:
        tasks = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CliError(f"{path} is not JSON ({error}); export the project with Export -> JSON") from None
    if not isinstance(tasks, list):
        found = _JSON_TYPES.get(type(tasks), "value")
        raise CliError(f"{path} is not a Label Studio JSON export: it must be a JSON array of tasks, found a JSON {found}")
    return raw.strip().removeprefix(b"\xef\xbb\xbf"), tasks


_JSON_TYPES = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def infer_label_config(tasks: list[Any], name: str) -> str:
    """A label config for the export's whole-text choices annotations: one ``<Choices>`` per
    control (from_name → to_name), the labels annotators used, ``choice="multiple"`` if one
    annotation holds several, over a ``<Text>`` whose data field is the tasks' only text field
    (or the one named like the text object)."""
    controls: OrderedDict[str, dict[str, Any]] = OrderedDict()
    fields: OrderedDict[str, None] = OrderedDict()
    for task in tasks:
        if not isinstance(task, dict):
            continue
        data = task.get("data")
        if isinstance(data, dict):
            fields.update((key, None) for key, value in data.items() if isinstance(value, str))
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                if not isinstance(result, dict) or result.get("type") != "choices":
                    continue
                choices = (result.get("value") or {}).get("choices") if isinstance(result.get("value"), dict) else None
                if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                    continue
                if not isinstance(result.get("from_name"), str) or not isinstance(result.get("to_name"), str):
                    continue
                new = {"to_name": result["to_name"], "labels": OrderedDict(), "multiple": False}
                control = controls.setdefault(result["from_name"], new)
                control["labels"].update((c, None) for c in choices)
                control["multiple"] |= len(choices) > 1
    if not controls:
        raise CliError(f"{name} holds no choices annotation to infer the label config from; pass --label-config config.xml")
    texts: OrderedDict[str, str] = OrderedDict()
    for control in controls.values():
        to_name = control["to_name"]
        if to_name in texts:
            continue
        if len(fields) == 1:
            texts[to_name] = next(iter(fields))
        elif to_name in fields:
            texts[to_name] = to_name
        else:
            raise CliError(
                f"cannot tell which task data field holds the text of {to_name!r} "
                f"(fields: {', '.join(fields) or 'none'}); pass --label-config config.xml"
            )
    parts = ["<View>"]
    parts += [f"  <Text name={quoteattr(to_name)} value={quoteattr('$' + key)}/>" for to_name, key in texts.items()]
    for control_name, control in controls.items():
        multiple = ' choice="multiple"' if control["multiple"] else ""
        parts.append(f"  <Choices name={quoteattr(control_name)} toName={quoteattr(control['to_name'])}{multiple}>")
        parts += [f"    <Choice value={quoteattr(label)}/>" for label in control["labels"]]
        parts.append("  </Choices>")
    parts.append("</View>")
    return "\n".join(parts)


SCORES = ("accuracy", "macro_f1", "micro_f1", "exact_match")


def report_lines(report: dict[str, Any]) -> list[str]:
    """The training report, a few lines for people."""
    lines = []
    dropped = ", ".join(f"{count} {reason}" for reason, count in sorted((report.get("dropped") or {}).items()))
    lines.append(f"tasks: {report.get('tasks_seen', 0):,} read" + (f"; dropped: {dropped}" if dropped else ""))
    for name, control in (report.get("controls") or {}).items():
        counts = sorted((control.get("labels") or {}).items(), key=lambda kv: -kv[1])
        labels = ", ".join(f"{label} {count}" for label, count in counts)
        line = f"{name}: {control.get('examples', 0):,} examples ({labels})"
        control_dropped = ", ".join(f"{count} {reason}" for reason, count in sorted((control.get("dropped") or {}).items()))
        if control_dropped:
            line += f"; dropped: {control_dropped}"
        quality = control.get("quality") or {}
        if quality.get("validated_on"):
            scores = ", ".join(f"{key} {quality[key]}" for key in SCORES if key in quality)
            ece = (quality.get("calibration") or {}).get("ece")
            line += f"; {quality.get('folds')}-fold cross-validated on {quality['validated_on']:,}: {scores}"
            line += f", calibration error {ece}" if ece is not None else ""
        elif quality.get("note"):
            line += f"; {quality['note']}"
        auto = control.get("auto_label") or {}
        if auto.get("threshold") is not None:
            line += (f"; auto-label at score >= {auto['threshold']:.4f}: {auto['coverage']:.0%} of tasks, "
                     f"estimated accuracy {auto['estimated_accuracy']}")
        if control.get("suspects_found"):
            line += f"; {control['suspects_found']} suspect annotation(s)"
        lines.append(line)
    for problem in report.get("problems") or []:
        lines.append(f"not trained: {problem}")
    run = report.get("prediction_run")
    if isinstance(run, dict):
        lines.append(f"prediction run: {run.get('run')} ({run.get('state')}{', ' + run['reason'] if run.get('reason') else ''}) "
                     f"{run.get('status_url') or ''}".rstrip())
    if "fit_seconds" in report:
        lines.append(f"fit: {report['fit_seconds']} s")
    return lines


def register(commands: Any) -> None:
    """Add the `train` sub-command to `commands` (argparse sub-parsers)."""
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
    add_common_options(train)
    train.set_defaults(run=train_command)
