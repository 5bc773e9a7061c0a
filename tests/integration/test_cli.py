"""The command line (`python -m functions.cli`): train a version from a Label Studio export,
predict JSON and JSONL task files with the same results and scores as /predict, tasks without
text, bounded memory on a large streamed file, errors (exit 1, one line, no traceback), and the
same commands against S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from functions.api.app import create_app
from functions.cli import main
from functions.settings import Settings
from tests.conftest import ROOT, sample_config, sample_tasks

PROJECT = "7"


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(path: Path, tasks: list[Any]) -> Path:
    path.write_text("".join(json.dumps(task) + "\n" for task in tasks), encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m functions.cli …` in a fresh process (what a user runs)."""
    return subprocess.run(
        [sys.executable, "-m", "functions.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def unlabelled(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": task["id"], "data": task["data"]} for task in tasks]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Any]:
    """A store in which the CLI trained p7-v1 from an export of the sample tasks."""
    root = tmp_path_factory.mktemp("cli")
    store = f"file://{root / 'store'}"
    export = write_json(root / "export.json", sample_tasks())
    config = root / "config.xml"
    config.write_text(sample_config(), encoding="utf-8")
    status = main(["train", "--store", store, "--project", PROJECT, "--export", str(export), "--label-config", str(config), "-q"])
    assert status == 0
    return {"root": root, "store": store, "config": config}


