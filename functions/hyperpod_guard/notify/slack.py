"""Slack: render a Notification as Block Kit for an incoming webhook, and deliver it.

Everything we render comes from event data and cluster state, which we do not control: a
cluster, node or summary containing `<!channel>` must neither ping a channel nor become a
link. Every untrusted string goes through `escape_mrkdwn` (or `_plain` for plain_text),
and every text is cut to Slack's Block Kit limits so a huge failure message cannot make
Slack refuse the whole message with `invalid_blocks`.

The webhook URL is a secret (anyone holding it can post into the channel): it never appears
in an exception message or a log line; errors say "Slack webhook" instead.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from typing import Any

from ..constants import SLACK_MAX_ATTEMPTS, SLACK_TIMEOUT
from .message import TEST_NOTE, Notification, NotificationItem

# Block Kit limits (https://api.slack.com/reference/block-kit)
HEADER_LIMIT = 150  # header block: plain_text
SECTION_LIMIT = 3000  # section block: text object
CONTEXT_LIMIT = 3000
FALLBACK_LIMIT = 3000  # top-level `text` (Slack truncates at 40 000; notifications show far less)
BLOCK_LIMIT = 50

#: one detail line (a failure message, a recommendation) before it is cut
DETAIL_VALUE_LIMIT = 500
#: detail lines per finding: the rest is in the SNS message and the console
MAX_DETAIL_LINES = 8
#: entries per list (taints, labels, alarms)
MAX_LIST_ENTRIES = 5

ELLIPSIS = "…"
SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_EMOJI = "✅"
TEST_EMOJI = "🧪"

_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
_WORD_JOINER = "\u2060"


# -- escaping and cutting ------------------------------------------------------------------


def escape_mrkdwn(text: Any) -> str:
    """Make untrusted text inert inside a mrkdwn text object.

    Slack parses control sequences (`<!channel>`, `<@U123>`, `<#C1>`, `<http://x|click>`) from
    raw `<`...`>` and decodes exactly these three entities for display, so escaping `&`, `<`
    and `>` shows the text verbatim (including text that already looks like `&lt;!channel&gt;`).
    A bare `@channel`/`@here`/`@everyone` gets an invisible word joiner after the `@`, so that a
    webhook or client with name linking turned on cannot turn it into a broadcast either.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + _WORD_JOINER + m.group(1), text)


#: not text: C0/C1 control characters, and bidi overrides/isolates, with which a value could
#: reorder what Slack shows around it ("Trojan Source")
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _one_line(text: Any) -> str:
    return " ".join(_NOT_TEXT.sub(" ", str(text)).split())


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut (on raw text, before escaping)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def _cut(text: str, limit: int) -> str:
    """Cut already escaped mrkdwn to `limit`, never leaving half an entity (`&am…`)."""
    if len(text) <= limit:
        return text
    head = _PARTIAL_ENTITY.sub("", text[: limit - 1])
    return head + ELLIPSIS


def _plain(text: Any, limit: int) -> str:
    """Untrusted text for a plain_text object: one line, no angle brackets, at most `limit`.

    Slack shows plain_text verbatim, so no escaping is needed for safety; angle brackets
    become look-alikes anyway so the payload never carries a raw control sequence.
    """
    return _clip(_one_line(text).replace("<", "‹").replace(">", "›"), limit)


def _text(value: Any, limit: int = DETAIL_VALUE_LIMIT) -> str:
    """Untrusted free text (summary, failure message) as escaped one-line mrkdwn."""
    return escape_mrkdwn(_clip(_one_line(value), limit))


def _code(value: Any, limit: int = 200) -> str:
    """Untrusted short value (a name, a taint, an image id) as an inline code span."""
    text = _clip(_one_line(value), limit).replace("`", "ˋ")  # a backtick would close the span
    return f"`{escape_mrkdwn(text)}`" if text else "_(empty)_"


# -- console link ---------------------------------------------------------------------------


def console_url(region: str, cluster: str) -> str:
    """The SageMaker console page of a HyperPod cluster.

    The region becomes part of the host name, so it must look like a region: a value such as
    `evil.example/x#` would otherwise send people elsewhere (ValueError then).
    """
    if not _REGION.match(region or ""):
        raise ValueError("not an AWS region name")
    name = urllib.parse.quote(cluster, safe="")
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/cluster-management/{name}"


