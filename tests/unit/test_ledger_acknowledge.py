"""Acknowledged alerts (issue 20) as timelines: an acknowledgement stops repeats while it lasts (until its
end, or until the episode resolves when it has none); an escalation and the resolved still go; a new
episode starts unacknowledged; a repeat left owed before the acknowledgement is not sent after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hyperpod_guard.findings import Escalation, Severity
from hyperpod_guard.ledger import AlertRecord, Reason, Timing, carry, observe
from tests.unit.test_ledger import (
    ESCALATED, FIRING, FIRST, PENDING, REPEAT, RESOLVE, RESOLVED, T0, Step, finding, h, replay,
)


def acknowledged(record: AlertRecord | None, minute: float, until: float | None) -> AlertRecord:
    """What LedgerStore.acknowledge writes: who, when, until when (None: until resolved)."""
    assert record is not None
    return replace(record, acknowledged_by="U0AAA", acknowledged_at=T0 + timedelta(minutes=minute),
                   acknowledged_until=T0 + timedelta(minutes=until) if until is not None else None)


def test_acknowledged_until_resolved_sends_no_repeat_but_the_resolved():
    fired = replay([Step(0, True, FIRING, FIRST)])
    record = acknowledged(fired.record, 10, None)
    result = replay([
        Step(h(4) + 1, True, FIRING, None, why="acknowledged by U0AAA 3h51m ago; no repeats until resolved"),
        Step(h(8) + 1, True, FIRING, None),
        Step(h(30), True, FIRING, None),
        Step(h(30) + 5, "resolve", RESOLVED, RESOLVE),
    ], record=record)
    assert result.sent == [(h(30) + 5, RESOLVE)]


def test_acknowledged_for_a_while_repeats_again_once_it_ends():
    fired = replay([Step(0, True, FIRING, FIRST)])
    record = acknowledged(fired.record, 10, h(6))
    result = replay([
        Step(h(4) + 1, True, FIRING, None,
             why="acknowledged by U0AAA 3h51m ago; no repeats until 2026-06-01T18:00:00Z"),
        Step(h(6) - 1, True, FIRING, None),
        Step(h(6), True, FIRING, REPEAT, why="repeat: 6h since last notification"),
        Step(h(8), True, FIRING, None),
    ], record=record)
    assert result.sent == [(h(6), REPEAT)]


def test_an_escalation_is_sent_while_acknowledged():
    escalating = finding(severity=Severity.INFO, escalation=Escalation(timedelta(hours=1), Severity.CRITICAL))
    fired = replay([Step(0, True, FIRING, FIRST)], the_finding=escalating)
    record = acknowledged(fired.record, 10, None)
    result = replay([
        Step(h(1) + 1, True, FIRING, ESCALATED, why="escalated from info to critical"),
        Step(h(6), True, FIRING, None),
    ], the_finding=escalating, record=record)
    assert result.sent == [(h(1) + 1, ESCALATED)]


def test_a_new_episode_starts_unacknowledged():
    fired = replay([Step(0, True, FIRING, FIRST)])
    record = acknowledged(fired.record, 10, None)
    result = replay([
        Step(30, "resolve", RESOLVED, RESOLVE),
        Step(60, True, FIRING, FIRST),
        Step(60 + h(4), True, FIRING, REPEAT),
    ], record=record)
    assert result.sent == [(30, RESOLVE), (60, FIRST), (60 + h(4), REPEAT)]
    assert result.record is not None and result.record.acknowledged_by is None


def test_acknowledging_a_pending_alert_does_not_hold_its_first_notification():
    grace = Timing(grace=timedelta(minutes=15))
    pending = replay([Step(0, True, PENDING, None)], timing=grace)
    record = acknowledged(pending.record, 5, None)
    result = replay([Step(15, True, FIRING, FIRST), Step(15 + h(4), True, FIRING, None)], timing=grace, record=record)
    assert result.sent == [(15, FIRST)]


def test_a_repeat_owed_before_the_acknowledgement_is_dropped():
    """A repeat decided, then its send failed (or left for a grouped message): acknowledged before it went
    out, it does not go; the record no longer owes it."""
    failed = replay([Step(0, True, FIRING, FIRST), Step(h(4) + 1, True, FIRING, REPEAT, send="fail")])
    assert failed.record is not None and failed.record.owed is REPEAT
    record = acknowledged(failed.record, h(4) + 2, None)
    now = T0 + timedelta(minutes=h(4) + 3)
    carried = carry(record, now, token="flush")
    assert (carried.notify, carried.record.owed, carried.changed) == (None, None, True)
    assert carried.why == "owed repeat dropped: acknowledged by U0AAA 1m ago; no repeats until resolved"
    seen = observe(record, finding(), Timing(), now, token="other")
    assert (seen.notify, seen.record.owed) == (None, None)
    assert seen.why.startswith("acknowledged by U0AAA 1m ago; no repeats until resolved; owed repeat dropped")


def test_an_owed_resolved_or_escalation_is_still_sent_when_acknowledged():
    fired = replay([Step(0, True, FIRING, FIRST), Step(30, "resolve", RESOLVED, RESOLVE, send="fail")])
    record = acknowledged(fired.record, 31, None)
    assert record.owed is Reason.RESOLVED
    now: datetime = T0 + timedelta(minutes=32)
    assert carry(record, now, token="retry").notify is Reason.RESOLVED
