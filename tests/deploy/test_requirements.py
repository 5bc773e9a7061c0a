"""Version pins have one source of truth (requirements/*.txt), and each Lambda zip's requirements
file (infra/zip/<function>/requirements.txt, read by serverless-python-requirements) resolves to the
right set. Fast: reads files only, no pip, no network."""

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Every requirements file of the repository: what `make install` reads and what each zip gets.
FILES = sorted({*ROOT.glob("requirements*.txt"), *ROOT.glob("requirements/*.txt"), *ROOT.glob("infra/zip/*/requirements.txt")})
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[^\]]*)\])?==(?P<version>[^\s;#]+)\s*(?:#.*)?$")
INCLUDE = re.compile(r"^-r\s+(?P<path>\S+)$")  # serverless-python-requirements reads `-r <path>` and nothing more


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lines(path: Path) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def resolve(path: Path) -> dict[str, str]:
    """canonical name → version of every pin `pip install -r path` sees, following -r."""
    pins: dict[str, str] = {}
    for _, line in lines(path):
        include = INCLUDE.match(line)
        if include:
            pins |= resolve(path.parent / include["path"])
        else:
            match = PIN.match(line)
            pins[canonical(match["name"])] = match["version"]
    return pins


def test_the_repository_has_the_expected_requirement_files():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"requirements.txt", "requirements-dev.txt", "requirements/api.txt", "requirements/train.txt",
            "infra/zip/api/requirements.txt", "infra/zip/train/requirements.txt"} <= names


def test_every_line_is_an_exact_pin_or_an_include_that_exists():
    problems = []
    for path in FILES:
        for number, line in lines(path):
            include = INCLUDE.match(line)
            if include:
                if not (path.parent / include["path"]).is_file():
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {line} (no such file)")
            elif not PIN.match(line):
                problems.append(f"{path.relative_to(ROOT)}:{number}: {line} (not `name==version` or `-r file`)")
    assert not problems, "\n".join(problems)


def test_no_two_files_pin_a_package_differently():
    pins: dict[str, dict[str, list[str]]] = {}
    for path in FILES:
        for number, line in lines(path):
            match = PIN.match(line)
            if match:
                pins.setdefault(canonical(match["name"]), {}).setdefault(match["version"], []).append(f"{path.relative_to(ROOT)}:{number}")
    conflicts = {name: versions for name, versions in pins.items() if len(versions) > 1}
    assert not conflicts, "pinned differently: " + "; ".join(
        f"{name}: " + ", ".join(f"{version} ({' '.join(where)})" for version, where in versions.items())
        for name, versions in conflicts.items())


def test_the_api_zip_gets_the_web_stack_and_numpy_but_not_the_scientific_stack():
    api = resolve(ROOT / "infra/zip/api/requirements.txt")
    assert {"fastapi", "starlette", "pydantic", "pydantic-settings", "mangum", "defusedxml", "httpx", "numpy", "orjson"} <= api.keys()
    assert not {"scikit-learn", "scipy", "joblib", "threadpoolctl", "boto3"} & api.keys()


def test_the_train_zip_gets_the_scientific_stack_but_not_the_web_stack():
    train = resolve(ROOT / "infra/zip/train/requirements.txt")
    assert {"scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl", "pydantic", "pydantic-settings", "defusedxml", "httpx"} <= train.keys()
    assert not {"fastapi", "starlette", "mangum", "boto3"} & train.keys()


@pytest.mark.parametrize("top", ["requirements.txt", "requirements-dev.txt"])
def test_make_install_gets_what_both_functions_get(top):
    everything = resolve(ROOT / top)
    for function in ("api", "train"):
        zipped = resolve(ROOT / f"infra/zip/{function}/requirements.txt")
        assert zipped.items() <= everything.items(), f"{top} lacks some of the {function} zip's pins"
    assert "boto3" in everything  # the Lambda runtime provides it; local runs and tests need it


def test_the_dev_server_gets_uvicorn_standard():
    (line,) = [line for _, line in lines(ROOT / "requirements-dev.txt") if canonical(line.split("[")[0].split("=")[0]) == "uvicorn"]
    assert "standard" in PIN.match(line)["extras"].split(",")
