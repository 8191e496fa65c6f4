"""The notification message: one per cluster per evaluation that changed something.

Published to SNS as JSON (the body), with message attributes for subscription filter
policies, a Subject of at most 100 characters and a plain-text rendering for email.
The Slack notifier reads the same JSON back (`Notification.model_validate_json`).

SNS allows 10 message attributes per message; we use at most seven (`test` and `receiver` only
on test notifications). The cluster's tags (known
when the rules select clusters by tag) travel as ONE attribute, `tags`, a String.Array of
"key=value" strings, rather than one attribute per tag: a cluster may carry 50 tags, and tag
keys may hold characters (`:`, `/`, spaces) that attribute names may not. A filter policy
`{"tags": ["team=llm"]}` matches any message whose array holds that element.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..findings import FindingFields, Severity, shape_of
from ..ledger import AlertRecord, Reason
from ..timeutil import Timestamp, isoformat

Status = Literal["firing", "resolved"]

SUBJECT_LIMIT = 99  # SNS: Subject is ASCII, one line, and "less than 100 characters"
ATTRIBUTE_LIMIT = 10  # SNS: message attributes per message
#: SNS takes 256 KiB per message, attributes included: the body keeps clear of it
BODY_BUDGET = 240 * 1024
MESSAGE_VERSION = 1
#: what a test notification says of itself, in every rendering
TEST_NOTE = "sent by `hyperpod-guard test-alert`: not an alert, nothing to do"


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="ignore"))
class FindingPayload(FindingFields):
    """A finding as it travels in a message: its alert's fields, validated (keys it does not
    know are ignored, so an older reader takes a newer message)."""

    fingerprint: str

    @model_validator(mode="before")
    @classmethod
    def _condition_optional(cls, data: Any) -> Any:
        # messages have not always carried the condition: one parked in a dead-letter queue
        # before it did is still delivered
        if isinstance(data, dict) and "condition" not in data:
            return {**data, "condition": ""}
        return data

    @classmethod
    def of(cls, record: AlertRecord) -> FindingPayload:
        return cls(**shape_of(record), fingerprint=record.fingerprint)


class NotificationItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: Reason
    finding: FindingPayload
    first_seen: Timestamp = None
    #: what remediation did or would do: "would replace i-…", "replaced i-…", "skipped: budget spent"
    actions: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        return "resolved" if self.reason == "resolved" else "firing"


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = MESSAGE_VERSION
    cluster: str
    cluster_arn: str | None = None
    region: str | None = None
    sent_at: Timestamp = None
    items: tuple[NotificationItem, ...] = Field(min_length=1)
    #: the cluster's tags when they were read (None: not read, or unreadable)
    tags: dict[str, str] | None = None
    #: set when one notification was too large for one SNS message: this is part `part` of `parts`
    part: int | None = None
    parts: int | None = None
    #: a test notification (`hyperpod-guard test-alert`): no alert behind it, nothing in the ledger;
    #: the Subject, the text and Slack say TEST, and the `test` attribute lets subscriptions filter it
    test: bool = False
    #: who a test notification is meant for (`test-alert --receiver`): the `receiver` attribute
    receiver: str | None = None

    def split(self, budget: int = BODY_BUDGET) -> list[Notification]:
        """This notification as SNS messages whose bodies fit `budget` bytes: itself, unless a
        cluster has hundreds of findings at once (each item's texts are already cut to 2,000
        characters, so one item always fits). Items keep their order across the parts."""
        chunks = self._chunks(self.items, budget)
        if len(chunks) == 1:
            return [self]
        return [self.model_copy(update={"items": chunk, "part": n, "parts": len(chunks)})
                for n, chunk in enumerate(chunks, start=1)]

    def _chunks(self, items: tuple[NotificationItem, ...], budget: int) -> list[tuple[NotificationItem, ...]]:
        candidate = self.model_copy(update={"items": items})
        if len(items) == 1 or len(candidate.body().encode()) <= budget:
            return [items]
        half = len(items) // 2
        return self._chunks(items[:half], budget) + self._chunks(items[half:], budget)

    @property
    def firing(self) -> list[NotificationItem]:
        return [i for i in self.items if i.status == "firing"]

    @property
    def resolved(self) -> list[NotificationItem]:
        return [i for i in self.items if i.status == "resolved"]

    @property
    def status(self) -> Status:
        return "firing" if self.firing else "resolved"

    @property
    def severity(self) -> Severity:
        """The highest severity among firing items (or among resolved ones when all resolved)."""
        items = self.firing or list(self.items)
        return max((i.finding.severity for i in items), key=lambda s: s.rank)

    @property
    def policies(self) -> list[str]:
        return sorted({i.finding.policy for i in self.items})

    @property
    def subject(self) -> str:
        if self.firing:
            head = f"[{self.severity.value.upper()}] {self.cluster}: "
            summary = self.firing[0].finding.summary
            extra = len(self.items) - 1
        else:
            head = f"[RESOLVED] {self.cluster}: "
            summary = self.items[0].finding.summary
            extra = len(self.items) - 1
        tail = f" (+{extra} more)" if extra else ""
        if self.test:
            head = f"[TEST] {head}"
        if self.parts:
            tail += f" [{self.part}/{self.parts}]"
        text = " ".join((head + summary).split())  # one line
        # SNS refuses a Subject with anything but printable ASCII (a control character too)
        text = "".join(c if " " <= c <= "~" else "?" for c in text)
        if len(text) + len(tail) > SUBJECT_LIMIT:
            text = text[: SUBJECT_LIMIT - len(tail) - 3] + "..."
        return text + tail

    def text(self) -> str:
        """Plain text for email subscribers."""
        lines = [f"hyperpod-guard: cluster {self.cluster}" + (f" ({self.region})" if self.region else "")
                 + (f", part {self.part} of {self.parts}" if self.parts else "")]
        if self.test:
            lines.insert(0, f"TEST notification ({TEST_NOTE})" + (f" for receiver {self.receiver}" if self.receiver
                                                                    else ""))
        if self.tags:
            lines.append("tags: " + ", ".join(self.tag_pairs))
        for label, items in (("FIRING", self.firing), ("RESOLVED", self.resolved)):
            if items:
                lines.append("")
                lines.append(f"{label}:")
                for item in items:
                    f = item.finding
                    tag = f" [{item.reason}]" if item.reason not in ("first", "resolved") else ""
                    lines.append(f"- {f.severity.value.upper()} {f.policy} {f.scope}: {f.summary}{tag}")
                    lines.extend(f"    remediation: {action}" for action in item.actions)
        return "\n".join(lines)

    def body(self) -> str:
        """The SNS message body: this model as JSON, plus the plain text."""
        data = self.model_dump(mode="json")
        data.update(status=self.status, severity=self.severity.value, subject=self.subject, text=self.text())
        return json_dumps(data)

    @property
    def tag_pairs(self) -> list[str]:
        return [f"{key}={value}" for key, value in sorted((self.tags or {}).items())]

    def attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes, for subscription filter policies (see the module's docstring)."""
        attributes = {
            "severity": {"DataType": "String", "StringValue": self.severity.value},
            "cluster": {"DataType": "String", "StringValue": self.cluster},
            "policy": {"DataType": "String.Array", "StringValue": json_dumps(self.policies)},
            "status": {"DataType": "String", "StringValue": self.status},
        }
        if self.tags:  # SNS refuses an attribute with an empty value
            attributes["tags"] = {"DataType": "String.Array", "StringValue": json_dumps(self.tag_pairs)}
        if self.test:  # only on tests: a filter policy {"test": [{"exists": false}]} drops them
            attributes["test"] = {"DataType": "String", "StringValue": "true"}
        if self.receiver:
            attributes["receiver"] = {"DataType": "String", "StringValue": self.receiver}
        return attributes


def json_dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
