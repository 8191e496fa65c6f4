"""The Slack notifier Lambda: SNS event in, Block Kit to the webhook out; the secret in (moto) Secrets Manager."""

from __future__ import annotations

import json
import logging
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from hyperpod_guard.ledger_store import create_table
from hyperpod_guard.notify import delivery
from hyperpod_guard.notify.delivery import SlackNotConfiguredError
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from hyperpod_guard.notify.slack import SlackDeliveryError, SlackPermanentError, render
from tests.integration.test_faults import Faults, attempts, backoff  # noqa: F401 (backoff: fixture)
from tests.slack_sink import slack_sink  # noqa: F401

SECRET = "hyperpod-guard/slack-webhook"
TOPIC = "arn:aws:sns:us-west-2:123456789012:hyperpod-guard-alerts"


def notifier() -> ModuleType:
    """The handler module, imported lazily: a Powertools Logger created at collection time
    would bind the service's log handler to the collection-time stdout for every module."""
    from hyperpod_guard.handlers import slack_notifier

    return slack_notifier


def handler(event: dict[str, Any], context: Any) -> Any:
    return notifier().handler(event, context)


class FakeContext:
    function_name = "hyperpod-guard-slack-notifier"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:hyperpod-guard-slack-notifier"
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name = "/aws/lambda/hyperpod-guard-slack-notifier"
    log_stream_name = "2026/06/01/[$LATEST]abc"

    def __init__(self, remaining_ms: int = 30_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def notification(cluster: str = "ml-prod") -> Notification:
    finding = FindingPayload(
        policy="degraded-group", severity="critical", cluster=cluster, instance_group="workers",
        fingerprint="0123456789abcdef0123", condition="status-failed", summary="Instance group workers is Failed (0/4 nodes)",
        details={"status": "Failed", "counts": {"current": 0, "target": 4}},
    )
    return Notification(cluster=cluster, region="us-west-2", items=(NotificationItem(reason="first", finding=finding),))


def sns_event(*messages: str, ids: str = "95df01b4-ee98-5cb9-9903-4c221d41eb5") -> dict[str, Any]:
    """One record per message; message ids `<ids><index>` (a repeated id is a redelivery)."""
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": f"{TOPIC}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {
            "Type": "Notification", "MessageId": f"{ids}{i}", "TopicArn": TOPIC,
            "Subject": "[CRITICAL] ml-prod", "Message": message, "Timestamp": "2026-06-01T17:20:27.000Z",
            "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "EXAMPLE", "UnsubscribeUrl": "EXAMPLE",
            "MessageAttributes": {"severity": {"Type": "String", "Value": "critical"}},
        },
    } for i, message in enumerate(messages)]}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def secrets(aws: str):
    return boto3.client("secretsmanager", region_name="us-west-2")


@pytest.fixture
def env(aws: str, monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "hyperpod-guard")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    # the ledger table keeps the idempotency records of delivered SNS messages
    monkeypatch.setenv("TABLE_NAME", "hyperpod-guard-ledger")
    create_table(boto3.client("dynamodb", region_name="us-west-2"), "hyperpod-guard-ledger")
    sleeps = Sleeps()
    monkeypatch.setattr(delivery, "sleep", sleeps)
    return sleeps


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time (capsys swaps it per test phase)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Powertools' stream handler keeps the stdout object it saw when the first Logger of the
    service was created (maybe by another module): route it to the current sys.stdout meanwhile."""
    handlers = [h for h in logging.getLogger(notifier().logger.service).handlers
                if isinstance(h, logging.StreamHandler)]
    assert handlers
    saved = [h.stream for h in handlers]
    for h in handlers:
        h.stream = _CurrentStdout()  # not setStream(): that flushes the old stream
    try:
        yield capsys
    finally:
        for h, stream in zip(handlers, saved, strict=True):
            h.stream = stream


def records(out: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(log records, metrics by name summed over invocations) from the JSON lines Powertools printed."""
    logs, metrics = [], {}
    for line in out.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if "_aws" in data:
            for definition in data["_aws"]["CloudWatchMetrics"]:
                assert definition["Namespace"] == "HyperPodGuard"
                assert ["service"] in definition["Dimensions"]
                for metric in definition["Metrics"]:
                    value = data[metric["Name"]]
                    metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + (sum(value) if isinstance(value, list) else value)
            assert data["service"] == "slack-notifier"
        else:
            logs.append(data)
    return logs, metrics


