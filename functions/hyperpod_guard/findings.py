"""Finding: one problem a policy found, and the one shape (`FindingFields`) in which every
later stage carries it: the alert record (ledger), its stored item (ledger_store) and the
message (notify/message) all extend FindingFields and copy it with `shape_of`, so a new field
of a finding is one edit here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from .timeutil import format_duration


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self.value]


_RANK = {"critical": 3, "warning": 2, "info": 1}

#: "state" findings come from DescribeCluster and clear when the state clears; "event"
#: findings come from one event (a Cluster Event's text) and cannot be seen again by a re-read,
#: so whoever keeps alert state must not resolve them just because a later read lacks them.
Origin = Literal["state", "event"]

#: what a finding is a symptom of, across policies. Findings of one scope (the cluster, one
#: instance group or one node) and one problem are ONE alert: a Failed group short of nodes, a
#: group rolled back and therefore Degraded, a node reported Unhealthy and seen in Failure. The
#: greatest leads; the others are folded into its details and inhibited (alerting.fold).
HEALTH, CONFIGURATION, AUTOSCALING = "health", "configuration", "autoscaling"


def fingerprint(policy: str, cluster: str, instance_group: str | None, node: str | None, condition: str) -> str:
    """Stable across evaluations of the same problem: scope and condition only, never counts
    or times. A node is unique within its cluster, so a node's fingerprint leaves the group
    out (it is unknown when DescribeClusterNode fails)."""
    group = "" if node else (instance_group or "")
    key = "\x1f".join((policy, cluster, group, node or "", condition))
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Escalation:
    """Raise the severity once the condition has lasted `after` (measured by whoever knows
    when it started: the ledger). Policies are pure and cannot know that start."""

    after: timedelta
    severity: Severity


@dataclass(frozen=True, kw_only=True)
class FindingFields:
    """What a policy says about one problem: the fields a finding, its alert record and its
    message share."""

    policy: str
    severity: Severity
    cluster: str
    #: what kind of problem, e.g. "status-degraded"; part of the fingerprint
    condition: str
    summary: str
    instance_group: str | None = None
    node: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    origin: Origin = "state"
    #: HEALTH, CONFIGURATION, AUTOSCALING, ...: see above
    problem: str = HEALTH

    @property
    def scope(self) -> str:
        """Where the problem is: "cluster", the instance group, or "group/node" (the node alone
        when its group is unknown)."""
        return "/".join(p for p in (self.instance_group, self.node) if p) or "cluster"


#: the names of the shared fields, in order
SHAPE: tuple[str, ...] = tuple(f.name for f in fields(FindingFields))


def shape_of(source: FindingFields) -> dict[str, Any]:
    """The shared fields of a finding, an alert record or a message's finding, by name: what
    one stage hands the next."""
    return {name: getattr(source, name) for name in SHAPE}


@dataclass(frozen=True, kw_only=True)
class Finding(FindingFields):
    escalation: Escalation | None = None
    #: how long the problem must persist before it fires (the rule's `grace`); set by the registry
    grace: timedelta = timedelta(0)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.policy, self.cluster, self.instance_group, self.node, self.condition)

    def severity_at(self, first_seen: datetime, now: datetime) -> Severity:
        """Severity once the escalation threshold is applied."""
        if self.escalation and now - first_seen >= self.escalation.after:
            return self.escalation.severity
        return self.severity

    def with_settings(self, *, grace: timedelta, severity: Severity | None) -> Finding:
        # A shallow copy with two fields set: dataclasses.replace() re-runs __init__ and costs
        # ~4x this, once per finding (hundreds on a large cluster).
        clone = object.__new__(Finding)
        # the policy's grace, or the finding's own when it asks for longer (image-hygiene's release drift)
        clone.__dict__.update(self.__dict__, grace=max(grace, self.grace), severity=severity or self.severity)
        return clone

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**shape_of(self), "fingerprint": self.fingerprint, "grace": format_duration(self.grace)}
        out["severity"] = self.severity.value
        if self.escalation:
            out["escalation"] = {
                "after": format_duration(self.escalation.after),
                "severity": self.escalation.severity.value,
            }
        return out
