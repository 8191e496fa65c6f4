"""engine.evaluate: every enabled policy, rules applied per cluster, a stable order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hyperpod_guard.engine import evaluate, snapshot_for
from hyperpod_guard.errors import InvalidSnapshotError
from hyperpod_guard.events import parse_event
from hyperpod_guard.rules import DEFAULT_RULES, load_rules
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def snapshot(name: str = "ml-prod", **cluster) -> ClusterSnapshot:
    """An EKS cluster with one Degraded group short of target, and a rolled-back update."""
    return ClusterSnapshot.from_describe_cluster({
        "ClusterName": name, "ClusterStatus": "InService", "NodeRecovery": "Automatic",
        "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:111122223333:cluster/x"}},
        "InstanceGroups": [{
            "InstanceGroupName": "gpu", "InstanceType": "ml.p5.48xlarge", "Status": "Degraded",
            "CurrentCount": 2, "TargetCount": 4, "SoftwareUpdateStatus": "RollbackComplete",
        }],
        **cluster,
    })


def node_health(status: str, cluster: str = "ml-prod") -> dict:
    return {
        "detail-type": "SageMaker HyperPod Cluster Node Health Event", "source": "aws.sagemaker",
        "resources": [f"arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdefabcdef"],
        "detail": {"ClusterName": cluster, "InstanceId": "i-0123456789abcdef0",
                   "HealthSummary": {"HealthStatus": status, "RepairAction": "None"}},
    }


def test_findings_are_ordered_by_severity_then_policy_and_carry_grace():
    result = evaluate(snapshot(), None, DEFAULT_RULES, NOW)
    assert [(f.severity.value, f.policy, f.condition) for f in result.findings] == [
        ("warning", "degraded-group", "below-target"),
        ("warning", "degraded-group", "status-degraded"),
        ("warning", "failed-rollback", "rolled-back"),
    ]
    assert {f.policy: f.grace for f in result.findings} == {
        "degraded-group": timedelta(minutes=5), "failed-rollback": timedelta(0)}


def test_disabled_policy_and_severity_override_apply_per_cluster():
    rules = load_rules({
        "version": 1,
        "overrides": [{"match": {"cluster": "dev-*"}, "policies": {
            "failed-rollback": {"enabled": False}, "degraded-group": {"severity": "info", "grace": "1h"}}}],
    })
    dev = evaluate(snapshot("dev-1"), None, rules, NOW)
    assert {(f.policy, f.severity.value, f.grace) for f in dev.findings} == {("degraded-group", "info", timedelta(hours=1))}
    prod = evaluate(snapshot("prod-1"), None, rules, NOW)
    assert {f.policy for f in prod.findings} == {"degraded-group", "failed-rollback"}


def test_healthy_node_event_reports_the_fingerprint_it_resolves():
    unhealthy = parse_event(node_health("Unhealthy"))
    fired = evaluate(snapshot_for(unhealthy), unhealthy, DEFAULT_RULES, NOW)
    healthy = parse_event(node_health("Healthy"))
    cleared = evaluate(snapshot_for(healthy), healthy, DEFAULT_RULES, NOW)
    assert [f.policy for f in fired.findings] == ["unhealthy-node"]
    assert cleared.findings == []
    assert cleared.resolved == [fired.findings[0].fingerprint]


def test_snapshot_for_prefers_the_given_snapshot_and_checks_its_cluster():
    event = parse_event(node_health("Unhealthy"))
    assert snapshot_for(event, snapshot()).instance_groups[0].name == "gpu"
    minimal = snapshot_for(event)
    assert (minimal.name, minimal.arn, minimal.orchestration) == (
        "ml-prod", "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdefabcdef", "unknown")
    with pytest.raises(InvalidSnapshotError, match="snapshot is for cluster 'other'"):
        snapshot_for(event, snapshot("other"))


def test_evaluation_is_deterministic():
    first = evaluate(snapshot(), None, DEFAULT_RULES, NOW).to_dict()
    again = evaluate(snapshot(), None, DEFAULT_RULES, NOW + timedelta(days=3)).to_dict()
    assert first == again
