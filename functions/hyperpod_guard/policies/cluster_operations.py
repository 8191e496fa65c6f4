"""cluster-operations: HyperPod operations (ListClusterOperations / DescribeClusterOperation) that hang.

- an operation `InProgress` for longer than its type's threshold -> warning (`scaling_stuck_after` for
  `Scaling`, `deep_health_check_stuck_after` for `DeepHealthCheck`, the larger of the two for a type
  AWS adds later, its raw name in the evidence); one finding per kind of operation, the oldest leads,
  the others are listed;
- an operation status outside InProgress / Superseded / Done -> warning, the raw value in the evidence;
- `Superseded` and `Done` -> nothing of its own: a superseded scale-up matters to the capacity finding
  it explains, so degraded-group adds `operation_context` to its evidence, and holds a below-target
  shortfall back while `scaling_in_progress` finds a young Scaling operation for the group.

`snapshot.operations` None means the operations were not read: nothing is said. Operations are
cluster-wide (a Scaling operation's `ScalingDetails` name its groups), so the findings are
cluster-level, problem "operations".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import ClusterOperation, ClusterSnapshot, InstanceGroup, OperationStatus, OperationType
from ..timeutil import Duration, format_duration, isoformat
from .base import Policy

NAME = "cluster-operations"
OPERATIONS = "operations"  # the findings' problem
STATUS_UNKNOWN = "operation-status-unknown"
#: most operations listed in one finding's evidence (a cluster keeps its operation history)
MAX_LISTED = 3


_KNOWN_STATUSES = frozenset({OperationStatus.IN_PROGRESS, OperationStatus.SUPERSEDED, OperationStatus.DONE})
#: condition per operation type (the condition is in the fingerprint); any other type: "operation-stuck"
_STUCK = {OperationType.SCALING: "scaling-stuck", OperationType.DEEP_HEALTH_CHECK: "deep-health-check-stuck"}


class ClusterOperationsSettings(PolicySettings):
    scaling_stuck_after: Duration = Field(
        default=timedelta(hours=1),
        description="Warn when a Scaling operation is still InProgress after this long. A scale-up launches "
        "instances, runs the lifecycle scripts and the basic health checks, which take minutes per batch; "
        "one still running after an hour is usually retrying for capacity or a failing lifecycle script. "
        "degraded-group's scaling_grace should match it.",
    )
    deep_health_check_stuck_after: Duration = Field(
        default=timedelta(hours=4),
        description="Warn when a DeepHealthCheck operation is still InProgress after this long. Deep health "
        "checks stress-test every GPU and the network (EFA/NCCL) of the nodes they check, which takes hours on "
        "a large group, hence a longer threshold than scaling. Also used for operation types added later.",
    )


def _threshold(operation: ClusterOperation, settings: ClusterOperationsSettings) -> timedelta:
    if operation.type == OperationType.SCALING:
        return settings.scaling_stuck_after
    if operation.type == OperationType.DEEP_HEALTH_CHECK:
        return settings.deep_health_check_stuck_after
    return max(settings.scaling_stuck_after, settings.deep_health_check_stuck_after)


def _scaling(detail: dict[str, Any]) -> dict[str, Any]:
    """One ClusterOperationScalingDetails entry: the group, its status and counts before -> desired."""
    out = {"instance_group": detail.get("InstanceGroupName"), "status": detail.get("Status"),
           "original": detail.get("Original"), "desired": detail.get("Desired")}
    return {k: v for k, v in out.items() if v is not None}


def describe(operation: ClusterOperation, now: datetime, group: str | None = None) -> dict[str, Any]:
    """An operation as evidence: id, type, status, since when and for how long; its scaling details
    (only the group's, when a group is given)."""
    out: dict[str, Any] = {"operation_id": operation.operation_id, "type": operation.type, "status": operation.status}
    if operation.creation_time:
        out["since"] = isoformat(operation.creation_time)
        out["age"] = format_duration(max(now - operation.creation_time, timedelta(0)))
    details = [_scaling(d) for d in operation.scaling_details if group is None or d.get("InstanceGroupName") == group]
    if details:
        out["scaling_details"] = details
    return {k: v for k, v in out.items() if v is not None}


def _stuck(operations: Iterable[ClusterOperation], settings: ClusterOperationsSettings,
           now: datetime) -> dict[str, list[ClusterOperation]]:
    """InProgress operations older than their threshold, oldest first, by condition."""
    out: dict[str, list[ClusterOperation]] = {}
    for operation in operations:
        # no CreationTime: its age is unknown, and a guess would page on nothing
        if operation.status != OperationStatus.IN_PROGRESS or operation.creation_time is None:
            continue
        if now - operation.creation_time > _threshold(operation, settings):
            out.setdefault(_STUCK.get(operation.type or "", "operation-stuck"), []).append(operation)
    for stuck in out.values():
        stuck.sort(key=lambda o: (o.creation_time, o.operation_id))
    return out


def _groups_of(operation: ClusterOperation) -> str:
    moves = [f"{d.get('InstanceGroupName')} {(d.get('Original') or {}).get('TargetCount', '?')} -> "
             f"{(d.get('Desired') or {}).get('TargetCount', '?')} nodes"
             for d in operation.scaling_details[:MAX_LISTED]]
    return f": {', '.join(moves)}" if moves else ""


def _stuck_finding(snapshot: ClusterSnapshot, condition: str, stuck: list[ClusterOperation],
                   settings: ClusterOperationsSettings, now: datetime) -> Finding:
    oldest = stuck[0]
    threshold = _threshold(oldest, settings)
    details: dict[str, Any] = {**describe(oldest, now), "threshold": format_duration(threshold)}
    if len(stuck) > 1:
        details["more_operations"] = [describe(o, now) for o in stuck[1:1 + MAX_LISTED]]
        details["more_count"] = len(stuck) - 1
    assert oldest.creation_time is not None  # _stuck keeps only operations with a CreationTime
    kind = oldest.type or "Operation of unknown type"
    return Finding(
        policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, condition=condition, problem=OPERATIONS,
        summary=f"{kind} operation {oldest.operation_id} of cluster {snapshot.name} has been InProgress for "
        f"{format_duration(now - oldest.creation_time)} (stuck after {format_duration(threshold)})"
        + _groups_of(oldest),
        details=details,
    )


def _unknown_status(snapshot: ClusterSnapshot, operations: list[ClusterOperation], now: datetime) -> Finding:
    first = operations[0]
    details: dict[str, Any] = {**describe(first, now), "known_statuses": sorted(_KNOWN_STATUSES)}
    if len(operations) > 1:
        details["more_operations"] = [describe(o, now) for o in operations[1:1 + MAX_LISTED]]
        details["more_count"] = len(operations) - 1
    return Finding(
        policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, condition=STATUS_UNKNOWN, problem=OPERATIONS,
        summary=f"{first.type or 'An'} operation {first.operation_id} of cluster {snapshot.name} has a status "
        f"this tool does not know: {first.status}",
        details=details,
    )


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: ClusterOperationsSettings, now: datetime
) -> list[Finding]:
    if not snapshot.operations:  # None: not read; (): nothing ever ran
        return []
    findings = [_stuck_finding(snapshot, condition, stuck, settings, now)
                for condition, stuck in sorted(_stuck(snapshot.operations, settings, now).items())]
    unknown = [o for o in snapshot.operations if o.status is not None and o.status not in _KNOWN_STATUSES]
    if unknown:
        findings.append(_unknown_status(snapshot, unknown, now))
    return findings


