"""Rules: what each policy checks, how loud it is, and where it applies.

A versioned JSON document (`"version": 1`) validated by the pydantic models below; the
JSON Schema users see (`hyperpod-guard schema`) is generated from the same models, so the
two cannot drift apart. An empty document `{"version": 1}` gives the defaults, which alert
sensibly with no configuration at all. Unknown keys are errors: a misspelt setting that is
silently ignored is worse than a loud one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from .constants import RULES_INVALID
from .errors import InvalidRulesError
from .findings import FindingFields, Severity
from .fleet import REGION_NAME, Location, location_of
from .naming import DEFAULT_RECEIVER
from .policies import REGISTRY, Policy
from .policies.base import S
from .policies.cluster_health import ClusterHealthSettings
from .policies.degraded_group import DegradedGroupSettings
from .policies.failed_rollback import FailedRollbackSettings
from .policies.taint_drift import GroupSelector, RequiredTaint, Requirement, TaintDriftSettings
from .policies.unhealthy_node import UnhealthyNodeSettings
from .policy_settings import (
    MANAGED_KEY_PREFIXES,
    NodeRemediation,
    PolicySettings,
    Remediation,
    RulesModel,
    TaintEffect,
    glob_match,
    has_prefix,
    remediation_of,
)
from .silences import AdHocSilence, place_matches
from .timeutil import Duration, Timestamp
from .workload.model import Workload

#: the names other modules (and tests) import from here, now owned by policy_settings and the policies
__all__ = [
    "MANAGED_KEY_PREFIXES",
    "ClusterHealthSettings",
    "DegradedGroupSettings",
    "FailedRollbackSettings",
    "GroupSelector",
    "NodeRemediation",
    "PolicySettings",
    "Remediation",
    "RequiredTaint",
    "Requirement",
    "TaintDriftSettings",
    "TaintEffect",
    "UnhealthyNodeSettings",
    "glob_match",
    "has_prefix",
]

#: SQS holds a message back at most 15 minutes (DelaySeconds): the first message of a group is
#: one delayed message away
MAX_GROUP_WAIT = timedelta(minutes=15)

SCHEMA_ID = "https://github.com/hyperpod-guard/hyperpod-guard/rules.schema.json"

# --- per-policy settings: each policy module owns its model (e.g. policies/taint_drift.py TaintDriftSettings) ----


def _policies_model() -> type[RulesModel]:
    """`Policies`: one field per registered policy (its name as the key, its Settings model),
    in registry order: the rules' schema follows the registry, so they cannot disagree."""
    fields: dict[str, Any] = {
        policy.name.replace("-", "_"): (policy.settings, Field(default_factory=policy.settings, alias=policy.name))
        for policy in REGISTRY.values()
    }
    return create_model("Policies", __base__=_PoliciesBase, **fields)


class _PoliciesBase(RulesModel):
    def for_policy(self, name: str) -> PolicySettings:
        """A policy's settings by its name (the registry's key)."""
        settings = getattr(self, name.replace("-", "_"))
        assert isinstance(settings, PolicySettings), name
        return settings

    def settings(self, policy: Policy[S]) -> S:
        """A policy's settings, as its own settings model."""
        settings = self.for_policy(policy.name)
        assert isinstance(settings, policy.settings), policy.name
        return settings


if TYPE_CHECKING:
    # a type checker cannot see fields made at run time: it checks code against the methods
    # they share (policy settings are reached by name or by Policy, never as attributes)
    Policies = _PoliciesBase
else:
    Policies = _policies_model()

# --- where rules apply -------------------------------------------------------------------


#: AWS tag limits: keys 1..128 characters, values 0..256
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]


#: what an account or region matcher may hold: a glob over an account id's digits, over a region
#: name's characters ('*', '?', '[...]' as in every other matcher)
ACCOUNT_GLOB_PATTERN = r"^[0-9*?\[\]!-]{1,64}$"
REGION_GLOB_PATTERN = r"^[a-z0-9*?\[\]!-]{1,64}$"
_WILDCARDS = re.compile(r"[*?\[]")


def account_glob(value: str) -> str:
    """`value` if it is an account matcher (12 digits, or a glob over digits), else ValueError saying why."""
    if re.fullmatch(ACCOUNT_GLOB_PATTERN, value) is None or (not _WILDCARDS.search(value) and len(value) != 12):
        raise ValueError(f"not an account id or glob: {value!r}; use the 12 digits of an AWS account id or a glob "
                         "over them, e.g. '111122223333' or '1111*'")
    return value


