"""The notification message: one per cluster per evaluation that changed something.

Published to SNS one text per protocol (`sns_message`: the JSON body by default, the email text
(notify/email.py) to email, the Chatbot custom notification (notify/chatbot.py) to https), with
message attributes for subscription filter policies and a Subject of at most 100 characters. The
Slack notifier reads the JSON body back (`Notification.model_validate_json`) and renders each
receiver's items (notify/slack.py). What every rendering says first is `preview`, one sentence.

SNS allows 10 message attributes per message; we use at most nine (`test` and `receiver` only
on test notifications, which carry no `receivers`). `account` and `region` say where the cluster
lives, so a hub's subscriptions can filter by them (`{"account": ["111122223333"]}`,
`{"region": [{"prefix": "eu-"}]}`). The cluster's tags (known when the rules select clusters by
tag) travel as ONE attribute, `tags`, a String.Array of "key=value" strings, rather than one
attribute per tag: a cluster may carry 50 tags, and tag keys may hold characters (`:`, `/`,
spaces) that attribute names may not. A filter policy `{"tags": ["team=llm"]}` matches any
message whose array holds that element.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..findings import FindingFields, Severity, shape_of
from ..ledger import AlertRecord, Reason
from ..timeutil import Timestamp, isoformat
from ..workload.model import Workload

Status = Literal["firing", "resolved"]

SUBJECT_LIMIT = 99  # SNS: Subject is ASCII, one line, and "less than 100 characters"
#: what a phone's lock screen shows of a notification before it cuts (Slack, email): the preview
#: sentence fits it whole
PREVIEW_LIMIT = 100
#: the receiver of an item the rules' routing sends nowhere else: the stack's Slack webhook
DEFAULT_RECEIVER = "default"
ATTRIBUTE_LIMIT = 10  # SNS: message attributes per message
#: SNS takes 256 KiB per message, attributes included: the per-protocol message (body, email, Chatbot) keeps clear of it
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


class ReceiverRef(BaseModel):
    """Where an item goes (routing.route): a Slack receiver by name, with the mention its route adds."""

    model_config = ConfigDict(frozen=True)

    name: str = DEFAULT_RECEIVER
    #: Slack syntax, rendered from the rules ("<!subteam^S0123>"): added to firing items only
    mention: str | None = None
    #: the index of the route that matched in the rules' `routing.routes`; None: the default route
    route: int | None = None


ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "used"]


class ApprovalRef(BaseModel):
    """A remediation action that waits for (or got) a person's approval (remediation/approvals.py):
    Slack's app mode renders Approve / Reject buttons from a pending one."""

    model_config = ConfigDict(frozen=True)

    id: str
    #: what it would do, in words: "replace i-0abc, i-0def"
    action: str
    expires_at: Timestamp = None
    status: ApprovalStatus = "pending"
    decided_by: str | None = None


class NotificationItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: Reason
    finding: FindingPayload
    #: when the problem was first seen, fired (past its grace) and resolved (this episode)
    first_seen: Timestamp = None
    fired_at: Timestamp = None
    resolved_at: Timestamp = None
    #: resolved: what the evaluation that cleared it read (state_now.py); "summary" is a sentence
    resolved_evidence: dict[str, Any] | None = None
    #: what remediation did or would do: "would replace i-…", "replaced i-…", "skipped: budget spent"
    actions: tuple[str, ...] = ()
    #: firing: what happens next without anyone acting (next_step)
    next_step: str | None = None
    #: the policy's (or its override's) `runbook_url` in the rules
    runbook_url: str | None = None
    #: the receivers the rules' routing picked; empty: the default receiver
    receivers: tuple[ReceiverRef, ...] = ()
    #: which of them own the work on the node (a route by owner took this episode, now or before): the episode's
    #: later messages go to them too (AlertRecord.owners)
    owners: tuple[str, ...] = ()
    #: who acknowledged this episode (a Slack user id), when, and until when (None: until it resolves)
    acknowledged_by: str | None = None
    acknowledged_at: Timestamp = None
    acknowledged_until: Timestamp = None
    #: remediation configured `approval: required`: the action awaiting (or given) approval
    approval: ApprovalRef | None = None
    #: firing items about a node of a cluster whose rules turn on `workload` (issue 23): what runs on the
    #: node and who owns it, or why that is unknown (workload/)
    workload: Workload | None = None

    @property
    def status(self) -> Status:
        return "resolved" if self.reason == "resolved" else "firing"

    def lasted(self, at: datetime | None) -> timedelta | None:
        """How long the problem lasted (resolved) or has lasted by `at` (firing); never negative."""
        end = self.resolved_at if self.status == "resolved" and self.resolved_at else at
        if self.first_seen is None or end is None:
            return None
        return max(end - self.first_seen, timedelta(0))

    @property
    def receiver_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.receivers) or (DEFAULT_RECEIVER,)


