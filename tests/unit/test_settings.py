import re

import pytest

from functions.settings import Settings
from tests.conftest import ROOT


def test_settings_come_from_upper_case_environment_variables(monkeypatch):
    monkeypatch.setenv("MODEL_STORE_URI", "s3://bucket/prefix")
    monkeypatch.setenv("LR_C", "2.5")
    monkeypatch.setenv("BASIC_AUTH_PASS", "hunter2")
    monkeypatch.setenv("COLD_START", "true")
    settings = Settings()
    assert (settings.model_store_uri, settings.lr_c, settings.cold_start) == ("s3://bucket/prefix", 2.5, True)
    assert settings.basic_auth_pass.get_secret_value() == "hunter2" and "hunter2" not in repr(settings)


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_one_fold_is_refused_at_start():
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="use 0 \\(off\\) or 2-20"):
        Settings(_env_file=None, cross_validation_folds=1)
    assert Settings(_env_file=None, cross_validation_folds=0).cross_validation_folds == 0


def test_make_dev_names_an_invalid_setting_in_one_line_without_a_traceback():
    import os
    import subprocess
    import sys

    env = os.environ | {"CROSS_VALIDATION_FOLDS": "1", "LR_C": "many"}
    done = subprocess.run([sys.executable, "-m", "functions.dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: invalid settings in the environment: LR_C: Input should be a valid number, unable to parse string as a number; "
        "CROSS_VALIDATION_FOLDS: Value error, 1 fold cannot predict anything out of fold: use 0 (off) or 2-20"
    ]
