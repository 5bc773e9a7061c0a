"""Faults of the S3 store, injected between the real `make dev` process and a moto S3 server by
`s3_proxy.FaultProxy`: read-only, full and throttled writes, S3 down (connections refused) and
S3 hung (connections accepted, never answered).

One server and one trained project (1) are shared by the tests, in file order; each test ends
with the proxy passing everything through again and checks that the backend recovers by
itself (no restart).
"""

from __future__ import annotations

import time

import boto3
import pytest

from tests.faults.conftest import CONFIG, SIGNING_KEY, Backend, iso, ls_project, running
from tests.faults.s3_proxy import FaultProxy

PROJECT, BUCKET = 1, "faults-models"
LABEL_STUDIO_SETUP_TIMEOUT = 3.0  # s: Label Studio 1.23 gives /setup 3 s


@pytest.fixture(scope="module")
def proxy(moto_s3):
    host, port = moto_s3
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1", aws_access_key_id="faults",
                 aws_secret_access_key="faults").create_bucket(Bucket=BUCKET)
    fault_proxy = FaultProxy(host, port)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture(scope="module")
def backend(tmp_path_factory, proxy, tasks):
    folder = tmp_path_factory.mktemp("faults-s3")
    server = Backend(folder, f"s3://{BUCKET}", AWS_ENDPOINT_URL=proxy.url, AWS_ACCESS_KEY_ID="faults",
                     AWS_SECRET_ACCESS_KEY="faults", AWS_DEFAULT_REGION="us-east-1", MODEL_SIGNING_KEY=SIGNING_KEY,
                     S3_CONNECT_TIMEOUT="0.5", S3_READ_TIMEOUT="1.0", AWS_EC2_METADATA_DISABLED="true")
    with running(server):
        for task in tasks:
            status, reply = server.annotate(PROJECT, task, updated_at=iso(-7200))
            assert status == 201, reply
        assert server.setup_version(PROJECT) == "untrained"
        job = server.train(PROJECT)
        server.wait_served(PROJECT, job["version"])
        yield server


@pytest.fixture(autouse=True)
def pass_through_after(proxy):
    yield
    proxy.set("pass")


def new_task(tasks, task_id: int) -> dict:
    task = dict(tasks[task_id % len(tasks)], id=task_id)
    task["annotations"] = [dict(task["annotations"][0], id=task_id, task=task_id)]
    return task


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def assert_refused_with_503(reply: tuple[int, dict]) -> None:
    status, body = reply
    assert status == 503, reply
    assert isinstance(body, dict) and body.get("detail") and "Traceback" not in body["detail"], reply


def tasks_trained(backend: Backend) -> int:
    job = backend.train(PROJECT)
    backend.wait_served(PROJECT, job["version"])
    return job["report"]["tasks_seen"]


def test_store_read_only(backend, proxy, tasks):
    """Fault 9: every write is refused (403 AccessDenied): writes answer 503 with a detail,
    predictions and /setup are still served; once writable, all works again."""
    before = backend.served(PROJECT)
    trained_before = tasks_trained(backend)
    before = backend.served(PROJECT)
    with proxy.fault("read-only"):
        time.sleep(0.3)
        assert backend.served(PROJECT) == before
        assert backend.setup_version(PROJECT) == before[0]
        assert_refused_with_503(backend.annotate(PROJECT, new_task(tasks, 501), updated_at=iso(-5)))
        assert_refused_with_503(backend.start_training(PROJECT))
        assert_refused_with_503(backend.call("POST", "/train", {"annotations": tasks, "project": ls_project(PROJECT),
                                                                 "label_config": CONFIG}))
        assert proxy.refused, "the proxy refused no write"
        assert backend.served(PROJECT) == before
    assert backend.annotate(PROJECT, new_task(tasks, 501), updated_at=iso(-4))[0] == 201  # Label Studio's user saves again
    assert tasks_trained(backend) == trained_before + 1


def test_store_full_while_publishing(backend, proxy, tasks):
    """Fault 10a: the store is full (507 XMinioStorageFull) for a new version's model.pkl: the
    job fails with a reason, the half-published version is listed nowhere and never served,
    the previous version serves; then the next training publishes and serves."""
    before = backend.served(PROJECT)
    versions_before = backend.ok("GET", f"/versions?project={PROJECT}")["versions"]
    with proxy.fault("full", writes_matching=r"/models/[^/]+/model\.pkl"):
        status, reply = backend.start_training(PROJECT)
        assert status == 201, reply
        job = backend.wait_job(PROJECT, reply["job"])
        assert job["state"] == "failed" and job["reason"], job
        assert proxy.refused, "the proxy refused no write"
        assert backend.ok("GET", f"/versions?project={PROJECT}")["versions"] == versions_before
        assert backend.setup_version(PROJECT) == before[0]
        assert backend.served(PROJECT) == before
    version = backend.train(PROJECT)["version"]
    assert version not in versions_before
    assert backend.wait_served(PROJECT, version)[0] == version
    assert backend.ok("GET", f"/versions?project={PROJECT}")["versions"] == versions_before + [version]


