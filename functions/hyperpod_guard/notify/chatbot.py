"""Amazon Q Developer in chat applications (AWS Chatbot): a notification as a custom notification.

Chatbot shows only AWS service events and its documented custom-notification format
(https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): `version` "1.0",
`source` "custom", `content` (`textType` "client-markdown", `title`, `description`, `nextSteps`,
`keywords`) and `metadata` (`threadId`, `summary`, `eventType`, `relatedResources`,
`additionalContext`). It reaches the Chatbot subscription (protocol `https`) as the "https" key of the
per-protocol SNS message (message.Notification.sns_message).

Threading: `metadata.threadId` is the fingerprint of the notification's lead alert (the item its
preview names: the first firing one, else the first). With threading on in the channel (`@Amazon Q
preferences`), that alert's repeats, escalation and resolution go under its first message. A grouped
message threads under its lead alert only: its other alerts appear in that thread, and a later message
led by one of them (its own repeat or resolution) starts or continues that alert's own thread. An alert
about a HyperPod operation (its evidence names the OperationId) threads under `operation-<id>` instead,
so a stuck scale-up and the shortfall it leaves read as one story.

client-markdown is the chat platform's markdown (Slack's mrkdwn for the stack's Slack channel), so
every string from events and cluster state is made inert (`inert`): no `<…>` control sequence
(`<!channel>`, `<@U1>`, `<http://x|y>`) since angle brackets become look-alikes, no broadcast
(`@channel`, `@here`, `@everyone` get a word joiner after the `@`), no `[text](url)` link (a word joiner
between `]` and `(`), no `&…;` entity, and one line each. Our own links are bare https URLs, which the
client links.

Bounds. The documentation page gives types and required fields but no lengths, so they are ours,
chosen from what Slack renders (Chatbot posts the content as a Slack message): the title as a header
(Block Kit: 150 characters), the description as one section text (3,000), next steps and keywords as
short lists. The whole payload stays under ~9 KB of characters (CHATBOT_LIMIT is checked by the tests),
so it cannot crowd the JSON body out of the SNS message they share.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from ..workload import words
from . import evidence
from .email import acknowledged_line, approval_line
from .evidence import ItemView, NotificationView, value

VERSION = "1.0"
SOURCE = "custom"
TEXT_TYPE = "client-markdown"

#: Slack's header block (plain_text) takes 150 characters
TITLE_LIMIT = 150
#: Slack's section text takes 3,000 characters: the description is one
DESCRIPTION_LIMIT = 3000
#: a lock-screen preview (message.PREVIEW_LIMIT)
SUMMARY_LIMIT = 100
NEXT_STEPS = 5
NEXT_STEP_LIMIT = 300
KEYWORDS = 8
KEYWORD_LIMIT = 60
#: custom actions read additionalContext as variables of at most 1,024 characters
CONTEXT_VALUE_LIMIT = 256
#: an ARN is at most 2,048 characters
ARN_LIMIT = 2048
#: the line that counts the findings the description has no room for
MORE_LINE = 100
#: jobs one finding lists (words.lines' limit), and the most its workload part takes of the description
WORKLOAD_JOBS = 3
WORKLOAD_LIMIT = 1000
#: the whole rendered payload, in characters (what the tests hold every rendering to)
CHATBOT_LIMIT = 9000

SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_EMOJI = "✅"
TEST_EMOJI = "🧪"

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_WORD_JOINER = "\u2060"
#: what `&` becomes: no entity (`&lt;`) can survive to be decoded into a control character
_FULLWIDTH_AMPERSAND = "\uff06"
_THREAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9-]+$")


def inert(text: str) -> str:
    """Untrusted one-line text made inert in client-markdown (see the module's docstring)."""
    text = text.replace("&", _FULLWIDTH_AMPERSAND).replace("<", "‹").replace(">", "›")
    text = _BROADCAST.sub(lambda m: "@" + _WORD_JOINER + m.group(1), text)
    return text.replace("](", "]" + _WORD_JOINER + "(")


def _text(raw: Any, limit: int = evidence.VALUE_LIMIT) -> str:
    """Untrusted text: one line, inert, cut (the word joiners inert adds count)."""
    return evidence.clip(inert(value(raw, limit)), limit)


def _code(raw: Any, limit: int = 100) -> str:
    """An untrusted short value (a name) as an inline code span; a backtick would close it."""
    return f"`{_text(raw, limit).replace('`', 'ˋ')}`"


def title(notification: NotificationView) -> str:
    if notification.firing:
        severity = notification.severity.value
        head = f"{SEVERITY_EMOJI.get(severity, '⚪')} {severity.upper()}"
    else:
        head = f"{RESOLVED_EMOJI} RESOLVED"
    if notification.test:
        head = f"{TEST_EMOJI} TEST {head}"
    firing, resolved = len(notification.firing), len(notification.resolved)
    counts = f" · {firing} firing" + (f", {resolved} resolved" if resolved else "") if firing else ""
    room = TITLE_LIMIT - len(head) - len(" · ") - len(counts)
    return f"{head} · {_text(notification.cluster, room)}{counts}"


def _item_lines(item: ItemView, now: datetime | None) -> list[str]:
    f = item.finding
    where = f"{_code(f.policy, 60)} · {_text(evidence.scope(f), 200)}"
    lasted = evidence.lasted(item, now)
    if item.status == "resolved":
        now_true = item.resolved_evidence or {}
        lines = [f"{RESOLVED_EMOJI} *RESOLVED* (was {f.severity.value}) · {where}"]
        if now_true.get("summary"):
            lines.append(f"*Now:* {_text(now_true['summary'])}")
        lines.append(f"_Was:_ {_text(f.summary)}")
        cleared = f"*Cleared* {evidence.when(item.resolved_at, now)}" if item.resolved_at else ""
        took = f"*lasted* {lasted}" if lasted else ""
        if cleared or took:
            lines.append(" · ".join(p for p in (cleared, took) if p))
        lines += [f"• {inert(line)}" for line in evidence.evidence_lines(now_true)]
        return lines
    emoji = SEVERITY_EMOJI.get(f.severity.value, "⚪")
    lines = [f"{emoji} *{f.severity.value.upper()}* · {where}", _text(f.summary, 500)]
    started = evidence.since(item)
    if started:
        lines.append(f"*Since* {evidence.when(started, now)}")
    if item.reason == "repeat":
        lines.append(f"_🔁 Repeat: still firing{f' after {lasted}' if lasted else ''}_")
    elif item.reason == "escalated":
        lines.append(f"_⏫ Escalated to {f.severity.value}{f' after {lasted}' if lasted else ''}_")
    lines += [f"• {inert(line)}" for line in evidence.evidence_lines(f.details)]
    acknowledged = acknowledged_line(item, now)
    if acknowledged:
        lines.append(f"👀 _{_text(acknowledged, 500)}_")
    lines += [f"🛠 _Remediation:_ {_text(action)}" for action in item.actions[:5]]
    approval = approval_line(item)
    if approval:
        lines.append(f"✋ *{_text(approval, 500)}*")
    return lines


def workload_text(item: ItemView) -> str:
    """The "Workload" part of a firing finding (words.py), at most WORKLOAD_LIMIT; "" without one. Its hint
    is a next step (next_steps)."""
    workload = evidence.firing_workload(item)
    if workload is None:
        return ""

    def listing(jobs: int) -> str:
        return "\n".join([f"*Workload* on {_code(workload.node, 80)}",
                          *(f"• {_text(line, words.LINE_LIMIT)}" for line in words.lines(workload, jobs))])

    return evidence.clip(words.fitting(listing, WORKLOAD_JOBS, WORKLOAD_LIMIT), WORKLOAD_LIMIT)


def _block(item: ItemView, now: datetime | None, limit: int | None = None) -> str:
    """One finding's part of the description; cut to `limit`, its evidence gives way and its workload stays."""
    body, tail = "\n".join(_item_lines(item, now)), workload_text(item)
    if limit is None:
        return f"{body}\n{tail}" if tail else body
    if not tail or len(tail) + 1 >= limit:
        return evidence.clip(f"{body}\n{tail}" if tail else body, limit)
    return evidence.clip(body, limit - len(tail) - 1) + "\n" + tail


def description(notification: NotificationView) -> str:
    """Where, then each finding (firing first, most severe first) while they fit DESCRIPTION_LIMIT."""
    where = [f"HyperPod cluster {_code(notification.cluster)}"]
    if notification.account:
        where.append(f"account {_code(notification.account, 20)}")
    if notification.region:
        where.append(f"region {_code(notification.region, 30)}")
    head = [" · ".join(where)]
    if notification.test:
        receiver = f" for receiver {_code(notification.receiver, 60)}" if notification.receiver else ""
        head.insert(0, f"*TEST notification*{receiver}: sent by hyperpod-guard test-alert, not an alert, nothing to do")
    if notification.parts:
        head.append(f"_part {notification.part} of {notification.parts}_")
    text = "\n".join(head)
    items = evidence.ordered(notification.items)
    shown = 0
    for item in items:
        block = _block(item, notification.sent_at)
        reserve = MORE_LINE if shown + 1 < len(items) else 0  # room for the "…and N more" line
        if len(text) + 2 + len(block) + reserve > DESCRIPTION_LIMIT:
            if shown == 0:  # the lead finding always shows, cut
                text += "\n\n" + _block(item, notification.sent_at, DESCRIPTION_LIMIT - len(text) - 2 - reserve)
                shown = 1
            break
        text += "\n\n" + block
        shown += 1
    rest = items[shown:]
    if rest:
        firing = sum(1 for i in rest if i.status == "firing")
        text += (f"\n\n…and {len(rest)} more finding{'s' if len(rest) != 1 else ''} "
                 f"({firing} firing, {len(rest) - firing} resolved): see the console")
    return evidence.clip(text, DESCRIPTION_LIMIT)


def next_steps(notification: NotificationView) -> list[str]:
    """What happens next for each firing finding (distinct), the runbooks, then the console link."""
    steps: list[str] = []
    if notification.test:
        steps.append("Nothing to do: this is a test notification")
    for item in evidence.ordered(() if notification.test else notification.firing):
        step = _text(item.next_step, NEXT_STEP_LIMIT) if item.next_step else ""
        workload = evidence.firing_workload(item)
        hint = words.hint(workload) if workload is not None else None
        for line in (step, _text(hint, NEXT_STEP_LIMIT) if hint else ""):  # the hint right after its next step
            if line and line not in steps:
                steps.append(line)
    if notification.items and not notification.firing:
        steps.append("Nothing to do: resolved, no action needed")
    links = []
    for item in evidence.ordered(notification.items):
        runbook = evidence.link(item.runbook_url)
        line = f"Runbook for {_text(item.finding.policy, 60)}: {runbook}" if runbook else ""
        if line and line not in links and len(line) <= NEXT_STEP_LIMIT:
            links.append(line)
    console = evidence.cluster_console(notification)
    line = f"Open the cluster in the SageMaker console: {console}"
    tail = [line] if console and len(line) <= NEXT_STEP_LIMIT else []  # a link cut is no link
    room = NEXT_STEPS - len(tail)
    kept = (steps + links)[:room]
    return kept + tail


def keywords(notification: NotificationView) -> list[str]:
    """[severity (or resolved), cluster, policies…]: distinct, short."""
    words = ["test"] if notification.test else []
    words += [notification.severity.value if notification.firing else "resolved", notification.cluster,
              *notification.policies]
    out: list[str] = []
    for word in words:
        keyword = _text(word, KEYWORD_LIMIT)
        if keyword and keyword not in out:
            out.append(keyword)
    return out[:KEYWORDS]


def _context(notification: NotificationView) -> dict[str, str]:
    context = {
        "cluster": notification.cluster,
        "account": notification.account,
        "region": notification.region,
        "status": notification.status,
        "severity": notification.severity.value,
        "policies": ",".join(notification.policies),
        "fingerprint": _thread_id(notification),
        "firing": str(len(notification.firing)),
        "resolved": str(len(notification.resolved)),
        "part": f"{notification.part}/{notification.parts}" if notification.parts else None,
        "receiver": notification.receiver,
    }
    return {key: _text(raw, CONTEXT_VALUE_LIMIT) for key, raw in context.items() if raw}


def _thread_id(notification: NotificationView) -> str:
    """The lead alert's HyperPod operation when it names one (every alert a scale-up or a deep health check
    causes threads together: `operation-<OperationId>`), else its fingerprint (hex); anything else in its
    place is hashed to hex."""
    finding = evidence.lead(notification).finding
    operation = operation_id(finding.details)
    thread = f"operation-{operation}" if operation else evidence.fingerprint(finding)
    if _THREAD_ID.match(thread):
        return thread
    return hashlib.sha256(thread.encode("utf-8", "replace")).hexdigest()[:20]


def operation_id(details: Any) -> str | None:
    """The HyperPod operation a finding is about: its own `operation_id` (cluster-operations) or that of the
    Cluster Event it was made from (`cluster_event.operation_id`)."""
    if not isinstance(details, dict):
        return None
    event = details.get("cluster_event")
    found = details.get("operation_id") or (event.get("operation_id") if isinstance(event, dict) else None)
    return str(found) if found else None


def render(notification: NotificationView) -> dict[str, Any]:
    """The custom notification (a JSON object) for one notification."""
    lead = evidence.lead(notification)
    sent = f"{notification.sent_at:%Y%m%dT%H%M%SZ}" if notification.sent_at else "unsent"
    part = f"-{notification.part}" if notification.parts else ""
    metadata: dict[str, Any] = {
        "threadId": _thread_id(notification),
        "summary": _text(notification.preview, SUMMARY_LIMIT),
        "eventType": "hyperpod-guard-test" if notification.test else f"hyperpod-guard-{notification.status}",
    }
    arn = notification.cluster_arn
    if arn and len(arn) <= ARN_LIMIT and _ARN.match(arn):
        metadata["relatedResources"] = [arn]
    metadata["additionalContext"] = _context(notification)
    content: dict[str, Any] = {
        "textType": TEXT_TYPE,
        "title": title(notification),
        "description": description(notification),
    }
    steps = next_steps(notification)
    if steps:
        content["nextSteps"] = steps
    content["keywords"] = keywords(notification)
    return {
        "version": VERSION,
        "source": SOURCE,
        "id": _text(f"{metadata['threadId']}-{lead.reason}-{sent}{part}", 200),
        "content": content,
        "metadata": metadata,
    }
