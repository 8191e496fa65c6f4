"""What a message says of ChatOps (issue 20): an acknowledged alert says who acknowledged it, since when and
until when; an action awaiting (or given) approval says so, with its expiry; both in email and Chatbot,
and in the JSON body (where Slack's app mode reads the ApprovalRef for its buttons). Messages without
them say nothing new (the golden files of test_email.py and test_chatbot.py pin that). And the rules:
`chatops` validated, and `validate` warns of an approval nobody may give."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.notify import chatbot, email
from hyperpod_guard.notify.message import ApprovalRef, next_step
from hyperpod_guard.rules import DEFAULT_RULES, load_rules
from hyperpod_guard.rules_checks import rules_warnings
from tests.message_samples import SAMPLES, SENT_AT, degraded, firing, message, unhealthy_node

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
AWAITING = "awaiting approval: would replace i-0a1b2c3d4e5f60718 (expires 2026-11-30T10:30:00Z)"


def acknowledged(until: datetime | None):
    item = firing("repeat", unhealthy_node())
    return item.model_copy(update={"acknowledged_by": "U0AAA", "acknowledged_at": SENT_AT - timedelta(minutes=20),
                                   "acknowledged_until": until})


def awaiting(status: str = "pending", decided_by: str | None = None):
    item = firing("first", unhealthy_node(), actions=(AWAITING,))
    ref = ApprovalRef(id="a1b2c3", action="replace i-0a1b2c3d4e5f60718", expires_at=SENT_AT + timedelta(hours=1),
                      status=status, decided_by=decided_by)  # type: ignore[arg-type]
    return item.model_copy(update={"approval": ref})


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(("until", "said"), [
    (None, "no repeats until resolved"),
    (SENT_AT + timedelta(hours=4), "no repeats until 2026-11-30 13:30 UTC"),
])
def test_an_acknowledged_alert_says_who_when_and_until_when(until, said):
    notification = message(acknowledged(until))
    line = f"Acknowledged by U0AAA at 2026-11-30 09:10 UTC (20m ago); {said}"
    assert line in flat(email.render(notification))
    assert line in chatbot.render(notification)["content"]["description"]
    body = json.loads(notification.body())["items"][0]
    assert (body["acknowledged_by"], body["acknowledged_at"]) == ("U0AAA", "2026-11-30T09:10:00Z")


@pytest.mark.parametrize(("status", "decided_by", "said"), [
    ("pending", None, "Awaiting approval: replace i-0a1b2c3d4e5f60718 (until 2026-11-30 10:30 UTC)"),
    ("approved", "U0BOSS", "Approved by U0BOSS: replace i-0a1b2c3d4e5f60718"),
    ("rejected", "U0BOSS", "Rejected by U0BOSS: replace i-0a1b2c3d4e5f60718"),
    ("expired", None, "Approval expired: replace i-0a1b2c3d4e5f60718"),
])
def test_an_action_awaiting_approval_says_so(status, decided_by, said):
    notification = message(awaiting(status, decided_by))
    assert said in flat(email.render(notification))
    assert said in chatbot.render(notification)["content"]["description"]
    approval = json.loads(notification.body())["items"][0]["approval"]
    assert approval == {"id": "a1b2c3", "action": "replace i-0a1b2c3d4e5f60718", "expires_at": "2026-11-30T10:30:00Z",
                        "status": status, "decided_by": decided_by}


def test_messages_without_them_say_nothing_of_them():
    for name, notification in SAMPLES.items():
        text = email.render(notification) + json.dumps(chatbot.render(notification), ensure_ascii=False)
        assert "cknowledged" not in text and "pproval" not in text, name


@pytest.mark.parametrize(("action", "step"), [
    # the action line says what and until when: the next step says who acts, not that again
    (AWAITING, "Remediation waits for an approver to approve or reject it before it lapses; a person must act"),
    ("awaiting approval until 2026-11-30T10:30:00Z",
     "Remediation waits for an approver to approve or reject it before it lapses; a person must act"),
    ("rejected by U0BOSS", "Remediation was rejected by U0BOSS; a person must act"),
])
def test_next_step_of_an_action_that_waits_for_a_person(action, step):
    assert next_step(degraded(), (action,)) == step


# --- rules -------------------------------------------------------------------------------------------------------


def test_chatops_defaults():
    chatops = DEFAULT_RULES.chatops
    assert (chatops.approvers, chatops.responders, chatops.acknowledge_for, chatops.team_id) == (
        (), (), timedelta(hours=24), None)
    policies = DEFAULT_RULES.policies
    remediation = policies.for_policy("unhealthy-node").remediation  # type: ignore[attr-defined]
    assert (remediation.approval, remediation.approval_expires) == ("none", timedelta(hours=1))


def test_chatops_ids_are_validated():
    rules = load_rules({"version": 1, "chatops": {"approvers": ["U0123ABCD", "W0123ABCD", "S0123ABCD"],
                                                   "responders": ["S0ONCALL"], "acknowledge_for": None,
                                                   "team_id": "T0123ABCD"}})
    assert rules.chatops.acknowledge_for is None and rules.chatops.approvers[2] == "S0123ABCD"
    with pytest.raises(InvalidRulesError) as refused:
        load_rules({"version": 1, "chatops": {"approvers": ["@U0123ABCD", "jane"], "responders": ["C0123"],
                                              "team_id": "U0123", "acknowledge_for": "soon"}})
    assert sorted(path for path, _ in refused.value.problems) == [
        "$.chatops.acknowledge_for", "$.chatops.approvers[0]", "$.chatops.approvers[1]", "$.chatops.responders[0]",
        "$.chatops.team_id"]


def test_validate_warns_of_an_approval_nobody_may_give():
    document = {"version": 1,
                "policies": {"unhealthy-node": {"remediation": {"enabled": True, "approval": "required"}}},
                "overrides": [{"match": {"cluster": "ml-*"},
                               "policies": {"degraded-group": {"remediation": {"approval": "required"}}}}]}
    warnings = rules_warnings(load_rules(document), NOW)
    assert [w.path for w in warnings] == ['$.policies["unhealthy-node"].remediation.approval',
                                          '$.overrides[0].policies["degraded-group"].remediation.approval']
    assert "nobody can approve" in warnings[0].message
    document["chatops"] = {"approvers": ["S0ONCALL"]}
    assert rules_warnings(load_rules(document), NOW) == []
