"""What the Lambda handlers do, without the Lambda: evaluate one event, or sweep every cluster.

Handlers add Powertools (logging, metrics, tracing, idempotency) around these functions;
the demo and the tests call them directly with the same dependencies.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import aws_clients, pipeline
from .alerting import EVENT_FINDING_TTL, SYSTEM_CLUSTER, Outcome, Scope, account_of, rules_evaluation
from .archive import ArchiveWriter, Cleared, Episode, RepairFact, audited_actions, clear_words
from .cluster_events import classify
from .cluster_reader import (
    DEFAULT_TAGS_MAX_AGE,
    ClusterReader,
    ClusterSummary,
    ReadUnavailable,
    TagCache,
    TagsUnavailable,
    TrainingPlanCache,
)
from .constants import METRICS_NAMESPACE, NAMESPACE, SWEEP_CONCURRENCY, Dimension, Metric, Service
from .engine import Evaluation, evaluate
from .errors import InvalidEventError, InvalidSnapshotError
from .events import (
    CLUSTER_EVENT,
    SOURCE,
    ClusterEvent,
    HyperPodEvent,
    IgnoredEvent,
    NodeHealthEvent,
    event_accounts,
    foreign_origin,
    parse_event,
)
from .findings import Severity
from .fleet import FleetSettings, Location, cluster_key, location_of, split_key
from .freshness import ReportMark, report_of
from .grouping import FlushGroup, Grouper, GroupStore, SqsFlushQueue
from .ledger import AlertRecord, AlertState, Reason
from .ledger_store import BackfillMark, LedgerStore
from .notify.sns import SnsPublisher
from .policies import REGISTRY
from .policies.unhealthy_node import NAME as UNHEALTHY_NODE
from .rules import ClusterRules, Rules
from .rules_store import LoadedRules, RulesStore
from .settings import EvaluatorSettings, SweepSettings, WorkQueueSettings
from .silences import AdHocSilence, SilenceCache, SilenceStore
from .snapshot import ClusterSnapshot, Node, NodeStatus
from .timeutil import isoformat
from .workload.model import Workload

logger = logging.getLogger(__name__)

#: the provisioning mode whose clusters send Cluster Events (and can list them back)
CONTINUOUS = "Continuous"
#: Cluster Events the sweep reads back per cluster and run, at most (the next run goes on from there)
BACKFILL_LIMIT = 100
#: how far back a cluster's first backfill reads (no mark yet): an event lost before is not news any more
BACKFILL_LOOKBACK = timedelta(hours=1)
#: events younger than this are left to EventBridge, which may still be delivering them
BACKFILL_SETTLE = timedelta(minutes=2)
#: Runtime.at() makes each location's runtime once, whichever of the sweep's threads asks first
_elsewhere_lock = threading.Lock()


@dataclass
class Runtime:
    """The evaluator's dependencies, built once per Lambda container."""

    reader: ClusterReader
    ledger: LedgerStore
    publisher: SnsPublisher
    rules: RulesStore
    region: str | None = None
    sweep_concurrency: int = 8
    #: cluster tags, read only when the rules select clusters by tag (TAGS_MAX_AGE)
    tags: TagCache | None = None
    #: the accounts whose events are believed (EVENT_ACCOUNTS); None: no account/region check (local runs)
    event_accounts: frozenset[str] | None = None
    #: the ad-hoc silences, read once per evaluation at most and cached SILENCES_MAX_AGE seconds
    silences: SilenceCache | None = None
    #: schedules grouped messages (grouping.py); None: no work queue, every message goes at once
    grouper: Grouper | None = None
    #: the training plans the clusters' groups run on (DescribeTrainingPlan), kept a few minutes
    plans: TrainingPlanCache | None = None
    #: the episode archive's bucket (ARCHIVE_BUCKET, archive.py); None: nothing is archived
    archive_bucket: str | None = None
    #: the hub's own location and the fleet it watches (fleet.py); disabled: one account and region
    fleet: FleetSettings = field(default_factory=FleetSettings)
    #: the spoke role this runtime reads its clusters as (at()); None: the process's own credentials
    role_arn: str | None = None
    #: this runtime for each other location of the fleet, made on first use (at())
    _elsewhere: dict[Location, Runtime] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.tags is None:
            self.tags = TagCache(self.reader)
        if self.plans is None:
            self.plans = TrainingPlanCache(self.reader)
        if self.silences is None and isinstance(self.ledger, LedgerStore):  # the silences live in its table
            self.silences = SilenceCache(SilenceStore(self.ledger.table_name, self.ledger.dynamodb))

    def at(self, location: Location | None) -> Runtime:
        """This runtime for the clusters at `location`: the same ledger, topic, rules, silences and grouping,
        with a reader (and its tag and plan caches) on SageMaker in that account and region, as the spoke
        role of another account. Itself at home, or when there is no fleet."""
        home = self.fleet.home
        if location is None or home is None or location == home:
            return self
        with _elsewhere_lock:
            found = self._elsewhere.get(location)
            if found is None:
                partition = aws_clients.session().get_partition_for_region(location.region)  # aws, aws-cn, ...
                role = None if location.account == home.account else self.fleet.role_arn(location.account, partition)
                sagemaker = aws_clients.located_client("sagemaker", location.region, role, self.fleet.external_id)
                reader = ClusterReader(sagemaker, elsewhere=location)
                max_age = self.tags.max_age if self.tags is not None else DEFAULT_TAGS_MAX_AGE
                found = replace(self, reader=reader, region=location.region, tags=TagCache(reader, max_age),
                                plans=TrainingPlanCache(reader), role_arn=role, _elsewhere={})
                self._elsewhere[location] = found
        return found

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions whose events are believed: a hub's fleet regions, else the function's own."""
        return self.fleet.regions if self.fleet.enabled else ((self.region,) if self.region else ())

    def for_cluster(self, key: str) -> Runtime:
        """This runtime for the cluster of a fleet key (fleet.py)."""
        return self.at(split_key(key)[1])

    def locations(self) -> list[Location | None]:
        """Every location the sweep covers: home (None without a fleet), then each other account and region."""
        home = self.fleet.home
        if home is None:
            return [None]
        return [home, *(Location(account, region) for account in self.fleet.accounts for region in self.fleet.regions
                        if Location(account, region) != home)]

    def quick_client(self, service: str) -> Any:
        """A client of `service` where this runtime's clusters live, with short timeouts (the workload reads)."""
        return aws_clients.quick_client(service, self.region, self.role_arn,
                                        self.fleet.external_id if self.role_arn else None)

    def active_silences(self, now: datetime) -> tuple[AdHocSilence, ...]:
        return self.silences.active(now) if self.silences is not None else ()

    def archive(self) -> ArchiveWriter | None:
        """The episode archive's writer, or None (off). Its S3 client is made when first used (cold starts)."""
        return ArchiveWriter(aws_clients.client("s3"), self.archive_bucket) if self.archive_bucket else None

    @classmethod
    def from_env(cls, settings: EvaluatorSettings | None = None) -> Runtime:
        """The runtime a handler builds from its settings (default: the sweep's, from os.environ)."""
        if settings is None:
            settings = SweepSettings.from_env()
        reader = ClusterReader(aws_clients.client("sagemaker"))
        ledger = LedgerStore(settings.table_name, aws_clients.client("dynamodb"))
        return cls(
            reader=reader,
            ledger=ledger,
            publisher=SnsPublisher(settings.topic_arn, aws_clients.client("sns")),
            rules=RulesStore(settings.rules_path, settings.rules_max_age, required=settings.rules_required),
            region=settings.region,
            sweep_concurrency=(settings.sweep_concurrency if isinstance(settings, SweepSettings)
                               else SWEEP_CONCURRENCY.default_value),
            tags=TagCache(reader, settings.tags_max_age),
            event_accounts=event_accounts(settings.event_accounts),
            silences=SilenceCache(SilenceStore(ledger.table_name, ledger.dynamodb), settings.silences_max_age),
            grouper=_grouper(ledger),
            archive_bucket=settings.archive_bucket,
            fleet=FleetSettings.from_env(),
        )


