"""`hyperpod-guard redrive`: the three DLQ shapes, replay through the right function, delete only
after the function processed the message, keep (and count) everything else; SQS on moto.

moto's lambda:Invoke needs Docker to run a function, which this machine lacks: the invoker is
injected, and where a test wants a real replay it answers that one call locally by running the
function's handler in this process (tests/runtime_fixtures.LambdaContext), as Lambda would.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from hyperpod_guard.cli import main
from hyperpod_guard.cli import redrive as cli_redrive
from hyperpod_guard.cli.dlq import Kind, Outcome, ReplayFailed, lambda_invoker, parse_message, redrive
from hyperpod_guard.local.provision import delivered
from tests.lambda_output import lambda_output
from tests.runtime_fixtures import LambdaContext, scenario, serve, stack  # noqa: F401
from tests.slack_sink import slack_sink  # noqa: F401

ACCOUNT, REGION = "123456789012", "us-west-2"
EVALUATOR_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hyperpod-guard-evaluator"
NOTIFIER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hyperpod-guard-slack-notifier"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:hyperpod-guard-alerts"


# --- the three shapes ---------------------------------------------------------------------------

def event(name: str = "degraded-group-failed") -> dict[str, Any]:
    return scenario(name)[0]


def sns_notification(message: str = '{"cluster": "ml-prod"}', message_id: str = "95df01b4-ee98-5cb9-9903-4c221d41eb5e"):
    """What SNS puts in a subscription's DLQ: the notification JSON (Signing/Unsubscribe as URL)."""
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC, "Subject": "[CRITICAL] ml-prod",
            "Message": message, "Timestamp": "2026-11-24T12:00:00.000Z", "SignatureVersion": "1",
            "Signature": "EXAMPLE", "SigningCertURL": "https://sns.example/cert.pem",
            "UnsubscribeURL": "https://sns.example/unsubscribe", "MessageAttributes": {}}


def sns_event(message_id: str = "95df01b4-ee98-5cb9-9903-4c221d41eb5e", message: str = '{"cluster": "ml-prod"}'):
    """The event SNS invokes the notifier with (what a Lambda invocation record keeps)."""
    envelope = {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC, "Message": message,
                "Timestamp": "2026-11-24T12:00:00.000Z", "MessageAttributes": {}}
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                         "EventSubscriptionArn": f"{TOPIC}:2bcfbf39", "Sns": envelope}]}


