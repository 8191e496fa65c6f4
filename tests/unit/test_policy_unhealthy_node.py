"""unhealthy-node: Node Health Events and nodes in Failure, one row per case."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from hyperpod_guard.events import NodeHealthEvent, parse_event
from hyperpod_guard.findings import fingerprint
from hyperpod_guard.policies import REGISTRY
from hyperpod_guard.policies.unhealthy_node import NAME, evaluate, resolves
from hyperpod_guard.rules import UnhealthyNodeSettings
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = UnhealthyNodeSettings()
CLUSTER = "training"
NODE = "i-0123456789abcdef0"
REASON = "HyperPod Health Monitoring Agent (HMA) has detected fault type NvidiaErrorTerminate on this node and is unhealthy."


def health_event(status: str | None = "Unhealthy", repair: str | None = "None", *, instance: str | None = NODE,
                 recommendation: str = "Please Replace the Faulty Node.") -> NodeHealthEvent:
    summary: dict[str, Any] = {"HealthStatusReason": REASON, "Recommendation": recommendation}
    if status is not None:
        summary["HealthStatus"] = status
    if repair is not None:
        summary["RepairAction"] = repair
    detail: dict[str, Any] = {"ClusterName": CLUSTER, "Tags": {}, "HealthSummary": summary}
    if instance is not None:
        detail["InstanceId"] = instance
    event = parse_event({"detail-type": "SageMaker HyperPod Cluster Node Health Event", "source": "aws.sagemaker",
                         "time": "2025-06-01T11:59:00Z", "detail": detail})
    assert isinstance(event, NodeHealthEvent)
    return event


def snapshot(recovery: str | None = "Automatic", nodes: list[dict[str, Any]] | None = None) -> ClusterSnapshot:
    response: dict[str, Any] = {"ClusterName": CLUSTER, "ClusterStatus": "InService",
                                "InstanceGroups": [{"InstanceGroupName": "gpu", "CurrentCount": 2}]}
    if recovery is not None:
        response["NodeRecovery"] = recovery
    return ClusterSnapshot.from_describe_cluster(response, nodes=nodes)


def node(instance: str = NODE, status: str = "Running", group: str | None = "gpu", message: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceId": instance, "InstanceStatus": {"Status": status}}
    if message:
        data["InstanceStatus"]["Message"] = message
    if group:
        data["InstanceGroupName"] = group
    return data


# (snapshot, event, expected [(severity, condition, group, node, origin)])
CASES = [
    pytest.param(snapshot(), health_event("Unhealthy", "None"),
                 [("critical", "unhealthy", None, NODE, "event")], id="unhealthy-no-repair-action"),
    pytest.param(snapshot("Automatic"), health_event("Unhealthy", "Replace"),
                 [("warning", "unhealthy", None, NODE, "event")], id="unhealthy-replace-automatic"),
    pytest.param(snapshot("Automatic"), health_event("Unhealthy", "Reboot"),
                 [("warning", "unhealthy", None, NODE, "event")], id="unhealthy-reboot-automatic"),
    pytest.param(snapshot("None"), health_event("Unhealthy", "Replace"),
                 [("critical", "unhealthy", None, NODE, "event")], id="unhealthy-replace-but-recovery-none"),
    pytest.param(snapshot("none"), health_event("Unhealthy", "Replace"),
                 [("critical", "unhealthy", None, NODE, "event")], id="recovery-none-lower-case"),
    pytest.param(snapshot(), health_event("Unhealthy", " none "),
                 [("critical", "unhealthy", None, NODE, "event")], id="repair-none-padded-lower"),
    pytest.param(snapshot(None), health_event("Unhealthy", "Replace"),
                 [("warning", "unhealthy", None, NODE, "event")], id="recovery-unknown-is-not-none"),
    pytest.param(ClusterSnapshot.minimal(CLUSTER), health_event("Unhealthy", "Replace"),
                 [("warning", "unhealthy", None, NODE, "event")], id="minimal-snapshot"),
    pytest.param(snapshot(), health_event("Unhealthy", None),
                 [("warning", "unhealthy", None, NODE, "event")], id="repair-action-missing"),
    pytest.param(snapshot(), health_event("Healthy", "None"), [], id="healthy"),
    pytest.param(snapshot(), health_event("healthy", "None"), [], id="healthy-lower"),
    pytest.param(snapshot(), health_event("HEALTHY", "None"), [], id="healthy-upper"),
    pytest.param(snapshot(), health_event("Impaired", "Replace"),
                 [("warning", "unhealthy", None, NODE, "event")], id="unknown-status-is-unhealthy"),
    pytest.param(snapshot(), health_event(None, "None"),
                 [("critical", "unhealthy", None, NODE, "event")], id="status-missing-is-unhealthy"),
    pytest.param(snapshot(), health_event("Unhealthy", "None", instance=None), [], id="no-instance-id"),
    pytest.param(snapshot(nodes=[node()]), health_event("Unhealthy", "None"),
                 [("critical", "unhealthy", "gpu", NODE, "event")], id="node-known-fills-group"),
    pytest.param(snapshot("Automatic", [node(status="Failure")]), None,
                 [("warning", "instance-failure", "gpu", NODE, "state")], id="instance-failure-automatic"),
    pytest.param(snapshot("None", [node(status="Failure")]), None,
                 [("critical", "instance-failure", "gpu", NODE, "state")], id="instance-failure-recovery-none"),
    pytest.param(snapshot("None", [node(status="Running"), node("i-1", "Pending"), node("i-2", "NotFound")]), None,
                 [], id="other-instance-statuses"),
    pytest.param(snapshot("None", [node(status="Failure")]), health_event("Unhealthy", "None"),
                 [("critical", "instance-failure", "gpu", NODE, "state"), ("critical", "unhealthy", "gpu", NODE, "event")],
                 id="failure-and-unhealthy-are-two-conditions"),
    pytest.param(snapshot("None", [node(status="Failure")]), health_event("Healthy", "None"),
                 [("critical", "instance-failure", "gpu", NODE, "state")], id="healthy-event-does-not-hide-failure"),
    pytest.param(snapshot(), None, [], id="no-event-no-nodes"),
]


@pytest.mark.parametrize("snap, event, expected", CASES)
def test_unhealthy_node(snap, event, expected):
    findings = evaluate(snap, event, SETTINGS, NOW)
    got = [(f.severity.value, f.condition, f.instance_group, f.node, f.origin) for f in findings]
    assert got == expected
    for finding in findings:
        assert finding.policy == NAME and finding.cluster == CLUSTER
        assert finding.summary and "\n" not in finding.summary
        assert finding.escalation is None


def test_unhealthy_details_and_summary():
    (finding,) = evaluate(snapshot("None"), health_event("Unhealthy", "None"), SETTINGS, NOW)
    assert finding.details == {
        "health_status": "Unhealthy", "reason": REASON, "repair_action": "None",
        "recommendation": "Please Replace the Faulty Node.", "node_recovery": "None",
    }
    assert finding.summary == f"Node {NODE} is Unhealthy: no automatic repair"
    (known,) = evaluate(snapshot("Automatic", [node()]), health_event("Unhealthy", "Replace"), SETTINGS, NOW)
    assert known.summary == f"Node {NODE} (gpu) is Unhealthy"


def test_instance_failure_details_and_summary():
    snap = snapshot("None", [node(status="Failure", message="EC2 status check failed")])
    (finding,) = evaluate(snap, None, SETTINGS, NOW)
    assert finding.details == {"instance_status": "Failure", "message": "EC2 status check failed", "node_recovery": "None"}
    assert finding.summary == f"Node {NODE} (gpu) is in Failure and NodeRecovery is None: nobody will repair it"
    assert finding.fingerprint == fingerprint(NAME, CLUSTER, None, NODE, "instance-failure")


def test_fingerprint_same_whether_group_known_or_not():
    event = health_event("Unhealthy", "None")
    (unknown,) = evaluate(snapshot(), event, SETTINGS, NOW)
    (known,) = evaluate(snapshot(nodes=[node()]), event, SETTINGS, NOW)
    assert (unknown.instance_group, known.instance_group) == (None, "gpu")
    assert known.fingerprint == unknown.fingerprint == fingerprint(NAME, CLUSTER, None, NODE, "unhealthy")


def test_fingerprint_does_not_depend_on_status_text_or_repair_action():
    a = evaluate(snapshot(), health_event("Unhealthy", "None"), SETTINGS, NOW)[0]
    b = evaluate(snapshot(), health_event("Impaired", "Replace"), SETTINGS, NOW)[0]
    assert a.severity != b.severity
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("status", ["Healthy", "healthy", "HEALTHY", " Healthy "])
def test_healthy_resolves_exactly_the_unhealthy_fingerprint(status):
    (unhealthy,) = evaluate(snapshot(nodes=[node()]), health_event("Unhealthy", "None"), SETTINGS, NOW)
    healthy = health_event(status, "None")
    assert evaluate(snapshot(nodes=[node()]), healthy, SETTINGS, NOW) == []
    assert resolves(snapshot(nodes=[node()]), healthy) == [unhealthy.fingerprint]
    assert resolves(snapshot(), healthy) == [unhealthy.fingerprint]


@pytest.mark.parametrize("event", [
    pytest.param(health_event("Unhealthy", "None"), id="unhealthy"),
    pytest.param(health_event("Impaired", "None"), id="unknown-status"),
    pytest.param(health_event("Healthy", "None", instance=None), id="healthy-without-instance"),
    pytest.param(None, id="no-event"),
])
def test_resolves_nothing_otherwise(event):
    assert resolves(snapshot(), event) == []


def test_resolves_only_the_unhealthy_condition_not_instance_failure():
    snap = snapshot("None", [node(status="Failure")])
    (failure,) = evaluate(snap, None, SETTINGS, NOW)
    assert failure.fingerprint not in resolves(snap, health_event("Healthy"))


def test_registered_with_resolves():
    policy = REGISTRY[NAME]
    assert policy.evaluate is evaluate
    assert policy.resolves is resolves
