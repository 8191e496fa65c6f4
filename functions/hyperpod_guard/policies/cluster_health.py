"""cluster-health: cluster-level conditions that no instance group shows.

- `AutoScaling.Status == "Failed"` -> critical: HyperPod's (Karpenter) autoscaler is broken, so
  pending work gets no nodes and idle nodes are not given back; its FailureMessage is the evidence;
- a non-empty cluster `FailureMessage` -> warning: the last cluster operation (an UpdateCluster,
  say) failed although the cluster is still serving.

No FailureMessage finding while the cluster is `Failed` or `RollingBack`: degraded-group
(cluster-failed) and failed-rollback (cluster-rolling-back) already report those, critical, with
the FailureMessage in their details; a second alert about the same message would be noise. For
the same reason a FailureMessage that only repeats the failed autoscaler's message is left to the
autoscaling finding. A failed autoscaler is reported whatever the cluster's status: it is a
problem of its own.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import AUTOSCALING, Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import AutoScalingStatus, ClusterSnapshot, ClusterStatus
from .base import Policy

NAME = "cluster-health"
AUTOSCALING_FAILED, FAILURE_MESSAGE = "autoscaling-failed", "failure-message"
#: cluster statuses whose own finding (another policy's) already carries the FailureMessage
_REPORTED_ELSEWHERE = frozenset({ClusterStatus.FAILED, ClusterStatus.ROLLING_BACK})


class ClusterHealthSettings(PolicySettings):
    check_autoscaling: bool = Field(
        default=True, description="Alert when the cluster's AutoScaling status is Failed (critical)."
    )
    check_failure_message: bool = Field(
        default=True,
        description="Alert (warning) on a cluster FailureMessage while the cluster is not Failed or RollingBack "
        "(those are reported by degraded-group and failed-rollback, with the message).",
    )


def _message(text: str | None) -> str | None:
    """One line, or None when empty: moto and some API answers carry FailureMessage ""."""
    line = " ".join((text or "").split())
    return line or None


def _autoscaling(snapshot: ClusterSnapshot) -> Finding | None:
    scaling = snapshot.auto_scaling
    if scaling is None or scaling.status != AutoScalingStatus.FAILED:
        return None
    message = _message(scaling.failure_message)
    kind = f" ({scaling.auto_scaler_type})" if scaling.auto_scaler_type else ""
    details = {"status": scaling.status, "mode": scaling.mode, "autoscaler_type": scaling.auto_scaler_type,
               "failure_message": message, "cluster_status": snapshot.status}
    return Finding(
        policy=NAME, severity=Severity.CRITICAL, cluster=snapshot.name, condition=AUTOSCALING_FAILED,
        problem=AUTOSCALING,
        summary=f"Autoscaling{kind} of cluster {snapshot.name} failed" + (f": {message}" if message else ""),
        details={k: v for k, v in details.items() if v is not None},
    )


def _failure_message(snapshot: ClusterSnapshot, autoscaling: Finding | None) -> Finding | None:
    message = _message(snapshot.failure_message)
    if message is None or snapshot.status in _REPORTED_ELSEWHERE:
        return None
    if autoscaling and autoscaling.details.get("failure_message") == message:
        return None
    return Finding(
        policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, condition=FAILURE_MESSAGE,
        summary=f"Cluster {snapshot.name} reports a failure: {message}",
        details={"failure_message": message, "cluster_status": snapshot.status},
    )


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: ClusterHealthSettings, now: datetime
) -> list[Finding]:
    autoscaling = _autoscaling(snapshot) if settings.check_autoscaling else None
    failure = _failure_message(snapshot, autoscaling) if settings.check_failure_message else None
    return [finding for finding in (autoscaling, failure) if finding is not None]


POLICY = Policy(NAME, "Cluster-level conditions: AutoScaling Failed; a FailureMessage on a cluster that is not Failed.",
                ClusterHealthSettings, evaluate)
