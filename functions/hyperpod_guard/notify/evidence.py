"""What every channel says about a notification: the evidence of a finding, its times and the
console link. The evidence is one table of lines (`evidence_lines`) for every channel; a `Markup`
says how a channel writes a value. The Chatbot (chatbot.py) and email (email.py) renderings use the
lines as plain text (PLAIN); the Slack rendering (slack.py) writes them as mrkdwn (slack.SLACK).

Plain means: one line per fact, no markup, no control characters, every value cut. Nothing in it is
escaped for any markup: a channel that has one (Chatbot's client-markdown) makes the lines inert itself.

This module imports nothing of the message (message.py imports the renderers, which read the
notification through the read-only views below): the import graph stays a DAG.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..findings import FindingFields
from ..fleet import name_of
from ..timeutil import format_duration
from ..workload.model import Workload

#: one value (a failure message, a recommendation) before it is cut
VALUE_LIMIT = 300
#: one evidence line (a list of drifted taints joins several values)
LINE_LIMIT = 600
#: evidence lines per finding: the rest is in the SNS message's JSON and the console
MAX_LINES = 8
#: entries per list (taints, labels, alarms)
MAX_ENTRIES = 5
ELLIPSIS = "…"

_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
#: not text: C0/C1 control characters and line separators (a newline would fake a line of our own), bidi
#: overrides/isolates, with which a value could reorder what is shown around it ("Trojan Source"), and lone
#: surrogates (a JSON "\ud800" escape decodes to one; UTF-8 cannot encode it, so Slack's POST would fail)
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


# -- what the renderers read -------------------------------------------------------------------


class ItemView(Protocol):
    """A NotificationItem, as the renderers read it."""

    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def finding(self) -> FindingFields: ...
    @property
    def first_seen(self) -> datetime | None: ...
    @property
    def fired_at(self) -> datetime | None: ...
    @property
    def resolved_at(self) -> datetime | None: ...
    @property
    def resolved_evidence(self) -> dict[str, Any] | None: ...
    @property
    def actions(self) -> tuple[str, ...]: ...
    @property
    def next_step(self) -> str | None: ...
    @property
    def runbook_url(self) -> str | None: ...
    @property
    def workload(self) -> Workload | None: ...

    def lasted(self, at: datetime | None) -> timedelta | None: ...


def firing_workload(item: ItemView) -> Workload | None:
    """What runs on a firing item's node (issue 23), as every channel shows it; None for a resolved item."""
    return item.workload if item.status == "firing" else None


class NotificationView(Protocol):
    """A Notification, as the renderers read it."""

    @property
    def cluster(self) -> str: ...
    @property
    def cluster_arn(self) -> str | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def items(self) -> Sequence[ItemView]: ...
    @property
    def firing(self) -> Sequence[ItemView]: ...
    @property
    def resolved(self) -> Sequence[ItemView]: ...
    @property
    def status(self) -> str: ...
    @property
    def severity(self) -> Any: ...
    @property
    def policies(self) -> list[str]: ...
    @property
    def preview(self) -> str: ...
    @property
    def tag_pairs(self) -> list[str]: ...
    @property
    def part(self) -> int | None: ...
    @property
    def parts(self) -> int | None: ...
    @property
    def test(self) -> bool: ...
    @property
    def receiver(self) -> str | None: ...


def lead(notification: NotificationView) -> ItemView:
    """The item a notification is about first: the one its preview sentence names."""
    return notification.firing[0] if notification.firing else notification.items[0]


def fingerprint(finding: FindingFields) -> str:
    """The alert's fingerprint: a message's findings carry it (message.FindingPayload)."""
    return str(getattr(finding, "fingerprint", "") or f"{finding.policy}:{finding.cluster}:{finding.scope}")


def ordered(items: Iterable[ItemView]) -> list[ItemView]:
    """Firing before resolved, the most severe first; otherwise the message's order."""
    return sorted(items, key=lambda i: (i.status == "resolved", -i.finding.severity.rank))


# -- text ---------------------------------------------------------------------------------------


