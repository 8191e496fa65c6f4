"""The reliability report (issue 21): what the fleet's alert episodes (archive.py) say about a period.

`build_report(episodes, repairs, start=, end=, now=)` is pure (no I/O, no clock): the CLI
(`hyperpod-guard report`) and the weekly digest read the archive and the open alerts, then call it.
The figures, per instance group, per cluster and for the fleet:

- an episode's **interval** is [fired_at (or first_seen), resolved_at]; an open episode (no
  resolved_at) runs until `now` and is marked open. An end before its start counts as the start:
  no interval, duration or figure is ever negative;
- an episode **folded** into another (one problem, one alert: the leader's details name it under `also`,
  same scope, overlapping) is no incident of its own (not in incidents, MTTR, per_day, reasons,
  offenders, open), but its time counts in the hours below (a group Degraded *and* short of capacity
  is short of capacity for that long);
- an episode is **in the period** [start, end) when its interval meets it (it started in the
  period, or was still going at its start); those that started before are `carried_in`;
- **incidents**: the episodes in the period, by policy; **per_day**: those that started on each
  UTC day of the period (so incidents = sum(per_day) + carried_in);
- **MTTR** (median, p90, mean and count) by what resolved the episode: HyperPod's own repair
  (`hyperpod-repair`), our remediation (`remediation`), anything else (`other`: manual, expired,
  gone), and `all`; from the in-period episodes that have resolved, each by its whole duration
  (not clipped: recovering is a property of the episode). Percentiles are nearest-rank: the
  p-th percentile of n sorted values is the value at rank ceil(p/100 * n) (the median is p50:
  the lower middle value for an even n), so every figure is a duration that happened;
- **node-hours unhealthy**: per node, the measure of the union of its unhealthy-node episodes'
  intervals clipped to the period (overlapping episodes of one node count once, so a node never
  loses more than the period), summed over the nodes of a group, a cluster, the fleet;
- **group-hours below TargetCount / MinCount**: per instance group, the measure of the union of its
  degraded-group episodes' intervals clipped to the period: `below-target` or `below-min` for
  TargetCount (the policy reports `below-min` instead of `below-target`: a group below its minimum
  is below its target too), `below-min` for MinCount; restricted instance groups' conditions
  (`restricted-…`) count for the group of that name; summed over a cluster's groups, the fleet's;
- **top failure reasons**: the in-period episodes' `reason` (HMA fault type, failure message), counted;
- **repeat offenders**: nodes with at least REPEAT_OFFENDER incidents in the period (any policy);
- **repairs**: HyperPod's own repair facts (Cluster Events) in the period, by kind and phase.

A node's episodes all count for one instance group: the first group any of them names (an
event-origin episode may not know the node's group).

Renderers: text (people), JSON (the model), CSV (one flat table, render_csv says its columns) and
HTML (one self-contained page with inline SVG charts and no external resource).

A report of part of the fleet says which part (`filters`: the cluster glob, the account and the region
globs the episodes were chosen by, `in_place` for the last two) in its header, the text's and the
HTML's, and in the JSON (left out when nothing was filtered).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, PlainSerializer

from .archive import Episode, RepairFact
from .policies import degraded_group, unhealthy_node
from .policy_settings import glob_match
from .timeutil import format_duration, isoformat

#: incidents in the period from which a node is a repeat offender
REPEAT_OFFENDER = 3
#: how many failure reasons each scope lists
TOP_REASONS = 5
#: degraded-group's conditions for a group short of capacity (policies/degraded_group.py)
BELOW_TARGET, BELOW_MIN = "below-target", "below-min"

Cause = Literal["hyperpod-repair", "remediation", "other", "all"]
#: MTTR's buckets, in the order every renderer shows them, with the words they show
CAUSES: dict[Cause, str] = {
    "hyperpod-repair": "HyperPod auto-repair", "remediation": "our remediation", "other": "manual/other",
    "all": "all",
}
#: the label of a cluster's episodes about no instance group (the cluster itself)
CLUSTER_SCOPE = "(cluster)"

UtcTime = Annotated[datetime, PlainSerializer(isoformat, return_type=str)]


def cause_of(resolved_by: str | None) -> Cause:
    """Episode.resolved_by -> the MTTR bucket."""
    if resolved_by in ("hyperpod-repair", "remediation"):
        return resolved_by  # type: ignore[return-value]  # narrowed by the test above
    return "other"


# --- interval arithmetic (once, here) --------------------------------------------------------------


class Interval(NamedTuple):
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


def clip(interval: Interval, start: datetime, end: datetime) -> Interval | None:
    """The part of `interval` inside [start, end), or None when they do not overlap (or it is empty)."""
    clipped = Interval(max(interval.start, start), min(interval.end, end))
    return clipped if clipped.start < clipped.end else None


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time as `intervals` (empty ones dropped)."""
    merged: list[Interval] = []
    for interval in sorted(i for i in intervals if i.start < i.end):
        if merged and interval.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, interval.end))
        else:
            merged.append(interval)
    return merged


