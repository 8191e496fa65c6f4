"""training-plans: countdowns before reserved capacity ends, ended plans a group still wants, unhealthy
instances, no spares, unknown statuses; one row per case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hyperpod_guard.policies.training_plans import (
    CAPACITY,
    NAME,
    POLICY,
    TrainingPlansSettings,
    evaluate,
    step_label,
    step_severity,
)
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-2:111122223333:training-plan/p5-december"
SETTINGS = TrainingPlansSettings()


def iso(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def plan(status: str | None = "Active", ends_in: timedelta | None = timedelta(days=3), *, unhealthy: int | None = 0,
         spares: int | None = 1, capacities: list[dict[str, Any]] | None = None, arn: str = ARN) -> dict[str, Any]:
    doc: dict[str, Any] = {"TrainingPlanArn": arn, "TrainingPlanName": arn.rsplit("/", 1)[1], "TotalInstanceCount": 16,
                           "AvailableInstanceCount": 0, "InUseInstanceCount": 16,
                           "UnhealthyInstanceCount": unhealthy, "AvailableSpareInstanceCount": spares}
    if status is not None:
        doc["Status"] = status
    if capacities is None and ends_in is not None:
        capacities = [capacity(ends_in)]
    doc["ReservedCapacitySummaries"] = capacities or []
    return {k: v for k, v in doc.items() if v is not None}


def capacity(ends_in: timedelta, status: str = "Active", name: str = "rc-1") -> dict[str, Any]:
    return {"ReservedCapacityArn": f"arn:aws:sagemaker:us-east-2:111122223333:reserved-capacity/{name}",
            "InstanceType": "ml.p5.48xlarge", "TotalInstanceCount": 16, "Status": status,
            "StartTime": iso(ends_in - timedelta(days=14)), "EndTime": iso(ends_in)}


def snapshot(plans: list[dict[str, Any]] | None, *, group_status: str | None = "Active", target: int = 16,
             current: int = 16, arn: str | None = ARN, restricted: bool = False) -> ClusterSnapshot:
    group: dict[str, Any] = {"InstanceGroupName": "p5-train", "Status": "InService", "CurrentCount": current,
                             "TargetCount": target}
    if arn:
        group.update(TrainingPlanArn=arn, TrainingPlanStatus=group_status)
    doc: dict[str, Any] = {"ClusterName": "foundation-train", "ClusterStatus": "InService",
                           "InstanceGroups": [] if restricted else [group],
                           "RestrictedInstanceGroups": [group] if restricted else [],
                           "TrainingPlans": plans}
    return ClusterSnapshot.model_validate(doc)


H, M = timedelta(hours=1), timedelta(minutes=1)
SPARES_ON = TrainingPlansSettings(warn_no_spares=True)

# (snapshot, settings, expected [(severity, condition)])
CASES = [
    pytest.param(snapshot([plan()]), SETTINGS, [], id="ends-in-3-days"),
    pytest.param(snapshot([plan(ends_in=23 * H)]), SETTINGS, [("info", "capacity-ends-24h")], id="within-24h"),
    pytest.param(snapshot([plan(ends_in=90 * M)]), SETTINGS,
                 [("warning", "capacity-ends-2h"), ("info", "capacity-ends-24h")], id="within-2h"),
    pytest.param(snapshot([plan(ends_in=40 * M)]), SETTINGS,
                 [("critical", "capacity-ends-45m"), ("warning", "capacity-ends-2h"), ("info", "capacity-ends-24h")],
                 id="within-45m"),
    pytest.param(snapshot([plan(ends_in=-M, capacities=[capacity(-M, "Expired")])]), SETTINGS, [],
                 id="capacity-ended-resolves-countdown"),
    pytest.param(snapshot([plan(ends_in=H)], target=0, current=0), SETTINGS, [], id="group-wants-nothing"),
    pytest.param(snapshot([plan(capacities=[capacity(3 * H, "Expired", "old"), capacity(30 * H, "Active", "next")])]),
                 SETTINGS, [], id="ended-capacity-skipped-next-one-far"),
    pytest.param(snapshot([plan(capacities=[capacity(20 * H, name="a"), capacity(50 * M, name="b")])]), SETTINGS,
                 [("warning", "capacity-ends-2h"), ("info", "capacity-ends-24h")], id="earliest-capacity-counts"),
    pytest.param(snapshot([plan("Expired", ends_in=None)]), SETTINGS, [("critical", "plan-expired")],
                 id="expired-group-still-targets"),
    pytest.param(snapshot([plan("Failed", ends_in=H)]), SETTINGS, [("critical", "plan-failed")],
                 id="failed-no-countdown"),
    pytest.param(snapshot([plan("Expired", ends_in=None)], target=0, current=0), SETTINGS, [],
                 id="expired-group-scaled-to-zero"),
    pytest.param(snapshot(None, group_status="Expired"), SETTINGS, [("critical", "plan-expired")],
                 id="plans-not-read-group-status-speaks"),
    pytest.param(snapshot(None, group_status="Active"), SETTINGS, [], id="plans-not-read-active"),
    pytest.param(snapshot([plan(unhealthy=2)]), SETTINGS, [("warning", "plan-unhealthy-instances")], id="unhealthy"),
    pytest.param(snapshot([plan(spares=0)]), SETTINGS, [], id="no-spares-off-by-default"),
    pytest.param(snapshot([plan(spares=0)]), SPARES_ON, [("warning", "plan-no-spares")], id="no-spares-on"),
    pytest.param(snapshot([plan(spares=None)]), SPARES_ON, [], id="spares-not-given"),
    pytest.param(snapshot([plan("Suspended")]), SETTINGS, [("warning", "plan-status-suspended")],
                 id="unknown-plan-status"),
    pytest.param(snapshot(None, group_status="Paused"), SETTINGS, [("warning", "plan-status-paused")],
                 id="unknown-group-training-plan-status"),
    pytest.param(snapshot([plan()], arn=None, group_status=None), SETTINGS, [], id="group-on-no-plan"),
    pytest.param(snapshot([plan(ends_in=H)], restricted=True), SETTINGS,
                 [("warning", "restricted-capacity-ends-2h"), ("info", "restricted-capacity-ends-24h")],
                 id="restricted-group"),
    pytest.param(snapshot([{**plan(ends_in=None), "EndTime": iso(H)}]),
                 SETTINGS, [("warning", "capacity-ends-2h"), ("info", "capacity-ends-24h")],
                 id="plan-end-time-without-capacities"),
]


@pytest.mark.parametrize("snap, settings, expected", CASES)
def test_training_plans(snap, settings, expected):
    findings = evaluate(snap, None, settings, NOW)
    assert sorted((f.severity.value, f.condition) for f in findings) == sorted(expected)
    assert all((f.policy, f.problem, f.origin, f.instance_group) == (NAME, CAPACITY, "state", "p5-train")
               for f in findings)


def test_countdown_says_when_instances_are_terminated_and_to_checkpoint():
    findings = evaluate(snapshot([plan(ends_in=100 * M)]), None, SETTINGS, NOW)
    step = next(f for f in findings if f.condition == "capacity-ends-2h")
    assert step.details["end_time"] == "2026-12-01T11:40:00Z"
    assert step.details["terminates_at"] == "2026-12-01T11:10:00Z"
    assert step.details["instance_type"] == "ml.p5.48xlarge" and step.details["training_plan"] == "p5-december"
    assert "30 minutes before" in step.summary and "checkpoint now" in step.summary
    # the summary does not change between evaluations (no "ends in 1h39m"): the alert is not rewritten every sweep
    later = evaluate(snapshot([plan(ends_in=100 * M)]), None, SETTINGS, NOW)
    assert [f.summary for f in later] == [f.summary for f in findings]


def test_unknown_status_in_the_evidence():
    (finding,) = evaluate(snapshot([plan("Suspended")]), None, SETTINGS, NOW)
    assert finding.details["status"] == "Suspended" and finding.details["source"] == "DescribeTrainingPlan"
    assert "'Suspended'" in finding.summary


@pytest.mark.parametrize("step, label, severity", [
    (timedelta(hours=24), "24h", "info"), (timedelta(hours=6), "6h", "warning"), (timedelta(hours=2), "2h", "warning"),
    (timedelta(hours=1), "1h", "critical"), (timedelta(minutes=45), "45m", "critical"),
    (timedelta(minutes=90), "90m", "warning"), (timedelta(seconds=90), "1m30s", "critical"),
])
def test_steps(step, label, severity):
    assert (step_label(step), step_severity(step).value) == (label, severity)


def test_settings():
    assert [step_label(s) for s in SETTINGS.notice_before] == ["24h", "2h", "45m"]
    assert SETTINGS.repeat_interval >= timedelta(hours=22)  # each countdown notice sent once
    assert TrainingPlansSettings.model_validate({"notice_before": ["48h", "30m"]}).notice_before == [
        timedelta(hours=48), timedelta(minutes=30)]
    with pytest.raises(ValidationError):
        TrainingPlansSettings.model_validate({"notice_before": ["0s"]})
    assert POLICY.name == NAME and POLICY.settings is TrainingPlansSettings