def destination_record(payload: dict[str, Any], function_arn: str) -> dict[str, Any]:
    """Lambda's on-failure invocation record (async invoke, retries exhausted)."""
    return {
        "version": "1.0", "timestamp": "2026-11-24T12:00:03.000Z",
        "requestContext": {"requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2", "functionArn": f"{function_arn}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "An error occurred (ThrottlingException)", "errorType": "ClientError"},
    }


EVENTBRIDGE_ATTRIBUTES = {  # what EventBridge adds to a message in its rule's DLQ
    "RULE_ARN": {"DataType": "String", "StringValue": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/hyperpod-guard-hyperpod-events"},
    "TARGET_ARN": {"DataType": "String", "StringValue": EVALUATOR_ARN},
    "ERROR_CODE": {"DataType": "String", "StringValue": "SDK_CLIENT_ERROR"},
    "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Unable to invoke Lambda function"},
}


@pytest.mark.parametrize(("body", "attributes", "kind", "payload", "recorded", "source"), [
    pytest.param(json.dumps(event()), EVENTBRIDGE_ATTRIBUTES, Kind.EVENT, event(), EVALUATOR_ARN, "eventbridge-dlq",
                 id="eventbridge-rule-dlq"),
    pytest.param(json.dumps(event()), {}, Kind.EVENT, event(), None, "eventbridge-dlq", id="eventbridge-without-attributes"),
    pytest.param(json.dumps(destination_record(event(), EVALUATOR_ARN)), {}, Kind.EVENT, event(),
                 f"{EVALUATOR_ARN}:$LATEST", "lambda-destination", id="evaluator-on-failure"),
    pytest.param(json.dumps(destination_record(sns_event(), NOTIFIER_ARN)), {}, Kind.SNS, sns_event(),
                 f"{NOTIFIER_ARN}:$LATEST", "lambda-destination", id="notifier-on-failure"),
])
def test_recognised_shapes(body, attributes, kind, payload, recorded, source):
    parked = parse_message(body, attributes)
    assert (parked.kind, parked.payload, parked.recorded, parked.source) == (kind, payload, recorded, source)


def test_sns_dlq_message_becomes_the_event_sns_would_have_sent():
    parked = parse_message(json.dumps(sns_notification()))
    assert (parked.kind, parked.recorded, parked.source) == (Kind.SNS, None, "sns-dlq")
    (record,) = parked.payload["Records"]
    assert record["EventSource"] == "aws:sns"
    assert record["Sns"]["MessageId"] == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert record["Sns"]["Message"] == '{"cluster": "ml-prod"}'
    assert record["Sns"]["SigningCertUrl"] == "https://sns.example/cert.pem"  # Lambda's spelling


@pytest.mark.parametrize("body", [
    "not json", "[]", "null", '"a string"', "{}", '{"detail-type": "x"}', '{"Records": []}', '{"Records": [{"s3": {}}]}',
    json.dumps(destination_record({"something": "else"}, EVALUATOR_ARN)),
    json.dumps({"Type": "SubscriptionConfirmation", "MessageId": "m", "Message": "confirm"}),
    "[" * 100_000,
])
def test_unknown_bodies(body):
    assert parse_message(body) is None


# --- against SQS ----------------------------------------------------------------------------------

class Journal(list):
    """What happened, in order: ("invoke", function, payload) and ("delete", receipt)."""


class RecordingSqs:
    """The SQS client, with every delete written to the journal (to check the order)."""

    def __init__(self, journal: Journal):
        self._client = boto3.client("sqs")
        self._journal = journal

    def delete_message(self, **kwargs: Any) -> Any:
        self._journal.append(("delete", kwargs["ReceiptHandle"]))
        return self._client.delete_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def local_invoker(journal: Journal, fail: set[str] = frozenset()):
    def invoke(function: str, payload: dict[str, Any]) -> None:
        journal.append(("invoke", function, payload))
        key = payload.get("id") or payload.get("Records", [{}])[0].get("Sns", {}).get("MessageId")
        if key in fail:
            raise ReplayFailed("Unhandled: ClientError: still failing")
    return invoke


@pytest.fixture
def queue(aws) -> str:
    return boto3.client("sqs").create_queue(QueueName="hyperpod-guard-events-dlq")["QueueUrl"]


def put(queue_url: str, body: Any, attributes: dict[str, Any] | None = None) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=text,
                                            MessageAttributes=attributes or {})["MessageId"]


def visible(queue_url: str) -> list[str]:
    """Bodies a consumer can receive now (received with a zero visibility timeout: left as they are)."""
    sqs, bodies = boto3.client("sqs"), []
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        new = [m["Body"] for m in batch if m["Body"] not in bodies]
        if not new:
            break
        bodies += new
    return bodies


def with_id(value: str, scenario_name: str = "degraded-group-failed") -> dict[str, Any]:
    mine = copy.deepcopy(event(scenario_name))
    mine["id"] = value
    return mine


def test_replays_each_shape_into_its_function_and_deletes_only_after(queue):
    put(queue, with_id("eb-1"), EVENTBRIDGE_ATTRIBUTES)
    put(queue, destination_record(with_id("ev-1"), EVALUATOR_ARN))
    put(queue, destination_record(sns_event("sns-1"), NOTIFIER_ARN))
    put(queue, sns_notification(message_id="sns-2"))
    put(queue, "garbage")
    journal = Journal()
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal), wait_seconds=0)

    invoked = sorted((step[1], step[2].get("id") or step[2]["Records"][0]["Sns"]["MessageId"])
                     for step in journal if step[0] == "invoke")
    assert invoked == [("arn:aws:lambda:us-west-2:123456789012:function:hyperpod-guard-evaluator", "eb-1"),
                       ("arn:aws:lambda:us-west-2:123456789012:function:hyperpod-guard-evaluator", "ev-1"),
                       ("arn:aws:lambda:us-west-2:123456789012:function:hyperpod-guard-slack-notifier", "sns-1"),
                       ("hyperpod-guard-slack-notifier", "sns-2")]
    # every delete comes right after its message's invoke, never before
    kinds = [step[0] for step in journal]
    assert kinds == ["invoke", "delete"] * 4
    assert (report.received, report.outcomes) == (5, {Outcome.REPLAYED: 4, Outcome.UNKNOWN: 1})
    assert report.summary(dry_run=False) == "received 5: 4 replayed, 1 unknown; 4 deleted, 1 left in the queue"
    assert visible(queue) == ["garbage"]  # kept, and visible again at once


