"""auto-patch: an instance group's automatic patch windows (`AutoPatchConfig`), announced, not paged.

HyperPod sets `CurrentPatchSchedule.NextPatchDate` when it detects a patch for the group's image;
at that time it cordons the group's nodes and patches them (`PatchingStrategy`: WhenIdle /
WhenAllIdle wait up to `IdleWaitWindowInSeconds`, 24 h when unset, for nodes to become idle;
DrainFirst evicts pods and patches in batches). So, per instance group with an AutoPatchConfig:
- `patch-window` (info): from `notice_before` before NextPatchDate until the window closes
  (NextPatchDate + the idle wait of WhenIdle/WhenAllIdle + `window_length`). One alert per
  window: its condition never names the date (the date is in the evidence), so it is sent once
  when the notice starts and resolves when the window is over. While the window is open the
  finding's `phase` is "active" and alerting.plan inhibits what the window causes by design
  (`inhibition`, below) in the group: nodes rebooting (health `UnschedulablePendingReboot`), a
  capacity dip below target, taints and labels not yet on the cordoned nodes.
- `reschedule-pending` (info): DesiredPatchSchedule differs from CurrentPatchSchedule (a
  reschedule HyperPod has not applied yet).
- `unknown-strategy` (warning): a PatchingStrategy outside the known ones, with the raw value.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import Finding, FindingFields, Severity
from ..policy_settings import PolicySettings
from ..snapshot import AutoPatchConfig, ClusterSnapshot, InstanceGroup
from ..timeutil import Duration, format_duration, isoformat, parse_timestamp
from . import degraded_group, taint_drift, unhealthy_node
from .base import Policy

NAME = "auto-patch"
#: problems (findings.py): a window (and a strategy we do not know) is one alert of the group; a
#: pending reschedule is news of its own, never folded into a window notice already sent
PATCHING, SCHEDULE = "patching", "patch-schedule"
WINDOW, RESCHEDULE, UNKNOWN_STRATEGY = "patch-window", "reschedule-pending", "unknown-strategy"
UPCOMING, ACTIVE = "upcoming", "active"
IDLE_STRATEGIES = frozenset({"WhenIdle", "WhenAllIdle"})
KNOWN_STRATEGIES = IDLE_STRATEGIES | {"DrainFirst"}
#: IdleWaitWindowInSeconds when the group does not set it (the API's documented default)
DEFAULT_IDLE_WAIT = timedelta(seconds=86400)

#: findings a patch window causes by design in its group, (policy, condition): nodes taken out
#: while they are patched leave the group below target, and cordoned nodes do not carry the
#: declared taints and labels yet. Not below-min, not a Failed group or node: those still page.
BY_DESIGN = frozenset({
    (degraded_group.NAME, "below-target"),
    (taint_drift.NAME, taint_drift.CURRENT_VS_DESIRED),
})
#: HyperPod node health (the node-health-status label, a Node Health event's status or reason)
#: of a node that patching reboots: its unhealthy-node finding is by design during the window
PATCH_HEALTH = frozenset({"UnschedulablePendingReboot"})


class AutoPatchSettings(PolicySettings):
    notice_before: Duration = Field(
        default=timedelta(hours=24),
        description="Announce an instance group's auto-patch window this long before its NextPatchDate.",
    )
    window_length: Duration = Field(
        default=timedelta(hours=4),
        description="How long patching takes once it starts, after the idle wait of WhenIdle/WhenAllIdle "
        "(IdleWaitWindowInSeconds, 24h when unset): the window is NextPatchDate + that wait + this. While it "
        "is open, findings the window causes by design in the group are inhibited.",
    )
    repeat_interval: Duration = Field(
        default=timedelta(days=7),
        description="Re-notify a still-open notice this often (a window is announced once; it does not repeat "
        "every few hours like a problem).",
    )


def idle_wait(config: AutoPatchConfig) -> timedelta:
    """How long patching may wait for the group's nodes to become idle, cordoned: IdleWaitWindowInSeconds
    (24 h when unset) for WhenIdle/WhenAllIdle; none for DrainFirst, which evicts instead."""
    if config.patching_strategy in IDLE_STRATEGIES:
        seconds = config.idle_wait_window_in_seconds
        return DEFAULT_IDLE_WAIT if seconds is None else timedelta(seconds=seconds)
    if config.idle_wait_window_in_seconds is not None and config.patching_strategy not in KNOWN_STRATEGIES:
        return timedelta(seconds=config.idle_wait_window_in_seconds)  # unknown strategy: what the group says
    return timedelta(0)


def window(group: InstanceGroup, length: timedelta) -> tuple[datetime, datetime] | None:
    """The group's current patch window (opens, closes), `length` after the idle wait; None without one."""
    config = group.auto_patch_config
    opens = config.current_patch_schedule.next_patch_date if config and config.current_patch_schedule else None
    if config is None or opens is None:
        return None
    return opens, opens + idle_wait(config) + length


