import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def sls_env() -> dict[str, str]:
    """Environment for `npx sls …`: node_modules installed, this virtualenv first on PATH, with a
    `python3.12` (what `sls invoke local` runs for the python3.12 runtime; `make test` makes it
    too). The name must live in the virtualenv's own bin: a link elsewhere loses the venv."""
    if not (ROOT / "node_modules" / ".bin" / "sls").exists() or not shutil.which("npx"):
        message = "node_modules is missing: run `npm ci` (make test does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    bin_dir = Path(sys.executable).parent
    if sys.prefix == sys.base_prefix:
        pytest.fail("run the tests from the project's virtualenv (make test)")
    if not (bin_dir / "python3.12").exists():
        (bin_dir / "python3.12").symlink_to(Path(sys.executable).name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_STORE", "TRAIN_QUEUE", "BASIC_AUTH"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env