def test_a_failed_replay_keeps_its_message(queue):
    put(queue, with_id("ok-1"))
    put(queue, with_id("bad-1"))
    journal = Journal()
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal, fail={"bad-1"}), wait_seconds=0)
    assert report.outcomes == {Outcome.REPLAYED: 1, Outcome.FAILED: 1}
    assert sum(1 for step in journal if step[0] == "delete") == 1
    assert [json.loads(body)["id"] for body in visible(queue)] == ["bad-1"]
    assert any("bad-1" not in line and "still failing" in line for line in report.lines)


def test_dry_run_reads_reports_and_leaves_every_message_visible(queue):
    bodies = [put(queue, with_id(f"dry-{i}")) for i in range(3)] + [put(queue, "garbage")]
    journal = Journal()
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal), dry_run=True, wait_seconds=0)
    assert journal == []  # nothing invoked, nothing deleted
    assert report.outcomes == {Outcome.WOULD_REPLAY: 3, Outcome.UNKNOWN: 1}
    assert report.summary(dry_run=True) == "received 4: 1 unknown, 3 would replay; 3 would be deleted, 4 left in the queue"
    assert len(visible(queue)) == len(bodies)


def test_max_limits_the_messages_taken(queue):
    for i in range(5):
        put(queue, with_id(f"max-{i}"))
    journal = Journal()
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal), max_messages=2, wait_seconds=0)
    assert report.received == 2 and report.outcomes == {Outcome.REPLAYED: 2}
    assert len(visible(queue)) == 3


def test_a_message_naming_another_function_is_left_unless_function_is_given(queue):
    put(queue, destination_record(with_id("other-1"), f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:someone-elses"))
    journal = Journal()
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal), wait_seconds=0)
    assert report.outcomes == {Outcome.FOREIGN: 1} and journal == []
    report = redrive(RecordingSqs(journal), queue, local_invoker(journal), function="my-evaluator", wait_seconds=0)
    assert report.outcomes == {Outcome.REPLAYED: 1}
    assert [step[:2] for step in journal if step[0] == "invoke"] == [("invoke", "my-evaluator")]
    assert visible(queue) == []


def test_another_prefix_picks_that_stacks_functions(queue):
    put(queue, with_id("pfx-1"))
    put(queue, sns_notification(message_id="pfx-2"))
    journal = Journal()
    redrive(RecordingSqs(journal), queue, local_invoker(journal), prefix="team-a", wait_seconds=0)
    assert sorted(step[1] for step in journal if step[0] == "invoke") == ["team-a-evaluator", "team-a-slack-notifier"]


# --- the lambda:Invoke invoker (botocore's Stubber: no network) ---------------------------------

def stubbed_lambda(response: dict[str, Any]):
    client = boto3.client("lambda", region_name=REGION)
    stubber = Stubber(client)
    body = json.dumps(response.pop("answer")).encode()
    stubber.add_response("invoke", {**response, "Payload": StreamingBody(io.BytesIO(body), len(body))},
                         {"FunctionName": "hyperpod-guard-evaluator", "InvocationType": "RequestResponse",
                          "Payload": b'{"id": "x"}'})
    stubber.activate()
    return client


def test_lambda_invoker_returns_when_the_function_returned():
    client = stubbed_lambda({"StatusCode": 200, "answer": {"invalid": "not an object"}})
    lambda_invoker(client)("hyperpod-guard-evaluator", {"id": "x"})  # a dropped bad event is processed too


def test_lambda_invoker_raises_when_the_function_raised():
    client = stubbed_lambda({"StatusCode": 200, "FunctionError": "Unhandled",
                             "answer": {"errorType": "ClientError", "errorMessage": "An error occurred\n(Throttling)"}})
    with pytest.raises(ReplayFailed, match=r"^Unhandled: ClientError: An error occurred \(Throttling\)$"):
        lambda_invoker(client)("hyperpod-guard-evaluator", {"id": "x"})


# --- the command, end to end: DLQ -> redrive -> the real handlers on moto ----------------------

