"""`ObjectStore` on S3 or any S3-compatible endpoint (MinIO, a moto server).

boto3 reads credentials, region and `AWS_ENDPOINT_URL` from the environment as usual, so the
same code talks to AWS in Lambda and to a local endpoint in development. Conditional writes use
S3's `If-None-Match: *` and `If-Match: <etag>` (S3 since 2024; moto 5 and MinIO support them).

Every call is bounded: S3_CONNECT_TIMEOUT / S3_READ_TIMEOUT per attempt and at most
`MAX_ATTEMPTS` attempts (botocore's "standard" retries), so a hung endpoint costs seconds,
not the 60 s × 5 of botocore's defaults.

Deletes use DeleteObjects, `DELETE_BATCH` keys a request. On a versioned bucket a delete leaves a
delete marker and keeps the earlier versions; `list_object_versions` and `delete_object_versions`
(S3 only) remove every version and marker for good.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable

from functions.errors import PreconditionFailed, StoreNotWritable, StoreUnavailable
from functions.store.base import ObjectStore, StoredObject, join_key

_MISSING = {"NoSuchKey", "404", "NotFound"}
EXPIRING_TAG = "lifecycle=expiring"  # infra/bucket.yml expires objects with this tag
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_REFUSED = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem", "InvalidObjectState", "QuotaExceeded"}
MAX_ATTEMPTS = 2  # one retry: enough for a throttled or reset call, bounded for Label Studio's 3 s
DELETE_BATCH = 1000  # keys per DeleteObjects request: S3's maximum


class S3Store(ObjectStore):
    """Objects under ``s3://<bucket>/<prefix>/``; the boto3 client is made on first use.

    `connect_timeout` and `read_timeout` (seconds, per attempt) default to the settings
    S3_CONNECT_TIMEOUT and S3_READ_TIMEOUT, read when the client is made.
    """

    def __init__(self, bucket: str, prefix: str = "", *, connect_timeout: float | None = None, read_timeout: float | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.timeouts = (connect_timeout, read_timeout)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client("s3", config=client_config(*self.timeouts))
        return self._client

    def get(self, key: str) -> StoredObject | None:
        full_key = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
            data = response["Body"].read()
        except Exception as error:  # noqa: BLE001 - botocore raises many types; classified below
            if _code(error) in _MISSING:
                return None
            raise _unavailable("read", key, error) from error
        return StoredObject(data, response["ETag"])

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False, expiring: bool = False
    ) -> str:
        full_key = self._key(key)
        extra: dict[str, str] = {"Tagging": EXPIRING_TAG} if expiring else {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=full_key, Body=data, **extra)
        except Exception as error:  # noqa: BLE001
            if (if_match or if_none_match) and _code(error) in _CONFLICT:
                raise PreconditionFailed(f"{key} changed or already exists") from error
            if _code(error) in _REFUSED:
                raise StoreNotWritable(
                    f"the model store refuses writes ({_code(error)}): cannot write {key} to s3://{self.bucket}; "
                    "check the bucket policy and the role's s3:PutObject permission"
                ) from error
            raise _unavailable("write", key, error) from error
        return response["ETag"]

    def list_keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self._pages(prefix):
            keys.extend(self._relative(item["Key"]) for item in page.get("Contents", []))
        return sorted(keys)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        sizes = {}
        for page in self._pages(prefix):
            sizes.update((self._relative(item["Key"]), int(item.get("Size", 0))) for item in page.get("Contents", []))
        return dict(sorted(sizes.items()))

    def delete(self, keys: Iterable[str]) -> None:
        """DeleteObjects, `DELETE_BATCH` keys a request; each key's error in the reply counts."""
        self._delete_batches([{"Key": self._key(key)} for key in keys])

    def list_object_versions(self, prefix: str) -> list[ObjectVersion]:
        """Every version and delete marker of every key under `prefix` (a folder path ending in
        '/'), current ones included (ListObjectVersions; needs ``s3:ListBucketVersions``). On a
        bucket that never had versioning each object is one version, id ``null``."""
        folder = prefix.strip("/")
        full = self._key(folder) + "/" if folder else (self.prefix + "/" if self.prefix else "")
        found = []
        try:
            for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Versions", []):
                    found.append(ObjectVersion(self._relative(item["Key"]), item["VersionId"], int(item.get("Size", 0)),
                                               bool(item.get("IsLatest")), False))
                for item in page.get("DeleteMarkers", []):
                    found.append(ObjectVersion(self._relative(item["Key"]), item["VersionId"], 0,
                                               bool(item.get("IsLatest")), True))
        except Exception as error:  # noqa: BLE001
            raise _unavailable("list the versions under", prefix, error) from error
        return found

    def delete_object_versions(self, versions: Iterable[ObjectVersion]) -> None:
        """Delete each version or delete marker for good (DeleteObjects with VersionId; needs
        ``s3:DeleteObjectVersion``): nothing of it can be restored afterwards."""
        self._delete_batches([{"Key": self._key(v.key), "VersionId": v.version_id} for v in versions])

    def _delete_batches(self, objects: list[dict[str, str]]) -> None:
        for start in range(0, len(objects), DELETE_BATCH):
            batch = objects[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as error:  # noqa: BLE001
                if _code(error) in _REFUSED:
                    raise _refused(_code(error), len(batch), self._relative(batch[0]["Key"]), self.bucket) from error
                raise _unavailable("delete", self._relative(batch[0]["Key"]), error) from error
            errors = response.get("Errors") or []
            if errors:
                codes = sorted({str(e.get("Code", "")) for e in errors})
                first = self._relative(str(errors[0].get("Key", "")))
                if set(codes) & _REFUSED:
                    raise _refused(", ".join(codes), len(errors), first, self.bucket)
                raise StoreUnavailable(f"model store: cannot delete {len(errors)} of {len(batch)} objects, e.g. {first} "
                                       f"({', '.join(codes)}: {errors[0].get('Message', '')})")

    def list_folders(self, prefix: str) -> list[str]:
        names = []
        for page in self._pages(prefix, Delimiter="/"):
            names.extend(self._relative(item["Prefix"]).rstrip("/").rsplit("/", 1)[-1] for item in page.get("CommonPrefixes", []))
        return sorted(names)

    def _pages(self, prefix: str, **extra: str) -> list[dict[str, Any]]:
        folder = prefix.strip("/")
        full = self._key(folder) + "/" if folder else (self.prefix + "/" if self.prefix else "")
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            return list(paginator.paginate(Bucket=self.bucket, Prefix=full, **extra))
        except Exception as error:  # noqa: BLE001
            raise _unavailable("list", prefix, error) from error

    def _key(self, key: str) -> str:
        key = join_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key


def client_config(connect_timeout: float | None = None, read_timeout: float | None = None) -> Any:
    """The botocore `Config` of every client this package makes: timeouts in seconds per
    attempt (None: the S3_CONNECT_TIMEOUT / S3_READ_TIMEOUT settings), `MAX_ATTEMPTS` attempts."""
    from botocore.config import Config

    if connect_timeout is None or read_timeout is None:
        from functions.settings import get_settings

        settings = get_settings()
        connect_timeout = settings.s3_connect_timeout if connect_timeout is None else connect_timeout
        read_timeout = settings.s3_read_timeout if read_timeout is None else read_timeout
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=32,
    )


@dataclass(frozen=True)
class ObjectVersion:
    """One version of an object, or one delete marker, in a versioned bucket.

    Attributes:
        key: the store key (relative to the store's prefix).
        version_id: S3's version id (``null`` for an object written before versioning).
        size: bytes (0 for a delete marker).
        latest: the current version of its key (a delete marker that is latest hides the key).
        delete_marker: a delete marker, not data.
    """

    key: str
    version_id: str
    size: int
    latest: bool
    delete_marker: bool


def _refused(codes: str, count: int, key: str, bucket: str) -> StoreNotWritable:
    return StoreNotWritable(
        f"the model store refuses deletes ({codes}): cannot delete {count} object(s), e.g. {key}, from s3://{bucket}; "
        "check the role's s3:DeleteObject (and, for earlier versions, s3:DeleteObjectVersion) permission"
    )


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _unavailable(action: str, key: str, error: Exception) -> StoreUnavailable:
    detail = _code(error) or type(error).__name__
    return StoreUnavailable(f"model store: cannot {action} {key} ({detail})")