def where(runtime: Runtime, cluster: str, arn: str | None) -> Location | None:
    """Where a cluster lives, for the rules' account and region matchers: its key's location elsewhere in a
    fleet, else the hub's own, else what its ARN says (one account: no fleet settings)."""
    return location_of(cluster, runtime.fleet.home) or Location.of_arn(arn)


def _grouper(ledger: LedgerStore) -> Grouper | None:
    """Grouping's scheduler when the function has the work queue (WORK_QUEUE_URL), else None (every
    message goes at once). Its SQS client is made when a flush is first scheduled (cold starts)."""
    queue_url = WorkQueueSettings.from_env().work_queue_url
    if not queue_url:
        return None
    return Grouper(GroupStore(ledger.table_name, ledger.dynamodb), SqsFlushQueue(queue_url))


@dataclass
class EventResult:
    """What one event led to (for metrics, logs and the demo's timeline)."""

    detail_type: str
    cluster: str | None = None
    ignored: str | None = None
    invalid: str | None = None
    findings: int = 0
    #: (policy, severity) -> count, for the findings metric
    finding_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: list[Outcome] = field(default_factory=list)
    rules_error: str | None = None
    #: the event's report was older than one already applied: why (its text changed no alert)
    stale: str | None = None


def new_token(request_id: str | None = None) -> str:
    """Identifies one invocation's claims in the ledger."""
    return f"{request_id or 'local'}:{uuid.uuid4().hex[:8]}"


def check_rules(runtime: Runtime, now: datetime, token: str, *,
                always: bool = False) -> tuple[LoadedRules, Outcome | None]:
    """Load the rules; while they are invalid keep one rules-invalid alert firing. `always`
    (the sweep) also lets the alert resolve once the rules are valid again."""
    loaded = runtime.rules.load()
    if not (loaded.error or always):
        return loaded, None
    evaluation, scope = rules_evaluation(loaded.error, loaded.source)
    rules = loaded.rules.resolve(SYSTEM_CLUSTER, location=runtime.fleet.home)
    outcome = pipeline.reconcile(evaluation, scope, rules, now, runtime.ledger, runtime.publisher, token=token,
                                 region=runtime.region)
    return loaded, outcome


def evaluate_cluster(
    runtime: Runtime, cluster: str, event: HyperPodEvent | None, all_rules: Rules, now: datetime, token: str, *,
    list_nodes: bool = False, silences: tuple[AdHocSilence, ...] = (), summary: ClusterSummary | None = None,
    backfilled: list[Outcome] | None = None,
) -> tuple[Evaluation, Outcome]:
    """One cluster, from what the API says now (events are hints) to what people are told.
    `silences`: the active ad-hoc silences, read once by the caller (the event's or the sweep's).
    `list_nodes` (the sweep): every node listed, the sweep's feature reads, and a Continuous cluster's
    lost Cluster Events evaluated first (their outcomes appended to `backfilled`, if given).
    `summary`: the cluster's ListClusters summary when the caller listed it (its ImageVersionStatus).
    `cluster` is the cluster's fleet key: it is read in its own account and region (Runtime.at)."""
    runtime = runtime.for_cluster(cluster)
    snapshot = runtime.reader.describe(cluster)                                          # read the cluster
    if snapshot is None:
        return _gone(runtime, cluster, all_rules, now, token, silences)
    snapshot = read_features(runtime, snapshot, now, sweep=list_nodes, summary=summary)  # its HyperPod features
    if list_nodes and snapshot.node_provisioning_mode == CONTINUOUS:                     # what EventBridge lost
        outcomes = backfill_events(runtime, snapshot, all_rules, now, token, silences)
        if backfilled is not None:
            backfilled.extend(outcomes)
    return _evaluate(runtime, snapshot, event, all_rules, now, token, list_nodes=list_nodes, silences=silences)


