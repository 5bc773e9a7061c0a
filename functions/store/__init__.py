"""The model store: one interface, picked by `MODEL_STORE_URI` (``file://…`` or ``s3://…``)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from functions.store.base import ObjectStore, StoredObject, json_bytes
from functions.store.local import LocalStore
from functions.store.s3 import S3Store

if TYPE_CHECKING:
    from functions.settings import Settings

__all__ = ["ObjectStore", "StoredObject", "LocalStore", "S3Store", "open_store", "json_bytes"]

SCHEMES = ("file", "s3")


def open_store(uri: str, settings: Settings | None = None) -> ObjectStore:
    """The store `uri` names.

    ``file://<folder>`` (relative folders are relative to the working directory, e.g.
    ``file://.model-store``; absolute ones are ``file:///srv/models``) or
    ``s3://<bucket>[/<prefix>]``. An S3 store takes its timeouts from `settings` (default:
    the process settings, read when its client is made).

    Raises:
        ValueError: unknown scheme or missing bucket/folder; the message lists the known schemes.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        folder = (parsed.netloc + parsed.path) or ""
        if not folder:
            raise ValueError(f"MODEL_STORE_URI {uri!r} names no folder, e.g. file://.model-store")
        return LocalStore(folder)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"MODEL_STORE_URI {uri!r} names no bucket, e.g. s3://my-bucket/models")
        timeouts = {"connect_timeout": settings.s3_connect_timeout, "read_timeout": settings.s3_read_timeout} if settings else {}
        return S3Store(parsed.netloc, parsed.path, **timeouts)
    raise ValueError(f"MODEL_STORE_URI {uri!r}: unknown scheme; use one of {', '.join(s + '://' for s in SCHEMES)}")
