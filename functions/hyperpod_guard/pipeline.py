"""The notification pipeline, stage by stage (Alertmanager's notify.go: dedup, retry, set-notifies).

    decide_and_commit ─► remediate ─► compose (+ the nodes' workload) ─► deliver (publish ─► confirm | release)

The order is what makes every notification go out once, whatever fails and however many
Lambdas run at once:
1. decide_and_commit: plan against the ledger as read now and write every decision on
   condition that nobody wrote since (re-read and re-plan on a conflict); a notification to
   send is written first, as *owed*, with this invocation's claim.
2. remediate: act on the firing alerts this evaluation observed (opt-in; budgeted, audited).
3. compose: one message for the cluster; pure but for the blast radius (issue 23, opt-in): what runs on
   the nodes its firing items are about, read within the rules' short timeout and never failing the
   message (a failed read says "workload unknown: <why>").
4. deliver: publish it; only once SNS accepted it is it confirmed as sent; if publishing
   fails the claims are released and the error raised, so Lambda's retry sends what is owed.

With grouping on (grouping.py), decide_and_commit(defer=True) writes the notifications owed but
unclaimed, and the cluster's flush later claims and sends them all as one message (flush_owed,
then compose and deliver as above); send_now sends at once the pages remediation acted on.

Last, `archive` (when the episode archive is on, archive.py): each alert this evaluation resolved after it
had fired goes to S3 as an episode. After delivery, so that S3 never delays or stops a notification; a
failed put never fails the evaluation (logged, counted `ArchiveFailed`): the sweep writes it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .alerting import EVENT_FINDING_TTL, SYSTEM_CLUSTER, Outcome, Scope, build_notification, muted_reason, plan
from .archive import ArchiveWriter, Cleared, Episode, RepairFact, audited_actions, clear_words
from .constants import METRICS_NAMESPACE, Metric
from .engine import Evaluation
from .findings import Severity
from .freshness import Report, ReportMark
from .ledger import LAST_SEEN_RESOLUTION, AlertRecord, AlertState, Decision, Reason, carry
from .ledger_reads import reads_for
from .ledger_store import ClusterLedger, LedgerConflict, LedgerReads, LedgerStore
from .notify.message import Notification
from .rules import ClusterRules
from .workload.model import Workload

if TYPE_CHECKING:
    from .remediation.executor import ActionReport

logger = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5


class Store(Protocol):
    def load_cluster(self, cluster: str, reads: LedgerReads | None = None) -> ClusterLedger: ...
    def commit(self, decisions: list[Decision], token: str, now: datetime,
               marks: Sequence[ReportMark] = ()) -> list[AlertRecord]: ...
    def confirm(self, records: list[AlertRecord], token: str, now: datetime,
                owners: Mapping[str, tuple[str, ...]] | None = None) -> None: ...
    def release(self, records: list[AlertRecord], token: str) -> None: ...


class Publisher(Protocol):
    def publish(self, notification: Notification) -> str: ...


#: the remediation stage: given the firing alerts observed now, what it did per fingerprint
Remediate = Callable[[list[Decision]], "Mapping[str, ActionReport]"]
#: the blast-radius read: given what the message says, what runs on each node a firing item is about (by
#: instance id); bounded in time and never raising (workload/reader.py)
Workloads = Callable[[Sequence[tuple[Reason, AlertRecord]]], Mapping[str, Workload]]


@dataclass(frozen=True)
class Committed:
    """The decisions of one evaluation, as written to the ledger."""

    cluster: str
    decisions: list[Decision]
    #: the records written, with this invocation's claims and their new versions, by fingerprint
    written: dict[str, AlertRecord]
    stale: str | None = None
    #: grouping: the notifications decided now but left owed for the cluster's next grouped message
    deferred: tuple[Decision, ...] = ()

    @property
    def owes(self) -> bool:
        """Some record written owes a notification (unclaimed, or claimed by a flush sending an older
        one, which leaves the newer owed): a flush must be due."""
        return any(r.owed is not None for r in self.written.values())

    @property
    def critical(self) -> bool:
        """A deferred notification of a critical alert starting or escalating (grouping.next_flush)."""
        return any(d.notify in (Reason.FIRST, Reason.ESCALATED) and d.record.severity is Severity.CRITICAL
                   for d in self.deferred)

    @property
    def claimed(self) -> list[AlertRecord]:
        """The records whose notification this invocation must send (and then confirm or release)."""
        return [self.written[d.record.fingerprint] for d in self.decisions if d.notify]

    @property
    def observed_firing(self) -> list[Decision]:
        """What remediation may act on: firing, not muted, and observed by this evaluation (a
        carried alert is not evidence of anything now)."""
        return [d for d in self.decisions if d.record.state is AlertState.FIRING and not d.muted and d.observed_at]


def decide_and_commit(store: Store, evaluation: Evaluation, scope: Scope, rules: ClusterRules, now: datetime,
                      token: str, report: Report | None = None, *, defer: bool = False) -> Committed:
    """Plan against the ledger as read now and write it, retrying on a concurrent write. `defer`
    (grouping on): notifications are written as owed for the cluster's next grouped message."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        ledger = store.load_cluster(evaluation.cluster, reads_for(evaluation, scope, report))
        planned = plan(evaluation, scope, ledger, rules, now, token, report)
        decisions, deferred = _deferred(planned.decisions, ledger.records) if defer else (planned.decisions, [])
        try:
            written = store.commit(decisions, token, now, planned.marks)
        except LedgerConflict:
            if attempt == COMMIT_ATTEMPTS:
                raise
            logger.info("ledger write conflict for %s, re-reading (attempt %d)", evaluation.cluster, attempt)
            continue
        return Committed(evaluation.cluster, decisions, {r.fingerprint: r for r in written}, planned.stale,
                         tuple(deferred))
    raise AssertionError("unreachable")  # the loop returns or raises


