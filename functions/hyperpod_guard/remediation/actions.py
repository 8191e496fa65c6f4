"""What a remediation plan is made of (Action, Skip) and the helpers a policy's `remediate`
builds them with. Pure: no I/O, no clock. Policies import this module; the planner that asks
each policy (remediation/plan.py) imports the policies."""

from __future__ import annotations

from collections.abc import Collection, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..fleet import name_of
from ..ledger import AlertRecord
from ..policy_settings import NodeRemediation, Remediation
from ..snapshot import ClusterSnapshot, ClusterStatus
from ..timeutil import format_duration

BATCH_LIMIT = 25  # BatchReboot/ReplaceClusterNodes take at most 25 node ids
OPERATIONS = {"reboot": "BatchRebootClusterNodes", "replace": "BatchReplaceClusterNodes"}
#: what a node action did, in words
DONE = {"reboot": "rebooted", "replace": "replaced"}
UPDATE_CLUSTER = "UpdateCluster"
#: every SageMaker operation a plan may call (the stack grants exactly these, with remediation on)
API_OPERATIONS = (UPDATE_CLUSTER, *OPERATIONS.values())
#: node statuses an action may start from; in the others (Pending, ShuttingDown, SystemUpdating,
#: DeepHealthCheckInProgress, NotFound, unknown) HyperPod is already working on the node, or it is gone
ACTIONABLE = frozenset({"Running", "Failure"})


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
    #: a cluster-level action in words, from the policy that plans it: what it would do
    #: ("re-declare the required taints/labels of gpu (UpdateCluster)") and what it did
    intent: str = ""
    outcome: str = ""

    def without(self, nodes: Collection[str]) -> Action | None:
        """This node action minus `nodes` (None when none is left)."""
        kept = tuple(n for n in self.nodes if n not in nodes)
        if kept == self.nodes:
            return self
        if not kept:
            return None
        requests = tuple({"ClusterName": name_of(self.cluster), "NodeIds": chunk} for chunk in chunks(list(kept)))
        return replace(self, nodes=kept, requests=requests)

    def describe(self) -> str:
        """What it would do: "reboot i-1, i-2", or the policy's words for a cluster-level action."""
        if not self.nodes:
            return self.intent
        shown = ", ".join(self.nodes[:5]) + (f" and {len(self.nodes) - 5} more" if len(self.nodes) > 5 else "")
        return f"{self.kind} {shown}"


@dataclass(frozen=True)
class Skip:
    fingerprint: str
    reason: str


Planned = Action | Skip


def chunks(ids: list[str], size: int = BATCH_LIMIT) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def not_in_service(record: AlertRecord, snapshot: ClusterSnapshot) -> Skip | None:
    """Nothing is changed on a cluster that is not InService: the alert is retried later."""
    if snapshot.status == ClusterStatus.IN_SERVICE:
        return None
    return Skip(record.fingerprint, f"cluster is {snapshot.status}: retried on a later evaluation")


def cluster_update(record: AlertRecord, snapshot: ClusterSnapshot, request: dict[str, Any] | str,
                   settings: Remediation, *, intent: str, outcome: str) -> Planned:
    """An UpdateCluster with `request`, or a Skip saying why not (`request` a reason). `intent`
    and `outcome` say in words what it would do and did."""
    if isinstance(request, str):
        return Skip(record.fingerprint, request)
    return Action(record.fingerprint, record.policy, snapshot.name, record.instance_group, "update-cluster",
                  UPDATE_CLUSTER, (request,), settings.dry_run, intent=intent, outcome=outcome)


def node_action(record: AlertRecord, nodes: list[str], snapshot: ClusterSnapshot, settings: NodeRemediation,
                now: datetime, taken: Set[str]) -> Planned | None:
    """Reboot or replace `nodes` (read in this evaluation) for `record`, minus those an earlier
    alert's action in the same plan already `taken`: a node named by several alerts (its own
    unhealthy-node, its group's status and count alerts) is acted on once per plan."""
    skip = not_in_service(record, snapshot)
    if skip:
        return skip
    candidates = [snapshot.node(n) for n in nodes if n not in taken]
    ready = [n.instance_id for n in candidates if n and n.status in ACTIONABLE]
    if not ready:
        busy = ", ".join(f"{n.instance_id} is {n.status}" for n in candidates if n)
        return Skip(record.fingerprint, f"{busy}: HyperPod is working on it") if busy else None
    recovery_off = (snapshot.node_recovery or "").lower() == "none"
    if not recovery_off and now - record.first_seen < settings.after:
        waiting = f"waiting: HyperPod's automatic repair gets {format_duration(settings.after)} first"
        return Skip(record.fingerprint, waiting)
    requests = tuple({"ClusterName": name_of(snapshot.name), "NodeIds": chunk} for chunk in chunks(ready))
    return Action(record.fingerprint, record.policy, snapshot.name, record.instance_group, settings.action,
                  OPERATIONS[settings.action], requests, settings.dry_run, tuple(ready))
