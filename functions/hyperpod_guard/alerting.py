"""From an evaluation to alerts: silences, inhibition, scoped resolution, the ledger, one message.

Everything here is pure. `plan()`: given the evaluation, what it looked at (its Scope), the
ledger's records and report marks of the cluster, the event's report, the cluster's rules and
the time, it returns a Decision per record: a stale report's text is dropped, a report the
state contradicts resolves, one problem is one alert (`fold`), silences and inhibition mute
(`muted_reason`). `build_notification()` makes the one message. pipeline.py runs them against
the ledger, remediation and SNS, stage by stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .constants import RULES_INVALID
from .engine import Evaluation
from .findings import Finding, FindingFields, Severity
from .freshness import Report, ReportMark, advance, stale
from .ledger import AlertRecord, AlertState, Decision, Reason, Timing, carry, clear, observe
from .ledger_store import ClusterLedger
from .notify.message import ApprovalRef, FindingPayload, Notification, NotificationItem, ReceiverRef, next_step
from .policies import REGISTRY
from .routing import receivers_for
from .rules import ClusterRules, Policies, Rules, Silence, glob_match
from .snapshot import ClusterSnapshot
from .state_now import resolved_evidence
from .timeutil import format_duration, isoformat
from .workload.model import Workload

#: The pseudo-cluster that holds alerts about hyperpod-guard itself (invalid rules). Not a
#: valid HyperPod cluster name (those are [a-zA-Z0-9-]), so it can never collide with one.
SYSTEM_CLUSTER = "_hyperpod-guard"
#: Findings from an event's text (origin "event") are not seen again by a re-read (only a node
#: gone or relaunched since contradicts them); without a new report for this long they are over.
EVENT_FINDING_TTL = timedelta(hours=24)
#: cluster-level conditions that make the cluster's group and node findings noise
INHIBITING_CONDITIONS = frozenset({"cluster-failed", "cluster-rolling-back"})


@dataclass(frozen=True)
class Scope:
    """What an evaluation looked at. Only state findings inside it can be resolved by their
    absence: a Node Health evaluation that read one node must not resolve other nodes' alerts."""

    cluster: str
    policies: frozenset[str]
    #: nodes whose state was read; `all_nodes` when the whole node list was read (the sweep)
    nodes: frozenset[str] = frozenset()
    all_nodes: bool = False
    #: nodes known to no longer exist (with `all_nodes`, every node not in `nodes` is gone too)
    gone_nodes: frozenset[str] = frozenset()
    cluster_gone: bool = False
    #: launch times of the nodes read: a report older than its node's launch is about a replaced instance
    launched: Mapping[str, datetime] = field(default_factory=dict)
    #: what was read (with the nodes read): a resolved message says what is true now from it
    snapshot: ClusterSnapshot | None = field(default=None, compare=False)
    #: policies whose cluster-level findings this evaluation could not judge (Policy.cluster_reads not read)
    unjudged_cluster: frozenset[str] = frozenset()

    def covers(self, record: AlertRecord) -> bool:
        if record.policy not in self.policies:
            return False
        if record.policy in self.unjudged_cluster and not (record.instance_group or record.node):
            return False
        return record.node is None or self.all_nodes or record.node in self.nodes

    def replaced_since(self, node: str | None, reported_at: datetime | None) -> str | None:
        """Why a report about `node` made at `reported_at` is about an instance that is gone."""
        launched = self.launched.get(node) if node else None
        if launched is None or reported_at is None or launched <= reported_at:
            return None
        return f"node {node} was launched at {isoformat(launched)}, after the report of {isoformat(reported_at)}"


@dataclass(frozen=True)
class Plan:
    """What one evaluation changes in the ledger: a decision per alert, and the report marks to store."""

    decisions: list[Decision]
    marks: list[ReportMark] = field(default_factory=list)
    #: the event's report is older than one already applied: why (its text changed nothing)
    stale: str | None = None


