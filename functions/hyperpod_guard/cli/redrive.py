"""`hyperpod-guard redrive --queue URL`: replay what a dead-letter queue keeps (see dlq.py).

Exit codes as the rest of the CLI: 0 every message received was replayed (or, with --dry-run,
would be); 1 some were left in the queue (unknown, another stack's, or the function failed);
2 bad input or SQS/Lambda unreachable, with one `error: ...` line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from botocore.config import Config

from .common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    BadInput,
    add_aws_options,
    add_prefix_option,
    aws_client,
    aws_errors,
    exit_codes,
)
from .dlq import Invoker, lambda_invoker, redrive

#: a replay waits for the function: longer than the notifier's 90 s timeout; no retry of a
#: timed-out invoke (the function may have run; the message stays and the next redrive retries)
INVOKE_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=150)


def make_invoker(args: argparse.Namespace) -> Invoker:
    """lambda:Invoke with the caller's credentials (replaced in tests, where moto cannot run Lambda)."""
    return lambda_invoker(aws_client(args, "lambda", "Lambda", INVOKE_CONFIG))


def cmd_redrive(args: argparse.Namespace) -> int:
    if not args.queue.strip():
        raise BadInput("--queue must not be empty")
    if args.max is not None and args.max < 1:
        raise BadInput(f"--max must be at least 1, got {args.max}")
    sqs = aws_client(args, "sqs", "SQS")
    invoke = make_invoker(args) if not args.dry_run else _never
    with aws_errors("SQS"):
        report = redrive(sqs, args.queue, invoke, dry_run=args.dry_run, max_messages=args.max, function=args.function,
                         prefix=args.prefix, wait_seconds=args.wait, echo=print)
    print(report.summary(args.dry_run), file=sys.stderr)
    return EXIT_PROBLEMS if report.problems else EXIT_OK


def _never(function: str, payload: dict[str, Any]) -> None:  # pragma: no cover - dry runs invoke nothing
    raise AssertionError("a dry run does not invoke")


def add_redrive_command(commands: Any) -> None:
    """Add `redrive` to the top-level subparsers."""
    command = commands.add_parser(
        "redrive", help="replay the events a dead-letter queue keeps into the function that failed them",
        description="Receive the messages of a hyperpod-guard DLQ (EventBridge rule DLQ, a Lambda on-failure "
        "queue, the Slack notifier's DLQ), take the original event out of each, invoke the function with it "
        "(synchronously), and delete the message only after the function processed it. Messages that are not "
        "replayed stay in the queue and are counted.",
        epilog=exit_codes(
            "every message received was replayed (with --dry-run: would be)",
            "some message was left in the queue: not recognised (also with --dry-run: an unknown message "
            "exits 1), naming another stack's function, or the function failed",
            bad_input="bad input or SQS/Lambda unreachable"),
    )
    command.add_argument("--queue", required=True, metavar="URL", help="the queue's URL")
    command.add_argument("--dry-run", action="store_true",
                         help="only read and report what would be replayed; every message stays")
    command.add_argument("--max", type=int, metavar="N", help="replay at most N messages (default: all)")
    command.add_argument("--function", metavar="NAME",
                         help="invoke this function (name or ARN) for every message (default: the function the "
                         "message names, else <prefix>-evaluator / <prefix>-slack-notifier by the event's kind)")
    add_prefix_option(command)
    command.add_argument("--wait", type=int, default=2, metavar="SECONDS", choices=range(21),
                         help="long-poll wait per receive, 0-20 (default: 2)")
    add_aws_options(command)
    command.set_defaults(run=cmd_redrive)