def one_line(value: Any) -> str:
    """Untrusted text as one line of text: control characters and bidi controls become spaces."""
    return " ".join(_NOT_TEXT.sub(" ", str(value)).split())


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def value(raw: Any, limit: int = VALUE_LIMIT) -> str:
    return clip(one_line(raw), limit)


# -- times and links ----------------------------------------------------------------------------


def utc(moment: datetime) -> str:
    """'2026-11-30 07:16 UTC': to the minute, what a person compares with a dashboard."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def ago(moment: datetime, now: datetime | None) -> str:
    """'2h14m ago', relative to the message's own clock (its sent_at); '' without one."""
    if now is None:
        return ""
    delta = now - moment
    if delta < timedelta(0):
        return "just now"
    return f"{format_duration(timedelta(seconds=int(delta.total_seconds())))} ago"


def when(moment: datetime, now: datetime | None) -> str:
    """'2026-11-30 07:16 UTC (2h14m ago)'."""
    relative = ago(moment, now)
    return f"{utc(moment)} ({relative})" if relative else utc(moment)


def console_url(region: str, cluster: str) -> str:
    """The SageMaker console page of a HyperPod cluster, by its fleet key (Slack's button links it too). The
    page opens in whichever account the reader is signed in to: the message names the account.

    The region becomes part of the host name, so it must look like a region: a value such as
    `evil.example/x#` would otherwise send people elsewhere (ValueError then).
    """
    if not _REGION.match(region or ""):
        raise ValueError("not an AWS region name")
    name = urllib.parse.quote(name_of(cluster), safe="")
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/cluster-management/{name}"


def cluster_console(notification: NotificationView) -> str | None:
    """The console link of the notification's cluster, or None (no region, not a region, or a cluster
    name no HyperPod cluster has: they are at most 63 characters, the link then ~150)."""
    try:
        url = console_url(notification.region or "", notification.cluster)
    except ValueError:
        return None
    return url if len(url) <= _CONSOLE_LIMIT else None


_URL_LIMIT = 2000
_CONSOLE_LIMIT = 500