def covered_seconds(intervals: Iterable[Interval], start: datetime, end: datetime) -> float:
    """The measure of the union of `intervals` inside [start, end): overlaps count once."""
    clipped = (clip(i, start, end) for i in intervals)
    return sum(i.seconds for i in union(i for i in clipped if i is not None))


def nearest_rank(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of non-empty `values`: the value at rank ceil(percent/100 * n)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


# --- the report ------------------------------------------------------------------------------------


class Mttr(BaseModel):
    """Time to recover of resolved episodes, in seconds (None when none resolved)."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None

    @classmethod
    def of(cls, durations: Sequence[float]) -> Mttr:
        if not durations:
            return cls(count=0, median_seconds=None, p90_seconds=None, mean_seconds=None)
        return cls(count=len(durations), median_seconds=round(nearest_rank(durations, 50), 1),
                   p90_seconds=round(nearest_rank(durations, 90), 1),
                   mean_seconds=round(sum(durations) / len(durations), 1))


class ReasonCount(BaseModel):
    reason: str
    incidents: int


class Figures(BaseModel):
    """The figures of one scope: an instance group, a cluster or the fleet (module docstring)."""

    incidents: int
    open: int
    carried_in: int
    by_policy: dict[str, int]
    mttr: dict[Cause, Mttr]
    node_hours_unhealthy: float
    group_hours_below_target: float
    group_hours_below_min: float
    top_reasons: list[ReasonCount]
    #: incidents that started on each UTC day of the period (every day, zeros too)
    per_day: dict[date, int]
    #: HyperPod repair facts in the period: "<kind> <phase>" ("replacement completed") -> count
    repairs: dict[str, int]


class NodeFigures(BaseModel):
    """A node with incidents in the period."""

    node: str
    incidents: int
    open: int
    unhealthy_hours: float
    by_policy: dict[str, int]


class GroupReport(BaseModel):
    #: None: the cluster's episodes about no instance group
    name: str | None
    figures: Figures
    nodes: list[NodeFigures]

    @property
    def label(self) -> str:
        return self.name or CLUSTER_SCOPE


class ClusterReport(BaseModel):
    name: str
    account: str | None
    region: str | None
    figures: Figures
    groups: list[GroupReport]


class RepeatOffender(BaseModel):
    cluster: str
    instance_group: str | None
    node: str
    incidents: int
    by_policy: dict[str, int]


class OpenEpisode(BaseModel):
    """An episode still open at `now`."""

    cluster: str
    instance_group: str | None
    node: str | None
    policy: str
    condition: str
    severity: str
    since: UtcTime
    #: from `since` to now (not clipped)
    hours: float
    summary: str


class ReliabilityReport(BaseModel):
    version: Literal[1] = 1
    start: UtcTime
    end: UtcTime
    now: UtcTime
    #: what the episodes were chosen by, when not the whole fleet: {"cluster": glob, "account": glob, "region": glob}
    filters: dict[str, str] = {}
    fleet: Figures
    clusters: list[ClusterReport]
    repeat_offenders: list[RepeatOffender]
    open_episodes: list[OpenEpisode]

    @property
    def days(self) -> list[date]:
        return list(self.fleet.per_day)


@dataclass(frozen=True)
class _Span:
    """An episode with its interval and the instance group it counts for."""

    episode: Episode
    interval: Interval
    group: str | None
    #: folded into another episode (one problem, one alert): its time counts in the hours, it is no incident
    folded: bool = False

    @property
    def open(self) -> bool:
        return self.episode.resolved_at is None

    @property
    def node_key(self) -> tuple[str, str] | None:
        return (self.episode.cluster, self.episode.node) if self.episode.node else None


def episode_interval(episode: Episode, now: datetime) -> Interval:
    """[fired_at or first_seen, resolved_at or now], never negative."""
    start = episode.fired_at or episode.first_seen
    end = episode.resolved_at or now
    return Interval(start, max(start, end))


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 4)


def period_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches."""
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _counted(counter: Counter[str]) -> dict[str, int]:
    """Most first, then by name: the same order on every run."""
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _figures(every: Sequence[_Span], facts: Sequence[RepairFact], start: datetime, end: datetime,
             days: Sequence[date]) -> Figures:
    spans = [s for s in every if not s.folded]  # the incidents; the hours below come from every span
    durations: dict[Cause, list[float]] = {cause: [] for cause in CAUSES}
    unhealthy: defaultdict[tuple[str, str], list[Interval]] = defaultdict(list)
    below_target: defaultdict[tuple[str, str], list[Interval]] = defaultdict(list)
    below_min: defaultdict[tuple[str, str], list[Interval]] = defaultdict(list)
    per_day = dict.fromkeys(days, 0)
    for span in every:
        episode = span.episode
        if not span.open and not span.folded:
            durations[cause_of(episode.resolved_by)].append(span.interval.seconds)
            durations["all"].append(span.interval.seconds)
        if episode.policy == unhealthy_node.NAME and span.node_key:
            unhealthy[span.node_key].append(span.interval)
        condition = episode.condition.removeprefix(degraded_group.RESTRICTED)
        if episode.policy == degraded_group.NAME and span.group and condition in (BELOW_TARGET, BELOW_MIN):
            below_target[(episode.cluster, span.group)].append(span.interval)
            if condition == BELOW_MIN:
                below_min[(episode.cluster, span.group)].append(span.interval)
        started = span.interval.start.astimezone(UTC).date()
        if span.interval.start >= start and started in per_day and not span.folded:
            per_day[started] += 1

    def hours(by_key: dict[tuple[str, str], list[Interval]]) -> float:
        return _hours(sum(covered_seconds(intervals, start, end) for intervals in by_key.values()))

    reasons = Counter(s.episode.reason for s in spans if s.episode.reason)
    return Figures(
        incidents=len(spans), open=sum(s.open for s in spans), carried_in=sum(s.interval.start < start for s in spans),
        by_policy=_counted(Counter(s.episode.policy for s in spans)),
        mttr={cause: Mttr.of(values) for cause, values in durations.items()},
        node_hours_unhealthy=hours(unhealthy), group_hours_below_target=hours(below_target),
        group_hours_below_min=hours(below_min),
        top_reasons=[ReasonCount(reason=r, incidents=n) for r, n in list(_counted(reasons).items())[:TOP_REASONS]],
        per_day=per_day, repairs=_repairs(facts),
    )


def _repairs(facts: Sequence[RepairFact]) -> dict[str, int]:
    """"<kind> <phase>" -> count, by kind, then started, completed, failed."""
    phases = {"started": 0, "completed": 1, "failed": 2}
    counts = Counter((f.kind, f.phase) for f in facts)
    ordered = sorted(counts.items(), key=lambda item: (item[0][0], phases[item[0][1]]))
    return {f"{kind} {phase}": n for (kind, phase), n in ordered}


def _node_figures(spans: Sequence[_Span], start: datetime, end: datetime) -> list[NodeFigures]:
    by_node: defaultdict[str, list[_Span]] = defaultdict(list)
    for span in spans:
        if span.episode.node:
            by_node[span.episode.node].append(span)
    nodes = [
        NodeFigures(node=node, incidents=sum(not s.folded for s in own), open=sum(s.open and not s.folded for s in own),
                    unhealthy_hours=_hours(covered_seconds(
                        [s.interval for s in own if s.episode.policy == unhealthy_node.NAME], start, end)),
                    by_policy=_counted(Counter(s.episode.policy for s in own if not s.folded)))
        for node, own in by_node.items()
    ]
    return sorted(nodes, key=lambda n: (-n.incidents, -n.unhealthy_hours, n.node))


def folded(episodes: Sequence[Episode], now: datetime) -> set[str]:
    """Fingerprints of the episodes folded into another (one problem, one alert: alerting.fold): the
    leader's details name them under `also` (policy and condition), same scope, overlapping in time.
    They were inhibited, never an incident of their own, so they are not counted as one."""
    out: set[str] = set()
    by_scope: dict[tuple[str, str | None, str | None], list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_scope[(episode.cluster, episode.instance_group, episode.node)].append(episode)
    for episode in episodes:
        also = episode.details.get("also")
        if not isinstance(also, list):
            continue
        named = {(a.get("policy"), a.get("condition")) for a in also if isinstance(a, dict)}
        lead = episode_interval(episode, now)
        for other in by_scope[(episode.cluster, episode.instance_group, episode.node)]:
            span = episode_interval(other, now)
            if (other is not episode and (other.policy, other.condition) in named
                    and span.start < max(lead.end, lead.start + timedelta(seconds=1)) and lead.start <= span.end):
                out.add(other.fingerprint)
    return out


def _spans(episodes: Iterable[Episode], start: datetime, end: datetime, now: datetime) -> list[_Span]:
    """The episodes in the period, with their intervals (those folded into another marked); each node's
    episodes in one group."""
    every = list(episodes)
    inhibited = folded(every, now)
    found = [(e, episode_interval(e, now)) for e in every]
    inside = [(e, i) for e, i in found if i.start < end and (i.start >= start or i.end > start)]
    inside.sort(key=lambda pair: (pair[1].start, pair[0].cluster, pair[0].fingerprint))
    node_group: dict[tuple[str, str], str] = {}
    for episode, _ in inside:
        if episode.node and episode.instance_group:
            node_group.setdefault((episode.cluster, episode.node), episode.instance_group)
    return [_Span(e, i, e.instance_group or (node_group.get((e.cluster, e.node)) if e.node else None),
                  folded=e.fingerprint in inhibited) for e, i in inside]


def in_place(item: Episode | RepairFact, account: str = "*", region: str = "*") -> bool:
    """Whether an episode's (or a repair's) cluster is in an account and a region the globs match; one whose
    account or region is not known matches only '*' there."""
    return glob_match(account, item.account) and glob_match(region, item.region)


def build_report(episodes: Iterable[Episode], repairs: Iterable[RepairFact], *, start: datetime, end: datetime,
                 now: datetime, filters: dict[str, str] | None = None) -> ReliabilityReport:
    """The report of [start, end) as of `now` (module docstring: every figure and how it is computed)."""
    if end <= start:
        raise ValueError(f"the period's end {isoformat(end)} is not after its start {isoformat(start)}")
    spans = _spans(episodes, start, end, now)
    node_group = {s.node_key: s.group for s in spans if s.node_key}
    facts = [r for r in repairs if start <= r.at < end]
    days = period_days(start, end)

    def fact_group(fact: RepairFact) -> str | None:
        return fact.instance_group or (node_group.get((fact.cluster, fact.node)) if fact.node else None)

    clusters = []
    for cluster in sorted({s.episode.cluster for s in spans} | {f.cluster for f in facts}):
        own = [s for s in spans if s.episode.cluster == cluster]
        own_facts = [f for f in facts if f.cluster == cluster]
        groups = sorted({s.group for s in own} | {fact_group(f) for f in own_facts}, key=lambda g: (g is not None, g))
        sample = own[0].episode if own else own_facts[0]
        clusters.append(ClusterReport(
            name=cluster, account=sample.account, region=sample.region,
            figures=_figures(own, own_facts, start, end, days),
            groups=[GroupReport(name=group,
                                figures=_figures([s for s in own if s.group == group],
                                                 [f for f in own_facts if fact_group(f) == group], start, end, days),
                                nodes=_node_figures([s for s in own if s.group == group], start, end))
                    for group in groups],
        ))
    offenders = [
        RepeatOffender(cluster=c.name, instance_group=g.name, node=n.node, incidents=n.incidents, by_policy=n.by_policy)
        for c in clusters for g in c.groups for n in g.nodes if n.incidents >= REPEAT_OFFENDER
    ]
    opened = [
        OpenEpisode(cluster=s.episode.cluster, instance_group=s.group, node=s.episode.node, policy=s.episode.policy,
                    condition=s.episode.condition, severity=s.episode.severity, since=s.interval.start,
                    hours=_hours(s.interval.seconds), summary=s.episode.summary)
        for s in spans if s.open and not s.folded
    ]
    return ReliabilityReport(
        start=start, end=end, now=now, filters={k: v for k, v in (filters or {}).items() if v != "*"},
        fleet=_figures(spans, facts, start, end, days), clusters=clusters,
        repeat_offenders=sorted(offenders, key=lambda o: (-o.incidents, o.cluster, o.node)),
        open_episodes=sorted(opened, key=lambda o: (o.since, o.cluster, o.node or "")),
    )


# --- text --------------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns (cli/common.table's layout; this module ships without the CLI)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def duration_text(seconds: float | None) -> str:
    """Seconds as people read them: '1h12m' (to the minute from an hour up), '-' for none."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    return format_duration(timedelta(seconds=whole - whole % 60 if whole >= 3600 else whole))


def _number(value: float) -> str:
    """Hours to two decimals, without trailing zeros: 5.75, 19.2, 0."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _period(report: ReliabilityReport) -> str:
    return (f"{isoformat(report.start)} to {isoformat(report.end)} "
            f"({duration_text((report.end - report.start).total_seconds())})")


def _filtered(report: ReliabilityReport) -> str:
    """`, of cluster=llm-* account=111122223333 region=us-east-1` when the report is of part of the fleet."""
    return ", of " + " ".join(f"{k}={v}" for k, v in report.filters.items()) if report.filters else ""


def _headline(figures: Figures) -> str:
    return (f"{figures.incidents} incident(s) ({figures.open} open, {figures.carried_in} from before the period), "
            f"{_number(figures.node_hours_unhealthy)} node-hours unhealthy, "
            f"{_number(figures.group_hours_below_target)} group-hours below TargetCount, "
            f"{_number(figures.group_hours_below_min)} below MinCount")


def _scope_rows(report: ReliabilityReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for cluster in report.clusters:
        for group in cluster.groups:
            f = group.figures
            rows.append((cluster.name, group.label, str(f.incidents), str(f.open), _number(f.node_hours_unhealthy),
                         _number(f.group_hours_below_target), _number(f.group_hours_below_min),
                         duration_text(f.mttr["all"].median_seconds), duration_text(f.mttr["all"].p90_seconds),
                         ", ".join(f"{p} {n}" for p, n in f.by_policy.items())))
    return rows


def render_text(report: ReliabilityReport) -> str:
    fleet = report.fleet
    parts = [f"Reliability report {_period(report)}, as of {isoformat(report.now)}{_filtered(report)}",
             f"fleet: {_headline(fleet)}"]
    if not fleet.incidents and not fleet.repairs:
        return "\n".join([*parts, "no incidents in the period"]) + "\n"
    parts += ["", "MTTR by what resolved it (nearest-rank median and p90):", _table(
        ("RESOLVED BY", "COUNT", "MEDIAN", "P90", "MEAN"),
        [(label, str(m.count), duration_text(m.median_seconds), duration_text(m.p90_seconds),
          duration_text(m.mean_seconds)) for cause, label in CAUSES.items() for m in [fleet.mttr[cause]]])]
    parts += ["", "per cluster and instance group:", _table(
        ("CLUSTER", "GROUP", "INCIDENTS", "OPEN", "NODE-H UNHEALTHY", "H < TARGET", "H < MIN", "MTTR MEDIAN",
         "MTTR P90", "BY POLICY"), _scope_rows(report))]
    if fleet.top_reasons:
        parts += ["", "top failure reasons:", _table(("INCIDENTS", "REASON"),
                                                      [(str(r.incidents), r.reason) for r in fleet.top_reasons])]
    if report.repeat_offenders:
        parts += ["", f"repeat-offender nodes (>= {REPEAT_OFFENDER} incidents):", _table(
            ("CLUSTER", "GROUP", "NODE", "INCIDENTS", "BY POLICY"),
            [(o.cluster, o.instance_group or "-", o.node, str(o.incidents),
              ", ".join(f"{p} {n}" for p, n in o.by_policy.items())) for o in report.repeat_offenders])]
    if fleet.repairs:
        parts += ["", "HyperPod repairs: " + ", ".join(f"{n} {what}" for what, n in fleet.repairs.items())]
    widest = max(fleet.per_day.values(), default=0) or 1
    parts += ["", "incidents per day (started that day, UTC):"]
    parts += [f"  {day.isoformat()} {day:%a}  {'#' * math.ceil(40 * n / widest) if n else ''}{' ' if n else ''}{n}"
              for day, n in fleet.per_day.items()]
    if report.open_episodes:
        parts += ["", "open incidents:", _table(
            ("SINCE", "FOR", "CLUSTER", "SCOPE", "POLICY", "SUMMARY"),
            [(isoformat(o.since), duration_text(o.hours * 3600), o.cluster,
              "/".join(p for p in (o.instance_group, o.node) if p) or CLUSTER_SCOPE, o.policy, o.summary)
             for o in report.open_episodes])]
    return "\n".join(parts) + "\n"


# --- JSON and CSV ------------------------------------------------------------------------------------


def render_json(report: ReliabilityReport) -> str:
    return report.model_dump_json(indent=2, exclude=None if report.filters else {"filters"}) + "\n"


CSV_COLUMNS = ("scope", "cluster", "instance_group", "node", "metric", "key", "value")


def _figure_rows(figures: Figures) -> Iterable[tuple[str, str, str | float | int]]:
    """(metric, key, value) of one scope's figures."""
    yield from (("incidents", "", figures.incidents), ("open", "", figures.open),
                ("carried_in", "", figures.carried_in))
    yield from (("incidents_by_policy", policy, n) for policy, n in figures.by_policy.items())
    for cause, mttr in figures.mttr.items():
        yield "mttr_count", cause, mttr.count
        for metric, value in (("mttr_median_seconds", mttr.median_seconds), ("mttr_p90_seconds", mttr.p90_seconds),
                              ("mttr_mean_seconds", mttr.mean_seconds)):
            if value is not None:
                yield metric, cause, value
    yield from (("node_hours_unhealthy", "", figures.node_hours_unhealthy),
                ("group_hours_below_target", "", figures.group_hours_below_target),
                ("group_hours_below_min", "", figures.group_hours_below_min))
    yield from (("failure_reason", r.reason, r.incidents) for r in figures.top_reasons)
    yield from (("incidents_per_day", day.isoformat(), n) for day, n in figures.per_day.items())
    yield from (("repairs", what, n) for what, n in figures.repairs.items())


def render_csv(report: ReliabilityReport) -> str:
    """One flat ("long") table, a figure a row: `scope` (period, fleet, cluster, group, node, open),
    `cluster`, `instance_group` ((cluster) for a cluster's episodes about no group), `node`, `metric`,
    `key` (the policy, the MTTR bucket, the reason, the day, the repair; empty when the metric has
    none) and `value`. Pivot it by metric in a spreadsheet; MTTR figures of a bucket without a
    resolved episode are left out."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for metric, moment in (("start", report.start), ("end", report.end), ("now", report.now)):
        writer.writerow(("period", "", "", "", metric, "", isoformat(moment)))
    writer.writerows(("fleet", "", "", "", *row) for row in _figure_rows(report.fleet))
    for cluster in report.clusters:
        writer.writerows(("cluster", cluster.name, "", "", *row) for row in _figure_rows(cluster.figures))
        for group in cluster.groups:
            writer.writerows(("group", cluster.name, group.label, "", *row) for row in _figure_rows(group.figures))
            for node in group.nodes:
                writer.writerow(("node", cluster.name, group.label, node.node, "incidents", "", node.incidents))
                writer.writerow(("node", cluster.name, group.label, node.node, "unhealthy_hours", "",
                                 node.unhealthy_hours))
    for episode in report.open_episodes:
        writer.writerow(("open", episode.cluster, episode.instance_group or CLUSTER_SCOPE, episode.node or "",
                         episode.policy, isoformat(episode.since), episode.hours))
    return out.getvalue()


# --- HTML --------------------------------------------------------------------------------------------

#: Okabe-Ito: told apart with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_e = html.escape


def _nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^n at least `value` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _svg(chart_id: str, title: str, desc: str, width: int, height: int, body: list[str]) -> str:
    return (f'<svg role="img" aria-labelledby="{chart_id}-t {chart_id}-d" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}">'
            f'<title id="{chart_id}-t">{_e(title)}</title><desc id="{chart_id}-d">{_e(desc)}</desc>'
            + "".join(body) + "</svg>")


def _legend(names: Sequence[str], colors: dict[str, str], x: int, y: int) -> list[str]:
    out = []
    for n, name in enumerate(names):
        top = y + 18 * n
        out.append(f'<rect x="{x}" y="{top}" width="12" height="12" fill="{colors[name]}"/>'
                   f'<text x="{x + 18}" y="{top + 10}">{_e(name)}</text>')
    return out


def _per_day_chart(report: ReliabilityReport) -> str:
    """Incidents that started each day, stacked by cluster."""
    days, names = report.days, [c.name for c in report.clusters]
    colors = {name: PALETTE[n % len(PALETTE)] for n, name in enumerate(names)}
    left, top, plot_w, plot_h = 40, 20, 560, 200
    step = max(1, math.ceil(_nice_max(max(report.fleet.per_day.values(), default=0) / 4)))  # whole incidents
    top_value = 4 * step
    body = []
    for tick in range(5):
        value = step * tick
        y = top + plot_h - plot_h * tick / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    slot = plot_w / max(1, len(days))
    for n, day in enumerate(days):
        x, base = left + slot * n + slot * 0.15, float(top + plot_h)
        for cluster in report.clusters:
            count = cluster.figures.per_day.get(day, 0)
            if count:
                h = plot_h * count / top_value
                base -= h
                body.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                            f'fill="{colors[cluster.name]}"><title>{_e(cluster.name)}, {day.isoformat()}: '
                            f'{count} incident(s)</title></rect>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                    f'{day:%a %d}</text>')
    body += _legend(names, colors, left + plot_w + 20, top)
    total = sum(report.fleet.per_day.values())
    desc = (f"{total} incident(s) started in the period, per UTC day, stacked by cluster: "
            + "; ".join(f"{d.isoformat()}: {n}" for d, n in report.fleet.per_day.items()))
    return _svg("per-day", "Incidents per day", desc, 760, top + plot_h + 30, body)


def _hbar_chart(chart_id: str, title: str, desc: str, rows: Sequence[tuple[str, float, str]],
                marks: Sequence[float | None] | None = None) -> str:
    """Horizontal bars: (label, value, value text) each; `marks`: a tick per bar (e.g. p90)."""
    if not rows:
        return _svg(chart_id, title, desc, 760, 40, ['<text x="10" y="24">nothing in the period</text>'])
    # room after the plot for the longest value text ("median 1h30m, p90 4h54m (n=6)")
    label_w, plot_w, text_w, bar_h, gap = 220, 420, 240, 18, 10
    top_value = _nice_max(max([v for _, v, _ in rows] + [m for m in marks or () if m is not None]))
    body = []
    for n, (label, value, text) in enumerate(rows):
        y = 10 + n * (bar_h + gap)
        w = plot_w * value / top_value
        body.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{_e(label)}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[0]}">'
                    f'<title>{_e(label)}: {_e(text)}</title></rect>')
        mark = marks[n] if marks else None
        end = w
        if mark is not None:
            x = label_w + plot_w * mark / top_value
            end = max(w, x - label_w)
            body.append(f'<line x1="{label_w + w:.1f}" x2="{x:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" '
                        f'class="whisker"/><line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3}" y2="{y + bar_h + 3}" '
                        'class="mark"/>')
        body.append(f'<text x="{label_w + end + 8:.1f}" y="{y + 13}">{_e(text)}</text>')
    height = 20 + len(rows) * (bar_h + gap)
    if marks:
        body.append(f'<line x1="{label_w}" x2="{label_w}" y1="{height - 4}" y2="{height + 12}" class="mark"/>'
                    f'<text x="{label_w + 8}" y="{height + 8}">bar: median; tick: p90</text>')
        height += 16
    return _svg(chart_id, title, desc, label_w + plot_w + text_w, height, body)


def _mttr_chart(report: ReliabilityReport) -> str:
    rows, marks = [], []
    for cause, label in CAUSES.items():
        mttr = report.fleet.mttr[cause]
        if mttr.count and mttr.median_seconds is not None:
            text = (f"median {duration_text(mttr.median_seconds)}, p90 {duration_text(mttr.p90_seconds)} "
                    f"(n={mttr.count})")
            rows.append((label, mttr.median_seconds / 3600, text))
            marks.append((mttr.p90_seconds or 0) / 3600)
    desc = "Median time to recover in hours by what resolved the incident; the tick marks the p90. " + "; ".join(
        f"{label}: {text}" for label, _, text in rows)
    return _hbar_chart("mttr", "MTTR by what resolved it", desc, rows, marks)


def _node_hours_chart(report: ReliabilityReport) -> str:
    rows = sorted(((f"{c.name} / {g.label}", g.figures.node_hours_unhealthy,
                    f"{_number(g.figures.node_hours_unhealthy)} node-h")
                   for c in report.clusters for g in c.groups if g.figures.node_hours_unhealthy > 0),
                  key=lambda r: (-r[1], r[0]))
    desc = "Node-hours unhealthy per instance group in the period. " + "; ".join(
        f"{label}: {text}" for label, _, text in rows)
    return _hbar_chart("node-hours", "Node-hours lost by instance group", desc, rows)


def _html_table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                numeric: Callable[[int], bool] = lambda _: False) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if numeric(n) else ""}>{_e(cell)}</td>' for n, cell in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;margin:2rem auto;
max-width:1100px;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
.period{color:#444}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ccc;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:13px}
caption{text-align:left;font-weight:600;padding:.3rem 0;white-space:nowrap}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
td:not(:last-child){white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
svg{max-width:100%;height:auto;font-size:12px}svg text{fill:#1b1b1b}
svg .grid{stroke:#ddd}svg .mark{stroke:#D55E00;stroke-width:3}svg .whisker{stroke:#888;stroke-width:1.5}
"""


def render_html(report: ReliabilityReport) -> str:
    """One page, nothing fetched at view time: inline CSS and SVG, no script, a CSP that forbids
    any request; every string from the data escaped."""
    fleet = report.fleet
    cards = [("incidents", str(fleet.incidents)), ("open now", str(fleet.open)),
             ("MTTR median", duration_text(fleet.mttr["all"].median_seconds)),
             ("MTTR p90", duration_text(fleet.mttr["all"].p90_seconds)),
             ("node-hours unhealthy", _number(fleet.node_hours_unhealthy)),
             ("group-hours below target", _number(fleet.group_hours_below_target)),
             ("group-hours below min", _number(fleet.group_hours_below_min))]
    sections = [
        '<div class="cards">' + "".join(f'<div class="card">{_e(label)}<b>{_e(value)}</b></div>'
                                        for label, value in cards) + "</div>",
        "<h2>Incidents over time</h2>", _per_day_chart(report),
        "<h2>MTTR by what resolved it</h2>", _mttr_chart(report),
        _html_table("MTTR (nearest-rank median and p90)", ("resolved by", "count", "median", "p90", "mean"),
                    [(label, str(m.count), duration_text(m.median_seconds), duration_text(m.p90_seconds),
                      duration_text(m.mean_seconds)) for cause, label in CAUSES.items() for m in [fleet.mttr[cause]]],
                    numeric=lambda n: n > 0),
        "<h2>Node-hours lost by instance group</h2>", _node_hours_chart(report),
        "<h2>Clusters and instance groups</h2>",
        _html_table("Per cluster and instance group", ("cluster", "group", "incidents", "open",
                                                       "node-hours unhealthy", "hours below target",
                                                       "hours below min", "MTTR median", "MTTR p90", "by policy"),
                    _scope_rows(report), numeric=lambda n: 2 <= n <= 8),
    ]
    if fleet.top_reasons:
        sections.append(_html_table("Top failure reasons", ("reason", "incidents"),
                                    [(r.reason, str(r.incidents)) for r in fleet.top_reasons],
                                    numeric=lambda n: n == 1))
    if report.repeat_offenders:
        sections.append(_html_table(
            f"Repeat-offender nodes (at least {REPEAT_OFFENDER} incidents)",
            ("cluster", "group", "node", "incidents", "by policy"),
            [(o.cluster, o.instance_group or "-", o.node, str(o.incidents),
              ", ".join(f"{p} {n}" for p, n in o.by_policy.items())) for o in report.repeat_offenders],
            numeric=lambda n: n == 3))
    if fleet.repairs:
        sections.append(_html_table("HyperPod repairs (Cluster Events)", ("repair", "count"),
                                    [(what, str(n)) for what, n in fleet.repairs.items()],
                                    numeric=lambda n: n == 1))
    if report.open_episodes:
        sections.append(_html_table(
            "Open incidents", ("since", "for", "cluster", "scope", "policy", "severity", "summary"),
            [(isoformat(o.since), duration_text(o.hours * 3600), o.cluster,
              "/".join(p for p in (o.instance_group, o.node) if p) or CLUSTER_SCOPE, o.policy, o.severity, o.summary)
             for o in report.open_episodes]))
    title = f"HyperPod reliability report, {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body><main>"
        f"<h1>{_e(title)}</h1><p class=\"period\">{_e(_period(report))}, as of {_e(isoformat(report.now))}"
        f"{_e(_filtered(report))}. "
        "Every figure is defined in the README (Reliability report).</p>\n"
        + "\n".join(sections) + "\n</main></body></html>\n"
    )
