"""slurm-health: Slurm accounting on a HyperPod Slurm cluster, from Cluster Events' structured metadata.

From `EventMetadata.SlurmHealth` (the controller node's Slurm components; only `Slurmdbd` today):
- `Unhealthy`, Reason `DaemonDown` -> critical: slurmdbd is not running, no job accounting record is
  written (sacct, fair-share and QOS limits go blind) and slurmctld's queue of pending records is
  finite (MaxDBDMsgs): waiting loses records;
- `Unhealthy`, Reason `DbUnreachable` -> critical: slurmdbd runs but its database does not answer, so
  records pile up in the same finite queue: the same loss, later;
- `Unhealthy`, Reason `DaemonDisabled` -> warning: slurmdbd runs and its database answers, but it
  will not start again after the controller restarts: nothing is lost yet, it will be;
- an unknown component, status or reason (or none given) -> warning with the raw values: news, not noise;
- `Healthy` (any component) -> resolves that component's alert (`resolves`), no finding.
From `EventMetadata.DatabaseConfiguration` (a change to the external accounting database):
- RollbackStatus `RevertFailed` -> critical (with Advisory and FailureMessage): the change failed and
  HyperPod could not restore the previous configuration, so accounting may not work at all;
- `Reverted` / `NotApplicable` -> nothing (the previous configuration is in use, or nothing changed);
- a later change that succeeded (no RollbackStatus, no FailureMessage) resolves a RevertFailed.
Structured fields only, never the Description's text. These are event-origin findings: no re-read
sees them again, so they end with a newer report (the Healthy one, or a successful change; their
report keys, freshness.report_of, are of their own) or expire (alerting.EVENT_FINDING_TTL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..events import ClusterEvent, ClusterEventDetails, DatabaseConfiguration, HyperPodEvent, SlurmHealth
from ..findings import Finding, Severity, fingerprint
from ..policy_settings import PolicySettings
from ..snapshot import ClusterSnapshot
from ..timeutil import isoformat
from .base import Policy
from .unknown_status import slug

NAME = "slurm-health"
#: what these findings are a symptom of: Slurm job accounting (one alert per cluster for both kinds)
ACCOUNTING = "slurm-accounting"
#: botocore's SlurmHealthStatus / SlurmHealthReason / DatabaseConfigurationRollbackStatus
#: (tests/unit/test_policy_slurm_health.py keeps them equal)
HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"
DAEMON_DOWN, DAEMON_DISABLED, DB_UNREACHABLE = "DaemonDown", "DaemonDisabled", "DbUnreachable"
NOT_APPLICABLE, REVERTED, REVERT_FAILED = "NotApplicable", "Reverted", "RevertFailed"
SLURMDBD = "Slurmdbd"
KNOWN_COMPONENTS = frozenset({SLURMDBD})
REASON_SEVERITY = {DAEMON_DOWN: Severity.CRITICAL, DB_UNREACHABLE: Severity.CRITICAL, DAEMON_DISABLED: Severity.WARNING}
REASON_TEXT = {
    DAEMON_DOWN: "the daemon is not running, so job accounting records are not written",
    DB_UNREACHABLE: "its accounting database does not respond, so job accounting records may not be written",
    DAEMON_DISABLED: "the daemon runs but is not enabled, so accounting stops at the controller's next restart",
}
DB_REVERT_FAILED = "accounting-db-revert-failed"


class SlurmHealthSettings(PolicySettings):
    pass


def unhealthy_condition(component: str | None) -> str:
    """One alert per component, whatever its reason: `slurmdbd-unhealthy` (`slurm-unhealthy` when none is named)."""
    return f"{slug(component) if component else 'slurm'}-unhealthy"


def _where(info: ClusterEventDetails) -> dict[str, Any]:
    """The event's own evidence: which controller node sent it, when, in which operation."""
    where = {"instance_group": info.instance_group_name, "instance_id": info.instance_id, "event_id": info.event_id,
             "event_level": info.event_level, "operation_id": info.operation_id,
             "event_time": isoformat(info.event_time) if info.event_time else None}
    return {k: v for k, v in where.items() if v}


def _health_finding(cluster: str, health: SlurmHealth, info: ClusterEventDetails) -> Finding | None:
    if health.status == HEALTHY:
        return None  # any component's Healthy is good news: it resolves (`resolves`), it does not alert
    component = health.component or "(no component)"
    reason = health.reason or ""
    known = health.component in KNOWN_COMPONENTS and health.status == UNHEALTHY and reason in REASON_SEVERITY
    details: dict[str, Any] = {"component": health.component, "status": health.status, "reason": health.reason,
                               **_where(info)}
    if known:
        severity, why = REASON_SEVERITY[reason], REASON_TEXT[reason]
    else:  # news: a component, status or reason this code does not know (or none given), as sent
        severity, why = Severity.WARNING, "a component, status or reason hyperpod-guard does not know"
        details["unknown"] = True
    return Finding(
        policy=NAME, severity=severity, cluster=cluster, condition=unhealthy_condition(health.component),
        origin="event", problem=ACCOUNTING,
        summary=f"Slurm {component} on cluster {cluster} is {health.status or 'of no stated health'}"
        f"{f' ({health.reason})' if health.reason else ''}: {why}",
        details=details,
    )


def _database_finding(cluster: str, change: DatabaseConfiguration, info: ClusterEventDetails) -> Finding | None:
    if change.rollback_status != REVERT_FAILED:
        return None  # Reverted / NotApplicable: the previous database is in use; none: the change succeeded
    message = " ".join((change.failure_message or "").split()) or None
    details: dict[str, Any] = {"rollback_status": change.rollback_status, "failure_message": message,
                               "advisory": change.advisory, **_where(info)}
    return Finding(
        policy=NAME, severity=Severity.CRITICAL, cluster=cluster, condition=DB_REVERT_FAILED,
        origin="event", problem=ACCOUNTING,
        summary=f"A change to the Slurm accounting database of cluster {cluster} failed and HyperPod could not "
        "restore the previous configuration: accounting may not work" + (f": {message}" if message else ""),
        details={k: v for k, v in details.items() if v},
    )


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: SlurmHealthSettings, now: datetime
) -> list[Finding]:
    if not isinstance(event, ClusterEvent):
        return []
    info = event.info
    findings = []
    if info.slurm_health:
        findings.append(_health_finding(snapshot.name, info.slurm_health, info))
    if info.database_configuration:
        findings.append(_database_finding(snapshot.name, info.database_configuration, info))
    return [f for f in findings if f is not None]


def _succeeded(change: DatabaseConfiguration | None) -> bool:
    return change is not None and change.rollback_status is None and not change.failure_message


def resolves(snapshot: ClusterSnapshot, event: HyperPodEvent | None) -> list[str]:
    """A component reported Healthy clears its alert; a database change that succeeded clears a RevertFailed."""
    if not isinstance(event, ClusterEvent):
        return []
    info = event.info
    cleared = []
    if info.slurm_health and info.slurm_health.status == HEALTHY:
        cleared.append(fingerprint(NAME, snapshot.name, None, None, unhealthy_condition(info.slurm_health.component)))
    if _succeeded(info.database_configuration):
        cleared.append(fingerprint(NAME, snapshot.name, None, None, DB_REVERT_FAILED))
    return cleared


POLICY = Policy(NAME, "Slurm accounting: slurmdbd reported unhealthy, an accounting database change that could "
                "not be reverted (Cluster Events' SlurmHealth / DatabaseConfiguration metadata).",
                SlurmHealthSettings, evaluate, resolves,
                precedence=(DB_REVERT_FAILED, unhealthy_condition(SLURMDBD)))