# --- what degraded-group asks about a group's capacity -----------------------------------------


def _concerns(operation: ClusterOperation, group: InstanceGroup) -> bool:
    """A Scaling operation about this group: its ScalingDetails name the group, or it has none (a
    ListClusterOperations summary: which groups it scales is unknown, so it may be this one)."""
    if operation.type != OperationType.SCALING:
        return False
    return not operation.scaling_details or any(
        d.get("InstanceGroupName") == group.name for d in operation.scaling_details)


def scaling_in_progress(snapshot: ClusterSnapshot, group: InstanceGroup) -> ClusterOperation | None:
    """The newest Scaling operation InProgress for the group (for the group: its ScalingDetails entry,
    when there is one, is InProgress too), None when there is none or the operations were not read.
    A summary without ScalingDetails counts only while DescribeCluster says the group is scaling."""
    candidates = []
    for operation in snapshot.operations or ():
        if operation.status != OperationStatus.IN_PROGRESS or not _concerns(operation, group):
            continue
        mine = [d for d in operation.scaling_details if d.get("InstanceGroupName") == group.name]
        if mine and all(d.get("Status") not in (None, OperationStatus.IN_PROGRESS) for d in mine):
            continue  # this group's part is over
        if not mine and not group.scaling:
            continue
        candidates.append(operation)
    return max(candidates, key=_newness, default=None)


def _newness(operation: ClusterOperation) -> float:
    """Sort key, newest last; an operation without a CreationTime counts as the oldest."""
    return operation.creation_time.timestamp() if operation.creation_time else float("-inf")


def operation_context(snapshot: ClusterSnapshot, group: InstanceGroup, now: datetime) -> dict[str, Any]:
    """Evidence for a capacity finding of `group`: the Scaling operations InProgress or Superseded that
    concern it, newest first (at most MAX_LISTED), as {"operations": [...]}; {} when there are none or the
    operations were not read. A Superseded scale-up explains a target that moved under the group."""
    related = [o for o in snapshot.operations or ()
               if o.status in (OperationStatus.IN_PROGRESS, OperationStatus.SUPERSEDED) and _concerns(o, group)]
    if not related:
        return {}
    related.sort(key=_newness, reverse=True)
    return {"operations": [describe(o, now, group.name) for o in related[:MAX_LISTED]]}


POLICY = Policy(
    NAME, "Cluster operations (Scaling, DeepHealthCheck) InProgress for longer than their threshold; operation "
    "statuses this tool does not know.", ClusterOperationsSettings, evaluate,
    precedence=("scaling-stuck", "deep-health-check-stuck", "operation-stuck", STATUS_UNKNOWN),
    reads=("operations",),
)