def test_sends_the_rendered_notification(env, secrets, slack_sink, output):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    message = notification()
    assert handler(sns_event(message.body()), FakeContext()) == {"sent": 1, "dropped": 0}
    assert len(slack_sink.requests) == 1
    assert slack_sink.requests[0].path == "/services/T000/B000/XXXX"
    assert slack_sink.payloads == [render(message)]
    assert slack_sink.payloads[0]["blocks"][0]["text"]["text"] == "🔴 ml-prod: 1 firing"

    out, err = output.readouterr()
    logs, metrics = records(out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1}
    sent = [r for r in logs if r["message"] == "Sent to Slack"]
    assert len(sent) == 1
    assert sent[0]["cluster"] == "ml-prod" and sent[0]["attempts"] == 1
    assert sent[0]["function_request_id"] == FakeContext.aws_request_id
    assert sent[0]["service"] == "hyperpod-guard"
    for secret in (slack_sink.url, "T000/B000/XXXX"):
        assert secret not in out and secret not in err


def test_a_redelivered_message_is_posted_once(env, secrets, slack_sink, output):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    event = sns_event(notification().body())
    assert handler(event, FakeContext())["sent"] == 1
    assert handler(event, FakeContext())["sent"] == 1  # SNS at-least-once, or a Lambda retry after the POST
    assert len(slack_sink.requests) == 1
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 2, "SlackMessagesSent": 1, "SlackDuplicatesSkipped": 1}
    assert "SNS message already delivered to Slack; not posting it again" in [r["message"] for r in logs]
    # another message with the same content is a new alert occurrence: it is posted
    assert handler(sns_event(notification().body(), ids="next-"), FakeContext())["sent"] == 1
    assert len(slack_sink.requests) == 2
    # the idempotency record is in the ledger table, without the webhook URL
    items = boto3.client("dynamodb", region_name="us-west-2").scan(TableName="hyperpod-guard-ledger")["Items"]
    assert {item["pk"]["S"] for item in items} == {"IDEMPOTENCY"} and len(items) == 2
    assert slack_sink.url not in json.dumps(items)


@pytest.mark.parametrize("value", [
    "{url}",
    "  {url}\n",
    '{{"url": "{url}"}}',
    '{{"webhook_url": "{url}"}}',
    '{{"webhook_url": "{url}", "channel": "#alerts"}}',
])
def test_secret_forms(env, secrets, slack_sink, value):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=value.format(url=slack_sink.url))
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert [r.path for r in slack_sink.requests] == ["/services/T000/B000/XXXX"]


def test_secret_as_binary(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretBinary=slack_sink.url.encode())
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert len(slack_sink.requests) == 1


@pytest.mark.parametrize("value", [
    " ", "{}", '{"url": ""}', '{"webhook_url": null}', "REPLACE_WITH_SLACK_WEBHOOK_URL", "https://", "[]",
    "{not json", None,  # None: the secret exists without a value
])
def test_empty_or_placeholder_secret_raises_and_posts_nothing(env, secrets, slack_sink, output, value):  # noqa: F811
    secrets.create_secret(Name=SECRET, **({"SecretString": value} if value is not None else {}))
    with pytest.raises(SlackNotConfiguredError) as caught:
        handler(sns_event(notification().body()), FakeContext())
    message = f"Slack webhook secret {SECRET} is empty: put the webhook URL into it"
    assert str(caught.value) == message
    assert slack_sink.requests == []
    logs, metrics = records(output.readouterr().out)
    assert [(r["level"], r["message"]) for r in logs] == [("ERROR", message)]
    assert metrics == {"NotificationsReceived": 1, "SlackNotConfigured": 1}


def test_filled_in_secret_is_picked_up_at_once(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString="REPLACE_ME")
    with pytest.raises(SlackNotConfiguredError):
        handler(sns_event(notification().body()), FakeContext())
    secrets.put_secret_value(SecretId=SECRET, SecretString=slack_sink.url)
    # the unusable value is not kept for SLACK_SECRET_MAX_AGE: the retry delivers
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1


