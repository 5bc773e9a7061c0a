"""The Label Studio token: from LABEL_STUDIO_API_KEY, or read at runtime from the secret
LABEL_STUDIO_API_KEY_SECRET names (how the deployment passes it to the train and predict functions)."""

import pytest
from pydantic import SecretStr

from functions import credentials, label_studio_token as module
from functions.label_studio import LabelStudioUnreachable
from functions.settings import Settings
from tests.unit.test_credentials import secretsmanager  # noqa: F401 - the moto fixture


@pytest.fixture(autouse=True)
def fresh_cache():
    module._cache.clear()
    credentials.reset_cache()
    yield
    module._cache.clear()
    credentials.reset_cache()


def test_the_env_token_wins_and_nothing_means_not_configured():
    assert module.label_studio_token(Settings(label_studio_api_key=SecretStr("tok"), label_studio_api_key_secret="arn:x")) == "tok"
    assert module.label_studio_token(Settings()) == ""
    assert not Settings(label_studio_url="http://ls").label_studio_configured()
    assert Settings(label_studio_url="http://ls", label_studio_api_key_secret="arn:x").label_studio_configured()
    assert Settings(label_studio_url="http://ls", label_studio_api_key_secret="arn:x").runs_after_training()


def test_the_secret_is_read_at_runtime_and_cached_until_the_ttl(secretsmanager):  # noqa: F811
    arn = secretsmanager.create_secret(Name="ls-token", SecretString="pat-1\n")["ARN"]
    settings = Settings(label_studio_url="http://ls", label_studio_api_key_secret=arn, credentials_ttl_seconds=300)
    assert module.label_studio_token(settings) == "pat-1"
    secretsmanager.put_secret_value(SecretId=arn, SecretString="pat-2")
    assert module.label_studio_token(settings) == "pat-1"  # cached
    module._cache.clear()
    assert module.label_studio_token(settings) == "pat-2"  # a rotation applies after the TTL


def test_an_unreadable_or_empty_secret_is_a_transient_label_studio_failure(secretsmanager):  # noqa: F811
    missing = Settings(label_studio_api_key_secret="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
    with pytest.raises(LabelStudioUnreachable, match="LABEL_STUDIO_API_KEY_SECRET"):
        module.label_studio_token(missing)
    arn = secretsmanager.create_secret(Name="empty", SecretString="  ")["ARN"]
    with pytest.raises(LabelStudioUnreachable, match="no text token"):
        module.label_studio_token(Settings(label_studio_api_key_secret=arn))
