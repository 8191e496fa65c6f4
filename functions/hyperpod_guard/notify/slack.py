"""Slack: render a Notification as Block Kit for an incoming webhook, and deliver it; in app mode, render
the parent message (a state line per item, buttons) and its thread's replies (`render_parent`, `render_reply`).

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
from datetime import datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING, Any

from ..constants import SLACK_MAX_ATTEMPTS, SLACK_TIMEOUT
from ..timeutil import format_duration
from ..workload import words
from . import evidence
from .buttons import ActionId, ButtonValue
from .evidence import console_url
from .message import TEST_NOTE, ApprovalRef, Notification, NotificationItem

if TYPE_CHECKING:
    from .digest import Digest
    from .slack_threads import ItemState

# Block Kit limits (https://api.slack.com/reference/block-kit)
HEADER_LIMIT = 150  # header block: plain_text
SECTION_LIMIT = 3000  # section block: text object
CONTEXT_LIMIT = 3000
FALLBACK_LIMIT = 3000  # top-level `text` (Slack truncates at 40 000; notifications show far less)
BLOCK_LIMIT = 50
ACTIONS_LIMIT = 25  # elements of one actions block
BUTTON_TEXT_LIMIT = 75
URL_LIMIT = 3000  # a button's url

#: one detail line (a failure message, a recommendation) before it is cut
DETAIL_VALUE_LIMIT = 500
#: detail lines per finding: the rest is in the SNS message and the console
MAX_DETAIL_LINES = 8

ELLIPSIS = "…"
SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_EMOJI = "✅"
TEST_EMOJI = "🧪"

#: the firing summary a resolved item still shows, after "was:"
WAS_LIMIT = 200
#: the summary (or what is true now) of one item: the rest of its section (times, evidence, next step) must fit
SUMMARY_LIMIT = 1000
#: tags in the context line: the message is not the place for all 50
MAX_TAGS = 3
#: jobs one item lists (words.lines' limit; the rest are counted), in a message and in a thread reply
WORKLOAD_JOBS = 5
REPLY_WORKLOAD_JOBS = 2
#: the next step, the hint and the workload of one item: kept whole, the evidence above them is cut instead
WORKLOAD_TEXT_LIMIT = 1500

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
#: what a cut can leave of a control sequence we wrote (a date, a mention): every other `<` is escaped
_PARTIAL_SEQUENCE = re.compile(r"<[^<>]*$")
#: the mentions a route may add (routing.mention_syntax): a user group, a user, @here, @channel. The rules
#: are trusted and validated, but a mention is the one raw control sequence we pass on: check it again
_RUNBOOK_URL = re.compile(r'^https://[^\s<>|"\\\x00-\x1f\x7f-\x9f]+$')
MENTION = re.compile(r"^<(!subteam\^[A-Z0-9]+|@[UW][A-Z0-9]+|!here|!channel)>$")
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


#: one line of text: control characters, line separators, bidi controls and lone surrogates become spaces
_one_line = evidence.one_line


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut (on raw text, before escaping)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def _cut(text: str, limit: int) -> str:
    """Cut already escaped mrkdwn to `limit`, never leaving half an entity (`&am…`) or half of a
    control sequence we wrote (`<!date^…` without its `>`)."""
    if len(text) <= limit:
        return text
    head = _PARTIAL_SEQUENCE.sub("", _PARTIAL_ENTITY.sub("", text[: limit - 1]))
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


# -- times ----------------------------------------------------------------------------------


def slack_date(moment: datetime) -> str:
    """A moment as Slack date formatting: each reader sees it in their own time zone ("Nov 30th
    7:16 AM"); clients that cannot (and notifications) show the fallback, the time in UTC."""
    fallback = f"{moment:%Y-%m-%d %H:%M} UTC"
    epoch = int(moment.timestamp())
    if epoch < 0:  # before 1970: not a date Slack formats, and not one an alert has
        return fallback
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def duration(delta: timedelta) -> str:
    """How long, as a person reads it in an alert: whole minutes ("2h14m") from a minute on, never negative."""
    seconds = max(int(delta.total_seconds()), 0)
    return format_duration(timedelta(seconds=seconds - seconds % 60 if seconds >= 60 else seconds))


# -- details --------------------------------------------------------------------------------


def _aside(note: str) -> str:
    return f"_{note}_"


#: the evidence as mrkdwn: a short value as an inline code span, free text and labels escaped
SLACK = evidence.Markup(
    code=_code, text=_text, label=escape_mrkdwn, aside=_aside, text_limit=DETAIL_VALUE_LIMIT, name_limit=200,
    line_limit=None,  # the section is cut as a whole (_cut), never inside an entity
    none="",  # `_(empty)_`
    node_counts=(("current_count", "current"), ("target_count", "target"), ("target_state_count", "on target image")),
    skip=frozenset({"check"}),  # internal to the policy; the summary already says which check
)


def detail_lines(details: Mapping[str, Any]) -> list[str]:
    """The evidence of a finding as short mrkdwn lines, most useful first, at most MAX_DETAIL_LINES."""
    return evidence.evidence_lines(details, SLACK, MAX_DETAIL_LINES)


# -- blocks ---------------------------------------------------------------------------------


def _scope(item: NotificationItem) -> str:
    f = item.finding
    parts = []
    if f.instance_group:
        parts.append(f"group {_code(f.instance_group, 80)}")
    if f.node:
        parts.append(f"node {_code(f.node, 80)}")
    return " · ".join(parts) or "cluster"


def _since_line(item: NotificationItem, sent_at: datetime | None) -> list[str]:
    """Firing: since when (first seen) and for how long by the time the message was sent."""
    if item.first_seen is None:
        return []
    lasted = item.lasted(sent_at)
    for_how_long = f"for {duration(lasted)}, " if lasted is not None else ""
    return [f"🕒 Firing {for_how_long}since {slack_date(item.first_seen)}"]


def _cleared_line(item: NotificationItem, sent_at: datetime | None) -> list[str]:
    """Resolved: when it cleared and how long it lasted."""
    parts = []
    if item.resolved_at is not None:
        parts.append(f"Cleared {slack_date(item.resolved_at)}")
    lasted = item.lasted(sent_at) if item.resolved_at is not None else None
    if lasted is not None:
        parts.append(f"lasted {duration(lasted)}")
    return [f"🕒 {', '.join(parts)}"] if parts else []


def _firing_lines(item: NotificationItem, sent_at: datetime | None) -> list[str]:
    f = item.finding
    lines = [_text(f.summary, SUMMARY_LIMIT)]
    if item.reason == "repeat":
        lines.append("_🔁 Repeat reminder: still firing_")
    elif item.reason == "escalated":
        lines.append(f"_⏫ Escalated to {f.severity.value}_")
    lines.extend(_since_line(item, sent_at))
    lines.extend(f"• {line}" for line in detail_lines(f.details))
    lines.extend(f"🛠 _Remediation:_ {_text(action, 300)}" for action in item.actions)
    lines.extend(_next_lines(item))
    return lines


def _next_lines(item: NotificationItem) -> list[str]:
    return [f"➡️ _Next:_ {_text(item.next_step, 300)}"] if item.next_step else []


def workload_lines(item: NotificationItem, jobs: int = WORKLOAD_JOBS) -> list[str]:
    """A firing item's workload (words.py): the hint (read with the next step, just above it), then the
    "Workload" section; none for a resolved item or one without a workload."""
    workload = evidence.firing_workload(item)
    if workload is None:
        return []
    hint = words.hint(workload)
    lines = [f"💡 {_text(hint, words.HINT_LIMIT)}"] if hint else []
    lines.append(f"*Workload* on {_code(workload.node, 80)}")
    lines.extend(f"• {_text(line, words.LINE_LIMIT)}" for line in words.lines(workload, jobs))
    return lines


def _with_workload(item: NotificationItem, lines: list[str], head: list[str], jobs: int, limit: int) -> str:
    """`lines`, then `head` (the next step) and the workload, in at most `limit`: the tail kept whole within
    WORKLOAD_TEXT_LIMIT (fewer jobs listed, the rest counted, while it does not fit), the lines above it cut to
    make room."""
    tail = words.fitting(lambda listed: "\n".join([*head, *workload_lines(item, listed)]), jobs, WORKLOAD_TEXT_LIMIT)
    end = _cut(tail, WORKLOAD_TEXT_LIMIT)
    return _cut("\n".join(lines), limit - len(end) - 1) + "\n" + end


def _resolved_lines(item: NotificationItem, sent_at: datetime | None) -> list[str]:
    """What is true now (re-read when it cleared), not the firing evidence: that is only a "was:" line."""
    now = dict(item.resolved_evidence or {})
    summary_now = now.pop("summary", None)
    lines = [_text(summary_now, SUMMARY_LIMIT)] if summary_now else []
    lines.append(f"_was:_ {_text(item.finding.summary, WAS_LIMIT)}")
    lines.extend(_cleared_line(item, sent_at))
    lines.extend(f"• {line}" for line in detail_lines(now))
    return lines


def item_text(item: NotificationItem, sent_at: datetime | None = None, limit: int = SECTION_LIMIT) -> str:
    """One finding as the mrkdwn text of a section (≤ `limit`); `sent_at`: the message's, for how long
    it has been firing."""
    f = item.finding
    severity = f.severity.value
    if item.status == "resolved":
        head = f"{RESOLVED_EMOJI} *Resolved* · ~{severity}~"
        lines = _resolved_lines(item, sent_at)
    else:
        head = f"{SEVERITY_EMOJI.get(severity, '⚪')} *{severity.upper()}*"
        lines = _firing_lines(item, sent_at)
    lines = [f"{head} · {_code(f.policy, 60)} · {_scope(item)}", *lines]
    if workload_lines(item):  # the next step moves into the kept tail, with the hint right under it
        body = lines[: len(lines) - len(_next_lines(item))]
        return _with_workload(item, body, _next_lines(item), WORKLOAD_JOBS, limit)
    return _cut("\n".join(lines), limit)


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


def _context(notification: Notification) -> str:
    """Where: cluster, account, region, a few tags; then the counts."""
    firing, resolved = len(notification.firing), len(notification.resolved)
    context = [f"HyperPod cluster {_code(notification.cluster, 100)}"]
    if notification.account:
        context.append(f"account {_code(notification.account, 20)}")
    if notification.region:
        context.append(f"region {_code(notification.region, 40)}")
    if notification.tags:
        pairs = notification.tag_pairs
        more = f" (+{len(pairs) - MAX_TAGS} more)" if len(pairs) > MAX_TAGS else ""
        context.append("tags " + " ".join(_code(pair, 40) for pair in pairs[:MAX_TAGS]) + more)
    context.append(f"{firing} firing · {resolved} resolved")
    if notification.test:
        receiver = f" for receiver {_code(notification.receiver, 80)}" if notification.receiver else ""
        context.insert(0, f"*TEST notification*{receiver}, {escape_mrkdwn(TEST_NOTE)}")
    return _cut(" · ".join(context), CONTEXT_LIMIT)


def _mention_text(notification: Notification, receiver: str) -> str | None:
    """The first line for `receiver`: the mentions its routes add to firing items, and what they are
    for ("<!subteam^S0123ABCD> 1 critical alert"); None when none adds one. Resolved items never mention."""
    mentions: dict[str, None] = {}
    severities: dict[str, int] = {}
    for item in _ordered(notification.firing):
        ref = next((r for r in item.receivers if r.name == receiver), None)
        if ref is None or not ref.mention or not MENTION.match(ref.mention):
            continue
        mentions[ref.mention] = None
        severity = item.finding.severity.value
        severities[severity] = severities.get(severity, 0) + 1
    if not mentions:
        return None
    count = sum(severities.values())
    if len(severities) == 1:
        what = f"{count} {next(iter(severities))} alert{'s' if count != 1 else ''}"
    else:
        what = f"{count} alerts: " + ", ".join(f"{n} {severity}" for severity, n in severities.items())
    return f"{' '.join(mentions)} {what}"


def runbook_url(url: str | None) -> str | None:
    """A runbook link worth a button: https with a host, nothing that cannot be in a URL (spaces,
    `<>|"`, control characters), within Slack's url limit. The rules validate it already
    (policy_settings.RunbookUrl); a message is read back from SNS, so check again."""
    if not url or len(url) > URL_LIMIT or not _RUNBOOK_URL.match(url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme == "https" and parts.hostname else None


def _buttons(notification: Notification, items: Iterable[NotificationItem]) -> list[dict[str, Any]]:
    """The console button, then one "Runbook: <policy>" button per runbook of a firing item (each once)."""
    buttons: list[dict[str, Any]] = []
    if notification.region:
        try:
            url: str | None = console_url(notification.region, notification.cluster)
        except ValueError:
            url = None
        if url and len(url) <= URL_LIMIT:
            buttons.append({
                "type": "button", "action_id": "open-console", "url": url,
                "text": {"type": "plain_text", "text": "Open cluster in the SageMaker console", "emoji": True},
            })
    runbooks: dict[str, str] = {}
    for item in items:
        url = runbook_url(item.runbook_url) if item.status == "firing" else None
        if url and url not in runbooks:
            runbooks[url] = item.finding.policy
    for n, (url, policy) in enumerate(runbooks.items()):
        if len(buttons) == ACTIONS_LIMIT:
            break
        buttons.append({
            "type": "button", "action_id": f"runbook-{n}", "url": url,
            "text": {"type": "plain_text", "text": _plain(f"Runbook: {policy}", BUTTON_TEXT_LIMIT), "emoji": True},
        })
    return buttons


def _head(notification: Notification, receiver: str | None) -> list[dict[str, Any]]:
    """What every message starts with: the header, the cluster's context, and the receiver's mention."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header_text(notification), "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _context(notification)}]},
    ]
    mention = _mention_text(notification, receiver) if receiver else None
    if mention:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    return blocks


def _more(rest: list[NotificationItem]) -> dict[str, Any]:
    """The section that stands for the items a message has no room for (Slack: 50 blocks)."""
    firing = sum(1 for i in rest if i.status == "firing")
    text = (f"…and {len(rest)} more finding{'s' if len(rest) != 1 else ''} "
            f"({firing} firing, {len(rest) - firing} resolved): see the SNS message or the console")
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _payload(notification: Notification, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        # the push notification and the fallback: a sentence that fits a phone's preview, cut on a word
        "text": _cut(escape_mrkdwn(_one_line(notification.preview)), FALLBACK_LIMIT),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def render(notification: Notification, receiver: str | None = None) -> dict[str, Any]:
    """The incoming-webhook payload (Block Kit) for one notification; `receiver`: the receiver it is
    posted to (Notification.for_receiver), whose routes' mentions it carries."""
    blocks = _head(notification, receiver)

    items = _ordered(notification.items)
    buttons = _buttons(notification, items)
    actions = [{"type": "actions", "elements": buttons}] if buttons else []
    room = BLOCK_LIMIT - len(blocks) - len(actions)
    shown, rest = (items, []) if len(items) <= room else (items[: room - 1], items[room - 1:])
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": item_text(i, notification.sent_at)}}
                  for i in shown)
    if rest:
        blocks.append(_more(rest))
    blocks.extend(actions)
    return _payload(notification, blocks)


# -- app mode: the parent message and its thread's replies ---------------------------------------
# A Slack app posts the first message of an alert episode (the parent, with buttons: notify/buttons.py)
# and updates it as the alert changes state; repeats, escalations, remediation news and the resolved
# are short replies in its thread (notify/delivery.py AppDelivery, notify/slack_threads.py).

#: firing items of a grouped parent that get buttons (an actions block each, of Slack's 50 blocks):
#: the others are acted on from their own messages or with the CLI, and the parent says so
MAX_BUTTON_ITEMS = 5
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def _user(user_id: str | None) -> str:
    """A Slack user id as a mention (it shows the name); anything else as inert text."""
    if user_id and _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return _code(user_id or "someone", 80)


def state_line(state: ItemState | None) -> str:
    """The state of one item on its parent: firing, acknowledged by whom and until when, resolved when."""
    if state is None or state.state == "firing":
        return "🔥 *Firing*"
    if state.state == "acknowledged":
        when = f" {slack_date(state.at)}" if state.at else ""
        until = f"repeats held until {slack_date(state.until)}" if state.until else "repeats held until it resolves"
        return f"👀 *Acknowledged* by {_user(state.by)}{when}: {until}"
    return f"{RESOLVED_EMOJI} *Resolved*" + (f" {slack_date(state.at)}" if state.at else "")


def _button(text: str, action: ActionId, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action.value, "value": value,
                              "text": {"type": "plain_text", "text": text, "emoji": True}}
    if style:
        button["style"] = style
    return button


def _pending_approval(item: NotificationItem, now: datetime | None) -> ApprovalRef | None:
    """The item's approval while it waits for a decision (and has not expired by `now`)."""
    approval = item.approval
    if approval is None or approval.status != "pending":
        return None
    expires = approval.expires_at
    return None if expires is not None and now is not None and expires <= now else approval


def item_buttons(item: NotificationItem, state: ItemState | None, now: datetime | None) -> list[dict[str, Any]]:
    """Acknowledge (while nobody has), Silence 1h/4h/24h, and Approve / Reject while an approval waits;
    none for a resolved item or one whose episode is unknown (first_seen: the buttons name it)."""
    if item.status != "firing" or item.first_seen is None or (state is not None and state.state == "resolved"):
        return []
    f = item.finding
    try:
        episode = ButtonValue(cluster=f.cluster, fingerprint=f.fingerprint, node=f.node, first_seen=item.first_seen)
        value = episode.encode()
        approval = _pending_approval(item, now)
        decision = episode.model_copy(update={"approval": approval.id}).encode() if approval else None
    except ValueError:  # a value over Slack's limit: no buttons rather than a message Slack refuses
        return []
    buttons = []
    if state is None or state.state == "firing":
        buttons.append(_button("Acknowledge", ActionId.ACKNOWLEDGE, value, "primary"))
    buttons.extend(_button(f"Silence {label}", action, value)
                   for action, label in ((ActionId.SILENCE_1H, "1h"), (ActionId.SILENCE_4H, "4h"),
                                         (ActionId.SILENCE_24H, "24h")))
    if decision is not None:
        buttons.append(_button("Approve", ActionId.APPROVE, decision, "primary"))
        buttons.append(_button("Reject", ActionId.REJECT, decision, "danger"))
    return buttons


def render_parent(notification: Notification, receiver: str | None,
                  states: Mapping[str, ItemState]) -> dict[str, Any]:
    """The app-mode parent message: the webhook's message with a state line per item and, on the
    first MAX_BUTTON_ITEMS firing items, their buttons (chat.postMessage / chat.update payload)."""
    blocks = _head(notification, receiver)
    items = _ordered(notification.items)
    now = notification.sent_at
    actionable = [i for i in items if item_buttons(i, states.get(i.finding.fingerprint), now)]
    with_buttons = {id(i) for i in actionable[:MAX_BUTTON_ITEMS]}
    if len(actionable) > MAX_BUTTON_ITEMS:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Buttons on the first {MAX_BUTTON_ITEMS} of {len(actionable)} firing alerts: act on the others "
            "from their own messages or with `hyperpod-guard silence`")}]})
    links = _buttons(notification, items)
    actions = [{"type": "actions", "elements": links}] if links else []
    room = BLOCK_LIMIT - len(blocks) - len(actions) - len(with_buttons)
    shown, rest = (items, []) if len(items) <= room else (items[: room - 1], items[room - 1:])
    for item in shown:
        state = states.get(item.finding.fingerprint)
        line = state_line(state)
        text = item_text(item, notification.sent_at, SECTION_LIMIT - len(line) - 1) + "\n" + line
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        if id(item) in with_buttons:
            blocks.append({"type": "actions", "elements": item_buttons(item, state, now)})
    if rest:
        blocks.append(_more(rest))
    blocks.extend(actions)
    return _payload(notification, blocks)