def test_missing_secret_raises_as_not_configured(env, slack_sink, output):  # noqa: F811
    # a secret that does not exist is a receiver not configured (was: a read error, GetParameterError)
    with pytest.raises(SlackNotConfiguredError) as caught:
        handler(sns_event(notification().body()), FakeContext())
    assert slack_sink.requests == []
    message = f"Slack webhook secret {SECRET} does not exist: create it holding the webhook URL"
    assert str(caught.value) == message
    logs, metrics = records(output.readouterr().out)
    assert [(r["level"], r["message"], r["receiver"]) for r in logs] == [("ERROR", message, "default")]
    assert metrics == {"NotificationsReceived": 1, "SlackNotConfigured": 1}


def test_unreadable_secret_raises(env, secrets, slack_sink, output):  # noqa: F811
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    Faults("secretsmanager").fail("GetSecretValue", "AccessDeniedException")
    with pytest.raises(GetParameterError):
        handler(sns_event(notification().body()), FakeContext())
    assert slack_sink.requests == []
    logs, _ = records(output.readouterr().out)
    assert logs[0]["message"].startswith(f"Slack webhook secret {SECRET} could not be read: ")
    assert logs[0]["receiver"] == "default"


NOT_A_NOTIFICATION = "not a notification ("


@pytest.mark.parametrize(("message", "why"), [
    ("not json", NOT_A_NOTIFICATION + "1 errors, first at message: Invalid JSON"),
    ("{}", NOT_A_NOTIFICATION + "2 errors, first at cluster: Field required)"),
    ('{"cluster": "ml-prod"}', NOT_A_NOTIFICATION + "1 errors, first at items: Field required)"),
    ('{"cluster": "ml-prod", "items": [{"reason": "exploded", "finding": {}}]}', NOT_A_NOTIFICATION),
    ("[]", NOT_A_NOTIFICATION + "1 errors, first at message: Input should be an object)"),
    ('{"cluster": "ml-prod", "items": []}', NOT_A_NOTIFICATION + "1 errors, first at items: Tuple should have at least 1 item"),
])
def test_invalid_message_is_dropped(env, secrets, slack_sink, output, message, why):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    assert handler(sns_event(message), FakeContext()) == {"sent": 0, "dropped": 1}
    assert slack_sink.requests == []
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "InvalidNotification": 1}
    assert len(logs) == 1 and logs[0]["level"] == "ERROR"
    assert logs[0]["message"].startswith(f"Dropping SNS message 95df01b4-ee98-5cb9-9903-4c221d41eb50: {why}")
    assert logs[0]["message_id"] == "95df01b4-ee98-5cb9-9903-4c221d41eb50"
    assert "\n" not in logs[0]["message"]


def test_invalid_message_needs_no_secret(env, slack_sink):  # noqa: F811
    # no secret created: dropping a bad message must not depend on Slack being configured
    assert handler(sns_event("garbage"), FakeContext()) == {"sent": 0, "dropped": 1}


def test_good_and_bad_messages_in_one_event(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    event = sns_event(notification("a").body(), "garbage", notification("b").body())
    assert handler(event, FakeContext()) == {"sent": 2, "dropped": 1}
    assert [p["blocks"][0]["text"]["text"] for p in slack_sink.payloads] == ["🔴 a: 1 firing", "🔴 b: 1 firing"]


def test_event_without_records_is_dropped(env, slack_sink):  # noqa: F811
    assert handler({"detail-type": "Scheduled Event"}, FakeContext()) == {"sent": 0, "dropped": 0}
    assert slack_sink.requests == []


def test_slack_down_raises_after_attempts(env, secrets, slack_sink, output):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=json.dumps({"url": slack_sink.url}))
    slack_sink.respond(500, "internal_error", times=5)
    with pytest.raises(SlackDeliveryError) as caught:
        handler(sns_event(notification().body()), FakeContext())
    assert len(slack_sink.requests) == 2  # SLACK_MAX_ATTEMPTS
    assert len(env) == 1  # one backoff sleep, through the patched sleep
    assert str(caught.value) == "Slack webhook: delivery failed after 2 attempts: HTTP 500 internal_error"
    out, err = output.readouterr()
    logs, metrics = records(out)
    assert metrics == {"NotificationsReceived": 1, "SlackDeliveryFailed": 1}
    failed = [r for r in logs if r["level"] == "ERROR"]
    assert [r["message"] for r in failed] == [f"Slack delivery failed: {caught.value}"]
    assert failed[0]["status"] == 500 and failed[0]["attempts"] == 2
    for secret in (slack_sink.url, "T000/B000/XXXX", "/services/"):
        assert secret not in out and secret not in err and secret not in str(caught.value)


