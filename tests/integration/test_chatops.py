"""ChatOps end to end (issue 20) on moto and the local Slack Web API stand-in: an alert's first message
posted by the notifier in app mode (its buttons rendered), a click on one of them signed as Slack signs it
and sent to the interactivity endpoint (handlers/slack_interactivity.py, invoked with a Function URL event),
the click queued, then carried out by the actions worker (handlers/slack_actions.py) from the actions
queue, and for an approval the worker (handlers/worker.py) evaluating the cluster from the work queue.

The cluster, rules and remediation are test_remediation.py's (node-failure-recovery-none: one node in
Failure, NodeRecovery None); SageMaker's node actions are answered and recorded there (FakeHyperPod).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from hyperpod_guard import clock as clock_module
from hyperpod_guard.local.lambda_context import LambdaContext
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.chatops.signature import sign
from hyperpod_guard.local.slack_clicks import block_actions, function_url_event
from hyperpod_guard.local.slack_api_standin import TOKEN, Message, SlackApiStandIn
from hyperpod_guard.silences import SilenceCache, SilenceStore
from tests.integration.test_remediation import (  # noqa: F401 (fixtures)
    CLUSTER, NODE, REBOOT, T0, at, batch_infer, hyperpod, node_rules, put_rules, run_sweep, store,
)
from tests.integration.test_sweep_fanout import EventSource, WorkQueueOnMoto
from tests.lambda_output import lambda_output
from tests.runtime_fixtures import runtime, stack  # noqa: F401

SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
CHANNEL = "C0ALERTS"
TEAM = "T0ACME"
APPROVER, RESPONDER, OTHER, GROUPED = "U0APPROVER", "U0RESPONDER", "U0OTHER", "U0GROUPED"
NAMES = {APPROVER: "ana", RESPONDER: "raj", OTHER: "olga", GROUPED: "gus"}
ACK, SILENCE_4H, APPROVE, REJECT = "hpg.ack", "hpg.silence.4h", "hpg.approve", "hpg.reject"


def queue(name: str) -> WorkQueueOnMoto:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return WorkQueueOnMoto(url, arn, url)


@dataclass
class ChatOps:
    """The app-mode side of the stack on moto, the Slack stand-in, and the simulated clock."""

    stack: Resources
    slack: SlackApiStandIn
    actions_queue: WorkQueueOnMoto
    work_queue: WorkQueueOnMoto
    now: list[datetime]
    clicks: int = 0

    def at(self, minutes: float) -> None:
        self.now[0] = at(minutes)

    def notify(self) -> list[dict[str, Any]]:
        """What SNS delivered since the last call, handed to the Slack notifier (app mode)."""
        from hyperpod_guard.handlers import slack_notifier

        messages = delivered(self.stack)
        for message in messages:
            slack_notifier.handler(message["sns_event"], LambdaContext(function_name="hyperpod-guard-slack-notifier"))
        return messages

    def parent(self) -> Message:
        """The alert's parent message: the first one in the channel that is not a reply."""
        parents = [m for m in self.slack.messages(CHANNEL) if m.thread_ts is None]
        assert len(parents) == 1, [m.text for m in parents]
        return parents[0]

    def button(self, message: Message, action_id: str) -> str:
        values = [e["value"] for block in message.blocks if block.get("type") == "actions"
                  for e in block.get("elements", ()) if e.get("action_id") == action_id]
        assert len(values) == 1, f"{action_id} not on the message: {message.action_ids}"
        return values[0]

    def payload(self, action_id: str, value: str, user: str, message: Message) -> bytes:
        self.clicks += 1
        return block_actions(action_id=action_id, value=value, user=user, user_name=NAMES[user], team=TEAM,
                             channel=CHANNEL, message_ts=message.ts, message_text=message.text,
                             action_ts=f"{self.now[0].timestamp():.0f}.{self.clicks:06d}",
                             trigger_id=f"{self.clicks}.42.abc")

    def post(self, body: bytes, *, timestamp: int | None = None, signature: str | None = None,
             secret: str = SIGNING_SECRET) -> dict[str, Any]:
        """The endpoint invoked as a Function URL invokes it (payload format 2.0), signed as Slack signs."""
        from hyperpod_guard.handlers import slack_interactivity

        timestamp = int(self.now[0].timestamp()) if timestamp is None else timestamp
        event = function_url_event(body, signing_secret=secret, timestamp=timestamp, signature=signature)
        return slack_interactivity.handler(event, LambdaContext(function_name="hyperpod-guard-slack-interactivity"))

    def click(self, action_id: str, user: str, message: Message | None = None) -> dict[str, Any]:
        """Click a button of the alert's parent message; then the actions worker drains its queue."""
        from hyperpod_guard.handlers import slack_actions

        message = message or self.parent()
        answer = self.post(self.payload(action_id, self.button(message, action_id), user, message))
        assert (answer["statusCode"], answer["body"]) == (200, "")
        EventSource(self.actions_queue, slack_actions).drain()
        return answer

    def ephemerals(self) -> list[tuple[str, str]]:
        """(user, text) of every message only its user saw."""
        return [(c.args["user"], c.args["text"]) for c in self.slack.calls_of("chat.postEphemeral") if c.ok]

    def replies(self) -> list[str]:
        return [m.text for m in self.slack.replies(CHANNEL, self.parent().ts)]


