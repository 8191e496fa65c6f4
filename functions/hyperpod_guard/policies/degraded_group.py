"""degraded-group: instance groups that are Degraded/Failed or short of capacity, and a Failed cluster.

- group `Degraded` -> warning; group `Failed` -> critical;
- CurrentCount < MinCount -> critical;
- otherwise, CurrentCount below TargetCount by more than `target_shortfall_ratio` -> warning (not while a
  scaling operation runs, until it is older than `scaling_grace` when the operations were read: then the
  shortfall is reported with the operation in its evidence, cluster-operations reports the operation);
- no count findings while the group is Creating or Deleting: then a gap is expected;
- cluster `Failed` -> critical, cluster-level.
Restricted instance groups (`RestrictedInstanceGroups`) are judged the same way; their findings
say so (summary "Restricted instance group X ...", details `"restricted": true`) and their
conditions are prefixed `restricted-`, so that a restricted group and an instance group of the
same name never share a fingerprint.
Failure messages from the snapshot and from an Error-level Cluster Event go into details.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..events import ClusterEvent, HyperPodEvent
from ..findings import Finding, Severity
from ..ledger import AlertRecord
from ..policy_settings import NodeRemediation, PolicySettings
from ..remediation.actions import Planned, node_action
from ..snapshot import ClusterSnapshot, ClusterStatus, GroupStatus, InstanceGroup
from ..timeutil import Duration, isoformat
from .base import Policy
from .cluster_operations import operation_context, scaling_in_progress

NAME = "degraded-group"
_GAP_EXPECTED = frozenset({GroupStatus.CREATING, GroupStatus.DELETING})
_STATUS_SEVERITY = {GroupStatus.DEGRADED: Severity.WARNING, GroupStatus.FAILED: Severity.CRITICAL}
#: condition prefix of a restricted instance group's findings (the condition is in the fingerprint)
RESTRICTED = "restricted-"


class DegradedGroupSettings(PolicySettings):
    grace: Duration = timedelta(minutes=5)
    target_shortfall_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Alert when CurrentCount is below TargetCount by more than this share of TargetCount.",
    )
    scaling_grace: Duration = Field(
        default=timedelta(hours=1),
        description="A below-target shortfall waits while a Scaling operation for the group is InProgress, for "
        "at most this long from the operation's start (when the operations were read; else while it runs). "
        "Keep it equal to cluster-operations' scaling_stuck_after.",
    )
    remediation: NodeRemediation = Field(default_factory=NodeRemediation)


def _event_evidence(event: HyperPodEvent | None, group: str | None) -> dict[str, Any]:
    """An Error/Warn Cluster Event about this group (or the cluster, for group None)."""
    if not isinstance(event, ClusterEvent):
        return {}
    info = event.info
    if info.event_level not in ("Error", "Warn") or info.instance_group_name != group:
        return {}
    # the operation the event is part of (OperationId): the alerts of one operation can be grouped by it
    evidence = {"description": info.description, "level": info.event_level, "failure_message": info.failure_message,
                "operation_id": info.operation_id}
    if info.event_time:
        evidence["time"] = isoformat(info.event_time)
    return {"cluster_event": {k: v for k, v in evidence.items() if v}}


def _counts(group: InstanceGroup) -> dict[str, Any]:
    counts = {"current": group.current_count, "target": group.target_count, "min": group.min_count}
    return {k: v for k, v in counts.items() if v is not None}


def _quiet(group: InstanceGroup) -> bool:
    """Certainly nothing to report (most groups of a large cluster): a status we do not report on,
    and no node short of its minimum or target. False does not mean a finding, only a closer look."""
    if group.status in _STATUS_SEVERITY:
        return False
    current = group.current_count
    if current is None or group.status in _GAP_EXPECTED:
        return True
    if group.min_count is not None and current < group.min_count:
        return False
    return not group.target_count or current >= group.target_count


def _scaling_expected(snapshot: ClusterSnapshot, group: InstanceGroup, settings: DegradedGroupSettings,
                      now: datetime) -> bool:
    """A shortfall is expected while the group scales: while DescribeCluster says so (ActiveOperations), or,
    when the operations were read, while the Scaling operation for the group is younger than scaling_grace."""
    operation = scaling_in_progress(snapshot, group)
    if operation is None or operation.creation_time is None:
        return group.scaling  # not read, or its start unknown: as long as it runs
    return now - operation.creation_time < settings.scaling_grace


def _group_findings(
    snapshot: ClusterSnapshot, group: InstanceGroup, event: HyperPodEvent | None, settings: DegradedGroupSettings,
    now: datetime,
) -> list[Finding]:
    if _quiet(group):
        return []
    label = f"{'Restricted instance' if group.restricted else 'Instance'} group {group.name}"

    evidence: dict[str, Any] | None = None

    def finding(severity: Severity, condition: str, summary: str, **extra: Any) -> Finding:
        nonlocal evidence
        if evidence is None:  # built with the first finding, once: most groups of a large cluster have none
            evidence = {"status": group.status, "counts": _counts(group), **_event_evidence(event, group.name),
                        **operation_context(snapshot, group, now)}
            if group.restricted:
                evidence["restricted"] = True
        return Finding(policy=NAME, severity=severity, cluster=snapshot.name, instance_group=group.name,
                       condition=(RESTRICTED if group.restricted else "") + condition, summary=summary,
                       details={**evidence, **extra})

    findings = []
    current, target, minimum = group.current_count, group.target_count, group.min_count
    if group.status in _STATUS_SEVERITY:
        nodes = f" ({current}/{target} nodes)" if current is not None and target is not None else ""
        findings.append(finding(
            _STATUS_SEVERITY[group.status], f"status-{group.status.lower()}", f"{label} is {group.status}{nodes}",
        ))
    if current is None or group.status in _GAP_EXPECTED:
        return findings
    if minimum is not None and current < minimum:
        findings.append(finding(
            Severity.CRITICAL, "below-min", f"{label} has {current} nodes, below its minimum of {minimum}",
        ))
    elif target and not _scaling_expected(snapshot, group, settings, now):
        shortfall = (target - current) / target
        if shortfall > settings.target_shortfall_ratio:
            findings.append(finding(
                Severity.WARNING, "below-target",
                f"{label} has {current} of {target} target nodes ({shortfall:.0%} short)",
                shortfall_ratio=round(shortfall, 4), threshold_ratio=settings.target_shortfall_ratio,
            ))
    return findings


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: DegradedGroupSettings, now: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    if snapshot.status == ClusterStatus.FAILED:
        findings.append(Finding(
            policy=NAME, severity=Severity.CRITICAL, cluster=snapshot.name, condition="cluster-failed",
            summary=f"Cluster {snapshot.name} is Failed"
            + (f": {snapshot.failure_message}" if snapshot.failure_message else ""),
            details={"status": snapshot.status, "failure_message": snapshot.failure_message,
                     **_event_evidence(event, None)},
        ))
    for group in snapshot.all_groups:
        findings.extend(_group_findings(snapshot, group, event, settings, now))
    return findings


def remediate(record: AlertRecord, snapshot: ClusterSnapshot, settings: DegradedGroupSettings, now: datetime,
              taken: Set[str]) -> Planned | None:
    """Reboot or replace the group's nodes in Failure. Not a restricted group's: SageMaker runs
    those, and they may share a name with an instance group."""
    if record.condition.startswith(RESTRICTED):
        return node_action(record, [], snapshot, settings.remediation, now, taken)
    nodes = sorted(n.instance_id for n in snapshot.nodes
                   if n.status == "Failure" and n.instance_group_name == record.instance_group)
    return node_action(record, nodes, snapshot, settings.remediation, now, taken)


POLICY = Policy(
    NAME, "Instance groups (and restricted instance groups) Degraded/Failed or short of target/min capacity; "
    "cluster Failed.", DegradedGroupSettings, evaluate, remediate=remediate,
    # a group's status explains its shortfall
    precedence=tuple(prefix + c for prefix in ("", RESTRICTED)
                     for c in ("cluster-failed", "status-failed", "status-degraded", "below-min", "below-target")),
)
