"""Fuzz the Slack rendering: random notifications, every field untrusted (the SNS message is read back
from the topic), rendered for a receiver.

The properties: Slack's Block Kit limits hold; the only control sequences in the payload are the ones
we write (dates in one strict form, a route's mention when it is one Slack would read as a mention);
no control or bidi character reaches a text; and the push text (Notification.preview) fits a phone's
preview and is never cut in the middle of a word.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hyperpod_guard.notify.message import PREVIEW_LIMIT, FindingPayload, Notification, NotificationItem, ReceiverRef
from hyperpod_guard.notify.slack import MENTION, render
from tests.fuzzing import NASTY_TEXT, json_values

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DATE_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>")
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

# text as a message read back from SNS can hold it: anything but lone surrogates (its JSON parser refuses them)
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
text = st.one_of(
    st.sampled_from([t for t in NASTY_TEXT if "\ud800" not in t]),
    st.text(alphabet=any_char, max_size=40),
    st.builds(lambda a, n: a * n, st.sampled_from(["&<", "<!channel> ", "x ", "`"]), st.integers(1, 2000)),
)
moments = st.none() | st.datetimes(timezones=st.just(UTC))
mentions = st.none() | st.sampled_from(["<!subteam^S0123ABCD>", "<@U0123>", "<!here>", "<!channel>"]) | text
runbooks = st.none() | text | st.builds(lambda t: "https://wiki.example.com/" + t, text)


@st.composite
def items(draw: Any) -> NotificationItem:
    finding = FindingPayload(
        policy=draw(st.sampled_from(["degraded-group", "failed-rollback"]) | text),
        severity=draw(st.sampled_from(["critical", "warning", "info"])), cluster="c", condition=draw(text),
        summary=draw(text), instance_group=draw(st.none() | text), node=draw(st.none() | text),
        details=draw(st.dictionaries(st.sampled_from(["status", "failure_message", "counts", "taints"]) | text,
                                     json_values, max_size=4)),
        fingerprint="0123456789abcdef0123",
    )
    evidence = draw(st.none() | st.dictionaries(st.sampled_from(["summary", "group_status", "current_count"]) | text,
                                                json_values, max_size=4))
    return NotificationItem(
        reason=draw(st.sampled_from(["first", "repeat", "escalated", "remediated", "resolved"])), finding=finding,
        first_seen=draw(moments), fired_at=draw(moments), resolved_at=draw(moments), resolved_evidence=evidence,
        actions=tuple(draw(st.lists(text, max_size=2))), next_step=draw(st.none() | text),
        runbook_url=draw(runbooks),
        receivers=tuple(ReceiverRef(name=name, mention=draw(mentions))
                        for name in draw(st.lists(st.sampled_from(["oncall", "default"]), max_size=2, unique=True))),
    )


notifications = st.builds(
    Notification, cluster=text, account=st.none() | text, region=st.none() | st.just("us-west-2") | text,
    sent_at=moments, items=st.lists(items(), min_size=1, max_size=4).map(tuple),
    tags=st.none() | st.dictionaries(text, text, max_size=6), test=st.booleans(), receiver=st.none() | text,
)


def _texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] in ("section", "header"):
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(e["text"] for e in block["elements"])
        elif block["type"] == "actions":
            texts.extend(e["text"]["text"] for e in block["elements"])
    return texts


@FUZZ
@given(notifications, st.sampled_from(["oncall", "default"]))
def test_any_notification_renders_within_slacks_limits_and_inert(notification, receiver):
    payload = render(notification, receiver)
    blocks = payload["blocks"]
    assert len(blocks) <= 50 and len(payload["text"]) <= 3000
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
        elif block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        elif block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            assert all(e["url"].startswith("https://") and len(e["url"]) <= 3000 and len(e["text"]["text"]) <= 75
                       for e in block["elements"])
    # the only control sequences: our dates, and (first section) the mentions of the receiver's routes
    serialized = DATE_TOKEN.sub("", json.dumps(payload, ensure_ascii=False))
    first = blocks[2]["text"]["text"] if len(blocks) > 2 and blocks[2]["type"] == "section" else ""
    if first.startswith("<"):
        line_mentions = first.split(" ")[: first.count("<")]
        assert all(MENTION.match(m) for m in line_mentions), first
        for mention in line_mentions:
            serialized = serialized.replace(mention, "")
    assert "<" not in serialized and ">" not in serialized
    assert not [t for t in _texts(payload) if _CONTROL.search(t)]
    assert len(json.dumps(payload, ensure_ascii=False).encode("utf-8")) < 200_000  # utf-8 encodable, not huge


# -- the push text: a sentence that fits a phone's preview, never cut mid-word -----------------------------

#: words as summaries have them, and anything else (one long token, punctuation, emoji, entities)
word = st.one_of(st.text(alphabet=st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=14),
                 st.sampled_from(["p5-train", "i-0a1b2c3d4e5f60718", "&", "<!channel>", "@here", "—", "(15/16",
                                  "x" * 120]))
summaries = st.one_of(st.lists(word, min_size=1, max_size=40).map(" ".join),
                      st.text(alphabet=st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=300))
cluster_names = st.from_regex(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", fullmatch=True)


def shown(payload_text: str) -> str:
    """What a phone shows of the fallback text: the three entities decoded, the word joiners invisible."""
    decoded = re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], payload_text)
    return decoded.replace("\u2060", "")


@FUZZ
@given(summaries, cluster_names, st.sampled_from(["critical", "warning", "info"]), st.integers(0, 120))
def test_the_push_text_fits_a_phone_preview_and_ends_on_a_word(summary, cluster, severity, more):
    finding = FindingPayload(policy="degraded-group", severity=severity, cluster=cluster, condition="c",
                             summary=summary, fingerprint="f")
    first = NotificationItem(reason="first", finding=finding)
    notification = Notification(cluster=cluster, items=(first,) * (more + 1),
                                sent_at=datetime(2026, 11, 30, tzinfo=UTC))
    text = shown(render(notification)["text"])
    assert len(text) <= PREVIEW_LIMIT
    tail = f" (+{more} more)" if more else ""
    assert text.endswith(tail)
    head = text[: len(text) - len(tail)]
    full = " ".join(f"{severity.upper()} {cluster}: {summary}".split())
    event("whole" if head == full else "cut")  # --hypothesis-show-statistics: both happen
    if head == full:
        return
    # cut: a prefix of the whole sentence, then "…", and what follows the prefix in the sentence is the
    # space it was cut at (or punctuation dropped before it) - never the rest of a word
    assert head.endswith("…") and full.startswith(head[:-1]), (head, full)
    assert full[len(head) - 1] in " ,;:-—(", (head, full)
