"""functions.credentials: the API's credentials from the settings, or from a Secrets Manager
secret read at runtime and cached (moto stands in for Secrets Manager)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from moto import mock_aws

from functions import credentials as module
from functions.credentials import Credentials, CredentialsUnavailable, current_credentials
from functions.errors import BackendError
from functions.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"basic_auth_user": "labelstudio", "basic_auth_pass": "s3cret-pass", "webhook_secret": "hook-token"}


@pytest.fixture(autouse=True)
def fresh_cache():
    module.reset_cache()
    yield
    module.reset_cache()


@pytest.fixture
def secretsmanager(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        import boto3

        yield boto3.client("secretsmanager", region_name="us-east-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(module.time, "monotonic", clock)
    return clock


def secret(client, value, name="ls-textcls-credentials") -> str:
    body = value if isinstance(value, str) else json.dumps(value)
    return client.create_secret(Name=name, SecretString=body)["ARN"]


def test_without_a_secret_the_settings_env_values_are_the_credentials():
    settings = Settings(basic_auth_user="u", basic_auth_pass="p", webhook_secret="w")
    assert current_credentials(settings) == Credentials("u", "p", "w")
    assert current_credentials(Settings()) == Credentials(None, None, None)
    assert current_credentials(Settings(basic_auth_user="u", basic_auth_pass="", webhook_secret="")) == Credentials("u", None, None)


def test_the_secrets_stay_out_of_repr():
    text = repr(Credentials("labelstudio", "s3cret-pass", "hook-token"))
    assert "labelstudio" in text and "s3cret" not in text and "hook-token" not in text


def test_the_secret_is_read_at_runtime_by_arn_or_name(secretsmanager):
    arn = secret(secretsmanager, GOOD)
    assert current_credentials(Settings(credentials_secret=arn)) == Credentials("labelstudio", "s3cret-pass", "hook-token")
    assert current_credentials(Settings(credentials_secret="ls-textcls-credentials")).basic_auth_pass == "s3cret-pass"


def test_the_secret_wins_over_env_values(secretsmanager):
    arn = secret(secretsmanager, GOOD)
    settings = Settings(credentials_secret=arn, basic_auth_user="env-user", basic_auth_pass="env-pass")
    assert current_credentials(settings).basic_auth_user == "labelstudio"


def test_a_secret_without_a_webhook_secret_is_fine(secretsmanager):
    arn = secret(secretsmanager, {"basic_auth_user": "a", "basic_auth_pass": "b", "extra": 1})
    assert current_credentials(Settings(credentials_secret=arn)) == Credentials("a", "b", None)


def test_a_rotation_applies_after_the_ttl_without_a_redeploy(secretsmanager, clock):
    arn = secret(secretsmanager, GOOD)
    settings = Settings(credentials_secret=arn, credentials_ttl_seconds=300)
    assert current_credentials(settings).basic_auth_pass == "s3cret-pass"
    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(GOOD | {"basic_auth_pass": "rotated"}))
    clock.now += 299
    assert current_credentials(settings).basic_auth_pass == "s3cret-pass"  # cached: one GetSecretValue per TTL
    clock.now += 2
    assert current_credentials(settings).basic_auth_pass == "rotated"


def test_the_secret_is_read_once_per_ttl(secretsmanager, clock, monkeypatch):
    arn = secret(secretsmanager, GOOD)
    settings = Settings(credentials_secret=arn, credentials_ttl_seconds=60)
    calls = []
    real = module._read_secret
    monkeypatch.setattr(module, "_read_secret", lambda *a: calls.append(a) or real(*a))
    for _ in range(50):
        current_credentials(settings)
    assert len(calls) == 1


def test_a_missing_secret_raises_a_503_without_naming_it(secretsmanager):
    settings = Settings(credentials_secret="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
    with pytest.raises(CredentialsUnavailable) as raised:
        current_credentials(settings)
    assert isinstance(raised.value, BackendError) and raised.value.status_code == 503
    assert "ResourceNotFoundException" in str(raised.value) and "GetSecretValue" in str(raised.value)
    assert "123456789012" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("not json", "not JSON"),
        ('["a", "b"]', "not a JSON object"),
        ({"basic_auth_user": "u"}, "basic_auth_pass is missing"),
        ({"basic_auth_user": "", "basic_auth_pass": "p"}, "basic_auth_user is missing"),
        ({}, "basic_auth_user and basic_auth_pass are missing"),
        ({"basic_auth_user": "u", "basic_auth_pass": 12345}, "basic_auth_pass is not a string"),
        ({"basic_auth_user": "u", "basic_auth_pass": "p", "webhook_secret": ["x"]}, "webhook_secret is not a string"),
    ],
)
def test_a_secret_that_is_not_the_expected_json_raises_a_clear_503(secretsmanager, value, why):
    arn = secret(secretsmanager, value)
    with pytest.raises(CredentialsUnavailable, match=why) as raised:
        current_credentials(Settings(credentials_secret=arn))
    assert raised.value.status_code == 503
    assert "12345" not in str(raised.value)  # never echoes a value


def test_a_binary_secret_is_refused(secretsmanager):
    arn = secretsmanager.create_secret(Name="binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(CredentialsUnavailable, match="binary"):
        current_credentials(Settings(credentials_secret=arn))


def test_credentials_read_once_keep_serving_while_the_secret_cannot_be_read(secretsmanager, clock):
    arn = secret(secretsmanager, GOOD)
    settings = Settings(credentials_secret=arn, credentials_ttl_seconds=60)
    assert current_credentials(settings).basic_auth_pass == "s3cret-pass"
    secretsmanager.put_secret_value(SecretId=arn, SecretString="{broken")  # a bad edit, or an outage
    clock.now += 61
    assert current_credentials(settings).basic_auth_pass == "s3cret-pass"
    clock.now += module.STALE_SECONDS
    with pytest.raises(CredentialsUnavailable, match="not JSON"):
        current_credentials(settings)
    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(GOOD | {"basic_auth_pass": "fixed"}))
    clock.now += module.RETRY_AFTER_FAILURE_SECONDS
    assert current_credentials(settings).basic_auth_pass == "fixed"  # recovers by itself


def test_a_failed_read_is_not_retried_at_once(secretsmanager, clock, monkeypatch):
    settings = Settings(credentials_secret="missing")
    calls = []
    real = module._read_secret
    monkeypatch.setattr(module, "_read_secret", lambda *a: calls.append(a) or real(*a))
    for _ in range(20):
        with pytest.raises(CredentialsUnavailable):
            current_credentials(settings)
    assert len(calls) == 1
    clock.now += module.RETRY_AFTER_FAILURE_SECONDS
    with pytest.raises(CredentialsUnavailable):
        current_credentials(settings)
    assert len(calls) == 2


def test_the_client_has_short_timeouts_two_attempts_and_the_arns_region(secretsmanager):
    settings = Settings(s3_connect_timeout=0.5, s3_read_timeout=1.5)
    client = module._client(settings, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf")
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.connect_timeout == 0.5 and client.meta.config.read_timeout == 1.5
    assert client.meta.config.retries["total_max_attempts"] == 2
    assert module._client(settings, "by-name").meta.region_name == "us-east-1"
    assert module._client(settings, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:y-AbCdEf") is client


def test_a_hung_endpoint_fails_within_the_timeouts(monkeypatch):
    """A Secrets Manager endpoint that accepts connections and never answers costs at most
    2 attempts x read timeout, then a 503 (no moto: a silent socket on loopback)."""
    import socket
    import time as real_time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{server.getsockname()[1]}")
        settings = Settings(credentials_secret="hung", s3_connect_timeout=0.2, s3_read_timeout=0.3)
        started = real_time.monotonic()
        with pytest.raises(CredentialsUnavailable, match="cannot be read"):
            current_credentials(settings)
        assert real_time.monotonic() - started < 2.5
    finally:
        server.close()


def test_importing_the_module_imports_no_boto3():
    code = "import sys, functions.credentials; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_fresh_credentials_answer_from_memory_only(secretsmanager, clock):
    from functions.credentials import fresh_credentials

    assert fresh_credentials(Settings(basic_auth_user="u", basic_auth_pass="p")).basic_auth_pass == "p"
    settings = Settings(credentials_secret=secret(secretsmanager, GOOD), credentials_ttl_seconds=300)
    assert fresh_credentials(settings) is None  # not read yet: the caller must ask AWS (off the event loop)
    current_credentials(settings)
    assert fresh_credentials(settings).basic_auth_pass == "s3cret-pass"
    clock.now += 301
    assert fresh_credentials(settings) is None  # stale: read again
