"""Replay what a dead-letter queue keeps: take the original event out of each message, give it
to the function that failed it, and delete the message only once that function processed it.

The stack parks failures in three queues, in three shapes (infra/ingestion.py, evaluation.py,
alerting.py); for each queue, who writes to it and the message body:

- `<prefix>-events-dlq`: the EventBridge rule, after its retries. Body: the EventBridge event
  itself; message attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE.
- `<prefix>-evaluator-failures`, `<prefix>-slack-dlq`: Lambda, after the async retries
  (on-failure destination). Body: an invocation record, `{"requestContext": {"functionArn", ...},
  "requestPayload": <the event>, "responseContext", "responsePayload"}`.
- `<prefix>-slack-dlq`: SNS, when it could not invoke the notifier at all (subscription redrive
  policy). Body: the SNS notification, `{"Type": "Notification", "MessageId", "TopicArn",
  "Message", ...}`.

The replay is a synchronous `lambda:Invoke` (RequestResponse) of the function, so success
means the function returned: a bad event it counts and drops is a success too; a raise
(`FunctionError`) or an invoke error keeps the message. Which function: `--function` if given;
otherwise the one the message names (TARGET_ARN, requestContext.functionArn) provided it is
this stack's function for that kind of event; otherwise this stack's by kind (EventBridge
event -> `<prefix>-evaluator`, SNS notification -> `<prefix>-slack-notifier`). A message naming
some other function is left alone: a queue's content must not choose what an operator invokes.

Replays are safe to repeat (a message may be invoked twice if deleting it fails): the ledger
makes a second evaluation a no-op, and the Slack notifier remembers delivered SNS message ids.
Messages that are not replayed (unknown, failed, --dry-run) are made visible again at the end.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .. import naming

#: how long a received message stays hidden while it is replayed (the notifier may take 90 s)
VISIBILITY_TIMEOUT = 300
#: SQS hands out at most 10 messages per ReceiveMessage
BATCH = 10


class Kind(StrEnum):
    EVENT = "eventbridge-event"  # an EventBridge event for the evaluator
    SNS = "sns-notification"  # an SNS event ({"Records": [...]}) for the Slack notifier


class Outcome(StrEnum):
    REPLAYED = "replayed"
    WOULD_REPLAY = "would replay"
    FAILED = "failed"
    UNKNOWN = "unknown"
    FOREIGN = "not this stack's"


@dataclass(frozen=True)
class Parked:
    """What a DLQ message holds: the original event, its kind, and the function it names."""

    kind: Kind
    payload: dict[str, Any]
    #: the function the message says failed (a name or ARN), when it says
    recorded: str | None
    #: where the message came from: "eventbridge-dlq", "lambda-destination" or "sns-dlq"
    source: str


class ReplayFailed(Exception):
    """The function could not be invoked, or it raised: the message stays in the queue."""


#: invoke(function, payload) returns once the function processed the payload; raises ReplayFailed
Invoker = Callable[[str, dict[str, Any]], None]


# --- recognising messages -------------------------------------------------------------------

def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _kind(payload: Any) -> Kind | None:
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("detail-type"), str) and "detail" in payload:
        return Kind.EVENT
    records = payload.get("Records")
    if isinstance(records, list) and records and all(
        isinstance(r, dict) and isinstance(r.get("Sns"), dict) for r in records
    ):
        return Kind.SNS
    return None


def _sns_event(notification: dict[str, Any]) -> dict[str, Any]:
    """The SNS notification JSON as the Lambda event SNS would have invoked the notifier with."""
    renamed = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}
    sns = {renamed.get(key, key): value for key, value in notification.items()}
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": sns}]}


def _attribute(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return value.get("StringValue") if isinstance(value, dict) else None


def parse_message(body: str, attributes: dict[str, Any] | None = None) -> Parked | None:
    """A DLQ message -> what it parked, or None when the body is none of the three shapes."""
    document = _json_object(body)
    if document is None:
        return None
    if "requestContext" in document and "requestPayload" in document:  # Lambda on-failure destination
        kind = _kind(document["requestPayload"])
        context = document["requestContext"] if isinstance(document["requestContext"], dict) else {}
        arn = context.get("functionArn")
        return Parked(kind, document["requestPayload"], arn if isinstance(arn, str) else None,
                      "lambda-destination") if kind else None
    if (document.get("Type") == "Notification" and isinstance(document.get("Message"), str)
            and document.get("MessageId")):
        return Parked(Kind.SNS, _sns_event(document), None, "sns-dlq")
    if _kind(document) is Kind.EVENT:  # EventBridge rule DLQ: the event as it was
        return Parked(Kind.EVENT, document, _attribute(attributes or {}, "TARGET_ARN"), "eventbridge-dlq")
    return None


# --- choosing the function --------------------------------------------------------------------

EXPECTED = {Kind.EVENT: "evaluator", Kind.SNS: "slack-notifier"}


def function_name(reference: str) -> str:
    """'arn:aws:lambda:us-west-2:1234:function:name:$LATEST' -> 'name' (a bare name as it is)."""
    parts = reference.split(":")
    return parts[6] if reference.startswith("arn:") and len(parts) >= 7 else reference


def without_latest(reference: str) -> str:
    return reference.removesuffix(":$LATEST")


def target(parked: Parked, *, function: str | None, prefix: str) -> str | None:
    """The function to replay into, or None when the message names another stack's function."""
    if function:
        return function
    expected = f"{prefix}-{EXPECTED[parked.kind]}"
    if parked.recorded is None:
        return expected
    if function_name(parked.recorded) != expected:
        return None
    return without_latest(parked.recorded)