def region_glob(value: str) -> str:
    """`value` if it is a region matcher (a region name, or a glob over region names), else ValueError."""
    if re.fullmatch(REGION_GLOB_PATTERN, value) is None or (
            not _WILDCARDS.search(value) and REGION_NAME.fullmatch(value) is None):
        raise ValueError(f"not a region name or glob: {value!r}; use a region as AWS spells it or a glob over "
                         "region names, e.g. 'us-east-1' or 'eu-*'")
    return value


AccountGlob = Annotated[str, AfterValidator(account_glob),
                        WithJsonSchema({"type": "string", "pattern": ACCOUNT_GLOB_PATTERN})]
RegionGlob = Annotated[str, AfterValidator(region_glob),
                       WithJsonSchema({"type": "string", "pattern": REGION_GLOB_PATTERN})]


class ClusterMatch(RulesModel):
    """Which clusters an override applies to: all of the given conditions must hold."""

    cluster: str = Field(default="*", description="Glob on the cluster name (in every account and region).")
    account: AccountGlob = Field(
        default="*", description="Glob on the cluster's AWS account id (12 digits), e.g. '111122223333' (a hub's "
        "spokes: many accounts; one deployment: its own, from the cluster's ARN).")
    region: RegionGlob = Field(
        default="*", description="Glob on the cluster's region, e.g. 'us-east-1' or 'eu-*'.")
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        description="Tags the cluster must carry (SageMaker ListTags on its ARN), every one with exactly this "
        "value. Case-sensitive; no globs. A cluster whose tags cannot be read counts as untagged.",
    )

    def tags_match(self, tags: Mapping[str, str] | None) -> bool:
        """`tags` None: not read (or unreadable), so a tag selector cannot match."""
        return all(tags is not None and tags.get(key) == value for key, value in self.tags.items())

    def place_matches(self, cluster: str, location: Location | None = None) -> bool:
        """The name glob against the key's cluster name, the account and region globs against `location`
        (None: the key's own, if it is qualified; fleet.py)."""
        return place_matches(self.cluster, self.account, self.region, cluster, location)

    def matches(self, cluster: str, tags: Mapping[str, str] | None = None, location: Location | None = None) -> bool:
        """`cluster`: the cluster's key (fleet.py); `location`: where it lives, when the caller knows (a home
        cluster's bare key does not say)."""
        return self.place_matches(cluster, location) and self.tags_match(tags)


class ClusterOverride(RulesModel):
    """Policy settings for the clusters that `match` selects, laid over the global ones
    (key by key; lists are replaced, not appended). Later overrides win."""

    match: ClusterMatch
    policies: Policies = Field(default_factory=Policies)


class SilenceMatchers(RulesModel):
    cluster: str = "*"
    account: AccountGlob = "*"
    region: RegionGlob = "*"
    policy: str = "*"
    instance_group: str = "*"
    node: str = "*"

    def applies_to(self, cluster: str, location: Location | None = None) -> bool:
        """Whether the cluster matchers hold for a cluster (its key; `location` as ClusterMatch.matches)."""
        return place_matches(self.cluster, self.account, self.region, cluster, location)

    def matches(self, record: FindingFields, location: Location | None = None) -> bool:
        """Every matcher against one alert (its cluster key; `location` as ClusterMatch.matches)."""
        return self.applies_to(record.cluster, location) and all((
            glob_match(self.policy, record.policy), glob_match(self.instance_group, record.instance_group),
            glob_match(self.node, record.node)))


#: the silence matchers about where the cluster is, which Rules.resolve applies once per cluster
_PLACE_MATCHERS = ("cluster", "account", "region")


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
        default=10, ge=0, le=100,
        description="At most this share of an instance group's target count per hour (at least 1 node).",
    )