def test_permanent_refusal_raises_at_once(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    slack_sink.respond(400, "invalid_blocks")
    with pytest.raises(SlackPermanentError):
        handler(sns_event(notification().body()), FakeContext())
    assert len(slack_sink.requests) == 1


def test_rotated_webhook_is_used_after_slack_refuses_the_cached_one(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    handler(sns_event(notification().body()), FakeContext())  # caches the first webhook
    rotated = slack_sink.url.replace("XXXX", "YYYY")
    secrets.put_secret_value(SecretId=SECRET, SecretString=rotated)
    slack_sink.respond(404, "no_service")
    assert handler(sns_event(notification().body(), ids="another-message-"), FakeContext())["sent"] == 1
    assert [r.path.rsplit("/", 1)[1] for r in slack_sink.requests] == ["XXXX", "XXXX", "YYYY"]


def test_no_time_left_raises_without_posting(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    with pytest.raises(SlackDeliveryError, match="no time left before the deadline"):
        handler(sns_event(notification().body()), FakeContext(remaining_ms=1_500))
    assert slack_sink.requests == []


def test_sns_body_with_extra_fields_round_trips(env, secrets, slack_sink):  # noqa: F811
    # the published body adds status/severity/subject/text: the notifier ignores them
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    message = notification()
    body = json.loads(message.body())
    assert {"status", "severity", "subject", "text"} <= body.keys()
    handler(sns_event(json.dumps(body)), FakeContext())
    assert slack_sink.payloads == [render(message)]


# --- at least once: what is left, and what is not ------------------------------------------------

TABLE = "hyperpod-guard-ledger"


def idempotency_item() -> dict[str, Any]:
    (item,) = boto3.client("dynamodb", region_name="us-west-2").scan(TableName=TABLE)["Items"]
    return item


@pytest.mark.parametrize(("code", "times"), [
    ("AccessDeniedException", 1),  # not retryable (e.g. a grant narrowed too far)
    ("ProvisionedThroughputExceededException", None),  # throttled past botocore's attempts
], ids=["not-retryable", "throttled-past-retries"])
def test_slack_accepted_but_recording_it_failed_returns_and_a_retry_posts_only_after_the_lock(
        env, secrets, slack_sink, output, backoff, code, times):  # noqa: F811
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    faults = Faults("dynamodb").fail("UpdateItem", code, times=times or attempts("dynamodb"))
    event = sns_event(notification().body())
    started_ms = time.time() * 1000

    # Slack accepted it, recording that failed: no exception, so Lambda does not retry it
    assert handler(event, FakeContext()) == {"sent": 1, "dropped": 0}
    assert len(slack_sink.requests) == 1 and faults.failed["UpdateItem"] == (times or attempts("dynamodb"))
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1, "SlackRecordFailed": 1}
    (error,) = [r for r in logs if r["level"] == "ERROR"]
    assert error["message"].startswith("Posted to Slack, but recording SNS message 95df01b4-ee98-5cb9-9903-4c221d41eb50 "
                                       "as delivered failed: Failed to update record state to success")
    assert code in error["message"] and error["message_id"] == "95df01b4-ee98-5cb9-9903-4c221d41eb50"

    # the record stays INPROGRESS, locked until the invocation's own timeout (its remaining time)
    item = idempotency_item()
    assert item["status"]["S"] == "INPROGRESS"
    locked_until = int(item["in_progress_expiration"]["N"])
    assert started_ms + 29_000 < locked_until <= time.time() * 1000 + 30_000

    # a redelivery meanwhile (SNS duplicate, redrive) posts nothing: it raises, for a later retry
    with pytest.raises(IdempotencyAlreadyInProgressError):
        handler(event, FakeContext())
    assert len(slack_sink.requests) == 1

    # the remaining at-least-once window: once the lock has lapsed, a redelivery posts it again
    boto3.client("dynamodb", region_name="us-west-2").update_item(
        TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET in_progress_expiration = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time() * 1000) - 1)}})
    assert handler(event, FakeContext())["sent"] == 1
    assert len(slack_sink.requests) == 2
    assert idempotency_item()["status"]["S"] == "COMPLETED"
    handler(event, FakeContext())  # and then it is remembered
    assert len(slack_sink.requests) == 2


