"""Email: a notification as the plain text a person reads on a phone (the SNS message's "email" key).

The first line is the preview sentence (what the phone shows under the subject); then where (cluster,
account, region), then each finding: what, where in the cluster, since when (UTC and how long ago),
the evidence one fact a line, what happens next and the runbook; a resolved finding says what is true
now, when it cleared and how long it lasted. The console link closes it. No JSON, no markup: SNS sends
it as text/plain, so `*bold*` or a `[link](url)` would show as typed. Prose is wrapped at 72 columns
(the plain-text mail convention); links stay whole on a line of their own so a phone can open them.

Bounded: each value is cut (evidence.VALUE_LIMIT), each finding shows at most evidence.MAX_LINES of
evidence, and the findings stop at EMAIL_LIMIT characters with a line saying how many more there are:
the email cannot crowd the JSON body out of the SNS message they share (message.Notification.split).
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

from ..workload import words
from . import evidence
from .evidence import ItemView, NotificationView, value

#: characters of findings in one email before the rest is only counted (the whole text stays under
#: EMAIL_LIMIT + 2,000: the head, with at most 1,000 characters of tags, the "...and N more" line and the foot)
EMAIL_LIMIT = 12_000
WIDTH = 72
#: the first lines of every test notification (message.TEST_NOTE's words, which this module cannot import)
TEST_LINES = ("TEST notification (sent by `hyperpod-guard test-alert`)", "Not an alert, nothing to do.")


def _wrap(text: str, indent: str = "", first: str = "") -> list[str]:
    """One fact as lines of at most WIDTH (a word longer than that, a URL, stays whole)."""
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _head(item: ItemView) -> str:
    f = item.finding
    if item.status == "resolved":
        return f"RESOLVED (was {f.severity.value.upper()}): {value(f.policy, 60)}"
    return f"{f.severity.value.upper()}: {value(f.policy, 60)}"


def acknowledged_line(item: ItemView, now: datetime | None) -> str | None:
    """"Acknowledged by U0123 at 2026-11-24 12:00 UTC (5m ago); no repeats until resolved", or None."""
    # read with getattr: evidence.ItemView (not this module's) does not declare the ChatOps fields yet
    by: str | None = getattr(item, "acknowledged_by", None)
    if not by:
        return None
    at: datetime | None = getattr(item, "acknowledged_at", None)
    until: datetime | None = getattr(item, "acknowledged_until", None)
    when = f" at {evidence.when(at, now)}" if at else ""
    return f"Acknowledged by {value(by, 60)}{when}; no repeats until {evidence.utc(until) if until else 'resolved'}"


#: what an approval's status says before the action's words
APPROVAL_WORDS = {"pending": "Awaiting approval", "approved": "Approved", "rejected": "Rejected",
                  "expired": "Approval expired", "used": "Approved and done"}


def approval_line(item: ItemView) -> str | None:
    """"Awaiting approval: replace i-0abc (until 2026-11-24 13:00 UTC)", "Approved by U0123: …", or None."""
    approval: Any = getattr(item, "approval", None)
    if approval is None:
        return None
    head = APPROVAL_WORDS.get(approval.status, approval.status)
    by = f" by {value(approval.decided_by, 60)}" if approval.decided_by and approval.status != "expired" else ""
    until = f" (until {evidence.utc(approval.expires_at)})" if approval.status == "pending" and approval.expires_at \
        else ""
    return f"{head}{by}: {value(approval.action)}{until}"


def _firing_lines(item: ItemView, now: datetime | None) -> list[str]:
    lines = []
    started, lasted = evidence.since(item), evidence.lasted(item, now)
    if started:
        lines.append(f"Since: {evidence.when(started, now)}")
    if item.reason == "repeat":
        lines += _wrap(f"Repeat: still firing{f' after {lasted}' if lasted else ''}; a reminder, not a new problem")
    elif item.reason == "escalated":
        lines += _wrap(f"Escalated to {item.finding.severity.value}{f' after {lasted}' if lasted else ''}")
    found = evidence.evidence_lines(item.finding.details)
    if found:
        lines.append("Evidence:")
        lines += [line for fact in found for line in _wrap(fact, "  ", "- ")]
    acknowledged = acknowledged_line(item, now)
    if acknowledged:
        lines += _wrap(acknowledged, "  ")
    lines += [line for action in item.actions[:5] for line in _wrap(f"Remediation: {value(action)}", "  ")]
    approval = approval_line(item)
    if approval:
        lines += _wrap(approval, "  ")
    if item.next_step:
        lines += _wrap(f"Next: {value(item.next_step)}", "  ")
    return lines + workload_lines(item)


def workload_lines(item: ItemView) -> list[str]:
    """A firing item's workload (words.py): the hint under the next step, then one line per job."""
    workload = evidence.firing_workload(item)
    if workload is None:
        return []
    hint = words.hint(workload)
    lines = _wrap(f"Hint: {hint}", "  ") if hint else []
    lines += _wrap(f"Workload on {value(workload.node, 80)}:")
    return lines + [line for fact in words.lines(workload) for line in _wrap(fact, "  ", "- ")]