@dataclass(frozen=True)
class Outcome:
    cluster: str
    decisions: list[Decision]
    notification: Notification | None = None
    message_id: str | None = None
    stale: str | None = None
    #: grouping: when the cluster's next grouped message is due (notifications were left owed for it)
    flush_at: datetime | None = None

    @property
    def suppressed(self) -> list[Decision]:
        return [d for d in self.decisions if d.record.state is AlertState.FIRING and d.notify is None and d.changed
                and ("silenced" in d.why or "inhibited" in d.why)]


def timing(policies: Policies, policy: str) -> Timing:
    if policy not in REGISTRY:
        return Timing()  # e.g. rules-invalid: fire at once, repeat every 4h
    settings = policies.for_policy(policy)
    return Timing(settings.grace, settings.repeat_interval, settings.notify_on_resolve)


def _silence_matches(silence: Silence, record: FindingFields, now: datetime) -> bool:
    m = silence.matchers
    return bool(silence.until and silence.until > now) and all((
        glob_match(m.cluster, record.cluster), glob_match(m.policy, record.policy),
        glob_match(m.instance_group, record.instance_group), glob_match(m.node, record.node),
    ))


def muted_reason(record: FindingFields, rules: ClusterRules | Rules, inhibitors: list[Finding],
                 now: datetime) -> str | None:
    """Why an alert sends nothing now: a silence that matches it (the rules' silences, then the
    ad-hoc ones, silences.py, which name their author and id), or an inhibitor (`inhibitors_of`): a
    cluster-level one mutes every group and node alert; one of a policy with its own rule
    (Policy.inhibits, e.g. an open auto-patch window) only what that rule says."""
    for silence in rules.silences:
        if _silence_matches(silence, record, now):
            note = f": {silence.comment}" if silence.comment else ""
            return f"silenced until {isoformat(silence.until)}{note}"  # type: ignore[arg-type]
    if isinstance(rules, ClusterRules):
        for adhoc in rules.adhoc:
            if adhoc.matches(record, rules.tags, now):
                return adhoc.reason()
    if record.instance_group or record.node:
        for inhibitor in inhibitors:
            policy = REGISTRY.get(inhibitor.policy)
            if policy is not None and policy.inhibits is not None:  # the policy says what its finding mutes
                why = policy.inhibits(inhibitor, record, now)
                if why:
                    return why
                continue
            return f"inhibited by {inhibitor.policy}/{inhibitor.condition}: {inhibitor.summary}"
    return None


def inhibitors_of(findings: list[Finding]) -> list[Finding]:
    """The findings that inhibit others: a critical cluster-level inhibiting condition (every group and
    node finding), then those of policies with their own inhibit rule (Policy.inhibits: an open auto-patch
    window mutes what it causes by design in its group)."""
    cluster = [f for f in findings if f.severity is Severity.CRITICAL and f.condition in INHIBITING_CONDITIONS
               and not (f.instance_group or f.node)]
    own_rules = [f for f in findings if f.policy in REGISTRY and REGISTRY[f.policy].inhibits is not None]
    return cluster + own_rules


def _clear_reason(record: AlertRecord, scope: Scope, now: datetime, resolved: Mapping[str, str]) -> str | None:
    """Why an open alert that this evaluation did not see is over, or None (carry it)."""
    if scope.cluster_gone:
        return "the cluster no longer exists"
    if record.node and (record.node in scope.gone_nodes or (scope.all_nodes and record.node not in scope.nodes)):
        return f"node {record.node} no longer exists"
    if record.fingerprint in resolved:
        return resolved[record.fingerprint]
    if record.origin == "state" and scope.covers(record):
        return "the condition cleared"
    if record.origin == "event":
        replaced = scope.replaced_since(record.node, record.reported_at)
        if replaced:
            return replaced
        if now - record.last_seen >= EVENT_FINDING_TTL:
            return f"not reported again for {format_duration(EVENT_FINDING_TTL)}"
    return None


# --- one problem, one alert -----------------------------------------------------------------

#: policies in the order they lead a problem, causes before their effects: a rolled-back update
#: or a failing node explains a Degraded group
LEAD_ORDER = ("failed-rollback", "unhealthy-node", "degraded-group", "cluster-health", "taint-drift")