class Grouping(RulesModel):
    """Alerts of one cluster that start close together go out as one message, as Alertmanager's
    group_wait / group_interval do (grouping.py). It needs the stack's work queue, which holds
    each flush back until it is due; where there is none (local runs) every message goes at once."""

    group_wait: Duration = Field(
        default=timedelta(seconds=30), le=MAX_GROUP_WAIT,
        description="How long a cluster's first message waits to collect the alerts that start with it. "
        "A critical alert that starts or escalates is never held longer than this. 0s: no grouping, "
        "every notification goes out at once.",
    )
    group_interval: Duration = Field(
        default=timedelta(minutes=5), le=timedelta(days=1),
        description="After a message, the next one about the cluster (with everything that changed meanwhile: "
        "new alerts, repeats, resolved) waits until this long after it.",
    )

    @property
    def enabled(self) -> bool:
        return self.group_wait > timedelta(0)


# --- routing: which receivers an alert goes to --------------------------------------------


#: a receiver's name: `default` is the stack's webhook secret, any other NAME the secret <prefix>/slack/NAME
RECEIVER_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def _receiver_name(name: str) -> str:
    if re.fullmatch(RECEIVER_NAME_PATTERN, name) is None:
        raise ValueError(f"not a receiver name: {name!r}; use 1 to 63 lowercase letters, digits and '-', starting "
                         "with a letter or digit, e.g. 'ml-oncall'")
    return name


ReceiverName = Annotated[str, AfterValidator(_receiver_name),
                         WithJsonSchema({"type": "string", "pattern": RECEIVER_NAME_PATTERN})]

#: the most receivers one route (or the default) may name: each is one webhook call per message
MAX_RECEIVERS = 10

#: what a route's policy matcher may name: the policies and the system's own rules-invalid alert
ROUTABLE_POLICIES = (*REGISTRY, RULES_INVALID)


def _known_policy(name: str) -> str:
    if name not in ROUTABLE_POLICIES:
        raise ValueError(f"unknown policy {name!r}; policies are {', '.join(ROUTABLE_POLICIES)}")
    return name


PolicyName = Annotated[str, AfterValidator(_known_policy),
                       WithJsonSchema({"type": "string", "enum": list(ROUTABLE_POLICIES)})]

#: Slack mentions a route may add, as written in the rules (routing.mention_syntax renders them)
MENTION_PATTERN = r"^(?:subteam\^S[A-Z0-9]+|@[UW][A-Z0-9]+|here|channel)$"
MENTION_FORMS = "'subteam^S0123ABCD' (a user group), '@U0123ABCD' or '@W0123ABCD' (a user), 'here', 'channel'"


def _mention_form(value: str) -> str:
    if re.fullmatch(MENTION_PATTERN, value) is None:
        raise ValueError(f"not a Slack mention: {value!r}; use {MENTION_FORMS}")
    return value


Mention = Annotated[str, AfterValidator(_mention_form), WithJsonSchema({"type": "string", "pattern": MENTION_PATTERN})]


class RouteMatch(ClusterMatch):
    """Which alerts a route takes: all of the given conditions must hold; a condition left out
    matches every alert."""

    severity: tuple[Severity, ...] = Field(
        default=(), description="The alert's severity is one of these (empty: any).")
    policy: tuple[PolicyName, ...] = Field(
        default=(), description="The alert's policy is one of these names (empty: any); `rules-invalid` is the "
        "system's own alert about invalid rules.")
    instance_group: str = Field(
        default="*", description="Glob on the alert's instance group. An alert about the whole cluster has "
        "none: only `*` matches it.")
    namespace: str = Field(
        default="*", description="Owner (EKS): glob on the Kubernetes namespace of a job on the alert's node. Needs "
        "`workload` on for the cluster; an alert whose workload is unknown matches only `*`.")
    slurm_account: str = Field(
        default="*", description="Owner (Slurm): glob on the Slurm account of a job on the alert's node. Needs "
        "`workload` on for the cluster; an alert whose workload is unknown matches only `*`.")
    workload_labels: dict[TagKey, TagValue] = Field(
        default_factory=dict, description="Owner (EKS): labels a job on the alert's node carries (on the job, or its "
        "pod), every one with exactly this value, e.g. {team: llm}.")

    @property
    def selects_by_owner(self) -> bool:
        """The route names an owner: it matches only alerts whose node's workload was read."""
        return self.namespace != "*" or self.slurm_account != "*" or bool(self.workload_labels)

    def owner_matches(self, workload: Workload | None) -> bool:
        """Some job on the node matches every owner matcher (True when the route names no owner)."""
        if not self.selects_by_owner:
            return True
        jobs = workload.jobs if workload is not None and workload.unknown is None else ()
        return any(glob_match(self.namespace, job.namespace) and glob_match(self.slurm_account, job.account)
                   and all(job.labels.get(key) == value for key, value in self.workload_labels.items())
                   for job in jobs)

    def matches_alert(self, *, cluster: str, policy: str, severity: Severity, instance_group: str | None,
                      tags: Mapping[str, str] | None, location: Location | None = None,
                      workload: Workload | None = None) -> bool:
        """`tags` None: not read, so a route that selects by tag does not match (as overrides); `location`
        as ClusterMatch.matches; `workload`: what runs on the alert's node (None: not read)."""
        return ((not self.severity or severity in self.severity) and (not self.policy or policy in self.policy)
                and glob_match(self.instance_group, instance_group) and self.matches(cluster, tags, location)
                and self.owner_matches(workload))