def _evaluate(
    runtime: Runtime, snapshot: ClusterSnapshot, event: HyperPodEvent | None, all_rules: Rules, now: datetime,
    token: str, *, list_nodes: bool, silences: tuple[AdHocSilence, ...],
) -> tuple[Evaluation, Outcome]:
    """evaluate_cluster once the cluster (and its features) are read."""
    cluster = snapshot.name
    tags = cluster_tags(runtime, snapshot, all_rules, silences)
    rules = all_rules.resolve(cluster, tags, silences, where(runtime, cluster, snapshot.arn))  # its rules, once
    snapshot, scope = _read_nodes(runtime, snapshot, event, rules, list_nodes)           # its nodes
    evaluation = evaluate(snapshot, event, rules, now)                                   # policies (pure)
    if scope.gone_nodes and not scope.all_nodes:
        # the event is about a node that was already replaced: its problem is over
        evaluation = Evaluation(cluster, [f for f in evaluation.findings if f.node not in scope.gone_nodes],
                                evaluation.resolved)
    grouped = runtime.grouper is not None and rules.grouping.enabled
    committed = pipeline.decide_and_commit(runtime.ledger, evaluation, scope, rules, now, token,
                                           report_of(event, now), defer=grouped)        # the ledger decides
    flush_at = _schedule_flush(runtime, committed, rules, now, snapshot.arn) if grouped else None  # grouping
    reports = pipeline.remediate(_remediator(runtime, snapshot, rules, now, token), committed)  # opt-in actions
    if grouped:  # an action's news goes now, with the page it is about
        committed = pipeline.send_now(runtime.ledger, committed, reports, now, token)
    notification = pipeline.compose(committed, reports, now, region=runtime.region, cluster_arn=snapshot.arn,
                                    tags=rules.tags, rules=rules,                        # one message, with
                                    workloads=_workloads(runtime, rules, lambda: snapshot))  # the nodes' work
    outcome = pipeline.deliver(runtime.publisher, runtime.ledger, committed, notification, token, now)
    repairs = archive_repairs(runtime, snapshot, event)                                  # the episode archive
    pipeline.archive(_archiving(runtime, snapshot.arn, rules.tags, repairs), committed, scope, evaluation, now)
    if list_nodes:  # the sweep's evaluation (inline or a worker's), not an event's: once per cluster and interval
        _report_cluster_health(runtime, snapshot, committed, now)
    return evaluation, replace(outcome, flush_at=flush_at)


def _schedule_flush(runtime: Runtime, committed: pipeline.Committed, rules: ClusterRules, now: datetime,
                    cluster_arn: str | None) -> datetime | None:
    """Grouping: when notifications were left owed, make sure the cluster's flush is due (grouping.py)."""
    if runtime.grouper is None or not (committed.deferred or committed.owes):
        return None
    return runtime.grouper.ensure_flush(committed.cluster, rules.grouping, now, critical=committed.critical,
                                        cluster_arn=cluster_arn, tags=dict(rules.tags) if rules.tags else None)


def flush_group(runtime: Runtime, flush: FlushGroup, now: datetime, token: str) -> Outcome | None:
    """A flush message of the work queue: the cluster's owed notifications, as one message. None
    when it is not this message's turn (superseded by a sooner flush, or early: sent again)."""
    runtime = runtime.for_cluster(flush.cluster)  # its messages name the cluster's region
    if runtime.grouper is None:
        raise RuntimeError("a flush message came, but no work queue is configured (WORK_QUEUE_URL)")
    state = runtime.grouper.store.get(flush.cluster)
    if state.flush_id not in (None, flush.flush_id):
        logger.info("flush %s of %s superseded by %s", flush.flush_id, flush.cluster, state.flush_id)
        return None
    if state.flush_id == flush.flush_id and runtime.grouper.requeue(flush, state, now):
        return None
    if not runtime.grouper.store.start(flush.cluster, flush.flush_id, now):
        logger.info("flush %s of %s superseded while starting", flush.flush_id, flush.cluster)
        return None
    # the rules as they are now: silences (a page silenced since it was decided is not sent), runbooks, routes
    rules = runtime.rules.load().rules.resolve(flush.cluster, state.tags, runtime.active_silences(now),
                                               where(runtime, flush.cluster, state.cluster_arn))
    committed = pipeline.flush_owed(runtime.ledger, flush.cluster, now, token, rules=rules)

    def describe() -> ClusterSnapshot | None:  # for the workload read only, with its short timeouts
        return ClusterReader(runtime.quick_client("sagemaker"), runtime.reader.elsewhere).describe(flush.cluster)

    notification = pipeline.compose(committed, {}, now, region=runtime.region, cluster_arn=state.cluster_arn,
                                    tags=state.tags, rules=rules,
                                    workloads=_workloads(runtime, rules, describe))
    outcome = pipeline.deliver(runtime.publisher, runtime.ledger, committed, notification, token, now)
    if notification is not None and any(item.reason is not Reason.RESOLVED
                                        and item.finding.severity is Severity.CRITICAL for item in notification.items):
        runtime.grouper.store.paged(flush.cluster, now)
    return outcome


