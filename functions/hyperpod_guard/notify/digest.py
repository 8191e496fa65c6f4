"""The weekly digest (issue 21): one message to the alerts topic that summarises a period of the fleet's
episodes (reliability.build_report) for people: the fleet's totals, a line per cluster, the top findings and
the repeat-offender nodes. A message kind of its own: its JSON body says `"kind": "digest"` (an alert's
body has no `kind`), so the Slack notifier renders it as a digest (notify/slack.py `render_digest`: no
thread, no buttons), and its `kind` attribute lets a subscription take it or leave it.

Published like a notification (message.Notification.sns_message): one text per protocol, "default" the JSON
body, "email" the plain text, "https" the Chatbot custom notification; the attributes `kind` = "digest" and
`receivers` = the rules' `routing.default` (the digest is about the fleet, so no route's match applies).

Bounded: at most MAX_CLUSTERS cluster lines (the busiest first; the rest counted), MAX_TOP_FINDINGS findings
and MAX_OFFENDERS nodes, every name cut: the whole per-protocol message stays far below SNS's 256 KiB.

Every string here comes from cluster state and events (cluster and node names, failure reasons): each renderer
makes them inert for its markup, as the alert renderers do.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..timeutil import Timestamp, format_duration
from . import evidence
from .message import DEFAULT_RECEIVER, SUBJECT_LIMIT, cut_words, json_dumps

if TYPE_CHECKING:
    from ..reliability import ReliabilityReport

KIND: Literal["digest"] = "digest"
DIGEST_VERSION = 1
#: cluster lines in one digest (the busiest first): a fleet of hundreds reads its report, not its digest
MAX_CLUSTERS = 25
MAX_TOP_FINDINGS = 10
MAX_OFFENDERS = 10
#: one name (a cluster, a node) or reason before it is cut
NAME_LIMIT = 100
REASON_LIMIT = 200
#: what the digest tells people to run for the whole picture
REPORT_COMMAND = "hyperpod-guard report --since 7d --format html --output report.html"
#: what resolved an episode (reliability.CAUSES but `all`, which this module does not import: the Slack notifier
#: reads digests, and must not load the report) -> words, in the order the digest lists them
RESOLVED_BY = {"hyperpod-repair": "HyperPod auto-repair", "remediation": "our remediation", "other": "manual/other"}
WIDTH = 72


class Totals(BaseModel):
    """The fleet's (or one cluster's) figures for the period."""

    model_config = ConfigDict(frozen=True)

    incidents: int = 0
    #: episodes still open at the end of the period (counted up to it)
    open: int = 0
    #: resolved episodes' time to recovery, in seconds (None: nothing resolved)
    mttr_median_seconds: float | None = None
    mttr_p90_seconds: float | None = None
    #: resolved episodes by what resolved them: "hyperpod-repair", "remediation", "other" (RESOLVED_BY)
    resolved_by: dict[str, int] = Field(default_factory=dict)
    node_hours_unhealthy: float = 0.0
    hours_below_target: float = 0.0
    hours_below_min: float = 0.0


class ClusterLine(Totals):
    cluster: str
    #: its incidents by policy, the most first
    by_policy: dict[str, int] = Field(default_factory=dict)


class TopFinding(BaseModel):
    """A failure reason (an HMA fault type, a failure message, a status) and how often it came."""

    model_config = ConfigDict(frozen=True)

    reason: str
    count: int
    clusters: tuple[str, ...] = ()


class RepeatOffender(BaseModel):
    model_config = ConfigDict(frozen=True)

    cluster: str
    node: str
    incidents: int
    instance_group: str | None = None


class Digest(BaseModel):
    """The digest message (its JSON is the SNS body's "default")."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["digest"] = "digest"
    version: int = DIGEST_VERSION
    start: datetime
    end: datetime
    sent_at: Timestamp = None
    account: str | None = None
    region: str | None = None
    totals: Totals = Field(default_factory=Totals)
    clusters: tuple[ClusterLine, ...] = ()
    #: clusters with incidents beyond MAX_CLUSTERS, counted only
    more_clusters: int = 0
    top_findings: tuple[TopFinding, ...] = ()
    repeat_offenders: tuple[RepeatOffender, ...] = ()
    #: the rules' routing.default: who gets it
    receivers: tuple[str, ...] = (DEFAULT_RECEIVER,)

    @classmethod
    def of(cls, report: ReliabilityReport, *, receivers: tuple[str, ...], sent_at: datetime,
           account: str | None = None, region: str | None = None, top: int = 5) -> Digest:
        """The digest of a report (reliability.build_report): the busiest clusters, the fleet's top `top`
        failure reasons (each with the clusters it came from), the repeat offenders."""
        def totals(figures: Any) -> dict[str, Any]:
            mttr = figures.mttr.get("all")
            return {
                "incidents": figures.incidents, "open": figures.open,
                "mttr_median_seconds": mttr.median_seconds if mttr else None,
                "mttr_p90_seconds": mttr.p90_seconds if mttr else None,
                "resolved_by": {cause: m.count for cause, m in figures.mttr.items() if cause != "all" and m.count},
                "node_hours_unhealthy": figures.node_hours_unhealthy,
                "hours_below_target": figures.group_hours_below_target,
                "hours_below_min": figures.group_hours_below_min,
            }

        busy = sorted((c for c in report.clusters if c.figures.incidents or c.figures.open),
                      key=lambda c: (-c.figures.incidents, -c.figures.open, c.name))
        lines = tuple(ClusterLine(cluster=evidence.value(c.name, NAME_LIMIT), **totals(c.figures),
                                  by_policy=dict(sorted(c.figures.by_policy.items(), key=lambda kv: (-kv[1], kv[0]))))
                      for c in busy[:MAX_CLUSTERS])
        findings = tuple(
            TopFinding(reason=evidence.value(r.reason, REASON_LIMIT), count=r.incidents,
                       clusters=tuple(evidence.value(c.name, NAME_LIMIT) for c in busy
                                      if any(o.reason == r.reason for o in c.figures.top_reasons)))
            for r in report.fleet.top_reasons[:min(top, MAX_TOP_FINDINGS)])
        offenders = tuple(
            RepeatOffender(cluster=evidence.value(o.cluster, NAME_LIMIT), node=evidence.value(o.node, NAME_LIMIT),
                           incidents=o.incidents,
                           instance_group=evidence.value(o.instance_group, NAME_LIMIT) if o.instance_group else None)
            for o in sorted(report.repeat_offenders, key=lambda o: (-o.incidents, o.cluster, o.node))[:MAX_OFFENDERS])
        return cls(start=report.start, end=report.end, sent_at=sent_at, account=account, region=region,
                   totals=Totals(**totals(report.fleet)), clusters=lines,
                   more_clusters=max(len(busy) - MAX_CLUSTERS, 0),
                   top_findings=findings, repeat_offenders=offenders, receivers=receivers or (DEFAULT_RECEIVER,))

    # -- what every rendering says ------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        """Nothing happened: no episode in the period, none open."""
        return self.totals.incidents == 0 and self.totals.open == 0

    @property
    def period(self) -> str:
        """'2026-11-17 08:00 UTC to 2026-11-24 08:00 UTC (7 days)'."""
        days = (self.end - self.start) / timedelta(days=1)
        length = f"{days:g} day{'s' if days != 1 else ''}" if days >= 1 else hours(self.end - self.start)
        return f"{evidence.utc(self.start)} to {evidence.utc(self.end)} ({length})"

    @property
    def dates(self) -> str:
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}"

    @property
    def preview(self) -> str:
        """One sentence: what a phone shows."""
        if self.empty:
            return f"Weekly digest {self.dates}: no incidents, nothing open"
        t = self.totals
        clusters = len(self.clusters) + self.more_clusters
        text = (f"Weekly digest {self.dates}: {plural(t.incidents, 'incident')} on {plural(clusters, 'cluster')}, "
                f"{t.open} still open")
        if t.mttr_median_seconds is not None:
            text += f"; MTTR median {hours(timedelta(seconds=t.mttr_median_seconds))}"
        return cut_words(text, 100)

    @property
    def subject(self) -> str:
        text = "".join(c if " " <= c <= "~" else "?" for c in f"[DIGEST] hyperpod-guard {self.preview}")
        return cut_words(text, SUBJECT_LIMIT, "...")

    def fleet_lines(self) -> list[str]:
        """The fleet's figures, one fact a line (plain text)."""
        t = self.totals
        clusters = len(self.clusters) + self.more_clusters
        lines = [f"Incidents: {t.incidents} on {plural(clusters, 'cluster')} ({t.open} still open)"]
        if t.mttr_median_seconds is not None:
            p90 = f", p90 {hours(timedelta(seconds=t.mttr_p90_seconds))}" if t.mttr_p90_seconds is not None else ""
            lines.append(f"MTTR: median {hours(timedelta(seconds=t.mttr_median_seconds))}{p90}")
        if t.resolved_by:
            lines.append("Resolved by: " + resolved_by(t.resolved_by))
        lines.append(f"Node-hours unhealthy: {t.node_hours_unhealthy:.1f}")
        lines.append(f"Hours below TargetCount: {t.hours_below_target:.1f}; below MinCount: {t.hours_below_min:.1f}")
        if self.repeat_offenders:
            lines.append(f"Repeat-offender nodes (3+ incidents): {len(self.repeat_offenders)}")
        return lines

    def cluster_text(self, line: ClusterLine) -> str:
        """'8 incidents (2 open), MTTR median 40m, 10.0 node-hours unhealthy, 2.0 h below target; unhealthy-node 6,
        degraded-group 2' (the cluster's name is the renderer's, in its markup)."""
        parts = [f"{plural(line.incidents, 'incident')}" + (f" ({line.open} open)" if line.open else "")]
        if line.mttr_median_seconds is not None:
            parts.append(f"MTTR median {hours(timedelta(seconds=line.mttr_median_seconds))}")
        if line.node_hours_unhealthy:
            parts.append(f"{line.node_hours_unhealthy:.1f} node-hours unhealthy")
        if line.hours_below_target:
            parts.append(f"{line.hours_below_target:.1f} h below target")
        if line.hours_below_min:
            parts.append(f"{line.hours_below_min:.1f} h below min")
        policies = ", ".join(f"{evidence.value(p, 60)} {n}" for p, n in list(line.by_policy.items())[:4])
        return ", ".join(parts) + (f"; {policies}" if policies else "")

    # -- per protocol -----------------------------------------------------------------------------

    def text(self) -> str:
        """The email body: plain text, wrapped at 72 columns."""
        lines = [self.preview, "", f"Period: {self.period}"]
        if self.account:
            lines.append(f"Account: {evidence.value(self.account, 20)}")
        if self.region:
            lines.append(f"Region: {evidence.value(self.region, 30)}")
        lines.append("")
        if self.empty:
            lines += wrap("No incidents this period: no alert episode resolved in it and none is open. "
                          "Nothing to do.")
        else:
            lines.append("Fleet")
            lines += [line for fact in self.fleet_lines() for line in wrap(fact, "    ", "  ")]
            lines += ["", "Clusters (most incidents first)"]
            for line in self.clusters:
                lines += wrap(f"{evidence.value(line.cluster, NAME_LIMIT)}: {self.cluster_text(line)}", "    ", "  ")
            if self.more_clusters:
                lines.append(f"  ...and {plural(self.more_clusters, 'more cluster')} with incidents")
            if self.top_findings:
                lines += ["", "Top findings"]
                for n, finding in enumerate(self.top_findings, start=1):
                    where = f" ({', '.join(evidence.value(c, NAME_LIMIT) for c in finding.clusters[:3])})" \
                        if finding.clusters else ""
                    lines += wrap(f"{n}. {evidence.value(finding.reason, REASON_LIMIT)}: {finding.count}{where}",
                                  "     ", "  ")
            if self.repeat_offenders:
                lines += ["", "Repeat-offender nodes (3+ incidents)"]
                lines += [line for node in self.repeat_offenders
                          for line in wrap(f"{offender_text(node)}", "    ", "  ")]
        lines += ["", "The whole report (charts, every group):", f"  {REPORT_COMMAND}", "", "-- ",
                  "hyperpod-guard" + (f", sent {evidence.utc(self.sent_at)}" if self.sent_at else "")]
        return "\n".join(lines)

    def body(self) -> str:
        """The SNS body ("default"): this model as JSON, with the subject and the email text."""
        data = self.model_dump(mode="json")
        data.update(subject=self.subject, text=self.text())
        return json_dumps(data)

    def sns_message(self) -> str:
        """The Message published with MessageStructure "json" (see message.Notification.sns_message)."""
        return json_dumps({"default": self.body(), "email": self.text(), "https": json_dumps(self.chatbot())})

    def attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes: a filter policy {"kind": ["digest"]} takes the digests (or, with
        {"kind": [{"exists": false}]}, only the alerts); `receivers` as on an alert."""
        attributes = {
            "kind": {"DataType": "String", "StringValue": KIND},
            "receivers": {"DataType": "String.Array", "StringValue": json_dumps(list(self.receivers))},
        }
        if self.account:
            attributes["account"] = {"DataType": "String", "StringValue": self.account}
        return attributes

    def chatbot(self) -> dict[str, Any]:
        """The Chatbot custom notification (notify/chatbot.py's format and bounds)."""
        from .chatbot import SOURCE, TEXT_TYPE, VERSION, inert

        description = [f"*Period:* {inert(self.period)}"]
        if self.empty:
            description.append("No incidents this period: no alert episode resolved in it and none is open.")
        else:
            description += [f"• {inert(fact)}" for fact in self.fleet_lines()]
            if self.clusters:
                description.append("*Clusters* (most incidents first)")
                description += [f"• {_code(line.cluster)}: {inert(self.cluster_text(line))}"
                                for line in self.clusters[:10]]
                hidden = len(self.clusters) - 10 + self.more_clusters
                if hidden > 0:
                    description.append(f"…and {plural(hidden, 'more cluster')}")
            if self.top_findings:
                description.append("*Top findings*")
                description += [f"{n}. {inert(evidence.value(f.reason, REASON_LIMIT))}: {f.count}"
                                for n, f in enumerate(self.top_findings, start=1)]
        context = {"kind": KIND, "start": f"{self.start:%Y-%m-%dT%H:%M:%SZ}", "end": f"{self.end:%Y-%m-%dT%H:%M:%SZ}",
                   "incidents": str(self.totals.incidents), "open": str(self.totals.open),
                   "account": self.account, "region": self.region}
        return {
            "version": VERSION,
            "source": SOURCE,
            "id": f"hyperpod-guard-digest-{self.end:%Y%m%dT%H%M%SZ}",
            "content": {
                "textType": TEXT_TYPE,
                "title": f"📊 hyperpod-guard weekly digest · {self.dates}",
                "description": evidence.clip("\n".join(description), 3000),
                "nextSteps": [f"The whole report: {REPORT_COMMAND}"],
                "keywords": ["digest", "weekly"],
            },
            "metadata": {
                "threadId": "hyperpod-guard-digest",
                "summary": evidence.clip(inert(self.preview), 100),
                "eventType": "hyperpod-guard-digest",
                "additionalContext": {k: evidence.clip(inert(v), 256) for k, v in context.items() if v},
            },
        }


# -- words --------------------------------------------------------------------------------------------


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def hours(delta: timedelta) -> str:
    """How long, as a person reads it: whole minutes ("3h10m") from a minute on, never negative."""
    seconds = max(int(delta.total_seconds()), 0)
    return format_duration(timedelta(seconds=seconds - seconds % 60 if seconds >= 60 else seconds))


def resolved_by(counts: dict[str, int]) -> str:
    """'HyperPod auto-repair 5, our remediation 2, manual/other 2' (the kinds we know first, then the rest)."""
    known = [(RESOLVED_BY[k], counts[k]) for k in RESOLVED_BY if counts.get(k)]
    rest = [(evidence.value(k, 40), n) for k, n in sorted(counts.items()) if k not in RESOLVED_BY and n]
    return ", ".join(f"{words} {n}" for words, n in known + rest)


def offender_text(node: RepeatOffender) -> str:
    group = f" (group {evidence.value(node.instance_group, NAME_LIMIT)})" if node.instance_group else ""
    return (f"{evidence.value(node.cluster, NAME_LIMIT)} node {evidence.value(node.node, NAME_LIMIT)}{group}: "
            f"{plural(node.incidents, 'incident')}")


def wrap(text: str, indent: str = "", first: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [first.rstrip()]


def _code(raw: Any) -> str:
    from .chatbot import inert

    return f"`{inert(evidence.value(raw, NAME_LIMIT)).replace('`', 'ˋ')}`"