def _reply_head(item: NotificationItem) -> str:
    f = item.finding
    if item.status == "resolved":
        head = f"{RESOLVED_EMOJI} *Resolved*"
    elif item.reason == "repeat":
        head = "🔁 *Still firing*"
    elif item.reason == "escalated":
        head = f"⏫ *Escalated to {f.severity.value.upper()}*"
    elif item.reason == "remediated":
        head = "🛠 *Remediation*"
    else:
        head = f"{SEVERITY_EMOJI.get(f.severity.value, '⚪')} *{f.severity.value.upper()}*"
    return f"{head} · {_code(f.policy, 60)} · {_scope(item)}"


def reply_text(item: NotificationItem, sent_at: datetime | None) -> str:
    """One item's news as a short thread reply: what changed, not the whole evidence (the parent has it)."""
    lines = [_reply_head(item)]
    if item.status == "resolved":
        summary_now = (item.resolved_evidence or {}).get("summary")
        if summary_now:
            lines.append(_text(summary_now, SUMMARY_LIMIT))
        lines.extend(_cleared_line(item, sent_at))
    else:
        lines.append(_text(item.finding.summary, SUMMARY_LIMIT))
        lasted = item.lasted(sent_at)
        if lasted is not None and item.reason != "remediated":
            lines.append(f"🕒 Firing for {duration(lasted)}")
        lines.extend(f"🛠 _Remediation:_ {_text(action, 300)}" for action in item.actions)
        approval = _pending_approval(item, sent_at)
        if approval is not None:
            expires = approval.expires_at
            lines.append(f"✋ _Awaiting approval:_ {_text(approval.action, 300)}"
                         + (f" (expires {slack_date(expires)})" if expires else "")
                         + ": Approve or Reject on the message above")
    if workload_lines(item):  # what runs there now: it may have changed since the parent
        return _with_workload(item, lines, [], REPLY_WORKLOAD_JOBS, SECTION_LIMIT)
    return _cut("\n".join(lines), SECTION_LIMIT)


