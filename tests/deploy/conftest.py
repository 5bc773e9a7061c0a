import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import ROOT
from tests.deploy.cfn import Packaged, by_type

# What the package build is given. The deploying shell's BASIC_AUTH_* must never reach the template:
# the build runs with these canaries set, and the tests look for them everywhere it wrote.
CANARY_USER = "canary-user-8d1f"
CANARY_PASS = "canary-pass-3b7e9a0c"


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
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MODEL_STORE", "TRAIN_QUEUE", "PREDICT_", "BASIC_AUTH", "LABEL_STUDIO"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def sls(sls_env):
    """Run `npx sls <args>` (stage ci) in the repository; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["npx", "sls", *args, "--stage", "ci"], cwd=ROOT, env=env or sls_env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def sls_print(sls):
    """The resolved configuration (`sls print`, no packaging) for some params: a couple of seconds."""

    def resolved(*params: str) -> dict:
        done = sls("print", "--format", "json", *(f"--param={p}" for p in params))
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return json.loads(done.stdout[done.stdout.index("{"):])

    return resolved


@pytest.fixture(scope="session")
def packaged(sls, sls_env, tmp_path_factory) -> Packaged:
    """One `sls package` (about 2 minutes) shared by every template and zip test: the recommended
    deployment, a generated credentials secret, built from a shell that has BASIC_AUTH_* set."""
    out = tmp_path_factory.mktemp("package")
    env = sls_env | {"BASIC_AUTH_USER": CANARY_USER, "BASIC_AUTH_PASS": CANARY_PASS}
    done = sls("package", "--package", str(out), "--param=credentials=generate", env=env, timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    text = (out / "cloudformation-template-update-stack.json").read_text()
    template = json.loads(text)
    resources = template["Resources"]
    s3_keys = {r["Properties"]["Handler"]: r["Properties"]["Code"]["S3Key"] for r in by_type(resources, "AWS::Lambda::Function").values()}
    # Each function's zip is the file its S3 key names, in the package folder (what `sls deploy --package` uploads).
    api, train, predict = (zipfile.ZipFile(out / PurePosixPath(s3_keys[f"functions/{fn}/handler.handler"]).name)
                           for fn in ("api", "train", "predict"))
    return Packaged(api, train, predict, s3_keys, resources, template["Outputs"], done.stdout + done.stderr, out, text)