def handlers_in_process(journal: Journal):
    """Lambda's side of the one lambda:Invoke call, answered here: the function's handler runs
    in this process; a raise is what Lambda reports as FunctionError."""
    from hyperpod_guard.handlers import evaluator, slack_notifier

    functions = {"hyperpod-guard-evaluator": evaluator.handler, "hyperpod-guard-slack-notifier": slack_notifier.handler}

    def invoke(function: str, payload: dict[str, Any]) -> None:
        journal.append(("invoke", function, payload))
        try:
            with lambda_output() as logs:  # the function's logs go to its log group, not to our stdout
                functions[function.rsplit(":", 1)[-1]](copy.deepcopy(payload), LambdaContext(function_name=function))
        except Exception as exc:  # noqa: BLE001 - the FunctionError of a real invoke
            raise ReplayFailed(f"Unhandled: {type(exc).__name__}") from exc
        journal.append(("logs", function, logs.getvalue()))
    return invoke


def run_cli(monkeypatch, capsys, journal: Journal, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli_redrive, "make_invoker", lambda parsed: handlers_in_process(journal))
    capsys.readouterr()
    code = main(["redrive", "--wait", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_replays_a_parked_event_through_the_evaluator(stack, monkeypatch, capsys):  # noqa: F811
    dlq = boto3.client("sqs").create_queue(QueueName="hyperpod-guard-evaluator-failures")["QueueUrl"]
    parked, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot)
    put(dlq, destination_record(parked, EVALUATOR_ARN))
    put(dlq, '{"unexpected": true}')
    journal = Journal()

    code, out, err = run_cli(monkeypatch, capsys, journal, "--queue", dlq, "--dry-run")
    assert (code, journal) == (1, [])  # one message would not be replayed: exit 1
    assert err.strip() == "received 2: 1 unknown, 1 would replay; 1 would be deleted, 2 left in the queue"

    code, out, err = run_cli(monkeypatch, capsys, journal, "--queue", dlq)
    assert code == 1 and len(out.splitlines()) == 2
    assert err.strip() == "received 2: 1 replayed, 1 unknown; 1 deleted, 1 left in the queue"
    assert [[i["reason"] for i in m["message"]["items"]] for m in delivered(stack)] == [["first"]]
    assert visible(dlq) == ['{"unexpected": true}']


def test_cli_after_a_long_slack_outage_delivers_each_alert_once(stack, slack_sink, monkeypatch, capsys):  # noqa: F811
    """Slack was down past Lambda's retries: the notifier's failures sit in its DLQ (both shapes);
    once Slack is back, a redrive delivers each exactly once, even a message parked twice."""
    from hyperpod_guard.handlers import slack_notifier
    from hyperpod_guard.notify import delivery

    boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=slack_sink.url)
    monkeypatch.setattr(delivery, "sleep", lambda seconds: None)
    dlq = boto3.client("sqs").create_queue(QueueName="hyperpod-guard-slack-dlq")["QueueUrl"]
    body = json.dumps({"cluster": "ml-prod", "items": [{"reason": "first", "finding": {
        "policy": "degraded-group", "severity": "critical", "cluster": "ml-prod", "fingerprint": "0123456789abcdef0123",
        "summary": "Instance group workers is Failed (0/4 nodes)"}}]})
    put(dlq, destination_record(sns_event("outage-1", body), NOTIFIER_ARN))
    put(dlq, sns_notification(body, message_id="outage-2"))
    put(dlq, destination_record(sns_event("outage-1", body), NOTIFIER_ARN))  # the same SNS message, parked twice

    code, out, err = run_cli(monkeypatch, capsys, Journal(), "--queue", dlq)
    assert code == 0, out + err
    assert err.strip() == "received 3: 3 replayed; 3 deleted, 0 left in the queue"
    assert len(slack_sink.requests) == 2  # outage-1 once (the notifier remembers it), outage-2 once
    assert visible(dlq) == []


def test_cli_bad_input_is_one_line(aws, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, Journal(), "--queue", " ")
    assert code == 2 and err.strip() == "error: --queue must not be empty"
    code, out, err = run_cli(monkeypatch, capsys, Journal(), "--queue", "http://127.0.0.1:1/123/nope", "--max", "0")
    assert code == 2 and err.strip() == "error: --max must be at least 1, got 0"