def render_reply(notification: Notification, receiver: str | None = None) -> dict[str, Any]:
    """The thread reply for the items of one message that already have a parent in this thread."""
    blocks: list[dict[str, Any]] = []
    mention = _mention_text(notification, receiver) if receiver else None
    if mention:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    items = _ordered(notification.items)
    room = BLOCK_LIMIT - len(blocks)
    shown, rest = (items, []) if len(items) <= room else (items[: room - 1], items[room - 1:])
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": reply_text(i, notification.sent_at)}}
                  for i in shown)
    if rest:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"…and {len(rest)} more"}})
    return {"text": _cut(escape_mrkdwn(_one_line(notification.preview)), FALLBACK_LIMIT), "blocks": blocks,
            "unfurl_links": False, "unfurl_media": False}


# -- the weekly digest (issue 21, notify/digest.py) ---------------------------------------------------------
# Not an alert: no severity, no thread, no buttons. The same payload in webhook and app mode (app mode posts
# it as a plain message with chat.postMessage).

DIGEST_EMOJI = "📊"
#: cluster lines in the digest's section (its text is cut to SECTION_LIMIT as well)
DIGEST_CLUSTER_LINES = 15


def render_digest(digest: Digest) -> dict[str, Any]:
    """The weekly digest as Block Kit: a header, the period, the fleet's figures, a line per cluster, the top
    findings and the repeat-offender nodes, then how to get the whole report."""
    from .digest import REPORT_COMMAND

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _plain(f"{DIGEST_EMOJI} Weekly digest · {digest.dates}", HEADER_LIMIT)}},
    ]
    where = [f"Period {escape_mrkdwn(digest.period)}"]
    if digest.account:
        where.append(f"account {_code(digest.account, 20)}")
    if digest.region:
        where.append(f"region {_code(digest.region, 40)}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(where), CONTEXT_LIMIT)}]})
    if digest.empty:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"{RESOLVED_EMOJI} *No incidents this period*: no alert episode resolved in it and none is open.")}})
    else:
        fleet = "\n".join(f"• {escape_mrkdwn(fact)}" for fact in digest.fleet_lines())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*Fleet*\n{fleet}", SECTION_LIMIT)}})
        lines = [f"• {_code(line.cluster, 100)}: {_text(digest.cluster_text(line), 400)}"
                 for line in digest.clusters[:DIGEST_CLUSTER_LINES]]
        hidden = len(digest.clusters) - DIGEST_CLUSTER_LINES + digest.more_clusters
        if hidden > 0:
            lines.append(f"_…and {hidden} more cluster{'s' if hidden != 1 else ''} with incidents_")
        if lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
                "*Clusters* (most incidents first)\n" + "\n".join(lines), SECTION_LIMIT)}})
        if digest.top_findings:
            found = [f"{n}. {_text(f.reason, 200)}: *{f.count}*"
                     + (f" ({', '.join(_code(c, 60) for c in f.clusters[:3])})" if f.clusters else "")
                     for n, f in enumerate(digest.top_findings, start=1)]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
                "*Top findings*\n" + "\n".join(found), SECTION_LIMIT)}})
        if digest.repeat_offenders:
            nodes = [f"• {_code(o.cluster, 60)} node {_code(o.node, 80)}: {o.incidents} incidents"
                     for o in digest.repeat_offenders]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
                "*Repeat-offender nodes* (3+ incidents)\n" + "\n".join(nodes), SECTION_LIMIT)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"The whole report, with charts: `{escape_mrkdwn(REPORT_COMMAND)}`")}]})
    return {"text": _cut(escape_mrkdwn(_one_line(digest.preview)), FALLBACK_LIMIT), "blocks": blocks,
            "unfurl_links": False, "unfurl_media": False}


