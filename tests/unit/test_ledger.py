"""The alert ledger as timelines with an injected clock, in the spirit of Alertmanager's
acceptance tests: each row is one evaluation (minute, what it saw, the state after it,
what it notified), replayed through observe/clear/carry with the record carried forward.

Whenever a step notifies, the replay does what commit + the sender would: the record gets
the step's claim, and then "SNS accepted" applies what `LedgerStore.confirm` does
(last_notified=now, notified_severity=severity, owed=None, claim dropped), "SNS failed"
applies `release` (claim dropped, owed kept), and "crashed" leaves the claim held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Literal

import pytest

from hyperpod_guard.findings import Escalation, Finding, Severity
from hyperpod_guard.ledger import (
    CLAIM_LEASE,
    AlertRecord,
    AlertState,
    Decision,
    Reason,
    Timing,
    carry,
    clear,
    observe,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
PENDING, FIRING, RESOLVED = AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED
FIRST, REPEAT, ESCALATED, RESOLVE = Reason.FIRST, Reason.REPEAT, Reason.ESCALATED, Reason.RESOLVED
SILENCE = "silenced: maintenance window"


def h(hours: float) -> float:
    """Hours as minutes, for readable rows."""
    return hours * 60


def finding(**overrides) -> Finding:
    fields = dict(
        policy="degraded-group", severity=Severity.WARNING, cluster="training", condition="status-degraded",
        summary="Instance group gpu-workers is Degraded", instance_group="gpu-workers",
    )
    fields.update(overrides)
    return Finding(**fields)


@dataclass(frozen=True)
class Step:
    minute: float
    #: True: observed; "resolve": cleared; False: neither (carry)
    seen: bool | Literal["resolve"]
    state: AlertState
    notify: Reason | None
    why: str | None = None
    muted: str | None = None
    token: str = "me"
    #: what happens to a notification: "ok" (confirmed), "fail" (released), "crash" (claim kept)
    send: Literal["ok", "fail", "crash"] = "ok"


@dataclass
class Replay:
    record: AlertRecord | None
    decisions: list[Decision]
    sent: list[tuple[float, Reason]]


def replay(steps: list[Step], *, timing: Timing = Timing(), the_finding: Finding | None = None,
           record: AlertRecord | None = None) -> Replay:
    the_finding = the_finding or finding()
    decisions: list[Decision] = []
    sent: list[tuple[float, Reason]] = []
    for step in steps:
        now = T0 + timedelta(minutes=step.minute)
        if step.seen is True:
            decision = observe(record, the_finding, timing, now, muted=step.muted, token=step.token)
        elif step.seen == "resolve":
            assert record is not None, "cannot clear what was never seen"
            decision = clear(record, timing, now, "gone", muted=step.muted, token=step.token)
        else:
            assert record is not None, "nothing to carry"
            decision = carry(record, now, token=step.token)
        decisions.append(decision)
        label = f"step at minute {step.minute}: {decision.why!r}"
        assert (decision.record.state, decision.notify) == (step.state, step.notify), label
        if step.why is not None:
            assert decision.why == step.why, label
        record = decision.record
        if decision.notify:
            # commit: the notifying invocation claims the owed notification
            assert record.owed is decision.notify, label
            record = replace(record, claim_token=step.token, claim_until=now + CLAIM_LEASE)
            if step.send == "ok":  # confirm
                sent.append((step.minute, decision.notify))
                record = replace(record, last_notified=now, notified_severity=record.severity, owed=None,
                                 claim_token=None, claim_until=None)
            elif step.send == "fail":  # release
                record = replace(record, claim_token=None, claim_until=None)
    return Replay(record, decisions, sent)


# -- firing and grace ---------------------------------------------------------------


def test_without_grace_the_first_sighting_fires_and_notifies_at_once():
    result = replay([
        Step(0, True, FIRING, FIRST, why="firing: first notification"),
        Step(5, True, FIRING, None, why="firing: notified 5m ago, next repeat in 3h55m"),
    ])
    assert result.sent == [(0, FIRST)]
    assert result.record.fired_at == T0
    assert result.record.first_seen == T0
    assert result.record.last_seen == T0 + timedelta(minutes=5)


def test_grace_keeps_it_pending_until_it_has_lasted_that_long():
    result = replay([
        Step(0, True, PENDING, None, why="pending: 0s of 15m grace"),
        Step(10, True, PENDING, None, why="pending: 10m of 15m grace"),
        Step(14.99, True, PENDING, None),
        Step(15, True, FIRING, FIRST, why="firing: first notification"),
        Step(20, True, FIRING, None),
    ], timing=Timing(grace=timedelta(minutes=15)))
    assert result.sent == [(15, FIRST)]
    assert result.record.first_seen == T0
    assert result.record.fired_at == T0 + timedelta(minutes=15)


def test_cleared_while_pending_resolves_silently():
    result = replay([
        Step(0, True, PENDING, None),
        Step(10, "resolve", RESOLVED, None, why="cleared before its grace elapsed (gone)"),
        Step(20, False, RESOLVED, None, why="unchanged"),
    ], timing=Timing(grace=timedelta(minutes=15)))
    assert result.sent == []
    assert result.record.fired_at is None
    assert result.record.resolved_at == T0 + timedelta(minutes=10)
    assert result.record.owed is None


# -- resolving ------------------------------------------------------------------------


def test_firing_then_cleared_sends_a_resolved_notification_once():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(30, "resolve", RESOLVED, RESOLVE, why="resolved: gone"),
        Step(40, "resolve", RESOLVED, None, why="unchanged"),
        Step(50, False, RESOLVED, None),
    ])
    assert result.sent == [(0, FIRST), (30, RESOLVE)]
    assert result.decisions[2].changed is False
    assert result.record.resolved_at == T0 + timedelta(minutes=30)


def test_notify_on_resolve_off_resolves_without_a_message():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(30, "resolve", RESOLVED, None, why="resolved: gone; not notified: resolve notifications are off"),
    ], timing=Timing(notify_on_resolve=False))
    assert result.sent == [(0, FIRST)]
    assert result.record.owed is None
    assert result.record.open is False


# -- repeat -----------------------------------------------------------------------------


def test_repeat_interval_seen_every_30m_for_9h_repeats_at_exactly_4h_and_8h():
    steps = [
        Step(m, True, FIRING, {0: FIRST, h(4): REPEAT, h(8): REPEAT}.get(m))
        for m in range(0, int(h(9)) + 1, 30)
    ]
    result = replay(steps, timing=Timing(repeat_interval=timedelta(hours=4)))
    assert result.sent == [(0, FIRST), (h(4), REPEAT), (h(8), REPEAT)]
    assert len(steps) == 19
    assert result.decisions[8].why == "repeat: 4h since last notification"
    assert result.decisions[7].why == "firing: notified 3h30m ago, next repeat in 30m"


def test_mutation_check_repeat_is_neither_early_nor_skipped():
    """3h59m must not repeat (fails if the interval were ignored); 4h must (fails if repeat
    were never honoured); the next one counts from the repeat, not from the first."""
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(h(4) - 1, True, FIRING, None, why="firing: notified 3h59m ago, next repeat in 1m"),
        Step(h(4), True, FIRING, REPEAT, why="repeat: 4h since last notification"),
        Step(h(4) + 1, True, FIRING, None),
        Step(h(8) - 1, True, FIRING, None),
        Step(h(8), True, FIRING, REPEAT),
    ])
    assert result.sent == [(0, FIRST), (h(4), REPEAT), (h(8), REPEAT)]


def test_a_late_evaluation_repeats_and_the_next_repeat_counts_from_it():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(h(5), True, FIRING, REPEAT, why="repeat: 5h since last notification"),
        Step(h(8), True, FIRING, None, why="firing: notified 3h ago, next repeat in 1h"),
        Step(h(9), True, FIRING, REPEAT),
    ])
    assert result.sent == [(0, FIRST), (h(5), REPEAT), (h(9), REPEAT)]


# -- escalation ------------------------------------------------------------------------------


def test_escalation_notifies_once_and_then_waits_for_the_repeat():
    escalating = finding(severity=Severity.INFO, escalation=Escalation(timedelta(hours=1), Severity.CRITICAL))
    expected = {0: FIRST, 60: ESCALATED, 60 + h(4): REPEAT}
    steps = [Step(m, True, FIRING, expected.get(m)) for m in range(0, int(h(5)) + 1, 10)]
    result = replay(steps, the_finding=escalating)
    assert result.sent == [(0, FIRST), (60, ESCALATED), (300, REPEAT)]
    assert [d.record.severity for d in result.decisions[:8]] == [Severity.INFO] * 6 + [Severity.CRITICAL] * 2
    assert result.decisions[6].why == "escalated from info to critical"
    assert result.record.notified_severity is Severity.CRITICAL


def test_escalation_during_grace_is_part_of_the_first_notification():
    escalating = finding(severity=Severity.INFO, escalation=Escalation(timedelta(minutes=10), Severity.CRITICAL))
    result = replay([
        Step(0, True, PENDING, None),
        Step(10, True, PENDING, None),
        Step(15, True, FIRING, FIRST),
        Step(30, True, FIRING, None),
    ], timing=Timing(grace=timedelta(minutes=15)), the_finding=escalating)
    assert result.sent == [(15, FIRST)]
    assert result.record.notified_severity is Severity.CRITICAL


# -- flapping --------------------------------------------------------------------------------


def test_flapping_starts_a_new_episode_with_a_new_first():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(10, "resolve", RESOLVED, RESOLVE),
        Step(20, True, FIRING, FIRST, why="firing: first notification"),
        Step(30, True, FIRING, None),
    ])
    assert result.sent == [(0, FIRST), (10, RESOLVE), (20, FIRST)]
    assert result.record.first_seen == T0 + timedelta(minutes=20)
    assert result.record.fired_at == T0 + timedelta(minutes=20)
    assert result.record.resolved_at is None
    assert result.record.last_notified == T0 + timedelta(minutes=20)


def test_a_new_episode_restarts_grace():
    result = replay([
        Step(0, True, PENDING, None),
        Step(15, True, FIRING, FIRST),
        Step(20, "resolve", RESOLVED, RESOLVE),
        Step(25, True, PENDING, None, why="pending: 0s of 15m grace"),
        Step(39, True, PENDING, None, why="pending: 14m of 15m grace"),
        Step(40, True, FIRING, FIRST),
    ], timing=Timing(grace=timedelta(minutes=15)))
    assert result.sent == [(15, FIRST), (20, RESOLVE), (40, FIRST)]


# -- muting ------------------------------------------------------------------------------------


def test_muted_moves_the_state_but_sends_nothing_until_the_silence_ends():
    result = replay([
        Step(0, True, FIRING, None, why=SILENCE, muted=SILENCE),
        Step(30, True, FIRING, None, muted=SILENCE),
        Step(h(5), True, FIRING, None, muted=SILENCE),
        Step(h(5) + 10, True, FIRING, FIRST, why="firing: first notification"),
        Step(h(5) + 20, True, FIRING, None),
    ])
    assert result.sent == [(h(5) + 10, FIRST)]
    assert result.record.fired_at == T0
    assert result.record.reason == "firing: notified 10m ago, next repeat in 3h50m"


def test_a_notified_alert_that_clears_while_silenced_still_gets_its_resolved():
    """Issue 14, item 3: a silence added after the page must not swallow its resolved."""
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(20, True, FIRING, None, muted=SILENCE),
        Step(30, "resolve", RESOLVED, RESOLVE, why=f"resolved: gone (notified before; {SILENCE})", muted=SILENCE),
        Step(40, True, FIRING, None, muted=SILENCE),  # back within the silence: a new episode, quiet
        Step(50, "resolve", RESOLVED, None, muted=SILENCE),
    ])
    assert result.sent == [(0, FIRST), (30, RESOLVE)]
    assert result.record.owed is None


def test_back_before_its_resolved_was_sent_the_episode_goes_on():
    """A resolved that could not be published yet is dropped when the problem returns: nobody
    heard it end, so there is no new first either (never firing, firing)."""
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(30, "resolve", RESOLVED, RESOLVE, send="fail"),
        Step(31, True, FIRING, None),
    ])
    assert result.sent == [(0, FIRST)]
    assert result.record.owed is None and result.record.first_seen == T0


def test_never_notified_then_cleared_sends_no_resolved_message():
    result = replay([
        Step(0, True, FIRING, None, muted=SILENCE),
        Step(30, True, FIRING, None, muted=SILENCE),
        Step(60, "resolve", RESOLVED, None, why="resolved: gone; not notified: it was never notified"),
    ])
    assert result.sent == []


def test_muting_drops_a_repeat_and_the_repeat_comes_when_the_silence_ends():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(h(4), True, FIRING, None, muted=SILENCE),
        Step(h(5), True, FIRING, REPEAT, why="repeat: 5h since last notification"),
    ])
    assert result.sent == [(0, FIRST), (h(5), REPEAT)]


# -- owed notifications and claims ----------------------------------------------------------------


def test_a_failed_first_is_sent_again_exactly_once():
    result = replay([
        Step(0, True, FIRING, FIRST, send="fail"),
        Step(5, True, FIRING, FIRST, why="firing: first notification"),
        Step(10, True, FIRING, None),
        Step(15, False, FIRING, None, why="unchanged"),
    ])
    assert result.sent == [(5, FIRST)]
    assert result.decisions[0].record.owed is FIRST


def test_a_failed_resolved_is_carried_and_sent_exactly_once():
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(30, "resolve", RESOLVED, RESOLVE, send="fail"),
        Step(35, False, RESOLVED, RESOLVE, why="re-sending owed resolved notification"),
        Step(40, False, RESOLVED, None, why="unchanged"),
        Step(45, "resolve", RESOLVED, None, why="unchanged"),
    ])
    assert result.sent == [(0, FIRST), (35, RESOLVE)]
    assert result.decisions[3].changed is False
    assert result.record.open is False


def test_a_failed_escalation_is_sent_again_exactly_once():
    escalating = finding(severity=Severity.INFO, escalation=Escalation(timedelta(hours=1), Severity.CRITICAL))
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(60, True, FIRING, ESCALATED, send="fail"),
        Step(65, False, FIRING, ESCALATED, why="re-sending owed escalated notification"),
        Step(70, True, FIRING, None),
    ], the_finding=escalating)
    assert result.sent == [(0, FIRST), (65, ESCALATED)]


def test_a_claim_held_by_another_invocation_blocks_until_the_lease_ends():
    lease = CLAIM_LEASE.total_seconds() / 60
    result = replay([
        Step(0, True, FIRING, FIRST, token="other", send="crash"),
        Step(1, True, FIRING, None, token="me",
             why="firing: first notification (another invocation is sending it)"),
        Step(1.5, False, FIRING, None, token="me"),
        Step(lease, True, FIRING, FIRST, token="me", why="firing: first notification"),
        Step(lease + 1, True, FIRING, None, token="me"),
    ])
    assert result.sent == [(lease, FIRST)]
    busy = result.decisions[1]
    assert busy.record.owed is FIRST
    assert busy.record.claim_token == "other"
    assert result.decisions[2].changed is False


def test_the_claimer_itself_is_not_blocked_by_its_own_claim():
    result = replay([
        Step(0, True, FIRING, FIRST, token="me", send="crash"),
        Step(1, False, FIRING, FIRST, token="me", why="re-sending owed first notification"),
    ])
    assert result.sent == [(1, FIRST)]


def test_a_resolve_while_another_invocation_sends_a_repeat_owes_the_resolved():
    lease = CLAIM_LEASE.total_seconds() / 60
    result = replay([
        Step(0, True, FIRING, FIRST),
        Step(h(4), True, FIRING, REPEAT, token="other", send="crash"),
        Step(h(4) + 1, "resolve", RESOLVED, None, token="me",
             why="resolved: gone (another invocation is sending it)"),
        Step(h(4) + lease, False, RESOLVED, RESOLVE, token="me", why="re-sending owed resolved notification"),
    ])
    assert result.decisions[2].record.owed is RESOLVE
    assert result.sent == [(0, FIRST), (h(4) + lease, RESOLVE)]


# -- carry ---------------------------------------------------------------------------------------------


def test_carry_on_an_unchanged_record_changes_nothing():
    record = replay([Step(0, True, FIRING, FIRST)]).record
    decision = carry(record, T0 + timedelta(hours=1), token="me")
    assert decision == Decision(record, None, "unchanged", changed=False)


def test_carry_sends_an_owed_resolved():
    record = replay([
        Step(0, True, FIRING, FIRST),
        Step(30, "resolve", RESOLVED, RESOLVE, send="fail"),
    ]).record
    assert (record.owed, record.claim_token) == (RESOLVE, None)
    decision = carry(record, T0 + timedelta(minutes=40), token="me")
    assert (decision.notify, decision.changed, decision.why) == (RESOLVE, True, "re-sending owed resolved notification")
    assert decision.record.owed is RESOLVE
    assert decision.record.reason == "re-sending owed resolved notification"


@pytest.mark.parametrize("state", [PENDING, FIRING])
def test_open_means_unresolved_or_owing(state):
    record = AlertRecord.start(finding(), T0)
    assert replace(record, state=state).open is True
    assert replace(record, state=RESOLVED).open is False
    assert replace(record, state=RESOLVED, owed=RESOLVE).open is True


def test_observe_updates_the_evidence_but_keeps_the_episode():
    first = finding(details={"current_count": 3})
    later = finding(details={"current_count": 1}, summary="Instance group gpu-workers is Degraded (1 of 4)",
                    instance_group=None)
    d1 = observe(None, first, Timing(), T0)
    d2 = observe(d1.record, later, Timing(), T0 + timedelta(minutes=5))
    assert d2.record.details == {"current_count": 1}
    assert d2.record.summary == "Instance group gpu-workers is Degraded (1 of 4)"
    assert d2.record.instance_group == "gpu-workers"  # not forgotten when a later sighting lacks it
    assert d2.record.first_seen == T0
    assert d2.record.fingerprint == first.fingerprint


def test_resolving_while_another_invocation_sends_the_first_owes_the_resolved():
    finding = Finding(policy="degraded-group", severity=Severity.WARNING, cluster="c", condition="x", summary="s")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    firing = observe(None, finding, Timing(), t0, token="A").record
    claimed_by_a = replace(firing, claim_token="A", claim_until=t0 + CLAIM_LEASE)
    decision = clear(claimed_by_a, Timing(), t0 + timedelta(seconds=5), "the condition cleared", token="B")
    assert decision.notify is None  # A holds the claim
    assert decision.record.owed is Reason.RESOLVED  # ... and the resolved message is owed, not forgotten
    assert decision.record.state is AlertState.RESOLVED


def test_seeing_the_same_problem_again_soon_writes_nothing():
    finding = Finding(policy="degraded-group", severity=Severity.WARNING, cluster="c", condition="x", summary="s")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record = replace(observe(None, finding, Timing(), t0).record, last_notified=t0, owed=None, version=1)
    soon = observe(record, finding, Timing(), t0 + timedelta(minutes=4))
    assert (soon.changed, soon.record) == (False, record)
    later = observe(record, finding, Timing(), t0 + timedelta(minutes=5))  # last_seen is refreshed now and then
    assert later.changed and later.record.last_seen == t0 + timedelta(minutes=5)
    changed = observe(record, replace(finding, summary="worse"), Timing(), t0 + timedelta(minutes=1))
    assert changed.changed and changed.record.summary == "worse"
