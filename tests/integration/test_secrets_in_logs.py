"""The Slack webhook URL is a secret (whoever has it can post to the channel): a full run of the
three functions, on the happy path and every Slack failure path, must not write it anywhere
but the request to Slack: not in a log line, a metric, an exception, an SNS message or the table.

Our own loggers run at DEBUG here, every other logger (botocore, urllib3) at INFO: botocore
at DEBUG logs response bodies, a GetSecretValue answer included, so Lambda's application log
level must never be DEBUG for the notifier (docs/reliability.md says so).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator

import boto3
import pytest

from hyperpod_guard.local.provision import delivered
from tests.lambda_output import lambda_output
from tests.runtime_fixtures import LambdaContext, scenario, serve, stack  # noqa: F401
from tests.slack_sink import slack_sink  # noqa: F401

TOKEN = "tok3nZ9s3cr3tXYZ"  # the webhook's secret path part; distinctive, so a leak is found
TEAM, CHANNEL = "T0SECRET1", "B0SECRET2"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger captured; the functions' own (Powertools) ones at DEBUG."""
    ours = [logger for logger in logging.root.manager.loggerDict.values()
            if isinstance(logger, logging.Logger) and any(
                type(h.formatter).__module__.startswith("aws_lambda_powertools") for h in logger.handlers)]
    levels = [logger.level for logger in ours]
    caplog.set_level(logging.INFO)
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for logger, level in zip(ours, levels, strict=True):
            logger.setLevel(level)


def test_the_webhook_url_appears_in_no_log_metric_error_message_or_item(stack, slack_sink, debug_logs, monkeypatch):  # noqa: F811
    from hyperpod_guard.handlers import evaluator, slack_notifier, sweep
    from hyperpod_guard.notify import delivery

    from aws_lambda_powertools.utilities import parameters

    monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(delivery, "sleep", lambda seconds: None)
    host = slack_sink.url.split("/services/")[0]
    url = f"{host}/services/{TEAM}/{CHANNEL}/{TOKEN}"
    secrets = boto3.client("secretsmanager")
    secrets.put_secret_value(SecretId=stack.slack_secret, SecretString=json.dumps({"url": url}))
    errors: list[str] = []
    notifier = LambdaContext(function_name="hyperpod-guard-slack-notifier")

    def notify(message, message_id: str | None = None) -> None:
        message = copy.deepcopy(message)
        if message_id:
            message["sns_event"]["Records"][0]["Sns"]["MessageId"] = message_id
        try:
            slack_notifier.handler(message["sns_event"], notifier)
        except Exception as exc:  # noqa: BLE001 - what Lambda would log as the error
            errors.append(f"{type(exc).__name__}: {exc!r} {exc}")

    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot)
    with lambda_output() as output:
        evaluator.handler(event, LambdaContext())
        (message,) = delivered(stack)
        notify(message)  # delivered (and the URL cached)
        notify(message)  # SNS's duplicate: answered from the idempotency record
        slack_sink.respond(500, "internal_error", times=2)
        notify(message, "retry-500")  # Slack down: both attempts fail, raised
        slack_sink.respond(400, "invalid_blocks")
        notify(message, "retry-400")  # refused for good, raised
        secrets.put_secret_value(SecretId=stack.slack_secret, SecretString=f"{url}-rotated")
        slack_sink.respond(404, "no_service")
        notify(message, "retry-404")  # the cached webhook is gone, the rotated one delivers
        secrets.put_secret_value(SecretId=stack.slack_secret, SecretString="https://")  # unusable
        parameters.clear_caches()
        notify(message, "not-configured")  # raised: the secret holds no URL
        sweep.handler({}, LambdaContext(function_name="hyperpod-guard-sweep"))

    paths = [r.path for r in slack_sink.requests]
    assert paths.count(f"/services/{TEAM}/{CHANNEL}/{TOKEN}") == 5 and paths[-1].endswith("-rotated")  # used...
    assert [e.split(":")[0] for e in errors] == ["SlackDeliveryError", "SlackPermanentError", "SlackNotConfiguredError"]
    logged = output.getvalue() + debug_logs.text
    for line in ("Sent to Slack", "Slack delivery failed", "the secret holds a new webhook", "is empty"):
        assert line in logged  # the paths that could leak it were all taken, and captured
    items = boto3.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    assert any(i["pk"]["S"] == "IDEMPOTENCY" for i in items)  # the notifier's records are in there too
    written = "\n".join([logged, *errors, json.dumps(message["message"]), json.dumps(items)])
    for secret in (url, TOKEN, TEAM, CHANNEL):  # ...and written nowhere else
        assert secret not in written