# -- details --------------------------------------------------------------------------------

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
_SKIP = {"check"}  # internal to the policy; the summary already says which check


def _entries(values: Iterable[str]) -> str:
    values = list(values)
    shown = ", ".join(values[:MAX_LIST_ENTRIES])
    return shown + (f" (+{len(values) - MAX_LIST_ENTRIES} more)" if len(values) > MAX_LIST_ENTRIES else "")


def _pair(pair: Any) -> str:
    """A changed taint or label: {current, desired} or {declared, required}."""
    if not isinstance(pair, Mapping):
        return _code(pair)
    for have, want in (("current", "desired"), ("declared", "required")):
        if have in pair or want in pair:
            return f"{have} {_code(pair.get(have) or '')} → {want} {_code(pair.get(want) or '')}"
    return _code(json.dumps(pair, sort_keys=True, default=str))


def _drift_lines(kind: str, drift: Any) -> list[str]:
    """taint-drift evidence: {"missing": ..., "unexpected": ..., "changed": ...}."""
    if not isinstance(drift, Mapping):
        return []
    lines = []
    for what in ("missing", "unexpected", "changed"):
        value = drift.get(what)
        if not value:
            continue
        if isinstance(value, Mapping):  # labels: {key: value} or {key: {current, desired}}
            if what == "changed":
                items = [f"{_code(k)}: {_pair(v)}" for k, v in value.items()]
            else:
                items = [_code(f"{k}={v}") for k, v in value.items()]
        elif isinstance(value, list):  # taints: ["k=v:Effect"] or [{key, current, desired}]
            items = [f"{_code(v['key'])}: {_pair(v)}" if isinstance(v, Mapping) and "key" in v else _code(v)
                     for v in value]
        else:
            items = [_code(value)]
        lines.append(f"{kind} {what}: {_entries(items)}")
    return lines


def _counts_line(counts: Any) -> str | None:
    if not isinstance(counts, Mapping) or not counts:
        return None
    parts = [f"{_text(v, 40)} {_text(k, 40)}" for k, v in counts.items()]
    return "nodes: " + " · ".join(parts)


def _cluster_event_line(event: Any) -> str | None:
    if not isinstance(event, Mapping) or not event:
        return None
    level = f" ({_text(event['level'], 20)})" if event.get("level") else ""
    text = " — ".join(_text(event[k]) for k in ("description", "failure_message") if event.get(k))
    return f"cluster event{level}: {text}" if text else None


def _status_lines(details: Mapping[str, Any]) -> list[str]:
    statuses = [f"{escape_mrkdwn(k.replace('_', ' '))} {_code(details[k], 60)}" for k in _STATUS_KEYS if details.get(k)]
    return [" · ".join(statuses)] if statuses else []


def _shortfall_lines(details: Mapping[str, Any]) -> list[str]:
    ratio, threshold = details.get("shortfall_ratio"), details.get("threshold_ratio")
    if ratio is None:
        return []
    try:
        against = f" (threshold {float(threshold):.0%})" if threshold is not None else ""
        return [f"shortfall {float(ratio):.0%}{against}"]
    except (TypeError, ValueError):
        return [f"shortfall {_text(ratio, 40)}"]


def _node_count_lines(details: Mapping[str, Any]) -> list[str]:
    node_counts = (("current_count", "current"), ("target_state_count", "on target image"))
    parts = [f"{_text(details[k], 20)} {label}" for k, label in node_counts if details.get(k) is not None]
    return ["nodes: " + " · ".join(parts)] if parts else []


def _image_lines(details: Mapping[str, Any]) -> list[str]:
    current, desired = details.get("current_image_id"), details.get("desired_image_id")
    if not (current or desired):
        return []
    image = f"image {_code(current or '?')}"
    if desired and desired != current:
        image += f" (desired {_code(desired)})"
    return [image]


def _alarm_lines(details: Mapping[str, Any]) -> list[str]:
    lines = []
    for key in ("triggered_alarms", "auto_rollback_alarms"):
        alarms = details.get(key)
        if alarms:
            values = alarms if isinstance(alarms, list) else [alarms]
            lines.append(f"{escape_mrkdwn(key.replace('_', ' '))}: {_entries(_code(a) for a in values)}")
    return lines


