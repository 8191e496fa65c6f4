"""degraded-group: one row per case of group status, capacity shortfall and a Failed cluster."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from tests.builders import cluster_event as raw_cluster_event
from hyperpod_guard.events import parse_event
from hyperpod_guard.findings import Finding
from hyperpod_guard.policies import degraded_group
from hyperpod_guard.rules import DegradedGroupSettings
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CLUSTER = "c"
CLUSTER_ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
CAPACITY = "We currently do not have sufficient capacity to launch new ml.p5.48xlarge instances. Please try again."
EVENT_TIME_MS = 1748794825350
EVENT_TIME = "2025-06-01T16:20:25.350000Z"


# --- builders: DescribeCluster-shaped dicts -------------------------------------------------


def group(
    name: str = "gpu",
    *,
    status: str | None = "InService",
    current: int | None = 8,
    target: int | None = 8,
    minimum: int | None = None,
    scaling: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"InstanceGroupName": name, "InstanceType": "ml.p5.48xlarge"}
    for key, value in (("Status", status), ("CurrentCount", current), ("TargetCount", target), ("MinCount", minimum)):
        if value is not None:
            out[key] = value
    if scaling is not None:
        out["ActiveOperations"] = {"Scaling": scaling}
    return out


def cluster(groups: list[dict[str, Any]], status: str = "InService", failure_message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ClusterName": CLUSTER,
        "ClusterArn": CLUSTER_ARN,
        "ClusterStatus": status,
        "InstanceGroups": groups,
        "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:111122223333:cluster/eks-c"}},
    }
    if failure_message is not None:
        out["FailureMessage"] = failure_message
    return out


def cluster_event(
    *, level: str | None = "Error", group_name: str | None = "gpu", resource_type: str = "InstanceGroup",
    description: str = "Instance group gpu scaling failed", metadata: dict[str, Any] | None = None,
):
    details: dict[str, Any] = {
        "EventId": "83ea0bb5-be77-45e8-a458-0a87f778a205",
        "ClusterArn": CLUSTER_ARN,
        "ClusterName": CLUSTER,
        "ResourceType": resource_type,
        "EventTime": EVENT_TIME_MS,
        "Description": description,
        "EventDetails": {"EventMetadata": metadata if metadata is not None else {"InstanceGroup": {"FailureMessage": CAPACITY}}},
    }
    if level is not None:
        details["EventLevel"] = level
    if group_name is not None:
        details["InstanceGroupName"] = group_name
    return parse_event(raw_cluster_event(details, arn=CLUSTER_ARN, time="2025-06-01T16:20:26Z"))


def settings(**kw: Any) -> DegradedGroupSettings:
    return DegradedGroupSettings.model_validate(kw)


def evaluate(snapshot: dict[str, Any], rules: DegradedGroupSettings | None = None, event: Any = None, now: datetime = NOW) -> list[Finding]:
    return degraded_group.evaluate(ClusterSnapshot.from_describe_cluster(snapshot), event, rules or settings(), now)


EVENT_EVIDENCE = {"cluster_event": {
    "description": "Instance group gpu scaling failed", "level": "Error", "failure_message": CAPACITY, "time": EVENT_TIME}}


# Each row: snapshot, settings, event, expected [(condition, group, severity, details subset)].
ROWS = [
    pytest.param(cluster([group()]), settings(), None, [], id="in-service-full"),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), None,
        [("status-degraded", "gpu", "warning", {"status": "Degraded", "counts": {"current": 8, "target": 8}})],
        id="group-Degraded-warning",
    ),
    pytest.param(
        cluster([group(status="Failed", current=8, target=8, minimum=2)]), settings(), None,
        [("status-failed", "gpu", "critical", {"status": "Failed", "counts": {"current": 8, "target": 8, "min": 2}})],
        id="group-Failed-critical",
    ),
    pytest.param(cluster([group(status="Quarantined")]), settings(), None, [], id="unknown-group-status-no-status-finding"),
    pytest.param(cluster([group(status=None)]), settings(), None, [], id="group-status-absent"),
    pytest.param(
        cluster([group(current=1, target=8, minimum=2)]), settings(), None,
        [("below-min", "gpu", "critical", {"counts": {"current": 1, "target": 8, "min": 2}})],
        id="below-min-critical-and-no-below-target-double-report",
    ),
    pytest.param(
        cluster([group(current=2, target=8, minimum=2)]), settings(), None,
        [("below-target", "gpu", "warning", {"shortfall_ratio": 0.75, "threshold_ratio": 0.1})],
        id="at-min-is-not-below-min",
    ),
    pytest.param(
        cluster([group(current=8, target=10)]), settings(), None,
        [("below-target", "gpu", "warning",
          {"status": "InService", "counts": {"current": 8, "target": 10}, "shortfall_ratio": 0.2, "threshold_ratio": 0.1})],
        id="below-target-by-more-than-ratio-warning",
    ),
    pytest.param(cluster([group(current=9, target=10)]), settings(), None, [], id="below-target-exactly-at-ratio-boundary"),
    pytest.param(cluster([group(current=18, target=20)]), settings(), None, [], id="below-target-exactly-at-ratio-boundary-20"),
    pytest.param(
        cluster([group(current=2, target=3)]), settings(), None,
        [("below-target", "gpu", "warning", {"shortfall_ratio": 0.3333})], id="shortfall-ratio-rounded-to-4-places",
    ),
    pytest.param(cluster([group(current=8, target=10)]), settings(target_shortfall_ratio=0.25), None, [],
                 id="custom-ratio-within"),
    pytest.param(
        cluster([group(current=7, target=10)]), settings(target_shortfall_ratio=0.25), None,
        [("below-target", "gpu", "warning", {"shortfall_ratio": 0.3, "threshold_ratio": 0.25})], id="custom-ratio-exceeded",
    ),
    pytest.param(
        cluster([group(current=9, target=10)]), settings(target_shortfall_ratio=0), None,
        [("below-target", "gpu", "warning", {"shortfall_ratio": 0.1, "threshold_ratio": 0})], id="custom-ratio-zero-any-gap",
    ),
    pytest.param(cluster([group(current=12, target=10)]), settings(), None, [], id="above-target"),
    pytest.param(cluster([group(current=5, target=10, scaling=1)]), settings(), None, [], id="scaling-no-below-target"),
    pytest.param(
        cluster([group(current=1, target=10, minimum=2, scaling=1)]), settings(), None,
        [("below-min", "gpu", "critical", {"counts": {"current": 1, "target": 10, "min": 2}})],
        id="scaling-below-min-still-fires",
    ),
    pytest.param(
        cluster([group(current=5, target=10, scaling=0)]), settings(), None,
        [("below-target", "gpu", "warning", {"shortfall_ratio": 0.5})], id="scaling-count-zero-is-not-scaling",
    ),
    pytest.param(cluster([group(status="Creating", current=0, target=4)]), settings(), None, [], id="group-Creating-no-below-target"),
    pytest.param(cluster([group(status="Deleting", current=1, target=4)]), settings(), None, [], id="group-Deleting-no-below-target"),
    pytest.param(cluster([group(current=0, target=0)]), settings(), None, [], id="target-zero-no-crash"),
    pytest.param(cluster([group(current=None, target=None)]), settings(), None, [], id="counts-missing-no-crash"),
    pytest.param(cluster([group(current=3, target=None, minimum=None)]), settings(), None, [], id="target-missing"),
    pytest.param(
        cluster([group(status="Degraded", current=None, target=None, minimum=2)]), settings(), None,
        [("status-degraded", "gpu", "warning", {"counts": {"min": 2}})], id="degraded-with-counts-missing",
    ),
    pytest.param(
        cluster([group(status="Degraded", current=5, target=10)]), settings(), None,
        [("status-degraded", "gpu", "warning", {}), ("below-target", "gpu", "warning", {"shortfall_ratio": 0.5})],
        id="degraded-and-below-target-are-two-conditions",
    ),
    pytest.param(
        cluster([group(status="Failed", current=0, target=4, minimum=1)]), settings(), None,
        [("status-failed", "gpu", "critical", {}), ("below-min", "gpu", "critical", {})],
        id="failed-and-below-min",
    ),
    pytest.param(
        cluster([group()], status="Failed", failure_message="EKS cluster is not ACTIVE"), settings(), None,
        [("cluster-failed", None, "critical", {"status": "Failed", "failure_message": "EKS cluster is not ACTIVE"})],
        id="cluster-Failed-with-failure-message",
    ),
    pytest.param(
        cluster([], status="Failed"), settings(), None,
        [("cluster-failed", None, "critical", {"status": "Failed", "failure_message": None})],
        id="cluster-Failed-without-failure-message",
    ),
    pytest.param(cluster([group()], status="RollingBack"), settings(), None, [], id="cluster-RollingBack-is-not-failed"),
    pytest.param(
        cluster([group(status="Failed")], status="Failed", failure_message="boom"), settings(), None,
        [("cluster-failed", None, "critical", {}), ("status-failed", "gpu", "critical", {})],
        id="cluster-and-group-Failed-cluster-first",
    ),
    pytest.param(
        cluster([group("cpu"), group("gpu", status="Degraded")]), settings(), None,
        [("status-degraded", "gpu", "warning", {})], id="only-the-unhealthy-group",
    ),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), cluster_event(), [("status-degraded", "gpu", "warning", EVENT_EVIDENCE)],
        id="error-event-for-group-attached",
    ),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), cluster_event(level="Warn"),
        [("status-degraded", "gpu", "warning", {"cluster_event": {**EVENT_EVIDENCE["cluster_event"], "level": "Warn"}})],
        id="warn-event-for-group-attached",
    ),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), cluster_event(level="Info"),
        [("status-degraded", "gpu", "warning", {"cluster_event": None})], id="info-event-not-attached",
    ),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), cluster_event(level=None),
        [("status-degraded", "gpu", "warning", {"cluster_event": None})], id="event-without-level-not-attached",
    ),
    pytest.param(
        cluster([group(status="Degraded"), group("cpu", status="Degraded")]), settings(), cluster_event(group_name="cpu"),
        [("status-degraded", "gpu", "warning", {"cluster_event": None}),
         ("status-degraded", "cpu", "warning", EVENT_EVIDENCE)],
        id="event-for-another-group-attached-only-there",
    ),
    pytest.param(
        cluster([group(status="Degraded")]), settings(), cluster_event(metadata={}),
        [("status-degraded", "gpu", "warning", {"cluster_event": {
            "description": "Instance group gpu scaling failed", "level": "Error", "time": EVENT_TIME}})],
        id="error-event-without-failure-message",
    ),
    pytest.param(
        cluster([group()], status="Failed", failure_message="boom"), settings(),
        cluster_event(group_name=None, resource_type="Cluster", description="Cluster creation failed",
                      metadata={"Cluster": {"FailureMessage": "role missing"}}),
        [("cluster-failed", None, "critical", {"failure_message": "boom", "cluster_event": {
            "description": "Cluster creation failed", "level": "Error", "failure_message": "role missing", "time": EVENT_TIME}})],
        id="cluster-level-error-event-attached-to-cluster-failed",
    ),
    pytest.param(cluster([group()]), settings(), cluster_event(), [], id="error-event-alone-is-no-finding"),
]


@pytest.mark.parametrize(("snapshot", "rules", "event", "expected"), ROWS)
def test_degraded_group(snapshot, rules, event, expected):
    findings = evaluate(snapshot, rules, event)

    assert [(f.condition, f.instance_group, f.severity) for f in findings] == [e[:3] for e in expected]
    for finding, (*_, details) in zip(findings, expected, strict=True):
        assert {key: finding.details.get(key) for key in details} == details
        assert (finding.policy, finding.cluster, finding.node, finding.origin) == ("degraded-group", CLUSTER, None, "state")


@pytest.mark.parametrize(
    ("snapshot", "summary"),
    [
        pytest.param(cluster([group(status="Degraded", current=8)]), "Instance group gpu is Degraded (8/8 nodes)", id="status"),
        pytest.param(cluster([group(status="Failed", current=None, target=None)]), "Instance group gpu is Failed",
                     id="status-counts-unknown"),
        pytest.param(cluster([group(current=1, minimum=2)]), "Instance group gpu has 1 nodes, below its minimum of 2", id="below-min"),
        pytest.param(cluster([group(current=6, target=8)]), "Instance group gpu has 6 of 8 target nodes (25% short)", id="below-target"),
        pytest.param(cluster([], status="Failed", failure_message="boom"), "Cluster c is Failed: boom", id="cluster-failed"),
        pytest.param(cluster([], status="Failed"), "Cluster c is Failed", id="cluster-failed-no-message"),
    ],
)
def test_summary(snapshot, summary):
    [finding] = evaluate(snapshot)
    assert finding.summary == summary


def test_fingerprint_is_stable_across_counts_and_differs_across_groups_and_conditions():
    [few] = evaluate(cluster([group(current=5, target=10)]))
    [fewer] = evaluate(cluster([group(current=1, target=20)]))
    [other_group] = evaluate(cluster([group("cpu", current=5, target=10)]))
    [degraded, below_target] = evaluate(cluster([group(status="Degraded", current=5, target=10)]))

    assert few.details != fewer.details
    assert few.fingerprint == fewer.fingerprint == below_target.fingerprint
    assert len({few.fingerprint, other_group.fingerprint, degraded.fingerprint}) == 3


def test_pure_same_result_at_any_time_and_nothing_on_a_minimal_snapshot():
    snapshot = cluster([group(status="Degraded", current=1, target=8, minimum=2)], status="Failed", failure_message="x")
    event = cluster_event()

    early = evaluate(snapshot, event=event, now=datetime(2020, 1, 1, tzinfo=timezone.utc))
    late = evaluate(snapshot, event=event, now=datetime(2035, 12, 31, 23, 59, tzinfo=timezone.utc))

    assert [f.condition for f in early] == ["cluster-failed", "status-degraded", "below-min"]
    assert early == late
    assert degraded_group.evaluate(ClusterSnapshot.minimal(CLUSTER), None, settings(), NOW) == []


@pytest.mark.parametrize("status", ["Creating", "Deleting"])
def test_no_count_findings_while_a_group_is_created_or_deleted(status):
    snapshot = ClusterSnapshot.from_describe_cluster(cluster([group(status=status, current=0, target=4, minimum=2)]))
    assert degraded_group.evaluate(snapshot, None, settings(), NOW) == []
