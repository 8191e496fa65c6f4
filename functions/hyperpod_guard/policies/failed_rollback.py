"""failed-rollback: software (AMI) updates that rolled back, are stuck rolling back, or whose rollback failed.

From DescribeCluster (`InstanceGroups[].SoftwareUpdateStatus`, whose sequences are
InProgress -> RollbackInProgress -> RollbackComplete | Failed):
- `Failed` -> critical: the update failed and so did its rollback;
- `RollbackComplete` -> warning: the update was rolled back to the previous image;
- `RollbackInProgress` -> info, escalating to critical after `rollback_stuck_after`
  (the policy cannot know when it started; the Finding carries the escalation);
- cluster `RollingBack` -> critical, cluster-level.
From Cluster Events (text templates, see cluster_events.py): rollback failed for a group or an
instance (critical); rollback initiated for a group, or by a bake-time alarm (info), only while
a fresh read cannot say where the group's update is (otherwise the state speaks).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..cluster_events import Classified, Kind, classify
from ..events import HyperPodEvent
from ..findings import Escalation, Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import ClusterSnapshot, ClusterStatus, InstanceGroup, SoftwareUpdateStatus
from ..timeutil import Duration, format_duration
from .base import Policy

NAME = "failed-rollback"
GUIDANCE = (
    "No automatic action is taken on images. Check the group's nodes and the auto-rollback alarms, "
    "fix the cause, then run UpdateClusterSoftware again (or replace failed nodes)."
)

# condition names are shared by state and event findings of the same problem, so that a
# Cluster Event and the next DescribeCluster agree on one fingerprint
ROLLBACK_FAILED, ROLLED_BACK, IN_PROGRESS = "rollback-failed", "rolled-back", "rollback-in-progress"


class FailedRollbackSettings(PolicySettings):
    rollback_stuck_after: Duration = Field(
        default=timedelta(hours=1),
        description="A rollback still in progress after this long becomes critical.",
    )


def _image_details(group: InstanceGroup) -> dict[str, Any]:
    details = {
        "software_update_status": group.software_update_status,
        "current_image_id": group.current_image_id,
        "desired_image_id": group.desired_image_id,
        "target_state_count": group.target_state_count,
        "current_count": group.current_count,
        "auto_rollback_alarms": group.auto_rollback_alarms,
    }
    return {k: v for k, v in details.items() if v not in (None, [])}


_ROLLBACK_STATUSES = frozenset({
    SoftwareUpdateStatus.FAILED, SoftwareUpdateStatus.ROLLBACK_COMPLETE, SoftwareUpdateStatus.ROLLBACK_IN_PROGRESS,
})


def _state_findings(snapshot: ClusterSnapshot, group: InstanceGroup, settings: FailedRollbackSettings) -> list[Finding]:
    status = group.software_update_status
    if status not in _ROLLBACK_STATUSES:  # most groups: nothing to build
        return []
    finding = functools.partial(Finding, policy=NAME, cluster=snapshot.name, instance_group=group.name)
    details = {**_image_details(group), "guidance": GUIDANCE}
    if status == SoftwareUpdateStatus.FAILED:
        return [finding(severity=Severity.CRITICAL, condition=ROLLBACK_FAILED, details=details,
                        summary=f"Software update of instance group {group.name} failed and its rollback failed too")]
    if status == SoftwareUpdateStatus.ROLLBACK_COMPLETE:
        return [finding(severity=Severity.WARNING, condition=ROLLED_BACK, details=details,
                        summary=f"Software update of instance group {group.name} was rolled back to "
                                f"{group.desired_image_id or 'the previous image'}")]
    if status == SoftwareUpdateStatus.ROLLBACK_IN_PROGRESS:
        after = settings.rollback_stuck_after
        return [finding(severity=Severity.INFO, condition=IN_PROGRESS,
                        details={**details, "critical_after": format_duration(after)},
                        escalation=Escalation(after=after, severity=Severity.CRITICAL),
                        summary=f"Software update of instance group {group.name} is rolling back")]
    return []


_EVENT_FINDINGS: dict[Kind, tuple[str, Severity, str]] = {
    Kind.GROUP_ROLLBACK_FAILED: (ROLLBACK_FAILED, Severity.CRITICAL, "Rollback of instance group {group} failed"),
    Kind.INSTANCE_ROLLBACK_FAILED: (ROLLBACK_FAILED, Severity.CRITICAL, "Rollback of node {node} ({group}) failed"),
    Kind.GROUP_ROLLBACK_INITIATED: (IN_PROGRESS, Severity.INFO,
                                    "Software update of instance group {group} failed; rolling back"),
    Kind.BAKE_ALARM_ROLLBACK: (IN_PROGRESS, Severity.INFO,
                               "Alarms fired while baking the update of instance group {group}; rolling back"),
}
# Kind.INSTANCE_ROLLBACK_INITIATED gives no finding of its own: the group's rollback is the
# problem, and the group's state (or its group-level event) reports it.


def _update_status_known(snapshot: ClusterSnapshot, group_name: str | None) -> bool:
    group = snapshot.group(group_name)
    return group is not None and group.software_update_status is not None


def _event_finding(snapshot: ClusterSnapshot, classified: Classified,
                   settings: FailedRollbackSettings) -> Finding | None:
    if classified.kind not in _EVENT_FINDINGS:
        return None
    condition, severity, template = _EVENT_FINDINGS[classified.kind]
    if condition == IN_PROGRESS and _update_status_known(snapshot, classified.instance_group):
        # a fresh read says where the rollback is now; an old "initiated" must not linger
        # (and escalate) after the state has moved on
        return None
    node = classified.instance_id if "INSTANCE" in classified.kind.name else None
    group = snapshot.group(classified.instance_group)
    details: dict[str, Any] = {"event_description": classified.description, "guidance": GUIDANCE}
    if group:
        details.update(_image_details(group))
    if classified.alarms:
        details["triggered_alarms"] = list(classified.alarms)
    escalation = Escalation(settings.rollback_stuck_after, Severity.CRITICAL) if condition == IN_PROGRESS else None
    return Finding(
        policy=NAME, severity=severity, cluster=snapshot.name, instance_group=classified.instance_group, node=node,
        condition=condition, origin="event", escalation=escalation, details=details,
        summary=template.format(group=classified.instance_group, node=node),
    )


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: FailedRollbackSettings, now: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    if snapshot.status == ClusterStatus.ROLLING_BACK:
        findings.append(Finding(
            policy=NAME, severity=Severity.CRITICAL, cluster=snapshot.name, condition="cluster-rolling-back",
            summary=f"Cluster {snapshot.name} is RollingBack",
            details={"status": snapshot.status, "failure_message": snapshot.failure_message or None},
        ))
    for group in snapshot.instance_groups:
        findings.extend(_state_findings(snapshot, group, settings))
    classified = classify(event)
    if classified:
        from_event = _event_finding(snapshot, classified, settings)
        # the state already reports this problem: one finding, the state's (it can resolve)
        if from_event and from_event.fingerprint not in {f.fingerprint for f in findings}:
            findings.append(from_event)
    return findings


POLICY = Policy(NAME, "Software updates that rolled back, are stuck rolling back, or whose rollback failed.",
                FailedRollbackSettings, evaluate,
                precedence=("cluster-rolling-back", ROLLBACK_FAILED, ROLLED_BACK, IN_PROGRESS))
