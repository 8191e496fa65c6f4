"""The buttons of an app-mode Slack message: what notify/slack.py renders and the interactivity
endpoint (chatops/) parses back. The contract between them:

- `action_id`: one of `ActionId` (`hpg.ack`, `hpg.silence.1h|4h|24h`, `hpg.approve`, `hpg.reject`);
- `value`: compact JSON naming the alert episode the button is about, `ButtonValue`:
  `{"v":1,"c":<cluster>,"f":<fingerprint>,"n":<node or null>,"s":<first_seen>}`, plus `"a":<approval id>`
  on Approve / Reject. Slack keeps a button's value up to 2,000 characters.

The value names the episode (first_seen), not just the alert: a click on an old message after the
alert resolved and fired again must not acknowledge the new episode (LedgerStore.acknowledge checks it).
A value is data from Slack, signed but typed by nobody we trust: `decode` validates it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..timeutil import isoformat

#: Slack's limit on a button's `value`
VALUE_LIMIT = 2000
VERSION = 1


class ActionId(StrEnum):
    ACKNOWLEDGE = "hpg.ack"
    SILENCE_1H = "hpg.silence.1h"
    SILENCE_4H = "hpg.silence.4h"
    SILENCE_24H = "hpg.silence.24h"
    APPROVE = "hpg.approve"
    REJECT = "hpg.reject"


#: how long each Silence button silences the alert's scope
SILENCE_FOR: dict[ActionId, timedelta] = {
    ActionId.SILENCE_1H: timedelta(hours=1),
    ActionId.SILENCE_4H: timedelta(hours=4),
    ActionId.SILENCE_24H: timedelta(hours=24),
}


class ButtonValue(BaseModel):
    """What a button is about: an alert episode (and, on Approve / Reject, the approval). Fields by
    their domain names; the JSON names are the short ones of the contract (v, c, f, n, s, a), and
    either constructs one."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    version: int = Field(VERSION, alias="v")
    cluster: str = Field(alias="c", min_length=1)
    fingerprint: str = Field(alias="f", min_length=1)
    node: str | None = Field(None, alias="n")
    first_seen: datetime = Field(alias="s")
    approval: str | None = Field(None, alias="a")

    @field_validator("first_seen")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("first_seen must carry a time zone")
        return value.astimezone(UTC)

    def encode(self) -> str:
        """The button's `value`: compact JSON, `a` only when set. Raises ValueError over VALUE_LIMIT
        (a cluster name and a node id are bounded far below it: a sign of a bug, not of data)."""
        data: dict[str, object] = {"v": self.version, "c": self.cluster, "f": self.fingerprint, "n": self.node,
                                   "s": isoformat(self.first_seen)}
        if self.approval is not None:
            data["a"] = self.approval
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if len(text) > VALUE_LIMIT:
            raise ValueError(f"a button value is at most {VALUE_LIMIT} characters, this one {len(text)}")
        return text

    @classmethod
    def decode(cls, text: str) -> ButtonValue:
        """A value back from Slack; ValueError when it is not one we rendered (or a newer version)."""
        if len(text) > VALUE_LIMIT:
            raise ValueError(f"a button value is at most {VALUE_LIMIT} characters")
        try:
            value = cls.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"not a hyperpod-guard button value ({exc.error_count()} errors)") from None
        if value.version != VERSION:
            raise ValueError(f"button value version {value.version}, this code reads {VERSION}")
        return value