@dataclass(frozen=True)
class _Member:
    """A finding of this evaluation, or an open alert carried over, as a candidate to lead its problem."""

    fingerprint: str
    policy: str
    condition: str
    severity: Severity
    origin: str
    summary: str
    #: its alert was notified and is still firing: the page people already have leads on a tie
    paged: bool

    def lead_key(self) -> tuple[Any, ...]:
        precedence = REGISTRY[self.policy].precedence if self.policy in REGISTRY else ()
        return (-self.severity.rank, not self.paged, self.origin != "state",
                LEAD_ORDER.index(self.policy) if self.policy in LEAD_ORDER else len(LEAD_ORDER),
                precedence.index(self.condition) if self.condition in precedence else len(precedence), self.condition)


def _problem_key(item: AlertRecord | Finding) -> tuple[str | None, str | None, str]:
    # a node's findings are the node's whatever its group (which may be unknown); a group's are the group's
    return (item.node, None if item.node else item.instance_group, item.problem)


def fold(findings: list[Finding], carried: list[AlertRecord], records: Mapping[str, AlertRecord],
         now: datetime) -> tuple[list[Finding], dict[str, _Member]]:
    """One problem, one alert: among the findings (and the still-open alerts carried over) of one
    scope and problem, the greatest leads; the other findings are folded into its details
    (`also`) and inhibited. Returns the findings (leaders with their folded evidence) and, per
    inhibited fingerprint, its leader."""
    groups: dict[tuple[str | None, str | None, str], list[tuple[_Member, Finding | None]]] = {}
    for finding in findings:
        record = records.get(finding.fingerprint)
        severity = finding.severity_at(record.first_seen, now) if record and record.open else finding.severity
        member = _Member(finding.fingerprint, finding.policy, finding.condition, severity, finding.origin,
                         finding.summary, _paged(record))
        groups.setdefault(_problem_key(finding), []).append((member, finding))
    for record in carried:
        key = _problem_key(record)
        if key in groups and record.state is AlertState.FIRING:
            groups[key].append((_Member(record.fingerprint, record.policy, record.condition, record.severity,
                                        record.origin, record.summary, _paged(record)), None))
    out: list[Finding] = []
    inhibited: dict[str, _Member] = {}
    for members in groups.values():
        if len(members) == 1:  # a finding alone (carried records only join a finding's group)
            only = members[0][1]
            assert only is not None
            out.append(only)
            continue
        members.sort(key=lambda pair: pair[0].lead_key())
        (leader, leading), rest = members[0], members[1:]
        folded = [{"policy": m.policy, "condition": m.condition, "severity": m.severity.value, "summary": m.summary}
                  for m, finding in rest if finding is not None]
        if leading is not None:
            out.append(replace(leading, details={**leading.details, "also": folded}) if folded else leading)
        for member, inhibited_finding in rest:
            if inhibited_finding is not None:
                out.append(inhibited_finding)
                inhibited[member.fingerprint] = leader
    return out, inhibited


def _paged(record: AlertRecord | None) -> bool:
    return record is not None and record.state is AlertState.FIRING and record.last_notified is not None


