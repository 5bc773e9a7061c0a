"""Dead-lettered messages of the training and predict queues: find them, show them with their job or
run, and send them back to their work queue.

SQS moves a message to the dead-letter queue (DLQ) that its work queue's RedrivePolicy names after
maxReceiveCount (3) deliveries (infra/queue.yml: the FIFO training queue has a FIFO DLQ, the standard
predict queue a standard one). A training job gets there when its last attempt failed for a reason
other than its data (`functions.train.records`), or the train function timed out or ran out of memory
each time; a prediction-run plan or chunk when the function timed out, or its last attempt could not
even record the failure (`functions.runs.worker.handle`).

Looking consumes nothing (a peek): messages are received with a visibility timeout of HOLD_SECONDS
and made visible again at once (ChangeMessageVisibility 0); a command killed meanwhile leaves them
hidden HOLD_SECONDS at most. SQS hands out a FIFO queue's messages of one message group (one
project) only while none of that group is held, so one look shows at most 10 dead letters of a
project (one receive's batch); each look counts as one more receive of the messages it shows.

A redrive receives, sends a copy to the work queue and deletes the dead letter only once the send
succeeded (SQS's own StartMessageMoveTask moves a whole queue, cannot pick one message or update the
job record first, and moto does not implement it). In a FIFO queue the copy keeps its message group
(the project) and is deduplicated by ``redrive-<dead letter's message id>``: a second redrive of the
same dead letter within SQS's 5-minute window (the delete failed, the command ran twice) is dropped
by SQS, and after it the job record makes the duplicate do nothing. (The original deduplication id,
the job id, would be dropped within 5 minutes of the first send; a FIFO DLQ replaces it with the
message id anyway, per the SQS Developer Guide, "Configuring a dead-letter queue redrive".)

A training message goes back with its job queued again: the train function does nothing for a
finished job (a redelivery must never train twice), and the last failed attempt recorded the job
failed. So the redrive first sets the record queued (conditionally on its etag); the train function
then runs it with a fresh TRAIN_MAX_ATTEMPTS deliveries. A job that succeeded or was superseded is
left as it is (its copy does nothing); one running right now (a heartbeat younger than
JOB_LEASE_SECONDS), or whose record or staged /train body is gone (expired after 7 days, or the
project deleted), is not sent back.

A prediction-run message goes back as it is: a plan of a run not planned yet, or a chunk not recorded
yet, runs (`functions.runs.planning.plan`, `functions.runs.chunks.run_chunk`); one of a finished run or
a recorded chunk does nothing. One whose run record is gone is not sent back.
"""

from __future__ import annotations

import json
import logging
import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from functions import keys
from functions.errors import BackendError, CorruptObject, NotFound, PreconditionFailed, QueueUnavailable
from functions.jobs import TRAIN_REQUEST, JobMessage, JobState, Liveness, abandonment, load_job, now, save_job, slot_job_id
from functions.settings import Settings
from functions.sqs_endpoint import SqsEndpoint
from functions.store import ObjectStore

log = logging.getLogger(__name__)

HOLD_SECONDS = 60   # how long a look or a redrive keeps the messages it received hidden, at most
WAIT_SECONDS = 1    # long polling: a receive asks every SQS server, so an empty answer means empty
BATCH = 10          # SQS's most messages per receive / change-visibility batch
QUEUES = {"train": "training queue", "predict": "predict queue"}
REDRIVEN = "redriven from the dead-letter queue"  # how a redriven job's reason starts until it runs


class NoDeadLetterQueue(BackendError):
    """The queue is not an SQS queue with a RedrivePolicy: nothing is ever dead-lettered there."""


