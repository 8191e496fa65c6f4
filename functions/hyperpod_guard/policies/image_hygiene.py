"""image-hygiene: patch debt of the images (AMIs) a cluster runs.

`ImageVersionStatus` (UpToDate, UpdateAvailable, SecurityUpdateRequired, EndOfLife) of instance
groups (DescribeCluster), of the nodes read (DescribeClusterNode) and of the cluster (ListClusters'
summary, aggregated over its groups; None when not read):
- `SecurityUpdateRequired` -> warning; `EndOfLife` -> critical; `UpdateAvailable` -> info only when
  `report_update_available`; any other value -> warning with the raw value (news, never dropped).
  One alert per problem at its narrowest scope: a group's status; a node's only when it differs
  from its group's; the cluster's only when no group reports that status. How long a status has
  lasted is the alert's (the ledger's first seen); the evidence adds what the API tells, e.g. the
  nodes' LastSoftwareUpdateTime.
- `partially-patched` (warning): nodes of one group (those read: a sweep reads them all) on
  different CurrentImageReleaseVersions once the group's patch window is over (its NextPatchDate
  + the idle wait of WhenIdle/WhenAllIdle + `patch_settle`): the WhenIdle/Skip outcome, where nodes
  that never became idle stay on the previous image. Not while the group is updating.
- `release-drift` (info, warning after `drift_warning_after`): CurrentImageReleaseVersion differs
  from DesiredImageReleaseVersion on a group, or on a node whose pair differs from its group's; not
  while the group is updating or its patch window is open. It asks to fire only after `drift_after`
  (the finding's grace).
Conditions never name a version or status value (that would make a new alert per release).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import Escalation, Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import RECONCILING, ClusterSnapshot, InstanceGroup, Node, SoftwareUpdateStatus
from ..timeutil import Duration, format_duration, isoformat
from .auto_patch import window
from .base import Policy

NAME = "image-hygiene"
IMAGE = "image"


class ImageStatus:
    UP_TO_DATE, UPDATE_AVAILABLE = "UpToDate", "UpdateAvailable"
    SECURITY_UPDATE_REQUIRED, END_OF_LIFE = "SecurityUpdateRequired", "EndOfLife"


KNOWN_STATUSES = frozenset({ImageStatus.UP_TO_DATE, ImageStatus.UPDATE_AVAILABLE,
                            ImageStatus.SECURITY_UPDATE_REQUIRED, ImageStatus.END_OF_LIFE})
END_OF_LIFE, SECURITY_UPDATE, UPDATE_AVAILABLE, UNKNOWN_STATUS = (
    "end-of-life", "security-update-required", "update-available", "image-status-unknown")
PARTIALLY_PATCHED, RELEASE_DRIFT = "partially-patched", "release-drift"
#: a group whose software is being updated: differing versions are the update, not debt
_UPDATING = frozenset({SoftwareUpdateStatus.PENDING, SoftwareUpdateStatus.IN_PROGRESS,
                       SoftwareUpdateStatus.ROLLBACK_IN_PROGRESS})
#: at most this many node ids in a finding's evidence (the counts say the rest)
NODE_SAMPLE = 20


class ImageHygieneSettings(PolicySettings):
    report_update_available: bool = Field(
        default=False, description="Report UpdateAvailable (a newer image, no security fix) as info.",
    )
    patch_settle: Duration = Field(
        default=timedelta(hours=4),
        description="After a group's patch window opened (NextPatchDate, plus the idle wait of WhenIdle/"
        "WhenAllIdle), give patching this long before nodes on different image versions count as partially "
        "patched; no release drift is reported until then either.",
    )
    drift_after: Duration = Field(
        default=timedelta(hours=24),
        description="Current and desired ImageReleaseVersion differing (group or node) is reported (info) once "
        "it has lasted this long (the finding's grace).",
    )
    drift_warning_after: Duration = Field(
        default=timedelta(days=7),
        description="Release drift that has lasted this long (since first seen) becomes a warning.",
    )


def _status_finding(status: str | None, settings: ImageHygieneSettings) -> tuple[str, Severity] | None:
    if status is None or status == ImageStatus.UP_TO_DATE:
        return None
    if status == ImageStatus.END_OF_LIFE:
        return END_OF_LIFE, Severity.CRITICAL
    if status == ImageStatus.SECURITY_UPDATE_REQUIRED:
        return SECURITY_UPDATE, Severity.WARNING
    if status == ImageStatus.UPDATE_AVAILABLE:
        return (UPDATE_AVAILABLE, Severity.INFO) if settings.report_update_available else None
    return UNKNOWN_STATUS, Severity.WARNING


def _what(status: str) -> str:
    return {ImageStatus.END_OF_LIFE: "has reached end of life: an upgrade is required",
            ImageStatus.SECURITY_UPDATE_REQUIRED: "has known vulnerabilities: a security update is required",
            ImageStatus.UPDATE_AVAILABLE: "has a newer version available"}.get(
                status, f"has an image version status hyperpod-guard does not know: {status}")


def _versions(item: InstanceGroup | Node) -> dict[str, Any]:
    versions = {"current_image_release_version": item.current_image_release_version,
                "desired_image_release_version": item.desired_image_release_version,
                "current_image_id": item.current_image_id, "desired_image_id": item.desired_image_id}
    return {k: v for k, v in versions.items() if v is not None}


def _last_update(nodes: Iterable[Node]) -> dict[str, Any]:
    """The oldest LastSoftwareUpdateTime of the nodes read: how long at least the image has been in place."""
    times = [n.last_software_update_time for n in nodes if n.last_software_update_time is not None]
    return {"last_software_update": isoformat(min(times))} if times else {}


def _group_nodes(snapshot: ClusterSnapshot, group: InstanceGroup) -> list[Node]:
    return [n for n in snapshot.nodes if n.instance_group_name == group.name]


def _status_findings(snapshot: ClusterSnapshot, settings: ImageHygieneSettings) -> list[Finding]:
    finding = functools.partial(Finding, policy=NAME, cluster=snapshot.name, problem=IMAGE)
    findings: list[Finding] = []
    group_statuses: dict[str | None, str | None] = {g.name: g.image_version_status for g in snapshot.instance_groups}
    for group in snapshot.instance_groups:
        judged = _status_finding(group.image_version_status, settings)
        if judged and group.image_version_status:
            release = group.current_image_release_version
            findings.append(finding(
                severity=judged[1], condition=judged[0], instance_group=group.name,
                summary=f"Instance group {group.name} runs an image{f' (release {release})' if release else ''} "
                        f"that {_what(group.image_version_status)}",
                details={"image_version_status": group.image_version_status, **_versions(group),
                         **_last_update(_group_nodes(snapshot, group))},
            ))
    for node in snapshot.nodes:
        judged = _status_finding(node.image_version_status, settings)
        if judged and node.image_version_status and node.image_version_status != group_statuses.get(
                node.instance_group_name):
            findings.append(finding(
                severity=judged[1], condition=judged[0], instance_group=node.instance_group_name,
                node=node.instance_id,
                summary=f"Node {node.instance_id} ({node.instance_group_name}) runs an image that "
                        f"{_what(node.image_version_status)}",
                details={"image_version_status": node.image_version_status,
                         "group_image_version_status": group_statuses.get(node.instance_group_name), **_versions(node),
                         **_last_update([node])},
            ))
    judged = _status_finding(snapshot.image_version_status, settings)
    if judged and snapshot.image_version_status and snapshot.image_version_status not in group_statuses.values():
        findings.append(finding(
            severity=judged[1], condition=judged[0],
            summary=f"Cluster {snapshot.name} runs an image that {_what(snapshot.image_version_status)} "
                    "(ListClusters, over all instance groups)",
            details={"image_version_status": snapshot.image_version_status},
        ))
    return findings


def _updating(group: InstanceGroup) -> bool:
    return group.status in RECONCILING or group.software_update_status in _UPDATING


def _settling(group: InstanceGroup, settings: ImageHygieneSettings, now: datetime) -> bool:
    """The group's patch window is open or was opened less than its idle wait + `patch_settle` ago."""
    span = window(group, settings.patch_settle)
    return span is not None and span[0] <= now < span[1]