def _deferred(decisions: list[Decision], stored: Mapping[str, AlertRecord]) -> tuple[list[Decision], list[Decision]]:
    """The decisions with their notifications left owed and unclaimed (the flush claims them), and
    the deferred ones as planned. An owed notification that was already stored so is not written
    again (a storm of events carrying it costs reads only)."""
    kept: list[Decision] = []
    deferred: list[Decision] = []
    for decision in decisions:
        if decision.notify is None:
            kept.append(decision)
            continue
        deferred.append(decision)
        before = stored.get(decision.record.fingerprint)
        unchanged = before is not None and replace(
            decision.record, last_seen=before.last_seen, reason=before.reason) == before \
            and decision.record.last_seen - before.last_seen < LAST_SEEN_RESOLUTION
        why = f"{decision.why} (with the cluster's next grouped message)"
        kept.append(replace(decision, notify=None, why=why, changed=not unchanged,
                            record=decision.record if unchanged else replace(decision.record, reason=why)))
    return kept, deferred


def flush_owed(store: Store, cluster: str, now: datetime, token: str,
               only: frozenset[str] | None = None, rules: ClusterRules | None = None) -> Committed:
    """A grouped message is due: claim every notification the cluster owes (`only` these
    fingerprints), carried as they are (nothing is evaluated), retrying on a concurrent write. A page
    (not a resolved) that a silence of `rules` covers now is dropped instead: silenced since it was
    decided, it is muted as an evaluation would mute it (Alertmanager's mute stage runs at send time)."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        ledger = store.load_cluster(cluster)
        decisions = [_silenced_since(record, rules, now, token) or carry(record, now, token=token)
                     for record in ledger.records.values()
                     if record.owed and (only is None or record.fingerprint in only)]
        try:
            written = store.commit(decisions, token, now)
        except LedgerConflict:
            if attempt == COMMIT_ATTEMPTS:
                raise
            logger.info("ledger write conflict flushing %s, re-reading (attempt %d)", cluster, attempt)
            continue
        return Committed(cluster, decisions, {r.fingerprint: r for r in written})
    raise AssertionError("unreachable")  # the loop returns or raises


def _silenced_since(record: AlertRecord, rules: ClusterRules | None, now: datetime, token: str) -> Decision | None:
    """The owed page of `record` dropped because a silence covers it now, or None (send what is owed)."""
    if rules is None or record.owed in (None, Reason.RESOLVED) or record.claimed_by_other(token, now):
        return None
    why = muted_reason(record, rules, [], now)
    if why is None:
        return None
    why = f"{why} (silenced before its grouped message went out)"
    return Decision(replace(record, owed=None, reason=why), None, why, muted=True)


def remediate(remediator: Remediate | None, committed: Committed) -> Mapping[str, ActionReport]:
    """Opt-in remediation of what this evaluation observed firing (see remediation/)."""
    firing = committed.observed_firing
    return remediator(firing) if remediator and firing else {}


def send_now(store: Store, committed: Committed, reports: Mapping[str, ActionReport], now: datetime,
             token: str) -> Committed:
    """Grouping: remediation acted on alerts whose notification was left for the grouped message.
    News of an action cannot wait for a page people have not had yet (nor can the page come after
    it): those notifications are claimed and go now, with the action (compose)."""
    acted = frozenset(fp for fp, report in reports.items() if report.news) & {
        d.record.fingerprint for d in committed.deferred}
    if not acted:
        return committed
    sent = flush_owed(store, committed.cluster, now, token, only=acted)
    now_sent = {d.record.fingerprint: d for d in sent.decisions}
    return replace(committed, decisions=[now_sent.get(d.record.fingerprint, d) for d in committed.decisions],
                   written={**committed.written, **sent.written},
                   deferred=tuple(d for d in committed.deferred if d.record.fingerprint not in now_sent))


def to_send(committed: Committed, reports: Mapping[str, ActionReport]) -> list[tuple[Reason, AlertRecord]]:
    """What the cluster's message says: the notifications decided (as written), and the alerts
    remediation acted on with news of its own. An action is news of its own when remediation says it
    is due; otherwise it is only mentioned in a message already due."""
    notified = [(d.notify, committed.written[d.record.fingerprint]) for d in committed.decisions if d.notify]
    quiet = {d.record.fingerprint: d.record for d in committed.decisions if not d.notify}
    return notified + [(Reason.REMEDIATED, quiet[fp]) for fp, done in reports.items() if fp in quiet and done.news]


def compose(committed: Committed, reports: Mapping[str, ActionReport], now: datetime, *, region: str | None = None,
            cluster_arn: str | None = None, tags: Mapping[str, str] | None = None,
            rules: ClusterRules | None = None, workloads: Workloads | None = None) -> Notification | None:
    """The cluster's one message, or None when nothing is to be sent. `workloads`: reads what runs on the
    nodes its firing items are about (workload/reader.py), called only when there is a message to send."""
    notified = to_send(committed, reports)
    if not notified:
        return None
    actions = {fp: list(done.lines) for fp, done in reports.items()}
    approvals = {fp: done.approval for fp, done in reports.items() if done.approval is not None}
    return build_notification(committed.cluster, notified, now, region=region, cluster_arn=cluster_arn,
                              actions=actions, tags=tags, rules=rules, approvals=approvals,
                              workloads=workloads(notified) if workloads is not None else None)


def deliver(publisher: Publisher, store: Store, committed: Committed, notification: Notification | None,
            token: str, now: datetime) -> Outcome:
    """Publish, then confirm the claims; release them (and raise) when SNS refused."""
    if notification is None:
        return Outcome(committed.cluster, committed.decisions, stale=committed.stale)
    try:
        message_id = publisher.publish(notification)
    except Exception:
        store.release(committed.claimed, token)  # a retry of this event sends what is owed, once
        raise
    store.confirm(committed.claimed, token, now, owners={item.finding.fingerprint: item.owners
                                                         for item in notification.items if item.owners})
    return Outcome(committed.cluster, committed.decisions, notification, message_id, stale=committed.stale)


def reconcile(evaluation: Evaluation, scope: Scope, rules: ClusterRules, now: datetime, store: Store,
              publisher: Publisher, *, token: str, region: str | None = None,
              archiving: Archiving | None = None) -> Outcome:
    """Every stage but remediation, for evaluations that cannot act (the rules-invalid alert,
    a cluster that is gone)."""
    committed = decide_and_commit(store, evaluation, scope, rules, now, token)
    outcome = deliver(publisher, store, committed, compose(committed, {}, now, region=region, rules=rules), token, now)
    archive(archiving, committed, scope, evaluation, now)
    return outcome


# -- the episode archive -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archiving:
    """What the archive stage needs besides the evaluation: where episodes go, the ledger (the audit trail, and
    `archived_at`), and what an episode says that its alert does not (the cluster's account and tags, the
    region, HyperPod's node repairs that this evaluation's event reported)."""

    writer: ArchiveWriter
    ledger: LedgerStore
    account: str | None = None
    region: str | None = None
    tags: Mapping[str, str] | None = None
    repairs: tuple[RepairFact, ...] = ()


def archive(archiving: Archiving | None, committed: Committed, scope: Scope, evaluation: Evaluation,
            now: datetime) -> int:
    """Archive each episode this evaluation resolved after it had fired (a pending alert that cleared within
    its grace was no incident), then mark its alert `archived_at`. A failure is logged and counted, never
    raised: the alert keeps how it cleared (LedgerStore.mark_archived) and the sweep writes it later. Returns
    how many were archived."""
    if archiving is None or committed.cluster == SYSTEM_CLUSTER:
        return 0
    resolved = frozenset(evaluation.resolved) if committed.stale is None else frozenset()
    archived = 0
    for decision in committed.decisions:
        record = decision.record
        if not (decision.changed and record.state is AlertState.RESOLVED and record.resolved_at == now
                and record.fired_at is not None):
            continue
        how, words = cleared(record, scope, now, resolved), clear_words(decision.why)
        try:
            actions = audited_actions(archiving.ledger.dynamodb, archiving.ledger.table_name, record, now)
            episode = Episode.from_record(record, now=now, cluster=committed.cluster, account=archiving.account,
                                          region=archiving.region, tags=archiving.tags, actions=actions,
                                          cleared=how, repairs=archiving.repairs, resolution=words)
            archiving.writer.put_episode(episode)
        except Exception:
            logger.exception("archive: the episode of %s/%s was not written; the sweep writes it later",
                             committed.cluster, record.fingerprint,
                             extra={"cluster": committed.cluster, "fingerprint": record.fingerprint})
            count_archive_failed()
            _note(archiving.ledger, record, None, cleared=how.value if how else None, resolution=words)
            continue
        archived += 1
        _note(archiving.ledger, record, now)
    if archived:
        count_archived(archived)
    return archived


def _note(ledger: LedgerStore, record: AlertRecord, archived_at: datetime | None, **cleared: str | None) -> None:
    """LedgerStore.mark_archived, its failure logged only: at worst the sweep puts the episode once more."""
    try:
        ledger.mark_archived(record, archived_at, **cleared)
    except Exception:
        logger.exception("archive: cannot mark %s/%s in the ledger", record.cluster, record.fingerprint)


def cleared(record: AlertRecord, scope: Scope, now: datetime, resolved: frozenset[str] = frozenset()) -> Cleared | None:
    """How `record` cleared in an evaluation of `scope`, when that decides what resolved it: the structure of
    alerting._clear_reason (its order and its inputs, not its words): the cluster gone, the node gone, a finding
    from an event not reported again for EVENT_FINDING_TTL. None for the others (reported healthy, replaced
    since the report, the condition cleared)."""
    if scope.cluster_gone:
        return Cleared.CLUSTER_GONE
    if record.node and (record.node in scope.gone_nodes or (scope.all_nodes and record.node not in scope.nodes)):
        return Cleared.GONE
    if record.fingerprint in resolved or (record.origin == "state" and scope.covers(record)):
        return None
    if (record.origin == "event" and not scope.replaced_since(record.node, record.reported_at)
            and now - record.last_seen >= EVENT_FINDING_TTL):
        return Cleared.EXPIRED
    return None


def count_archived(episodes: int) -> None:
    """EMF metric `EpisodesArchived` (as service's TagsUnavailable), from whichever function archives."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=Metric.EPISODES_ARCHIVED, unit=MetricUnit.Count, value=episodes,
                       namespace=METRICS_NAMESPACE.read()):
        pass


def count_archive_failed(failures: int = 1) -> None:
    """EMF metric `ArchiveFailed`: S3 (or the ledger's part of the archive) refused; an alarm can watch it."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=Metric.ARCHIVE_FAILED, unit=MetricUnit.Count, value=failures,
                       namespace=METRICS_NAMESPACE.read()):
        pass