@pytest.fixture
def chatops(stack, runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatOps]:  # noqa: F811
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="hyperpod-guard/slack-bot-token", SecretString=TOKEN)
    secrets.create_secret(Name="hyperpod-guard/slack-signing-secret", SecretString=SIGNING_SECRET)
    actions_queue, work_queue = queue("hyperpod-guard-slack-actions"), queue("hyperpod-guard-work")
    now = [T0]
    clock_module.use(lambda: now[0])
    runtime.silences = SilenceCache(SilenceStore(stack.table_name, runtime.ledger.dynamodb), 0)
    with SlackApiStandIn(user_groups={"S0APPROVERS": [GROUPED]}) as slack:
        for key, value in {
            "SLACK_MODE": "app", "SLACK_BOT_TOKEN_SECRET": "hyperpod-guard/slack-bot-token",
            "SLACK_CHANNELS": json.dumps({"default": CHANNEL}), "SLACK_API_URL": slack.url,
            "SLACK_SIGNING_SECRET_SECRET": "hyperpod-guard/slack-signing-secret",
            "SLACK_ACTIONS_QUEUE_URL": actions_queue.url,
            # the actions worker's and the worker's; the test's runtime was made without it (no grouping)
            "WORK_QUEUE_URL": work_queue.url, "RULES_MAX_AGE": "0",
        }.items():
            monkeypatch.setenv(key, value)
        try:
            yield ChatOps(stack, slack, actions_queue, work_queue, now)
        finally:
            clock_module.use(None)


def rules(remediation: dict[str, Any] | None = None, **chatops: Any) -> dict[str, Any]:
    """test_remediation's rules for the unhealthy node (remediation off unless given), with `chatops`."""
    document = node_rules(remediation or {"enabled": False})
    document["chatops"] = {"approvers": [APPROVER, "S0APPROVERS"], **chatops}
    return document


def approval_rules(**remediation: Any) -> dict[str, Any]:
    return rules({"dry_run": False, "approval": "required", **remediation})


def first_alert(chatops: ChatOps, runtime, document: dict[str, Any]) -> Message:  # noqa: F811
    put_rules(document)
    batch_infer()
    chatops.at(0)
    run_sweep(runtime, 0)
    (message,) = chatops.notify()
    (item,) = message["message"]["items"]
    assert item["reason"] == "first"
    return chatops.parent()


def alert(runtime):  # noqa: F811
    (record,) = runtime.ledger.load(CLUSTER).values()
    return record


# --- acknowledge ------------------------------------------------------------------------------------------


