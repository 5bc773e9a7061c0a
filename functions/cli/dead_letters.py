"""`dead-letters`: show the dead-lettered messages of the training and predict queues with their job's or
run's state and reason, send them back to their queue (`--redrive`), or delete one for good.

Runs with an operator's own AWS credentials against the deployed queues (TRAIN_QUEUE / PREDICT_QUEUE,
or --train-queue / --predict-queue) and store (MODEL_STORE_URI, or --store). How it looks without
consuming, and how a redrive keeps FIFO deduplication and gets a failed job to train again:
`functions.dead_letters`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from functions.cli.common import CliError, add_common_options, settings_and_store
from functions.dead_letters import DeadLetter, DeadLetterQueue, NoDeadLetterQueue, Outcome


def dead_letters_command(args: argparse.Namespace) -> int:
    """Run `dead-letters`; returns the exit status (1 when a redrive failed to send a message)."""
    if args.delete and not args.id:
        raise CliError("--delete removes one message for good: name it with --id <message id> (see the listing)")
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1 (got {args.limit})")
    settings, store = settings_and_store(args)
    queues = _queues(args, settings)
    shown: list[dict[str, Any]] = []
    failed = False
    for queue in queues:
        if args.redrive:
            outcomes = queue.redrive(store, settings, args.limit, args.id)
            failed |= any(outcome.action == "failed" for outcome in outcomes)
            shown += [outcome.public() for outcome in outcomes]
            if not args.json:
                _print_outcomes(queue, outcomes)
        elif args.delete:
            outcome = queue.delete(store, settings, args.id, args.limit)
            if outcome is not None:
                shown.append(outcome.public())
                if not args.json:
                    _print_outcomes(queue, [outcome])
        else:
            count = queue.approximate_count()
            letters = queue.peek(store, settings, args.limit, args.id)
            shown += [letter.public() for letter in letters]
            if not args.json:
                _print_letters(queue, letters, count, args.id)
    if args.id and not shown:
        names = ", ".join(DeadLetterQueue.name(queue.url()) for queue in queues)
        raise CliError(f"no dead-lettered message {args.id} in {names}")
    if args.json:
        print(json.dumps(shown, indent=2))
    elif not args.redrive and not args.delete and shown and not args.quiet:
        print("send them back with --redrive (one: --redrive --id <message id>); README, \"Operations\"", file=sys.stderr)
    return 1 if failed else 0


def _queues(args: argparse.Namespace, settings: Any) -> list[DeadLetterQueue]:
    """The dead-letter queues `--queue` names; with `all`, a queue that has none is left out with a note."""
    sources = {"train": args.train_queue or settings.train_queue, "predict": args.predict_queue or settings.predict_queue}
    kinds = ["train", "predict"] if args.queue == "all" else [args.queue]
    queues, problems = [], []
    for kind in kinds:
        try:
            queue = DeadLetterQueue(kind, sources[kind])
            queue.url()
        except NoDeadLetterQueue as error:
            problems.append(str(error))
            continue
        queues.append(queue)
    if not queues:
        raise CliError("; and ".join(problems))
    for problem in problems:
        if not args.quiet:
            print(f"note: {problem}", file=sys.stderr)
    return queues


def _print_letters(queue: DeadLetterQueue, letters: list[DeadLetter], count: int, only: str | None) -> None:
    name = DeadLetterQueue.name(queue.url())
    if only:
        header = f"{queue.kind} dead-letter queue {name}:"
    elif not letters:
        header = f"{queue.kind} dead-letter queue {name}: empty"
    else:
        more = f" (of about {count}: a look shows at most 10 per project of a FIFO queue)" if count > len(letters) else ""
        header = f"{queue.kind} dead-letter queue {name}: {len(letters)} message(s){more}"
    print(header)
    for letter in letters:
        print(f"  {letter.message_id}  {letter.what()}, received {letter.received} times, sent {letter.sent_at}")
        record = "job" if queue.kind == "train" else "run"
        if letter.state:
            print(f"    {record} is {letter.state}" + (f": {letter.reason}" if letter.reason else ""))
        for line in (letter.note, f"not redriven: {letter.keep}" if letter.keep else None):
            if line:
                print(f"    {line}")


def _print_outcomes(queue: DeadLetterQueue, outcomes: list[Outcome]) -> None:
    if not outcomes:
        print(f"{queue.kind} dead-letter queue {DeadLetterQueue.name(queue.url())}: nothing to redrive")
    for outcome in outcomes:
        print(f"{queue.kind}: {outcome.action} {outcome.letter.message_id} ({outcome.letter.what()}): {outcome.detail}")


def register(commands: Any) -> None:
    """Add the `dead-letters` sub-command to `commands` (argparse sub-parsers)."""
    parser = commands.add_parser(
        "dead-letters",
        help="show the dead-lettered training and prediction-run messages; redrive them",
        description="Show the messages of the training and predict queues' dead-letter queues (found from each "
        "queue's RedrivePolicy) with the job's or run's state and reason from the store, without consuming them "
        "(each is received for at most 60 s and made visible again). --redrive sends them back to their queue "
        "(deleting each from the dead-letter queue once sent) and queues a failed training job again, so it "
        "trains. Needs the deployed queues: TRAIN_QUEUE / PREDICT_QUEUE (or --train-queue / --predict-queue) and "
        "MODEL_STORE_URI (or --store), with an operator's AWS credentials; `make dev`'s local queues have none.",
    )
    parser.add_argument("--queue", choices=("train", "predict", "all"), default="all",
                        help="which dead-letter queue (default: all)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--redrive", action="store_true", help="send the messages (or the one --id names) back to their queue")
    action.add_argument("--delete", action="store_true",
                        help="delete the message --id names for good (one nothing can run: its record is gone)")
    parser.add_argument("--id", metavar="MESSAGE_ID", help="only this message (its id in the dead-letter queue, as listed)")
    parser.add_argument("--limit", type=int, default=100, help="most messages per queue to look at (default 100)")
    parser.add_argument("--train-queue", metavar="NAME_OR_URL", help="the training queue (default: TRAIN_QUEUE)")
    parser.add_argument("--predict-queue", metavar="NAME_OR_URL", help="the predict queue (default: PREDICT_QUEUE)")
    parser.add_argument("--json", action="store_true", help="print the messages (or what was done to each) as a JSON list")
    add_common_options(parser)
    parser.set_defaults(run=dead_letters_command)
