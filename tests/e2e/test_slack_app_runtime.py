"""Slack app mode (issue 20) end to end under the real Lambda runtime client, as
tests/e2e/test_lambda_runtime.py runs the other functions: `python -m awslambdaric <handler>` from the
asset directory CDK packages, with the handler strings and environment of the stack synthesised with
`-c slackMode=app -c slackChannels=default=C0E2E`, against moto and the local Slack Web API stand-in
(hyperpod_guard/local/slack_api_standin.py; SLACK_API_URL is the only variable set beside the template's).

The flow, one process ("container") per function as Lambda runs them: the evaluator publishes an alert;
the notifier, fed the SNS event, posts its parent message with buttons; a click on Acknowledge, signed as
Slack signs it (hyperpod_guard/local/slack_clicks.py), reaches the interactivity endpoint as a Function URL
event and is queued; the actions worker, fed the queued message as Lambda's SQS event source feeds it,
acknowledges the alert in the ledger, updates the parent and replies in its thread.

What this adds to tests/integration/test_chatops.py (the same flow in-process): the asset carries the
chatops package and slack_sdk reaches the runtime from the bundled dependencies; the new entry points and
their environment in the template are enough (secrets by name, queue URLs by Ref); the secrets stay out of
the functions' output.
"""

# the fixtures imported below (test_lambda_runtime's) are named again as the tests' parameters: pytest's way
# ruff: noqa: F811
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.requirements import Requirement

from hyperpod_guard.chatops.signature import sign
from hyperpod_guard.ledger_store import LedgerStore
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.local.slack_api_standin import TOKEN, Message, SlackApiStandIn
from hyperpod_guard.local.slack_clicks import block_actions, function_url_event
from hyperpod_guard.notify.buttons import ActionId, ButtonValue
from infra.bundling import LAMBDA_REQUIREMENTS
from tests.conftest import REGION
from tests.e2e.test_lambda_runtime import (  # noqa: F401 (fixtures)
    PREFIX,
    LambdaProcess,
    Lambdas,
    Synthesised,
    _evaluate,
    _refs,
    asset,
    deps,
    lambdas,
    node_scenario,
    seeded,
    synthesise,
)
from tests.runtime_fixtures import stack  # noqa: F401

CHANNEL = "C0E2E"
#: what `cdk deploy -c slackMode=app -c slackChannels=default=C0E2E` passes
APP_CONTEXT = {"slackMode": "app", "slackChannels": f"default={CHANNEL}"}
SIGNING_SECRET = "e2e0signing0secret0f0the0app0000"  # noqa: S105 - the test's own
TEAM, USER, USER_NAME = "T0E2E", "U0E2ERESP", "erin"
WHO = f"{USER_NAME} ({USER})"
ACTIONS_QUEUE = f"{PREFIX}-slack-actions"
BUTTONS = {ActionId.ACKNOWLEDGE, ActionId.SILENCE_1H, ActionId.SILENCE_4H, ActionId.SILENCE_24H}


@pytest.fixture(scope="module")
def synthesised() -> Synthesised:
    """This module's stack: app mode (overrides test_lambda_runtime's, which `lambdas` asks for by name)."""
    return synthesise(**APP_CONTEXT)


@dataclass
class AppMode:
    slack: SlackApiStandIn
    actions_url: str
    actions_arn: str