def next_step(finding: FindingFields, actions: tuple[str, ...]) -> str:
    """What will happen to a firing alert with nobody acting: HyperPod's own node repair, and what
    hyperpod-guard's remediation did or plans; or nothing automatic."""
    steps: list[str] = []
    repaired = False  # something repairs it without a person
    details = finding.details
    recovery, repair = str(details.get("node_recovery") or ""), str(details.get("repair_action") or "")
    if finding.node and recovery and recovery.lower() != "none" and repair.lower() != "none":
        steps.append(f"HyperPod repairs the node automatically (NodeRecovery {recovery}"
                     + (f", repair action {repair})" if repair else ")"))
        repaired = True
    action = actions[0] if actions else None
    if action and action.startswith(("awaiting approval", "rejected by")):
        # the action line says what and until when already: say who acts
        steps.append("remediation waits for an approver to approve or reject it before it lapses"
                     if action.startswith("awaiting") else f"remediation was {action}")
    elif action and action.startswith("would "):
        steps.append(f"remediation is a dry run: it {action.removesuffix(' (dry run)')} and changes nothing")
    elif action and action.startswith("skipped"):
        steps.append(f"remediation {action}")
    elif action:
        steps.append(f"remediation {action}; a resolved message follows once it is healthy")
        repaired = True
    if not steps:
        return "Nothing automatic: a person must act"
    text = "; ".join(steps) + ("" if repaired else "; a person must act")
    return text[0].upper() + text[1:]


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = MESSAGE_VERSION
    cluster: str
    cluster_arn: str | None = None
    #: the AWS account of the cluster (from its ARN): same-named clusters of two accounts differ by it
    account: str | None = None
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
        """This notification as SNS messages that each fit `budget` bytes: the whole per-protocol
        message (`sns_message`: the JSON body, the email and the Chatbot notification), as SNS counts
        it. Itself, unless a cluster has hundreds of findings at once (each item's texts are already
        cut to 2,000 characters, and the email and Chatbot renderings are bounded, so one item always
        fits). Items keep their order across the parts."""
        chunks = self._chunks(self.items, budget)
        if len(chunks) == 1:
            return [self]
        return [self.model_copy(update={"items": chunk, "part": n, "parts": len(chunks)})
                for n, chunk in enumerate(chunks, start=1)]

    def _chunks(self, items: tuple[NotificationItem, ...], budget: int) -> list[tuple[NotificationItem, ...]]:
        candidate = self.model_copy(update={"items": items})
        if len(items) == 1 or len(candidate.sns_message().encode()) <= budget:
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

    def _headline(self, severity_label: str, limit: int, ellipsis: str = "…") -> str:
        """"<LABEL> <cluster>: <what> (+N more)" cut on a word boundary to `limit` characters
        (`severity_label`: "{}" or "[{}]", filled with the severity, RESOLVED or TEST)."""
        lead = self.firing[0] if self.firing else self.items[0]
        if self.firing:
            label, what = severity_label.format(self.severity.value.upper()), lead.finding.summary
        else:
            label = severity_label.format("RESOLVED")
            what = (lead.resolved_evidence or {}).get("summary") or lead.finding.summary
        extra = len(self.items) - 1
        tail = f" (+{extra} more)" if extra else ""
        if self.parts:
            tail += f" [{self.part}/{self.parts}]"
        head = f"{severity_label.format('TEST') + ' ' if self.test else ''}{label} {self.cluster}: "
        return cut_words(" ".join(f"{head}{what}".split()), limit - len(tail), ellipsis) + tail

    @property
    def subject(self) -> str:
        """The SNS Subject (the email's subject): printable ASCII, one line, under 100 characters."""
        # SNS refuses a Subject with anything but printable ASCII (a control character too)
        text = "".join(c if " " <= c <= "~" else "?" for c in self._headline("[{}]", SUBJECT_LIMIT, "..."))
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."

    @property
    def preview(self) -> str:
        """The sentence a phone shows (Slack's fallback `text`, Chatbot's summary): "CRITICAL
        ml-prod: Software update of instance group p5-train failed… (+2 more)", never cut mid-word."""
        return self._headline("{}", PREVIEW_LIMIT)

    @property
    def receiver_names(self) -> list[str]:
        """Every receiver some item goes to (sorted)."""
        return sorted({name for item in self.items for name in item.receiver_names})

    def for_receiver(self, name: str) -> Notification | None:
        """The items routed to receiver `name`, as their own notification (None: none is)."""
        items = tuple(i for i in self.items if name in i.receiver_names)
        return self.model_copy(update={"items": items}) if items else None

    def text(self) -> str:
        """Plain text for email subscribers (notify/email.py)."""
        from . import email

        return email.render(self)

    def body(self) -> str:
        """The SNS message body (the per-protocol message's "default"): this model as JSON, plus the
        status, severity, subject and the email text, for SQS, email-json and Lambda subscribers."""
        data = self.model_dump(mode="json")
        data.update(status=self.status, severity=self.severity.value, subject=self.subject, text=self.text())
        return json_dumps(data)

    def sns_message(self) -> str:
        """The Message published with MessageStructure "json": one text per subscription protocol.

        "default": the JSON body, for every protocol without its own key (the Slack notifier's
        `lambda` subscription, SQS, email-json); "email": the plain text; "https": the Chatbot custom
        notification, since Chatbot subscribes to the topic over https (every other https
        subscriber gets it too)."""
        from . import chatbot

        return json_dumps({"default": self.body(), "email": self.text(), "https": json_dumps(chatbot.render(self))})

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
        else:  # a filter policy {"receivers": ["ml-oncall"]} takes what the rules route there
            attributes["receivers"] = {"DataType": "String.Array", "StringValue": json_dumps(self.receiver_names)}
        if self.account:
            attributes["account"] = {"DataType": "String", "StringValue": self.account}
        if self.region:
            attributes["region"] = {"DataType": "String", "StringValue": self.region}
        return attributes


def cut_words(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` in at most `limit` characters, cut after a whole word (ending in `ellipsis`); mid-word
    only when the text has no space to cut at (one huge token)."""
    if len(text) <= limit:
        return text
    room = max(limit - len(ellipsis), 0)
    cut = text.rfind(" ", 0, room + 1)
    head = text[:cut] if cut > 0 else text[:room]
    return head.rstrip(" ,;:-—(") + ellipsis


def json_dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
