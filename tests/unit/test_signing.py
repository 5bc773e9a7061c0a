"""Signing model manifests: a local HMAC key, the store's key file, AWS KMS (moto), no key."""

import base64
import os
import stat
import time

import boto3
import pytest
from moto import mock_aws

from functions import signing
from functions.errors import SigningUnavailable
from functions.settings import Settings
from functions.store import LocalStore, S3Store

MANIFEST = b'{"version":"p1-v1","serving":{"sha256":"ab"}}'


def test_a_signing_key_signs_and_verifies_and_refuses_any_change():
    signer = signing.signer_for(LocalStore("/nonexistent"), Settings(model_signing_key="k1"))
    signature = signer.sign(MANIFEST)
    assert signature["algorithm"] == "HMAC-SHA256" and signature["key"] == "env:MODEL_SIGNING_KEY"
    assert len(base64.b64decode(signature["mac"])) == 32
    assert signer.verify(MANIFEST, signature) is None
    assert "does not match" in signer.verify(MANIFEST.replace(b"ab", b"ac"), signature)
    other = signing.signer_for(LocalStore("/nonexistent"), Settings(model_signing_key="k2"))
    assert "does not match" in other.verify(MANIFEST, signature)
    assert "not an HMAC-SHA256" in signer.verify(MANIFEST, {"mac": signature["mac"]})
    assert "not base64" in signer.verify(MANIFEST, signature | {"mac": "!!"})
    assert "not an HMAC-SHA256" in signer.verify(MANIFEST, ["garbage"])


def test_the_store_key_file_is_made_on_first_signature_only_and_private(tmp_path):
    store = LocalStore(tmp_path)
    verifier = signing.signer_for(store, Settings())
    assert verifier.key_id == "file:.signing-key"
    assert "does not match" in verifier.verify(MANIFEST, {"algorithm": "HMAC-SHA256", "key": "file:.signing-key", "mac": "AA=="})
    assert not (tmp_path / ".signing-key").exists()  # verifying never creates a key
    signature = signing.signer_for(store, Settings()).sign(MANIFEST)
    key_file = tmp_path / ".signing-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 64
    assert verifier.verify(MANIFEST, signature) is None  # another process's signer, same file
    assert [p.name for p in tmp_path.iterdir()] == [".signing-key"]  # no temporary file left


def test_a_key_for_one_store_does_not_verify_another_stores_versions(tmp_path):
    signature = signing.signer_for(LocalStore(tmp_path / "a"), Settings()).sign(MANIFEST)
    signing.signer_for(LocalStore(tmp_path / "b"), Settings()).sign(b"x")
    assert "does not match" in signing.signer_for(LocalStore(tmp_path / "b"), Settings()).verify(MANIFEST, signature)


def test_a_different_key_kind_is_named_in_the_reason(tmp_path):
    signature = signing.signer_for(LocalStore(tmp_path), Settings()).sign(MANIFEST)
    reason = signing.signer_for(LocalStore(tmp_path), Settings(model_signing_key="k")).verify(MANIFEST, signature)
    assert reason == "it is signed with key 'file:.signing-key', not with this backend's key 'env:MODEL_SIGNING_KEY'"


def test_an_s3_store_without_a_key_says_what_to_set():
    signer = signing.signer_for(S3Store("bucket"), Settings())
    with pytest.raises(SigningUnavailable, match="MODEL_SIGNING_KMS_KEY .* or MODEL_SIGNING_KEY"):
        signer.sign(MANIFEST)


@pytest.fixture
def kms(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("kms")
        key = client.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        yield client, key


def test_kms_generate_mac_signs_and_verify_mac_checks(kms):
    client, key = kms
    signer = signing.signer_for(S3Store("bucket"), Settings(model_signing_kms_key=key, model_signing_key="ignored"))
    assert isinstance(signer, signing.KmsSigner) and signer.key_id == f"kms:{key}"
    signature = signer.sign(MANIFEST)
    expected = client.generate_mac(KeyId=key, Message=signing.message(MANIFEST), MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert base64.b64decode(signature["mac"]) == expected
    assert signer.verify(MANIFEST, signature) is None
    assert "does not match" in signer.verify(MANIFEST + b" ", signature)
    config = signer.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)


def test_an_unreachable_kms_is_transient_not_a_bad_signature(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    signer = signing.KmsSigner("alias/models", 0.2, 0.2)
    started = time.monotonic()
    with pytest.raises(SigningUnavailable, match="cannot verify with KMS key alias/models"):
        signer.verify(MANIFEST, {"algorithm": "HMAC-SHA256", "key": "kms:alias/models", "mac": "AA=="})
    assert time.monotonic() - started < 2.5
    with pytest.raises(SigningUnavailable, match="cannot sign with KMS key"):
        signer.sign(MANIFEST)


def test_the_key_file_docstring_says_it_only_detects_corruption():
    assert "only detects accidental corruption" in signing.__doc__.replace("\n", " ").replace("**", "")
    assert "Detects accidental corruption only" in signing.KeyFileSigner.__doc__
    assert os.environ.get("MODEL_SIGNING_KEY") is None  # the tests above do not depend on the environment
