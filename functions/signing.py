"""Sign model versions when they are published; verify them before the API loads one.

What is signed is a version's ``manifest.json``, byte for byte: it holds the SHA-256 of
``model.npz`` (what the API serves) and of ``model.pkl``, so the signature covers the models
too. The MAC is HMAC-SHA256 over ``CONTEXT + sha256(manifest bytes)`` (KMS takes at most 4,096
bytes per message, and a manifest can be larger). It is stored beside the manifest as
``signature.json``: ``{"algorithm": "HMAC-SHA256", "key": <key id>, "mac": <base64>}``.

Which key, first match wins (`signer_for`):

1. ``MODEL_SIGNING_KMS_KEY``: an AWS KMS HMAC key (key spec HMAC_256, usage
   GENERATE_VERIFY_MAC). The train function signs with ``kms:GenerateMac``, the API verifies
   with ``kms:VerifyMac``; the key material never leaves KMS, so only a role allowed to call
   GenerateMac can produce a valid version. This is the only mode that resists forgery by
   someone who can write the bucket.
2. ``MODEL_SIGNING_KEY``: a shared secret (HMAC in process). Whoever knows it can sign.
3. A ``file://`` store without either: a random key in ``<store root>/.signing-key``, created
   on first signature. **This only detects accidental corruption** (a truncated or altered
   object, a version copied from another store): anyone who can write the folder can read
   the key and forge a version.

An ``s3://`` store with neither setting cannot sign or verify: publishing raises, and the API
answers 503 with a detail naming the settings (SigningUnavailable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from functions.errors import SigningUnavailable

if TYPE_CHECKING:
    from functions.settings import Settings
    from functions.store import ObjectStore

log = logging.getLogger(__name__)

ALGORITHM = "HMAC-SHA256"
CONTEXT = b"ls-textcls/manifest/v1\n"
KEY_FILE = ".signing-key"


def message(manifest: bytes) -> bytes:
    """The bytes that are MACed for `manifest`: a fixed context and its SHA-256 (55 bytes)."""
    return CONTEXT + hashlib.sha256(manifest).digest()


class Signer:
    """Signs manifests and checks signatures with one key, named by `key_id`."""

    key_id = "none"

    def mac(self, data: bytes) -> bytes:
        """The HMAC-SHA256 of `data`. Raises SigningUnavailable when the key cannot be used."""
        raise NotImplementedError

    def sign(self, manifest: bytes) -> dict[str, str]:
        """The ``signature.json`` body for `manifest`. Raises SigningUnavailable."""
        return {"algorithm": ALGORITHM, "key": self.key_id, "mac": base64.b64encode(self.mac(message(manifest))).decode()}

    def verify(self, manifest: bytes, signature: Any) -> str | None:
        """None if `signature` (a decoded ``signature.json``) is this key's valid signature of
        `manifest`, else why not (a sentence for the log). Raises SigningUnavailable when the
        key cannot be used right now (KMS unreachable): that says nothing about the version."""
        if not isinstance(signature, Mapping) or signature.get("algorithm") != ALGORITHM:
            return "its signature.json is not an HMAC-SHA256 signature"
        if signature.get("key") != self.key_id:
            return f"it is signed with key {signature.get('key')!r}, not with this backend's key {self.key_id!r}"
        try:
            claimed = base64.b64decode(str(signature.get("mac", "")), validate=True)
        except ValueError:
            return "its signature is not base64"
        return None if self.check(message(manifest), claimed) else "its signature does not match the manifest (altered or forged)"

    def check(self, data: bytes, claimed: bytes) -> bool:
        """True if `claimed` is the MAC of `data` (constant time)."""
        return hmac.compare_digest(self.mac(data), claimed)


class HmacSigner(Signer):
    """HMAC-SHA256 in process with a secret key (MODEL_SIGNING_KEY)."""

    def __init__(self, key: bytes, key_id: str) -> None:
        self._key, self.key_id = key, key_id

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()


class KeyFileSigner(Signer):
    """HMAC-SHA256 with a random key kept in ``<store root>/.signing-key`` (0600), created by the
    first signature. Detects accidental corruption only: whoever can write the folder can read it."""

    key_id = f"file:{KEY_FILE}"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self._read(create=True), data, hashlib.sha256).digest()

    def check(self, data: bytes, claimed: bytes) -> bool:
        key = self._read(create=False)  # verifying never creates a key: nothing was signed with a new one
        return key is not None and hmac.compare_digest(hmac.new(key, data, hashlib.sha256).digest(), claimed)

    def _read(self, create: bool) -> bytes | None:
        with self._lock:
            if self._key is None:
                self._key = _read_key_file(self.path) if not create else _read_or_create_key_file(self.path)
            return self._key


class KmsSigner(Signer):
    """AWS KMS GenerateMac / VerifyMac (HMAC_SHA_256) with MODEL_SIGNING_KMS_KEY; the boto3
    client is made on first use, with the S3 timeouts and bounded retries."""

    def __init__(self, key: str, connect_timeout: float, read_timeout: float) -> None:
        self.key, self.key_id = key, f"kms:{key}"
        self._timeouts = (connect_timeout, read_timeout)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            from functions.store.s3 import client_config

            self._client = boto3.client("kms", config=client_config(*self._timeouts))
        return self._client

    def mac(self, data: bytes) -> bytes:
        try:
            return self.client.generate_mac(KeyId=self.key, Message=data, MacAlgorithm="HMAC_SHA_256")["Mac"]
        except Exception as error:  # noqa: BLE001 - botocore raises many types
            raise SigningUnavailable(f"cannot sign with KMS key {self.key} ({_code(error)})") from error

    def check(self, data: bytes, claimed: bytes) -> bool:
        try:
            reply = self.client.verify_mac(KeyId=self.key, Message=data, Mac=claimed, MacAlgorithm="HMAC_SHA_256")
        except Exception as error:  # noqa: BLE001
            if _code(error) == "KMSInvalidMacException":
                return False
            raise SigningUnavailable(f"cannot verify with KMS key {self.key} ({_code(error)})") from error
        return bool(reply.get("MacValid"))


class NoKey(Signer):
    """No key for this store: every use raises SigningUnavailable with what to set."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def mac(self, data: bytes) -> bytes:
        raise SigningUnavailable(self.reason)