def test_a_failure_after_slack_accepted_cannot_make_the_retry_post_again(env, secrets, slack_sink, monkeypatch):  # noqa: F811
    # reporting the delivery (here its metric) fails after Slack's 2xx: the success is already
    # recorded, so Lambda's retry is answered from the record instead of posting again
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    metrics = notifier().metrics
    add_metric = metrics.add_metric

    def failing(*, name: str, **kwargs: Any) -> None:
        if name == "SlackMessagesSent":
            raise RuntimeError("metrics broke")
        add_metric(name=name, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", failing)
    event = sns_event(notification().body())
    with pytest.raises(RuntimeError, match="metrics broke"):
        handler(event, FakeContext())
    monkeypatch.setattr(metrics, "add_metric", add_metric)
    assert handler(event, FakeContext())["sent"] == 1  # Lambda's retry
    assert len(slack_sink.requests) == 1
    assert idempotency_item()["status"]["S"] == "COMPLETED"


def test_default_timeout_waits_for_a_slow_slack(env, secrets, slack_sink, monkeypatch):  # noqa: F811
    # the old 5 s made a Slack answering in 6 s post twice; the notifier now waits 15 s
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    from hyperpod_guard.notify import slack

    timeouts: list[float] = []
    real_urlopen = urllib.request.urlopen

    def urlopen(request: urllib.request.Request, *, timeout: float) -> Any:
        timeouts.append(timeout)
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(slack.urllib.request, "urlopen", urlopen)
    monkeypatch.delenv("SLACK_TIMEOUT", raising=False)
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert timeouts == [15.0]


def test_slack_slower_than_the_old_timeout_is_posted_once(env, secrets, slack_sink, output, monkeypatch):  # noqa: F811
    # scaled down: the timeout 1 s stands for 15 s, Slack's 0.3 s for an answer in 6 s (margin for a busy machine)
    monkeypatch.setenv("SLACK_TIMEOUT", "1")
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    slack_sink.respond(200, "ok", delay=0.3)
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert len(slack_sink.requests) == 1
    _, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1}


def test_an_answer_after_the_timeout_is_retried_and_counted_as_a_possible_duplicate(
        env, secrets, slack_sink, output, monkeypatch):  # noqa: F811
    # Slack received the POST but answered after the timeout: retried (the alert is not lost),
    # and Slack may now show it twice: counted and logged, not hidden
    monkeypatch.setenv("SLACK_TIMEOUT", "0.2")
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    slack_sink.respond(200, "ok", delay=0.6)
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert len(slack_sink.requests) == 2
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1, "SlackPossibleDuplicate": 1}
    (warning,) = [r for r in logs if r["level"] == "WARNING"]
    assert warning["message"] == ("Slack webhook received attempt 1 but did not answer (timed out); "
                                  "if Slack posted it, the retry posts it again")
    assert [r["attempts"] for r in logs if r["message"] == "Sent to Slack"] == [2]


def test_slack_unreachable_is_retried_without_a_possible_duplicate(env, secrets, output):
    # nothing reached Slack (connection refused): retrying cannot post twice
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secrets.create_secret(Name=SECRET, SecretString=f"http://127.0.0.1:{port}/services/T000/B000/XXXX")
    with pytest.raises(SlackDeliveryError, match="after 2 attempts: ConnectionRefusedError"):
        handler(sns_event(notification().body()), FakeContext())
    _, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackDeliveryFailed": 1}