def plan(
    evaluation: Evaluation, scope: Scope, ledger: ClusterLedger, rules: ClusterRules, now: datetime, token: str,
    report: Report | None = None,
) -> Plan:
    """Decide every alert of the cluster from this evaluation: pure (the ledger as read, the time)."""
    records, policies = ledger.records, rules.policies
    mark = ledger.marks.get(report.key) if report else None
    stale_why = stale(report, mark) if report else None
    findings, resolved = _believed(evaluation, scope, report, bool(stale_why))
    inhibitors = inhibitors_of(findings)
    carried, clearing = _unseen(records, {f.fingerprint for f in findings}, scope, now, resolved)
    led, leaders = fold(findings, carried, records, now)
    observed_at = _observations(findings, leaders, report.time if report else None, now)
    decisions: list[Decision] = []
    for finding in led:
        muted = muted_reason(finding, rules, inhibitors, now)
        if muted is None and finding.fingerprint in leaders:
            leader = leaders[finding.fingerprint]
            muted = f"inhibited: part of {leader.policy}/{leader.condition}: {leader.summary}"
        # a finding may ask for a longer grace than its policy's (engine: the longer wins)
        notify_timing = timing(policies, finding.policy)
        if finding.grace:
            notify_timing = replace(notify_timing, grace=finding.grace)
        decision = observe(records.get(finding.fingerprint), finding, notify_timing, now,
                           muted=muted, token=token,
                           reported_at=report.time if report and finding.origin == "event" else None)
        decisions.append(replace(decision, observed_at=observed_at[finding.fingerprint]))
    for record in carried:
        decision = replace(carry(record, now, token=token), observed_at=observed_at.get(record.fingerprint))
        if decision.observed_at and muted_reason(record, rules, inhibitors, now):
            # it leads what was seen now, silenced: remediation leaves it alone
            decision = replace(decision, muted=True)
        decisions.append(decision)
    for fingerprint, why in clearing.items():
        record = records[fingerprint]
        decisions.append(clear(record, timing(policies, record.policy), now, why,
                               muted=muted_reason(record, rules, inhibitors, now), token=token,
                               evidence=resolved_evidence(record, scope.snapshot, why)))
    advanced = advance(report, mark, evaluation.cluster) if report and not stale_why else None
    return Plan(decisions, [advanced] if advanced else [], stale_why)


def _believed(evaluation: Evaluation, scope: Scope, report: Report | None,
              stale_report: bool) -> tuple[list[Finding], dict[str, str]]:
    """The findings to observe, and the fingerprints to resolve (why). A stale report's text
    changes nothing (the state read now still counts); a report about a node launched after it
    was made is about a replaced instance: it resolves instead of paging."""
    if stale_report:
        return [f for f in evaluation.findings if f.origin == "state"], {}
    resolved = dict.fromkeys(evaluation.resolved, "reported healthy again")
    kept: list[Finding] = []
    for finding in evaluation.findings:
        reported_at = report.time if report else None
        replaced = scope.replaced_since(finding.node, reported_at) if finding.origin == "event" else None
        if replaced:
            resolved[finding.fingerprint] = replaced
        else:
            kept.append(finding)
    return kept, resolved


def _unseen(records: Mapping[str, AlertRecord], seen: set[str], scope: Scope, now: datetime,
            resolved: Mapping[str, str]) -> tuple[list[AlertRecord], dict[str, str]]:
    """The open alerts this evaluation did not see: those carried over, and those that are over (why)."""
    carried: list[AlertRecord] = []
    clearing: dict[str, str] = {}
    for fingerprint, record in records.items():
        if fingerprint in seen or not record.open:
            continue
        why = _clear_reason(record, scope, now, resolved)
        if why is None:
            carried.append(record)
        else:
            clearing[fingerprint] = why
    return carried, clearing


def _observations(findings: list[Finding], leaders: Mapping[str, _Member], reported_at: datetime | None,
                  now: datetime) -> dict[str, datetime]:
    """When each problem was observed: the report's time for an event's text, now for state; a
    leader saw what the findings it leads saw (remediation acts on it)."""
    observed_at = {f.fingerprint: (reported_at or now) if f.origin == "event" else now for f in findings}
    for fingerprint, leader in leaders.items():
        observed_at[leader.fingerprint] = max(observed_at[fingerprint],
                                               observed_at.get(leader.fingerprint, observed_at[fingerprint]))
    return observed_at