class Route(RulesModel):
    """Alerts that `match` selects go to `receivers`. Routes are tried in order and the first that
    matches wins, unless it says `continue` (as Alertmanager's route tree)."""

    match: RouteMatch = Field(default_factory=RouteMatch, description="Which alerts this route takes "
                              "(left out or empty: every alert).")
    receivers: tuple[ReceiverName, ...] = Field(
        min_length=1, max_length=MAX_RECEIVERS,
        description="Slack incoming webhooks by name: `default` is the stack's webhook secret, any other NAME the "
        "Secrets Manager secret <prefix>/slack/NAME (e.g. hyperpod-guard/slack/ml-oncall).")
    mention: Mention | None = Field(
        default=None,
        description="A Slack mention added to firing alerts this route sends: 'subteam^S0123ABCD' (a user group: "
        "its id, from the group's profile), '@U0123ABCD' or '@W0123ABCD' (a user id), 'here' or 'channel'.")
    continue_: bool = Field(
        default=False, alias="continue",
        description="After this route matched, go on trying the routes after it (and send to their receivers too).")


class Routing(RulesModel):
    """Which Slack receivers each alert goes to. Without routes every alert goes to `default`."""

    routes: tuple[Route, ...] = Field(
        default=(), description="Tried in order: the first route that matches an alert wins, unless it says "
        "`continue`. An alert no route matches goes to `default`.")
    default: tuple[ReceiverName, ...] = Field(
        default=(DEFAULT_RECEIVER,), min_length=1, max_length=MAX_RECEIVERS,
        description="The receivers of alerts no route matches.")

    @property
    def selects_by_tags(self) -> bool:
        return any(route.match.tags for route in self.routes)


# --- ChatOps: who may act on alerts from Slack (app mode) ------------------------------------------


#: a Slack user id (U…, or W… in an Enterprise Grid) or a user-group id (S…)
SLACK_PRINCIPAL_PATTERN = r"^[UWS][A-Z0-9]{2,20}$"
SLACK_TEAM_PATTERN = r"^T[A-Z0-9]{2,20}$"


def _slack_principal(value: str) -> str:
    if re.fullmatch(SLACK_PRINCIPAL_PATTERN, value) is None:
        raise ValueError(f"not a Slack user or user-group id: {value!r}; use a user id 'U0123ABCD' (or 'W0123ABCD'), "
                         "from the person's profile (Copy member ID), or a user-group id 'S0123ABCD'")
    return value


def _slack_team(value: str) -> str:
    if re.fullmatch(SLACK_TEAM_PATTERN, value) is None:
        raise ValueError(f"not a Slack workspace (team) id: {value!r}; use 'T0123ABCD'")
    return value


SlackPrincipal = Annotated[str, AfterValidator(_slack_principal),
                           WithJsonSchema({"type": "string", "pattern": SLACK_PRINCIPAL_PATTERN})]
SlackTeam = Annotated[str, AfterValidator(_slack_team),
                      WithJsonSchema({"type": "string", "pattern": SLACK_TEAM_PATTERN})]