@pytest.mark.parametrize("mode", ["full", "throttled"])
def test_store_full_or_throttled_on_every_write(backend, proxy, tasks, mode):
    """Fault 10b: every PUT answers 507 XMinioStorageFull or 503 SlowDown: webhooks and Start
    Training answer 503 with a detail (Label Studio retries nothing it got a 2xx for, so
    nothing acknowledged is lost); predictions go on; afterwards writes work again."""
    before = backend.served(PROJECT)
    with proxy.fault(mode):
        (reply, seconds) = timed(backend.annotate, PROJECT, new_task(tasks, 600), updated_at=iso(-5))
        assert_refused_with_503(reply)
        assert seconds < 10, seconds
        assert_refused_with_503(backend.start_training(PROJECT))
        assert backend.served(PROJECT) == before
        assert backend.setup_version(PROJECT) == before[0]
    assert backend.annotate(PROJECT, new_task(tasks, 600), updated_at=iso(-4))[0] == 201
    assert backend.served(PROJECT) == before


def test_s3_down(backend, proxy, tasks):
    """Fault 11: S3 refuses connections: the model in memory keeps serving, /setup reports
    its version within Label Studio's 3 s; writes answer 503; all recovers when S3 is back."""
    before = backend.served(PROJECT)
    with proxy.fault("down"):
        time.sleep(0.3)  # past POINTER_TTL_SECONDS: the pointer must be read again
        for _ in range(3):
            served, seconds = timed(backend.served, PROJECT)
            assert served == before
            assert seconds < LABEL_STUDIO_SETUP_TIMEOUT, seconds
            version, seconds = timed(backend.setup_version, PROJECT)
            assert version == before[0]
            assert seconds < LABEL_STUDIO_SETUP_TIMEOUT, seconds
            time.sleep(0.3)
        assert_refused_with_503(backend.annotate(PROJECT, new_task(tasks, 700), updated_at=iso(-5)))
        assert_refused_with_503(backend.start_training(PROJECT))
        assert_refused_with_503(backend.call("GET", "/versions"))
    assert backend.served(PROJECT) == before
    assert backend.annotate(PROJECT, new_task(tasks, 700), updated_at=iso(-4))[0] == 201
    trained = backend.train(PROJECT)
    assert backend.wait_served(PROJECT, trained["version"])[0] == trained["version"]


def test_s3_hung(backend, proxy, tasks):
    """Fault 12: S3 accepts connections and never answers: /setup and /predict still answer
    within Label Studio's 3 s from memory, writes give up with 503 within seconds; all
    recovers when S3 answers again."""
    before = backend.served(PROJECT)
    with proxy.fault("hung"):
        time.sleep(0.3)
        for _ in range(3):
            version, seconds = timed(backend.setup_version, PROJECT, timeout=20)
            assert version == before[0]
            assert seconds < LABEL_STUDIO_SETUP_TIMEOUT, seconds
            served, seconds = timed(backend.served, PROJECT, timeout=20)
            assert served == before
            assert seconds < LABEL_STUDIO_SETUP_TIMEOUT, seconds
            time.sleep(0.3)
        reply, seconds = timed(backend.annotate, PROJECT, new_task(tasks, 800), updated_at=iso(-5))
        assert_refused_with_503(reply)
        assert seconds < 10, seconds
    assert backend.served(PROJECT) == before
    assert backend.annotate(PROJECT, new_task(tasks, 800), updated_at=iso(-4))[0] == 201
    trained = backend.train(PROJECT)
    assert backend.wait_served(PROJECT, trained["version"])[0] == trained["version"]


def test_s3_hung_setup_of_a_project_never_seen(backend, proxy):
    """Fault 12b: with S3 hung, Label Studio connects a new project: /setup must answer (503
    with a detail, or 200) within its 3 s, not time out; once S3 answers, /setup works."""
    with proxy.fault("hung"):
        reply, seconds = timed(backend.call, "POST", "/setup", {"project": ls_project(77), "schema": CONFIG}, timeout=20)
        assert reply[0] in (200, 503), reply
        assert seconds < LABEL_STUDIO_SETUP_TIMEOUT, f"/setup of a new project took {seconds:.1f} s with S3 hung: {reply}"
    assert backend.setup_version(77) == "untrained"
