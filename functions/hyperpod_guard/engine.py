"""Evaluate every enabled policy on one cluster snapshot: the pure core of the evaluator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidSnapshotError
from .events import HyperPodEvent, StateChangeEvent
from .findings import Finding
from .fleet import name_of
from .policies import REGISTRY
from .rules import ClusterRules, Rules
from .snapshot import ClusterSnapshot


@dataclass(frozen=True)
class Evaluation:
    cluster: str
    findings: list[Finding]
    #: fingerprints an event explicitly reports as fixed (e.g. a node healthy again)
    resolved: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "findings": [f.to_dict() for f in self.findings], "resolved": self.resolved}


def _order(finding: Finding) -> tuple[Any, ...]:
    return (-finding.severity.rank, finding.policy, finding.instance_group or "", finding.node or "", finding.condition)


def evaluate(snapshot: ClusterSnapshot, event: HyperPodEvent | None, rules: ClusterRules | Rules,
             now: datetime) -> Evaluation:
    """Every enabled policy on the snapshot. The pipeline passes the cluster's rules, resolved
    once; the CLI may pass the whole rules document (resolved here by the cluster's name)."""
    policies = (rules if isinstance(rules, ClusterRules) else rules.resolve(snapshot.name)).policies
    findings: list[Finding] = []
    resolved: list[str] = []
    for policy in REGISTRY.values():
        settings = policies.settings(policy)
        if not settings.enabled:
            continue
        for finding in policy.evaluate(snapshot, event, settings, now):
            findings.append(finding.with_settings(grace=settings.grace, severity=settings.severity))
        if policy.resolves:
            resolved.extend(policy.resolves(snapshot, event))
    return Evaluation(snapshot.name, sorted(findings, key=_order), resolved)


def snapshot_for(event: HyperPodEvent, snapshot: ClusterSnapshot | None = None) -> ClusterSnapshot:
    """The snapshot to evaluate an event against: the one given (a fresh DescribeCluster),
    else a State Change event's own detail, else what the event alone tells."""
    if snapshot is not None:
        if name_of(snapshot.name) != event.cluster_name:  # the snapshot is named by its fleet key
            raise InvalidSnapshotError(
                f"snapshot is for cluster {snapshot.name!r} but the event is for {event.cluster_name!r}"
            )
        return snapshot
    if isinstance(event, StateChangeEvent):
        return event.detail
    arn = event.resources[0] if event.resources else None
    return ClusterSnapshot.minimal(event.cluster_name, arn)
