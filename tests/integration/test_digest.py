"""The weekly digest end to end on moto (server mode): the simulated week (local/report_week.py) archived in the
bucket the stack names and its open episode a firing alert in the ledger -> the digest handler publishes ONE
message of kind `digest` with the week's figures and its attributes -> the Slack notifier posts it, rendered as
a digest, to the receivers of the rules' `routing.default` (the local Slack sink). An empty week says so; an
unreadable archive is a clear error, counted, and nothing is published. Counts and contents, never times."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest

from hyperpod_guard import clock, naming
from hyperpod_guard.archive import ArchiveWriter
from hyperpod_guard.ledger import AlertState
from hyperpod_guard.ledger_store import to_item
from hyperpod_guard.local import report_week
from hyperpod_guard.local.lambda_context import LambdaContext
from hyperpod_guard.local.provision import Resources, delivered, provision
from hyperpod_guard.notify.digest import Digest
from hyperpod_guard.notify.slack import render_digest
from tests.conftest import ACCOUNT, REGION
from tests.integration.test_cli_report import firing
from tests.integration.test_slack_app import slack  # noqa: F401 (fixture)
from tests.integration.test_slack_notifier import env, secrets  # noqa: F401 (fixtures)
from tests.slack_sink import SlackSink, running_sink, slack_sink  # noqa: F401

BUCKET = naming.archive_bucket_name(naming.DEFAULT_PREFIX, ACCOUNT, REGION)
DIGEST_CONTEXT = LambdaContext(function_name="hyperpod-guard-digest",
                               invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hyperpod-guard-digest")
NOTIFIER_CONTEXT = LambdaContext(function_name="hyperpod-guard-slack-notifier")


@pytest.fixture
def oncall() -> Iterator[SlackSink]:
    """A second webhook: the `ml-oncall` receiver's."""
    yield from running_sink()


def deploy(monkeypatch: pytest.MonkeyPatch, *, webhook: str = "", rules: dict[str, Any] | None = None,
           receivers: dict[str, str] | None = None, archive: bool = True) -> Resources:
    """The stack's resources on moto, the digest's and the notifier's environment, the clock at the week's end."""
    resources = provision(slack_webhook_url=webhook, rules=rules, receivers=receivers)
    for key, value in resources.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RULES_MAX_AGE", "0")
    monkeypatch.setenv("ARCHIVE_BUCKET", BUCKET)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    if archive:
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    clock.use(lambda: report_week.END)
    return resources


@pytest.fixture(autouse=True)
def wall_clock_after() -> Iterator[None]:
    yield
    clock.use(None)


def archive_the_week() -> None:
    """What a deployment holds after the week: the resolved episodes and the repairs in the archive, the one
    still open a firing alert in the ledger (and a pending one, which is no incident)."""
    writer = ArchiveWriter(boto3.client("s3", region_name=REGION), BUCKET)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for episode in report_week.week_episodes():
        if episode.resolved_at is None:
            dynamodb.put_item(TableName=naming.table_name(), Item=to_item(firing(episode)))
        else:
            writer.put_episode(episode)
    for fact in report_week.week_repairs():
        writer.put_repair(fact)
    pending = replace(firing(report_week.week_episodes()[0]), state=AlertState.PENDING, fired_at=None,
                      fingerprint="pending-one")
    dynamodb.put_item(TableName=naming.table_name(), Item=to_item(pending))


def run_digest() -> dict[str, Any]:
    from hyperpod_guard.handlers import digest

    return digest.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, DIGEST_CONTEXT)


def notify(message: dict[str, Any]) -> dict[str, int]:
    from hyperpod_guard.handlers import slack_notifier

    return slack_notifier.handler(message["sns_event"], NOTIFIER_CONTEXT)


