"""From an evaluation to alerts: silences, inhibition, scoped resolution, the ledger, one message.

`plan()` is pure: given the evaluation, what it looked at (its Scope), the ledger's records
of the cluster, the rules and the time, it returns a Decision per record. `reconcile()` runs
it against the ledger store (retrying on write conflicts), publishes one notification for
the cluster if anything is to be sent, and confirms or releases the claims.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .engine import Evaluation
from .findings import Finding, Severity
from .ledger import AlertRecord, AlertState, Decision, Timing, carry, clear, observe
from .ledger_store import LedgerConflict
from .notify.message import FindingPayload, Notification, NotificationItem
from .policies import REGISTRY
from .rules import Policies, Rules, Silence, glob_match
from .timeutil import format_duration, isoformat

logger = logging.getLogger(__name__)

#: The pseudo-cluster that holds alerts about hyperpod-guard itself (invalid rules). Not a
#: valid HyperPod cluster name (those are [a-zA-Z0-9-]), so it can never collide with one.
SYSTEM_CLUSTER = "_hyperpod-guard"
RULES_INVALID = "rules-invalid"
#: Findings from an event's text (origin "event") cannot be cleared by a re-read; without
#: news for this long they are considered over.
EVENT_FINDING_TTL = timedelta(hours=24)
#: cluster-level conditions that make the cluster's group and node findings noise
INHIBITING_CONDITIONS = frozenset({"cluster-failed", "cluster-rolling-back"})
_COMMIT_ATTEMPTS = 5


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
    #: no DescribeCluster behind the evaluation: nothing can be resolved by absence
    partial: bool = False

    def covers(self, record: AlertRecord) -> bool:
        if self.partial or record.policy not in self.policies:
            return False
        return record.node is None or self.all_nodes or record.node in self.nodes


@dataclass(frozen=True)
class Outcome:
    cluster: str
    decisions: list[Decision]
    notification: Notification | None = None
    message_id: str | None = None

    @property
    def suppressed(self) -> list[Decision]:
        return [d for d in self.decisions if d.record.state is AlertState.FIRING and d.notify is None and d.changed
                and ("silenced" in d.why or "inhibited" in d.why)]


class Store(Protocol):
    def load(self, cluster: str) -> dict[str, AlertRecord]: ...
    def commit(self, decisions: list[Decision], token: str, now: datetime) -> list[AlertRecord]: ...
    def confirm(self, records: list[AlertRecord], token: str, now: datetime) -> None: ...
    def release(self, records: list[AlertRecord], token: str) -> None: ...


class Publisher(Protocol):
    def publish(self, notification: Notification) -> str: ...


def timing(policies: Policies, policy: str) -> Timing:
    if policy not in REGISTRY:
        return Timing()  # e.g. rules-invalid: fire at once, repeat every 4h
    settings = policies.for_policy(policy)
    return Timing(settings.grace, settings.repeat_interval, settings.notify_on_resolve)


def _silence_matches(silence: Silence, record: AlertRecord | Finding, now: datetime) -> bool:
    m = silence.matchers
    return bool(silence.until and silence.until > now) and all((
        glob_match(m.cluster, record.cluster), glob_match(m.policy, record.policy),
        glob_match(m.instance_group, record.instance_group), glob_match(m.node, record.node),
    ))


def muted_reason(record: AlertRecord | Finding, rules: Rules, inhibitors: list[Finding], now: datetime) -> str | None:
    for silence in rules.silences:
        if _silence_matches(silence, record, now):
            note = f": {silence.comment}" if silence.comment else ""
            return f"silenced until {isoformat(silence.until)}{note}"  # type: ignore[arg-type]
    if record.instance_group or record.node:
        for inhibitor in inhibitors:
            return f"inhibited by {inhibitor.policy}/{inhibitor.condition}: {inhibitor.summary}"
    return None


def _clear_reason(record: AlertRecord, evaluation: Evaluation, scope: Scope, now: datetime) -> str | None:
    if scope.cluster_gone:
        return "the cluster no longer exists"
    if record.node and (record.node in scope.gone_nodes or (scope.all_nodes and record.node not in scope.nodes)):
        return f"node {record.node} no longer exists"
    if record.fingerprint in evaluation.resolved:
        return "reported healthy again"
    if record.origin == "state" and scope.covers(record):
        return "the condition cleared"
    if record.origin == "event" and now - record.last_seen >= EVENT_FINDING_TTL:
        return f"not reported again for {format_duration(EVENT_FINDING_TTL)}"
    return None


def plan(
    evaluation: Evaluation, scope: Scope, records: dict[str, AlertRecord], rules: Rules, now: datetime, token: str,
) -> list[Decision]:
    policies = rules.for_cluster(evaluation.cluster)
    inhibitors = [
        f for f in evaluation.findings
        if f.severity is Severity.CRITICAL and f.condition in INHIBITING_CONDITIONS and not (f.instance_group or f.node)
    ]
    decisions: list[Decision] = []
    seen: set[str] = set()
    for finding in evaluation.findings:
        seen.add(finding.fingerprint)
        decisions.append(observe(
            records.get(finding.fingerprint), finding, timing(policies, finding.policy), now,
            muted=muted_reason(finding, rules, inhibitors, now), token=token,
        ))
    for fingerprint, record in records.items():
        if fingerprint in seen or not record.open:
            continue
        why = _clear_reason(record, evaluation, scope, now)
        if why is None:
            decisions.append(carry(record, now, token=token))
        else:
            muted = muted_reason(record, rules, inhibitors, now)
            decisions.append(clear(record, timing(policies, record.policy), now, why, muted=muted, token=token))
    return decisions


def payload(record: AlertRecord) -> FindingPayload:
    return FindingPayload(
        policy=record.policy, severity=record.severity, cluster=record.cluster, instance_group=record.instance_group,
        node=record.node, fingerprint=record.fingerprint, condition=record.condition, summary=record.summary,
        details=record.details, origin=record.origin,
    )


def build_notification(
    cluster: str, notified: list[tuple[str, AlertRecord]], now: datetime, *,
    region: str | None = None, cluster_arn: str | None = None, actions: dict[str, list[str]] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Notification:
    """notified: (reason, record) pairs; actions: remediation lines by fingerprint; tags: the
    cluster's, when they were read."""
    actions = actions or {}
    ordered = sorted(notified, key=lambda pair: (pair[0] == "resolved", -pair[1].severity.rank, pair[1].policy))
    items = tuple(
        NotificationItem(reason=reason, finding=payload(record), first_seen=record.first_seen,
                         actions=tuple(actions.get(record.fingerprint, ())))
        for reason, record in ordered
    )
    return Notification(cluster=cluster, cluster_arn=cluster_arn, region=region, sent_at=now, items=items,
                        tags=dict(tags) if tags is not None else None)


