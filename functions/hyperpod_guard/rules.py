"""Rules: what each policy checks, how loud it is, and where it applies.

A versioned JSON document (`"version": 1`) validated by the pydantic models below; the
JSON Schema users see (`hyperpod-guard schema`) is generated from the same models, so the
two cannot drift apart. An empty document `{"version": 1}` gives the defaults, which alert
sensibly with no configuration at all. Unknown keys are errors: a misspelt setting that is
silently ignored is worse than a loud one.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import InvalidRulesError
from .findings import Severity
from .timeutil import Duration, Timestamp

SCHEMA_ID = "https://github.com/hyperpod-guard/hyperpod-guard/rules.schema.json"

#: Prefixes that HyperPod, EKS, Kubernetes and Karpenter write themselves (e.g. HyperPod's
#: `sagemaker.amazonaws.com/node-health-status` taint during deep health checks). Drift in
#: them is not the user's drift, and users may not set them.
MANAGED_KEY_PREFIXES = (
    "kubernetes.io/",
    "k8s.io/",
    "sagemaker.amazonaws.com/",
    "eks.amazonaws.com/",
    "k8s.aws/",
    "karpenter.sh/",
)

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class RulesModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def has_prefix(key: str, prefixes: tuple[str, ...]) -> bool:
    """True when `key` starts with one of `prefixes`, or lives in a subdomain of a domain
    prefix: Kubernetes reserves `*.kubernetes.io/` and `*.k8s.io/` too (e.g.
    `node.kubernetes.io/unschedulable`, `topology.kubernetes.io/zone`)."""
    pattern = _prefix_pattern(prefixes)
    return pattern is not None and pattern.match(key) is not None


@functools.lru_cache(maxsize=64)
def _prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str] | None:
    # One compiled alternation instead of a loop per key: taint drift asks this for every
    # label and taint of every group (15k times for a 256-group cluster).
    if not prefixes:
        return None
    alternatives = [re.escape(p) for p in prefixes]
    domains = [re.escape(p[:-1]) for p in prefixes if p.endswith("/")]
    if domains:  # "<anything without a slash>.<domain>/"
        alternatives.append(r"[^/]*\.(?:" + "|".join(domains) + ")/")
    return re.compile("|".join(alternatives))


def glob_match(pattern: str, value: str | None) -> bool:
    """Case-sensitive shell glob ('*', '?', '[ab]'); None never matches anything but '*'."""
    return pattern == "*" or (value is not None and fnmatch.fnmatchcase(value, pattern))


# --- per-policy settings -------------------------------------------------------------


class PolicySettings(RulesModel):
    enabled: bool = True
    severity: Severity | None = Field(
        default=None, description="Override the severity of every finding of this policy."
    )
    grace: Duration = Field(
        default=timedelta(0),
        description="How long a finding must persist before it fires (Prometheus' `for`).",
    )
    repeat_interval: Duration = Field(
        default=timedelta(hours=4), description="Re-notify a still-firing alert this often."
    )
    notify_on_resolve: bool = True


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


class Remediation(RulesModel):
    """Opt-in, and a dry run until you say otherwise: the exact request is logged, audited and
    reported, and nothing is sent."""

    enabled: bool = False
    dry_run: bool = Field(default=True, description="Log, audit and report the exact request; send nothing.")


class TaintRemediation(Remediation):
    """Re-assert the taints/labels the rules require with UpdateCluster (declared state only)."""


class NodeRemediation(Remediation):
    """Reboot or replace nodes in Failure or reported unhealthy (BatchReboot/ReplaceClusterNodes)."""

    action: Literal["reboot", "replace"] = "reboot"
    after: Duration = Field(
        default=timedelta(minutes=30),
        description="When the cluster's NodeRecovery is Automatic, give HyperPod's own repair this long first.",
    )


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


class DegradedGroupSettings(PolicySettings):
    grace: Duration = timedelta(minutes=5)
    target_shortfall_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Alert when CurrentCount is below TargetCount by more than this share of TargetCount.",
    )
    remediation: NodeRemediation = Field(default_factory=NodeRemediation)


class FailedRollbackSettings(PolicySettings):
    rollback_stuck_after: Duration = Field(
        default=timedelta(hours=1),
        description="A rollback still in progress after this long becomes critical.",
    )


class UnhealthyNodeSettings(PolicySettings):
    remediation: NodeRemediation = Field(default_factory=NodeRemediation)


class ClusterHealthSettings(PolicySettings):
    check_autoscaling: bool = Field(
        default=True, description="Alert when the cluster's AutoScaling status is Failed (critical)."
    )
    check_failure_message: bool = Field(
        default=True,
        description="Alert (warning) on a cluster FailureMessage while the cluster is not Failed or RollingBack "
        "(those are reported by degraded-group and failed-rollback, with the message).",
    )


class Policies(RulesModel):
    taint_drift: TaintDriftSettings = Field(default_factory=TaintDriftSettings, alias="taint-drift")
    degraded_group: DegradedGroupSettings = Field(default_factory=DegradedGroupSettings, alias="degraded-group")
    failed_rollback: FailedRollbackSettings = Field(default_factory=FailedRollbackSettings, alias="failed-rollback")
    unhealthy_node: UnhealthyNodeSettings = Field(default_factory=UnhealthyNodeSettings, alias="unhealthy-node")
    cluster_health: ClusterHealthSettings = Field(default_factory=ClusterHealthSettings, alias="cluster-health")

    def for_policy(self, name: str) -> PolicySettings:
        return getattr(self, name.replace("-", "_"))


# --- where rules apply -------------------------------------------------------------------


#: AWS tag limits: keys 1..128 characters, values 0..256
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]


class ClusterMatch(RulesModel):
    """Which clusters an override applies to: all of the given conditions must hold."""

    cluster: str = Field(default="*", description="Glob on the cluster name.")
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        description="Tags the cluster must carry (SageMaker ListTags on its ARN), every one with exactly this "
        "value. Case-sensitive; no globs. A cluster whose tags cannot be read counts as untagged.",
    )

    def tags_match(self, tags: Mapping[str, str] | None) -> bool:
        """`tags` None: not read (or unreadable), so a tag selector cannot match."""
        return all(tags is not None and tags.get(key) == value for key, value in self.tags.items())

    def matches(self, cluster_name: str, tags: Mapping[str, str] | None = None) -> bool:
        return glob_match(self.cluster, cluster_name) and self.tags_match(tags)


class ClusterOverride(RulesModel):
    """Policy settings for the clusters that `match` selects, laid over the global ones
    (key by key; lists are replaced, not appended). Later overrides win."""

    match: ClusterMatch
    policies: Policies = Field(default_factory=Policies)


class SilenceMatchers(RulesModel):
    cluster: str = "*"
    policy: str = "*"
    instance_group: str = "*"
    node: str = "*"


class Silence(RulesModel):
    """Mute matching alerts until `until` (state is still kept, so nothing is lost)."""

    matchers: SilenceMatchers
    until: Timestamp
    comment: str = ""

    @field_validator("until")
    @classmethod
    def _until_required(cls, value: datetime | None) -> datetime:
        if value is None:
            raise ValueError("until must be an ISO-8601 timestamp, e.g. 2026-12-01T00:00:00Z")
        return value


class RemediationBudget(RulesModel):
    """Limits on node actions, enforced atomically across concurrent evaluations."""

    max_nodes_per_hour: int = Field(default=4, ge=0, description="Nodes rebooted or replaced per cluster per hour.")
    max_group_percent: float = Field(
        default=10, ge=0, le=100, description="At most this share of an instance group's target count per hour (at least 1 node)."
    )


class Rules(RulesModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        title="hyperpod-guard rules",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    version: Literal[1]
    policies: Policies = Field(default_factory=Policies)
    overrides: tuple[ClusterOverride, ...] = ()
    silences: tuple[Silence, ...] = ()
    remediation_budget: RemediationBudget = Field(default_factory=RemediationBudget)

    @property
    def selects_by_tags(self) -> bool:
        """True when an override selects clusters by tag: only then are tags worth a ListTags call."""
        return any(o.match.tags for o in self.overrides)

    def for_tags(self, tags: Mapping[str, str] | None) -> Rules:
        """These rules as they apply to a cluster carrying `tags` (None: unknown, as untagged):
        overrides whose tag selector matches keep only their name glob, the others are dropped.
        Whatever then calls for_cluster(name) (the engine, the alert ledger's timings,
        remediation) sees the tag selection without having to be handed the tags."""
        if not self.selects_by_tags:
            return self
        kept = tuple(
            o.model_copy(update={"match": o.match.model_copy(update={"tags": {}})})
            for o in self.overrides
            if o.match.tags_match(tags)
        )
        return self.model_copy(update={"overrides": kept})

    def for_cluster(self, cluster_name: str, tags: Mapping[str, str] | None = None) -> Policies:
        """The global policies with every matching override laid over them. Overrides that
        select by tag match only when `tags` are given (or the rules were bound by for_tags)."""
        matching = [o for o in self.overrides if o.match.matches(cluster_name, tags)]
        if not matching:
            return self.policies
        merged = self.policies.model_dump(by_alias=True)
        for override in matching:
            _deep_update(merged, override.policies.model_dump(by_alias=True, exclude_unset=True))
        return Policies.model_validate(merged)


def _deep_update(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


DEFAULT_RULES = Rules(version=1)


def rules_schema() -> dict[str, Any]:
    return Rules.model_json_schema(by_alias=True, mode="validation")


def json_path(loc: tuple[int | str, ...]) -> str:
    """pydantic error location -> JSON path like `$.policies["taint-drift"].grace`."""
    path = "$"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.replace("_", "").isalnum():
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return path


def load_rules(document: Any) -> Rules:
    """A parsed JSON document -> Rules, or InvalidRulesError listing every problem."""
    if not isinstance(document, Mapping):
        raise InvalidRulesError(
            "rules must be a JSON object", [("$", f"expected an object, got {type(document).__name__}")]
        )
    try:
        return Rules.model_validate(document)
    except ValidationError as exc:
        problems = [(json_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
        raise InvalidRulesError(f"{len(problems)} problem(s) in rules; first: {problems[0][0]}: {problems[0][1]}", problems) from None


def load_rules_text(text: str) -> Rules:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRulesError(f"rules are not JSON: {exc}", [("$", f"not JSON: {exc}")]) from None
    return load_rules(document)