@pytest.fixture
def app_mode(seeded: Resources) -> Iterator[AppMode]:
    """What the app-mode template references, in moto under its names (so that _refs resolves them), with
    the app's values put in as the operator puts them after deploying; and the Slack stand-in."""
    secrets, sqs = boto3.client("secretsmanager"), boto3.client("sqs")
    secrets.create_secret(Name=f"{PREFIX}/slack-bot-token", SecretString=TOKEN)
    secrets.create_secret(Name=f"{PREFIX}/slack-signing-secret", SecretString=SIGNING_SECRET)
    url = sqs.create_queue(QueueName=ACTIONS_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with SlackApiStandIn() as slack:
        yield AppMode(slack, url, arn)


# --- the steps ------------------------------------------------------------------------------------


def first_alert(lambdas: Lambdas, stack: Resources, app: AppMode) -> tuple[LambdaProcess, LambdaProcess,
                                                                           dict[str, Any], Message]:
    """The evaluator fires the node alert; the notifier (app mode) posts its parent message.
    Returns (evaluator, notifier, the SNS message, the parent message)."""
    evaluator = lambdas.start("evaluator")
    assert evaluator.invoke(node_scenario())[0] == "response", evaluator.diagnostics()
    (message,) = delivered(stack)
    notifier = lambdas.start("slack-notifier", SLACK_API_URL=app.slack.url)
    assert notifier.invoke(message["sns_event"]) == ("response", {"sent": 1, "dropped": 0}), notifier.diagnostics()
    (parent,) = app.slack.messages(CHANNEL)
    return evaluator, notifier, message, parent


def button(message: Message, action_id: ActionId) -> str:
    (value,) = [e["value"] for block in message.blocks if block.get("type") == "actions"
                for e in block.get("elements", ()) if e.get("action_id") == action_id]
    return value


def click(message: Message, action_id: ActionId = ActionId.ACKNOWLEDGE) -> tuple[bytes, int]:
    """The body of a click on `message`'s button as Slack posts it, and the request's timestamp (now: the
    endpoint checks it against its own clock)."""
    now = time.time()
    body = block_actions(action_id=action_id, value=button(message, action_id), user=USER, user_name=USER_NAME,
                         team=TEAM, channel=CHANNEL, message_ts=message.ts, message_text=message.text,
                         action_ts=f"{now:.6f}", trigger_id="1.42.e2e")
    return body, int(now)


def queued(app: AppMode) -> list[dict[str, Any]]:
    """What the actions queue holds, as Lambda's SQS event source hands it to the function (one event)."""
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=app.actions_url, MaxNumberOfMessages=10).get("Messages", [])
    return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
             "eventSource": "aws:sqs", "eventSourceARN": app.actions_arn, "awsRegion": REGION} for m in messages]


def calls(slack: SlackApiStandIn) -> Counter[str]:
    """How many times each Web API method was called."""
    return Counter(call.method for call in slack.calls)


def counted(process: LambdaProcess, metric: str) -> float:
    """The sum of `metric` over the process's EMF lines (its metrics as CloudWatch would count them)."""
    return sum(sum(line[metric]) if isinstance(line[metric], list) else line[metric]
               for line in process.logs() if "_aws" in line and metric in line)


def assert_from_asset(process: LambdaProcess, asset: Path, deps: Path, *, slack_sdk: bool) -> None:
    """Every hyperpod_guard module the process loaded came from the asset, its handler included; slack_sdk
    (when it posts to Slack) from the bundled dependencies."""
    loaded = process.loaded_files()
    ours = [f for f in loaded if "/hyperpod_guard/" in f]
    handler = process.api.function_name.removeprefix(f"{PREFIX}-").replace("-", "_")
    assert str(asset / "hyperpod_guard" / "handlers" / f"{handler}.py") in ours, process.diagnostics()
    assert all(Path(f).is_relative_to(asset) for f in ours), [f for f in ours if not Path(f).is_relative_to(asset)]
    sdk = [f for f in loaded if "/slack_sdk/" in f]
    if slack_sdk:
        assert sdk and all(Path(f).is_relative_to(deps) for f in sdk), sdk or process.diagnostics()


def assert_no_secrets(*processes: LambdaProcess) -> None:
    for process in processes:
        output = process.stdout.read_text(errors="replace") + process.stderr.read_text(errors="replace")
        assert TOKEN not in output and SIGNING_SECRET not in output, f"a secret in {process.name}'s output"
        assert not any(TOKEN in json.dumps(payload) for _, _, payload in process.api.posts)


# --- the tests ------------------------------------------------------------------------------------


def test_app_mode_entry_points_and_environment_come_from_the_stack(synthesised: Synthesised,
                                                                    app_mode: AppMode) -> None:
    functions = synthesised.functions
    assert functions["slack-interactivity"].handler == "hyperpod_guard.handlers.slack_interactivity.handler"
    assert functions["slack-actions"].handler == "hyperpod_guard.handlers.slack_actions.handler"
    refs = _refs(synthesised.template)
    env = {name: {k: _evaluate(v, refs) for k, v in functions[name].environment.items()}
           for name in ("slack-notifier", "slack-interactivity", "slack-actions")}
    assert env["slack-interactivity"]["SLACK_ACTIONS_QUEUE_URL"] == app_mode.actions_url
    assert env["slack-interactivity"]["SLACK_SIGNING_SECRET_SECRET"] == f"{PREFIX}/slack-signing-secret"
    for name in ("slack-notifier", "slack-actions"):
        assert env[name]["SLACK_MODE"] == "app", name
        assert env[name]["SLACK_BOT_TOKEN_SECRET"] == f"{PREFIX}/slack-bot-token", name
        assert json.loads(env[name]["SLACK_CHANNELS"]) == {"default": CHANNEL}, name
    assert env["slack-actions"]["WORK_QUEUE_URL"].endswith(f"/{PREFIX}-work")
    assert "SLACK_API_URL" not in env["slack-notifier"]  # Slack's own by default; the tests point it at the stand-in