@dataclass
class DeadLetter:
    """One dead-lettered message, as a look found it.

    Attributes:
        queue: ``train`` or ``predict``.
        message_id: its message id in the dead-letter queue.
        body: the message body: ``{"project", "job_id"}`` (`functions.jobs.JobMessage`) or
            ``{"project", "run", "page"}`` (`functions.runs.RunMessage`; page None: the run's plan).
        project, job_id, run_id, page: what the body names (None when it names nothing readable).
        received: how many times SQS handed it out before this look (ApproximateReceiveCount - 1):
            the work queue's deliveries, plus every earlier look at the dead-letter queue.
        sent_at: SQS's SentTimestamp, ISO 8601 UTC.
        group_id: its MessageGroupId (FIFO: the project).
        state, reason: its job's or run's record (state None: not read; `keep` then says why).
        note: what a redrive would do with it, when not simply run it again.
        keep: why a redrive leaves it in the dead-letter queue (None: a redrive sends it back).
    """

    queue: str
    message_id: str
    body: str
    received: int
    sent_at: str | None
    group_id: str | None = None
    project: str | None = None
    job_id: str | None = None
    run_id: str | None = None
    page: int | None = None
    state: str | None = None
    reason: str | None = None
    note: str | None = None
    keep: str | None = None
    receipt_handle: str = field(default="", repr=False)

    def what(self) -> str:
        """``project 8, job 01k…`` / ``project 12, run 01k…, chunk 3`` / ``project 12, run 01k…, plan``."""
        if self.job_id:
            return f"project {self.project}, job {self.job_id}"
        if self.run_id:
            return f"project {self.project}, run {self.run_id}, " + (f"chunk {self.page}" if self.page else "plan")
        return "a message that names no job or run"

    def public(self) -> dict[str, Any]:
        """The dead letter as the command's JSON shows it."""
        shown = {"queue": self.queue, "message_id": self.message_id, "project": self.project, "received": self.received,
                 "sent_at": self.sent_at, "state": self.state, "reason": self.reason, "note": self.note, "keep": self.keep}
        if self.queue == "train":
            return shown | {"job_id": self.job_id}
        return shown | {"run_id": self.run_id, "page": self.page}


@dataclass
class Outcome:
    """What a redrive or delete did with one dead letter.

    Attributes:
        letter: the dead letter.
        action: ``redriven`` (a copy is on the work queue), ``skipped`` (left in the dead-letter
            queue: `detail` says why), ``failed`` (not sent: `detail` has the error), ``deleted``.
        detail: what happened, for people.
        sent_id: the copy's message id on the work queue.
        deleted: the dead letter left the dead-letter queue.
    """

    letter: DeadLetter
    action: str
    detail: str
    sent_id: str | None = None
    deleted: bool = False

    def public(self) -> dict[str, Any]:
        """What the command's JSON shows: the dead letter, with `action`, `detail` and `sent_message_id`."""
        return {"action": self.action, "detail": self.detail, "sent_message_id": self.sent_id} | self.letter.public()


