"""cluster-health: one row per case of AutoScaling status and cluster FailureMessage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hyperpod_guard.engine import evaluate as evaluate_all
from hyperpod_guard.findings import Severity, fingerprint
from hyperpod_guard.policies import REGISTRY
from hyperpod_guard.policies.cluster_health import NAME, evaluate
from hyperpod_guard.rules import ClusterHealthSettings, load_rules
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
CLUSTER = "burst-infer"
KARPENTER = "CustomResourceDefinition installation failed for EKS cluster burst-infer-eks"
UPDATE_FAILED = "UpdateCluster failed: the execution role cannot be assumed"


def autoscaling(status: str | None = "Failed", message: str | None = KARPENTER, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"Mode": "Enable", "AutoScalerType": "Karpenter", **extra}
    if status is not None:
        data["Status"] = status
    if message is not None:
        data["FailureMessage"] = message
    return data


def snapshot(status: str | None = "InService", failure: str | None = "", scaling: Any = "absent") -> ClusterSnapshot:
    data: dict[str, Any] = {
        "ClusterName": CLUSTER, "InstanceGroups": [{"InstanceGroupName": "g5", "Status": "InService"}],
        "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:111122223333:cluster/burst-infer-eks"}},
    }
    if status is not None:
        data["ClusterStatus"] = status
    if failure is not None:
        data["FailureMessage"] = failure
    if scaling != "absent":
        data["AutoScaling"] = scaling
    return ClusterSnapshot.from_describe_cluster(data)


def settings(**kw: Any) -> ClusterHealthSettings:
    return ClusterHealthSettings.model_validate(kw)


# (snapshot, settings, expected [(condition, severity, details)]) — details: a subset to check
CASES = [
    pytest.param(snapshot(), settings(), [], id="healthy"),
    pytest.param(snapshot(scaling=autoscaling()), settings(),
                 [("autoscaling-failed", "critical", {"status": "Failed", "mode": "Enable", "autoscaler_type": "Karpenter",
                                                      "failure_message": KARPENTER, "cluster_status": "InService"})],
                 id="autoscaling-failed-critical"),
    pytest.param(snapshot(scaling=autoscaling(message=None)), settings(),
                 [("autoscaling-failed", "critical", {"status": "Failed"})], id="autoscaling-failed-without-message"),
    pytest.param(snapshot(scaling=autoscaling(message="  ")), settings(),
                 [("autoscaling-failed", "critical", {"failure_message": None})], id="autoscaling-failed-blank-message"),
    *[pytest.param(snapshot(scaling=autoscaling(status, message=None)), settings(), [], id=f"autoscaling-{status}")
      for status in ("InService", "Creating", "Deleting", "Paused")],
    pytest.param(snapshot(scaling=autoscaling(None, message=None)), settings(), [], id="autoscaling-status-absent"),
    pytest.param(snapshot(scaling=None), settings(), [], id="autoscaling-null"),
    pytest.param(snapshot(scaling={}), settings(), [], id="autoscaling-empty"),
    pytest.param(snapshot(failure=UPDATE_FAILED), settings(),
                 [("failure-message", "warning", {"failure_message": UPDATE_FAILED, "cluster_status": "InService"})],
                 id="failure-message-on-in-service-cluster-warning"),
    pytest.param(snapshot("Updating", failure=UPDATE_FAILED), settings(),
                 [("failure-message", "warning", {"cluster_status": "Updating"})], id="failure-message-while-updating"),
    pytest.param(snapshot(failure="line one\nline  two"), settings(),
                 [("failure-message", "warning", {"failure_message": "line one line two"})], id="failure-message-one-line"),
    pytest.param(snapshot(failure=None), settings(), [], id="failure-message-absent"),
    pytest.param(snapshot(failure=" \n "), settings(), [], id="failure-message-blank"),
    # degraded-group (cluster-failed) and failed-rollback (cluster-rolling-back) report these, with the message
    pytest.param(snapshot("Failed", failure=UPDATE_FAILED), settings(), [], id="failed-cluster-left-to-degraded-group"),
    pytest.param(snapshot("RollingBack", failure=UPDATE_FAILED), settings(), [], id="rolling-back-left-to-failed-rollback"),
    pytest.param(snapshot("Failed", failure=UPDATE_FAILED, scaling=autoscaling()), settings(),
                 [("autoscaling-failed", "critical", {"cluster_status": "Failed"})], id="failed-autoscaler-on-failed-cluster"),
    pytest.param(snapshot(failure=UPDATE_FAILED, scaling=autoscaling()), settings(),
                 [("autoscaling-failed", "critical", {}), ("failure-message", "warning", {"failure_message": UPDATE_FAILED})],
                 id="two-problems-two-findings"),
    pytest.param(snapshot(failure=KARPENTER, scaling=autoscaling()), settings(),
                 [("autoscaling-failed", "critical", {"failure_message": KARPENTER})], id="same-message-reported-once"),
    pytest.param(snapshot(failure=KARPENTER, scaling=autoscaling()), settings(check_autoscaling=False),
                 [("failure-message", "warning", {"failure_message": KARPENTER})], id="autoscaling-check-off"),
    pytest.param(snapshot(failure=UPDATE_FAILED, scaling=autoscaling()), settings(check_failure_message=False),
                 [("autoscaling-failed", "critical", {})], id="failure-message-check-off"),
    pytest.param(ClusterSnapshot.minimal(CLUSTER), settings(), [], id="minimal-snapshot"),
]


@pytest.mark.parametrize("snap, rules, expected", CASES)
def test_cluster_health(snap, rules, expected):
    findings = evaluate(snap, None, rules, NOW)
    assert [(f.condition, f.severity.value) for f in findings] == [e[:2] for e in expected]
    for finding, (*_, details) in zip(findings, expected, strict=True):
        assert {key: finding.details.get(key) for key in details} == details, finding.details
        assert (finding.policy, finding.cluster, finding.instance_group, finding.node, finding.origin) == (
            NAME, CLUSTER, None, None, "state")
        assert finding.summary and "\n" not in finding.summary


@pytest.mark.parametrize("snap, summary", [
    pytest.param(snapshot(scaling=autoscaling()), f"Autoscaling (Karpenter) of cluster {CLUSTER} failed: {KARPENTER}", id="autoscaling"),
    pytest.param(snapshot(scaling=autoscaling(message=None, AutoScalerType=None)), f"Autoscaling of cluster {CLUSTER} failed",
                 id="autoscaling-bare"),
    pytest.param(snapshot(failure=UPDATE_FAILED), f"Cluster {CLUSTER} reports a failure: {UPDATE_FAILED}", id="failure-message"),
])
def test_summary(snap, summary):
    [finding] = evaluate(snap, None, settings(), NOW)
    assert finding.summary == summary


def test_fingerprints_are_per_condition_and_ignore_the_message():
    [first] = evaluate(snapshot(failure=UPDATE_FAILED), None, settings(), NOW)
    [reworded] = evaluate(snapshot(failure="UpdateCluster failed again"), None, settings(), NOW)
    [scaling] = evaluate(snapshot(scaling=autoscaling()), None, settings(), NOW)
    assert first.fingerprint == reworded.fingerprint == fingerprint(NAME, CLUSTER, None, None, "failure-message")
    assert scaling.fingerprint == fingerprint(NAME, CLUSTER, None, None, "autoscaling-failed") != first.fingerprint


def test_defaults_registered_and_pure():
    policy = REGISTRY[NAME]
    assert policy.evaluate is evaluate and policy.resolves is None
    defaults = load_rules({"version": 1}).for_cluster(CLUSTER).cluster_health
    assert (defaults.enabled, defaults.severity, defaults.grace, defaults.repeat_interval, defaults.notify_on_resolve) == (
        True, None, timedelta(0), timedelta(hours=4), True)
    assert (defaults.check_autoscaling, defaults.check_failure_message) == (True, True)
    snap = snapshot(failure=UPDATE_FAILED, scaling=autoscaling())
    assert [f.to_dict() for f in evaluate(snap, None, defaults, NOW)] == [
        f.to_dict() for f in evaluate(snap, None, defaults, NOW + timedelta(days=2))]


def test_the_engine_runs_it_with_the_rules_settings():
    snap = snapshot(failure=UPDATE_FAILED, scaling=autoscaling())
    by_default = evaluate_all(snap, None, load_rules({"version": 1}), NOW)
    assert [(f.policy, f.condition, f.severity) for f in by_default.findings] == [
        (NAME, "autoscaling-failed", Severity.CRITICAL), (NAME, "failure-message", Severity.WARNING)]
    quieter = load_rules({"version": 1, "policies": {"cluster-health": {"severity": "info", "grace": "10m"}}})
    findings = evaluate_all(snap, None, quieter, NOW).findings
    assert {(f.severity, f.grace) for f in findings} == {(Severity.INFO, timedelta(minutes=10))}
    off = load_rules({"version": 1, "policies": {"cluster-health": {"enabled": False}}})
    assert evaluate_all(snap, None, off, NOW).findings == []
