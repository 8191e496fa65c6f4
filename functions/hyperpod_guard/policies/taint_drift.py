"""taint-drift: Kubernetes taints and labels of an instance group are not what they should be.

Two checks per EKS instance group:
- current-vs-desired: the nodes do not carry what the group declares (KubernetesConfig
  Current* vs Desired*), outside the window where HyperPod is still reconciling;
- required: the declared (desired) state lacks a taint or label our rules require, or
  declares it with another value or effect.
Keys under managed prefixes (HyperPod's own health taints, kubernetes.io/ and its subdomains
such as node.kubernetes.io/unschedulable) are ignored. A group without KubernetesConfig has an
unknown declared state and is not judged.
A Cluster Event "Failed to update Kubernetes config for instance ..." is a node finding.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, model_validator

from ..cluster_events import Kind, classify
from ..events import HyperPodEvent
from ..findings import CONFIGURATION, Finding, Severity
from ..fleet import name_of
from ..ledger import AlertRecord
from ..policy_settings import (
    MANAGED_KEY_PREFIXES,
    PolicySettings,
    Remediation,
    RulesModel,
    TaintEffect,
    glob_match,
    has_prefix,
)
from ..remediation.actions import Planned, cluster_update, not_in_service
from ..snapshot import RECONCILING, ClusterSnapshot, InstanceGroup, KubernetesConfig, Taint, TaintItem
from ..timeutil import Duration
from .base import Policy

NAME = "taint-drift"
#: conditions: the nodes differ from the group's declaration; the declaration lacks what the rules require
CURRENT_VS_DESIRED, REQUIRED = "current-vs-desired", "required"


class GroupSelector(RulesModel):
    instance_group: str = Field(default="*", description="Glob on the instance group name.")
    instance_type: str = Field(default="*", description="Glob on the instance type, e.g. 'ml.p5.*'.")

    def matches(self, group_name: str, instance_type: str | None) -> bool:
        return glob_match(self.instance_group, group_name) and glob_match(self.instance_type, instance_type)


class RequiredTaint(RulesModel):
    key: str = Field(min_length=1, max_length=317)
    value: str | None = Field(default=None, max_length=63)
    effect: TaintEffect


class Requirement(RulesModel):
    """Taints and labels that every instance group matching `match` must declare."""

    match: GroupSelector = Field(default_factory=GroupSelector)
    taints: tuple[RequiredTaint, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_managed_keys(self) -> Requirement:
        keys = [t.key for t in self.taints] + list(self.labels)
        managed = [k for k in keys if has_prefix(k, MANAGED_KEY_PREFIXES)]
        if managed:
            raise ValueError(f"keys with a HyperPod/Kubernetes-managed prefix cannot be required: {', '.join(managed)}")
        return self


class TaintRemediation(Remediation):
    """Re-assert the taints/labels the rules require with UpdateCluster (declared state only)."""


class TaintDriftSettings(PolicySettings):
    grace: Duration = timedelta(minutes=15)
    check_current_vs_desired: bool = Field(
        default=True, description="Alert when nodes do not carry what the instance group declares."
    )
    ignore_key_prefixes: tuple[str, ...] = Field(
        default=MANAGED_KEY_PREFIXES,
        description="Keys starting with these are never drift. Replaces the default list: "
        "keep the HyperPod/Kubernetes-managed prefixes in it when adding your own.",
    )
    required: tuple[Requirement, ...] = ()
    remediation: TaintRemediation = Field(default_factory=TaintRemediation)

    def ignored(self, key: str) -> bool:
        return has_prefix(key, self.ignore_key_prefixes)


@dataclass
class Drift:
    """What differs, each entry named so a person can act on it."""

    taints_missing: list[str] = field(default_factory=list)
    taints_unexpected: list[str] = field(default_factory=list)
    taints_changed: list[dict[str, Any]] = field(default_factory=list)
    labels_missing: dict[str, str] = field(default_factory=dict)
    labels_unexpected: dict[str, str] = field(default_factory=dict)
    labels_changed: dict[str, dict[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(vars(self).values())

    @property
    def counts(self) -> tuple[int, int, int]:
        return (
            len(self.taints_missing) + len(self.labels_missing),
            len(self.taints_unexpected) + len(self.labels_unexpected),
            len(self.taints_changed) + len(self.labels_changed),
        )

    def details(self) -> dict[str, Any]:
        taints = {"missing": self.taints_missing, "unexpected": self.taints_unexpected, "changed": self.taints_changed}
        labels = {"missing": self.labels_missing, "unexpected": self.labels_unexpected, "changed": self.labels_changed}
        return {
            "taints": {k: v for k, v in taints.items() if v},
            "labels": {k: v for k, v in labels.items() if v},
        }


def _values_by_key(taints: Iterable[TaintItem]) -> dict[str, set[tuple[str | None, str]]]:
    """(Value, Effect) per Key, "" and no value alike (as a Taint has them)."""
    grouped: dict[str, set[tuple[str | None, str]]] = defaultdict(set)
    for taint in taints:
        grouped[taint["Key"]].add((taint.get("Value") or None, taint["Effect"]))
    return grouped


def _texts(key: str, values: Set[tuple[str | None, str]]) -> list[str]:
    """As str(Taint) renders them, sorted."""
    return sorted(f"{key}={value or ''}:{effect}" for value, effect in values)


def _triples(taints: Iterable[TaintItem]) -> set[tuple[str, str | None, str]]:
    """(Key, Value, Effect) of each taint, "" and no value alike (as a Taint has them)."""
    return {(taint["Key"], taint.get("Value") or None, taint["Effect"]) for taint in taints}


def _values(taints: Iterable[TaintItem], key: str) -> set[tuple[str | None, str]]:
    """(Value, Effect) of the taints with this key, "" and no value alike."""
    return {(taint.get("Value") or None, taint["Effect"]) for taint in taints if taint["Key"] == key}


def compare(actual: KubernetesConfig, ignored: Callable[[str], bool]) -> Drift | None:
    """Current (on the nodes) vs desired (declared), as (Key, Value, Effect) sets and label maps.

    Equal lists short-cut (the taints as DescribeCluster gave them: no Taint is built). Otherwise
    only the keys of taints that differ as given are looked at: those at the positions where lists
    of one length differ (usually one list is the other with a few changes), else those of the
    (Key, Value, Effect) triples in one set and not the other (hashed in C). A large cluster has
    thousands of taints and labels and a handful of differences."""
    drift = Drift()
    current, desired = actual.current_taint_items, actual.desired_taint_items
    if current != desired:
        if len(current) == len(desired):
            keys = {taint["Key"] for pair in zip(current, desired, strict=True) if pair[0] != pair[1] for taint in pair}
        else:
            keys = {key for key, _, _ in _triples(current) ^ _triples(desired)}
        for key in sorted(keys):
            have, want = _values(current, key), _values(desired, key)
            if have == want or ignored(key):
                continue
            if not have:
                drift.taints_missing.extend(_texts(key, want))
            elif not want:
                drift.taints_unexpected.extend(_texts(key, have))
            else:
                drift.taints_changed.append({"key": key, "current": ", ".join(_texts(key, have)),
                                             "desired": ", ".join(_texts(key, want))})
    have_labels, want_labels = actual.current_labels, actual.desired_labels
    if have_labels == want_labels:
        return drift
    for key in sorted({key for key, _ in have_labels.items() ^ want_labels.items()}):
        if ignored(key):
            continue
        if key not in have_labels:
            drift.labels_missing[key] = want_labels[key]
        elif key not in want_labels:
            drift.labels_unexpected[key] = have_labels[key]
        else:
            drift.labels_changed[key] = {"current": have_labels[key], "desired": want_labels[key]}
    return drift


def check_required(declared: KubernetesConfig, requirements: Iterable[Requirement]) -> Drift:
    """What the declared (desired) state lacks or contradicts among the required entries."""
    drift = Drift()
    declared_taints = _values_by_key(declared.desired_taint_items)
    requirements = list(requirements)
    # overlapping selectors may require the same taint twice: report it once
    wanted = dict.fromkeys(Taint(key=t.key, value=t.value, effect=t.effect) for r in requirements for t in r.taints)
    for want in wanted:
        have = declared_taints.get(want.key)
        if not have:
            drift.taints_missing.append(str(want))
        elif (want.value, want.effect) not in have:
            drift.taints_changed.append({"key": want.key, "declared": ", ".join(_texts(want.key, have)),
                                         "required": str(want)})
    for requirement in requirements:
        for key, value in requirement.labels.items():
            if key not in declared.desired_labels:
                drift.labels_missing[key] = value
            elif declared.desired_labels[key] != value:
                drift.labels_changed[key] = {"declared": declared.desired_labels[key], "required": value}
    return drift


def _matches(config: KubernetesConfig) -> bool:
    """The nodes carry exactly what is declared (most groups): no drift to look for."""
    return (config.current_taint_items == config.desired_taint_items
            and config.current_labels == config.desired_labels)


def _reconciling(snapshot: ClusterSnapshot, group: InstanceGroup) -> bool:
    return snapshot.status in RECONCILING or group.status in RECONCILING


def _unjudged_or_matching(snapshot: ClusterSnapshot, group: InstanceGroup, settings: TaintDriftSettings) -> bool:
    """No current-vs-desired finding can come of the group: not compared, or nothing differs."""
    config = group.kubernetes_config
    return (config is None or not settings.check_current_vs_desired or _reconciling(snapshot, group)
            or _matches(config))


def _group_findings(
    snapshot: ClusterSnapshot, group: InstanceGroup, settings: TaintDriftSettings, ignored: Callable[[str], bool]
) -> list[Finding]:
    config = group.kubernetes_config
    if config is None:
        # The declared state is unknown (e.g. an event detail without KubernetesConfig):
        # judging it would report every required entry as missing.
        return []
    findings = []
    if settings.check_current_vs_desired and not _reconciling(snapshot, group):
        drift = compare(config, ignored)
        if drift:
            missing, unexpected, changed = drift.counts
            findings.append(Finding(
                policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, instance_group=group.name,
                problem=CONFIGURATION, condition=CURRENT_VS_DESIRED,
                summary=(f"Nodes of instance group {group.name} do not carry the declared taints/labels "
                         f"({missing} missing, {unexpected} unexpected, {changed} changed)"),
                details={"check": "current-vs-desired", "group_status": group.status, **drift.details()},
            ))
    requirements = [r for r in settings.required if r.match.matches(group.name, group.instance_type)]
    if requirements:
        drift = check_required(config, requirements)
        if drift:
            missing, _, changed = drift.counts
            findings.append(Finding(
                policy=NAME, severity=Severity.WARNING, cluster=snapshot.name, instance_group=group.name,
                problem=CONFIGURATION, condition=REQUIRED,
                summary=(f"Instance group {group.name} does not declare the required taints/labels "
                         f"({missing} missing, {changed} conflicting)"),
                details={"check": "required", "instance_type": group.instance_type, **drift.details()},
            ))
    return findings


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: TaintDriftSettings, now: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    if snapshot.orchestration == "eks":  # Slurm clusters have no Kubernetes taints or labels
        ignored = functools.cache(settings.ignored)  # groups share most keys
        for group in snapshot.instance_groups:
            if not settings.required and _unjudged_or_matching(snapshot, group, settings):
                continue  # most groups of a large cluster: nothing to look at more closely
            findings.extend(_group_findings(snapshot, group, settings, ignored))
    classified = classify(event)
    if classified and classified.kind is Kind.K8S_CONFIG_UPDATE_FAILED and classified.instance_id:
        findings.append(Finding(
            policy=NAME, severity=Severity.WARNING, cluster=snapshot.name,
            instance_group=classified.instance_group, node=classified.instance_id,
            condition=Kind.K8S_CONFIG_UPDATE_FAILED.value, origin="event", problem=CONFIGURATION,
            summary=f"HyperPod failed to apply taints/labels to node {classified.instance_id} "
                    f"({classified.instance_group})",
            details={"event_description": classified.description},
        ))
    return findings


# --- remediation: re-declare what the rules require ------------------------------------------


def _taint(t: Taint) -> dict[str, str]:
    return {"Key": t.key, "Effect": t.effect, **({"Value": t.value} if t.value else {})}


def update_cluster_request(snapshot: ClusterSnapshot, group_name: str,
                           settings: TaintDriftSettings) -> dict[str, Any] | str:
    """The UpdateCluster parameters that re-declare the required keys of one group, or why not:
    the group's declared KubernetesConfig with only the required keys set (everything else stays
    as declared), its name, ExecutionRole and InstanceType kept and InstanceCount = TargetCount
    (never scale)."""
    group = snapshot.group(group_name)
    if group is None or group.kubernetes_config is None:
        return f"instance group {group_name} or its KubernetesConfig is not in DescribeCluster"
    if not group.execution_role or group.target_count is None:
        return f"instance group {group_name} has no ExecutionRole/TargetCount in DescribeCluster"
    requirements = [r for r in settings.required if r.match.matches(group.name, group.instance_type)]
    labels = dict(group.kubernetes_config.desired_labels)
    taints = list(group.kubernetes_config.desired_taints)
    for requirement in requirements:
        labels.update(requirement.labels)
        for required in requirement.taints:
            taints = [t for t in taints if t.key != required.key]
            taints.append(Taint(key=required.key, value=required.value, effect=required.effect))
    spec: dict[str, Any] = {
        "InstanceGroupName": group.name, "ExecutionRole": group.execution_role, "InstanceCount": group.target_count,
        "KubernetesConfig": {"Labels": labels, "Taints": [_taint(t) for t in taints]},
    }
    if group.instance_type:
        spec["InstanceType"] = group.instance_type
    return {"ClusterName": name_of(snapshot.name), "InstanceGroups": [spec]}


def remediate(record: AlertRecord, snapshot: ClusterSnapshot, settings: TaintDriftSettings, now: datetime,
              taken: Set[str]) -> Planned | None:
    """Only `required` drift of a group: current-vs-desired is HyperPod's to reconcile (never
    "fixed", nor "skipped"), and a node's failed update is HyperPod's to retry."""
    if record.condition != REQUIRED or not record.instance_group:
        return None
    group = record.instance_group
    return not_in_service(record, snapshot) or cluster_update(
        record, snapshot, update_cluster_request(snapshot, group, settings), settings.remediation,
        intent=f"re-declare the required taints/labels of {group} (UpdateCluster)",
        outcome=f"re-declared the required taints/labels of {group}")


POLICY = Policy(NAME, "Kubernetes taints and labels differ from what is declared or required.", TaintDriftSettings,
                evaluate, remediate=remediate)
