"""taint-drift: one row per case of what nodes carry vs what a group declares vs what rules require."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from tests.builders import cluster_event as raw_cluster_event
from hyperpod_guard.events import parse_event
from hyperpod_guard.findings import Finding
from hyperpod_guard.policies import taint_drift
from hyperpod_guard.rules import MANAGED_KEY_PREFIXES, TaintDriftSettings
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CLUSTER = "c"
CLUSTER_ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
EKS_ARN = "arn:aws:eks:us-west-2:111122223333:cluster/eks-c"
NODE = "i-0abc1234def567890"


# --- builders: DescribeCluster-shaped dicts -------------------------------------------------


def taint(key: str, effect: str = "NoSchedule", value: str | None = None) -> dict[str, str]:
    out = {"Key": key, "Effect": effect}
    if value is not None:
        out["Value"] = value
    return out


def group(
    name: str = "gpu",
    *,
    instance_type: str | None = "ml.p5.48xlarge",
    status: str = "InService",
    current_taints: list[dict[str, str]] | None = None,
    desired_taints: list[dict[str, str]] | None = None,
    current_labels: dict[str, str] | None = None,
    desired_labels: dict[str, str] | None = None,
    kubernetes_config: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "InstanceGroupName": name,
        "Status": status,
        "CurrentCount": 2,
        "TargetCount": 2,
        "ExecutionRole": "arn:aws:iam::111122223333:role/hp",
    }
    if instance_type is not None:
        out["InstanceType"] = instance_type
    if kubernetes_config:
        out["KubernetesConfig"] = {
            "CurrentTaints": current_taints or [],
            "DesiredTaints": desired_taints or [],
            "CurrentLabels": current_labels or {},
            "DesiredLabels": desired_labels or {},
        }
    return out


def same(taints: list[dict[str, str]] | None = None, labels: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    """A group whose nodes carry exactly what it declares."""
    return group(current_taints=taints, desired_taints=taints, current_labels=labels, desired_labels=labels, **kw)


def eks_cluster(groups: list[dict[str, Any]], status: str = "InService") -> dict[str, Any]:
    return {
        "ClusterName": CLUSTER,
        "ClusterArn": CLUSTER_ARN,
        "ClusterStatus": status,
        "InstanceGroups": groups,
        "Orchestrator": {"Eks": {"ClusterArn": EKS_ARN}},
    }


def slurm_cluster(groups: list[dict[str, Any]]) -> dict[str, Any]:
    cluster = eks_cluster(groups)
    del cluster["Orchestrator"]
    return cluster


def cluster_event(description: str, *, group_name: str | None = "g", instance: str | None = NODE, level: str = "Error"):
    details: dict[str, Any] = {
        "EventId": "83ea0bb5-be77-45e8-a458-0a87f778a205",
        "ClusterArn": CLUSTER_ARN,
        "ClusterName": CLUSTER,
        "ResourceType": "Instance",
        "EventTime": 1748794825350,
        "EventLevel": level,
        "Description": description,
        "EventDetails": {"EventMetadata": {"Instance": {"FailureMessage": "kubelet unreachable"}}},
    }
    if group_name is not None:
        details["InstanceGroupName"] = group_name
    if instance is not None:
        details["InstanceId"] = instance
    return parse_event(raw_cluster_event(details, arn=CLUSTER_ARN, time="2026-06-01T17:20:25Z"))


def settings(**kw: Any) -> TaintDriftSettings:
    return TaintDriftSettings.model_validate(kw)


def require(*, taints: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None, **match: str) -> dict[str, Any]:
    return {"match": match, "taints": taints or [], "labels": labels or {}}


def drift(taints: dict[str, Any] | None = None, labels: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"taints": taints or {}, "labels": labels or {}}


def evaluate(snapshot: dict[str, Any], rules: TaintDriftSettings | None = None, event: Any = None, now: datetime = NOW) -> list[Finding]:
    return taint_drift.evaluate(ClusterSnapshot.from_describe_cluster(snapshot), event, rules or settings(), now)


GPU = taint("dedicated", value="gpu")
GPU_EXEC = taint("dedicated", "NoExecute", value="gpu")
NO_VALUE = taint("nvidia.com/gpu")
K8S_MSG = f"Failed to update Kubernetes config for instance {NODE} in Cluster c and IG g"


def managed_row(prefix: str) -> Any:
    key = f"{prefix}node-health-status"
    snapshot = eks_cluster([group(
        current_taints=[GPU, taint(key, value="Unschedulable")], desired_taints=[GPU],
        current_labels={"team": "ml"}, desired_labels={"team": "ml", f"{prefix}zone": "a"},
    )])
    return pytest.param(snapshot, settings(), None, [], id=f"drift-only-in-managed-prefix-{prefix.rstrip('/')}")


# Each row: snapshot, settings, event, expected [(condition, group, node, severity, details subset)].
ROWS = [
    pytest.param(eks_cluster([same([GPU, NO_VALUE], {"team": "ml"})]), settings(), None, [], id="no-drift"),
    pytest.param(
        eks_cluster([group(current_taints=[], desired_taints=[GPU])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"missing": ["dedicated=gpu:NoSchedule"]}))],
        id="missing-taint",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU, NO_VALUE], desired_taints=[GPU])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"unexpected": ["nvidia.com/gpu=:NoSchedule"]}))],
        id="unexpected-taint",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU], desired_taints=[GPU_EXEC])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"changed": [
            {"key": "dedicated", "current": "dedicated=gpu:NoSchedule", "desired": "dedicated=gpu:NoExecute"}]}))],
        id="changed-effect-same-key-is-changed-not-missing-plus-unexpected",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU], desired_taints=[taint("dedicated", value="cpu")])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"changed": [
            {"key": "dedicated", "current": "dedicated=gpu:NoSchedule", "desired": "dedicated=cpu:NoSchedule"}]}))],
        id="changed-value-same-key",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU], desired_taints=[GPU_EXEC, GPU])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"changed": [
            {"key": "dedicated", "current": "dedicated=gpu:NoSchedule",
             "desired": "dedicated=gpu:NoExecute, dedicated=gpu:NoSchedule"}]}))],
        id="same-key-two-effects-desired-one-present",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU, GPU_EXEC], desired_taints=[GPU_EXEC, GPU])]), settings(), None, [],
        id="same-key-two-effects-both-present-any-order",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[taint("nvidia.com/gpu", value="")], desired_taints=[NO_VALUE])]),
        settings(), None, [], id="taint-value-empty-string-equals-absent",
    ),
    pytest.param(
        eks_cluster([group(current_labels={}, desired_labels={"team": "ml"})]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift(labels={"missing": {"team": "ml"}}))],
        id="label-missing",
    ),
    pytest.param(
        eks_cluster([group(current_labels={"team": "ml", "old": "x"}, desired_labels={"team": "ml"})]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift(labels={"unexpected": {"old": "x"}}))],
        id="label-unexpected",
    ),
    pytest.param(
        eks_cluster([group(current_labels={"team": "ml"}, desired_labels={"team": "infra"})]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning",
          drift(labels={"changed": {"team": {"current": "ml", "desired": "infra"}}}))],
        id="label-changed",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU], desired_taints=[GPU_EXEC, NO_VALUE],
                           current_labels={"a": "1", "b": "2"}, desired_labels={"b": "3", "c": "4"})]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift(
            {"missing": ["nvidia.com/gpu=:NoSchedule"],
             "changed": [{"key": "dedicated", "current": "dedicated=gpu:NoSchedule", "desired": "dedicated=gpu:NoExecute"}]},
            {"missing": {"c": "4"}, "unexpected": {"a": "1"}, "changed": {"b": {"current": "2", "desired": "3"}}}))],
        id="taints-and-labels-drift-together-one-finding",
    ),
    *[managed_row(prefix) for prefix in MANAGED_KEY_PREFIXES],
    *[
        pytest.param(
            eks_cluster([group(current_taints=[GPU, taint(key)], desired_taints=[GPU],
                               current_labels={"topology.kubernetes.io/zone": "usw2-az1"}, desired_labels={})]),
            settings(), None, [], id=f"subdomain-of-managed-domain-{key}",
        )
        for key in ("node.kubernetes.io/unschedulable", "node-role.k8s.io/worker")
    ],
    pytest.param(
        eks_cluster([group(current_taints=[GPU, taint("notkubernetes.io/x")], desired_taints=[GPU])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"unexpected": ["notkubernetes.io/x=:NoSchedule"]}))],
        id="lookalike-domain-is-not-managed",
    ),
    pytest.param(
        eks_cluster([group(current_labels={"example.com/owner": "a"}, desired_labels={"example.com/owner": "b"},
                           current_taints=[taint("example.com/pool", value="x")])]),
        settings(ignore_key_prefixes=["example.com/"]), None, [], id="custom-ignore-prefix-ignored",
    ),
    pytest.param(
        eks_cluster([group(current_labels={"example.org/owner": "a"}, desired_labels={"example.org/owner": "b"})]),
        settings(ignore_key_prefixes=["example.com/"]), None,
        [("current-vs-desired", "gpu", None, "warning",
          drift(labels={"changed": {"example.org/owner": {"current": "a", "desired": "b"}}}))],
        id="custom-ignore-prefix-other-keys-still-checked",
    ),
    *[
        pytest.param(
            eks_cluster([group(status=status, current_taints=[], desired_taints=[GPU])]),
            settings(required=[require(labels={"team": "ml"})]), None,
            [("required", "gpu", None, "warning", drift(labels={"missing": {"team": "ml"}}))],
            id=f"group-{status}-no-current-vs-desired-but-required-applies",
        )
        for status in ("Updating", "Creating", "SystemUpdating")
    ],
    *[
        pytest.param(
            eks_cluster([group(current_taints=[], desired_taints=[GPU])], status=status), settings(), None, [],
            id=f"cluster-{status}-no-current-vs-desired",
        )
        for status in ("Updating", "RollingBack")
    ],
    pytest.param(
        eks_cluster([group(status="Degraded", current_taints=[], desired_taints=[GPU])]), settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"missing": ["dedicated=gpu:NoSchedule"]}))],
        id="group-Degraded-is-not-reconciling",
    ),
    pytest.param(
        slurm_cluster([group(current_taints=[], desired_taints=[GPU], desired_labels={"team": "ml"})]),
        settings(required=[require(taints=[{"key": "x", "effect": "NoSchedule"}])]), None, [],
        id="slurm-cluster-nothing-even-with-drift-data",
    ),
    pytest.param(
        eks_cluster([group(kubernetes_config=False)]), settings(), None, [],
        id="eks-group-without-kubernetes-config",
    ),
    pytest.param(
        eks_cluster([group(kubernetes_config=False)]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])]), None,
        [],  # declared state unknown: not judged, rather than "everything missing"
        id="eks-group-without-kubernetes-config-not-judged",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[GPU], desired_taints=[])]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])]), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"unexpected": ["dedicated=gpu:NoSchedule"]})),
         ("required", "gpu", None, "warning", drift({"missing": ["dedicated=gpu:NoSchedule"]}))],
        id="required-taint-missing-from-desired-even-if-nodes-carry-it",
    ),
    pytest.param(
        eks_cluster([same([taint("dedicated", value="cpu")])]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])]), None,
        [("required", "gpu", None, "warning", drift({"changed": [
            {"key": "dedicated", "declared": "dedicated=cpu:NoSchedule", "required": "dedicated=gpu:NoSchedule"}]}))],
        id="required-taint-conflicting-value",
    ),
    pytest.param(
        eks_cluster([same([GPU])]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}])]), None,
        [("required", "gpu", None, "warning", drift({"changed": [
            {"key": "dedicated", "declared": "dedicated=gpu:NoSchedule", "required": "dedicated=gpu:NoExecute"}]}))],
        id="required-taint-conflicting-effect",
    ),
    pytest.param(
        eks_cluster([same([GPU, NO_VALUE], {"team": "ml"})]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                                           {"key": "nvidia.com/gpu", "value": "", "effect": "NoSchedule"}],
                                   labels={"team": "ml"})]), None, [],
        id="required-all-declared",
    ),
    pytest.param(
        eks_cluster([same(labels={"team": "infra"})]), settings(required=[require(labels={"team": "ml"})]), None,
        [("required", "gpu", None, "warning", drift(labels={"changed": {"team": {"declared": "infra", "required": "ml"}}}))],
        id="required-label-conflicting",
    ),
    pytest.param(
        eks_cluster([same()]),
        settings(required=[require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                           require(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
                                   instance_group="gp*")]), None,
        [("required", "gpu", None, "warning", drift({"missing": ["dedicated=gpu:NoSchedule"]}))],
        id="required-taint-from-two-matching-requirements-reported-once",
    ),
    pytest.param(
        eks_cluster([same(name="gpu-a"), same(name="cpu-a")]),
        settings(required=[require(labels={"team": "ml"}, instance_group="gpu-*")]), None,
        [("required", "gpu-a", None, "warning", drift(labels={"missing": {"team": "ml"}}))],
        id="selector-instance-group-glob-match-and-non-match",
    ),
    pytest.param(
        eks_cluster([same(name="cpu-a")]), settings(required=[require(labels={"team": "ml"}, instance_group="gpu-*")]),
        None, [], id="selector-instance-group-glob-non-match",
    ),
    pytest.param(
        eks_cluster([same(name="a"), same(name="b", instance_type="ml.g5.xlarge")]),
        settings(required=[require(labels={"team": "ml"}, instance_type="ml.p5.*")]), None,
        [("required", "a", None, "warning", drift(labels={"missing": {"team": "ml"}}))],
        id="selector-instance-type-glob-match-and-non-match",
    ),
    pytest.param(
        eks_cluster([same(instance_type=None)]), settings(required=[require(labels={"team": "ml"}, instance_type="ml.*")]),
        None, [], id="selector-instance-type-glob-never-matches-unknown-type",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[], desired_taints=[GPU], current_labels={"a": "1"})]),
        settings(check_current_vs_desired=False), None, [], id="check-current-vs-desired-off",
    ),
    pytest.param(
        eks_cluster([group(current_taints=[], desired_taints=[GPU]), group("cpu", current_labels={"x": "y"})]),
        settings(), None,
        [("current-vs-desired", "gpu", None, "warning", drift({"missing": ["dedicated=gpu:NoSchedule"]})),
         ("current-vs-desired", "cpu", None, "warning", drift(labels={"unexpected": {"x": "y"}}))],
        id="one-finding-per-drifting-group-in-snapshot-order",
    ),
    pytest.param(
        eks_cluster([same()]), settings(), cluster_event(K8S_MSG),
        [("k8s-config-update-failed", "g", NODE, "warning", {"event_description": K8S_MSG})],
        id="cluster-event-k8s-config-update-failed-is-node-finding",
    ),
    pytest.param(
        eks_cluster([same()]), settings(), cluster_event(K8S_MSG, group_name=None, instance=None),
        [("k8s-config-update-failed", "g", NODE, "warning", {"event_description": K8S_MSG})],
        id="cluster-event-k8s-config-node-and-group-from-text",
    ),
    pytest.param(
        eks_cluster([same()]), settings(),
        cluster_event("Instance creation in Cluster c and InstanceGroup g failed"), [],
        id="cluster-event-other-text",
    ),
]


@pytest.mark.parametrize(("snapshot", "rules", "event", "expected"), ROWS)
def test_taint_drift(snapshot, rules, event, expected):
    findings = evaluate(snapshot, rules, event)

    assert [(f.condition, f.instance_group, f.node, f.severity) for f in findings] == [e[:4] for e in expected]
    for finding, (*_, details) in zip(findings, expected, strict=True):
        assert {key: finding.details.get(key) for key in details} == details
        assert finding.policy == "taint-drift"
        assert finding.cluster == CLUSTER
        assert finding.origin == ("event" if finding.node else "state")


def test_summary_counts_each_kind_of_drift():
    snapshot = eks_cluster([group(current_taints=[GPU, NO_VALUE], desired_taints=[GPU_EXEC],
                                  current_labels={"a": "1"}, desired_labels={"b": "2"})])
    rules = settings(required=[require(taints=[{"key": "x", "effect": "NoExecute"}], labels={"b": "3"})])

    [cvd, req] = evaluate(snapshot, rules)

    assert cvd.summary == "Nodes of instance group gpu do not carry the declared taints/labels (1 missing, 2 unexpected, 1 changed)"
    assert cvd.details["check"] == "current-vs-desired"
    assert cvd.details["group_status"] == "InService"
    assert req.summary == "Instance group gpu does not declare the required taints/labels (1 missing, 1 conflicting)"
    assert req.details["check"] == "required"
    assert req.details["instance_type"] == "ml.p5.48xlarge"


def test_fingerprint_is_stable_across_drift_content_and_differs_across_groups():
    rules = settings(required=[require(labels={"team": "ml"})])
    before = evaluate(eks_cluster([group(current_taints=[], desired_taints=[GPU])]), rules)
    after = evaluate(eks_cluster([group(current_taints=[GPU, NO_VALUE], desired_taints=[GPU_EXEC],
                                        current_labels={"a": "1"}, desired_labels={"team": "infra"})]), rules)
    other_group = evaluate(eks_cluster([group("cpu", current_taints=[], desired_taints=[GPU])]), rules)

    assert [f.condition for f in before] == [f.condition for f in after] == ["current-vs-desired", "required"]
    assert before[0].details != after[0].details and before[0].summary != after[0].summary
    assert [f.fingerprint for f in before] == [f.fingerprint for f in after]
    assert before[0].fingerprint != before[1].fingerprint
    assert {f.fingerprint for f in before}.isdisjoint(f.fingerprint for f in other_group)


def test_event_finding_fingerprint_names_the_node_not_the_group():
    [with_group] = evaluate(eks_cluster([]), event=cluster_event(K8S_MSG))
    [other_node] = evaluate(eks_cluster([]), event=cluster_event(K8S_MSG.replace(NODE, "i-0fff1234def567890"), instance=None))

    assert with_group.fingerprint == Finding(
        policy="taint-drift", severity=with_group.severity, cluster=CLUSTER, condition="k8s-config-update-failed",
        summary="", instance_group=None, node=NODE).fingerprint
    assert with_group.fingerprint != other_node.fingerprint


def test_pure_same_result_at_any_time_and_nothing_on_a_minimal_snapshot():
    snapshot = eks_cluster([group(current_taints=[], desired_taints=[GPU])])
    rules = settings(required=[require(labels={"team": "ml"})])
    event = cluster_event(K8S_MSG)

    early = evaluate(snapshot, rules, event, now=datetime(2020, 1, 1, tzinfo=timezone.utc))
    late = evaluate(snapshot, rules, event, now=datetime(2035, 12, 31, 23, 59, tzinfo=timezone.utc))

    assert len(early) == 3
    assert early == late
    assert taint_drift.evaluate(ClusterSnapshot.minimal(CLUSTER), None, settings(), NOW) == []