def build_notification(
    cluster: str, notified: list[tuple[Reason, AlertRecord]], now: datetime, *,
    region: str | None = None, cluster_arn: str | None = None, actions: dict[str, list[str]] | None = None,
    tags: Mapping[str, str] | None = None, rules: ClusterRules | None = None,
    approvals: Mapping[str, ApprovalRef] | None = None, workloads: Mapping[str, Workload] | None = None,
) -> Notification:
    """notified: (reason, record) pairs; actions: remediation lines by fingerprint; tags: the
    cluster's, when they were read; rules: the cluster's (runbook links, routing to receivers;
    None: neither, every item goes to the default receiver); approvals: the remediation actions
    awaiting (or given) approval, by fingerprint; workloads: what runs on each node (by instance id)
    that a firing item is about, when the rules turn `workload` on (its section, routing by owner)."""
    actions, approvals, workloads = actions or {}, approvals or {}, workloads or {}
    ordered = sorted(notified, key=lambda pair: (pair[0] is Reason.RESOLVED, -pair[1].severity.rank, pair[1].policy))
    items = tuple(_item(reason, record, tuple(actions.get(record.fingerprint, ())), rules,
                        approvals.get(record.fingerprint),
                        workloads.get(record.node) if record.node and reason is not Reason.RESOLVED else None)
                  for reason, record in ordered)
    return Notification(cluster=cluster, cluster_arn=cluster_arn, account=account_of(cluster_arn), region=region,
                        sent_at=now, items=items, tags=dict(tags) if tags is not None else None)


def _item(reason: Reason, record: AlertRecord, actions: tuple[str, ...], rules: ClusterRules | None,
          approval: ApprovalRef | None = None, workload: Workload | None = None) -> NotificationItem:
    resolved = reason is Reason.RESOLVED
    settings = rules.policies.for_policy(record.policy) if rules is not None and record.policy in REGISTRY else None
    receivers, owners = _receivers(rules, record, workload)
    return NotificationItem(
        reason=reason, finding=FindingPayload.of(record), first_seen=record.first_seen, fired_at=record.fired_at,
        resolved_at=record.resolved_at if resolved else None,
        resolved_evidence=record.resolved_evidence if resolved else None, actions=actions,
        next_step=None if resolved else next_step(record, actions),
        runbook_url=settings.runbook_url if settings is not None else None,
        receivers=receivers, owners=owners,
        acknowledged_by=record.acknowledged_by, acknowledged_at=record.acknowledged_at,
        acknowledged_until=record.acknowledged_until, approval=None if resolved else approval,
        workload=workload.for_message() if workload is not None else None,
    )


def _receivers(rules: ClusterRules | None, record: AlertRecord,
               workload: Workload | None) -> tuple[tuple[ReceiverRef, ...], tuple[str, ...]]:
    """Where the item goes (routing.py) and which of those receivers own it: those a route by owner picked now,
    and those it picked earlier in the episode (record.owners), who hear the rest of it (its resolved too) even
    when the workload is unknown or gone by then."""
    if rules is None:
        return (), ()
    routed = receivers_for(rules, policy=record.policy, severity=record.severity,
                           instance_group=record.instance_group, workload=workload)
    routes = rules.routing.routes
    by_owner = [ref.name for ref in routed if ref.route is not None and routes[ref.route].match.selects_by_owner]
    owners = tuple(dict.fromkeys((*record.owners, *by_owner)))
    named = {ref.name for ref in routed}
    return routed + tuple(ReceiverRef(name=name) for name in owners if name not in named), owners


def account_of(arn: str | None) -> str | None:
    """The account id of an ARN (arn:aws:sagemaker:us-east-1:123456789012:cluster/abc), or None."""
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" and parts[4].isdigit() else None


def rules_invalid_finding(error: str, source: str) -> Finding:
    fallback = "the last good rules" if source == "last-good" else "the default rules"
    return Finding(
        policy=RULES_INVALID, severity=Severity.WARNING, cluster=SYSTEM_CLUSTER, condition="invalid",
        summary=f"Rules are invalid; evaluating with {fallback}: {error}"[:500],
        details={"error": error, "using": source},
    )


def rules_evaluation(error: str | None, source: str) -> tuple[Evaluation, Scope]:
    """The system's own alert: present while the rules are invalid, resolved once they are valid."""
    findings = [rules_invalid_finding(error, source)] if error else []
    return Evaluation(SYSTEM_CLUSTER, findings), Scope(SYSTEM_CLUSTER, frozenset({RULES_INVALID}))
