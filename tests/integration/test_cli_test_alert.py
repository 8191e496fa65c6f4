"""`hyperpod-guard test-alert`, run as a user runs it (a subprocess) against moto: one message,
marked as a test, through the deployed alerts topic; the ledger is not touched.

provision() creates what the stack creates (the ledger table, `<prefix>-alerts` with an SQS
subscription standing in for the subscribers); delivered() reads back what SNS delivered.
"""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest

from hyperpod_guard.local.provision import delivered, provision
from hyperpod_guard.notify.message import Notification
from hyperpod_guard.notify.slack import render
from tests.integration.test_cli_rules import aws_env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "test-alert", *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def env(aws) -> dict[str, str]:
    return aws_env(aws)


def ledger_items(table: str) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_one_test_message_reaches_the_topic_and_the_ledger_is_untouched(env):
    resources = provision()
    result = run(env, "--severity", "critical", "--receiver", "oncall-llm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("published test notification ")
    assert resources.topic_arn in result.stdout

    messages = delivered(resources)
    assert len(messages) == 1
    message = messages[0]
    assert message["subject"].startswith("[TEST] [CRITICAL] ")
    assert message["attributes"]["test"] == "true"
    assert message["attributes"]["receiver"] == "oncall-llm"
    assert message["attributes"]["severity"] == "critical"
    assert message["message"]["test"] is True
    assert message["message"]["text"].startswith("TEST notification")
    # what the Slack notifier makes of it says TEST
    notification = Notification.model_validate(message["message"])
    payload = render(notification)
    assert "TEST" in payload["blocks"][0]["text"]["text"] and payload["text"].startswith("TEST ")
    assert ledger_items(resources.table_name) == []


def test_the_topic_arn_may_be_given(env):
    resources = provision()
    result = run(env, "--topic-arn", resources.topic_arn)
    assert result.returncode == 0, result.stderr
    [message] = delivered(resources)
    assert message["attributes"]["severity"] == "warning" and "receiver" not in message["attributes"]


def test_the_topic_is_found_by_the_stacks_prefix(env):
    default, other = provision(), provision(prefix="hpg-staging")
    result = run(env, "--prefix", "hpg-staging")
    assert result.returncode == 0, result.stderr
    assert other.topic_arn in result.stdout
    assert len(delivered(other)) == 1 and delivered(default) == []


def test_no_topic_is_one_error_line(env):
    result = run(env, "--prefix", "nothing-deployed")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no SNS topic named nothing-deployed-alerts in us-west-2")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_topic_arn_and_prefix_exclude_each_other(env):
    result = run(env, "--topic-arn", "arn:aws:sns:us-west-2:123456789012:x", "--prefix", "p")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