class DeadLetterQueue:
    """The dead-letter queue of one work queue.

    `kind` is ``train`` or ``predict``; `source` the work queue's URL or name (TRAIN_QUEUE /
    PREDICT_QUEUE). The dead-letter queue is found from the source's RedrivePolicy on first use.
    """

    def __init__(self, kind: str, source: str, client: Any = None) -> None:
        if source in ("local", "none"):
            raise NoDeadLetterQueue(_no_sqs(kind, source))
        self.kind = kind
        self.source = SqsEndpoint(source, QUEUES[kind], client)
        self._url: str | None = None

    # --- the queues ---------------------------------------------------------------------------

    def url(self) -> str:
        """The dead-letter queue's URL. Raises NoDeadLetterQueue, QueueUnavailable."""
        if self._url is None:
            attributes = self._call("get_queue_attributes", "read the RedrivePolicy of", QueueUrl=self.source.url(),
                                    AttributeNames=["RedrivePolicy"]).get("Attributes") or {}
            policy = json.loads(attributes.get("RedrivePolicy") or "{}")
            arn = str(policy.get("deadLetterTargetArn") or "")
            if not arn:
                raise NoDeadLetterQueue(
                    f"the {QUEUES[self.kind]} {self.name(self.source.url())} has no dead-letter queue (no RedrivePolicy): "
                    "SQS retries a failing message there until its retention period ends, and nothing is dead-lettered")
            _, _, _, _, account, name = arn.split(":", 5)
            self._url = self._call("get_queue_url", "find the dead-letter queue", QueueName=name,
                                   QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._url

    @staticmethod
    def name(url: str) -> str:
        """A queue's name: the last segment of its URL."""
        return url.rstrip("/").rsplit("/", 1)[-1]

    def fifo(self) -> bool:
        """Whether the dead-letter queue (and so its work queue) is a FIFO queue."""
        return self.url().endswith(".fifo")

    def approximate_count(self) -> int:
        """ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible of the dead-letter queue."""
        attributes = self._call("get_queue_attributes", "count the messages of", QueueUrl=self.url(),
                                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        values = attributes.get("Attributes") or {}
        return int(values.get("ApproximateNumberOfMessages", 0)) + int(values.get("ApproximateNumberOfMessagesNotVisible", 0))

    # --- look, redrive, delete ------------------------------------------------------------------

    def peek(self, store: ObjectStore, settings: Settings, limit: int = 100, only: str | None = None) -> list[DeadLetter]:
        """Up to `limit` dead letters (only the one with message id `only`, if given), each with its
        job's or run's record; every message stays in the dead-letter queue, visible again."""
        held = self._receive(limit)
        try:
            return [self._describe(self._letter(raw), store, settings) for raw in held if only in (None, raw["MessageId"])]
        finally:
            self._release(held)

    def redrive(self, store: ObjectStore, settings: Settings, limit: int = 100, only: str | None = None) -> list[Outcome]:
        """Send the dead letters (only the one with message id `only`, if given) back to the work queue,
        each deleted from the dead-letter queue once its copy is sent; returns what happened to each.
        Goes round until a look brings nothing new (a FIFO queue hands out 10 of a project at a time)."""
        outcomes: dict[str, Outcome] = {}
        while True:
            held = self._receive(limit)
            gone: set[str] = set()
            fresh = [raw for raw in held if raw["MessageId"] not in outcomes and only in (None, raw["MessageId"])]
            try:
                for raw in fresh:
                    outcome = self._redrive_one(self._describe(self._letter(raw), store, settings), store, settings)
                    outcomes[raw["MessageId"]] = outcome
                    if outcome.deleted:
                        gone.add(raw["MessageId"])
            finally:
                self._release([raw for raw in held if raw["MessageId"] not in gone])
            if only is not None or not fresh:
                return list(outcomes.values())

    def delete(self, store: ObjectStore, settings: Settings, message_id: str, limit: int = 100) -> Outcome | None:
        """Delete the dead letter `message_id` for good (one nothing can run: its record is gone);
        None if the dead-letter queue does not hold it."""
        held = self._receive(limit)
        gone: set[str] = set()
        try:
            for raw in held:
                if raw["MessageId"] == message_id:
                    letter = self._describe(self._letter(raw), store, settings)
                    self._call("delete_message", "delete from", QueueUrl=self.url(), ReceiptHandle=raw["ReceiptHandle"])
                    gone.add(message_id)
                    return Outcome(letter, "deleted", f"deleted from {self.name(self.url())}", deleted=True)
            return None
        finally:
            self._release([raw for raw in held if raw["MessageId"] not in gone])

    # --- one message ----------------------------------------------------------------------------

    def _letter(self, raw: dict[str, Any]) -> DeadLetter:
        attributes = raw.get("Attributes") or {}
        sent = attributes.get("SentTimestamp")
        letter = DeadLetter(
            queue=self.kind, message_id=raw["MessageId"], body=raw.get("Body") or "",
            received=max(0, int(attributes.get("ApproximateReceiveCount", "1")) - 1),
            sent_at=datetime.fromtimestamp(int(sent) / 1000, timezone.utc).isoformat(timespec="seconds") if sent else None,
            group_id=attributes.get("MessageGroupId"), receipt_handle=raw["ReceiptHandle"],
        )
        try:
            if self.kind == "train":
                job = JobMessage.parse(letter.body)
                letter.project, letter.job_id = job.project, job.job_id
            else:
                from functions.runs.planning import RunMessage

                run = RunMessage.parse(letter.body)
                letter.project, letter.run_id, letter.page = run.project, run.run, run.page
        except (ValueError, BackendError):
            letter.keep = "the body is not a message of this queue: nothing can run it; delete it with --delete --id"
        return letter

    def _describe(self, letter: DeadLetter, store: ObjectStore, settings: Settings) -> DeadLetter:
        """Fill in the state and reason of the letter's job or run record, and what a redrive would do."""
        try:
            if letter.job_id:
                _describe_job(letter, store, settings)
            elif letter.run_id:
                _describe_run(letter, store)
        except NotFound:
            what = "job" if letter.job_id else "run"
            letter.keep = (f"the {what} record is gone (records expire 7 days after their last write, or the project's "
                           "data was deleted): nothing to run; delete the message with --delete --id")
        except CorruptObject as error:
            letter.keep = f"{error}: nothing to run; delete the message with --delete --id"
        except BackendError as error:  # the store is unreachable: show the message anyway
            letter.keep = f"its record could not be read ({type(error).__name__}: {error}): look again later"
        return letter

    def _redrive_one(self, letter: DeadLetter, store: ObjectStore, settings: Settings) -> Outcome:
        if letter.keep:
            return Outcome(letter, "skipped", letter.keep)
        if self.kind == "train":
            refused = _requeue_job(letter, store, settings)
            if refused:
                return Outcome(letter, "skipped", refused)
        message: dict[str, Any] = {"QueueUrl": self.source.url(), "MessageBody": letter.body}
        if self.fifo():
            message |= {"MessageGroupId": letter.group_id or letter.project or "redrive",
                        "MessageDeduplicationId": f"redrive-{letter.message_id}"[:128]}
        target = self.name(self.source.url())
        try:
            sent = self._call("send_message", "send to", **message)["MessageId"]
        except QueueUnavailable as error:
            stuck = " (its job is queued now, without a message: redrive again)" if self.kind == "train" else ""
            return Outcome(letter, "failed", f"not sent to {target}: {error}; the message stays in the dead-letter queue{stuck}")
        detail = f"sent to {target} as message {sent}" + (f"; {letter.note}" if letter.note else "")
        try:
            self._call("delete_message", "delete from", QueueUrl=self.url(), ReceiptHandle=letter.receipt_handle)
        except QueueUnavailable as error:
            detail += (f"; but it is still in the dead-letter queue ({error}): a redrive of it within 5 minutes is dropped "
                       "as a duplicate, and a later copy finds its job or chunk done and does nothing")
            return Outcome(letter, "redriven", detail, sent)
        return Outcome(letter, "redriven", detail, sent, deleted=True)

    # --- SQS ------------------------------------------------------------------------------------

    def _receive(self, limit: int) -> list[dict[str, Any]]:
        """Receive up to `limit` messages, each hidden for HOLD_SECONDS (the newest receipt handle per message)."""
        url = self.url()
        held: dict[str, dict[str, Any]] = {}
        while len(held) < limit:
            batch = self._call("receive_message", "receive from", QueueUrl=url, AttributeNames=["All"],
                               MaxNumberOfMessages=min(BATCH, limit - len(held)), VisibilityTimeout=HOLD_SECONDS,
                               WaitTimeSeconds=WAIT_SECONDS).get("Messages") or []
            if not batch:
                break
            held |= {raw["MessageId"]: raw for raw in batch}
        return list(held.values())

    def _release(self, held: list[dict[str, Any]]) -> None:
        """Make `held` visible again at once (ChangeMessageVisibility 0)."""
        for start in range(0, len(held), BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": raw["ReceiptHandle"], "VisibilityTimeout": 0}
                       for i, raw in enumerate(held[start : start + BATCH])]
            try:
                reply = self._call("change_message_visibility_batch", "release messages of", QueueUrl=self.url(), Entries=entries)
                failed = reply.get("Failed") or []
            except QueueUnavailable as error:
                failed = [{"Message": str(error)}]
            if failed:
                log.warning("%d message(s) of %s stay hidden up to %d s more (%s)", len(failed), self.name(self.url()),
                            HOLD_SECONDS, failed[0].get("Message") or failed[0].get("Code"))

    def _call(self, operation: str, doing: str, **params: Any) -> Any:
        """One SQS call; botocore's errors become QueueUnavailable naming what failed and the error code."""
        try:
            return getattr(self.source.client(), operation)(**params)
        except QueueUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - botocore raises many types
            code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code") or type(error).__name__
            queue = self.name(params.get("QueueUrl") or "") or params.get("QueueName") or ""
            hint = " (your credentials lack the permission; README, \"Operations\")" if "AccessDenied" in code else ""
            raise QueueUnavailable(f"cannot {doing} {queue}: {code}{hint}") from error


def _no_sqs(kind: str, source: str) -> str:
    setting = "TRAIN_QUEUE" if kind == "train" else "PREDICT_QUEUE"
    if source == "local":
        done = ("a job that fails TRAIN_MAX_ATTEMPTS times is recorded failed (GET /projects/<id>/jobs): request training "
                "again" if kind == "train" else "a chunk that fails PREDICT_MAX_ATTEMPTS times counts its tasks failed: start "
                "a new run (GET /projects/<id>/prediction-runs/<run> shows why)")
        return (f"{setting} is `local` (make dev): its in-process worker has no dead-letter queue; {done}. For a "
                f"deployment, set {setting} (or --{kind}-queue) to the stack's queue name or URL")
    return (f"{setting} is `none`: messages wait in the store, not in a queue, so none is ever dead-lettered; set {setting} "
            f"(or --{kind}-queue) to the stack's queue name or URL")


def _describe_job(letter: DeadLetter, store: ObjectStore, settings: Settings) -> None:
    job = load_job(store, letter.project or "", letter.job_id or "")
    letter.state, letter.reason = job.state.value, job.reason
    if job.state in (JobState.SUCCEEDED, JobState.SUPERSEDED):
        letter.note = f"the job is {job.state.value} already: the train function will skip it"
    elif job.state == JobState.RUNNING and abandonment(job, Liveness(settings.job_lease_seconds)) is None:
        letter.keep = f"the job is running now (last heartbeat {job.last_sign_of_life()}): look again later"
    elif job.source == TRAIN_REQUEST and job.request_key and not _exists(store, job.request_key):
        letter.keep = ("its staged /train body is gone (expired 7 days after the request): send the training request "
                       "again, and delete this message with --delete --id")
    else:
        newer = slot_job_id(store, job.project)
        if newer and newer > job.job_id:
            letter.note = (f"a newer job of project {job.project} ({newer}) is queued or ran: if it is still queued, "
                           "this one leaves the training to it")


def _exists(store: ObjectStore, key: str) -> bool:
    """Whether `key` holds an object, without reading it (a staged /train body may be 64 MiB)."""
    return key in store.list_keys(posixpath.dirname(key))


def _describe_run(letter: DeadLetter, store: ObjectStore) -> None:
    from functions.runs.records import FINISHED, load_run

    run = load_run(store, letter.project or "", letter.run_id or "")
    letter.state, letter.reason = run.state.value, run.reason
    if run.state in FINISHED:
        letter.note = f"the run is {run.state.value}: the predict function will skip it; start a new run instead"
    elif letter.page and store.get(keys.chunk_key(run.project, run.run_id, letter.page)) is not None:
        letter.note = f"chunk {letter.page} is recorded already: the predict function will skip it"
    elif letter.page is None and run.planned:
        letter.note = "the run is planned already: the predict function will skip its plan"


def _requeue_job(letter: DeadLetter, store: ObjectStore, settings: Settings) -> str | None:
    """Set the letter's job queued again so the train function runs it; None when its copy may go,
    else why not."""
    job = load_job(store, letter.project or "", letter.job_id or "")
    if job.state in (JobState.SUCCEEDED, JobState.SUPERSEDED):
        return None  # the copy does nothing, and clears the dead-letter queue
    if job.state == JobState.QUEUED and (job.reason or "").startswith(REDRIVEN):
        return None  # queued by an earlier redrive whose delete failed
    before = f"{job.state.value}: {job.reason}" if job.reason else job.state.value
    job.state, job.reason = JobState.QUEUED, f"{REDRIVEN} at {now()} (before: {before})"
    try:
        save_job(store, job, if_match=job._etag)
    except PreconditionFailed:
        return "the job record changed while redriving: look again, then redrive"
    letter.state, letter.reason = job.state.value, job.reason
    letter.note = "the job is queued again" + (f" ({letter.note})" if letter.note else "")
    return None

