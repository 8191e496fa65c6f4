"""The alert ledger: per fingerprint, pending -> firing -> resolved, and whether to notify.

`observe()` (seen now), `clear()` (gone) and `carry()` (neither) are the whole notification
policy as pure functions, in the spirit of Alertmanager's dedup stage: given what the ledger
knew, what this evaluation saw and the time, they return the new record and why to notify
(first / repeat / escalated / resolved) or not. `ledger_store.LedgerStore` stores records in
DynamoDB with conditional writes, so concurrent evaluations agree on exactly one notification.

Acknowledged (someone said "I'm on it", `LedgerStore.acknowledge`, from Slack): no repeat is sent
while the acknowledgement lasts (until its `acknowledged_until`, or until the episode ends when that
is None); an escalation and the resolved still are. A new episode starts unacknowledged.

Sending is at-least-once-safe without duplicates: a decision to notify is written first as
an *owed* notification with a short claim (lease) by the invocation that will send it; the
claimer confirms after SNS accepted the message (last_notified is set only then) or releases
the claim when publishing failed, so a retry sends it, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .findings import Finding, FindingFields, Severity, shape_of
from .timeutil import format_duration, isoformat


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Reason(StrEnum):
    """Why a notification is sent (Alertmanager's dedup stage reasons, plus escalation)."""

    FIRST = "first"
    REPEAT = "repeat"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    #: no notification was due, but remediation acted (or would have) on the alert: decided by
    #: the pipeline's compose stage, never by the ledger
    REMEDIATED = "remediated"


#: how long an invocation may hold the right to send an owed notification
CLAIM_LEASE = timedelta(minutes=2)
#: last_seen is refreshed at most this often when nothing else changes (it only feeds the
#: 24h expiry of event-reported findings, so minutes are precise enough)
LAST_SEEN_RESOLUTION = timedelta(minutes=5)
#: resolved records are kept this long (DynamoDB TTL), for the demo, audits and flapping
RESOLVED_RETENTION = timedelta(days=7)
#: the longest text an alert keeps (summary, group, node, each string of its details): an event's
#: text can be as long as the event (256 KiB), but a ledger item holds 400 KB and an SNS message 256 KiB
TEXT_LIMIT = 2000


@dataclass(frozen=True)
class Timing:
    """The notification settings of a finding's policy (from the rules)."""

    grace: timedelta = timedelta(0)
    repeat_interval: timedelta = timedelta(hours=4)
    notify_on_resolve: bool = True


@dataclass(frozen=True, kw_only=True)
class AlertRecord(FindingFields):
    """A finding's alert: its fields (the newest seen, texts bounded) and its lifecycle."""

    fingerprint: str
    state: AlertState
    first_seen: datetime
    last_seen: datetime
    #: event-origin alerts: when the newest report of the problem was made (the event's time)
    reported_at: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    #: what was true when it resolved (state_now.resolved_evidence): the resolved message shows it
    resolved_evidence: dict[str, Any] | None = None
    last_notified: datetime | None = None
    notified_severity: Severity | None = None
    #: a notification decided but not yet confirmed sent
    owed: Reason | None = None
    claim_token: str | None = None
    claim_until: datetime | None = None
    #: the last transition, in words (shown in the demo and kept for audits)
    reason: str = ""
    #: who acknowledged this episode (a Slack user id), when, and until when (None: until it resolves)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_until: datetime | None = None
    #: the receivers a route by owner (the workload on the node) sent this episode's pages to: its later
    #: messages, the resolved included, go to them too, whatever the workload reads then (a new episode: none)
    owners: tuple[str, ...] = ()
    #: optimistic concurrency: every write checks and increments it (0 = not stored yet)
    version: int = 0

    @property
    def open(self) -> bool:
        return self.state is not AlertState.RESOLVED or self.owed is not None

    def acknowledged(self, now: datetime) -> bool:
        """Someone acknowledged this episode and the acknowledgement still lasts at `now`."""
        return self.acknowledged_by is not None and (self.acknowledged_until is None or self.acknowledged_until > now)

    def acknowledgement(self, now: datetime) -> str:
        """The acknowledgement in words: "acknowledged by U0123 12m ago; no repeats until resolved"."""
        until = isoformat(self.acknowledged_until) if self.acknowledged_until else "resolved"
        since = f" {_since(now, self.acknowledged_at)} ago" if self.acknowledged_at else ""
        return f"acknowledged by {self.acknowledged_by}{since}; no repeats until {until}"

    def claimed_by_other(self, token: str, now: datetime) -> bool:
        return bool(self.claim_token and self.claim_token != token and self.claim_until and self.claim_until > now)

    @classmethod
    def start(cls, finding: Finding, now: datetime) -> AlertRecord:
        return cls(**bounded(shape_of(finding)), fingerprint=finding.fingerprint, state=AlertState.PENDING,
                   first_seen=now, last_seen=now)


def bounded(value: Any) -> Any:
    """`value` with every string longer than TEXT_LIMIT cut, ending in "…" (containers walked)."""
    if isinstance(value, str):
        return value if len(value) <= TEXT_LIMIT else value[: TEXT_LIMIT - 1] + "…"
    if isinstance(value, dict):
        return {key: bounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [bounded(item) for item in value]
    if isinstance(value, tuple):
        return tuple(bounded(item) for item in value)
    return value


@dataclass(frozen=True)
class Decision:
    record: AlertRecord
    notify: Reason | None
    #: why, in words: "pending: 3m of 15m grace", "repeat: 4h since last notification", ...
    why: str
    #: the stored record must be written
    changed: bool = True
    #: silenced or inhibited: nothing is sent, and remediation leaves it alone
    muted: bool = False
    #: the problem was observed in this evaluation: when (the report's time for an event's
    #: text, the read's for state); None when the record was only carried or cleared
    observed_at: datetime | None = None


def _since(now: datetime, then: datetime) -> str:
    # clocks of concurrent invocations differ slightly: never print a negative duration
    return format_duration(timedelta(seconds=max(0, int((now - then).total_seconds()))))


def _owed_or(record: AlertRecord, wanted: Reason | None, token: str, now: datetime) -> tuple[Reason | None, bool]:
    """What to send now: this evaluation's reason, else a notification still owed; nothing
    while another invocation holds the claim (it is sending). Returns (reason, busy)."""
    reason = wanted or _still_owed(record, now)
    if reason is not None and record.claimed_by_other(token, now):
        return None, True
    return reason, False


def _still_owed(record: AlertRecord, now: datetime) -> Reason | None:
    """The notification the record owes, except a repeat of an episode acknowledged since it was
    decided (left for a grouped message, or its send failed): nobody is to be reminded of it now."""
    if record.owed is Reason.REPEAT and record.acknowledged(now):
        return None
    return record.owed


def observe(
    record: AlertRecord | None, finding: Finding, timing: Timing, now: datetime, *,
    muted: str | None = None, token: str = "", reported_at: datetime | None = None,
) -> Decision:
    """The finding was seen in this evaluation. `muted` (a silence or an inhibition, in
    words) keeps the state moving but sends nothing. `reported_at`: the time of the event
    that reported it (event-origin findings)."""
    decision = _observe(record, finding, timing, now, muted=muted, token=token, reported_at=reported_at)
    if (
        record is not None and decision.notify is None and now - record.last_seen < LAST_SEEN_RESOLUTION
        and replace(decision.record, last_seen=record.last_seen, reason=record.reason) == record
    ):
        # nothing but the time changed: skip the write (a storm of duplicates costs reads only)
        return Decision(record, None, decision.why, changed=False, muted=decision.muted)
    return decision


def _observe(
    record: AlertRecord | None, finding: Finding, timing: Timing, now: datetime, *, muted: str | None, token: str,
    reported_at: datetime | None,
) -> Decision:
    if record is None:
        record = AlertRecord.start(finding, now)
    elif (record.state is AlertState.RESOLVED and record.owed is Reason.RESOLVED
          and not record.claimed_by_other(token, now)):
        # back before its resolved was sent: nobody heard it end, so the episode goes on
        record = replace(record, state=AlertState.FIRING, resolved_at=None, resolved_evidence=None, owed=None)
    elif record.state is AlertState.RESOLVED:  # back again: a new episode
        record = replace(AlertRecord.start(finding, now), version=record.version,
                         claim_token=record.claim_token, claim_until=record.claim_until)
    severity = finding.severity_at(record.first_seen, now)
    if reported_at and record.reported_at and record.reported_at > reported_at:
        reported_at = record.reported_at
    # what the finding says now, except a group the record knew and this report did not name
    seen = {**bounded(shape_of(finding)), "severity": severity,
            "instance_group": bounded(finding.instance_group) or record.instance_group}
    updated = replace(record, **seen, last_seen=now, reported_at=reported_at or record.reported_at)
    if updated.state is AlertState.PENDING:
        if now - updated.first_seen < timing.grace:
            why = f"pending: {_since(now, updated.first_seen)} of {format_duration(timing.grace)} grace"
            return Decision(replace(updated, reason=why), None, why)
        updated = replace(updated, state=AlertState.FIRING, fired_at=now)

    if muted:
        return Decision(replace(updated, owed=None, reason=muted), None, muted, muted=True)
    wanted: Reason | None = None
    if updated.last_notified is None:
        wanted, why = Reason.FIRST, "firing: first notification"
    elif updated.notified_severity and severity.rank > updated.notified_severity.rank:
        wanted, why = Reason.ESCALATED, f"escalated from {updated.notified_severity.value} to {severity.value}"
    elif updated.acknowledged(now):
        why = updated.acknowledgement(now)
    elif now - updated.last_notified >= timing.repeat_interval:
        wanted, why = Reason.REPEAT, f"repeat: {_since(now, updated.last_notified)} since last notification"
    else:
        next_at = updated.last_notified + timing.repeat_interval
        why = f"firing: notified {_since(now, updated.last_notified)} ago, next repeat in {_since(next_at, now)}"
    return _with_notification(updated, wanted, why, token, now)


def _with_notification(record: AlertRecord, wanted: Reason | None, why: str, token: str, now: datetime) -> Decision:
    notify, busy = _owed_or(record, wanted, token, now)
    if busy:
        why = f"{why} (another invocation is sending it)"
        return Decision(replace(record, owed=wanted or record.owed, reason=why), None, why)
    if notify and not wanted:
        why = f"re-sending owed {notify.value} notification"
    elif record.owed and not notify:
        why = f"{why}; owed {record.owed.value} dropped: {record.acknowledgement(now)}".lstrip("; ")
    return Decision(replace(record, owed=notify, reason=why), notify, why)


def clear(
    record: AlertRecord, timing: Timing, now: datetime, why: str, *, muted: str | None = None, token: str = "",
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """The problem is gone (not seen where it was looked for, an event said so, or it expired).

    A resolved is owed to every firing that was notified, silenced or inhibited since or not:
    it is sent now, when the problem clears, so that no page stays open and a recurrence
    starts a new episode (firing, resolved, firing). `muted` only keeps an alert that was
    never notified quiet. `evidence`: what is true now (state_now.resolved_evidence)."""
    if record.state is AlertState.RESOLVED:
        return carry(record, now, token=token)
    resolved = replace(record, state=AlertState.RESOLVED, resolved_at=now,
                       resolved_evidence=bounded(evidence) if evidence else {"summary": why})
    if record.state is AlertState.PENDING:
        text = f"cleared before its grace elapsed ({why})"
        return Decision(replace(resolved, owed=None, reason=text), None, text)
    # a first notification another invocation is sending right now counts as notified
    being_sent = record.owed is not None and record.claimed_by_other(token, now)
    if not timing.notify_on_resolve or (record.last_notified is None and not being_sent):
        because = "resolve notifications are off" if not timing.notify_on_resolve else "it was never notified"
        if muted and record.last_notified is None:
            because = f"{because} ({muted})"
        text = f"resolved: {why}; not notified: {because}"
        return Decision(replace(resolved, owed=None, reason=text), None, text)
    note = f" (notified before; {muted})" if muted else ""
    return _with_notification(resolved, Reason.RESOLVED, f"resolved: {why}{note}", token, now)


def carry(record: AlertRecord, now: datetime, *, token: str = "") -> Decision:
    """Neither seen nor cleared: keep the record, but send a notification still owed."""
    if record.owed is None:
        return Decision(record, None, "unchanged", changed=False)
    decision = _with_notification(record, None, "", token, now)
    dropped = decision.record.owed is None  # a repeat acknowledged since it was decided: written as not owed
    return decision if decision.notify or dropped else replace(decision, changed=False)
