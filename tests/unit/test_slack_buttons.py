"""App mode's buttons (notify/buttons.py: the value B2's endpoint parses back) and its renderings
(notify/slack.py render_parent / render_reply): round trips, Slack's limits, golden files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hyperpod_guard.notify.buttons import SILENCE_FOR, VALUE_LIMIT, ActionId, ButtonValue
from hyperpod_guard.notify.message import ApprovalRef, FindingPayload, NotificationItem
from hyperpod_guard.notify.slack import ACTIONS_LIMIT, BLOCK_LIMIT, MAX_BUTTON_ITEMS, render_parent, render_reply
from hyperpod_guard.notify.slack_threads import ItemState, item_state, merge
from tests.golden import check_golden
from tests.message_samples import FIRST_SEEN, SAMPLES, SENT_AT, firing, message, rollback, unhealthy_node

EPISODE = datetime(2026, 11, 30, 7, 16, tzinfo=UTC)


def test_the_action_ids_are_the_contract() -> None:
    assert [a.value for a in ActionId] == ["hpg.ack", "hpg.silence.1h", "hpg.silence.4h", "hpg.silence.24h",
                                          "hpg.approve", "hpg.reject"]
    assert dict(SILENCE_FOR) == {ActionId.SILENCE_1H: timedelta(hours=1), ActionId.SILENCE_4H: timedelta(hours=4),
                                 ActionId.SILENCE_24H: timedelta(hours=24)}


@pytest.mark.parametrize("value", [
    ButtonValue(cluster="ml-prod", fingerprint="6f1c0a9e2b7d4c3a8e51", first_seen=EPISODE),
    ButtonValue(cluster="ml-prod", fingerprint="9e8d7c6b5a4f3e2d1c0b", node="i-0a1b2c3d4e5f60718", first_seen=EPISODE),
    ButtonValue(cluster="ml-prod", fingerprint="6f1c0a9e2b7d4c3a8e51", first_seen=EPISODE, approval="ap-0123"),
    ButtonValue(cluster="ünïcode \"quoted\" <cluster>", fingerprint="f", first_seen=EPISODE),
])
def test_a_value_round_trips(value: ButtonValue) -> None:
    assert ButtonValue.decode(value.encode()) == value


def test_the_value_is_compact_json_with_the_short_names() -> None:
    in_paris = EPISODE.astimezone(timezone(timedelta(hours=2)))
    value = ButtonValue(cluster="ml-prod", fingerprint="6f1c", first_seen=in_paris)
    assert value.encode() == '{"v":1,"c":"ml-prod","f":"6f1c","n":null,"s":"2026-11-30T07:16:00Z"}'
    approve = value.model_copy(update={"approval": "ap-1"})
    assert json.loads(approve.encode())["a"] == "ap-1"
    # the short names construct one too (what B2 reads from Slack)
    assert ButtonValue(c="ml-prod", f="6f1c", s="2026-11-30T07:16:00Z") == value  # type: ignore[call-arg]


def test_the_value_keeps_to_slacks_limit() -> None:
    big = ButtonValue(cluster="c" * VALUE_LIMIT, fingerprint="f", first_seen=EPISODE)
    with pytest.raises(ValueError, match="at most 2000"):
        big.encode()
    fits = ButtonValue(cluster="c" * (VALUE_LIMIT - 60), fingerprint="f", first_seen=EPISODE)
    assert len(fits.encode()) <= VALUE_LIMIT
    with pytest.raises(ValueError, match="at most 2000"):
        ButtonValue.decode(" " * (VALUE_LIMIT + 1))


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"v":1}',
    '{"v":2,"c":"x","f":"y","n":null,"s":"2026-11-30T07:16:00Z"}',  # a newer version
    '{"v":1,"c":"x","f":"y","n":null,"s":"2026-11-30T07:16:00"}',  # no time zone
    '{"v":1,"c":"","f":"y","n":null,"s":"2026-11-30T07:16:00Z"}',
    '{"v":1,"c":"x","f":"y","n":null,"s":"2026-11-30T07:16:00Z","admin":true}',
])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ButtonValue.decode(text)


# -- the renderings ----------------------------------------------------------------------------------------


def _parent(name: str, states: dict[str, ItemState] | None = None) -> dict:
    sample = SAMPLES[name]
    receiver = sample.receiver or "default"
    if states is None:
        _, states, _ = merge(sample.model_copy(update={"items": ()}), {}, sample.items, sample.sent_at or SENT_AT)
    return render_parent(sample, receiver, states)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_parent(name: str) -> None:
    check_golden("slack_app", f"{name}.parent", _parent(name))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_reply(name: str) -> None:
    sample = SAMPLES[name]
    check_golden("slack_app", f"{name}.reply", render_reply(sample, sample.receiver or "default"))


def test_golden_acknowledged_and_awaiting_approval() -> None:
    approval = ApprovalRef(id="ap-0123", action="replace i-0a1b2c3d4e5f60718", expires_at=SENT_AT + timedelta(hours=1))
    node = firing("remediated", unhealthy_node(), actions=("awaiting approval: would replace i-0a1b2c3d4e5f60718",))
    sample = message(firing("first", rollback()), node.model_copy(update={"approval": approval}))
    acked = ItemState(state="acknowledged", as_of=SENT_AT, by="U0ALICE", at=SENT_AT - timedelta(minutes=5),
                      until=SENT_AT + timedelta(hours=24))
    states = {rollback().fingerprint: acked, unhealthy_node().fingerprint: item_state(sample.items[1], SENT_AT)}
    parent = render_parent(sample, "default", states)
    check_golden("slack_app", "acknowledged-approval.parent", parent)
    check_golden("slack_app", "acknowledged-approval.reply", render_reply(sample, "default"))
    ids = [[e["action_id"] for e in b["elements"]] for b in parent["blocks"] if b["type"] == "actions"]
    assert ids[0] == ["hpg.silence.1h", "hpg.silence.4h", "hpg.silence.24h"]  # acknowledged: no Acknowledge
    assert ids[1] == ["hpg.ack", "hpg.silence.1h", "hpg.silence.4h", "hpg.silence.24h", "hpg.approve", "hpg.reject"]
    approve = ButtonValue.decode(parent["blocks"][5]["elements"][4]["value"])
    assert (approve.approval, approve.node) == ("ap-0123", "i-0a1b2c3d4e5f60718")
    # an expired or decided approval shows no Approve / Reject
    for gone in (approval.model_copy(update={"status": "approved", "decided_by": "U0BOB"}),
                 approval.model_copy(update={"expires_at": SENT_AT - timedelta(seconds=1)})):
        late = message(node.model_copy(update={"approval": gone}))
        elements = [e["action_id"] for b in render_parent(late, "default", {})["blocks"] if b["type"] == "actions"
                    for e in b["elements"]]
        assert "hpg.approve" not in elements and "hpg.ack" in elements


def _finding(n: int) -> FindingPayload:
    return FindingPayload(policy="unhealthy-node", severity="warning", cluster="ml-prod", instance_group="p5",
                          node=f"i-{n:017x}", fingerprint=f"{n:020x}", condition="unhealthy",
                          summary=f"Node i-{n:017x} is Unhealthy", details={"health_status": "Unhealthy"})


@pytest.mark.parametrize("count", [1, MAX_BUTTON_ITEMS, MAX_BUTTON_ITEMS + 1, 60, 200])
def test_a_grouped_parent_keeps_to_slacks_limits(count: int) -> None:
    items = tuple(NotificationItem(reason="first", finding=_finding(n), first_seen=FIRST_SEEN) for n in range(count))
    sample = message(*items)
    payload = render_parent(sample, "default", {})
    blocks = payload["blocks"]
    assert len(blocks) <= BLOCK_LIMIT
    actions = [b for b in blocks if b["type"] == "actions"]
    assert all(len(b["elements"]) <= ACTIONS_LIMIT for b in actions)
    with_buttons = [b for b in actions if any(e["action_id"].startswith("hpg.") for e in b["elements"])]
    assert len(with_buttons) == min(count, MAX_BUTTON_ITEMS)
    note = [b for b in blocks if b["type"] == "context" and "Buttons on the first" in b["elements"][0]["text"]]
    assert len(note) == (count > MAX_BUTTON_ITEMS)
    reply = render_reply(sample, "default")
    assert len(reply["blocks"]) <= BLOCK_LIMIT