def test_acknowledge_stops_repeats_and_updates_the_parent(chatops, runtime, hyperpod):
    parent = first_alert(chatops, runtime, rules())
    assert {ACK, SILENCE_4H} <= set(parent.action_ids)
    chatops.at(1)
    chatops.click(ACK, RESPONDER)

    record = alert(runtime)
    assert (record.acknowledged_by, record.acknowledged_at, record.acknowledged_until) == (
        "raj (U0RESPONDER)", at(1), at(1) + timedelta(hours=24))
    updated = chatops.slack.message(CHANNEL, parent.ts)
    assert updated is not None and len(updated.edits) == 1
    assert "raj (U0RESPONDER)" in " ".join(updated.block_texts + [updated.text])
    assert [text for text in chatops.replies() if text.startswith("Acknowledged")] == [
        "Acknowledged by raj (U0RESPONDER): no repeats until 2026-11-25T12:01:00Z."]
    assert chatops.ephemerals() == []

    chatops.at(4 * 60 + 5)  # the repeat was due at 4h: acknowledged, none is sent
    run_sweep(runtime, 4 * 60 + 5)
    assert [i["reason"] for m in chatops.notify() for i in m["message"]["items"]] == []
    assert hyperpod.calls == []


def test_a_redelivered_click_is_carried_out_once(chatops, runtime):
    from hyperpod_guard.handlers import slack_actions

    parent = first_alert(chatops, runtime, rules())
    chatops.at(1)
    body = chatops.payload(ACK, chatops.button(parent, ACK), RESPONDER, parent)
    for _ in range(2):  # SQS delivers the same click twice (or Slack retries it)
        assert chatops.post(body)["statusCode"] == 200
    assert len(chatops.actions_queue.messages()) == 2
    with lambda_output() as out:  # the second one is said and counted, not silent
        EventSource(chatops.actions_queue, slack_actions).drain()
    assert [text for text in chatops.replies() if text.startswith("Acknowledged")] == [
        "Acknowledged by raj (U0RESPONDER): no repeats until 2026-11-25T12:01:00Z."]
    assert len(chatops.slack.calls_of("chat.update")) == 1
    assert out.getvalue().count('"click already carried out; not again"') == 1
    assert out.getvalue().count('"ChatOpsDuplicatesSkipped":[1.0]') == 1


# --- silence ----------------------------------------------------------------------------------------------


def test_silence_4h_is_stored_with_the_slack_user_as_author_and_applied(chatops, runtime, stack):
    parent = first_alert(chatops, runtime, rules())
    chatops.at(1)
    chatops.click(SILENCE_4H, RESPONDER)

    (silence,) = SilenceStore(stack.table_name, runtime.ledger.dynamodb).all()
    assert (silence.author, silence.until, silence.created_at) == ("raj (U0RESPONDER) via Slack", at(241), at(1))
    assert (silence.cluster, silence.policy, silence.instance_group, silence.node) == (
        CLUSTER, "unhealthy-node", "g5-batch", NODE)
    assert silence.comment == (f"silenced from Slack message {parent.ts} in channel {CHANNEL}: unhealthy-node "
                               f"g5-batch/{NODE}")
    assert [text for text in chatops.replies() if text.startswith("Silenced")] == [
        f"Silenced for 4h by raj (U0RESPONDER), until 2026-11-24T16:01:00Z: cluster={CLUSTER} policy=unhealthy-node "
        f"instance_group=g5-batch node={NODE} ({silence.id})."]

    chatops.at(4 * 60 + 0.5)  # the repeat is due, but the silence (until 4h01) mutes it
    result = run_sweep(runtime, 4 * 60 + 0.5)
    assert sum(len(o.suppressed) for o in result.outcomes) == 1
    assert chatops.notify() == []
    assert "silenced by raj (U0RESPONDER) via Slack" in alert(runtime).reason


# --- approve and reject -----------------------------------------------------------------------------------


def drain_work(chatops: ChatOps, minutes: float) -> list[dict[str, Any]]:
    """The worker, on what the work queue holds (the approved cluster's evaluation)."""
    from hyperpod_guard.handlers import worker

    chatops.at(minutes)
    bodies = chatops.work_queue.bodies()
    source = EventSource(chatops.work_queue, worker)
    source.drain()
    assert [failed for _, failed in source.invocations] == [[]] * len(source.invocations)
    return bodies


