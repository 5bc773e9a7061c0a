"""``GET /health``: liveness for Label Studio (1 s timeout). No store access, no scikit-learn.

``GET /health?deep=1`` (or ``deep=true``) also checks what the backend depends on, each check
bounded by its client's timeouts and all of them together by `DEEP_CHECK_SECONDS`:

- ``store``: one read of a key that never exists (the S3 client's S3_CONNECT_TIMEOUT /
  S3_READ_TIMEOUT apply; a missing key is the healthy answer);
- ``train_queue`` and ``predict_queue``: for SQS, ``GetQueueAttributes`` (the message counts);
  for a local queue, that its worker thread(s) run; ``none`` is healthy (jobs and runs wait in
  the store by design).

It answers 200 ``{"status": "UP", "checks": {…}}`` or 503 ``{"status": "DOWN", "checks": {…}}``,
each check ``{"ok": bool, "kind": …, …details, "error": … when not ok}``. Unlike plain
/health it needs the API's credentials (`functions.api.auth`): it costs AWS calls and its
errors name buckets and queues.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from functions.api.services import Services, ServicesDep
from functions.errors import BackendError, InvalidRequest
from functions.ids import preview

router = APIRouter(tags=["label-studio"])

DEEP_VALUES = {"1": True, "true": True, "0": False, "false": False, "": False}
DEEP_CHECK_SECONDS = 10.0  # all checks together; a check still running then is DOWN ("no answer")
STORE_PROBE_KEY = "projects/.health-probe"  # never written: reading it costs one GET that finds nothing


@router.get("/health", response_model=None)
async def health(services: ServicesDep, deep: str | None = None) -> dict[str, str] | JSONResponse:
    """Liveness: no store access, no scikit-learn. ``?deep=1`` (or ``true``): also check the
    store and the queues (needs credentials): 200 ``{"status": "UP", "checks"}`` or 503
    ``{"status": "DOWN", "checks"}``."""
    if deep is None or not _deep(deep):
        return {"status": "UP", "model_class": "TfidfLogisticRegression"}
    checks = await run_in_threadpool(deep_checks, services)
    up = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "UP" if up else "DOWN", "checks": checks}, status_code=200 if up else 503)


def _deep(value: str) -> bool:
    try:
        return DEEP_VALUES[value.strip().lower()]
    except KeyError:
        raise InvalidRequest(f"deep must be 1 or true (or 0 or false), got {preview(value)}") from None


def deep_checks(services: Services) -> dict[str, dict[str, Any]]:
    """Every check, run at once; one that has not answered within DEEP_CHECK_SECONDS is not ok."""
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "store": lambda: check_store(services),
        "train_queue": lambda: check_train_queue(services),
        "predict_queue": lambda: check_predict_queue(services),
    }
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="deep-health")
    try:
        futures = {name: pool.submit(_timed, check) for name, check in checks.items()}
        deadline = time.monotonic() + DEEP_CHECK_SECONDS
        results = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = {"ok": False, "error": f"no answer within {DEEP_CHECK_SECONDS:g} s",
                                 "seconds": DEEP_CHECK_SECONDS}
        return results
    finally:
        pool.shutdown(wait=False)  # a hung check finishes (or times out in its client) on its own


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`check`'s result with ``seconds``; a failure is ``{"ok": false, "error"}`` (a BackendError's
    message as it is, anything else by its type: botocore's messages can be long)."""
    started = time.monotonic()
    try:
        result = check()
    except BackendError as error:
        result = {"ok": False, "error": str(error)}
    except Exception as error:  # noqa: BLE001 - a health check reports, never raises
        result = {"ok": False, "error": f"{type(error).__name__}: {str(error)[:300]}"}
    return result | {"seconds": round(time.monotonic() - started, 3)}


def check_store(services: Services) -> dict[str, Any]:
    """One read through the API's own store client (its timeouts), of a key that never exists."""
    store = services.store
    store.get(STORE_PROBE_KEY)
    return {"ok": True, "kind": _store_kind(store)}


def _store_kind(store: Any) -> str:
    from functions.store import S3Store

    return "s3" if isinstance(store, S3Store) else "file"


def check_train_queue(services: Services) -> dict[str, Any]:
    """SQS: its attributes; local: its worker thread runs (read from the queue object: the
    queue has no public liveness of its own); none: healthy."""
    name = services.settings.train_queue
    if name == "none":
        return {"ok": True, "kind": "none",
                "detail": "TRAIN_QUEUE=none: jobs wait in the store for a train function invoked by hand"}
    if name == "local":
        from functions.train_queue.local import worker_alive

        queue = services.queue
        thread = getattr(queue, "_worker", None)
        alive = thread.is_alive() if thread is not None else bool(worker_alive(queue.worker_id or ""))
        result: dict[str, Any] = {"ok": alive, "kind": "local", "worker": queue.worker_id}
        if not alive:
            result["error"] = "the local training worker thread has stopped: restart the backend"
        return result
    return _sqs_check(services, "train_queue_probe", name, "training queue")


def check_predict_queue(services: Services) -> dict[str, Any]:
    """As `check_train_queue`, for the app's predict queue (local: every worker thread runs)."""
    name = services.settings.predict_queue
    if name == "none":
        return {"ok": True, "kind": "none", "detail": "PREDICT_QUEUE=none: prediction runs wait in the store"}
    if name == "local":
        from functions.api.routes.runs import predict_queue

        queue = predict_queue(services)
        threads = getattr(queue, "_threads", [])
        alive = sum(1 for thread in threads if thread.is_alive())
        result = {"ok": bool(threads) and alive == len(threads), "kind": "local", "worker": queue.worker_id,
                  "threads_alive": alive, "threads": len(threads)}
        if not result["ok"]:
            result["error"] = (f"{len(threads) - alive} of {len(threads)} local prediction-run worker threads have stopped: "
                               "restart the backend")
        return result
    return _sqs_check(services, "predict_queue_probe", name, "predict queue")


def _sqs_check(services: Services, slot: str, queue: str, what: str) -> dict[str, Any]:
    """GetQueueAttributes of `queue` (its URL resolved from a name once, as the queue does)."""
    from functions.errors import QueueUnavailable
    from functions.sqs_endpoint import SqsEndpoint

    endpoint = services._once(slot, lambda: SqsEndpoint(queue, what))
    try:
        attributes = endpoint.client().get_queue_attributes(
            QueueUrl=endpoint.url(),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    except QueueUnavailable:
        raise
    except Exception as error:  # noqa: BLE001 - botocore raises many types
        code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code") or type(error).__name__
        raise QueueUnavailable(f"{what} {queue}: cannot read its attributes ({code})") from error
    return {"ok": True, "kind": "sqs", "queue": endpoint.url(),
            "messages": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))}