def _resolved_lines(item: ItemView, now: datetime | None) -> list[str]:
    now_true = item.resolved_evidence or {}
    lines = []
    if now_true.get("summary"):
        lines += _wrap(f"Now: {value(now_true['summary'])}", "  ")
    lines += _wrap(f"Was: {value(item.finding.summary)}", "  ")
    if item.resolved_at:
        lines.append(f"Cleared: {evidence.when(item.resolved_at, now)}")
    lasted = evidence.lasted(item, now)
    if lasted:
        lines.append(f"Lasted: {lasted}")
    found = evidence.evidence_lines(now_true)
    if found:
        lines.append("Evidence now:")
        lines += [line for fact in found for line in _wrap(fact, "  ", "- ")]
    return lines


def item_text(item: ItemView, now: datetime | None) -> str:
    """One finding as a paragraph of short lines."""
    f = item.finding
    lines = [_head(item), *_wrap(f"Where: {evidence.scope(f)}", "  ")]
    if item.status == "resolved":
        lines += _resolved_lines(item, now)
    else:
        lines += _wrap(f"What: {value(f.summary, 500)}", "  ")
        lines += _firing_lines(item, now)
    runbook = evidence.link(item.runbook_url)
    if runbook:
        lines += ["Runbook:", runbook]
    return "\n".join(lines)


def render(notification: NotificationView) -> str:
    """The email body of a notification."""
    now = notification.sent_at
    head: list[str] = []
    if notification.test:
        head += TEST_LINES
        if notification.receiver:
            head.append(f"For receiver {value(notification.receiver, 60)}")
    head.append(value(notification.preview))  # whole: at most message.PREVIEW_LIMIT, what a phone shows
    head.append("")
    head.append(f"Cluster: {value(notification.cluster, 100)}")
    if notification.account:
        head.append(f"Account: {value(notification.account, 20)}")
    if notification.region:
        head.append(f"Region: {value(notification.region, 30)}")
    if notification.tag_pairs:  # the line's form is read by the tests of tags in the message
        tags = ", ".join(value(pair, 200) for pair in notification.tag_pairs)
        head += _wrap(evidence.clip(f"tags: {tags}", 1000), "  ")
    if notification.parts:
        head.append(f"Part {notification.part} of {notification.parts} (the findings are split across messages)")
    firing, resolved = len(notification.firing), len(notification.resolved)
    head.append(f"{firing} firing, {resolved} resolved")

    body: list[str] = []
    used = 0
    items = evidence.ordered(notification.items)
    for shown, item in enumerate(items):
        text = item_text(item, now)
        if body and used + len(text) > EMAIL_LIMIT:
            rest = items[shown:]
            more_firing = sum(1 for i in rest if i.status == "firing")
            body.append(f"...and {len(rest)} more finding{'s' if len(rest) != 1 else ''} "
                        f"({more_firing} firing, {len(rest) - more_firing} resolved): see the console or Slack.")
            break
        body.append(text)
        used += len(text)

    foot = [""]
    console = evidence.cluster_console(notification)
    if console:
        foot += ["Open the cluster in the SageMaker console:", console]
    foot += ["", "-- ", "hyperpod-guard" + (f", sent {evidence.utc(now)}" if now else "")]
    return "\n".join([*head, "", "\n\n".join(body), *foot])