def _also_lines(details: Mapping[str, Any]) -> list[str]:
    """The same problem's lesser findings, folded into this alert (alerting.fold)."""
    return [f"also: {_text(entry['summary'])} ({_text(entry.get('severity') or '?', 10)})"
            for entry in details.get("also") or [] if isinstance(entry, dict) and entry.get("summary")]


def _labelled_text_lines(details: Mapping[str, Any]) -> list[str]:
    return [f"{label}: {_text(details[key])}" for key, label in _TEXT_KEYS if details.get(key)]


#: short facts shown together on one line: (key, label, longest value)
_FACTS = (("repair_action", "repair action", 60), ("node_recovery", "node recovery", 60),
          ("critical_after", "critical after", 30), ("instance_type", "instance type", 60))


def _facts_lines(details: Mapping[str, Any]) -> list[str]:
    facts = [f"{label} {_code(details[key], limit)}" for key, label, limit in _FACTS if details.get(key)]
    return [" · ".join(facts)] if facts else []


def _optional(line: str | None) -> list[str]:
    return [line] if line else []


DetailLines = Callable[[Mapping[str, Any]], list[str]]
#: the evidence of a finding, most useful first: (the keys read, what makes their lines)
_DETAIL_LINES: tuple[tuple[tuple[str, ...], DetailLines], ...] = (
    (_STATUS_KEYS, _status_lines),
    (("counts",), lambda d: _optional(_counts_line(d.get("counts")))),
    (("shortfall_ratio", "threshold_ratio"), _shortfall_lines),
    (("current_count", "target_state_count"), _node_count_lines),
    (("taints",), lambda d: _drift_lines("taints", d.get("taints"))),
    (("labels",), lambda d: _drift_lines("labels", d.get("labels"))),
    (("current_image_id", "desired_image_id"), _image_lines),
    (("triggered_alarms", "auto_rollback_alarms"), _alarm_lines),
    (("cluster_event",), lambda d: _optional(_cluster_event_line(d.get("cluster_event")))),
    (("also",), _also_lines),
    (tuple(key for key, _ in _TEXT_KEYS), _labelled_text_lines),
    (tuple(key for key, _, _ in _FACTS), _facts_lines),
)
_SHOWN = frozenset(_SKIP).union(*(keys for keys, _ in _DETAIL_LINES))


def detail_lines(details: Mapping[str, Any]) -> list[str]:
    """The evidence of a finding as short mrkdwn lines, most useful first, at most MAX_DETAIL_LINES."""
    lines = [line for _, make in _DETAIL_LINES for line in make(details)]
    for key, value in details.items():  # evidence a newer policy added: scalars only
        if key not in _SHOWN and value not in (None, "", [], {}) and isinstance(value, str | int | float | bool):
            lines.append(f"{_text(key.replace('_', ' '), 40)}: {_text(value)}")
    if len(lines) > MAX_DETAIL_LINES:
        lines = [*lines[: MAX_DETAIL_LINES - 1], f"_(+{len(lines) - MAX_DETAIL_LINES + 1} more details)_"]
    return lines


# -- blocks ---------------------------------------------------------------------------------


def _scope(item: NotificationItem) -> str:
    f = item.finding
    parts = []
    if f.instance_group:
        parts.append(f"group {_code(f.instance_group, 80)}")
    if f.node:
        parts.append(f"node {_code(f.node, 80)}")
    return " · ".join(parts) or "cluster"


def item_text(item: NotificationItem) -> str:
    """One finding as the mrkdwn text of a section (≤ SECTION_LIMIT)."""
    f = item.finding
    severity = f.severity.value
    if item.reason == "resolved":
        head = f"{RESOLVED_EMOJI} *Resolved* · ~{severity}~"
    else:
        head = f"{SEVERITY_EMOJI.get(severity, '⚪')} *{severity.upper()}*"
    lines = [f"{head} · {_code(f.policy, 60)} · {_scope(item)}", _text(f.summary, SECTION_LIMIT)]
    since = f" (firing since {item.first_seen:%Y-%m-%d %H:%M} UTC)" if item.first_seen else ""
    if item.reason == "repeat":
        lines.append(f"_🔁 Still firing: repeat reminder{since}_")
    elif item.reason == "escalated":
        lines.append(f"_⏫ Escalated to {severity}{since}_")
    lines.extend(f"• {line}" for line in detail_lines(f.details))
    lines.extend(f"🛠 _Remediation:_ {_text(action, 300)}" for action in item.actions)
    return _cut("\n".join(lines), SECTION_LIMIT)


