"""The Slack notifier delivers to the routed receivers: one SNS message, each receiver's webhook (its own
secret, on moto) gets exactly the items routed to it, the mention only where its route adds one; each
receiver's post is remembered on its own, so a redelivery posts nothing and a retry after one receiver
failed posts only to that one. Two local Slack sinks stand in for two channels."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import boto3
import pytest

from hyperpod_guard import naming
from hyperpod_guard.local.provision import Resources, delivered, provision
from hyperpod_guard.local.slack_sink import SlackSink
from hyperpod_guard.notify import delivery
from hyperpod_guard.notify.delivery import SlackNotConfiguredError
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem, ReceiverRef
from hyperpod_guard.notify.slack import SlackDeliveryError
from tests.integration.test_cli_rules import aws_env
from tests.integration.test_slack_notifier import FakeContext, Sleeps, handler, output, records, sns_event  # noqa: F401
from tests.slack_sink import running_sink, slack_sink  # noqa: F401

ONCALL = "ml-oncall"
GROUP = "<!subteam^S0123ABCD>"
MESSAGE_ID = "95df01b4-ee98-5cb9-9903-4c221d41eb50"  # sns_event's first record


oncall_sink = pytest.fixture(running_sink, name="oncall_sink")  # the ml-oncall receiver's webhook


@pytest.fixture
def deployed(aws: str, monkeypatch: pytest.MonkeyPatch) -> Resources:
    """What the stack creates (the ledger table, the default webhook secret) and the notifier's environment;
    the receivers' secrets are each test's."""
    resources = provision()
    for key, value in resources.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "2")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setattr(delivery, "sleep", Sleeps())
    return resources


def put_secret(name: str, value: str) -> None:
    secrets = boto3.client("secretsmanager")
    try:
        secrets.put_secret_value(SecretId=name, SecretString=value)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=name, SecretString=value)


def webhooks(resources: Resources, default: str | None, oncall: str | None) -> None:
    """Each receiver's webhook in its secret (None: the secret is not created)."""
    if default is not None:
        put_secret(resources.slack_secret, default)
    if oncall is not None:
        put_secret(naming.slack_receiver_secret_name(naming.DEFAULT_PREFIX, ONCALL), oncall)


def finding(summary: str, severity: str = "critical") -> FindingPayload:
    return FindingPayload(policy="degraded-group", severity=severity, cluster="ml-prod", instance_group=summary,
                          fingerprint=f"{summary:0>20}", condition="status-failed", summary=summary)


def routed_message() -> Notification:
    """Three items: `both` to ml-oncall (with its route's mention) and to default, `default-only`,
    `oncall-only` (a route without a mention), and a resolved one to ml-oncall (never mentioned)."""
    both = (ReceiverRef(name=ONCALL, mention=GROUP, route=0), ReceiverRef(name="default", route=1))
    return Notification(cluster="ml-prod", account="123456789012", region="us-west-2", items=(
        NotificationItem(reason="first", finding=finding("both"), receivers=both),
        NotificationItem(reason="first", finding=finding("default-only", "warning")),
        NotificationItem(reason="first", finding=finding("oncall-only", "warning"),
                         receivers=(ReceiverRef(name=ONCALL, route=2),)),
        NotificationItem(reason="resolved", finding=finding("oncall-resolved"),
                         receivers=(ReceiverRef(name=ONCALL, mention=GROUP, route=0),)),
    ))


def summaries(sink: SlackSink) -> list[list[str]]:
    """Per request: the first line of each section after the header's (mention line, or item summaries)."""
    return [[block["text"]["text"].split("\n")[1].removeprefix("_was:_ ")
             if block["text"]["text"].startswith(("🔴", "🟠", "🔵", "✅")) else block["text"]["text"]
             for block in payload["blocks"] if block["type"] == "section"]
            for payload in sink.payloads]