def _partially_patched(snapshot: ClusterSnapshot, group: InstanceGroup, settings: ImageHygieneSettings,
                       now: datetime) -> Finding | None:
    span = window(group, settings.patch_settle)
    if span is None or now < span[1] or _updating(group):
        return None  # no window yet, or it is not over: differing versions are the patch under way
    nodes = [n for n in _group_nodes(snapshot, group) if n.current_image_release_version]
    counts = Counter(n.current_image_release_version for n in nodes)
    if len(counts) < 2:
        return None
    target = group.desired_image_release_version or group.current_image_release_version
    behind = sorted(n.instance_id for n in nodes if n.current_image_release_version != target) if target else []
    described = ", ".join(f"{count} on {version}" for version, count in counts.most_common())
    strategy = group.auto_patch_config.patching_strategy if group.auto_patch_config else None
    return Finding(
        policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, instance_group=group.name,
        condition=PARTIALLY_PATCHED, problem=IMAGE,
        summary=f"Instance group {group.name} is partially patched after its patch window of "
                f"{isoformat(span[0])}: nodes {described}",
        details={"versions": dict(counts.most_common()), "nodes_read": len(nodes), "patching_strategy": strategy,
                 "next_patch_date": isoformat(span[0]), **_versions(group),
                 **({"behind": behind[:NODE_SAMPLE], "behind_count": len(behind)} if behind else {}),
                 "guidance": "Nodes that never became idle stay on the previous image: run UpdateClusterSoftware "
                             "with the desired ImageReleaseVersion, or let the next window patch them."},
    )