def _workloads(runtime: Runtime, rules: ClusterRules,
               snapshot: Callable[[], ClusterSnapshot | None]) -> pipeline.Workloads | None:
    """The blast-radius read of the message's firing node items (workload/reader.py), when the cluster's rules
    turn `workload` on. `snapshot`: the cluster as read (a grouped flush reads it only if it has such items)."""
    settings = rules.workload
    if settings is None:
        return None

    def read(notified: Sequence[tuple[Reason, AlertRecord]]) -> Mapping[str, Workload]:
        nodes = [record.node for reason, record in notified if record.node and reason is not Reason.RESOLVED]
        if not nodes:
            return {}
        # imported here: only clusters with `workload` on pay for the Kubernetes and SSM readers (ssl, http.client)
        from .workload.reader import Reads, blast_radius

        try:
            cluster = snapshot()
        except Exception:  # the message goes out without the workload
            logger.warning("workload: cannot describe %s", rules.cluster, exc_info=True)
            cluster = None
        if cluster is None:
            return {node: Workload(node, unknown="the cluster could not be described") for node in nodes}
        return blast_radius(runtime.quick_client, cluster, nodes,
                            Reads(settings.timeout.total_seconds(), settings.controller_group))
    return read


def _gone(runtime: Runtime, cluster: str, rules: Rules, now: datetime, token: str,
          silences: tuple[AdHocSilence, ...]) -> tuple[Evaluation, Outcome]:
    """DescribeCluster says the cluster does not exist: every alert of it is over."""
    gone = Evaluation(cluster, [])
    scope = Scope(cluster, frozenset(REGISTRY), cluster_gone=True)
    resolved = rules.resolve(cluster, adhoc=silences, location=where(runtime, cluster, None))
    return gone, pipeline.reconcile(gone, scope, resolved, now, runtime.ledger, runtime.publisher, token=token,
                                    region=runtime.region, archiving=_archiving(runtime, None, None))


def cluster_tags(runtime: Runtime, snapshot: ClusterSnapshot, rules: Rules,
                 silences: tuple[AdHocSilence, ...] = ()) -> dict[str, str] | None:
    """The cluster's tags when the rules select clusters by tag, or an active ad-hoc silence of this
    cluster matches tags (None otherwise: not read). A ListTags failure does not stop the
    evaluation: the cluster is evaluated as untagged (a tag matcher does not match)."""
    location = where(runtime, snapshot.name, snapshot.arn)
    by_silence = any(s.tags and s.applies_to_place(snapshot.name, location) for s in silences)
    if not (rules.selects_by_tags or by_silence) or not snapshot.arn or runtime.tags is None:
        return None
    try:
        return runtime.tags.get(snapshot.arn)
    except TagsUnavailable as exc:
        logger.warning("cannot read the tags of cluster %s; evaluating it as untagged, so overrides that "
                       "select by tag do not apply to it: %s", snapshot.name, exc,
                       extra={"cluster": snapshot.name, "cluster_arn": snapshot.arn})
        _count_tags_unavailable()
        return None


def _count_tags_unavailable() -> None:
    """EMF metric `TagsUnavailable`, so a missing sagemaker:ListTags grant shows on a dashboard."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    with single_metric(name=Metric.TAGS_UNAVAILABLE, unit=MetricUnit.Count, value=1, namespace=namespace):
        pass


def _remediator(runtime: Runtime, snapshot: ClusterSnapshot, rules: ClusterRules, now: datetime,
                token: str) -> pipeline.Remediate | None:
    """The remediation stage, when any policy of this cluster has it enabled."""
    if not rules.remediates:
        return None
    from .remediation.executor import Remediator
    from .remediation.store import RemediationStore

    store = RemediationStore(runtime.ledger.table_name, runtime.ledger.dynamodb)
    remediator = Remediator(runtime.reader.sagemaker, store, actor=f"hyperpod-guard:{token}")
    return lambda firing: remediator.run(snapshot, firing, rules, now)


def _read_nodes(runtime: Runtime, snapshot: ClusterSnapshot, event: HyperPodEvent | None, rules: ClusterRules,
                list_all: bool) -> tuple[ClusterSnapshot, Scope]:
    """The nodes to evaluate (all of them for the sweep, the event's node for a Node Health
    event), in the snapshot, and what the evaluation looked at (see Scope)."""
    nodes: list[Node] = []
    gone: frozenset[str] = frozenset()
    if list_all:  # every node listed: an alert's node that is not among them is gone
        nodes = runtime.reader.list_nodes(snapshot.name) or []
    elif isinstance(event, NodeHealthEvent) and event.detail.instance_id:
        node = runtime.reader.describe_node(snapshot.name, event.detail.instance_id)
        nodes, gone = ([node], gone) if node else ([], frozenset({event.detail.instance_id}))
    read = snapshot.model_copy(update={"nodes": tuple(nodes)})
    enabled = rules.enabled(REGISTRY)
    scope = Scope(snapshot.name, _read_policies(enabled, read),
                  nodes=frozenset(n.instance_id for n in nodes), all_nodes=list_all, gone_nodes=gone,
                  launched={n.instance_id: n.launch_time for n in nodes if n.launch_time}, snapshot=read,
                  unjudged_cluster=frozenset(name for name in enabled
                                             if any(getattr(read, f) is None for f in REGISTRY[name].cluster_reads)))
    return read, scope


def _read_policies(policies: frozenset[str], snapshot: ClusterSnapshot) -> frozenset[str]:
    """The policies whose inputs this evaluation read. A policy that declares `reads` (snapshot fields such
    as "extensions") says nothing while one of them is None (not read: the sweep reads extensions, an
    event does not), so its alerts are carried, not resolved by their absence."""
    return frozenset(name for name in policies
                     if all(getattr(snapshot, f) is not None for f in REGISTRY[name].reads))


# -- the HyperPod features: what is read when -----------------------------------------------------------


def read_features(runtime: Runtime, snapshot: ClusterSnapshot, now: datetime, *, sweep: bool,
                  summary: ClusterSummary | None = None) -> ClusterSnapshot:
    """The snapshot with the features its cluster has, read only when they can matter:

    - `ImageVersionStatus`: from the ListClusters summary the caller already has (the sweep): no call;
    - `Operations` (ListClusterOperations; DescribeClusterOperation for those InProgress): in the sweep,
      and for an event when a group has ActiveOperations (a Scaling runs: the capacity findings depend on
      it). An event about a cluster with nothing running pays no call; the sweep sees DeepHealthChecks,
      which ActiveOperations does not count, and operations that hang, within one sweep interval;
    - `Extensions` (ListClusterExtensions; DescribeClusterExtension for those not Active): in the sweep
      only. No DescribeCluster field says a cluster has extensions, so an event would pay a call for
      every cluster; their health changes on the sweep's scale, not an event's;
    - `TrainingPlans` (DescribeTrainingPlan, cached per container): for each distinct `TrainingPlanArn`
      of the groups, in every evaluation; none for a cluster without plans.
    A read that cannot be made leaves its field None (ReadUnavailable: logged, counted)."""
    update: dict[str, Any] = {}
    if summary is not None and summary.image_version_status is not None:
        update["image_version_status"] = summary.image_version_status
    reader = runtime.reader
    if sweep or any(group.active_operations for group in snapshot.all_groups):
        update["operations"] = _optional(snapshot, lambda: reader.operations(snapshot.name, now))
    if sweep and snapshot.arn:
        update["extensions"] = _optional(snapshot, lambda: reader.extensions(snapshot.arn or ""))
    arns = list(dict.fromkeys(g.training_plan_arn for g in snapshot.all_groups if g.training_plan_arn))
    if arns:
        plans = runtime.plans or TrainingPlanCache(reader)
        read = _optional(snapshot, lambda: tuple(p for p in map(plans.get, arns) if p is not None))
        update["training_plans"] = read
    return snapshot.model_copy(update=update) if update else snapshot


def _optional(snapshot: ClusterSnapshot, read: Callable[[], Any]) -> Any:
    """`read()`, or None (logged, counted) when it is not available."""
    try:
        return read()
    except ReadUnavailable as exc:
        logger.warning("cannot read %s of cluster %s; evaluating without it (its policies say nothing): %s",
                       exc.operation, snapshot.name, exc,
                       extra={"cluster": snapshot.name, "cluster_arn": snapshot.arn, "operation": exc.operation})
        _count_reads_unavailable()
        return None


def _count_reads_unavailable() -> None:
    """EMF metric `HyperPodReadsUnavailable` (as TagsUnavailable): a missing grant shows on a dashboard."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    with single_metric(name=Metric.READS_UNAVAILABLE, unit=MetricUnit.Count, value=1, namespace=namespace):
        pass


