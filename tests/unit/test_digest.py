"""The weekly digest message (notify/digest.py) and its Slack rendering (notify/slack.py render_digest): the
figures taken from a reliability report, every rendering (Slack, email, Chatbot) against its golden file
under tests/golden/digest/, the Chatbot payload against the custom-notification schema, the SNS attributes,
the body's `kind` and the notifier's parse that tells a digest from an alert; hostile names made inert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hyperpod_guard.archive import Episode
from hyperpod_guard.notify.delivery import UnknownKindError, message_kind, parse_message
from hyperpod_guard.notify.digest import MAX_CLUSTERS, RESOLVED_BY, Digest
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from hyperpod_guard.notify.slack import SECTION_LIMIT, render_digest
from hyperpod_guard.reliability import CAUSES, build_report
from tests.chatbot_schema import validate_chatbot
from tests.golden import check_golden

END = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
START = END - timedelta(days=7)


def episode(cluster: str, n: int, *, policy: str = "unhealthy-node", node: str | None = "i-0aaa",
            group: str | None = "p5-train", start_h: float = 10, hours: float | None = 1.0,
            resolved_by: str = "hyperpod-repair", reason: str = "NvidiaGpuXidError") -> Episode:
    """Episode `n` of `cluster`, fired `start_h` hours after the period's start, lasting `hours` (None: open)."""
    fired = START + timedelta(hours=start_h)
    resolved = fired + timedelta(hours=hours) if hours is not None else None
    return Episode(
        fingerprint=f"{n:020x}", cluster=cluster, account="123456789012", region="us-west-2", policy=policy,
        condition="unhealthy" if policy == "unhealthy-node" else "below-target", severity="critical",
        instance_group=group, node=node, first_seen=fired - timedelta(minutes=5), fired_at=fired, resolved_at=resolved,
        open=resolved is None, duration_seconds=hours * 3600 if hours is not None else None,
        resolved_by=resolved_by if resolved else None, summary=f"{policy} on {cluster}", reason=reason)


def week() -> list[Episode]:
    """Two clusters: ml-prod with a repeat-offender node (3 GPU faults), a remediated one, a group short of
    capacity and one still open; ml-dev with one manual episode."""
    return [
        episode("ml-prod", 1, start_h=10, hours=0.5),
        episode("ml-prod", 2, start_h=30, hours=1.5),
        episode("ml-prod", 3, start_h=50, hours=2.0, resolved_by="remediation"),
        episode("ml-prod", 4, policy="degraded-group", node=None, start_h=70, hours=3.0, resolved_by="manual",
                reason="InsufficientCapacity"),
        episode("ml-prod", 5, node="i-0bbb", start_h=160, hours=None),
        episode("ml-dev", 6, node="i-0ccc", group="workers", start_h=20, hours=4.0, resolved_by="manual",
                reason="NodeNotReady"),
    ]


def make(episodes: list[Episode], **kwargs: Any) -> Digest:
    report = build_report(episodes, [], start=START, end=END, now=END)
    return Digest.of(report, receivers=kwargs.pop("receivers", ("default",)), sent_at=END, account="123456789012",
                     region="us-west-2", **kwargs)


def test_the_figures_come_from_the_report() -> None:
    digest = make(week())
    totals = digest.totals
    assert (totals.incidents, totals.open) == (6, 1)
    # resolved: 0.5h, 1.5h (HyperPod), 2h (ours), 3h, 4h (manual): nearest-rank median 2h, p90 4h
    assert (totals.mttr_median_seconds, totals.mttr_p90_seconds) == (7200, 14400)
    assert totals.resolved_by == {"hyperpod-repair": 2, "remediation": 1, "other": 2}
    assert [(c.cluster, c.incidents, c.open) for c in digest.clusters] == [("ml-prod", 5, 1), ("ml-dev", 1, 0)]
    assert digest.clusters[0].by_policy == {"unhealthy-node": 4, "degraded-group": 1}
    assert [(f.reason, f.count, f.clusters) for f in digest.top_findings][:1] == [
        ("NvidiaGpuXidError", 4, ("ml-prod",))]
    assert [(o.cluster, o.node, o.incidents) for o in digest.repeat_offenders] == [("ml-prod", "i-0aaa", 3)]
    assert digest.preview == ("Weekly digest 2026-11-23 to 2026-11-30: 6 incidents on 2 clusters, 1 still open; "
                              "MTTR median 2h")
    assert RESOLVED_BY.keys() == CAUSES.keys() - {"all"}  # the digest's words for the report's causes


