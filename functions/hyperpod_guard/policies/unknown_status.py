"""unknown-status: a cluster, instance group or node status outside the API's enums is news, never dropped.

The models keep any status as a string (snapshot.py), and the other policies act on the values they
know: degraded-group on a group's Degraded/Failed, unhealthy-node on a node's Failure, failed-rollback
and degraded-group on the cluster's RollingBack/Failed. A value AWS adds (a cluster stuck in
`ClusterMaintenanceRollbackFailed`, which is in no botocore enum) would otherwise pass in silence.
Here it is reported, with the raw value in the evidence:
- cluster `ClusterStatus` outside ClusterStatus.KNOWN -> a cluster finding;
- instance group (and restricted instance group) `Status` outside GroupStatus.KNOWN -> a group finding;
- node `InstanceStatus.Status` (of the nodes read) outside NodeStatus.KNOWN -> a node finding;
critical when the value names a failure ("Failed", "Failure"), warning otherwise. One condition per
value (`unknown-status-<value>`): a new unknown value is a new alert, and the alert resolves when the
status moves on. Only values outside the enums: the known ones are the other policies' (no double
report), and a count shortfall of a group in an unknown status is still degraded-group's (the two
are one alert: same scope, same problem, alerting.fold).

The enums are constants in snapshot.py, compared with botocore's model by a test, rather than read
from the model at import (~35 ms and ~15 MB of a cold start for three lists).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import ClusterSnapshot, ClusterStatus, GroupStatus, NodeStatus
from .base import Policy
from .degraded_group import RESTRICTED

NAME = "unknown-status"
CONDITION = "unknown-status-"
#: the longest slice of a raw value that goes into a condition (it is in the fingerprint)
SLUG_LIMIT = 48


class UnknownStatusSettings(PolicySettings):
    also_known: list[str] = Field(
        default_factory=list,
        description="Status values to treat as known (no finding), e.g. one AWS added that you have checked "
        "is harmless, until the tool learns it. Exact, case-sensitive.",
    )


def slug(value: str) -> str:
    """A raw value as part of a condition: lower case, [a-z0-9-], bounded."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:SLUG_LIMIT] or "blank"


def severity_of(status: str) -> Severity:
    """Critical when the value names a failure (e.g. ClusterMaintenanceRollbackFailed, FailedMaintenance)."""
    return Severity.CRITICAL if "fail" in status.lower() else Severity.WARNING


def _finding(cluster: str, status: str, known: frozenset[str], what: str, *, instance_group: str | None = None,
             node: str | None = None, prefix: str = "", **evidence: Any) -> Finding:
    details = {"status": status, "known_statuses": sorted(known),
               **{k: v for k, v in evidence.items() if v is not None}}
    return Finding(
        policy=NAME, severity=severity_of(status), cluster=cluster, instance_group=instance_group, node=node,
        condition=f"{prefix}{CONDITION}{slug(status)}", details=details,
        summary=f"{what} reports status {status!r}, which hyperpod-guard does not know: check what it means "
        "(DescribeCluster, the HyperPod console)",
    )


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: UnknownStatusSettings, now: datetime
) -> list[Finding]:
    also = frozenset(settings.also_known)
    group_known, node_known = GroupStatus.KNOWN | also, NodeStatus.KNOWN | also
    findings: list[Finding] = []
    if snapshot.status is not None and snapshot.status not in ClusterStatus.KNOWN | also:
        findings.append(_finding(snapshot.name, snapshot.status, ClusterStatus.KNOWN, f"Cluster {snapshot.name}",
                                 failure_message=snapshot.failure_message or None))
    for group in snapshot.all_groups:
        if group.status is not None and group.status not in group_known:
            label = f"{'Restricted instance' if group.restricted else 'Instance'} group {group.name}"
            findings.append(_finding(snapshot.name, group.status, GroupStatus.KNOWN, label, instance_group=group.name,
                                     prefix=RESTRICTED if group.restricted else "",
                                     restricted=True if group.restricted else None))
    for node in snapshot.nodes:
        status = node.status
        if status is not None and status not in node_known:
            of = f" ({node.instance_group_name})" if node.instance_group_name else ""
            findings.append(_finding(snapshot.name, status, NodeStatus.KNOWN, f"Node {node.instance_id}{of}",
                                     instance_group=node.instance_group_name, node=node.instance_id,
                                     message=node.instance_status.message if node.instance_status else None))
    return findings


POLICY = Policy(NAME, "Cluster, instance group or node statuses outside the API's enums (e.g. "
                "ClusterMaintenanceRollbackFailed): warning, critical when the value says it failed.",
                UnknownStatusSettings, evaluate)