def test_train_publishes_a_version_and_prints_it_with_the_report(tmp_path, capsys):
    store = f"file://{tmp_path / 'store'}"
    export = write_json(tmp_path / "export.json", sample_tasks())
    assert main(["train", "--store", store, "--project", "3", "--export", str(export)]) == 0  # config inferred
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("published p3-v1 for project 3 (job ")
    assert "tasks: 32 read" in out and "topic: 32 examples (" in out and "Politics 8" in out
    assert "label config inferred from the export" in err and '<Choices name="topic" toName="news">' in err

    assert main(["train", "--store", store, "--project", "3", "--export", str(export), "--json", "-q"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["state"] == "succeeded" and job["version"] == "p3-v2" and job["source"] == "train_request"
    assert job["report"]["tasks_seen"] == 32 and job["report"]["source"] == "train_request"

    with TestClient(create_app(Settings(model_store_uri=store))) as client:  # the API serves it and lists the job
        assert client.post("/setup", json={"project": "3", "schema": sample_config()}).json() == {"model_version": "p3-v2"}
        jobs = client.get("/projects/3/jobs").json()["jobs"]
        assert [j["version"] for j in jobs] == ["p3-v2", "p3-v1"]


def test_train_with_label_studio_credentials_starts_no_run_that_would_die_with_the_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # runs after training are on by default then
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token")
    monkeypatch.setenv("PREDICT_QUEUE", "local")
    store = tmp_path / "store"
    export = write_json(tmp_path / "export.json", sample_tasks())
    assert main(["train", "--store", f"file://{store}", "--project", "3", "--export", str(export)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("published p3-v1") and "note: no prediction run started after training" in err
    assert not (store / "projects" / "3" / "runs").exists()


def test_predict_json_and_jsonl_give_the_api_s_results_and_scores(trained, tmp_path, capsys):
    tasks = unlabelled(sample_tasks())
    tasks += [
        {"id": 100, "data": {"text": "   "}},  # no text: no prediction
        {"id": 101, "data": {"title": "no text field"}},
        {"id": 102, "data": "not an object"},
        {"text": "Heavy rain and strong winds are forecast for the coast tonight"},  # a flat task
    ]
    source_json = write_json(tmp_path / "tasks.json", tasks)
    source_jsonl = write_jsonl(tmp_path / "tasks.jsonl", tasks)
    common = ["predict", "--store", trained["store"], "--project", PROJECT, "--label-config", str(trained["config"])]
    assert main([*common, "--tasks", str(source_json), "--out", str(tmp_path / "out.json"), "--chunk-size", "5"]) == 0
    summary = capsys.readouterr().err
    assert "36 tasks: 33 predicted with p7-v1, 3 skipped without text" in summary
    assert main([*common, "--tasks", str(source_jsonl), "--out", str(tmp_path / "out.jsonl")]) == 0
    assert main([*common[:-2], "--tasks", str(source_json), "--out", str(tmp_path / "default_config.json")]) == 0  # config of the version
    capsys.readouterr()

    from_json, from_jsonl = read_out(tmp_path / "out.json"), read_out(tmp_path / "out.jsonl")
    assert from_json == from_jsonl == read_out(tmp_path / "default_config.json")
    assert len(from_json) == len(tasks)
    assert from_json[32:35] == tasks[32:35]  # tasks without text come out as they went in
    assert from_json[35]["data"] == tasks[35] and "text" not in from_json[35]  # flat task: wrapped as {"data": …}

    body = {"tasks": [{"id": t.get("id", 0), "data": t.get("data", t) if isinstance(t.get("data", t), dict) else {}} for t in tasks],
            "project": f"{PROJECT}.1700000000", "label_config": sample_config()}
    with TestClient(create_app(Settings(model_store_uri=trained["store"]))) as client:
        reply = client.post("/predict", json=body)
    assert reply.status_code == 200, reply.text
    api = reply.json()["results"]
    for task, item, written in zip(tasks, api, from_json):
        if item:  # /predict answers [] for a task without text
            (prediction,) = written["predictions"]
            assert prediction == {"result": item["result"], "score": item["score"], "model_version": "p7-v1"}  # exactly equal
            if "id" in task:
                assert written["id"] == task["id"]
        else:
            assert "predictions" not in written
    assert sum(bool(item) for item in api) == 33


def test_predict_keeps_other_versions_predictions_and_replaces_its_own(trained, tmp_path):
    older = {"result": [], "score": 0.1, "model_version": "p7-v0"}
    task = {"id": 1, "data": {"text": "The striker scored twice"}, "annotations": [], "predictions": [older]}
    source = write_json(tmp_path / "tasks.json", [task])
    args = ["predict", "--store", trained["store"], "--project", PROJECT, "-q"]
    assert main([*args, "--tasks", str(source), "--out", str(tmp_path / "once.json")]) == 0
    assert main([*args, "--tasks", str(tmp_path / "once.json"), "--out", str(tmp_path / "twice.json")]) == 0
    (once,), (twice,) = read_out(tmp_path / "once.json"), read_out(tmp_path / "twice.json")
    assert [p["model_version"] for p in twice["predictions"]] == ["p7-v0", "p7-v1"]
    assert once == twice and twice["annotations"] == [] and twice["predictions"][0] == older


# The child's own peak (VmHWM: ru_maxrss would report this big pytest process, kept across fork and exec).
PEAK_RSS = (
    "import re, sys\n"
    "from functions.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "assert 'sklearn' not in sys.modules, 'predict must serve the compact model, without scikit-learn'\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) // 1024)\n"
    "sys.exit(status)\n"
)


def peak_rss_mib(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]), done.stderr


def write_many(path: Path, count: int) -> Path:
    """A JSON array of `count` tasks, written as it goes."""
    texts = [task["data"]["text"] for task in sample_tasks()]
    with path.open("w", encoding="utf-8") as file:
        file.write("[")
        for i in range(count):
            file.write(("," if i else "") + json.dumps({"id": i, "data": {"text": f"{texts[i % len(texts)]} (story {i})"}}))
        file.write("]")
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_large_file_is_streamed_in_bounded_memory(trained, tmp_path):
    small, large = write_many(tmp_path / "small.json", 2_000), write_many(tmp_path / "large.json", 200_000)
    args = ["predict", "--store", trained["store"], "--project", PROJECT]
    small_rss, _ = peak_rss_mib(*args, "--tasks", str(small), "--out", str(tmp_path / "small.jsonl"))
    started = time.monotonic()
    large_rss, summary = peak_rss_mib(*args, "--tasks", str(large), "--out", str(tmp_path / "large.jsonl"))
    seconds = time.monotonic() - started
    print(f"200,000 tasks ({large.stat().st_size / 2**20:.0f} MiB) in {seconds:.1f} s: {200_000 / seconds:,.0f} tasks/s with "
          f"start-up; peak RSS {large_rss} MiB (2,000 tasks: {small_rss} MiB). CLI: {summary.strip()}")
    assert "200,000 tasks: 200,000 predicted with p7-v1, 0 skipped" in summary
    # The file is 100x larger; reading it whole would take hundreds of MiB. Streamed, memory stays put.
    assert large_rss - small_rss < 25, (small_rss, large_rss)
    with (tmp_path / "large.jsonl").open("rb") as out:
        lines = sum(1 for _ in out)
    assert lines == 200_000


def test_bad_files_exit_1_with_a_one_line_message_and_no_traceback(trained, tmp_path):
    (tmp_path / "bad.json").write_text('[{"data": {"text": "fine"}}, {"data": ', encoding="utf-8")
    done = run_cli("predict", "--store", trained["store"], "--project", PROJECT, "--tasks", str(tmp_path / "bad.json"),
                   "--out", str(tmp_path / "out.json"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'bad.json'} is not valid JSON after task 1")
    assert not list(tmp_path.glob("*out.json*"))  # no half-written output

    (tmp_path / "export.csv").write_text("id,text,topic\n1,hello,Sport\n", encoding="utf-8")
    done = run_cli("train", "--store", trained["store"], "--project", PROJECT, "--export", str(tmp_path / "export.csv"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is not JSON" in done.stderr and "Export -> JSON" in done.stderr


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("predict", "", "is empty"),
        ("predict", "hello", "is not a Label Studio tasks file"),
        ("predict", "[1, 2]", "task 1: not a task object but int"),
        ("predict", '{"data": {"text": "a"}}\n{"data": \n', "line 2: not a JSON task"),
        ("train", '{"annotations": []}', "must be a JSON array of tasks, found a JSON object"),
        ("train", json.dumps(unlabelled(sample_tasks())), "holds no choices annotation to infer the label config from"),
    ],
)
def test_unusable_files_are_named_with_what_is_wrong(trained, tmp_path, capsys, command, content, message):
    path = tmp_path / "file.json"
    path.write_text(content, encoding="utf-8")
    flag = ["--tasks", str(path), "--out", str(tmp_path / "out.json")] if command == "predict" else ["--export", str(path)]
    assert main([command, "--store", trained["store"], "--project", PROJECT, *flag]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_other_errors_say_what_to_do(trained, tmp_path, capsys):
    tasks = write_json(tmp_path / "tasks.json", unlabelled(sample_tasks()))
    args = ["--store", trained["store"], "--tasks", str(tasks), "--out", str(tmp_path / "out.json")]
    assert main(["predict", "--project", "8", *args]) == 1
    assert "project 8 has no published model version" in capsys.readouterr().err
    assert main(["predict", "--project", PROJECT, "--version", "p7-v9", *args]) == 1
    assert "published versions: p7-v1" in capsys.readouterr().err
    assert main(["predict", "--project", PROJECT, "--version", "p8-v1", *args]) == 1
    assert "is not a version of project 7" in capsys.readouterr().err
    assert main(["predict", "--project", "seven", *args]) == 1
    assert "--project: project must be a number" in capsys.readouterr().err
    assert main(["predict", "--project", PROJECT, "--store", "ftp://x", *args[2:]]) == 1
    assert "unknown scheme" in capsys.readouterr().err

    only_sport = [t for t in sample_tasks() if t["annotations"][0]["result"][0]["value"]["choices"] == ["Sport"]]
    export = write_json(tmp_path / "export.json", only_sport)
    status = main(["train", "--store", trained["store"], "--project", PROJECT, "--export", str(export),
                   "--label-config", str(trained["config"]), "-q"])
    assert status == 1
    assert "error: training failed: topic: training needs annotated tasks of at least 2 different labels" in capsys.readouterr().err


def test_train_and_predict_against_s3(tmp_path, monkeypatch, capsys):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "MODEL_STORE_URI": "s3://cli-models/team", "MODEL_SIGNING_KEY": "cli-test-key"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    export = write_json(tmp_path / "export.json", sample_tasks())
    tasks = write_jsonl(tmp_path / "tasks.jsonl", unlabelled(sample_tasks()))
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="cli-models")
        assert main(["train", "--project", PROJECT, "--export", str(export), "-q"]) == 0
        assert capsys.readouterr().out.startswith("published p7-v1 for project 7")
        assert main(["predict", "--project", PROJECT, "--tasks", str(tasks), "--out", str(tmp_path / "out.json")]) == 0
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="cli-models", Prefix="team/projects/7/models/p7-v1/")["Contents"]]
    assert "team/projects/7/models/p7-v1/model.npz" in keys
    written = read_out(tmp_path / "out.json")
    assert len(written) == 32 and all(t["predictions"][0]["model_version"] == "p7-v1" for t in written)
    assert "32 tasks: 32 predicted with p7-v1, 0 skipped without text" in capsys.readouterr().err
