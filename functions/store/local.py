"""`ObjectStore` in a local folder: the default for `make dev` and most tests."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from functions.errors import PreconditionFailed, StoreNotWritable, StoreUnavailable
from functions.store.base import ObjectStore, StoredObject, join_key

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class LocalStore(ObjectStore):
    """Objects as files under `root`; etags are SHA-256 digests of the content.

    Writes are atomic (temporary file + rename). Conditional writes hold a thread lock and an
    `flock` on ``<root>/.lock``, so threads and processes sharing the folder see S3's semantics.
    Deletes unlink files and remove the folders they leave empty.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as error:
            raise StoreUnavailable(f"cannot read {key}: {error.strerror}") from error
        return StoredObject(data, _etag(data))

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False, expiring: bool = False
    ) -> str:
        path = self._path(key)
        if if_match is None and not if_none_match:
            self._write(path, data)
            return _etag(data)
        with self._exclusive():
            current = self.get(key)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{key} already exists")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"{key} changed since it was read")
            self._write(path, data)
        return _etag(data)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(key for key, _ in self._files(prefix))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        sizes = {}
        for key, path in sorted(self._files(prefix)):
            try:
                sizes[key] = path.stat().st_size
            except FileNotFoundError:
                continue  # deleted since it was listed
        return sizes

    def delete(self, keys: Iterable[str]) -> None:
        """Unlink each key's file (a symbolic link itself, never its target), then remove the
        folders that became empty, up to the root (kept). A key whose folder is reached through a
        symbolic link (out of the root, or to another folder in it) is refused with StoreNotWritable."""
        emptied: set[Path] = set()
        for key in keys:
            path = self._path(key)
            self._check_inside(path.parent, key)
            try:
                os.unlink(path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue  # no object at that key (a folder is no object)
            except OSError as error:
                raise _delete_error(key, error) from error
            emptied.add(path.parent)
        for folder in sorted(emptied, key=lambda f: len(f.parts), reverse=True):
            self._prune(folder)

    def _files(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of every object under `prefix`; temporary files of writes in flight left out."""
        base = self._folder(prefix)
        if not base.is_dir():
            return
        for folder, _, files in os.walk(base):
            for name in files:
                if not name.startswith(".tmp-"):
                    path = Path(folder, name)
                    yield path.relative_to(self.root).as_posix(), path

    def _check_inside(self, folder: Path, key: str) -> None:
        """Refuse a key whose folder is reached through a symbolic link: it may lead out of the
        store, or to another project's folder inside it."""
        real = folder.resolve()
        if real != self.root.joinpath(*key.split("/")[:-1]):
            where = "out of the model store" if real != self.root and self.root not in real.parents else "elsewhere in the model store"
            raise StoreNotWritable(f"refusing to delete {key}: its folder leads {where}, to {real} (a symbolic link)")

    def _prune(self, folder: Path) -> None:
        """Remove `folder` and its parents while they are empty, never the root; a folder that is
        not empty (or is a symbolic link) stops the walk."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass  # removed meanwhile
            except OSError:
                return
            folder = folder.parent

    def list_folders(self, prefix: str) -> list[str]:
        base = self._folder(prefix)
        if not base.is_dir():
            return []
        return sorted(entry.name for entry in base.iterdir() if entry.is_dir())

    def _path(self, key: str) -> Path:
        return self.root / join_key(key)

    def _folder(self, prefix: str) -> Path:
        prefix = prefix.strip("/")
        return self.root / join_key(prefix) if prefix else self.root

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise _write_error(path.relative_to(self.root).as_posix(), error) from error

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(self.root, threading.Lock())
        with lock:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                handle = open(self.root / ".lock", "a+b")
            except OSError as error:
                raise _write_error(".lock", error) from error
            with handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


_FULL = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}


def _write_error(key: str, error: OSError) -> StoreUnavailable:
    """A failed write as a 503 error whose message says what is wrong with the folder.

    A write goes to a temporary file first, so a failure never damages the object it replaces.
    """
    if error.errno in _FULL:
        return StoreNotWritable(f"the model store is full ({error.strerror}): cannot write {key}; free space in the store folder")
    if error.errno in _READ_ONLY:
        return StoreNotWritable(
            f"the model store is read-only ({error.strerror}): cannot write {key}; make the store folder writable for the backend"
        )
    return StoreUnavailable(f"cannot write {key}: {error.strerror or error}")


def _delete_error(key: str, error: OSError) -> StoreUnavailable:
    """A failed unlink as a 503 error: StoreNotWritable when the folder refuses it."""
    if error.errno in _READ_ONLY:
        return StoreNotWritable(
            f"the model store refuses deletes ({error.strerror}): cannot delete {key}; make the store folder writable"
        )
    return StoreUnavailable(f"cannot delete {key}: {error.strerror or error}")


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
