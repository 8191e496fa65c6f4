"""What remediation would do for firing alerts: pure, from a fresh snapshot and the rules.

- taint-drift `required` findings: UpdateCluster with the group's declared KubernetesConfig,
  where only the keys the rules require are set (everything else stays as declared), the
  group's name, ExecutionRole and InstanceType kept and InstanceCount = TargetCount (never
  scale). Current-vs-desired drift is HyperPod's to reconcile: never "fixed".
- unhealthy-node / degraded-group: BatchReboot/ReplaceClusterNodes for the node reported
  unhealthy (only when this evaluation read it, and it is Running or in Failure), or the group's
  nodes in `Failure`, at most 25 per call; only when the cluster's NodeRecovery is None or the
  alert has lasted `after` (HyperPod's own repair goes first).
- failed-rollback: nothing automatic (the alert carries guidance).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..ledger import AlertRecord
from ..rules import NodeRemediation, Policies, Remediation
from ..snapshot import ClusterSnapshot, ClusterStatus, Taint
from ..timeutil import format_duration

BATCH_LIMIT = 25  # BatchReboot/ReplaceClusterNodes take at most 25 node ids
OPERATIONS = {"reboot": "BatchRebootClusterNodes", "replace": "BatchReplaceClusterNodes"}


@dataclass(frozen=True)
class Action:
    fingerprint: str
    policy: str
    cluster: str
    instance_group: str | None
    #: "update-cluster", "reboot" or "replace"
    kind: str
    operation: str
    #: the exact API parameters, one per call
    requests: tuple[dict[str, Any], ...]
    dry_run: bool
    nodes: tuple[str, ...] = ()

    def without(self, nodes: Collection[str]) -> Action | None:
        """This node action minus `nodes` (None when none is left)."""
        kept = tuple(n for n in self.nodes if n not in nodes)
        if kept == self.nodes:
            return self
        if not kept:
            return None
        requests = tuple({"ClusterName": self.cluster, "NodeIds": chunk} for chunk in chunks(list(kept)))
        return replace(self, nodes=kept, requests=requests)

    def describe(self) -> str:
        if self.kind == "update-cluster":
            return f"re-declare the required taints/labels of {self.instance_group} (UpdateCluster)"
        shown = ", ".join(self.nodes[:5]) + (f" and {len(self.nodes) - 5} more" if len(self.nodes) > 5 else "")
        return f"{self.kind} {shown}"


@dataclass(frozen=True)
class Skip:
    fingerprint: str
    reason: str


Planned = Action | Skip


def chunks(ids: list[str], size: int = BATCH_LIMIT) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _taint(t: Taint) -> dict[str, str]:
    return {"Key": t.key, "Effect": t.effect, **({"Value": t.value} if t.value else {})}


def update_cluster_request(snapshot: ClusterSnapshot, group_name: str, policies: Policies) -> dict[str, Any] | str:
    """The UpdateCluster parameters that re-declare the required keys, or why not."""
    group = snapshot.group(group_name)
    if group is None or group.kubernetes_config is None:
        return f"instance group {group_name} or its KubernetesConfig is not in DescribeCluster"
    if not group.execution_role or group.target_count is None:
        return f"instance group {group_name} has no ExecutionRole/TargetCount in DescribeCluster"
    settings = policies.taint_drift
    requirements = [r for r in settings.required if r.match.matches(group.name, group.instance_type)]
    labels = dict(group.kubernetes_config.desired_labels)
    taints = list(group.kubernetes_config.desired_taints)
    for requirement in requirements:
        labels.update(requirement.labels)
        for required in requirement.taints:
            taints = [t for t in taints if t.key != required.key]
            taints.append(Taint(Key=required.key, Value=required.value, Effect=required.effect))
    spec: dict[str, Any] = {
        "InstanceGroupName": group.name, "ExecutionRole": group.execution_role, "InstanceCount": group.target_count,
        "KubernetesConfig": {"Labels": labels, "Taints": [_taint(t) for t in taints]},
    }
    if group.instance_type:
        spec["InstanceType"] = group.instance_type
    return {"ClusterName": snapshot.name, "InstanceGroups": [spec]}


#: node statuses an action may start from; in the others (Pending, ShuttingDown, SystemUpdating,
#: DeepHealthCheckInProgress, NotFound, unknown) HyperPod is already working on the node, or it is gone
ACTIONABLE = frozenset({"Running", "Failure"})


def _nodes_for(record: AlertRecord, snapshot: ClusterSnapshot) -> list[str]:
    if record.policy == "unhealthy-node" and record.node:
        # only a node read in this evaluation: an action rests on what the API says now
        return [record.node] if snapshot.node(record.node) else []
    # not a restricted group's: SageMaker runs those, and they may share a name with an instance group
    if record.policy == "degraded-group" and not record.condition.startswith("restricted-"):
        return sorted(n.instance_id for n in snapshot.nodes
                      if n.status == "Failure" and n.instance_group_name == record.instance_group)
    return []


def _node_action(record: AlertRecord, snapshot: ClusterSnapshot, settings: NodeRemediation, now: datetime,
                 planned_nodes: set[str]) -> Planned | None:
    # a node named by several alerts (its own unhealthy-node, its group's status and count
    # alerts) is acted on once per plan, by the first of them
    candidates = [n for n in _nodes_for(record, snapshot) if n not in planned_nodes]
    nodes = [n for n in candidates if snapshot.node(n).status in ACTIONABLE]  # type: ignore[union-attr]
    if not nodes:
        busy = ", ".join(f"{n} is {snapshot.node(n).status}" for n in candidates)  # type: ignore[union-attr]
        return Skip(record.fingerprint, f"{busy}: HyperPod is working on it") if busy else None
    recovery_off = (snapshot.node_recovery or "").lower() == "none"
    if not recovery_off and now - record.first_seen < settings.after:
        return Skip(record.fingerprint, f"waiting: HyperPod's automatic repair gets {format_duration(settings.after)} first")
    operation = OPERATIONS[settings.action]
    requests = tuple({"ClusterName": snapshot.name, "NodeIds": chunk} for chunk in chunks(nodes))
    return Action(record.fingerprint, record.policy, snapshot.name, record.instance_group, settings.action, operation,
                  requests, settings.dry_run, tuple(nodes))


def _settings(policies: Policies, policy: str) -> Remediation | None:
    if policy not in ("taint-drift", "degraded-group", "unhealthy-node"):
        return None
    settings = policies.for_policy(policy).remediation  # type: ignore[attr-defined]
    return settings if settings.enabled else None


def plan(snapshot: ClusterSnapshot, firing: list[AlertRecord], policies: Policies, now: datetime) -> list[Planned]:
    planned: list[Planned] = []
    planned_nodes: set[str] = set()
    for record in firing:
        settings = _settings(policies, record.policy)
        if settings is None:
            continue
        if record.policy == "taint-drift" and (record.condition != "required" or not record.instance_group):
            continue  # current-vs-desired: HyperPod reconciles it; never "fixed" (nor "skipped")
        if snapshot.status != ClusterStatus.IN_SERVICE:
            planned.append(Skip(record.fingerprint, f"cluster is {snapshot.status}: retried on a later evaluation"))
            continue
        if record.policy == "taint-drift":
            request = update_cluster_request(snapshot, record.instance_group, policies)
            if isinstance(request, str):
                planned.append(Skip(record.fingerprint, request))
            else:
                planned.append(Action(record.fingerprint, record.policy, snapshot.name, record.instance_group,
                                      "update-cluster", "UpdateCluster", (request,), settings.dry_run))
            continue
        action = _node_action(record, snapshot, settings, now, planned_nodes)  # type: ignore[arg-type]
        if action:
            planned.append(action)
            if isinstance(action, Action):
                planned_nodes.update(action.nodes)
    return planned
