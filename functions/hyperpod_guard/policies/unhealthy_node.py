"""unhealthy-node: nodes that HyperPod's health agent reports unhealthy, or that are in `Failure`.

- Node Health Event with a HealthStatus other than "Healthy" -> a finding for that node:
  critical when nobody will repair it automatically (RepairAction "None", or the cluster's
  NodeRecovery "None"), warning otherwise. A "Healthy" event for the node resolves it.
- A node in the snapshot whose InstanceStatus is `Failure` -> same severity rule.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from pydantic import Field

from ..events import HyperPodEvent, NodeHealthEvent
from ..findings import Finding, Severity, fingerprint
from ..ledger import AlertRecord
from ..policy_settings import NodeRemediation, PolicySettings
from ..remediation.actions import Planned, node_action
from ..snapshot import ClusterSnapshot
from .base import Policy

NAME = "unhealthy-node"
UNHEALTHY, INSTANCE_FAILURE = "unhealthy", "instance-failure"


class UnhealthyNodeSettings(PolicySettings):
    remediation: NodeRemediation = Field(default_factory=NodeRemediation)


def _no_auto_repair(value: str | None) -> bool:
    return (value or "").strip().lower() == "none"


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: UnhealthyNodeSettings, now: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    cluster_repairs = not _no_auto_repair(snapshot.node_recovery)
    for node in snapshot.nodes:
        if node.status == "Failure":
            findings.append(Finding(
                policy=NAME, cluster=snapshot.name, instance_group=node.instance_group_name, node=node.instance_id,
                condition=INSTANCE_FAILURE, severity=Severity.WARNING if cluster_repairs else Severity.CRITICAL,
                summary=f"Node {node.instance_id} ({node.instance_group_name}) is in Failure"
                + ("" if cluster_repairs else " and NodeRecovery is None: nobody will repair it"),
                details={"instance_status": node.status,
                         "message": node.instance_status.message if node.instance_status else None,
                         "node_recovery": snapshot.node_recovery},
            ))
    if isinstance(event, NodeHealthEvent) and not event.healthy and event.detail.instance_id:
        health = event.detail.health_summary
        node_id = event.detail.instance_id
        known = snapshot.node(node_id)
        group = known.instance_group_name if known else None
        auto_repair = cluster_repairs and not _no_auto_repair(health.repair_action)
        findings.append(Finding(
            policy=NAME, cluster=snapshot.name, instance_group=group, node=node_id, condition=UNHEALTHY, origin="event",
            severity=Severity.WARNING if auto_repair else Severity.CRITICAL,
            summary=(f"Node {node_id}{f' ({group})' if group else ''} is {health.health_status or 'unhealthy'}"
                     + ("" if auto_repair else ": no automatic repair")),
            details={
                "health_status": health.health_status, "reason": health.health_status_reason,
                "repair_action": health.repair_action, "recommendation": health.recommendation,
                "node_recovery": snapshot.node_recovery,
            },
        ))
    return findings


def resolves(snapshot: ClusterSnapshot, event: HyperPodEvent | None) -> list[str]:
    """A Healthy event for a node clears that node's `unhealthy` finding."""
    if isinstance(event, NodeHealthEvent) and event.healthy and event.detail.instance_id:
        return [fingerprint(NAME, snapshot.name, None, event.detail.instance_id, UNHEALTHY)]
    return []


def remediate(record: AlertRecord, snapshot: ClusterSnapshot, settings: UnhealthyNodeSettings, now: datetime,
              taken: Set[str]) -> Planned | None:
    """Reboot or replace the node, only when this evaluation read it: an action rests on what
    the API says now."""
    nodes = [record.node] if record.node and snapshot.node(record.node) else []
    return node_action(record, nodes, snapshot, settings.remediation, now, taken)


POLICY = Policy(NAME, "Nodes reported unhealthy by HyperPod's health agent or in Failure.", UnhealthyNodeSettings,
                evaluate, resolves, remediate,
                precedence=(INSTANCE_FAILURE, UNHEALTHY))  # the state confirms the report