class ChatOps(RulesModel):
    """Who may act on alerts from their Slack messages (app mode: Acknowledge, Silence, Approve / Reject)."""

    approvers: tuple[SlackPrincipal, ...] = Field(
        default=(), description="Who may approve or reject remediation configured `approval: required`: Slack user "
        "ids (U…, W…) or user-group ids (S…). Empty: nobody can, and such actions never run.")
    responders: tuple[SlackPrincipal, ...] = Field(
        default=(), description="Who may acknowledge and silence alerts: Slack user or user-group ids. Empty: anyone "
        "in the workspace.")
    acknowledge_for: Duration | None = Field(
        default=timedelta(hours=24), description="How long an acknowledgement stops repeats; null: until the alert "
        "resolves. An escalation and the resolved are always sent.")
    team_id: SlackTeam | None = Field(
        default=None, description="The only Slack workspace (team id, T…) whose clicks count; null: any.")


# --- blast radius: what runs on a sick node, and who owns it (workload/) -----------------------------


#: the most the alert waits for its workload: beyond it the alert goes with "workload unknown: timeout"
MAX_WORKLOAD_TIMEOUT = timedelta(seconds=10)


class WorkloadReads(RulesModel):
    """Node alerts of the clusters that `match` selects say what runs on the node: an EKS cluster's pods and their
    jobs (its Kubernetes API), a Slurm cluster's jobs (squeue on the controller through SSM). Off by default:
    it needs read access granted to the cluster (README, "Blast radius")."""

    match: ClusterMatch = Field(default_factory=ClusterMatch, description="Which clusters (left out: all).")
    timeout: Duration = Field(
        default=timedelta(seconds=3), ge=timedelta(seconds=1), le=MAX_WORKLOAD_TIMEOUT,
        description="The most a notification waits for its workload; past it the alert goes out saying "
        "'workload unknown: timeout'.")
    controller_group: str | None = Field(
        default=None, min_length=1, max_length=63,
        description="Slurm: the instance group of the controller node, where squeue runs (left out: the group "
        "whose name contains 'controller').")


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
    grouping: Grouping = Field(default_factory=Grouping)
    routing: Routing = Field(default_factory=Routing)
    chatops: ChatOps = Field(default_factory=ChatOps)
    workload: tuple[WorkloadReads, ...] = Field(
        default=(), description="Which clusters' node alerts say what runs on the node and who owns it (the first "
        "entry that matches the cluster applies). Empty, the default: none.")

    @property
    def selects_by_tags(self) -> bool:
        """True when an override, a route or a workload entry selects clusters by tag: only then are tags worth a
        ListTags call."""
        return (any(o.match.tags for o in self.overrides) or self.routing.selects_by_tags
                or any(w.match.tags for w in self.workload))

    def workload_for(self, cluster_name: str, tags: Mapping[str, str] | None = None,
                     location: Location | None = None) -> WorkloadReads | None:
        """The first workload entry that selects the cluster, or None (off)."""
        return next((w for w in self.workload if w.match.matches(cluster_name, tags, location)), None)

    def for_tags(self, tags: Mapping[str, str] | None) -> Rules:
        """These rules as they apply to a cluster carrying `tags` (None: unknown, as untagged):
        overrides whose tag selector matches keep only their name glob, the others are dropped.
        Whatever then calls for_cluster(name) (the engine, the alert ledger's timings,
        remediation) sees the tag selection without having to be handed the tags."""
        if not any(o.match.tags for o in self.overrides):
            return self
        kept = tuple(
            o.model_copy(update={"match": o.match.model_copy(update={"tags": {}})})
            for o in self.overrides
            if o.match.tags_match(tags)
        )
        return self.model_copy(update={"overrides": kept})

    def for_cluster(self, cluster_name: str, tags: Mapping[str, str] | None = None,
                    location: Location | None = None) -> Policies:
        """The global policies with every matching override laid over them. Overrides that
        select by tag match only when `tags` are given (or the rules were bound by for_tags).
        `cluster_name`: the cluster's key (fleet.py); `location` as ClusterMatch.matches."""
        matching = [o for o in self.overrides if o.match.matches(cluster_name, tags, location)]
        if not matching:
            return self.policies
        merged = self.policies.model_dump(by_alias=True)
        for override in matching:
            _deep_update(merged, override.policies.model_dump(by_alias=True, exclude_unset=True))
        return Policies.model_validate(merged)


    def resolve(self, cluster_name: str, tags: Mapping[str, str] | None = None,
                adhoc: Iterable[AdHocSilence] = (), location: Location | None = None) -> ClusterRules:
        """The rules as they apply to one cluster (its key, fleet.py, and, when read, its tags):
        resolved once per evaluation and handed to every later step, so none can miss an override.
        `adhoc`: the active ad-hoc silences (silences.py); those of other clusters are left out.
        `location`: where the cluster lives (None: the key's own, if qualified; a home cluster's bare key
        with no location given matches only account and region matchers '*').

        The silences kept are bound to the cluster, as for_tags binds overrides to tags: their cluster,
        account and region matchers have been applied here and read '*' (the ad-hoc ones keep their
        cluster glob, which they check against the key's name), so whatever checks a silence against an
        alert (alerting.muted_reason) needs neither the location nor a key's name."""
        location = location or location_of(cluster_name)
        silences = tuple(
            s.model_copy(update={"matchers": s.matchers.model_copy(update=dict.fromkeys(_PLACE_MATCHERS, "*"))})
            for s in self.silences if s.matchers.applies_to(cluster_name, location))
        return ClusterRules(cluster_name, self.for_tags(tags).for_cluster(cluster_name, location=location), silences,
                            self.remediation_budget, dict(tags) if tags is not None else None,
                            tuple(replace(s, account="*", region="*") for s in adhoc
                                  if s.applies_to_place(cluster_name, location)),
                            self.grouping, self.routing, location, self.workload_for(cluster_name, tags, location))


