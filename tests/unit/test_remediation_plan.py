"""remediation.plan and the policies' `remediate`: what remediation would do for firing alerts,
one row per case (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hyperpod_guard.findings import Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.policies.taint_drift import update_cluster_request
from hyperpod_guard.remediation.plan import Action, Skip, chunks, plan
from hyperpod_guard.rules import Policies, Rules
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CLUSTER = "c"
ROLE = "arn:aws:iam::111122223333:role/hp"
REQUIRE_GPU = {"match": {"instance_type": "ml.p5.*"},
               "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
               "labels": {"workload-class": "gpu-training"}}


# --- builders -----------------------------------------------------------------------------------


def taint(key: str, effect: str = "NoSchedule", value: str | None = None) -> dict[str, str]:
    return {"Key": key, "Effect": effect, **({"Value": value} if value is not None else {})}


def group(name: str = "gpu", *, instance_type: str | None = "ml.p5.48xlarge", current: int | None = 3,
          target: int | None = 4, role: str | None = ROLE, labels: dict[str, str] | None = None,
          taints: list[dict[str, str]] | None = None, current_labels: dict[str, str] | None = None,
          current_taints: list[dict[str, str]] | None = None, k8s: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"InstanceGroupName": name, "Status": "InService"}
    for key, value in (("InstanceType", instance_type), ("CurrentCount", current), ("TargetCount", target),
                       ("ExecutionRole", role)):
        if value is not None:
            out[key] = value
    if k8s:
        out["KubernetesConfig"] = {
            "DesiredLabels": labels or {}, "DesiredTaints": taints or [],
            "CurrentLabels": current_labels if current_labels is not None else (labels or {}),
            "CurrentTaints": current_taints if current_taints is not None else (taints or []),
        }
    return out


def node(instance_id: str, group_name: str = "gpu", status: str = "Failure") -> dict[str, Any]:
    return {"InstanceId": instance_id, "InstanceGroupName": group_name, "InstanceStatus": {"Status": status}}


def snapshot(groups: list[dict[str, Any]] | None = None, *, status: str = "InService", recovery: str | None = "None",
             nodes: list[dict[str, Any]] | None = None) -> ClusterSnapshot:
    data: dict[str, Any] = {"ClusterName": CLUSTER, "ClusterStatus": status, "InstanceGroups": groups or [group()],
                            "Nodes": nodes or [], "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:x"}}}
    if recovery is not None:
        data["NodeRecovery"] = recovery
    return ClusterSnapshot.from_describe_cluster(data)


def record(policy: str, condition: str, *, group_name: str | None = "gpu", node_id: str | None = None,
           first_seen: datetime = NOW) -> AlertRecord:
    return AlertRecord(
        fingerprint=f"fp-{policy}-{condition}-{group_name}-{node_id}", cluster=CLUSTER, policy=policy,
        condition=condition, state=AlertState.FIRING, severity=Severity.WARNING, summary="s",
        first_seen=first_seen, last_seen=first_seen, instance_group=group_name, node=node_id, fired_at=first_seen,
    )


def policies(*, required: list[dict[str, Any]] | None = None, taint: dict[str, Any] | None = None,
             degraded: dict[str, Any] | None = None, unhealthy: dict[str, Any] | None = None) -> Policies:
    doc: dict[str, Any] = {"version": 1, "policies": {
        "taint-drift": {"required": required if required is not None else [REQUIRE_GPU],
                        "remediation": taint if taint is not None else {"enabled": True}},
        "degraded-group": {"remediation": degraded if degraded is not None else {"enabled": True}},
        "unhealthy-node": {"remediation": unhealthy if unhealthy is not None else {"enabled": True}},
    }}
    return Rules.model_validate(doc).for_cluster(CLUSTER)


ON = policies()


def spec(**overrides: Any) -> dict[str, Any]:
    """The expected InstanceGroups[0] of an UpdateCluster request for the default group."""
    return {"InstanceGroupName": "gpu", "ExecutionRole": ROLE, "InstanceCount": 4, "InstanceType": "ml.p5.48xlarge",
            **overrides}


GPU = {"Key": "nvidia.com/gpu", "Value": "present", "Effect": "NoSchedule"}
WORKLOAD = {"workload-class": "gpu-training"}


# --- update_cluster_request -----------------------------------------------------------------------

UPDATE_CASES = [
    pytest.param(
        group(), [REQUIRE_GPU],
        spec(KubernetesConfig={"Labels": WORKLOAD, "Taints": [GPU]}),
        id="nothing-declared: only the required keys are set; InstanceCount is TargetCount, not CurrentCount",
    ),
    pytest.param(
        group(labels={"team": "fm", "tier": "prod"}, taints=[taint("dedicated", value="training")]), [REQUIRE_GPU],
        spec(KubernetesConfig={"Labels": {"team": "fm", "tier": "prod", **WORKLOAD},
                               "Taints": [{"Key": "dedicated", "Value": "training", "Effect": "NoSchedule"}, GPU]}),
        id="declared keys of other names stay as declared",
    ),
    pytest.param(
        group(taints=[taint("nvidia.com/gpu", "PreferNoSchedule", "present"), taint("spot", "NoExecute")]),
        [REQUIRE_GPU],
        spec(KubernetesConfig={"Labels": WORKLOAD, "Taints": [{"Key": "spot", "Effect": "NoExecute"}, GPU]}),
        id="required taint replaces a declared one with the same key but another effect",
    ),
    pytest.param(
        group(taints=[taint("nvidia.com/gpu", "NoSchedule", "absent")], labels={"workload-class": "inference"}),
        [REQUIRE_GPU],
        spec(KubernetesConfig={"Labels": WORKLOAD, "Taints": [GPU]}),
        id="required taint and label replace declared ones with another value",
    ),
    pytest.param(
        group(labels={"sagemaker.amazonaws.com/compute-type": "hyperpod", "team": "fm"},
              taints=[taint("sagemaker.amazonaws.com/node-health-status", "NoSchedule", "Unschedulable")],
              current_labels={"kubernetes.io/hostname": "ip-10-0-0-1", "karpenter.sh/nodepool": "x", "team": "fm"},
              current_taints=[taint("node.kubernetes.io/unschedulable")]),
        [REQUIRE_GPU],
        spec(KubernetesConfig={
            "Labels": {"sagemaker.amazonaws.com/compute-type": "hyperpod", "team": "fm", **WORKLOAD},
            "Taints": [{"Key": "sagemaker.amazonaws.com/node-health-status", "Value": "Unschedulable",
                        "Effect": "NoSchedule"}, GPU]}),
        id="managed keys: declared ones untouched, current-only ones never copied",
    ),
    pytest.param(
        group(labels={"team": "fm"}), [{"taints": [{"key": "dedicated", "effect": "NoExecute"}]}],
        spec(KubernetesConfig={"Labels": {"team": "fm"}, "Taints": [{"Key": "dedicated", "Effect": "NoExecute"}]}),
        id="a required taint without a value has no Value member",
    ),
    pytest.param(
        group(instance_type=None, target=7, current=9), [{"labels": {"team": "fm"}}],
        {"InstanceGroupName": "gpu", "ExecutionRole": ROLE, "InstanceCount": 7,
         "KubernetesConfig": {"Labels": {"team": "fm"}, "Taints": []}},
        id="no InstanceType in DescribeCluster: none sent; InstanceCount is TargetCount even above it",
    ),
    pytest.param(
        group(labels={"team": "fm"}),
        [REQUIRE_GPU, {"match": {"instance_group": "cpu-*"}, "labels": {"role": "system"},
                       "taints": [{"key": "system", "effect": "NoSchedule"}]}],
        spec(KubernetesConfig={"Labels": {"team": "fm", **WORKLOAD}, "Taints": [GPU]}),
        id="requirements for other groups are not applied",
    ),
]


@pytest.mark.parametrize(("group_doc", "required", "expected"), UPDATE_CASES)
def test_update_cluster_request(group_doc, required, expected):
    request = update_cluster_request(snapshot([group_doc]), "gpu", policies(required=required).taint_drift)
    assert request == {"ClusterName": CLUSTER, "InstanceGroups": [expected]}


def test_update_cluster_request_keeps_other_groups_out():
    request = update_cluster_request(snapshot([group(), group("cpu", instance_type="ml.m5.xlarge")]), "gpu", ON.taint_drift)
    assert [g["InstanceGroupName"] for g in request["InstanceGroups"]] == ["gpu"]


@pytest.mark.parametrize(("group_doc", "group_name", "reason"), [
    pytest.param(group(role=None), "gpu", "instance group gpu has no ExecutionRole/TargetCount in DescribeCluster",
                 id="no ExecutionRole"),
    pytest.param(group(target=None), "gpu", "instance group gpu has no ExecutionRole/TargetCount in DescribeCluster",
                 id="no TargetCount"),
    pytest.param(group(k8s=False), "gpu", "instance group gpu or its KubernetesConfig is not in DescribeCluster",
                 id="no KubernetesConfig"),
    pytest.param(group(), "other", "instance group other or its KubernetesConfig is not in DescribeCluster",
                 id="unknown group"),
])
def test_update_cluster_request_refuses_without_required_members(group_doc, group_name, reason):
    assert update_cluster_request(snapshot([group_doc]), group_name, ON.taint_drift) == reason
    required = record("taint-drift", "required", group_name=group_name)
    assert plan(snapshot([group_doc]), [required], ON, NOW) == [Skip(required.fingerprint, reason)]


def test_required_taint_drift_plans_one_update_cluster():
    required = record("taint-drift", "required")
    expected_request = {"ClusterName": CLUSTER, "InstanceGroups": [spec(KubernetesConfig={"Labels": WORKLOAD, "Taints": [GPU]})]}
    assert plan(snapshot(), [required], ON, NOW) == [Action(
        required.fingerprint, "taint-drift", CLUSTER, "gpu", "update-cluster", "UpdateCluster", (expected_request,),
        dry_run=True, intent="re-declare the required taints/labels of gpu (UpdateCluster)",
        outcome="re-declared the required taints/labels of gpu")]
    live = plan(snapshot(), [required], policies(taint={"enabled": True, "dry_run": False}), NOW)
    assert [a.dry_run for a in live] == [False]


@pytest.mark.parametrize("condition", ["current-vs-desired", "k8s-config-update-failed"])
@pytest.mark.parametrize("status", ["InService", "Updating", "Failed"])
def test_taint_drift_other_than_required_is_never_acted_on(condition, status):
    drift = record("taint-drift", condition, node_id="i-1" if condition == "k8s-config-update-failed" else None)
    assert plan(snapshot(status=status), [drift], ON, NOW) == []


# --- node actions ---------------------------------------------------------------------------------


def reboot(rec: AlertRecord, nodes: list[str], *, kind: str = "reboot", group_name: str | None = "gpu",
           dry_run: bool = True) -> Action:
    operation = {"reboot": "BatchRebootClusterNodes", "replace": "BatchReplaceClusterNodes"}[kind]
    return Action(rec.fingerprint, rec.policy, CLUSTER, group_name, kind, operation,
                  tuple({"ClusterName": CLUSTER, "NodeIds": c} for c in chunks(nodes)), dry_run, tuple(nodes))


def test_unhealthy_node_acts_on_that_node_only():
    unhealthy = record("unhealthy-node", "unhealthy", node_id="i-b")
    snap = snapshot(nodes=[node("i-a"), node("i-b", status="Running"), node("i-c")])
    assert plan(snap, [unhealthy], ON, NOW) == [reboot(unhealthy, ["i-b"])]


def test_degraded_group_acts_on_the_groups_nodes_in_failure_only():
    degraded = record("degraded-group", "status-degraded")
    snap = snapshot([group(), group("cpu")], nodes=[
        node("i-c"), node("i-a"), node("i-b", status="Running"), node("i-d", "cpu"), node("i-e", status="Pending")])
    assert plan(snap, [degraded], ON, NOW) == [reboot(degraded, ["i-a", "i-c"])]


def test_degraded_group_without_failed_nodes_does_nothing():
    degraded = record("degraded-group", "below-target")
    assert plan(snapshot(nodes=[node("i-a", status="Running")]), [degraded], ON, NOW) == []


def test_sixty_nodes_are_three_requests_of_at_most_25():
    ids = [f"i-{n:017x}" for n in range(60)]
    degraded = record("degraded-group", "status-failed")
    (action,) = plan(snapshot(nodes=[node(i) for i in reversed(ids)]), [degraded], ON, NOW)
    assert [len(r["NodeIds"]) for r in action.requests] == [25, 25, 10]
    assert [r["NodeIds"] for r in action.requests] == [ids[:25], ids[25:50], ids[50:]]
    assert {r["ClusterName"] for r in action.requests} == {CLUSTER}
    assert action.nodes == tuple(ids)
    assert action.describe() == f"reboot {', '.join(ids[:5])} and 55 more"


def test_replace_uses_batch_replace():
    unhealthy = record("unhealthy-node", "instance-failure", node_id="i-a")
    settings = policies(unhealthy={"enabled": True, "action": "replace", "dry_run": False})
    assert plan(snapshot(nodes=[node("i-a")]), [unhealthy], settings, NOW) == [
        reboot(unhealthy, ["i-a"], kind="replace", dry_run=False)]


@pytest.mark.parametrize(("recovery", "elapsed", "after", "expected"), [
    pytest.param("None", timedelta(0), None, "act", id="NodeRecovery None: at once"),
    pytest.param("none", timedelta(0), None, "act", id="NodeRecovery none (any case): at once"),
    pytest.param("Automatic", timedelta(0), None, "wait 30m", id="Automatic: waits"),
    pytest.param("Automatic", timedelta(minutes=29, seconds=59), None, "wait 30m", id="Automatic: waits until after"),
    pytest.param("Automatic", timedelta(minutes=30), None, "act", id="Automatic: acts once after has passed"),
    pytest.param("Automatic", timedelta(hours=1, minutes=59), "2h", "wait 2h", id="Automatic: custom after"),
    pytest.param("Automatic", timedelta(hours=2), "2h", "act", id="Automatic: custom after passed"),
    pytest.param(None, timedelta(minutes=5), None, "wait 30m", id="NodeRecovery unknown: HyperPod's repair first"),
])
def test_node_recovery_and_after(recovery, elapsed, after, expected):
    unhealthy = record("unhealthy-node", "instance-failure", node_id="i-a", first_seen=NOW - elapsed)
    settings = policies(unhealthy={"enabled": True, **({"after": after} if after else {})})
    planned = plan(snapshot(recovery=recovery, nodes=[node("i-a")]), [unhealthy], settings, NOW)
    if expected == "act":
        assert planned == [reboot(unhealthy, ["i-a"])]
    else:
        wait = expected.split()[1]
        assert planned == [Skip(unhealthy.fingerprint, f"waiting: HyperPod's automatic repair gets {wait} first")]


def test_failed_rollback_is_never_acted_on():
    rollback = record("failed-rollback", "rollback-failed")
    assert plan(snapshot(nodes=[node("i-a")]), [rollback], ON, NOW) == []
    assert plan(snapshot(status="Updating"), [rollback], ON, NOW) == []


OFF = {"enabled": False, "dry_run": False}


@pytest.mark.parametrize(("rec", "settings"), [
    pytest.param(record("taint-drift", "required"), policies(taint=OFF), id="taint-drift"),
    pytest.param(record("degraded-group", "status-failed"), policies(degraded=OFF), id="degraded-group"),
    pytest.param(record("unhealthy-node", "instance-failure", node_id="i-a"), policies(unhealthy=OFF),
                 id="unhealthy-node"),
    pytest.param(record("unhealthy-node", "instance-failure", node_id="i-a"), Rules(version=1).for_cluster(CLUSTER),
                 id="defaults: off"),
])
def test_remediation_disabled_does_nothing(rec, settings):
    assert plan(snapshot(nodes=[node("i-a")]), [rec], settings, NOW) == []
    assert plan(snapshot(status="Updating", nodes=[node("i-a")]), [rec], settings, NOW) == []


@pytest.mark.parametrize("status", ["Updating", "SystemUpdating", "RollingBack", "Failed", "Creating"])
def test_cluster_not_in_service_is_skipped_for_later(status):
    firing = [record("taint-drift", "required"), record("degraded-group", "status-failed"),
              record("unhealthy-node", "instance-failure", node_id="i-a")]
    planned = plan(snapshot(status=status, nodes=[node("i-a")]), firing, ON, NOW)
    assert planned == [Skip(r.fingerprint, f"cluster is {status}: retried on a later evaluation") for r in firing]


def test_one_plan_for_several_alerts_in_order():
    firing = [record("unhealthy-node", "instance-failure", node_id="i-a"), record("taint-drift", "required"),
              record("failed-rollback", "rollback-failed"), record("taint-drift", "current-vs-desired")]
    planned = plan(snapshot(nodes=[node("i-a")]), firing, ON, NOW)
    assert [(p.fingerprint, type(p).__name__, getattr(p, "kind", None)) for p in planned] == [
        (firing[0].fingerprint, "Action", "reboot"), (firing[1].fingerprint, "Action", "update-cluster")]


def test_each_node_is_acted_on_once_per_plan():
    """Two alerts about the same group (status-degraded and below-target), and the node's own
    unhealthy-node alert: every node is rebooted once, by the first alert that names it."""
    degraded = record("degraded-group", "status-degraded")
    below = record("degraded-group", "below-target")
    unhealthy = record("unhealthy-node", "instance-failure", node_id="i-a")
    snap = snapshot(nodes=[node("i-a"), node("i-b")])
    assert plan(snap, [unhealthy, degraded, below], ON, NOW) == [reboot(unhealthy, ["i-a"]), reboot(degraded, ["i-b"])]


@pytest.mark.parametrize(("ids", "sizes"), [([], []), (["i-1"], [1]), ([f"i-{n}" for n in range(25)], [25]),
                                            ([f"i-{n}" for n in range(26)], [25, 1]),
                                            ([f"i-{n}" for n in range(50)], [25, 25])])
def test_chunks(ids, sizes):
    assert [len(c) for c in chunks(ids)] == sizes
    assert [i for c in chunks(ids) for i in c] == ids


def test_a_cluster_level_action_speaks_the_policys_words():
    """A policy that plans an UpdateCluster names what it would do and did: nothing in
    remediation/ knows the policy (adding one touches no table there)."""
    from hyperpod_guard.remediation.actions import cluster_update

    alert = record("some-new-policy", "some-condition", group_name=None)
    action = cluster_update(alert, snapshot(), {"ClusterName": CLUSTER, "NodeRecovery": "Automatic"},
                            ON.taint_drift.remediation, intent="turn NodeRecovery on", outcome="turned NodeRecovery on")
    assert isinstance(action, Action)
    assert (action.describe(), action.outcome, action.operation) == (
        "turn NodeRecovery on", "turned NodeRecovery on", "UpdateCluster")