def test_approve_by_an_approver_runs_exactly_one_action_and_the_audit_names_the_approver(chatops, runtime, hyperpod,
                                                                                        store):
    parent = first_alert(chatops, runtime, approval_rules())
    assert {APPROVE, REJECT} <= set(parent.action_ids)
    assert hyperpod.calls == []
    chatops.at(2)
    chatops.click(APPROVE, APPROVER)
    assert chatops.ephemerals() == []
    assert [t for t in chatops.replies() if t.startswith("Approved")] == [
        f"Approved by ana (U0APPROVER): reboot {NODE}. It runs now, at the cluster's next evaluation, through the "
        "remediation budgets."]

    (message,) = drain_work(chatops, 3)
    assert (message["kind"], message["cluster"]) == ("evaluate-cluster", CLUSTER)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    (audit,) = store.audits(CLUSTER)
    assert audit["approved_by"] == "ana (U0APPROVER)"
    # clicked again (or the sweep comes): used, never again
    chatops.at(4)
    chatops.click(APPROVE, APPROVER)
    drain_work(chatops, 5)
    run_sweep(runtime, 6)
    assert hyperpod.calls == []


def test_a_member_of_an_approvers_user_group_may_approve(chatops, runtime, hyperpod):
    first_alert(chatops, runtime, approval_rules())
    chatops.at(2)
    chatops.click(APPROVE, GROUPED)
    drain_work(chatops, 3)
    assert [op for op, _ in hyperpod.take()] == [REBOOT]
    assert [c.args["usergroup"] for c in chatops.slack.calls_of("usergroups.users.list")] == ["S0APPROVERS"]


def test_reject_runs_nothing(chatops, runtime, hyperpod, store):
    first_alert(chatops, runtime, approval_rules())
    chatops.at(2)
    chatops.click(REJECT, APPROVER)
    assert [t for t in chatops.replies() if t.startswith("Rejected")] == [
        f"Rejected by ana (U0APPROVER): reboot {NODE} will not run."]
    assert chatops.work_queue.bodies() == []
    run_sweep(runtime, 3)
    run_sweep(runtime, 70)
    assert hyperpod.calls == [] and store.audits(CLUSTER) == []


def test_an_expired_approval_runs_nothing(chatops, runtime, hyperpod, store):
    first_alert(chatops, runtime, approval_rules(approval_expires="30m"))
    chatops.at(31)
    chatops.click(APPROVE, APPROVER)
    assert chatops.ephemerals() == [(APPROVER, "Not done: cannot approve: expired at 2026-11-24T12:30:00Z.")]
    assert chatops.work_queue.bodies() == []
    assert hyperpod.calls == [] and store.audits(CLUSTER) == []


@pytest.mark.parametrize(("action", "user", "why"), [
    (APPROVE, OTHER, "only the approvers may approve a remediation (rules.chatops.approvers), and U0OTHER is not "
                     "one of them"),
    (REJECT, RESPONDER, "only the approvers may reject a remediation (rules.chatops.approvers), and U0RESPONDER is "
                        "not one of them"),
    (ACK, OTHER, "only the responders may acknowledge alerts (rules.chatops.responders), and U0OTHER is not one "
                 "of them"),
    (SILENCE_4H, OTHER, "only the responders may silence alerts (rules.chatops.responders), and U0OTHER is not one "
                        "of them"),
])
def test_a_user_outside_the_allow_list_is_refused_and_nothing_is_done(chatops, runtime, hyperpod, store, stack,
                                                                       action, user, why):
    parent = first_alert(chatops, runtime, approval_rules() | {"chatops": {
        "approvers": [APPROVER], "responders": [RESPONDER]}})
    approval_before = store.dynamodb.get_item(TableName=stack.table_name, ConsistentRead=True, Key={
        "pk": {"S": f"CLUSTER#{CLUSTER}"}, "sk": {"S": f"APPROVAL#{alert(runtime).fingerprint}"}})["Item"]
    chatops.at(2)
    chatops.click(action, user)
    assert chatops.ephemerals() == [(user, f"Not done: {why}.")]
    assert chatops.replies() == [] and chatops.work_queue.bodies() == []
    assert chatops.slack.message(CHANNEL, parent.ts).edits == []  # type: ignore[union-attr]
    assert alert(runtime).acknowledged_by is None
    assert SilenceStore(stack.table_name, runtime.ledger.dynamodb).all() == []
    assert store.dynamodb.get_item(TableName=stack.table_name, ConsistentRead=True, Key={
        "pk": {"S": f"CLUSTER#{CLUSTER}"}, "sk": {"S": f"APPROVAL#{alert(runtime).fingerprint}"}})["Item"] == (
        approval_before)
    run_sweep(runtime, 3)
    assert hyperpod.calls == []