def _count_backfilled(events: int) -> None:
    """EMF metric `BackfilledClusterEvents`: Cluster Events EventBridge lost, evaluated by the sweep."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    with single_metric(name=Metric.BACKFILLED_EVENTS, unit=MetricUnit.Count, value=events, namespace=namespace):
        pass


# -- the sweep's per-cluster health: gauges for the dashboard's Fleet health row ---------------------------


@dataclass(frozen=True)
class ClusterHealth:
    """What the sweep's evaluation of one cluster reports (constants.Metric.OPEN_ALERTS and the next three)."""

    cluster: str
    #: open alerts (pending or firing), by severity
    open_alerts: Counter[Severity]
    unhealthy_nodes: int
    capacity_shortfall: int
    #: since the newest event report applied to the cluster (its newest report mark); None: the ledger holds none
    minutes_since_last_event: float | None


def cluster_health(snapshot: ClusterSnapshot, records: Iterable[AlertRecord], marks: Iterable[ReportMark],
                   now: datetime) -> ClusterHealth:
    """A cluster's health from its snapshot (every node listed), its alerts as just decided, and its report marks."""
    unresolved = [r for r in records if r.state is not AlertState.RESOLVED]
    unhealthy = {n.instance_id for n in snapshot.nodes if n.status == NodeStatus.FAILURE}
    unhealthy |= {r.node for r in unresolved if r.policy == UNHEALTHY_NODE and r.node}  # reported by its agent
    shortfall = sum(max(0, g.target_count - g.current_count) for g in snapshot.all_groups
                    if g.target_count is not None and g.current_count is not None)
    newest = max((mark.time for mark in marks), default=None)
    # a report stamped ahead of our clock counts as just now
    minutes = max(0.0, (now - newest).total_seconds() / 60) if newest is not None else None
    return ClusterHealth(snapshot.name, Counter(r.severity for r in unresolved), len(unhealthy), shortfall, minutes)


def _report_cluster_health(runtime: Runtime, snapshot: ClusterSnapshot, committed: pipeline.Committed,
                           now: datetime) -> None:
    """The sweep's gauges for one cluster. Its alerts are the decisions just committed (the sweep read every
    record of the cluster); its report marks cost one Query. Marks that cannot be read leave
    MinutesSinceLastEvent out this time (logged): a metric never fails an evaluation."""
    try:
        marks: Iterable[ReportMark] = runtime.ledger.report_marks(snapshot.name).values()
    except ClientError as exc:
        logger.warning("cannot read the report marks of %s; MinutesSinceLastEvent left out: %s", snapshot.name, exc,
                       extra={"cluster": snapshot.name})
        marks = ()
    _emit_cluster_health(cluster_health(snapshot, [d.record for d in committed.decisions], marks, now))


