"""Inhibition by an open auto-patch window (alerting.muted_reason, inhibitors_of, plan), as a table in the
spirit of Alertmanager's inhibit_test.go: the window finding is the auto-patch policy's own, evaluated
from a DescribeCluster-shaped snapshot; what it mutes is only what the window causes by design."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.alerting import Scope, inhibitors_of, muted_reason, plan
from hyperpod_guard.engine import Evaluation
from hyperpod_guard.findings import CONFIGURATION, Finding, Severity
from hyperpod_guard.ledger import Reason
from hyperpod_guard.ledger_store import ClusterLedger
from hyperpod_guard.policies import POLICY_NAMES
from hyperpod_guard.policies.auto_patch import ACTIVE, UPCOMING, WINDOW, AutoPatchSettings, evaluate
from hyperpod_guard.rules import Rules
from hyperpod_guard.snapshot import ClusterSnapshot

PATCH = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
OPEN = PATCH + timedelta(hours=1)  # the window (1h idle wait + 4h) is open
UNTIL = "2026-11-21T07:00:00Z"
RULES = Rules.model_validate({"version": 1, "policies": {p: {"grace": "0s"} for p in POLICY_NAMES}}).resolve("c")
CRIT, WARN = Severity.CRITICAL, Severity.WARNING


def window_finding(now: datetime, group: str = "g") -> Finding:
    snapshot = ClusterSnapshot.model_validate({"ClusterName": "c", "ClusterStatus": "InService", "InstanceGroups": [{
        "InstanceGroupName": group, "Status": "InService", "CurrentCount": 4, "TargetCount": 4,
        "AutoPatchConfig": {"PatchingStrategy": "WhenIdle", "IdleWaitWindowInSeconds": 3600,
                            "CurrentPatchSchedule": {"NextPatchDate": PATCH}}}]})
    (finding,) = evaluate(snapshot, None, AutoPatchSettings(), now)
    assert finding.condition == WINDOW
    return finding


def f(policy: str, condition: str, severity: Severity = WARN, *, group: str | None = "g", node: str | None = None,
      problem: str = "health", **details: Any) -> Finding:
    return Finding(policy=policy, severity=severity, cluster="c", condition=condition, summary=f"{condition} summary",
                   instance_group=group, node=node, problem=problem, details=details)


BY_WINDOW = f"inhibited by auto-patch window of group g until {UNTIL}"
BELOW_TARGET = f("degraded-group", "below-target")
REBOOTING = f("unhealthy-node", "unhealthy", CRIT, node="i-1", health_status="UnschedulablePendingReboot")


@pytest.mark.parametrize("record, now, expected", [
    (BELOW_TARGET, OPEN, BY_WINDOW),                                                   # a capacity dip, by design
    (f("taint-drift", "current-vs-desired", problem=CONFIGURATION), OPEN, BY_WINDOW),  # cordoned nodes lag
    (REBOOTING, OPEN, BY_WINDOW),                                                      # a node patching reboots
    (f("unhealthy-node", "unhealthy", CRIT, node="i-1", reason="UnschedulablePendingReboot"), OPEN, BY_WINDOW),
    (f("degraded-group", "below-target", group="h"), OPEN, None),                       # another group's dip pages
    (f("degraded-group", "below-min", CRIT), OPEN, None),                               # below its minimum pages
    (f("degraded-group", "status-failed", CRIT), OPEN, None),                           # a Failed group pages
    (f("taint-drift", "required", problem=CONFIGURATION), OPEN, None),                  # declared state: not patching
    (f("unhealthy-node", "unhealthy", CRIT, node="i-1", health_status="Unhealthy", reason="GpuXid"), OPEN, None),
    (f("unhealthy-node", "instance-failure", CRIT, node="i-1"), OPEN, None),            # Failure is no design
    (f("unhealthy-node", "unhealthy", CRIT, group=None, node="i-1",                     # group unknown: cannot tell
       health_status="UnschedulablePendingReboot"), OPEN, None),
    (BELOW_TARGET, PATCH - timedelta(hours=1), None),                                   # upcoming: nothing muted yet
], ids=["below-target", "taint current-vs-desired", "rebooting node (status)", "rebooting node (reason)",
        "other group", "below-min", "status-failed", "taint required", "unhealthy for a reason", "instance failure",
        "node of unknown group", "window not open yet"])
def test_window_inhibits_only_what_it_causes(record: Finding, now: datetime, expected: str | None) -> None:
    window = window_finding(now)
    assert window.details["phase"] == (ACTIVE if now >= PATCH else UPCOMING)
    assert muted_reason(record, RULES, inhibitors_of([window, record]), now) == expected


def test_a_window_past_its_end_inhibits_nothing_even_if_handed_in() -> None:
    window = window_finding(OPEN)
    assert muted_reason(BELOW_TARGET, RULES, [window], datetime(2026, 11, 21, 7, 0, tzinfo=UTC)) is None


def test_cluster_inhibitors_come_first_and_still_mute_everything() -> None:
    failed = f("degraded-group", "cluster-failed", CRIT, group=None)
    window = window_finding(OPEN)
    assert inhibitors_of([BELOW_TARGET, window, failed]) == [failed, window]
    why = muted_reason(f("degraded-group", "below-min", CRIT), RULES, inhibitors_of([window, failed]), OPEN)
    assert why == "inhibited by degraded-group/cluster-failed: cluster-failed summary"
    upcoming = window_finding(PATCH - timedelta(hours=1))  # an upcoming window inhibits nothing
    assert muted_reason(BELOW_TARGET, RULES, inhibitors_of([upcoming]), PATCH - timedelta(hours=1)) is None


def test_plan_mutes_the_dip_with_the_window_as_reason_and_pages_the_rest() -> None:
    window, below_min = window_finding(OPEN), f("degraded-group", "below-min", CRIT, group="h")
    evaluation = Evaluation("c", [window, BELOW_TARGET, REBOOTING, below_min])
    decisions = plan(evaluation, Scope("c", frozenset(POLICY_NAMES)), ClusterLedger({}), RULES, OPEN, "t").decisions
    by = {d.record.fingerprint: d for d in decisions}
    assert (by[BELOW_TARGET.fingerprint].muted, by[BELOW_TARGET.fingerprint].why) == (True, BY_WINDOW)
    assert (by[REBOOTING.fingerprint].muted, by[REBOOTING.fingerprint].notify) == (True, None)
    assert by[below_min.fingerprint].notify is Reason.FIRST
    assert by[window.fingerprint].notify is Reason.FIRST  # the window itself is a notice
    assert len(decisions) == 4
