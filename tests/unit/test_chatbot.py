"""What the Chatbot subscription receives: a custom notification valid against the JSON Schema written
from the documented format (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html,
tests/schemas/chatbot-custom-notification.schema.json), for every message kind; threaded by the lead
alert; untrusted strings inert in client-markdown; every field bounded."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperpod_guard.notify import chatbot
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from tests.chatbot_schema import DOC_URL, validate_chatbot
from tests.fuzzing import NASTY_TEXT
from tests.golden import check_golden
from tests.message_samples import ARN, RUNBOOK, SAMPLES, degraded, message, resolved, rollback


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_is_a_valid_custom_notification_and_matches_its_golden_file(kind: str) -> None:
    payload = chatbot.render(SAMPLES[kind])
    validate_chatbot(payload)  # the documented format: DOC_URL
    check_golden("chatbot", kind, payload)


def test_the_schema_is_the_documented_one_and_refuses_what_chatbot_would_drop() -> None:
    assert DOC_URL == "https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html"
    good = chatbot.render(SAMPLES["firing"])
    for broken in ({**good, "version": "1"}, {**good, "source": "aws"},
                   {k: v for k, v in good.items() if k != "content"},
                   {**good, "content": {**good["content"], "textType": "markdown"}},
                   {**good, "content": {k: v for k, v in good["content"].items() if k != "description"}},
                   {**good, "metadata": {**good["metadata"], "additionalContext": {"n": 1}}}):
        with pytest.raises(AssertionError, match="not a Chatbot custom notification"):
            validate_chatbot(broken)


def test_title_description_next_steps_and_metadata_say_what_the_issue_asks() -> None:
    payload = chatbot.render(SAMPLES["firing"])
    content, metadata = payload["content"], payload["metadata"]
    assert content["title"] == "🔴 CRITICAL · ml-prod · 1 firing"
    assert "Software update of instance group p5-train failed" in content["description"]
    assert "account `123456789012` · region `us-west-2`" in content["description"]
    assert "2026-11-30 07:16 UTC (2h14m ago)" in content["description"]  # since, absolute and relative
    assert "• software update status RollbackFailed" in content["description"]  # evidence
    assert content["nextSteps"][0] == "Nothing automatic: a person must act"
    assert f"Runbook for failed-rollback: {RUNBOOK}" in content["nextSteps"]
    assert content["nextSteps"][-1].endswith("#/cluster-management/ml-prod")
    assert content["keywords"] == ["critical", "ml-prod", "failed-rollback"]
    assert metadata["threadId"] == "6f1c0a9e2b7d4c3a8e51" and metadata["summary"] == SAMPLES["firing"].preview
    assert metadata["relatedResources"] == [ARN] and metadata["eventType"] == "hyperpod-guard-firing"
    assert metadata["additionalContext"]["account"] == "123456789012"


def test_resolved_says_what_is_true_now_when_it_cleared_and_how_long_it_lasted() -> None:
    description = chatbot.render(SAMPLES["resolved"])["content"]["description"]
    assert "*Now:* Instance group p5-train is back to InService, 16/16 nodes" in description
    assert "*Cleared* 2026-11-30 09:29 UTC (40s ago) · *lasted* 2h13m20s" in description
    assert "• group status InService" in description and "Degraded (15/16" in description.split("_Was:_")[1]


def test_repeats_escalation_and_resolution_of_an_alert_thread_under_it() -> None:
    threads = {kind: chatbot.render(SAMPLES[kind])["metadata"]["threadId"] for kind in SAMPLES}
    assert threads["firing"] == threads["escalated"] == rollback().fingerprint
    assert threads["repeat"] == threads["resolved"] == degraded().fingerprint
    assert threads["grouped"] == rollback().fingerprint  # the lead alert, the one the preview names
    ids = [chatbot.render(SAMPLES[kind])["id"] for kind in ("firing", "escalated")]
    assert len(set(ids)) == 2  # one thread, two events


# --- inert and bounded ----------------------------------------------------------------------------

_CONTROL = re.compile(r"<[^>]*>|[<>]")  # Slack/Teams control sequences need a raw angle bracket
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_LINK = re.compile(r"\]\(")
_ENTITY = re.compile(r"&[#A-Za-z0-9]+;")


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_inert_and_bounded(payload: dict[str, Any]) -> None:
    validate_chatbot(payload)
    for text in strings(payload):
        assert not _CONTROL.search(text), text
        assert not _BROADCAST.search(text), text
        assert not _LINK.search(text), text
        assert not _ENTITY.search(text), text
        assert not any(c in text for c in "\x00\r\u202e\u2066"), text
    assert len(json.dumps(payload, ensure_ascii=False)) <= chatbot.CHATBOT_LIMIT


HOSTILE = [*NASTY_TEXT, "@channel", "@HERE please", "hi @everyone!", "[click](https://evil.example)",
           "[x]\n(https://evil.example)", "<at>oncall</at>", "&#60;!channel&#62;", "x" * 5000, "word " * 2000]
hostile = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=300),
                    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=4).map("".join))


@st.composite
def hostile_notifications(draw: st.DrawFn) -> Notification:
    cluster = draw(hostile) or "c"
    details = draw(st.dictionaries(st.sampled_from(["failure_message", "reason", "group_status", "current_image_id",
                                                    "recommendation", "new_key", "repair_action"]),
                                   hostile, max_size=7))
    details["taints"] = {"missing": draw(st.lists(hostile, max_size=6)), "changed": [
        {"key": draw(hostile), "current": draw(hostile), "desired": draw(hostile)}]}
    severity = draw(st.sampled_from(["critical", "warning", "info"]))
    finding = FindingPayload(policy=draw(hostile) or "p", severity=severity,
                             cluster=cluster, instance_group=draw(hostile), node=draw(hostile),
                             fingerprint=draw(hostile) or "f", condition="c", summary=draw(hostile), details=details)
    base = resolved(finding, draw(hostile), reason=draw(hostile), group_status=draw(hostile))
    count = draw(st.integers(min_value=1, max_value=40))
    items = tuple(base.model_copy(update={
        "reason": draw(st.sampled_from(["first", "repeat", "escalated", "resolved", "remediated"])),
        "actions": tuple(draw(st.lists(hostile, max_size=3))), "next_step": draw(hostile),
        "runbook_url": draw(st.sampled_from([None, RUNBOOK, "javascript:alert(1)", "https://x.example/<!here>"])),
        "first_seen": base.first_seen - timedelta(minutes=i)}) for i in range(count))
    return message(*items, cluster=cluster, region=draw(st.sampled_from(["us-west-2", "evil.example/x#", None])),
                   test=draw(st.booleans()), receiver=draw(st.one_of(st.none(), hostile)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_notifications())
def test_hostile_strings_stay_inert_and_the_payload_always_validates(notification: Notification) -> None:
    assert_inert_and_bounded(chatbot.render(notification))


@pytest.mark.parametrize("text", HOSTILE)
def test_each_hostile_string_everywhere(text: str) -> None:
    finding = FindingPayload(policy=text or "p", severity="critical", cluster=text or "c", instance_group=text,
                             node=text, fingerprint=text or "f", condition="c", summary=text,
                             details={"failure_message": text, "reason": text, "x": text})
    items = (NotificationItem(reason="first", finding=finding, next_step=text, actions=(text,)),
             resolved(finding, text, reason=text))
    assert_inert_and_bounded(chatbot.render(message(*items, cluster=text or "c", receiver=text, test=True)))


def test_a_broadcast_shows_but_does_not_ping() -> None:
    finding = rollback().__class__(**{**rollback().__dict__, "summary": "ping @channel <!here> [x](https://e.x)"})
    description = chatbot.render(message(NotificationItem(reason="first", finding=finding)))["content"]["description"]
    assert "ping @\u2060channel ‹!here› [x]\u2060(https://e.x)" in description


def test_hundreds_of_findings_stay_in_the_limits_and_say_how_many_more() -> None:
    items = tuple(NotificationItem(reason="first", finding=FindingPayload(
        policy="taint-drift", severity="warning", cluster="big", instance_group=f"group-{i}", fingerprint=f"{i:020d}",
        condition="x", summary=f"Nodes of instance group group-{i} drift " + "x" * 400,
        details={"failure_message": "y" * 2000})) for i in range(300))
    payload = chatbot.render(Notification(cluster="big", region="us-west-2", items=items))
    assert_inert_and_bounded(payload)
    assert re.search(r"…and \d+ more findings \(\d+ firing, 0 resolved\): see the console$",
                     payload["content"]["description"])


def test_alerts_of_one_hyperpod_operation_thread_together() -> None:
    """Cluster Events carry OperationId (issue 19): a stuck scale-up and the shortfall it leaves thread as one."""
    from tests.message_samples import firing, message

    operation = "9f3b1d7e-2a4c-4e6a-8b0d-1c3e5a7b9d2f"
    stuck = replace(degraded(), policy="cluster-operations", fingerprint="1" * 20, instance_group=None,
                    details={"operation_id": operation, "type": "Scaling"})
    short = replace(degraded(), details={**degraded().details, "cluster_event": {"operation_id": operation}})
    threads = {chatbot.render(message(firing("first", f)))["metadata"]["threadId"] for f in (stuck, short)}
    assert threads == {f"operation-{operation}"}
    assert chatbot.render(message(firing("first", degraded())))["metadata"]["threadId"] == degraded().fingerprint