def _ordered(items: Iterable[NotificationItem]) -> list[NotificationItem]:
    """Firing before resolved, the most severe first; otherwise the message's order."""
    return sorted(items, key=lambda i: (i.status == "resolved", -i.finding.severity.rank))


def header_text(notification: Notification) -> str:
    firing, resolved = len(notification.firing), len(notification.resolved)
    if firing:
        emoji = SEVERITY_EMOJI.get(notification.severity.value, "⚪")
        tail = f": {firing} firing" + (f", {resolved} resolved" if resolved else "")
    else:
        emoji, tail = RESOLVED_EMOJI, ": resolved"
    if notification.test:
        emoji = f"{TEST_EMOJI} TEST {emoji}"
    room = HEADER_LIMIT - len(emoji) - 1 - len(tail)
    return f"{emoji} {_plain(notification.cluster, room)}{tail}"


def render(notification: Notification) -> dict[str, Any]:
    """The incoming-webhook payload (Block Kit) for one notification."""
    firing, resolved = len(notification.firing), len(notification.resolved)
    context = [f"HyperPod cluster {_code(notification.cluster, 100)}"]
    if notification.region:
        context.append(f"region {_code(notification.region, 40)}")
    context.append(f"{firing} firing · {resolved} resolved")
    if notification.test:
        receiver = f" for receiver {_code(notification.receiver, 80)}" if notification.receiver else ""
        context.insert(0, f"*TEST notification*{receiver}, {escape_mrkdwn(TEST_NOTE)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header_text(notification), "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(context), CONTEXT_LIMIT)}]},
    ]

    actions: list[dict[str, Any]] = []
    if notification.region:
        try:
            url = console_url(notification.region, notification.cluster)
        except ValueError:
            url = None
        if url and len(url) <= 3000:
            actions.append({"type": "actions", "elements": [{
                "type": "button", "action_id": "open-console", "url": url,
                "text": {"type": "plain_text", "text": "Open cluster in the SageMaker console", "emoji": True},
            }]})

    items = _ordered(notification.items)
    room = BLOCK_LIMIT - len(blocks) - len(actions)
    shown, rest = (items, []) if len(items) <= room else (items[: room - 1], items[room - 1:])
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": item_text(i)}} for i in shown)
    if rest:
        more_firing = sum(1 for i in rest if i.status == "firing")
        text = (f"…and {len(rest)} more finding{'s' if len(rest) != 1 else ''} "
                f"({more_firing} firing, {len(rest) - more_firing} resolved): see the SNS message or the console")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.extend(actions)
    return {
        "text": _cut(escape_mrkdwn(notification.subject), FALLBACK_LIMIT),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


# -- delivery -------------------------------------------------------------------------------


class SlackError(Exception):
    """Delivery to the Slack webhook failed. Messages never contain the webhook URL."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class SlackPermanentError(SlackError):
    """Slack refused the message for good (400 invalid_payload, 403, 404 no_service, 410)."""


class SlackDeliveryError(SlackError):
    """Transient failures (429, 5xx, network, timeouts) until the attempts or the time ran out."""


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_RETRY_AFTER = 30.0
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
#: the least time worth starting a request with
MIN_ATTEMPT_TIME = 0.05
#: seconds per request. Slack's incoming webhooks answer in well under a second, with spikes of
#: several seconds during its incidents; a request Slack received but answered after our timeout
#: is retried and may be posted twice, so the timeout is long (3x a 5 s spike) and a request still
#: unanswered after it is most likely lost. Four attempts of 15 s plus backoff (at most 5.25 s)
#: fit the notifier's 90 s Lambda timeout with 10 s kept back to record the delivery. (SLACK_TIMEOUT's default)
DEFAULT_TIMEOUT: float = SLACK_TIMEOUT.default_value


def valid_webhook_url(url: str) -> bool:
    """https with a host; plain http only to a loopback host (the local sink in tests and the demo)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname or any(c.isspace() for c in url):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


def _reason(exc: BaseException) -> str:
    """A failure in words that cannot carry the URL (only the socket error's type and text)."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def _maybe_delivered(exc: BaseException) -> bool:
    """Whether Slack may have received the whole request although the attempt failed.

    urllib raises URLError when connecting, the TLS handshake or sending the request fails:
    Slack has no complete request then, and retrying is safe. What fails later (a timeout
    waiting for the answer, the connection reset or closed before a status line) happened
    after the request was sent: Slack may have posted it, and a retry may post it twice.
    """
    return not isinstance(exc, urllib.error.URLError | ValueError)


def _body(response: Any) -> str:
    """The start of the answer's body, or "" when it is lost on the way: the status line has
    already said what Slack did (a 2xx whose body times out was posted; retrying would repeat it)."""
    try:
        return response.read(1000).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


class SlackSender:
    """POST a payload to an incoming webhook with retries.

    2xx: done. 429: wait `Retry-After` (capped). 5xx, network errors, timeouts: exponential
    backoff with jitter. Other 4xx: SlackPermanentError at once. All within `max_attempts` and,
    when given, before `deadline` (a `time.monotonic()` value, e.g. the Lambda's remaining time
    minus a margin).

    A failure before the request was sent (connection refused, connect timeout) is retried
    freely. One after it (no answer within `timeout`, the connection dropped) is retried too,
    so that no alert is lost, but Slack may have posted it: `on_unanswered(attempt, reason)`
    is called for each, before any retry, and `unanswered` counts them.
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = SLACK_MAX_ATTEMPTS.default_value,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        on_unanswered: Callable[[int, str], None] | None = None,
    ):
        if not valid_webhook_url(webhook_url):
            raise SlackPermanentError("Slack webhook URL is not an https URL")
        self._url = webhook_url
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self.deadline = deadline
        self._clock = clock
        self._jitter = jitter
        self._on_unanswered = on_unanswered
        #: attempts the last send() made
        self.attempts = 0
        #: attempts of the last send() that Slack may have posted without answering
        self.unanswered = 0

    def __repr__(self) -> str:  # never the URL
        return f"SlackSender(timeout={self.timeout}, max_attempts={self.max_attempts})"

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def _post(self, body: bytes, timeout: float) -> tuple[int, Message | Mapping[str, str], str]:
        request = urllib.request.Request(  # noqa: S310 - the URL passed valid_webhook_url in __init__
            self._url, data=body, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "hyperpod-guard"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                return response.status, response.headers, _body(response)
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read(1000).decode("utf-8", "replace") if exc.fp else ""
            except (OSError, http.client.HTTPException):
                text = ""
            finally:
                exc.close()
            return exc.code, exc.headers or {}, text

    def send(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        last = "no attempt made"
        status: int | None = None
        self.attempts = self.unanswered = 0
        for attempt in range(1, self.max_attempts + 1):
            remaining = self._remaining()
            if remaining is not None and remaining < MIN_ATTEMPT_TIME:
                last += "; no time left before the deadline"
                break
            timeout = self.timeout if remaining is None else min(self.timeout, remaining)
            self.attempts = attempt
            retry_after = None
            try:
                status, headers, text = self._post(body, timeout)
            except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, timeouts, resets
                status, last = None, _reason(exc)
                if _maybe_delivered(exc):
                    self.unanswered += 1
                    if self._on_unanswered is not None:
                        self._on_unanswered(attempt, last)
            else:
                if 200 <= status < 300:
                    return
                answer = _one_line(text)[:100]
                last = f"HTTP {status}" + (f" {answer}" if answer else "")
                if status == 429:
                    retry_after = _retry_after(headers.get("Retry-After"))
                elif status < 500:
                    raise SlackPermanentError(f"Slack webhook refused the message: {last}",
                                              status=status, attempts=attempt)
            if attempt == self.max_attempts:
                break
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER)
            else:
                base = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
                delay = base * (1 + 0.5 * self._jitter())
            remaining = self._remaining()
            if remaining is not None and remaining - delay < MIN_ATTEMPT_TIME:
                last += "; no time left before the deadline"
                break
            self._sleep(delay)
        raise SlackDeliveryError(
            f"Slack webhook: delivery failed after {self.attempts} attempt{'s' if self.attempts != 1 else ''}: {last}",
            status=status, attempts=self.attempts,
        )