def signer_for(store: ObjectStore, settings: Settings) -> Signer:
    """The signer for `store` under `settings`: KMS key, else MODEL_SIGNING_KEY, else the store's
    key file (``file://`` stores only), else `NoKey` (see the module docstring)."""
    from functions.store import LocalStore

    if settings.model_signing_kms_key:
        return KmsSigner(settings.model_signing_kms_key, settings.s3_connect_timeout, settings.s3_read_timeout)
    if settings.model_signing_key is not None and settings.model_signing_key.get_secret_value():
        return HmacSigner(settings.model_signing_key.get_secret_value().encode(), "env:MODEL_SIGNING_KEY")
    if isinstance(store, LocalStore):
        return KeyFileSigner(store.root / KEY_FILE)
    return NoKey(
        f"model versions in {store!r} cannot be signed or verified: set MODEL_SIGNING_KMS_KEY (a KMS HMAC key) "
        "or MODEL_SIGNING_KEY (a secret) for both functions"
    )


def _read_key_file(path: Path) -> bytes | None:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SigningUnavailable(f"cannot read the store's signing key {path}: {error.strerror}") from error
    return key or None


def _read_or_create_key_file(path: Path) -> bytes:
    """The key in `path`, made (32 random bytes, hex, mode 0600) if there is none; atomic
    against a concurrent creator (a hard link never replaces an existing file)."""
    existing = _read_key_file(path)
    if existing:
        return existing
    tmp = path.with_name(f".tmp-{KEY_FILE}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode())
        try:
            os.link(tmp, path)
            log.info("created the store's model signing key %s (detects corruption, not forgery)", path)
        except FileExistsError:
            pass
    except OSError as error:
        raise SigningUnavailable(f"cannot create the store's signing key {path}: {error.strerror}") from error
    finally:
        tmp.unlink(missing_ok=True)
    key = _read_key_file(path)
    if not key:
        raise SigningUnavailable(f"the store's signing key {path} is empty")
    return key


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or type(error).__name__