@dataclass(frozen=True)
class ClusterRules:
    """One cluster's effective rules: its policies' settings with every matching override laid
    over them, the silences and the remediation budget."""

    cluster: str
    policies: Policies
    #: the rules' silences of this cluster, bound to it (Rules.resolve): their cluster, account and region read '*'
    silences: tuple[Silence, ...] = ()
    remediation_budget: RemediationBudget = field(default_factory=RemediationBudget)
    #: the cluster's tags, when the rules or an ad-hoc silence select by tag (None: not read)
    tags: Mapping[str, str] | None = None
    #: the active ad-hoc silences whose cluster, account and region match this cluster (silences.py), bound to it
    #: (their account and region read '*')
    adhoc: tuple[AdHocSilence, ...] = ()
    grouping: Grouping = field(default_factory=Grouping)
    #: the rules' routing, whole: routing.py picks the receivers of each alert with this cluster's name and tags
    routing: Routing = field(default_factory=Routing)
    #: where the cluster lives, as resolve() was given or the key says (None: unknown, a home cluster's bare key
    #: without a fleet): routing.py matches routes' account and region against it
    location: Location | None = None
    #: whether (and how) node alerts say what runs on the node (None: off, the default)
    workload: WorkloadReads | None = None

    @property
    def remediates(self) -> bool:
        """Whether any policy of this cluster has remediation enabled (only then is it loaded)."""
        remediations = (remediation_of(self.policies.for_policy(name)) for name in REGISTRY)
        return any(r is not None and r.enabled for r in remediations)

    def enabled(self, names: Iterable[str]) -> frozenset[str]:
        """Which of `names` (policy names) are enabled for this cluster."""
        return frozenset(name for name in names if self.policies.for_policy(name).enabled)


def _deep_update(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


DEFAULT_RULES = Rules(version=1)


class RulesJsonSchema(GenerateJsonSchema):
    """The rules' JSON Schema with every default spelt as a rules file spells it: a field whose
    type has its own plain serializer (Duration: "15m") has its default written by it. pydantic
    does that only for serialization-mode schemas, and writes a timedelta default as ISO 8601
    ("PT15M") otherwise, which the field's own pattern refuses. An optional one (`Duration | None`) too."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        default = super().get_default_value(schema)
        inner: Any = schema["schema"]
        if inner.get("type") == "nullable" and default is not None:  # `Duration | None`: the Duration's serializer
            inner = inner["schema"]
        serializer: Any = inner.get("serialization")
        if default is NoDefault or not isinstance(serializer, dict) or serializer.get("type") != "function-plain" \
                or serializer.get("info_arg"):
            return default
        return serializer["function"](default)


def rules_schema() -> dict[str, Any]:
    return Rules.model_json_schema(by_alias=True, mode="validation", schema_generator=RulesJsonSchema)


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
        first = f"{problems[0][0]}: {problems[0][1]}"
        raise InvalidRulesError(f"{len(problems)} problem(s) in rules; first: {first}", problems) from None


def load_rules_text(text: str) -> Rules:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRulesError(f"rules are not JSON: {exc}", [("$", f"not JSON: {exc}")]) from None
    return load_rules(document)