# --- the redrive ------------------------------------------------------------------------------

@dataclass
class Report:
    """Counts by outcome and by target function, and one line per message."""

    received: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.received - self.outcomes[Outcome.REPLAYED]

    @property
    def problems(self) -> int:
        """Messages that could not be (or, in a dry run, would not be) replayed."""
        return self.outcomes[Outcome.FAILED] + self.outcomes[Outcome.UNKNOWN] + self.outcomes[Outcome.FOREIGN]

    def summary(self, dry_run: bool) -> str:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items())) or "nothing"
        verb = "would be deleted" if dry_run else "deleted"
        deleted = self.outcomes[Outcome.WOULD_REPLAY] if dry_run else self.outcomes[Outcome.REPLAYED]
        return f"received {self.received}: {counts}; {deleted} {verb}, {self.kept} left in the queue"


def redrive(
    sqs: Any, queue_url: str, invoke: Invoker, *, dry_run: bool = False, max_messages: int | None = None,
    function: str | None = None, prefix: str = naming.DEFAULT_PREFIX, wait_seconds: int = 2,
    visibility_timeout: int = VISIBILITY_TIMEOUT, echo: Callable[[str], None] = lambda line: None,
) -> Report:
    """Replay up to `max_messages` messages of the queue (all when None); see the module doc."""
    report = Report()
    keep: list[str] = []  # receipt handles of messages to make visible again at the end
    seen: set[str] = set()
    try:
        while max_messages is None or report.received < max_messages:
            want = BATCH if max_messages is None else min(BATCH, max_messages - report.received)
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=want, WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_timeout, MessageAttributeNames=["All"], AttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                report.received += 1
                outcome, where, note = _one(sqs, queue_url, message, invoke, dry_run=dry_run, function=function,
                                            prefix=prefix)
                report.outcomes[outcome] += 1
                if where:
                    report.targets[where] += 1
                if outcome is not Outcome.REPLAYED:
                    keep.append(message["ReceiptHandle"])
                line = "  ".join(part for part in (message["MessageId"], outcome.value, where or "-", note) if part)
                report.lines.append(line)
                echo(line)
    finally:
        for receipt in keep:  # visible again now, not after the visibility timeout
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return report


def _one(sqs: Any, queue_url: str, message: dict[str, Any], invoke: Invoker, *, dry_run: bool,
         function: str | None, prefix: str) -> tuple[Outcome, str | None, str]:
    """(outcome, the function, a note) for one message; deletes it once replayed."""
    parked = parse_message(message.get("Body", ""), message.get("MessageAttributes"))
    if parked is None:
        return Outcome.UNKNOWN, None, "not an EventBridge event, Lambda invocation record or SNS notification"
    where = target(parked, function=function, prefix=prefix)
    if where is None:
        return Outcome.FOREIGN, parked.recorded, f"{parked.source} names another function (use --function)"
    if dry_run:
        return Outcome.WOULD_REPLAY, where, parked.source
    try:
        invoke(where, parked.payload)
    except ReplayFailed as exc:
        return Outcome.FAILED, where, str(exc)
    # processed: only now may it leave the queue
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Outcome.REPLAYED, where, parked.source


# --- invoking with AWS Lambda ---------------------------------------------------------------------

def lambda_invoker(client: Any) -> Invoker:
    """A synchronous lambda:Invoke: returns when the function returned, ReplayFailed otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    def invoke(function: str, payload: dict[str, Any]) -> None:
        try:
            response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                                     Payload=json.dumps(payload).encode("utf-8"))
        except (ClientError, BotoCoreError) as exc:
            raise ReplayFailed(" ".join(str(exc).split())) from None
        if response.get("FunctionError"):
            answer = _json_object(response["Payload"].read().decode("utf-8", "replace")) or {}
            raise ReplayFailed(f"{response['FunctionError']}: {answer.get('errorType', '?')}: "
                               f"{' '.join(str(answer.get('errorMessage', '')).split())[:200]}")

    return invoke
