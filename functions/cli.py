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
import resource
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence
from xml.sax.saxutils import quoteattr

import orjson

from functions import keys, signing, versions
from functions.errors import BackendError, CorruptModel, InvalidRequest
from functions.ids import checked_project_id, new_job_id
from functions.label_config import ChoicesControl, LabelConfig, parse_label_config

log = logging.getLogger("functions.cli")

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DEFAULT_CHUNK = 1000
WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # and a UTF-8 byte order mark


class CliError(Exception):
    """A problem the user can fix: printed as ``error: <message>``, exit status 1."""


# ---------------------------------------------------------------------------------------------
# Arguments


def build_parser() -> argparse.ArgumentParser:
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


def _settings_and_store(args: argparse.Namespace) -> tuple[Any, Any]:
    from pydantic import ValidationError

    from functions.settings import Settings
    from functions.store import open_store

    try:
        settings = Settings(**({"model_store_uri": args.store} if args.store else {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise CliError(f"invalid settings in the environment: {problems}") from None
    try:
        store = open_store(settings.model_store_uri, settings)
    except ValueError as error:
        raise CliError(str(error)) from None
    return settings, store


def _project(value: str) -> str:
    try:
        return checked_project_id(str(value).strip())
    except InvalidRequest as error:
        raise CliError(f"--project: {error}") from None


def _read_label_config(path: Path) -> tuple[str, LabelConfig]:
    try:
        xml = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the label config {path}: {getattr(error, 'strerror', None) or error}") from None
    config = parse_label_config(xml)  # UnsupportedLabelConfig is a BackendError with a message to show
    config.require_controls()
    return xml, config


# ---------------------------------------------------------------------------------------------
# predict


def predict_command(args: argparse.Namespace) -> int:
    from functions.serving import ModelCache, predict_tasks

    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1")
    settings, store = _settings_and_store(args)
    project = _project(args.project)
    model = _load_model(ModelCache(store, settings), project, args.version)
    if args.label_config:
        _, config = _read_label_config(args.label_config)
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
    source = _open_input(args.tasks)
    progress = Progress(source.size, enabled=not args.quiet)
    threshold = settings.multilabel_threshold
    try:
        with _Output(args.out, out_format) as out:
            for chunk in _chunks(read_tasks(source), args.chunk_size):
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


Pair = tuple[dict[str, Any], dict[str, Any]]  # (the task's data, the task as read)


def _chunks(tasks: Iterator[Pair], size: int) -> Iterator[list[Pair]]:
    chunk: list[Pair] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Input:
    """A binary tasks file (or stdin), its size when known, and how far it has been read."""

    def __init__(self, name: str, file: BinaryIO, size: int | None) -> None:
        self.name, self.file, self.size = name, file, size

    def tell(self) -> int:
        try:
            return self.file.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.file is not sys.stdin.buffer:
            self.file.close()


def _open_input(path: Path) -> _Input:
    if str(path) == "-":
        return _Input("stdin", sys.stdin.buffer, None)
    try:
        file = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller
        return _Input(str(path), file, os.fstat(file.fileno()).st_size)
    except OSError as error:
        raise CliError(f"cannot read the tasks file {path}: {error.strerror}") from None


def read_tasks(source: _Input) -> Iterator[Pair]:
    """(data, task) for each task of a JSON array or a JSONL file, one at a time.

    The format is told by the first character: ``[`` a JSON array (parsed incrementally by
    ijson), ``{`` JSONL. `data` is the task's ``data`` object, or the whole task for a flat task
    (no ``data`` key), or {} when ``data`` is not an object (nothing to predict). Raises CliError
    on anything that is not a task list, naming where."""
    file = source.file
    first = file.read(1)
    while first and first in WHITESPACE:
        first = file.read(1)
    if not first:
        raise CliError(f"{source.name} is empty: expected a JSON array of tasks or JSONL (one task per line)")
    if first == b"[":
        yield from _json_array(source, first)
    elif first == b"{":
        yield from _jsonl(source, first)
    else:
        raise CliError(
            f"{source.name} is not a Label Studio tasks file: it must hold a JSON array of tasks ([…]) "
            "or one task object per line (JSONL)"
        )


def _json_array(source: _Input, first: bytes) -> Iterator[Pair]:
    import ijson

    reader = _Prepend(first, source.file)
    number = 0
    try:
        for task in ijson.items(reader, "item", use_float=True):
            number += 1
            yield _task(task, source.name, f"task {number}")
    except ijson.JSONError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CliError(f"{source.name} is not valid JSON after task {number}: {reason}") from None


def _jsonl(source: _Input, first: bytes) -> Iterator[Pair]:
    line_number = 0
    lines = _lines_after(first, source.file)
    for line in lines:
        line_number += 1
        if not line.strip():
            continue
        try:
            task = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            hint = " (a .json file holds one JSON array of tasks; JSONL one whole task object per line)" if line_number == 1 else ""
            raise CliError(f"{source.name}, line {line_number}: not a JSON task: {error}{hint}") from None
        yield _task(task, source.name, f"line {line_number}")


def _lines_after(first: bytes, file: BinaryIO) -> Iterator[bytes]:
    head = file.readline()
    yield first + head
    yield from file


class _Prepend:
    """`file` with `head` (bytes already read from it) put back in front, for ijson's read()."""

    def __init__(self, head: bytes, file: BinaryIO) -> None:
        self.head, self.file = head, file

    def read(self, size: int = -1) -> bytes:
        if not self.head or size == 0:
            return self.file.read(size)
        head, self.head = self.head, b""
        return head + self.file.read(size - len(head) if size > 0 else -1)


def _task(task: Any, name: str, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(task, dict):
        kind = type(task).__name__
        raise CliError(f"{name}, {where}: not a task object but {kind} (a Label Studio task is an object with \"data\")")
    if "data" not in task:
        return task, task  # a flat task: Label Studio imports the whole object as its data
    data = task["data"]
    return (data if isinstance(data, dict) else {}), task


class _Output:
    """Tasks written as they come: a JSON array or JSONL, into a temporary file renamed over
    `path` once complete (a failed run leaves no half-written file), or to stdout."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.jsonl, self.count = path, fmt == "jsonl", 0
        self.temporary: Path | None = None

    def __enter__(self) -> _Output:
        if str(self.path) == "-":
            self.file: BinaryIO = sys.stdout.buffer
        else:
            self.temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
            try:
                self.file = open(self.temporary, "wb", buffering=1 << 20)  # noqa: SIM115
            except OSError as error:
                raise CliError(f"cannot write {self.path}: {error.strerror}") from None
        if not self.jsonl:
            self.file.write(b"[")
        return self

    def write(self, task: dict[str, Any]) -> None:
        try:
            line = orjson.dumps(task)
        except TypeError:  # e.g. an integer beyond 64 bits, which orjson refuses
            import json

            line = json.dumps(task, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if self.jsonl:
            self.file.write(line + b"\n")
        else:
            self.file.write((b",\n" if self.count else b"\n") + line)
        self.count += 1

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None and not self.jsonl:
            self.file.write(b"\n]\n")
        if self.temporary is None:
            self.file.flush()
            return
        self.file.close()
        if kind is None:
            try:
                os.replace(self.temporary, self.path)
            except OSError as failure:
                self.temporary.unlink(missing_ok=True)
                raise CliError(f"cannot write {self.path}: {failure.strerror}") from None
        else:
            self.temporary.unlink(missing_ok=True)


class Progress:
    """A one-line progress bar on stderr (bytes of the input read, tasks, tasks/s), redrawn at
    most 5 times a second; on a non-terminal, a line every 10 s instead."""

    def __init__(self, total: int | None, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.started = self.last = time.monotonic()
        self.drawn = False

    def update(self, done: int, tasks: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 10.0):
            return
        self.last = now
        rate = tasks / max(now - self.started, 1e-9)
        if self.total:
            share = min(done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"{share:4.0%} |{bar:<30}| {tasks:,} tasks, {rate:,.0f} tasks/s"
        else:
            line = f"{tasks:,} tasks, {rate:,.0f} tasks/s"
        if self.tty:
            sys.stderr.write(f"\r{line}\x1b[K")
            self.drawn = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def peak_rss_mib() -> float:
    """This process's peak resident set size, MiB: VmHWM on Linux (ru_maxrss there may be a
    bigger parent's, kept across fork and exec), else ru_maxrss (macOS: bytes)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------------------------------------
# train


def train_command(args: argparse.Namespace) -> int:
    from functions.jobs import TRAIN_REQUEST, Job, JobState, save_job
    from functions.training import run_job

    settings, store = _settings_and_store(args)
    project = _project(args.project)
    raw, tasks = _read_export(args.export)
    if args.label_config:
        xml, _ = _read_label_config(args.label_config)
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
        holdout = quality.get("holdout")
        if holdout:
            scores = ", ".join(f"{key} {value}" for key, value in quality.items() if key != "holdout")
            line += f"; hold-out ({holdout.get('train')} train / {holdout.get('test')} test): {scores}"
        elif quality.get("note"):
            line += f"; {quality['note']}"
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


if __name__ == "__main__":
    sys.exit(main())