def metrics(out: str) -> dict[str, float]:
    """The EMF metrics the digest printed, by name (service `digest`)."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if "_aws" in data and data.get("service") == "digest":
            for definition in data["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    value = data[metric["Name"]]
                    found[metric["Name"]] = found.get(metric["Name"], 0) + (sum(value) if isinstance(value, list)
                                                                             else value)
    return found


def test_the_digest_publishes_the_week_and_slack_shows_it(aws, monkeypatch, slack_sink, capsys):  # noqa: F811
    resources = deploy(monkeypatch, webhook=slack_sink.url)
    archive_the_week()
    result = run_digest()
    assert (result["incidents"], result["open"], result["clusters"], result["receivers"]) == (15, 1, 3, ["default"])
    assert metrics(capsys.readouterr().out) == {"DigestsPublished": 1}

    (message,) = delivered(resources)
    body = message["message"]
    assert body["kind"] == "digest"
    assert (body["totals"]["incidents"], body["totals"]["open"]) == (15, 1)  # the pending alert is no incident
    assert body["totals"]["node_hours_unhealthy"] == 19.2
    assert body["totals"]["resolved_by"] == {"hyperpod-repair": 9, "remediation": 1, "other": 4}
    # the busiest first (then the most open): speech-prod and rl-research had 3 each, speech-prod one still open
    assert [(c["cluster"], c["incidents"]) for c in body["clusters"]] == [
        ("llm-train-prod", 9), ("speech-prod", 3), ("rl-research", 3)]
    assert body["top_findings"][0] == {"reason": "NvidiaGpuXidError", "count": 6,
                                       "clusters": ["llm-train-prod", "speech-prod", "rl-research"]}
    assert [(o["node"], o["incidents"]) for o in body["repeat_offenders"]] == [("i-0a1", 5)]
    assert message["attributes"] == {"kind": "digest", "receivers": '["default"]', "account": ACCOUNT}
    assert message["subject"].startswith("[DIGEST] hyperpod-guard Weekly digest 2026-11-16 to 2026-11-23")

    assert notify(message) == {"sent": 1, "dropped": 0}
    assert slack_sink.payloads == [render_digest(Digest.model_validate(body))]
    blocks = slack_sink.payloads[0]["blocks"]
    assert blocks[0]["text"]["text"] == "📊 Weekly digest · 2026-11-16 to 2026-11-23"
    assert not [b for b in blocks if b["type"] == "actions"]  # a digest, not an alert: no buttons
    assert notify(message) == {"sent": 1, "dropped": 0} and len(slack_sink.payloads) == 1  # redelivered: once


def test_the_digest_goes_where_the_rules_default_route_sends(aws, monkeypatch, slack_sink, oncall):  # noqa: F811
    rules = {"version": 1, "routing": {"default": ["ml-oncall"],
                                       "routes": [{"match": {"severity": ["critical"]}, "receivers": ["default"]}]}}
    resources = deploy(monkeypatch, webhook=slack_sink.url, rules=rules, receivers={"ml-oncall": oncall.url})
    archive_the_week()
    run_digest()
    (message,) = delivered(resources)
    assert message["attributes"]["receivers"] == '["ml-oncall"]'
    assert notify(message) == {"sent": 1, "dropped": 0}
    assert (len(slack_sink.payloads), len(oncall.payloads)) == (0, 1)  # routes match alerts, not the digest


def test_an_empty_week_says_so(aws, monkeypatch, slack_sink):  # noqa: F811
    resources = deploy(monkeypatch, webhook=slack_sink.url)
    result = run_digest()
    assert (result["incidents"], result["open"], result["clusters"]) == (0, 0, 0)
    (message,) = delivered(resources)
    assert message["message"]["kind"] == "digest" and message["message"]["clusters"] == []
    assert message["subject"] == "[DIGEST] hyperpod-guard Weekly digest 2026-11-16 to 2026-11-23: no incidents, " \
                                 "nothing open"
    notify(message)
    (payload,) = slack_sink.payloads
    assert "No incidents this period" in json.dumps(payload, ensure_ascii=False)


def test_an_unreadable_archive_is_a_clear_error_counted(aws, monkeypatch, capsys):
    from hyperpod_guard.handlers.digest import DigestFailed

    resources = deploy(monkeypatch, archive=False)  # the bucket does not exist
    with pytest.raises(DigestFailed, match=rf"the episode archive \(s3://{BUCKET}\) could not be read: NoSuchBucket"):
        run_digest()
    assert metrics(capsys.readouterr().out) == {"DigestFailed": 1}
    assert delivered(resources) == []  # nothing published from half the facts


def test_app_mode_posts_the_digest_as_a_plain_message(slack):  # noqa: F811
    """Slack app mode: one chat.postMessage per receiver, no thread, no buttons, nothing remembered but the
    delivery (a redelivery posts nothing)."""
    from tests.integration.test_slack_app import DEFAULT, methods
    from tests.integration.test_slack_notifier import FakeContext, handler, sns_event
    from tests.unit.test_digest import make, week

    digest = make(week())
    body = json.loads(digest.sns_message())["default"]
    for _ in range(2):
        assert handler(sns_event(body, ids="digest-"), FakeContext()) == {"sent": 1, "dropped": 0}
    assert methods(slack) == ["chat.postMessage"]
    (posted,) = slack.messages(DEFAULT)
    assert posted.thread_ts is None and posted.blocks == render_digest(digest)["blocks"]
    assert not [b for b in posted.blocks if b["type"] == "actions"]
    assert not [item for item in boto3.client("dynamodb", region_name=REGION).scan(TableName=naming.table_name())[
        "Items"] if item["pk"]["S"] != "IDEMPOTENCY"]  # no thread recorded
