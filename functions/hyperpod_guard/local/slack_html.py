"""Render Slack Block Kit payloads as HTML, roughly as Slack shows them, so a person can look.

Only what our renderer emits is supported: header, section (text and fields), context,
divider, actions with buttons (links: the console, runbooks; app mode's interactive buttons: Acknowledge,
Silence, Approve/Reject, shown but inert), and threads (a parent message, "edited" when app mode updated
it, with its replies below). Text is Slack mrkdwn with Slack's own
escaping (&amp; &lt; &gt;); of its control sequences, links `<url|label>` become anchors, dates
`<!date^…|fallback>` their fallback (the time in UTC, where Slack shows the reader's own time zone)
and mentions (`<!subteam^S…>`, `<@U…>`, `<!here>`, `<!channel>`) a highlighted @name; everything
else is HTML-escaped, so nothing in an alert can inject markup into the page either.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: the control sequences shown: a link with a label, a bare link, a date (its fallback), a mention
_SEQUENCE = re.compile(
    r"<(?P<url>https?://[^|>]+)\|(?P<label>[^>]*)>|<(?P<bare>https?://[^>]+)>"
    r"|<!date\^\d+\^[^|>]*\|(?P<date>[^>]*)>"
    r"|<(?:!subteam\^(?P<group>[A-Z0-9]+)|@(?P<user>[UW][A-Z0-9]+)|!(?P<special>here|channel))>"
)
_STYLES = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])"), r"<b>\1</b>"),
    (re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])"), r"<i>\1</i>"),
    (re.compile(r"(?<![\w~])~([^~\n]+)~(?![\w~])"), r"<s>\1</s>"),
)

CSS = """
body { font: 15px/1.46 -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
       background: #f4f4f6; margin: 0; color: #1d1c1d; }
header { background: #3f0e40; color: white; padding: 14px 24px; }
header h1 { margin: 0; font-size: 18px; } header p { margin: 4px 0 0; opacity: .8; font-size: 13px; }
main { max-width: 980px; margin: 0 auto; padding: 16px 24px 48px; }
h2 { font-size: 16px; margin: 28px 0 6px; } .scenario-note { color: #616061; font-size: 13px; margin: 0 0 10px; }
.ok { color: #007a5a; } .fail { color: #e01e5a; }
.message { background: white; border: 1px solid #e0e0e0; border-radius: 8px; padding: 10px 16px 12px 64px;
           margin: 8px 0; position: relative; }
.avatar { position: absolute; left: 14px; top: 12px; width: 36px; height: 36px; border-radius: 6px; background: #611f69;
          color: white; font-weight: bold; text-align: center; line-height: 36px; }
.meta { font-size: 13px; color: #616061; } .meta b { color: #1d1c1d; font-size: 15px; margin-right: 6px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 4px; }
.section { margin: 6px 0; white-space: pre-wrap; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 16px; margin: 6px 0; white-space: pre-wrap; }
.context { font-size: 12px; color: #616061; margin: 4px 0; white-space: pre-wrap; }
hr { border: 0; border-top: 1px solid #e8e8e8; margin: 8px 0; }
.button { display: inline-block; border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-size: 13px;
          font-weight: bold; color: #1d1c1d; text-decoration: none; margin-right: 6px; }
.mention { background: #fff3c4; color: #1264a3; border-radius: 3px; padding: 0 2px; font-weight: bold; }
.date { border-bottom: 1px dotted #616061; }
.button.runbook { border-color: #1264a3; color: #1264a3; }
.button.primary { background: #007a5a; border-color: #007a5a; color: white; }
.button.danger { border-color: #e01e5a; color: #e01e5a; }
.edited { font-size: 12px; color: #616061; margin-left: 4px; }
.thread { margin: -4px 0 8px 40px; border-left: 3px solid #e0e0e0; padding-left: 12px; }
.thread .message { margin: 4px 0; }
.thread-note { font-size: 12px; color: #1264a3; font-weight: bold; margin: 4px 0 0 40px; }
code { background: #f7f7f9; border: 1px solid #e1e1e8; border-radius: 3px; padding: 0 3px; color: #e01e5a;
       font-size: 12px; }
a { color: #1264a3; }
"""


def mrkdwn(text: str) -> str:
    """Slack mrkdwn -> safe HTML."""
    out: list[str] = []
    position = 0
    for match in _SEQUENCE.finditer(text):
        out.append(_styled(text[position:match.start()]))
        out.append(_sequence(match))
        position = match.end()
    out.append(_styled(text[position:]))
    return "".join(out)


def _sequence(match: re.Match[str]) -> str:
    if match["date"] is not None:
        return f'<span class="date" title="Slack shows this in the reader\'s time zone">{_styled(match["date"])}</span>'
    if match["group"] or match["user"] or match["special"]:
        who = f"@{match['group']}" if match["group"] else f"@{match['user'] or match['special']}"
        title = "user group" if match["group"] else "user" if match["user"] else "everyone in the channel"
        return f'<span class="mention" title="{title}">{html.escape(who)}</span>'
    url = match["url"] or match["bare"]
    label = match["label"] if match["url"] else url
    return f'<a href="{html.escape(html.unescape(url), quote=True)}">{_styled(label)}</a>'


def _styled(segment: str) -> str:
    escaped = html.escape(html.unescape(segment), quote=False)
    for pattern, replacement in _STYLES:
        escaped = pattern.sub(replacement, escaped)
    return escaped


def _text(obj: dict[str, Any] | None) -> str:
    if not obj:
        return ""
    return mrkdwn(obj.get("text", "")) if obj.get("type") == "mrkdwn" else html.escape(obj.get("text", ""))


def block_html(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="header">{_text(block.get("text"))}</div>'
    if kind == "section":
        parts = []
        if block.get("text"):
            parts.append(f'<div class="section">{_text(block["text"])}</div>')
        if block.get("fields"):
            parts.append('<div class="fields">' + "".join(f"<div>{_text(f)}</div>" for f in block["fields"]) + "</div>")
        return "".join(parts)
    if kind == "context":
        return '<div class="context">' + " · ".join(_text(e) for e in block.get("elements", [])) + "</div>"
    if kind == "divider":
        return "<hr>"
    if kind == "actions":
        buttons = [_button(e) for e in block.get("elements", []) if e.get("type") == "button"]
        return "<div>" + "".join(buttons) + "</div>"
    return f'<div class="context">[{html.escape(str(kind))} block]</div>'


def _button(element: dict[str, Any]) -> str:
    kind = "button runbook" if str(element.get("action_id", "")).startswith("runbook") else "button"
    if element.get("style") in ("primary", "danger"):
        kind = f"button {element['style']}"
    if "url" not in element:  # an interactive button: Slack sends its click to the app's interactivity URL
        action = html.escape(str(element.get("action_id", "")), quote=True)
        return f'<span class="{kind}" title="{action}">{_text(element.get("text"))}</span>'
    url = html.escape(element["url"], quote=True)
    return f'<a class="{kind}" href="{url}">{_text(element.get("text"))}</a>'


def message_html(payload: dict[str, Any], *, when: str = "", edited: bool = False) -> str:
    blocks = payload.get("blocks") or [{"type": "section", "text": {"type": "mrkdwn", "text": payload.get("text", "")}}]
    body = "".join(block_html(b) for b in blocks)
    mark = '<span class="edited">(edited)</span>' if edited else ""
    return (f'<div class="message"><div class="avatar">HG</div>'
            f'<div class="meta"><b>hyperpod-guard</b>APP {html.escape(when)}{mark}</div>{body}</div>')


@dataclass(frozen=True)
class Thread:
    """A message as the channel shows it at the end (app mode: its last update) and the replies in its thread."""

    when: str
    payload: dict[str, Any]
    replies: tuple[tuple[str, dict[str, Any]], ...] = ()
    edited: bool = False


def thread_html(thread: Thread) -> str:
    parent = message_html(thread.payload, when=thread.when, edited=thread.edited)
    if not thread.replies:
        return parent
    count = len(thread.replies)
    replies = "".join(message_html(payload, when=when) for when, payload in thread.replies)
    return (f'{parent}<div class="thread-note">{count} repl{"y" if count == 1 else "ies"}</div>'
            f'<div class="thread">{replies}</div>')


Shown = tuple[str, dict[str, Any]] | Thread


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, bool, Sequence[Shown]]]) -> str:
    """sections: (heading, note, expectation met, [(when, payload) or a Thread])."""
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
              f"<style>{CSS}</style></head><body><header><h1>#hyperpod-alerts · {html.escape(title)}</h1>"
              f"<p>{html.escape(subtitle)}</p></header><main>")]
    for heading, note, met, messages in sections:
        mark = ('<span class="ok">✔ expected outcome met</span>' if met
                else '<span class="fail">✘ expected outcome NOT met</span>')
        parts.append(f"<h2>{html.escape(heading)} — {mark}</h2><p class='scenario-note'>{html.escape(note)}</p>")
        if not messages:
            parts.append("<p class='scenario-note'>(no Slack message)</p>")
        parts.extend(thread_html(shown) if isinstance(shown, Thread) else message_html(shown[1], when=shown[0])
                     for shown in messages)
    parts.append("</main></body></html>")
    return "".join(parts)