def _key(message_id: str) -> str:
    digest = hashlib.md5(json.dumps(message_id, sort_keys=True).encode()).hexdigest()  # noqa: S324 (Powertools' own)
    return f"test-func.hyperpod_guard.handlers.slack_notifier._post#{digest}"


def idempotency_keys(resources: Resources) -> set[str]:
    items = boto3.client("dynamodb").scan(TableName=resources.table_name)["Items"]
    return {item["sk"]["S"] for item in items if item["pk"]["S"] == "IDEMPOTENCY"}


def test_each_receiver_gets_exactly_its_items_and_the_mention_only_where_routed(
        deployed, slack_sink, oncall_sink, output):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall_sink.url)
    assert handler(sns_event(routed_message().body()), FakeContext()) == {"sent": 1, "dropped": 0}

    assert summaries(slack_sink) == [["both", "default-only"]]
    assert summaries(oncall_sink) == [[f"{GROUP} 1 critical alert", "both", "oncall-only", "oncall-resolved"]]
    assert GROUP not in json.dumps(slack_sink.payloads)
    assert slack_sink.payloads[0]["blocks"][0]["text"]["text"] == "🔴 ml-prod: 2 firing"
    assert oncall_sink.payloads[0]["blocks"][0]["text"]["text"] == "🔴 ml-prod: 2 firing, 1 resolved"

    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 2}
    sent = sorted((r["receiver"], r["items"]) for r in logs if r["message"] == "Sent to Slack")
    assert sent == [("default", 2), (ONCALL, 3)]
    # default keeps the bare message id as its key (records from before receivers still match)
    assert idempotency_keys(deployed) == {_key(MESSAGE_ID), _key(f"{MESSAGE_ID}#{ONCALL}")}


def test_a_redelivered_message_posts_nothing_again(deployed, slack_sink, oncall_sink, output):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall_sink.url)
    event = sns_event(routed_message().body())
    handler(event, FakeContext())
    assert handler(event, FakeContext()) == {"sent": 1, "dropped": 0}  # SNS at-least-once
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == (1, 1)
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 2, "SlackMessagesSent": 2, "SlackDuplicatesSkipped": 2}
    skipped = [r["receiver"] for r in logs if r["message"].startswith("SNS message already delivered")]
    assert sorted(skipped) == ["default", ONCALL]


def test_one_receiver_down_does_not_stop_the_other_and_the_retry_posts_only_to_it(
        deployed, slack_sink, oncall_sink, output):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall_sink.url)
    oncall_sink.respond(500, "internal_error", times=2)  # SLACK_MAX_ATTEMPTS
    event = sns_event(routed_message().body())
    with pytest.raises(SlackDeliveryError, match="after 2 attempts: HTTP 500 internal_error"):
        handler(event, FakeContext())
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == (1, 2)
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1, "SlackDeliveryFailed": 1}
    errors = [r for r in logs if r["level"] == "ERROR"]
    assert [r.get("receiver") for r in errors] == [ONCALL, None]
    assert errors[1]["message"] == ("Slack delivery failed for 1 of 2 receivers (ml-oncall); raising so that Lambda "
                                    "retries them (the others are not posted again)")
    assert errors[1]["receivers"] == [ONCALL]

    assert handler(event, FakeContext())["sent"] == 1  # Lambda's retry
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == (1, 3)
    assert summaries(oncall_sink)[-1][0] == f"{GROUP} 1 critical alert"
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1, "SlackDuplicatesSkipped": 1}
    assert [r["receiver"] for r in logs if r["message"] == "Sent to Slack"] == [ONCALL]


@pytest.mark.parametrize("oncall", [" ", "REPLACE_WITH_SLACK_WEBHOOK_URL", None],
                         ids=["empty", "placeholder", "missing"])