def _drift(snapshot: ClusterSnapshot, group: InstanceGroup, settings: ImageHygieneSettings,
           now: datetime) -> list[Finding]:
    if _updating(group) or _settling(group, settings, now):
        return []
    after = settings.drift_warning_after
    drift = functools.partial(
        Finding, policy=NAME, severity=Severity.INFO, cluster=snapshot.name, instance_group=group.name,
        condition=RELEASE_DRIFT, problem=IMAGE, grace=settings.drift_after,
        escalation=Escalation(after=after, severity=Severity.WARNING))
    pair = (group.current_image_release_version, group.desired_image_release_version)
    findings: list[Finding] = []
    if None not in pair and pair[0] != pair[1]:
        findings.append(drift(
            summary=f"Instance group {group.name} runs image release {pair[0]}, not the desired {pair[1]}",
            details={**_versions(group), "warning_after": format_duration(after)}))
    for node in _group_nodes(snapshot, group):
        own = (node.current_image_release_version, node.desired_image_release_version)
        if None not in own and own[0] != own[1] and own != pair:
            findings.append(drift(
                node=node.instance_id,
                summary=f"Node {node.instance_id} ({group.name}) runs image release {own[0]}, not the desired {own[1]}",
                details={**_versions(node), **_last_update([node]), "warning_after": format_duration(after)}))
    return findings


def evaluate(snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: ImageHygieneSettings,
             now: datetime) -> list[Finding]:
    # restricted instance groups carry no image fields in the API
    findings = _status_findings(snapshot, settings)
    for group in snapshot.instance_groups:
        partial = _partially_patched(snapshot, group, settings, now)
        if partial:
            findings.append(partial)
        findings.extend(_drift(snapshot, group, settings, now))
    return findings


POLICY = Policy(NAME, "Image patch debt: ImageVersionStatus of the cluster, groups and nodes (SecurityUpdateRequired, "
                "EndOfLife), groups partially patched after their window, current vs desired image release.",
                ImageHygieneSettings, evaluate,
                precedence=(END_OF_LIFE, UNKNOWN_STATUS, SECURITY_UPDATE, PARTIALLY_PATCHED, RELEASE_DRIFT,
                            UPDATE_AVAILABLE),
                cluster_reads=("image_version_status",))