def test_an_empty_week_says_so() -> None:
    digest = make([])
    assert digest.empty and digest.clusters == () and digest.top_findings == ()
    assert digest.preview == "Weekly digest 2026-11-23 to 2026-11-30: no incidents, nothing open"
    assert "No incidents this period" in digest.text()
    texts = [b["text"]["text"] for b in render_digest(digest)["blocks"] if b["type"] == "section"]
    assert texts == ["✅ *No incidents this period*: no alert episode resolved in it and none is open."]


@pytest.mark.parametrize("name", ["week", "empty"])
def test_every_rendering_matches_its_golden_file(name: str) -> None:
    digest = make(week() if name == "week" else [])
    check_golden("digest", f"{name}.slack", render_digest(digest))
    check_golden("digest", f"{name}.email", digest.text())
    check_golden("digest", f"{name}.chatbot", digest.chatbot())
    validate_chatbot(digest.chatbot())


def test_the_sns_message_and_its_attributes() -> None:
    digest = make(week(), receivers=("default", "ml-oncall"))
    message = json.loads(digest.sns_message())
    assert set(message) == {"default", "email", "https"}
    body = json.loads(message["default"])
    assert body["kind"] == "digest" and body["totals"]["incidents"] == 6 and body["text"] == message["email"]
    validate_chatbot(message["https"])
    assert digest.attributes() == {
        "kind": {"DataType": "String", "StringValue": "digest"},
        "receivers": {"DataType": "String.Array", "StringValue": '["default","ml-oncall"]'},
        "account": {"DataType": "String", "StringValue": "123456789012"},
    }
    assert digest.subject.startswith("[DIGEST] hyperpod-guard Weekly digest 2026-11-23 to 2026-11-30")
    assert len(digest.subject) < 100 and digest.subject.isascii()


def alert() -> Notification:
    finding = FindingPayload(policy="degraded-group", severity="critical", cluster="ml-prod", instance_group="workers",
                             fingerprint="0123456789abcdef0123", condition="status-failed", summary="workers failed",
                             details={"kind": "a detail that says kind", "status": "Failed"})
    return Notification(cluster="ml-prod", items=(NotificationItem(reason="first", finding=finding),))


def test_the_notifier_tells_a_digest_from_an_alert() -> None:
    digest = make(week())
    body = json.loads(digest.sns_message())["default"]
    assert message_kind(body) == "digest" and parse_message(body) == Digest.model_validate_json(body)
    # an alert's body carries no `kind` (unchanged); one whose details say "kind" is still an alert
    assert "kind" not in json.loads(alert().body())
    assert message_kind(alert().body()) == "alert" and parse_message(alert().body()) == alert()
    with pytest.raises(UnknownKindError, match="'report'"):
        parse_message(json.dumps({"kind": "report"}))
    with pytest.raises(ValidationError):
        parse_message(json.dumps({"kind": "digest", "start": "soon"}))


def test_hostile_names_are_inert_and_a_large_fleet_stays_bounded() -> None:
    hostile = "<!channel> @here [x](https://evil.example) `tick`"
    episodes = [episode(f"c{n:03d}{hostile if n == 0 else ''}", n, node=f"i-{n}", start_h=1 + n % 100)
                for n in range(MAX_CLUSTERS + 15)]
    digest = make(episodes)
    assert len(digest.clusters) == MAX_CLUSTERS and digest.more_clusters == 15
    payload = render_digest(digest)
    text = json.dumps(payload, ensure_ascii=False)
    assert "<!channel>" not in text and "@here" not in text  # escaped, and a word joiner after the @
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in payload["blocks"] if b["type"] == "section")
    chatbot = digest.chatbot()
    validate_chatbot(chatbot)
    assert "<!channel>" not in json.dumps(chatbot, ensure_ascii=False)
    assert "](" not in chatbot["content"]["description"]
    assert len(digest.sns_message().encode()) < 64 * 1024


def test_the_notifier_loads_the_digest_only_with_a_digest() -> None:
    """The digest comes once a week: its model is not part of the notifier's cold start (it loads with the first
    digest it parses)."""
    import subprocess
    import sys

    from hyperpod_guard.notify import delivery, digest

    assert delivery.DIGEST_KIND == digest.KIND
    code = ("import sys; import hyperpod_guard.handlers.slack_notifier; "
            "print('hyperpod_guard.notify.digest' in sys.modules, 'hyperpod_guard.reliability' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"POWERTOOLS_METRICS_DISABLED": "true", "PATH": ""})
    assert result.stdout.split() == ["False", "False"], result.stderr