def _emit_cluster_health(health: ClusterHealth) -> None:
    """EMF, one document per metric (single_metric): the `Cluster` and `Severity` dimensions stay on these
    gauges and never reach the function's other metrics. `service` is the sweep's whoever evaluates (the
    inline sweep or a worker), as its other metrics. Series for N clusters: OpenAlerts, UnhealthyNodes and
    CapacityShortfall per cluster (3N), MinutesSinceLastEvent per cluster with an event in the marks'
    retention (<= N), OpenAlerts by Severity only for the severities a cluster has open alerts of (<= 3N):
    at most 7N, about 4N for a healthy fleet. Per cluster and sweep: 4-7 EMF lines."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    namespace = METRICS_NAMESPACE.read()
    cluster = {Dimension.SERVICE.value: Service.SWEEP.value, Dimension.CLUSTER.value: health.cluster}
    with single_metric(name=Metric.OPEN_ALERTS, unit=MetricUnit.Count, value=health.open_alerts.total(),
                       namespace=namespace, default_dimensions=cluster):
        pass
    for severity, alerts in sorted(health.open_alerts.items()):
        with single_metric(name=Metric.OPEN_ALERTS, unit=MetricUnit.Count, value=alerts, namespace=namespace,
                           default_dimensions={**cluster, Dimension.SEVERITY.value: severity.value}):
            pass
    with single_metric(name=Metric.UNHEALTHY_NODES, unit=MetricUnit.Count, value=health.unhealthy_nodes,
                       namespace=namespace, default_dimensions=cluster):
        pass
    with single_metric(name=Metric.CAPACITY_SHORTFALL, unit=MetricUnit.Count, value=health.capacity_shortfall,
                       namespace=namespace, default_dimensions=cluster):
        pass
    if health.minutes_since_last_event is not None:
        with single_metric(name=Metric.MINUTES_SINCE_LAST_EVENT, unit=MetricUnit.NoUnit,
                           value=health.minutes_since_last_event, namespace=namespace, default_dimensions=cluster):
            pass


# -- backfill: the Cluster Events EventBridge did not deliver --------------------------------------------


def backfill_events(runtime: Runtime, snapshot: ClusterSnapshot, rules: Rules, now: datetime, token: str,
                    silences: tuple[AdHocSilence, ...] = ()) -> list[Outcome]:
    """Evaluate the Cluster Events of a Continuous-provisioning cluster that EventBridge did not deliver,
    as if they had come (a lost event heals like lost state does).

    ListClusterEvents from the cluster's backfill mark (ledger_store.BackfillMark; the first time,
    BACKFILL_LOOKBACK ago) to BACKFILL_SETTLE ago, oldest first, at most BACKFILL_LIMIT a run. An event
    was delivered when one of the cluster's report marks holds its EventTime, or its EventId (a delivered
    Cluster Event leaves its EventTime in the mark of its scope, freshness.py; a backfilled one its EventId
    too): skipped. The others are described (DescribeClusterEvent: EventMetadata), built as the envelope
    EventBridge would have sent, and evaluated against the snapshot just read. The mark then moves to the
    last event listed. A read that cannot be made skips the backfill this run (logged, counted)."""
    cursor = runtime.ledger.backfill_mark(snapshot.name)
    after = cursor.after if cursor else now - BACKFILL_LOOKBACK
    before = now - BACKFILL_SETTLE
    if after >= before:
        return []
    listed = _optional(snapshot, lambda: runtime.reader.cluster_events(snapshot.name, after, before, BACKFILL_LIMIT))
    # EventTimeAfter goes on the wire in whole seconds: what the last run read up to may come again
    listed = [e for e in listed or () if cursor is None or e["EventTime"] > cursor.after]
    if not listed:
        return []
    marks = runtime.ledger.report_marks(snapshot.name)
    outcomes: list[Outcome] = []
    for summary in missed(listed, marks.values()):
        event_id = str(summary["EventId"])
        details = _optional(snapshot, lambda: runtime.reader.cluster_event(snapshot.name, event_id))  # noqa: B023
        if details is None:
            continue  # not readable now (or gone): the mark still moves on, as for an event lost for good
        event = parse_event(cluster_event_envelope(details))
        if not isinstance(event, ClusterEvent):
            continue
        logger.info("backfill: evaluating Cluster Event %s of %s that EventBridge did not deliver",
                    summary["EventId"], snapshot.name, extra={"cluster": snapshot.name, "event_id": summary["EventId"]})
        _, outcome = _evaluate(runtime, snapshot, event, rules, now, token, list_nodes=False, silences=silences)
        outcomes.append(outcome)
    if outcomes:
        _count_backfilled(len(outcomes))
    runtime.ledger.save_backfill_mark(BackfillMark(snapshot.name, max(e["EventTime"] for e in listed)), now)
    return outcomes


def missed(listed: list[dict[str, Any]], marks: Any) -> list[dict[str, Any]]:
    """The listed Cluster Event summaries no report mark accounts for (see backfill_events), in order."""
    times = {mark.time for mark in marks if isinstance(mark, ReportMark)}
    ids = {mark.event_id for mark in marks if isinstance(mark, ReportMark) and mark.event_id}
    return [e for e in listed if e["EventId"] not in ids and e["EventTime"] not in times]


def cluster_event_envelope(details: dict[str, Any]) -> dict[str, Any]:
    """A DescribeClusterEvent `EventDetails` as the EventBridge event that carries it (events.py parses
    it); the envelope's `id` is the EventId, so its report mark names the event."""
    arn = str(details.get("ClusterArn") or "")
    parts = arn.split(":")
    detail = {k: (isoformat(v) if isinstance(v, datetime) else v) for k, v in details.items()}
    return {
        "version": "0", "id": details["EventId"], "detail-type": CLUSTER_EVENT, "source": SOURCE,
        "account": parts[4] if len(parts) > 5 else "", "region": parts[3] if len(parts) > 5 else "",
        "time": detail.get("EventTime"), "resources": [arn] if arn else [], "detail": {"EventDetails": detail},
    }