# -- delivery -------------------------------------------------------------------------------


def secrets_parameters() -> Any:
    """Powertools' `parameters` module, with its default secrets provider made on our shared session's
    client (not on a botocore session of its own): the webhook secrets (delivery.py), the bot token (slack_app.py)."""
    # imported here: parameters pulls in boto3, which an invalid message never needs
    from aws_lambda_powertools.utilities import parameters

    from .. import aws_clients

    if "secrets" not in parameters.base.DEFAULT_PROVIDERS:
        parameters.base.DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
            boto3_client=aws_clients.client("secretsmanager"))
    return parameters


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


def secret_text(value: str | bytes | None, *keys: str) -> str:
    """A secret's value as text: the value itself, or, when it is a JSON object, its first of `keys`
    that is set ("" when none is, or the JSON is broken)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = (value or "").strip()
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    return next((str(data[key]).strip() for key in keys if data.get(key)), "")


def failure_reason(exc: BaseException) -> str:
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


def retry_after_seconds(value: Any) -> float | None:
    """A Retry-After header's seconds, or None when it holds none worth waiting for."""
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def retry_delay(attempt: int, retry_after: float | None, jitter: float) -> float:
    """How long to wait after attempt `attempt` failed: Slack's Retry-After (capped), else exponential
    backoff with `jitter` (0..1) added, for the webhook and the Web API alike."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX) * (1 + 0.5 * jitter)


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
                status, last = None, failure_reason(exc)
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
                    retry_after = retry_after_seconds(headers.get("Retry-After"))
                elif status < 500:
                    raise SlackPermanentError(f"Slack webhook refused the message: {last}",
                                              status=status, attempts=attempt)
            if attempt == self.max_attempts:
                break
            delay = retry_delay(attempt, retry_after, self._jitter())
            remaining = self._remaining()
            if remaining is not None and remaining - delay < MIN_ATTEMPT_TIME:
                last += "; no time left before the deadline"
                break
            self._sleep(delay)
        raise SlackDeliveryError(
            f"Slack webhook: delivery failed after {self.attempts} attempt{'s' if self.attempts != 1 else ''}: {last}",
            status=status, attempts=self.attempts,
        )