def test_the_notifier_in_app_mode_posts_one_parent_with_buttons(lambdas: Lambdas, stack: Resources,
                                                                 app_mode: AppMode, asset: Path,
                                                                 deps: Path) -> None:
    evaluator, notifier, message, parent = first_alert(lambdas, stack, app_mode)
    slack = app_mode.slack
    (post,) = slack.calls_of("chat.postMessage")
    assert post.ok, post  # the stand-in answers invalid_auth to any other bearer token than the bot's
    assert (post.args["channel"], parent.thread_ts) == (CHANNEL, None)
    assert set(parent.action_ids) >= BUTTONS, parent.action_ids
    (item,) = message["message"]["items"]
    value = ButtonValue.decode(button(parent, ActionId.ACKNOWLEDGE))
    assert (value.cluster, value.node) == ("pretrain-east", item["finding"]["node"])
    assert "pretrain-east" in parent.text + " ".join(parent.block_texts)

    # SNS delivers the same message again: nothing more is posted or updated
    assert notifier.invoke(message["sns_event"]) == ("response", {"sent": 1, "dropped": 0}), notifier.diagnostics()
    assert calls(slack) == {"chat.postMessage": 1}, slack.calls
    assert len(slack.messages(CHANNEL)) == 1 and slack.replies(CHANNEL, parent.ts) == []
    assert notifier.alive() and notifier.api.delivered == notifier.request_ids
    assert_from_asset(evaluator, asset, deps, slack_sdk=False)
    assert_from_asset(notifier, asset, deps, slack_sdk=True)
    assert_no_secrets(notifier)


def test_the_endpoint_queues_a_signed_click_and_refuses_others(lambdas: Lambdas, stack: Resources,
                                                                app_mode: AppMode, asset: Path,
                                                                deps: Path) -> None:
    _, _, _, parent = first_alert(lambdas, stack, app_mode)
    endpoint = lambdas.start("slack-interactivity")

    body, timestamp = click(parent)
    kind, answer = endpoint.invoke(function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=timestamp))
    assert (kind, answer["statusCode"], answer["body"]) == ("response", 200, ""), endpoint.diagnostics()
    (record,) = queued(app_mode)
    queued_click = json.loads(record["body"])
    assert (queued_click["user_id"], queued_click["action"], queued_click["message_ts"]) == (
        USER, ActionId.ACKNOWLEDGE, parent.ts)
    boto3.client("sqs").delete_message(QueueUrl=app_mode.actions_url, ReceiptHandle=record["receiptHandle"])

    tampered = body.replace(USER.encode(), b"U0SOMEONE")
    refused = [
        function_url_event(tampered, signing_secret=SIGNING_SECRET, timestamp=timestamp,
                           signature=sign(SIGNING_SECRET, timestamp, body)),
        function_url_event(body, signing_secret="f" * 32, timestamp=timestamp),
        function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=timestamp - 6 * 60),  # replayed
    ]
    unsigned = function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=timestamp)
    for header in ("x-slack-signature", "x-slack-request-timestamp"):
        del unsigned["headers"][header]
    for event in (*refused, unsigned):
        kind, answer = endpoint.invoke(event)
        assert (kind, answer["statusCode"], answer["body"]) == ("response", 401, ""), endpoint.diagnostics()
    assert queued(app_mode) == [], "a refused request queues nothing"

    assert endpoint.alive() and [kind for _, kind, _ in endpoint.api.posts] == ["response"] * 5
    refusals = [line for line in endpoint.logs() if str(line.get("message", "")).startswith("request refused")]
    assert len(refusals) == 4, endpoint.logs()
    assert (counted(endpoint, "ChatOpsClicks"), counted(endpoint, "ChatOpsSignaturesRefused")) == (1, 4)
    (queued_log,) = [line for line in endpoint.logs() if line.get("message") == "click queued"]
    assert queued_log["user"] == USER
    output = endpoint.stdout.read_text(errors="replace")
    assert "legacy-verification-token" not in output and "v0=" not in output, "the body or a signature logged"
    assert_no_secrets(endpoint)
    assert_from_asset(endpoint, asset, deps, slack_sdk=False)


