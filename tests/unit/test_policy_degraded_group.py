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


def cluster(groups: list[dict[str, Any]], status: str = "InService", failure_message: str | None = None,
            restricted: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ClusterName": CLUSTER,
        "ClusterArn": CLUSTER_ARN,
        "ClusterStatus": status,
        "InstanceGroups": groups,
        "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:111122223333:cluster/eks-c"}},
    }
    if failure_message is not None:
        out["FailureMessage"] = failure_message
    if restricted is not None:
        out["RestrictedInstanceGroups"] = restricted
    return out


def rig(name: str = "nova", **kw: Any) -> dict[str, Any]:
    """A RestrictedInstanceGroups entry: the API gives it no MinCount or ActiveOperations."""
    out = group(name, **kw)
    out["EnvironmentConfig"] = {"FSxLustreConfig": {"SizeInGiB": 1200, "PerUnitStorageThroughput": 250}}
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


# --- restricted instance groups ------------------------------------------------------------------

# Each row: snapshot, expected [(condition, group, severity, restricted?)].
RESTRICTED_ROWS = [
    pytest.param(cluster([group()], restricted=[rig()]), [], id="restricted-in-service-full"),
    pytest.param(cluster([group()], restricted=[rig(status="Degraded")]),
                 [("restricted-status-degraded", "nova", "warning", True)], id="restricted-Degraded-warning"),
    pytest.param(cluster([group()], restricted=[rig(status="Failed", current=0, target=4)]),
                 [("restricted-status-failed", "nova", "critical", True), ("restricted-below-target", "nova", "warning", True)],
                 id="restricted-Failed-critical-and-below-target"),
    pytest.param(cluster([group()], restricted=[rig(current=6, target=8)]),
                 [("restricted-below-target", "nova", "warning", True)], id="restricted-below-target"),
    pytest.param(cluster([group()], restricted=[rig(current=1, target=8, minimum=2)]),
                 [("restricted-below-min", "nova", "critical", True)], id="restricted-below-min-if-ever-given"),
    pytest.param(cluster([group()], restricted=[rig(status="Creating", current=0, target=8)]), [],
                 id="restricted-Creating-no-count-finding"),
    pytest.param(cluster([group()], restricted=[rig(status="Quarantined")]), [], id="restricted-unknown-status"),
    pytest.param(cluster([group(status="Degraded")], restricted=[rig("gpu", status="Degraded")]),
                 [("status-degraded", "gpu", "warning", False), ("restricted-status-degraded", "gpu", "warning", True)],
                 id="same-name-two-findings"),
    pytest.param(cluster([group()], restricted=[rig("a", status="Failed"), rig("b", status="Degraded")]),
                 [("restricted-status-failed", "a", "critical", True), ("restricted-status-degraded", "b", "warning", True)],
                 id="every-restricted-group"),
    pytest.param({**cluster([group()]), "RestrictedInstanceGroups": None}, [], id="restricted-groups-null"),
]


@pytest.mark.parametrize(("snapshot", "expected"), RESTRICTED_ROWS)
def test_restricted_instance_groups(snapshot, expected):
    findings = evaluate(snapshot)
    assert [(f.condition, f.instance_group, f.severity, f.details.get("restricted", False)) for f in findings] == expected
    for finding in findings:
        assert (finding.policy, finding.cluster, finding.node, finding.origin) == ("degraded-group", CLUSTER, None, "state")
        assert finding.summary.startswith("Restricted instance group " if finding.details.get("restricted") else "Instance group ")


@pytest.mark.parametrize(("snapshot", "summary"), [
    pytest.param(cluster([], restricted=[rig(status="Degraded", current=6, target=8)]),
                 "Restricted instance group nova is Degraded (6/8 nodes)", id="status"),
    pytest.param(cluster([], restricted=[rig(current=6, target=8)]),
                 "Restricted instance group nova has 6 of 8 target nodes (25% short)", id="below-target"),
])
def test_restricted_summary_and_details(snapshot, summary):
    findings = evaluate(snapshot)
    assert summary in [f.summary for f in findings]
    for finding in findings:
        assert finding.details["restricted"] is True
        assert finding.details["counts"] == {"current": 6, "target": 8}


def test_a_restricted_group_never_shares_a_fingerprint_with_an_instance_group_of_its_name():
    both = cluster([group("gpu", status="Failed", current=1, target=8)],
                   restricted=[rig("gpu", status="Failed", current=1, target=8)])
    findings = evaluate(both)
    assert len(findings) == 4
    assert len({f.fingerprint for f in findings}) == 4
    [alone] = [f for f in evaluate(cluster([], restricted=[rig("gpu", status="Failed")])) if f.condition.endswith("status-failed")]
    assert alone.fingerprint in {f.fingerprint for f in findings}  # stable: the same problem, the same fingerprint


def test_the_cluster_failing_inhibits_restricted_group_findings_too():
    from hyperpod_guard.alerting import muted_reason
    from hyperpod_guard.rules import DEFAULT_RULES

    findings = evaluate(cluster([], status="Failed", restricted=[rig(status="Failed")]))
    inhibitor, restricted = findings
    assert (inhibitor.condition, restricted.condition) == ("cluster-failed", "restricted-status-failed")
    assert muted_reason(restricted, DEFAULT_RULES, [inhibitor], NOW).startswith("inhibited by degraded-group/cluster-failed")


def test_remediation_never_acts_for_a_restricted_group():
    """SageMaker runs restricted groups, and one may share its name with an instance group whose
    nodes the plan would otherwise pick (remediation.plan matches nodes by group name)."""
    from hyperpod_guard.ledger import AlertRecord, AlertState
    from hyperpod_guard.remediation.plan import Action, plan
    from hyperpod_guard.rules import Rules

    snapshot = ClusterSnapshot.from_describe_cluster({
        **cluster([group("gpu", status="Degraded")], restricted=[rig("gpu", status="Degraded")]),
        "NodeRecovery": "None", "Nodes": [{"InstanceId": "i-0a", "InstanceGroupName": "gpu", "InstanceStatus": {"Status": "Failure"}}],
    })
    policies = Rules.model_validate({"version": 1, "policies": {"degraded-group": {"remediation": {"enabled": True}}}}).for_cluster(CLUSTER)
    firing = [
        AlertRecord(fingerprint=f.fingerprint, cluster=CLUSTER, policy=f.policy, condition=f.condition, state=AlertState.FIRING,
                    severity=f.severity, summary=f.summary, first_seen=NOW, last_seen=NOW, instance_group=f.instance_group,
                    fired_at=NOW)
        for f in degraded_group.evaluate(snapshot, None, settings(), NOW)
    ]
    assert [r.condition for r in firing] == ["status-degraded", "restricted-status-degraded"]
    # the restricted group's alert first: it must not take the instance group's failed node
    planned = plan(snapshot, firing[::-1], policies, NOW)
    assert [(type(p), p.fingerprint, p.nodes) for p in planned] == [(Action, firing[0].fingerprint, ("i-0a",))]