def handle_event(raw: Any, runtime: Runtime, now: datetime, token: str) -> EventResult:
    """One EventBridge event. Bad events come back as `invalid` (count and drop); AWS errors raise."""
    detail_type = raw.get("detail-type", "?") if isinstance(raw, dict) else "?"
    try:
        event = parse_event(raw)
    except InvalidEventError as exc:
        return EventResult(str(detail_type), invalid=str(exc))
    if isinstance(event, IgnoredEvent):
        return EventResult(event.detail_type, ignored=event.reason)
    # before the rules or the cluster are read: a cluster of an account or region not watched is not ours
    foreign = foreign_origin(event.account, event.region, accounts=runtime.event_accounts, regions=runtime.regions)
    if foreign:
        return EventResult(event.detail_type, cluster=event.cluster_name, ignored=foreign)
    # the cluster's key: its name at home, qualified by the event's account and region elsewhere in a fleet
    cluster = cluster_key(event.cluster_name, Location(event.account, event.region), runtime.fleet.home)
    loaded, rules_outcome = check_rules(runtime, now, token)
    result = EventResult(event.detail_type, cluster=cluster, rules_error=loaded.error)
    if rules_outcome:
        result.outcomes.append(rules_outcome)
    silences = runtime.active_silences(now)
    try:
        evaluation, outcome = evaluate_cluster(runtime, cluster, event, loaded.rules, now, token, silences=silences)
    except InvalidSnapshotError as exc:  # DescribeCluster said something we cannot read
        result.invalid = str(exc)
        return result
    result.findings = len(evaluation.findings)
    result.finding_counts.update((f.policy, f.severity.value) for f in evaluation.findings)
    result.outcomes.append(outcome)
    result.stale = outcome.stale
    return result


@dataclass
class SweepResult:
    #: clusters ListClusters returned
    clusters: int = 0
    #: remembered with open alerts but not listed (describe says they are gone, so their alerts resolve):
    #: inline, those evaluated; fanned out, those handed over
    gone: int = 0
    #: clusters evaluated here (inline), without error
    evaluated: int = 0
    #: clusters handed to the workers (fanned out): one message each
    enqueued: int = 0
    findings: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rules_error: str | None = None
    #: Cluster Events EventBridge did not deliver, evaluated by the inline sweep (their outcomes are in `outcomes`)
    backfilled: int = 0
    #: resolved episodes the archive did not hold yet (a put that failed), written by this run
    archived: int = 0


def sweep(runtime: Runtime, now: datetime, token: str, *,
          dispatch: Callable[[list[ClusterSummary]], None] | None = None) -> SweepResult:
    """Evaluate every cluster: advances pending alerts past their grace, heals lost events, and
    resolves the alerts of clusters that are gone. The rules check (the rules-invalid alert fires,
    and resolves once they are valid) is the sweep's own, once per run.

    `dispatch` hands the clusters to workers instead (deployed: one SQS message each, evaluated by
    handlers/worker.py, so that 1,000 clusters take Lambdas in parallel, not one Lambda's timeout);
    it raises if it could not. None: evaluated here, `sweep_concurrency` at a time (the demo, the
    tests, local runs); one cluster's failure does not stop the others, and the handler raises at the
    end if any failed.

    Either way, once per run, the episodes of resolved alerts that the archive does not hold yet (their put
    failed) are written (archive_unarchived)."""
    loaded, rules_outcome = check_rules(runtime, now, token, always=True)
    result = SweepResult(rules_error=loaded.error)
    if rules_outcome:
        result.outcomes.append(rules_outcome)
    summaries, unlisted = list_fleet(runtime)
    result.errors.update(unlisted)
    listed = list(summaries)
    # remembered: a cluster of a location that could not be listed is not gone, only unread (an error above)
    remembered = {key for key in runtime.ledger.open_clusters() - {SYSTEM_CLUSTER}
                  if str(location_of(key, runtime.fleet.home)) not in unlisted}
    clusters = sorted(set(listed) | remembered)  # remembered but unlisted: describe says gone
    result.clusters = len(listed)
    if dispatch is not None:  # each with its listing (a remembered cluster no longer listed: its name alone)
        dispatch([summaries.get(cluster) or ClusterSummary(cluster) for cluster in clusters])
        result.enqueued = len(clusters)
        result.gone = len(remembered - set(listed))
        result.archived = archive_unarchived(runtime, now, summaries)
        return result
    silences = runtime.active_silences(now)  # once for every cluster

    def one(cluster: str) -> tuple[str, Evaluation | None, list[Outcome], str | None]:
        backfilled: list[Outcome] = []
        try:
            evaluation, outcome = evaluate_cluster(runtime, cluster, None, loaded.rules, now, token, list_nodes=True,
                                                   silences=silences, summary=summaries.get(cluster),
                                                   backfilled=backfilled)
            return cluster, evaluation, [*backfilled, outcome], None
        except Exception as exc:
            logger.exception("sweep: evaluating %s failed", cluster)
            return cluster, None, [], f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, runtime.sweep_concurrency)) as pool:
        for cluster, evaluation, outcomes, error in pool.map(one, clusters):
            if error:
                result.errors[cluster] = error
                continue
            assert evaluation is not None and outcomes
            result.evaluated += 1
            result.findings += len(evaluation.findings)
            result.outcomes.extend(outcomes)
            result.backfilled += len(outcomes) - 1
            if cluster not in listed:
                result.gone += 1
    result.archived = archive_unarchived(runtime, now, summaries)
    return result


