"""End to end on the shared data sets, through the HTTP API only, as Label Studio drives it:
train (legacy /train, or annotation webhooks + START_TRAINING), poll /setup until the version
changes, predict the held-out split. Bars: the reference pipeline reaches 0.872 (AG News) and
0.965 (BBC News) on these splits."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import annotation_created, dataset, label_config_of, predict_accuracy, wait_for_version

pytestmark = pytest.mark.slow


def check_predictions(client, project, config, test_tasks, bar):
    version = client.post("/setup", json={"project": project, "schema": config}).json()["model_version"]
    accuracy, reply = predict_accuracy(client, project, config, test_tasks)
    assert accuracy >= bar, f"accuracy {accuracy:.3f} < {bar}"
    assert {item["model_version"] for item in reply["results"]} == {version}
    assert all(isinstance(item["score"], float) for item in reply["results"])
    return accuracy


@pytest.mark.parametrize("name, bar", [("ag_news", 0.86), ("bbc_news", 0.95)])
def test_legacy_train_request_then_predict(client, name, bar):
    config, project = label_config_of(name), "21.1795968764"
    reply = client.post("/train", json={"annotations": dataset(name, "labeled_train"), "project": project, "label_config": config, "params": {}})
    assert reply.status_code == 201
    assert wait_for_version(client, project, config, "untrained") == "p21-v1"
    check_predictions(client, project, config, dataset(name, "labeled_test"), bar)


def test_annotation_webhooks_then_start_training(client):
    config, project = label_config_of("ag_news"), "22.1795968764"
    for task in dataset("ag_news", "labeled_train"):
        reply = client.post("/webhook", json=annotation_created(task, 22, config))
        assert reply.status_code == 201
    reply = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 22, "label_config": config}})
    assert reply.status_code == 201
    assert wait_for_version(client, project, config, "untrained") == "p22-v1"
    check_predictions(client, project, config, dataset("ag_news", "labeled_test"), 0.86)
    job = client.get(f"/projects/22/jobs/{reply.json()['job']}").json()
    assert job["report"]["source"] == "annotation_log" and job["report"]["controls"]["topic"]["examples"] == 5280


def test_predict_keeps_answering_during_training_and_switches_to_the_new_version(client):
    config, project = label_config_of("ag_news"), "23.1795968764"
    train, probe = dataset("ag_news", "labeled_train"), dataset("ag_news", "labeled_test")[:50]
    body = {"tasks": [{"id": t["id"], "data": t["data"]} for t in probe], "project": project, "label_config": config}
    client.post("/train", json={"annotations": train[:400], "project": project, "label_config": config})
    assert wait_for_version(client, project, config, "untrained") == "p23-v1"

    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            reply = client.post("/predict", json=body)
            if reply.status_code != 200 or len(reply.json()["results"]) != len(probe):
                failures.append(f"{reply.status_code}: {reply.text[:200]}")
                continue
            versions = {item["model_version"] for item in reply.json()["results"]}
            assert len(versions) == 1
            seen.append(versions.pop())

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        client.post("/train", json={"annotations": train, "project": project, "label_config": config})
        wait_for_version(client, project, config, "p23-v1")
        while "p23-v2" not in seen[-3:] and worker.is_alive():
            stop.wait(0.1)
    finally:
        stop.set()
        worker.join(30)
    assert failures == []
    assert seen.count("p23-v1") >= 5, "the training finished before /predict was exercised"
    switch = seen.index("p23-v2")
    assert set(seen[:switch]) == {"p23-v1"} and set(seen[switch:]) == {"p23-v2"}
