"""notify/delivery.py, beside the renderer since the handler became wiring: the idempotency records keep
the key they had when the delivery code lived in handlers/slack_notifier.py, so a message delivered
before a deploy that moved that code is still answered from its record when it comes again."""

from __future__ import annotations

import hashlib
import json

import boto3

from hyperpod_guard.ledger_store import TTL_ATTRIBUTE
from hyperpod_guard.notify import delivery
from tests.integration.test_slack_notifier import (  # noqa: F401 (env, secrets: fixtures)
    SECRET,
    TABLE,
    FakeContext,
    env,
    handler,
    notification,
    notifier,
    secrets,
    sns_event,
)
from tests.slack_sink import slack_sink  # noqa: F401

MESSAGE_ID = "95df01b4-ee98-5cb9-9903-4c221d41eb50"


def _key(function: str, message_id: str) -> str:
    """Powertools' key for `message_id` (md5 of its JSON) after `function`.<the decorated function's module and name>,
    as handlers/slack_notifier.py's `_post` wrote it."""
    digest = hashlib.md5(json.dumps(message_id, sort_keys=True).encode()).hexdigest()  # noqa: S324 (Powertools' own)
    return f"{function}.hyperpod_guard.handlers.slack_notifier._post#{digest}"


def _items() -> list[dict]:
    return boto3.client("dynamodb", region_name="us-west-2").scan(TableName=TABLE)["Items"]


def test_the_record_key_is_the_one_the_handler_wrote(env, secrets, slack_sink):  # noqa: F811
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    (item,) = _items()
    assert (item["pk"]["S"], item["sk"]["S"]) == ("IDEMPOTENCY", _key("test-func", MESSAGE_ID))


def test_a_record_written_before_the_move_answers_a_redelivery(env, secrets, slack_sink, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "hyperpod-guard-slack-notifier")
    notifier().slack.reset()  # the key is fixed when the idempotency store is built
    secrets.create_secret(Name=SECRET, SecretString=slack_sink.url)
    # a COMPLETED record as the old handler left it
    boto3.client("dynamodb", region_name="us-west-2").put_item(TableName=TABLE, Item={
        "pk": {"S": "IDEMPOTENCY"}, "sk": {"S": _key("hyperpod-guard-slack-notifier", MESSAGE_ID)},
        TTL_ATTRIBUTE: {"N": "9999999999"}, "status": {"S": "COMPLETED"}, "data": {"S": json.dumps({"attempts": 1})},
    })
    assert handler(sns_event(notification().body()), FakeContext())["sent"] == 1
    assert slack_sink.requests == []  # answered from the record: not posted again
    assert len(_items()) == 1


def test_the_key_does_not_follow_the_code() -> None:
    assert delivery.RECORD_KEY == "hyperpod_guard.handlers.slack_notifier._post"
    assert delivery.SlackDelivery._post.__module__ != "hyperpod_guard.handlers.slack_notifier"  # it did move
