"""unknown-status: statuses outside the API's enums are reported, one row per case; the enums are botocore's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hyperpod_guard.local import sagemaker_standin
from hyperpod_guard.policies import cluster_health, degraded_group, failed_rollback, unhealthy_node
from hyperpod_guard.policies.unknown_status import NAME, POLICY, UnknownStatusSettings, evaluate, slug
from hyperpod_guard.snapshot import ClusterSnapshot, ClusterStatus, GroupStatus, NodeStatus, TrainingPlanStatus
from tests.botocore_model import enum

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
CLUSTER = "future-proof"


def snapshot(status: str | None = "InService", groups: list[dict[str, Any]] | None = None,
             restricted: list[dict[str, Any]] | None = None, nodes: list[dict[str, Any]] | None = None,
             failure: str | None = None) -> ClusterSnapshot:
    doc: dict[str, Any] = {"ClusterName": CLUSTER, "InstanceGroups": groups or [group()]}
    if status is not None:
        doc["ClusterStatus"] = status
    if restricted:
        doc["RestrictedInstanceGroups"] = restricted
    if failure:
        doc["FailureMessage"] = failure
    return ClusterSnapshot.from_describe_cluster(doc, nodes=nodes)


def group(name: str = "p5-train", status: str | None = "InService") -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceGroupName": name, "CurrentCount": 8, "TargetCount": 8}
    if status is not None:
        data["Status"] = status
    return data


def node(status: str, instance: str = "i-0aa11bb22cc33dd44", message: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceId": instance, "InstanceGroupName": "p5-train",
                            "InstanceStatus": {"Status": status}}
    if message:
        data["InstanceStatus"]["Message"] = message
    return data


# (snapshot, settings, expected [(severity, condition, group, node, raw status)])
CASES = [
    pytest.param(snapshot(), UnknownStatusSettings(), [], id="all-known"),
    pytest.param(snapshot("ClusterMaintenanceRollbackFailed"), UnknownStatusSettings(),
                 [("critical", "unknown-status-clustermaintenancerollbackfailed", None, None,
                   "ClusterMaintenanceRollbackFailed")], id="cluster-unknown-failed-is-critical"),
    pytest.param(snapshot("Hibernating"), UnknownStatusSettings(),
                 [("warning", "unknown-status-hibernating", None, None, "Hibernating")], id="cluster-unknown-warning"),
    pytest.param(snapshot("Failed"), UnknownStatusSettings(), [], id="cluster-known-failed-is-degraded-groups"),
    pytest.param(snapshot("RollingBack"), UnknownStatusSettings(), [], id="cluster-known-rolling-back"),
    pytest.param(snapshot(None), UnknownStatusSettings(), [], id="cluster-status-absent"),
    pytest.param(snapshot(groups=[group(status="Quarantined"), group("g6", "Degraded")]), UnknownStatusSettings(),
                 [("warning", "unknown-status-quarantined", "p5-train", None, "Quarantined")],
                 id="group-unknown-next-to-known-degraded"),
    pytest.param(snapshot(groups=[group(status="ScaleUpFailed")]), UnknownStatusSettings(),
                 [("critical", "unknown-status-scaleupfailed", "p5-train", None, "ScaleUpFailed")],
                 id="group-unknown-failed"),
    pytest.param(snapshot(groups=[group(status=None)]), UnknownStatusSettings(), [], id="group-status-absent"),
    pytest.param(snapshot(restricted=[group("nova", "Quarantined")]), UnknownStatusSettings(),
                 [("warning", "restricted-unknown-status-quarantined", "nova", None, "Quarantined")],
                 id="restricted-group-unknown"),
    pytest.param(snapshot(nodes=[node("FailedMaintenance")]), UnknownStatusSettings(),
                 [("critical", "unknown-status-failedmaintenance", "p5-train", "i-0aa11bb22cc33dd44",
                   "FailedMaintenance")], id="node-unknown-failed"),
    pytest.param(snapshot(nodes=[node("Hibernated"), node("Failure", "i-2"), node("DeepHealthCheckInProgress", "i-3")]),
                 UnknownStatusSettings(),
                 [("warning", "unknown-status-hibernated", "p5-train", "i-0aa11bb22cc33dd44", "Hibernated")],
                 id="node-unknown-next-to-known"),
    pytest.param(snapshot(nodes=[node("HardwareFailure")]), UnknownStatusSettings(),
                 [("critical", "unknown-status-hardwarefailure", "p5-train", "i-0aa11bb22cc33dd44", "HardwareFailure")],
                 id="node-failure-word-is-critical"),
    pytest.param(snapshot("running"), UnknownStatusSettings(),
                 [("warning", "unknown-status-running", None, None, "running")], id="case-matters"),
    pytest.param(snapshot("InService "), UnknownStatusSettings(),
                 [("warning", "unknown-status-inservice", None, None, "InService ")], id="trailing-space-is-unknown"),
    pytest.param(snapshot("Hibernating", groups=[group(status="Quarantined")]),
                 UnknownStatusSettings(also_known=["Hibernating", "Quarantined"]), [], id="also-known-setting"),
]


@pytest.mark.parametrize("snap, settings, expected", CASES)
def test_unknown_status(snap, settings, expected):
    findings = evaluate(snap, None, settings, NOW)
    got = [(f.severity.value, f.condition, f.instance_group, f.node, f.details["status"]) for f in findings]
    assert got == expected
    assert all(f.policy == NAME and f.origin == "state" for f in findings)
    assert all(f.details["status"] in f.summary for f in findings)


def test_evidence_carries_the_raw_value_the_known_ones_and_messages():
    snap = snapshot("ClusterMaintenanceRollbackFailed", failure="Maintenance rollback failed on 2 nodes",
                    nodes=[node("Quarantined", message="held for inspection")])
    cluster, node_finding = evaluate(snap, None, UnknownStatusSettings(), NOW)
    assert cluster.details == {"status": "ClusterMaintenanceRollbackFailed",
                               "known_statuses": sorted(ClusterStatus.KNOWN),
                               "failure_message": "Maintenance rollback failed on 2 nodes"}
    assert node_finding.details["message"] == "held for inspection"
    assert node_finding.details["known_statuses"] == sorted(NodeStatus.KNOWN)


def test_a_long_odd_value_makes_a_bounded_condition():
    assert slug("x" * 500) == "x" * 48
    assert slug("  ") == "blank"
    assert slug("Needs Attention/Now!") == "needs-attention-now"


def test_existing_policies_neither_report_nor_drop_an_unknown_status():
    """The other policies say nothing about a status they do not know (so this policy does not double-report),
    and degraded-group still judges the counts of a group in an unknown status (nothing is dropped)."""
    snap = snapshot("ClusterMaintenanceRollbackFailed",
                    groups=[{**group(status="Quarantined"), "CurrentCount": 2, "TargetCount": 8}],
                    nodes=[node("FailedMaintenance")])
    others = []
    for module in (degraded_group, cluster_health, failed_rollback, unhealthy_node):
        others += module.evaluate(snap, None, module.POLICY.settings(), NOW)
    assert [(f.policy, f.condition) for f in others] == [("degraded-group", "below-target")]
    assert others[0].details["status"] == "Quarantined"
    ours = evaluate(snap, None, UnknownStatusSettings(), NOW)
    assert {f.condition for f in ours}.isdisjoint({f.condition for f in others})
    # same scope and problem as degraded-group's finding: one alert (alerting.fold)
    group_findings = {(f.instance_group, f.problem) for f in ours if f.node is None and f.instance_group}
    assert group_findings == {("p5-train", "health")}


@pytest.mark.parametrize("known, shape", [
    (ClusterStatus.KNOWN, "ClusterStatus"),
    (GroupStatus.KNOWN, "InstanceGroupStatus"),
    (NodeStatus.KNOWN, "ClusterInstanceStatus"),
    (TrainingPlanStatus.KNOWN, "TrainingPlanStatus"),
    (TrainingPlanStatus.KNOWN, "ReservedCapacityStatus"),
])
def test_known_statuses_are_botocores_enums(known, shape):
    """The constants cannot drift from the pinned botocore: a new status there fails here, and is added."""
    assert set(known) == enum(shape)


def test_restricted_groups_share_the_group_enum():
    restricted = sagemaker_standin.shape("ClusterRestrictedInstanceGroupDetails")
    assert restricted.members["Status"].name == "InstanceGroupStatus"


def test_policy_shape():
    assert POLICY.name == NAME and POLICY.settings is UnknownStatusSettings
    assert POLICY.resolves is None  # state findings: they clear when the status moves on