def test_the_actions_worker_acknowledges_once(lambdas: Lambdas, stack: Resources, app_mode: AppMode,
                                              asset: Path, deps: Path) -> None:
    _, notifier, _, parent = first_alert(lambdas, stack, app_mode)
    slack = app_mode.slack
    value = ButtonValue.decode(button(parent, ActionId.ACKNOWLEDGE))  # (`parent` is the stand-in's: updated below)
    endpoint = lambdas.start("slack-interactivity")
    body, timestamp = click(parent)
    kind, answer = endpoint.invoke(function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=timestamp))
    assert (kind, answer["statusCode"]) == ("response", 200), endpoint.diagnostics()
    records = queued(app_mode)
    assert len(records) == 1
    event = {"Records": records}

    worker = lambdas.start("slack-actions", SLACK_API_URL=slack.url)
    assert worker.invoke(event) == ("response", {"batchItemFailures": []}), worker.diagnostics()

    ledger = LedgerStore(stack.table_name, boto3.client("dynamodb"))
    record = ledger.get(value.cluster, value.fingerprint, value.node)
    assert record is not None and record.acknowledged_by == WHO, record
    assert record.acknowledged_at is not None and record.acknowledged_until is not None
    assert record.acknowledged_until - record.acknowledged_at == timedelta(days=1)  # rules/defaults.json's 1d
    updated = slack.message(CHANNEL, parent.ts)
    assert updated is not None and len(updated.edits) == 1
    assert WHO in updated.text + " ".join(updated.block_texts)
    assert ActionId.ACKNOWLEDGE not in updated.action_ids and ActionId.SILENCE_4H in updated.action_ids  # acked once
    (reply,) = slack.replies(CHANNEL, parent.ts)
    assert reply.text.startswith(f"Acknowledged by {WHO}: no repeats until "), reply.text
    after_first = calls(slack)
    assert after_first == {"chat.postMessage": 2, "chat.update": 1}, slack.calls  # the parent, the reply
    assert all(call.ok for call in slack.calls), slack.calls
    done = [line for line in worker.logs() if line.get("message") == "click done"]
    assert len(done) == 1 and done[0]["user"] == USER, worker.logs()

    # SQS delivers the same message again: the click's idempotency record answers, nothing changes
    assert worker.invoke(event) == ("response", {"batchItemFailures": []}), worker.diagnostics()
    assert calls(slack) == after_first, slack.calls
    assert ledger.get(value.cluster, value.fingerprint, value.node) == record
    assert len(slack.replies(CHANNEL, parent.ts)) == 1
    assert len([line for line in worker.logs() if line.get("message") == "click done"]) == 1
    assert (counted(worker, "ChatOpsClicksDone"), counted(worker, "ChatOpsClicksFailed")) == (1, 0)
    assert worker.alive() and worker.api.delivered == worker.request_ids

    assert_from_asset(worker, asset, deps, slack_sdk=True)
    assert_from_asset(endpoint, asset, deps, slack_sdk=False)
    assert_no_secrets(notifier, endpoint, worker)


def test_slack_sdk_reaches_the_runtime_from_the_bundled_dependencies(lambdas: Lambdas, app_mode: AppMode,
                                                                     asset: Path, deps: Path) -> None:
    (pinned,) = [Requirement(r) for r in LAMBDA_REQUIREMENTS if Requirement(r).name == "slack-sdk"]
    result = lambdas.probe("slack-actions", "\n".join([
        "import json, slack_sdk, slack_sdk.version, hyperpod_guard.notify.slack_app as app",
        "import hyperpod_guard.chatops.actions as actions, hyperpod_guard.handlers.slack_interactivity as endpoint",
        "print(json.dumps({'sdk': slack_sdk.__file__, 'version': slack_sdk.version.__version__,",
        "                  'ours': [app.__file__, actions.__file__, endpoint.__file__]}))",
    ]))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert Path(seen["sdk"]).is_relative_to(deps) and pinned.specifier.contains(seen["version"]), seen
    assert all(Path(f).is_relative_to(asset) for f in seen["ours"]), seen