def test_clicks_from_another_workspace_do_not_count(chatops, runtime):
    first_alert(chatops, runtime, rules(team_id="T0OTHER"))
    chatops.at(1)
    chatops.click(ACK, RESPONDER)
    assert chatops.ephemerals() == [(RESPONDER, "Not done: clicks from workspace T0ACME do not count here "
                                                "(rules.chatops.team_id is T0OTHER).")]
    assert alert(runtime).acknowledged_by is None


# --- the endpoint refuses what Slack did not sign ------------------------------------------------------


@pytest.mark.parametrize("tamper", ["unsigned", "tampered-body", "wrong-secret", "replayed-6-minutes-later"])
def test_unsigned_or_tampered_requests_are_refused_401_and_nothing_is_queued(chatops, runtime, tamper, capsys, caplog):
    parent = first_alert(chatops, runtime, rules())
    chatops.at(1)
    body = chatops.payload(ACK, chatops.button(parent, ACK), RESPONDER, parent)
    now = int(chatops.now[0].timestamp())
    if tamper == "unsigned":
        from hyperpod_guard.handlers import slack_interactivity

        answer = slack_interactivity.handler({"version": "2.0", "headers": {}, "body": body.decode(),
                                              "isBase64Encoded": False}, LambdaContext())
    elif tamper == "tampered-body":
        answer = chatops.post(body.replace(RESPONDER.encode(), OTHER.encode()),
                              signature=sign(SIGNING_SECRET, now, body))
    elif tamper == "wrong-secret":
        answer = chatops.post(body, secret="f" * 32)
    else:
        answer = chatops.post(body, timestamp=now - 6 * 60)
    assert (answer["statusCode"], answer["body"]) == (401, "")
    assert chatops.actions_queue.messages() == []
    assert '"ChatOpsSignaturesRefused":[1.0]' in capsys.readouterr().out
    (refused,) = [r for r in caplog.records if "refused" in r.getMessage()]
    logged = json.dumps({k: str(v) for k, v in vars(refused).items()})
    assert refused.reason in logged  # type: ignore[attr-defined]
    assert SIGNING_SECRET not in logged and "legacy-verification-token" not in logged and "v0=" not in logged


def test_a_signed_request_that_is_no_click_of_ours_is_refused_400(chatops, runtime, capsys, caplog):
    chatops.at(1)
    body = urlencode({"payload": json.dumps({"type": "block_actions", "token": "legacy-verification-token",
                                             "team": {"id": TEAM}, "user": {"id": OTHER},
                                             "actions": [{"action_id": "rm-rf", "value": "x", "action_ts": "1"}]})})
    answer = chatops.post(body.encode())
    assert answer["statusCode"] == 400
    assert chatops.actions_queue.messages() == []
    assert '"ChatOpsMalformedRequests":[1.0]' in capsys.readouterr().out
    (refused,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused.reason == "unknown action id 'rm-rf': not one of our buttons"  # type: ignore[attr-defined]
    assert "legacy-verification-token" not in json.dumps({k: str(v) for k, v in vars(refused).items()})