Remediate = Callable[[list[AlertRecord]], dict[str, list[str]]]


def reconcile(
    evaluation: Evaluation, scope: Scope, rules: Rules, now: datetime, store: Store, publisher: Publisher, *,
    token: str, region: str | None = None, cluster_arn: str | None = None, remediate: Remediate | None = None,
    tags: Mapping[str, str] | None = None,
) -> Outcome:
    for attempt in range(1, _COMMIT_ATTEMPTS + 1):
        records = store.load(evaluation.cluster)
        decisions = plan(evaluation, scope, records, rules, now, token)
        try:
            written = store.commit(decisions, token, now)
            break
        except LedgerConflict:
            if attempt == _COMMIT_ATTEMPTS:
                raise
            logger.info("ledger write conflict for %s, re-reading (attempt %d)", evaluation.cluster, attempt)
    by_fingerprint = {r.fingerprint: r for r in written}
    claimed = [by_fingerprint[d.record.fingerprint] for d in decisions if d.notify]
    notified: list[tuple[str, AlertRecord]] = [(d.notify.value, by_fingerprint[d.record.fingerprint]) for d in decisions if d.notify]
    # remediation runs after the ledger decided what is firing (opt-in; see remediation/)
    firing = [d.record for d in decisions if d.record.state is AlertState.FIRING and not d.muted]
    actions = remediate(firing) if remediate and firing else {}
    # an action (or dry run) is news of its own; a skip is only mentioned in a message already due
    quiet = {d.record.fingerprint: d.record for d in decisions if not d.notify}
    notified += [("remediated", quiet[fp]) for fp, lines in actions.items()
                 if fp in quiet and any(not line.startswith("skipped") for line in lines)]
    if not notified:
        return Outcome(evaluation.cluster, decisions)
    notification = build_notification(evaluation.cluster, notified, now, region=region, cluster_arn=cluster_arn,
                                      actions=actions, tags=tags)
    try:
        message_id = publisher.publish(notification)
    except Exception:
        store.release(claimed, token)  # a retry of this event sends what is owed, once
        raise
    store.confirm(claimed, token, now)
    return Outcome(evaluation.cluster, decisions, notification, message_id)


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


def summarize(outcome: Outcome) -> dict[str, Any]:
    """A compact, loggable account of what happened."""
    return {
        "cluster": outcome.cluster,
        "decisions": [
            {"fingerprint": d.record.fingerprint, "policy": d.record.policy, "state": d.record.state.value,
             "notify": d.notify.value if d.notify else None, "why": d.why}
            for d in outcome.decisions if d.changed or d.notify
        ],
        "message_id": outcome.message_id,
    }