def link(url: str | None) -> str | None:
    """A runbook URL from the rules, when it is one: http(s), a host, no spaces or angle brackets
    (the rules are checked, but a link is shown as is, so it is checked again)."""
    if not url or len(url) > _URL_LIMIT or any(c.isspace() or c in "<>\"'`|" for c in url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("https", "http") and parts.hostname else None


# -- evidence -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Markup:
    """How a channel writes the evidence: the lines (which facts, in which order, on which line) are
    the same everywhere; a value is written the channel's way. PLAIN writes every value as it is,
    cut; slack.SLACK writes a short value as an inline code span and escapes the rest for mrkdwn.

    The last three fields are what the plain and the Slack rendering have always shown differently,
    kept so that no message changes."""

    #: a short value (a status, a taint, an image id) in at most `limit` characters
    code: Callable[[Any, int], str]
    #: free text (a failure message, a count) in at most `limit` characters
    text: Callable[[Any, int], str]
    #: a label made of a key ("triggered alarms")
    label: Callable[[str], str]
    #: a note of ours among the evidence ("(+3 more details)")
    aside: Callable[[str], str]
    #: the longest free text: a failure message, a recommendation
    text_limit: int
    #: the longest name: a taint, a label, an image id, an alarm
    name_limit: int
    #: the longest line; None when the channel cuts the whole text itself (Slack: its section)
    line_limit: int | None
    #: a missing side of a changed taint or label ("" is Slack's `_(empty)_`)
    none: str
    #: the counts on the "nodes:" line: (key, label)
    node_counts: tuple[tuple[str, str], ...]
    #: keys that never get a line of their own
    skip: frozenset[str]


def _as_is(text: str) -> str:
    return text


PLAIN = Markup(
    code=value, text=value, label=_as_is, aside=_as_is, text_limit=VALUE_LIMIT, name_limit=100,
    line_limit=LINE_LIMIT, none="(none)",
    # target_count gets a line of its own ("target count: 16")
    node_counts=(("current_count", "current"), ("target_state_count", "on target image")),
    skip=frozenset({"check", "summary"}),  # internal to the policy; the summary is said apart
)

_STATUS_KEYS = ("status", "group_status", "instance_status", "health_status", "software_update_status")
_TEXT_KEYS = (  # free text, in the order a person needs it
    ("failure_message", "failure"),
    ("message", "message"),
    ("reason", "reason"),
    ("event_description", "event"),
    ("description", "description"),
    ("recommendation", "recommendation"),
    ("guidance", "guidance"),
)
#: short facts shown together on one line: (key, label, longest value)
_FACTS = (("repair_action", "repair action", 60), ("node_recovery", "node recovery", 60),
          ("critical_after", "critical after", 30), ("instance_type", "instance type", 60))


def _entries(values: Iterable[str]) -> str:
    values = list(values)
    shown = ", ".join(values[:MAX_ENTRIES])
    return shown + (f" (+{len(values) - MAX_ENTRIES} more)" if len(values) > MAX_ENTRIES else "")


def _pair(pair: Any, m: Markup) -> str:
    """A changed taint or label: {current, desired} or {declared, required}."""
    if not isinstance(pair, Mapping):
        return m.code(pair, m.name_limit)
    for have, want in (("current", "desired"), ("declared", "required")):
        if have in pair or want in pair:
            return (f"{have} {m.code(pair.get(have) or m.none, m.name_limit)}"
                    f" → {want} {m.code(pair.get(want) or m.none, m.name_limit)}")
    return m.code(json.dumps(pair, sort_keys=True, default=str), m.name_limit)


def _drift_lines(kind: str, drift: Any, m: Markup) -> list[str]:
    """taint-drift evidence: {"missing": ..., "unexpected": ..., "changed": ...}."""
    if not isinstance(drift, Mapping):
        return []
    lines = []
    for what in ("missing", "unexpected", "changed"):
        found = drift.get(what)
        if not found:
            continue
        if isinstance(found, Mapping):  # labels: {key: value} or {key: {current, desired}}
            items = ([f"{m.code(k, m.name_limit)}: {_pair(v, m)}" for k, v in found.items()] if what == "changed"
                     else [m.code(f"{k}={v}", m.name_limit) for k, v in found.items()])
        elif isinstance(found, list):  # taints: ["k=v:Effect"] or [{key, current, desired}]
            items = [f"{m.code(v['key'], m.name_limit)}: {_pair(v, m)}" if isinstance(v, Mapping) and "key" in v
                     else m.code(v, m.name_limit) for v in found]
        else:
            items = [m.code(found, m.name_limit)]
        lines.append(f"{kind} {what}: {_entries(items)}")
    return lines


def _status_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    statuses = [f"{m.label(k.replace('_', ' '))} {m.code(details[k], 60)}" for k in _STATUS_KEYS if details.get(k)]
    return [" · ".join(statuses)] if statuses else []


def _counts_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    counts = details.get("counts")
    if not isinstance(counts, Mapping) or not counts:
        return []
    return ["nodes: " + " · ".join(f"{m.text(v, 40)} {m.text(k, 40)}" for k, v in counts.items())]


def _shortfall_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    ratio, threshold = details.get("shortfall_ratio"), details.get("threshold_ratio")
    if ratio is None:
        return []
    try:
        against = f" (threshold {float(threshold):.0%})" if threshold is not None else ""
        return [f"shortfall {float(ratio):.0%}{against}"]
    except (TypeError, ValueError):
        return [f"shortfall {m.text(ratio, 40)}"]


def _node_count_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    parts = [f"{m.text(details[k], 20)} {label}" for k, label in m.node_counts if details.get(k) is not None]
    return ["nodes: " + " · ".join(parts)] if parts else []


def _image_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    current, desired = details.get("current_image_id"), details.get("desired_image_id")
    if not (current or desired):
        return []
    image = f"image {m.code(current or '?', m.name_limit)}"
    if desired and desired != current:
        image += f" (desired {m.code(desired, m.name_limit)})"
    return [image]


def _alarm_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    lines = []
    for key in ("triggered_alarms", "auto_rollback_alarms"):
        alarms = details.get(key)
        if alarms:
            values = alarms if isinstance(alarms, list) else [alarms]
            lines.append(f"{m.label(key.replace('_', ' '))}: {_entries(m.code(a, m.name_limit) for a in values)}")
    return lines


def _cluster_event_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    event = details.get("cluster_event")
    if not isinstance(event, Mapping) or not event:
        return []
    level = f" ({m.text(event['level'], 20)})" if event.get("level") else ""
    text = " — ".join(m.text(event[k], m.text_limit) for k in ("description", "failure_message") if event.get(k))
    return [f"cluster event{level}: {text}"] if text else []


def _also_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    """The same problem's lesser findings, folded into this alert (alerting.fold)."""
    also = details.get("also")
    return [f"also: {m.text(entry['summary'], m.text_limit)} ({m.text(entry.get('severity') or '?', 10)})"
            for entry in (also if isinstance(also, list) else []) if isinstance(entry, dict) and entry.get("summary")]


def _labelled_text_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    return [f"{label}: {m.text(details[key], m.text_limit)}" for key, label in _TEXT_KEYS if details.get(key)]


def _facts_lines(details: Mapping[str, Any], m: Markup) -> list[str]:
    facts = [f"{label} {m.code(details[key], limit)}" for key, label, limit in _FACTS if details.get(key)]
    return [" · ".join(facts)] if facts else []


#: the evidence of a finding, most useful first: (the keys read, what makes their lines)
_LINES: tuple[tuple[tuple[str, ...], Callable[[Mapping[str, Any], Markup], list[str]]], ...] = (
    (_STATUS_KEYS, _status_lines),
    (("counts",), _counts_lines),
    (("shortfall_ratio", "threshold_ratio"), _shortfall_lines),
    ((), _node_count_lines),  # the markup's node_counts
    (("taints",), lambda d, m: _drift_lines("taints", d.get("taints"), m)),
    (("labels",), lambda d, m: _drift_lines("labels", d.get("labels"), m)),
    (("current_image_id", "desired_image_id"), _image_lines),
    (("triggered_alarms", "auto_rollback_alarms"), _alarm_lines),
    (("cluster_event",), _cluster_event_lines),
    (("also",), _also_lines),
    (tuple(key for key, _ in _TEXT_KEYS), _labelled_text_lines),
    (tuple(key for key, _, _ in _FACTS), _facts_lines),
)
_SHOWN = frozenset().union(*(keys for keys, _ in _LINES))


def evidence_lines(details: Mapping[str, Any] | None, markup: Markup = PLAIN, limit: int = MAX_LINES) -> list[str]:
    """The evidence of a finding (its `details`, or a resolved item's `resolved_evidence`) as short
    lines written in `markup`, most useful first, at most `limit` (the last one then says how many more)."""
    if not details:
        return []
    lines = [line for _, make in _LINES for line in make(details, markup)]
    shown = _SHOWN | markup.skip | {key for key, _ in markup.node_counts}
    for key, raw in details.items():  # evidence a newer policy added: scalars only
        if key not in shown and raw not in (None, "", [], {}) and isinstance(raw, str | int | float | bool):
            lines.append(f"{markup.text(str(key).replace('_', ' '), 40)}: {markup.text(raw, markup.text_limit)}")
    if len(lines) > limit:
        lines = [*lines[: limit - 1], markup.aside(f"(+{len(lines) - limit + 1} more details)")]
    return lines if markup.line_limit is None else [clip(line, markup.line_limit) for line in lines]


def scope(finding: FindingFields) -> str:
    """'instance group p5-train, node i-0…' or 'the cluster'."""
    parts = []
    if finding.instance_group:
        parts.append(f"instance group {value(finding.instance_group, 80)}")
    if finding.node:
        parts.append(f"node {value(finding.node, 80)}")
    return ", ".join(parts) or "the cluster"


def lasted(item: ItemView, now: datetime | None) -> str | None:
    """How long the problem lasted (resolved) or has lasted by `now` (firing): '2h14m'."""
    span = item.lasted(now)
    return format_duration(timedelta(seconds=int(span.total_seconds()))) if span is not None else None


def since(item: ItemView) -> datetime | None:
    return item.first_seen or item.fired_at