def list_fleet(runtime: Runtime) -> tuple[dict[str, ClusterSummary], dict[str, str]]:
    """Every cluster the sweep covers, by fleet key (ListClusters in each account and region of the fleet, in
    parallel), and the locations that could not be listed, with why (a spoke role missing or refusing, a
    region without HyperPod): one spoke's failure does not stop the others. Without a fleet, one listing,
    whose failure raises (the sweep fails: nothing was read)."""
    locations = runtime.locations()
    if len(locations) == 1:
        return {s.name: s for s in runtime.at(locations[0]).reader.list_cluster_summaries()}, {}

    def listing(location: Location | None) -> tuple[str, list[ClusterSummary], str | None]:
        try:
            return str(location), runtime.at(location).reader.list_cluster_summaries(), None
        except Exception as exc:
            logger.exception("sweep: cannot list the clusters of %s; its clusters are not evaluated this run",
                             location, extra={"location": str(location)})
            return str(location), [], f"{type(exc).__name__}: {exc}"

    summaries: dict[str, ClusterSummary] = {}
    unlisted: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(runtime.sweep_concurrency, len(locations)))) as pool:
        for where, found, error in pool.map(listing, locations):
            if error:
                unlisted[where] = error
            summaries.update((summary.name, summary) for summary in found)
    return summaries, unlisted


# -- the episode archive (archive.py) ---------------------------------------------------------------------

#: resolved episodes the sweep writes per run at most (the next run goes on from there): bounds a run after S3
#: was down a long time, or the first run once the archive is on (it finds RESOLVED_RETENTION of alerts)
ARCHIVE_SWEEP_LIMIT = 200


def _archiving(runtime: Runtime, cluster_arn: str | None, tags: Mapping[str, str] | None,
               repairs: tuple[RepairFact, ...] = ()) -> pipeline.Archiving | None:
    """The pipeline's archive stage for one cluster, or None (the archive is off)."""
    writer = runtime.archive()
    if writer is None:
        return None
    return pipeline.Archiving(writer, runtime.ledger, account=account_of(cluster_arn), region=runtime.region,
                              tags=tags, repairs=repairs)


def archive_repairs(runtime: Runtime, snapshot: ClusterSnapshot, event: HyperPodEvent | None) -> tuple[RepairFact, ...]:
    """A Cluster Event of HyperPod rebooting or replacing a node (cluster_events.REPAIRS) as a repair fact in the
    archive, keyed by its EventId (a redelivery writes the same object). Returned for the episodes this
    evaluation archives: one of that node resolving now was HyperPod's repair. A failed put is logged and
    counted, not raised (a fact is not retried)."""
    writer = runtime.archive()
    if writer is None or not isinstance(event, ClusterEvent):
        return ()
    classified = classify(event)
    repair = classified.repair if classified else None
    info = event.info
    event_id, at = info.event_id or event.id, info.event_time or event.time
    if classified is None or repair is None or not event_id or at is None:
        return ()
    fact = RepairFact(cluster=snapshot.name, account=account_of(snapshot.arn or info.cluster_arn),
                      region=runtime.region or event.region or None, event_id=event_id, at=at,
                      instance_group=classified.instance_group, node=classified.instance_id, kind=repair[0],
                      phase=repair[1], description=classified.description)
    try:
        writer.put_repair(fact)
    except Exception:
        logger.exception("archive: the repair fact of Cluster Event %s of %s was not written", event_id,
                         snapshot.name, extra={"cluster": snapshot.name, "event_id": event_id})
        pipeline.count_archive_failed()
    return (fact,)


def archive_unarchived(runtime: Runtime, now: datetime, listed: Mapping[str, ClusterSummary]) -> int:
    """The sweep's retry of the archive, once per run: the resolved alerts that fired and have no `archived_at`
    (LedgerStore.unarchived_alerts), at most ARCHIVE_SWEEP_LIMIT, each written unless S3 holds its episode
    already (the evaluation that wrote it knew its tags; its mark was lost to a later write of the alert), then
    marked. How each cleared is what its evaluation noted when the put failed; without a note (written over
    since), an expiry still shows in the alert itself (its last report EVENT_FINDING_TTL before it resolved).
    Its account is its cluster's in this run's listing (`listed`). Never raises: a failure is logged and
    counted (`ArchiveFailed`); the next run tries again."""
    writer = runtime.archive()
    if writer is None:
        return 0
    try:
        pending = runtime.ledger.unarchived_alerts(ARCHIVE_SWEEP_LIMIT)
    except Exception:
        logger.exception("sweep: cannot read the resolved alerts the archive does not hold yet")
        pipeline.count_archive_failed()
        return 0
    archived = failed = 0
    for item in pending:
        record = item.record
        if record.cluster == SYSTEM_CLUSTER or record.resolved_at is None:
            continue
        summary = listed.get(record.cluster)
        where = split_key(record.cluster)[1]  # a cluster elsewhere in the fleet: its key says where
        try:
            actions = audited_actions(runtime.ledger.dynamodb, runtime.ledger.table_name, record, record.resolved_at)
            episode = Episode.from_record(
                record, now=now, account=where.account if where else account_of(summary.arn if summary else None),
                region=where.region if where else runtime.region,
                actions=actions, cleared=_noted(item.cleared) or _expired(record),
                resolution=item.resolution or clear_words(record.reason))
            writer.put_episode(episode, only_new=True)
            runtime.ledger.mark_archived(record, now)
        except Exception:
            logger.exception("sweep: the episode of %s/%s was not archived; the next run tries again",
                             record.cluster, record.fingerprint,
                             extra={"cluster": record.cluster, "fingerprint": record.fingerprint})
            failed += 1
            continue
        archived += 1
    if failed:
        pipeline.count_archive_failed(failed)
    if archived:
        pipeline.count_archived(archived)
    return archived


def _noted(value: str | None) -> Cleared | None:
    try:
        return Cleared(value) if value else None
    except ValueError:  # written by a newer version
        return None


def _expired(record: AlertRecord) -> Cleared | None:
    """An event's finding whose last report came EVENT_FINDING_TTL or more before it resolved: it expired."""
    last_report = record.resolved_at - record.last_seen if record.resolved_at else None
    return Cleared.EXPIRED if record.origin == "event" and last_report and last_report >= EVENT_FINDING_TTL else None
