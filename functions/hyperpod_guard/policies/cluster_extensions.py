"""cluster-extensions: cluster extensions (ListClusterExtensions + DescribeClusterExtension) that do not work.

"Watch the watchers": a broken observability extension is how a team silently loses its metrics.
- `CreateFailed` / `UpdateFailed` -> critical: the extension the team installed or changed does not run
  as configured (after an UpdateFailed, which version runs on which node is anyone's guess);
- `Degraded` -> warning: it runs, but not on every node (the health issues say why);
- `DeleteFailed` -> warning: someone wanted it gone; what is left keeps running as before, so nothing is
  lost that the team still wants, but the extension is stuck and a retry is needed;
- a status this tool does not know -> warning, the raw value in the evidence;
- `Active` with ActiveCount < TotalCount -> warning (not while an instance group scales: new nodes start
  the extension's agents as they join);
- `Creating` / `Updating` / `Deleting` / `Active` with every node active -> nothing.
The evidence names the extension, its version, node counts and the top health issues (codes, messages,
node counts; at most TOP_ISSUES, the most nodes first). One extension's findings share a condition prefix
(its name: the condition is in the fingerprint); problem "extension". The policy's `grace` (default 15m)
is how long a finding must last before it fires, the same for every extension finding.
`snapshot.extensions` None means the extensions were not read: nothing is said.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from ..events import HyperPodEvent
from ..findings import Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import ClusterExtension, ClusterSnapshot, ExtensionStatus
from ..timeutil import Duration
from .base import Policy

NAME = "cluster-extensions"
EXTENSION = "extension"  # the findings' problem
#: most health issues in a finding (DescribeClusterExtension returns up to 20)
TOP_ISSUES = 3


_STATUS_FINDING = {
    ExtensionStatus.CREATE_FAILED: ("create-failed", Severity.CRITICAL),
    ExtensionStatus.UPDATE_FAILED: ("update-failed", Severity.CRITICAL),
    ExtensionStatus.DEGRADED: ("degraded", Severity.WARNING),
    ExtensionStatus.DELETE_FAILED: ("delete-failed", Severity.WARNING),
}
#: statuses with nothing to say (besides an Active extension's inactive nodes)
_QUIET = frozenset({
    ExtensionStatus.CREATING, ExtensionStatus.UPDATING, ExtensionStatus.DELETING, ExtensionStatus.ACTIVE})
NODES_INACTIVE, STATUS_UNKNOWN = "nodes-inactive", "status-unknown"


class ClusterExtensionsSettings(PolicySettings):
    grace: Duration = Field(
        default=timedelta(minutes=15),
        description="How long an extension finding must persist before it fires. An extension's node counts and "
        "status move while nodes join, are replaced or rebooted (its agents restart on each), so a gap must "
        "outlast that; a lost observability extension costs metrics, not jobs, so waiting 15m pages no one early.",
    )
    check_inactive_nodes: bool = Field(
        default=True, description="Warn when an Active extension runs on fewer nodes than it should "
        "(NodeSummary ActiveCount < TotalCount) while no instance group is scaling.",
    )


def extension_name(extension: ClusterExtension) -> str:
    """Its ExtensionName, else the name part of its ARN (…:extension/<name>/<cluster>/<id>)."""
    if extension.extension_name:
        return extension.extension_name
    parts = extension.extension_arn.split(":extension/", 1)[-1].split("/")
    return parts[0] or extension.extension_arn


def _issues(extension: ClusterExtension) -> list[dict[str, Any]]:
    top = sorted(extension.health_issues, key=lambda i: -(i.node_count or 0))[:TOP_ISSUES]
    return [{k: v for k, v in (("code", i.code), ("message", i.message), ("node_count", i.node_count))
             if v is not None} for i in top]


def _evidence(extension: ClusterExtension) -> dict[str, Any]:
    details: dict[str, Any] = {"extension": extension_name(extension), "extension_arn": extension.extension_arn,
                               "version": extension.extension_version, "status": extension.status}
    nodes = extension.node_summary
    if nodes is not None:
        details["nodes"] = {"total": nodes.total_count, "active": nodes.active_count}
    if extension.health_issues:
        details["health_issues"] = _issues(extension)
        details["health_issue_count"] = len(extension.health_issues)
    return {k: v for k, v in details.items() if v is not None}


def _why(extension: ClusterExtension) -> str:
    """': 3 of 16 nodes AccessDenied, 1 of 16 nodes DependencyUnreachable' (top issues), or the node counts."""
    nodes = extension.node_summary
    total = nodes.total_count if nodes else None
    of = f" of {total}" if total is not None else ""
    issues = [f"{i.node_count}{of} nodes {i.code}" if i.node_count is not None else f"{i.code}"
              for i in sorted(extension.health_issues, key=lambda i: -(i.node_count or 0))[:TOP_ISSUES] if i.code]
    if issues:
        return ": " + ", ".join(issues)
    if nodes and nodes.active_count is not None and total is not None:
        return f": {nodes.active_count} of {total} nodes active"
    return ""


def _inactive(extension: ClusterExtension) -> bool:
    nodes = extension.node_summary
    return (nodes is not None and nodes.active_count is not None and nodes.total_count is not None
            and nodes.active_count < nodes.total_count)


def _finding(snapshot: ClusterSnapshot, extension: ClusterExtension, settings: ClusterExtensionsSettings,
             scaling: bool) -> Finding | None:
    status, name = extension.status, extension_name(extension)
    label = f"Extension {name} of cluster {snapshot.name}"
    details = _evidence(extension)
    if status in _STATUS_FINDING:
        condition, severity = _STATUS_FINDING[status]
        summary = f"{label} is {status}{_why(extension)}"
    elif status in _QUIET:
        if status != ExtensionStatus.ACTIVE or not settings.check_inactive_nodes or scaling or not _inactive(extension):
            return None
        condition, severity = NODES_INACTIVE, Severity.WARNING
        summary = f"{label} is Active on fewer nodes than it should be{_why(extension)}"
    elif status is None:  # not described: nothing known
        return None
    else:  # news: a status AWS added
        condition, severity = STATUS_UNKNOWN, Severity.WARNING
        details["known_statuses"] = sorted(_QUIET | set(_STATUS_FINDING))
        summary = f"{label} has a status this tool does not know: {status}{_why(extension)}"
    return Finding(policy=NAME, severity=severity, cluster=snapshot.name, condition=f"{name}/{condition}",
                   problem=EXTENSION, summary=summary, details=details)


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: ClusterExtensionsSettings, now: datetime
) -> list[Finding]:
    if not snapshot.extensions:  # None: not read; (): none installed
        return []
    scaling = any(g.scaling for g in snapshot.all_groups)
    findings = (_finding(snapshot, e, settings, scaling) for e in snapshot.extensions)
    return [f for f in findings if f is not None]


POLICY = Policy(
    NAME, "Cluster extensions CreateFailed/UpdateFailed (critical), Degraded/DeleteFailed, in a status this tool "
    "does not know, or Active on fewer nodes than they should be.", ClusterExtensionsSettings, evaluate,
    reads=("extensions",),
)