def _desired_date(config: AutoPatchConfig) -> datetime | None:
    return config.desired_patch_schedule.next_patch_date if config.desired_patch_schedule else None


def _group_findings(snapshot: ClusterSnapshot, group: InstanceGroup, settings: AutoPatchSettings,
                    now: datetime) -> list[Finding]:
    config = group.auto_patch_config
    if config is None:
        return []
    finding = functools.partial(Finding, policy=NAME, cluster=snapshot.name, instance_group=group.name)
    strategy = config.patching_strategy
    evidence: dict[str, Any] = {"patching_strategy": strategy}
    if group.current_image_release_version or group.desired_image_release_version:
        evidence.update(current_image_release_version=group.current_image_release_version,
                        desired_image_release_version=group.desired_image_release_version)
    findings: list[Finding] = []
    span = window(group, settings.window_length)
    if span is not None and span[0] - settings.notice_before <= now < span[1]:
        opens, closes = span
        phase = UPCOMING if now < opens else ACTIVE
        how = f"{strategy}: nodes are cordoned and patched" if strategy else "nodes are patched"
        summary = (f"Auto-patch window of instance group {group.name} opens at {isoformat(opens)} ({how})"
                   if phase == UPCOMING else
                   f"Auto-patch window of instance group {group.name} is open until {isoformat(closes)}: "
                   "reboots, cordons and capacity dips it causes are inhibited")
        findings.append(finding(severity=Severity.INFO, condition=WINDOW, problem=PATCHING, summary=summary, details={
            **evidence, "phase": phase, "next_patch_date": isoformat(opens), "window_end": isoformat(closes),
            "idle_wait": format_duration(idle_wait(config)),
        }))
    desired = _desired_date(config)
    current = span[0] if span else None
    if desired is not None and desired != current:
        findings.append(finding(
            severity=Severity.INFO, condition=RESCHEDULE, problem=SCHEDULE,
            summary=f"Auto-patch of instance group {group.name} is being rescheduled: NextPatchDate "
                    f"{isoformat(current) if current else 'none'} -> {isoformat(desired)} (pending)",
            details={**evidence, "current_next_patch_date": isoformat(current) if current else None,
                     "desired_next_patch_date": isoformat(desired)},
        ))
    if strategy is not None and strategy not in KNOWN_STRATEGIES:
        findings.append(finding(
            severity=Severity.WARNING, condition=UNKNOWN_STRATEGY, problem=PATCHING,
            summary=f"Instance group {group.name} has an auto-patch strategy hyperpod-guard does not know: {strategy}",
            details={**evidence, "known": sorted(KNOWN_STRATEGIES)},
        ))
    return findings


def evaluate(snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: AutoPatchSettings,
             now: datetime) -> list[Finding]:
    # restricted instance groups have no AutoPatchConfig in the API
    return [f for group in snapshot.instance_groups for f in _group_findings(snapshot, group, settings, now)]


def _rebooting(record: FindingFields) -> bool:
    if (record.policy, record.condition) != (unhealthy_node.NAME, unhealthy_node.UNHEALTHY):
        return False
    return bool({record.details.get("health_status"), record.details.get("reason")} & PATCH_HEALTH)


def inhibition(window_finding: FindingFields, record: FindingFields, now: datetime) -> str | None:
    """Why `record` sends nothing because of `window_finding` (an open patch window of the record's
    instance group, seen in this evaluation), or None: only what the window causes by design."""
    if window_finding.condition != WINDOW:
        return None
    until = parse_timestamp(window_finding.details.get("window_end"))
    if window_finding.details.get("phase") != ACTIVE or until is None or now >= until:
        return None
    if not record.instance_group or record.instance_group != window_finding.instance_group:
        return None
    if (record.policy, record.condition) in BY_DESIGN or _rebooting(record):
        return f"inhibited by auto-patch window of group {record.instance_group} until {isoformat(until)}"
    return None


POLICY = Policy(NAME, "Auto-patch windows of instance groups: a notice before each window, pending reschedules; "
                "while a window is open, what it causes by design is inhibited.", AutoPatchSettings, evaluate,
                precedence=(UNKNOWN_STRATEGY, WINDOW, RESCHEDULE), inhibits=inhibition)
