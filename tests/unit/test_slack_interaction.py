"""A click as Slack POSTs it (chatops/interaction.py): what is read, what is refused and why; and who may
click what (chatops/actions.permission), as a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from hyperpod_guard.chatops.actions import permission
from hyperpod_guard.chatops.interaction import Interaction, MalformedInteraction, parse
from hyperpod_guard.notify.buttons import ActionId, ButtonValue
from hyperpod_guard.rules import ChatOps

FIRST_SEEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VALUE = ButtonValue(cluster="ml-prod", fingerprint="0123456789abcdef0123", node="i-0abc", first_seen=FIRST_SEEN)


def payload(action_id: str = "hpg.ack", value: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A block_actions payload as Slack sends it (the fields we ignore included)."""
    data: dict[str, Any] = {
        "type": "block_actions", "token": "verification-token-never-read", "api_app_id": "A0001",
        "team": {"id": "T0001", "domain": "acme"},
        "user": {"id": "U0001", "username": "ana", "name": "ana", "team_id": "T0001"},
        "container": {"type": "message", "message_ts": "1795000000.000100", "channel_id": "C0001", "is_ephemeral": False},
        "trigger_id": "111.222.333", "channel": {"id": "C0001", "name": "ml-oncall"},
        "message": {"ts": "1795000000.000100", "text": "an alert", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/T0001/1/abc",
        "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "text": {"type": "plain_text",
                     "text": "Acknowledge"}, "value": VALUE.encode() if value is None else value,
                     "action_ts": "1795000001.123456"}],
    }
    data.update(overrides)
    return data


def body(data: Any) -> bytes:
    return urlencode({"payload": json.dumps(data)}).encode()


def test_a_click_is_read() -> None:
    click = parse(body(payload()))
    assert click == Interaction(user_id="U0001", user_name="ana", team_id="T0001", channel_id="C0001",
                                message_ts="1795000000.000100", action=ActionId.ACKNOWLEDGE, value=VALUE,
                                action_ts="1795000001.123456", trigger_id="111.222.333")
    assert click.key == "1795000001.123456#U0001#hpg.ack"
    assert click.who == "ana (U0001)"
    # what is queued carries neither Slack's verification token nor the response URL
    queued = click.model_dump_json()
    assert "verification-token" not in queued and "hooks.slack.com" not in queued
    assert Interaction.model_validate_json(queued) == click


@pytest.mark.parametrize("action", list(ActionId))
def test_every_button_of_ours_is_read(action: ActionId) -> None:
    value = ButtonValue(**{**VALUE.model_dump(), "approval": "ap-1"})
    assert parse(body(payload(action, value.encode()))).action is action


def test_a_user_without_a_name_is_named_by_id() -> None:
    click = parse(body(payload(user={"id": "U0002"})))
    assert (click.user_name, click.who) == ("U0002", "U0002")


def test_the_channel_may_come_from_the_container_only() -> None:
    data = payload()
    del data["channel"], data["message"]
    assert parse(body(data)).channel_id == "C0001"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "no `payload` field"),
    (b"payload=1&payload=2", "no `payload` field (or several)"),
    (b"\xff\xfe", "not form-encoded"),
    (b"payload=%7Bnot-json", "not JSON"),
    (body(["a list"]), "type 'None'"),
    (body(payload(type="view_submission")), "type 'view_submission'"),
    (body(payload(actions=[])), "incomplete at actions"),
    (body({k: v for k, v in payload().items() if k != "user"}), "incomplete at user"),
    (body(payload(team={"id": ""})), "incomplete at team.id"),
    (body(payload("hpg.reboot-everything")), "unknown action id 'hpg.reboot-everything'"),
    (body(payload(value="{}")), "value does not decode"),
    (body(payload(value="not json")), "value does not decode"),
    (body(payload(value="")), "value does not decode"),
    (body(payload(value=VALUE.encode().replace('"v":1', '"v":2'))), "version 2"),
    (body(payload("hpg.approve")), "names no approval"),
    (body(payload(container={"type": "view"}, channel=None, message=None)), "names no channel or message"),
    (b"payload=" + b"x" * 300_000, "more than an interaction"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedInteraction) as refused:
        parse(raw)
    assert reason in refused.value.reason
    assert "verification-token" not in refused.value.reason


# --- who may click what --------------------------------------------------------------------------------

GROUPS = {"S0APPROVERS": frozenset({"U0GROUPED"}), "S0ONCALL": frozenset({"U0ONCALL"})}


def click(action: ActionId, user: str = "U0001", team: str = "T0001") -> Interaction:
    return Interaction(user_id=user, user_name=user, team_id=team, channel_id="C0001", message_ts="1.1",
                       action=action, value=VALUE, action_ts="2.2")


@pytest.mark.parametrize(("chatops", "action", "user", "team", "refused"), [
    # acknowledge and silence: anyone while responders is empty
    ({}, ActionId.ACKNOWLEDGE, "U0001", "T0001", None),
    ({}, ActionId.SILENCE_4H, "U0001", "T0001", None),
    # ... else the responders: a user, or a member of a group
    ({"responders": ["U0002"]}, ActionId.ACKNOWLEDGE, "U0001", "T0001", "only the responders may acknowledge"),
    ({"responders": ["U0002"]}, ActionId.SILENCE_1H, "U0001", "T0001", "only the responders may silence"),
    ({"responders": ["U0001"]}, ActionId.SILENCE_24H, "U0001", "T0001", None),
    ({"responders": ["S0ONCALL"]}, ActionId.ACKNOWLEDGE, "U0ONCALL", "T0001", None),
    # approve and reject: nobody while approvers is empty
    ({}, ActionId.APPROVE, "U0001", "T0001", "rules.chatops.approvers is empty"),
    ({"responders": ["U0001"]}, ActionId.REJECT, "U0001", "T0001", "rules.chatops.approvers is empty"),
    ({"approvers": ["U0002"]}, ActionId.APPROVE, "U0001", "T0001", "only the approvers may approve"),
    ({"approvers": ["U0002"]}, ActionId.REJECT, "U0001", "T0001", "only the approvers may reject"),
    ({"approvers": ["U0001"]}, ActionId.APPROVE, "U0001", "T0001", None),
    ({"approvers": ["W0001"]}, ActionId.APPROVE, "W0001", "T0001", None),
    ({"approvers": ["S0APPROVERS"]}, ActionId.APPROVE, "U0GROUPED", "T0001", None),
    ({"approvers": ["S0APPROVERS"]}, ActionId.APPROVE, "U0ONCALL", "T0001", "only the approvers may approve"),
    # an approver is not a responder by that alone
    ({"approvers": ["U0001"], "responders": ["U0002"]}, ActionId.ACKNOWLEDGE, "U0001", "T0001", "responders"),
    # the workspace, when set, before anything else
    ({"team_id": "T0001"}, ActionId.ACKNOWLEDGE, "U0001", "T0001", None),
    ({"team_id": "T0002"}, ActionId.ACKNOWLEDGE, "U0001", "T0001", "workspace T0001 do not count"),
    ({"team_id": "T0002", "approvers": ["U0001"]}, ActionId.APPROVE, "U0001", "T0001", "workspace T0001"),
])
def test_permission(chatops: dict[str, Any], action: ActionId, user: str, team: str, refused: str | None) -> None:
    asked: list[str] = []

    def members(group: str) -> frozenset[str]:
        asked.append(group)
        return GROUPS.get(group, frozenset())

    why = permission(click(action, user, team), ChatOps.model_validate(chatops), members)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why
    # groups are asked about only when the user is not named outright
    assert all(g.startswith("S") for g in asked)