def test_a_receiver_without_a_webhook_is_not_configured_and_the_others_still_get_theirs(
        deployed, slack_sink, oncall_sink, output, oncall):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall)
    event = sns_event(routed_message().body())
    with pytest.raises(SlackNotConfiguredError):
        handler(event, FakeContext())
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == (1, 0)
    logs, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackMessagesSent": 1, "SlackNotConfigured": 1}
    (error, _) = [r for r in logs if r["level"] == "ERROR"]
    secret = naming.slack_receiver_secret_name(naming.DEFAULT_PREFIX, ONCALL)
    assert (error["receiver"], error["secret"]) == (ONCALL, secret)
    assert error["message"].startswith(f"Slack webhook secret {secret} ")

    webhooks(deployed, slack_sink.url, oncall_sink.url)  # someone fills it in: the retry posts there only
    assert handler(event, FakeContext())["sent"] == 1
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == (1, 1)


def test_every_receiver_failing_raises_them_all(deployed, slack_sink, oncall_sink):  # noqa: F811
    webhooks(deployed, slack_sink.url, " ")
    slack_sink.respond(500, "internal_error", times=2)
    with pytest.raises(ExceptionGroup) as caught:
        handler(sns_event(routed_message().body()), FakeContext())
    assert str(caught.value).startswith("Slack delivery failed for receivers default, ml-oncall")
    assert [type(e) for e in caught.value.exceptions] == [SlackDeliveryError, SlackNotConfiguredError]
    for secret in (slack_sink.url, "T000/B000/XXXX"):
        assert secret not in str(caught.value) and all(secret not in str(e) for e in caught.value.exceptions)


def test_unrouted_items_go_to_the_default_receiver_only(deployed, slack_sink, oncall_sink):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall_sink.url)
    message = Notification(cluster="ml-prod", items=(NotificationItem(reason="first", finding=finding("a")),))
    assert handler(sns_event(message.body()), FakeContext())["sent"] == 1
    assert summaries(slack_sink) == [["a"]] and oncall_sink.requests == []


# --- test notifications: `hyperpod-guard test-alert --receiver NAME` ---------------------------------------


@pytest.mark.parametrize(("receiver", "expected"), [(ONCALL, (0, 1)), (None, (1, 0))])
def test_a_test_alert_reaches_the_receiver_it_names_only(aws, deployed, slack_sink, oncall_sink, receiver, expected):  # noqa: F811
    webhooks(deployed, slack_sink.url, oncall_sink.url)
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "test-alert", "--severity", "critical",
                             *(["--receiver", receiver] if receiver else [])],
                            capture_output=True, text=True, timeout=120, env=aws_env(aws))
    assert result.returncode == 0, result.stderr
    (message,) = delivered(deployed)
    assert handler(sns_event(json.dumps(message["message"])), FakeContext())["sent"] == 1
    assert (len(slack_sink.requests), len(oncall_sink.requests)) == expected
    (payload,) = slack_sink.payloads + oncall_sink.payloads
    assert payload["blocks"][0]["text"]["text"].startswith("🧪 TEST ")


def test_a_test_notification_for_a_name_that_is_no_receiver_reads_no_secret(deployed, slack_sink, output):  # noqa: F811
    webhooks(deployed, slack_sink.url, None)
    message = Notification(cluster="hyperpod-guard", test=True, receiver="../default",
                           items=(NotificationItem(reason="first", finding=finding("t")),))
    with pytest.raises(SlackNotConfiguredError, match=r"Slack receiver '\.\./default' is not a receiver name"):
        handler(sns_event(message.body()), FakeContext())
    assert slack_sink.requests == []
    _, metrics = records(output.readouterr().out)
    assert metrics == {"NotificationsReceived": 1, "SlackNotConfigured": 1}


@pytest.mark.parametrize("name", ["../default", "ML-oncall", "ml_oncall", " ", ""])
def test_test_alert_refuses_a_name_that_is_no_receiver(aws, name):
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "test-alert", "--receiver", name],
                            capture_output=True, text=True, timeout=120, env=aws_env(aws))
    assert result.returncode == 2
    assert result.stderr.startswith("error: --receiver")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
