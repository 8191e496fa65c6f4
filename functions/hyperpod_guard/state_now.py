"""What is true now about an alert's scope, re-read when the alert resolves.

A resolved message must not repeat the firing evidence ("Instance group p5-train is Degraded
(15/16 nodes)"): it says what the evaluation that cleared the alert read ("Instance group
p5-train is back to InService, 16/16 nodes"), or, when it read nothing of that scope (an
event said the node is healthy again, the cluster is gone), why the alert is over.

Pure: given the alert's scope, the snapshot the evaluation read (None when it read nothing)
and why it cleared, a small dict of evidence with a one-line `summary`, kept with the resolved
alert in the ledger so that a grouped message sent minutes later still says what was true then.
"""

from __future__ import annotations

from typing import Any

from .findings import FindingFields
from .snapshot import ClusterSnapshot, InstanceGroup, Node

#: HyperPod's node health label (EKS): Schedulable, Unschedulable, UnschedulablePendingReplacement, ...
HEALTH_LABEL = "sagemaker.amazonaws.com/node-health-status"

Evidence = dict[str, Any]


def resolved_evidence(alert: FindingFields, snapshot: ClusterSnapshot | None, why: str) -> Evidence:
    """The evidence a resolved message shows for `alert`: the state read now of its node, else
    of its instance group, else of the cluster; `why` alone when none of it was read."""
    if snapshot is not None and not snapshot.partial:
        if alert.node:
            node = snapshot.node(alert.node)
            if node is not None:
                return _node(node)
        elif alert.instance_group:
            group = next((g for g in snapshot.all_groups if g.name == alert.instance_group), None)
            if group is not None:
                return _group(group)
        elif snapshot.status:
            return {"summary": f"Cluster {snapshot.name} is {snapshot.status}", "status": snapshot.status}
    return {"summary": _sentence(why)}


def _group(group: InstanceGroup) -> Evidence:
    evidence: Evidence = {"group_status": group.status, "current_count": group.current_count,
                          "target_count": group.target_count}
    counts = f", {group.current_count}/{group.target_count} nodes" if group.target_count is not None else ""
    state = f"back to {group.status}" if group.status == "InService" else f"{group.status or 'of unknown status'}"
    evidence["summary"] = f"Instance group {group.name} is {state}{counts}"
    if group.software_update_status:
        evidence["software_update_status"] = group.software_update_status
    return {k: v for k, v in evidence.items() if v is not None}


def _node(node: Node) -> Evidence:
    evidence: Evidence = {"instance_status": node.status}
    health = node.kubernetes_config.current_labels.get(HEALTH_LABEL) if node.kubernetes_config else None
    parts = [f"Node {node.instance_id} is {node.status or 'of unknown status'}"]
    if health:
        evidence["health_status"] = health
        parts.append(f"health {health}")
    evidence["summary"] = ", ".join(parts)
    return {k: v for k, v in evidence.items() if v is not None}


def _sentence(why: str) -> str:
    """A clear reason as a sentence: "the condition cleared" -> "The condition cleared"."""
    text = why.strip() or "the problem is no longer seen"
    return text[0].upper() + text[1:]
