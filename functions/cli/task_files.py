"""Label Studio task files, streamed: read a JSON array (ijson) or JSONL one task at a time,
write tasks as they are predicted, in chunks; progress and memory on stderr."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import orjson

from functions.cli.common import CliError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # and a UTF-8 byte order mark

Pair = tuple[dict[str, Any], dict[str, Any]]  # (the task's data, the task as read)


def chunks(tasks: Iterator[Pair], size: int) -> Iterator[list[Pair]]:
    """`tasks` in lists of at most `size`, in order."""
    chunk: list[Pair] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class TaskInput:
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


def open_input(path: Path) -> TaskInput:
    """The tasks file at `path` (`-`: stdin), opened for reading bytes (raises CliError)."""
    if str(path) == "-":
        return TaskInput("stdin", sys.stdin.buffer, None)
    try:
        file = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller
        return TaskInput(str(path), file, os.fstat(file.fileno()).st_size)
    except OSError as error:
        raise CliError(f"cannot read the tasks file {path}: {error.strerror}") from None


def read_tasks(source: TaskInput) -> Iterator[Pair]:
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


def _json_array(source: TaskInput, first: bytes) -> Iterator[Pair]:
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


def _jsonl(source: TaskInput, first: bytes) -> Iterator[Pair]:
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


class TaskOutput:
    """Tasks written as they come: a JSON array or JSONL, into a temporary file renamed over
    `path` once complete (a failed run leaves no half-written file), or to stdout."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.jsonl, self.count = path, fmt == "jsonl", 0
        self.temporary: Path | None = None

    def __enter__(self) -> TaskOutput:
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
