"""A click on one of our buttons, as Slack POSTs it to the interactivity endpoint: a `block_actions`
interaction (https://api.slack.com/reference/interaction-payloads/block-actions), form-encoded as
`payload=<JSON>`. Only the fields the actions use are read; the rest (the verification `token`, the
`response_url`, the message's blocks) are ignored and never copied, so they are not queued or logged.

`parse` turns a request body into an `Interaction`, or raises MalformedInteraction with a reason that is
safe to log: not an interaction, another type, no action, an action id that is none of ours
(notify/buttons.ActionId), a button value that does not decode (notify/buttons.ButtonValue). The
`Interaction` is also what the endpoint queues for the actions worker (its JSON).
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import HyperPodGuardError
from ..notify.buttons import ActionId, ButtonValue

#: what a body may be at most: Slack's interaction payloads are a few kB (the message's blocks included)
MAX_BODY = 256 * 1024
#: the actions that decide an approval: their button value carries the approval's id
APPROVAL_ACTIONS = frozenset({ActionId.APPROVE, ActionId.REJECT})


class MalformedInteraction(HyperPodGuardError):
    """A signed request that is no click we act on; `reason` is safe to log (no token, no body)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- what Slack sends (only the fields we read) -------------------------------------------------------


class _Slack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Team(_Slack):
    id: str = Field(min_length=1)


class _User(_Slack):
    id: str = Field(min_length=1)
    username: str | None = None
    name: str | None = None


class _Channel(_Slack):
    id: str = Field(min_length=1)


class _Container(_Slack):
    message_ts: str | None = None
    channel_id: str | None = None


class _Message(_Slack):
    ts: str


class _Action(_Slack):
    action_id: str
    value: str | None = None
    action_ts: str = Field(min_length=1)


class _BlockActions(_Slack):
    type: Literal["block_actions"]
    team: _Team
    user: _User
    channel: _Channel | None = None
    container: _Container = Field(default_factory=_Container)
    message: _Message | None = None
    trigger_id: str | None = None
    actions: list[_Action] = Field(min_length=1)


# -- what the actions worker gets ---------------------------------------------------------------------


class Interaction(BaseModel):
    """One click: who, where, which button, and what the button stood for."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    #: the Slack user name (falls back to the id): the author of a silence, who acknowledged or approved
    user_name: str
    team_id: str
    channel_id: str
    #: the message the button was on (the alert's parent message)
    message_ts: str
    action: ActionId
    value: ButtonValue
    #: when Slack says the button was clicked: with the user and the action, the click's identity
    action_ts: str
    trigger_id: str | None = None

    @property
    def key(self) -> str:
        """The click's identity: a redelivery of its queue message has the same (handlers/slack_actions.py)."""
        return f"{self.action_ts}#{self.user_id}#{self.action}"

    @property
    def who(self) -> str:
        """How the clicking user is named in the ledger, the audit and replies: "<name> (<id>)"."""
        return f"{self.user_name} ({self.user_id})" if self.user_name != self.user_id else self.user_id

    @property
    def message(self) -> str:
        """The Slack message the button was on, in words (a silence's comment names it)."""
        return f"Slack message {self.message_ts} in channel {self.channel_id}"


def _form_payload(body: str | bytes) -> str:
    if len(body) > MAX_BODY:
        raise MalformedInteraction(f"the body is {len(body)} bytes, more than an interaction ({MAX_BODY})")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise MalformedInteraction("the body is not form-encoded (application/x-www-form-urlencoded)") from None
    payloads = form.get("payload", [])
    if len(payloads) != 1:
        raise MalformedInteraction("the body has no `payload` field (or several)")
    return payloads[0]


def parse(body: str | bytes) -> Interaction:
    """The click in a request body (form-encoded `payload=<JSON>`); MalformedInteraction if it is none we act on."""
    payload = _form_payload(body)
    try:
        data = json.loads(payload)
    except ValueError:
        raise MalformedInteraction("the payload is not JSON") from None
    kind = data.get("type") if isinstance(data, dict) else None
    if kind != "block_actions":
        raise MalformedInteraction(f"an interaction of type {str(kind)[:40]!r}, not a button click (block_actions)")
    try:
        raw = _BlockActions.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise MalformedInteraction(f"the block_actions payload is incomplete at {where}: {first['msg']}") from None
    action = raw.actions[0]
    try:
        action_id = ActionId(action.action_id)
    except ValueError:
        raise MalformedInteraction(f"unknown action id {action.action_id[:60]!r}: not one of our buttons") from None
    try:
        value = ButtonValue.decode(action.value or "")
    except ValueError as exc:
        raise MalformedInteraction(f"the {action_id} button's value does not decode: {str(exc)[:200]}") from None
    if action_id in APPROVAL_ACTIONS and not value.approval:
        raise MalformedInteraction(f"the {action_id} button's value names no approval")
    channel = raw.channel.id if raw.channel else raw.container.channel_id
    message_ts = raw.container.message_ts or (raw.message.ts if raw.message else None)
    if not channel or not message_ts:
        raise MalformedInteraction("the click names no channel or message (not a button on a message)")
    return Interaction(
        user_id=raw.user.id, user_name=raw.user.username or raw.user.name or raw.user.id, team_id=raw.team.id,
        channel_id=channel, message_ts=message_ts, action=action_id, value=value, action_ts=action.action_ts,
        trigger_id=raw.trigger_id,
    )
