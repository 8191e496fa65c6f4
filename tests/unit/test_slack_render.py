"""Slack Block Kit rendering (pure) and the webhook sender (against the local sink)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hyperpod_guard.local import slack_html
from hyperpod_guard.notify.delivery import routed
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem, ReceiverRef
from hyperpod_guard.notify.slack import (
    MENTION,
    SlackDeliveryError,
    SlackError,
    SlackPermanentError,
    SlackSender,
    console_url,
    detail_lines,
    escape_mrkdwn,
    render,
    runbook_url,
    slack_date,
)
from tests.golden import check_golden
from tests.message_samples import RUNBOOK as SAMPLE_RUNBOOK
from tests.message_samples import SAMPLES
from tests.slack_sink import slack_sink  # noqa: F401

CLUSTER = "ml-prod"
SINCE = datetime(2026, 6, 1, 17, 20, 25, tzinfo=timezone.utc)


def item(reason: str = "first", *, severity: str = "warning", policy: str = "degraded-group",
         cluster: str = CLUSTER, group: str | None = "workers", node: str | None = None,
         summary: str = "Instance group workers is Degraded (2/4 nodes)",
         details: dict[str, Any] | None = None, first_seen: datetime | None = None) -> NotificationItem:
    finding = FindingPayload(policy=policy, severity=severity, cluster=cluster, instance_group=group, node=node,
                             fingerprint="0123456789abcdef0123", condition="status-degraded", summary=summary,
                             details=details or {})
    return NotificationItem(reason=reason, finding=finding, first_seen=first_seen)


def note(*items: NotificationItem, cluster: str = CLUSTER, region: str | None = "us-west-2") -> Notification:
    return Notification(cluster=cluster, region=region, items=items)


def sections(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every text Slack parses as mrkdwn: the fallback, sections, context elements."""
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(e["text"] for e in block["elements"])
    return texts


def slack_display(text: str) -> str:
    """What Slack shows for escaped mrkdwn: the three entities decoded, once."""
    return re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)


# -- header, context, fallback --------------------------------------------------------------


@pytest.mark.parametrize(("items", "header", "counts"), [
    ([item(severity="critical")], "🔴 ml-prod: 1 firing", "1 firing · 0 resolved"),
    ([item(severity="warning")], "🟠 ml-prod: 1 firing", "1 firing · 0 resolved"),
    ([item(severity="info")], "🔵 ml-prod: 1 firing", "1 firing · 0 resolved"),
    ([item(severity="info"), item(severity="critical"), item(severity="warning")], "🔴 ml-prod: 3 firing",
     "3 firing · 0 resolved"),
    # the header follows the firing items: a resolved critical does not make it red
    ([item(severity="warning"), item("resolved", severity="critical")], "🟠 ml-prod: 1 firing, 1 resolved",
     "1 firing · 1 resolved"),
    ([item("resolved", severity="critical"), item("resolved", severity="info")], "✅ ml-prod: resolved",
     "0 firing · 2 resolved"),
])
def test_header_and_context(items, header, counts):
    payload = render(note(*items))
    first, second = payload["blocks"][:2]
    assert first == {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    assert second == {"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"HyperPod cluster `ml-prod` · region `us-west-2` · {counts}"}]}


def test_fallback_text_is_the_preview():
    # a sentence for a phone's lock screen (Notification.preview), no longer the SNS Subject's "[CRITICAL]"
    payload = render(note(item(severity="critical", summary="Instance group workers is Failed"), item()))
    assert payload["text"] == "CRITICAL ml-prod: Instance group workers is Failed (+1 more)"
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False


def test_context_without_region():
    payload = render(note(item(), region=None))
    assert payload["blocks"][1]["elements"][0]["text"] == "HyperPod cluster `ml-prod` · 1 firing · 0 resolved"


# -- one section per item -------------------------------------------------------------------


def test_one_section_per_item_most_severe_first_resolved_last():
    payload = render(note(
        item("resolved", severity="critical", summary="r"),
        item(severity="info", summary="i"),
        item(severity="critical", summary="c"),
        item(severity="warning", summary="w"),
    ))
    # a resolved item without re-read evidence shows its firing summary only as "was:"
    assert [s.split("\n")[1] for s in sections(payload)] == ["c", "w", "i", "_was:_ r"]
    assert [b["type"] for b in payload["blocks"]] == ["header", "context"] + ["section"] * 4 + ["actions"]


def test_firing_section_exact():
    payload = render(note(item(details={"status": "Degraded", "counts": {"current": 2, "target": 4, "min": 1}})))
    assert sections(payload) == [
        "🟠 *WARNING* · `degraded-group` · group `workers`\n"
        "Instance group workers is Degraded (2/4 nodes)\n"
        "• status `Degraded`\n"
        "• nodes: 2 current · 4 target · 1 min"
    ]


SINCE_TOKEN = "<!date^1780334425^{date_short_pretty} {time}|2026-06-01 17:20 UTC>"


@pytest.mark.parametrize(("reason", "first_seen", "severity", "lines"), [
    # since when is now a line of its own, in Slack date formatting (note() has no sent_at: no "for")
    ("repeat", SINCE, "warning", ["_🔁 Repeat reminder: still firing_", f"🕒 Firing since {SINCE_TOKEN}"]),
    ("repeat", None, "warning", ["_🔁 Repeat reminder: still firing_"]),
    ("escalated", SINCE, "critical", ["_⏫ Escalated to critical_", f"🕒 Firing since {SINCE_TOKEN}"]),
    ("escalated", None, "critical", ["_⏫ Escalated to critical_"]),
])
def test_repeat_and_escalated_reason_shown(reason, first_seen, severity, lines):
    text = sections(render(note(item(reason, severity=severity, first_seen=first_seen))))[0]
    assert text.split("\n")[2:] == lines


def test_first_has_no_reason_line():
    text = sections(render(note(item("first"))))[0]
    assert text.split("\n") == [text.split("\n")[0], "Instance group workers is Degraded (2/4 nodes)"]


def test_resolved_without_evidence_says_only_what_it_was():
    text = sections(render(note(item("resolved"))))[0]
    assert text.split("\n")[1:] == ["_was:_ Instance group workers is Degraded (2/4 nodes)"]


def test_resolved_item_marked():
    text = sections(render(note(item("resolved", severity="critical", node="i-0abc", group="workers"))))[0]
    assert text.split("\n")[0] == "✅ *Resolved* · ~critical~ · `degraded-group` · group `workers` · node `i-0abc`"


@pytest.mark.parametrize(("group", "node", "scope"), [
    (None, None, "cluster"),
    ("workers", None, "group `workers`"),
    (None, "i-0abc", "node `i-0abc`"),
    ("work`ers", "i-0abc", "group `workˋers` · node `i-0abc`"),  # a backtick cannot close the span
])
def test_scope(group, node, scope):
    text = sections(render(note(item(severity="info", group=group, node=node))))[0]
    assert text.split("\n")[0] == f"🔵 *INFO* · `degraded-group` · {scope}"


# -- details per policy ---------------------------------------------------------------------

GUIDANCE = "No automatic action is taken on images."


@pytest.mark.parametrize(("details", "lines"), [
    pytest.param({"check": "current-vs-desired", "group_status": "InService",
                  "taints": {"missing": ["gpu=true:NoSchedule"],
                             "changed": [{"key": "team", "current": "team=a:NoSchedule", "desired": "team=b:NoSchedule"}]},
                  "labels": {"unexpected": {"env": "dev"}, "changed": {"tier": {"current": "1", "desired": "2"}}}},
                 ["group status `InService`",
                  "taints missing: `gpu=true:NoSchedule`",
                  "taints changed: `team`: current `team=a:NoSchedule` → desired `team=b:NoSchedule`",
                  "labels unexpected: `env=dev`",
                  "labels changed: `tier`: current `1` → desired `2`"], id="taint-drift-current-vs-desired"),
    pytest.param({"check": "required", "instance_type": "ml.p5.48xlarge",
                  "taints": {"changed": [{"key": "gpu", "declared": "gpu=false:NoSchedule", "required": "gpu=true:NoSchedule"}]},
                  "labels": {"missing": {"team": "ml"}, "changed": {"tier": {"declared": "1", "required": "2"}}}},
                 ["taints changed: `gpu`: declared `gpu=false:NoSchedule` → required `gpu=true:NoSchedule`",
                  "labels missing: `team=ml`",
                  "labels changed: `tier`: declared `1` → required `2`",
                  "instance type `ml.p5.48xlarge`"], id="taint-drift-required"),
    pytest.param({"taints": {"unexpected": [f"t{i}=x:NoSchedule" for i in range(7)]}},
                 ["taints unexpected: `t0=x:NoSchedule`, `t1=x:NoSchedule`, `t2=x:NoSchedule`, "
                  "`t3=x:NoSchedule`, `t4=x:NoSchedule` (+2 more)"], id="taint-drift-long-list"),
    pytest.param({"event_description": "Failed to update Kubernetes config for instance i-0abc"},
                 ["event: Failed to update Kubernetes config for instance i-0abc"], id="taint-drift-event"),
    pytest.param({"status": "InService", "counts": {"current": 2, "target": 8, "min": 1},
                  "shortfall_ratio": 0.75, "threshold_ratio": 0.2},
                 ["status `InService`", "nodes: 2 current · 8 target · 1 min", "shortfall 75% (threshold 20%)"],
                 id="degraded-below-target"),
    pytest.param({"status": "Failed", "failure_message": "Insufficient capacity\nin us-west-2a",
                  "cluster_event": {"description": "Instance group failed", "level": "Error",
                                    "failure_message": "ICE", "time": "2026-06-01T17:20:25Z"}},
                 ["status `Failed`", "cluster event (Error): Instance group failed — ICE",
                  "failure: Insufficient capacity in us-west-2a"], id="degraded-cluster-failed"),
    pytest.param({"software_update_status": "RollbackComplete", "current_image_id": "ami-old",
                  "desired_image_id": "ami-new", "target_state_count": 3, "current_count": 4,
                  "auto_rollback_alarms": ["gpu-errors"], "guidance": GUIDANCE},
                 ["software update status `RollbackComplete`", "nodes: 4 current · 3 on target image",
                  "image `ami-old` (desired `ami-new`)", "auto rollback alarms: `gpu-errors`",
                  f"guidance: {GUIDANCE}"], id="failed-rollback"),
    pytest.param({"software_update_status": "RollbackInProgress", "current_image_id": "ami-1",
                  "desired_image_id": "ami-1", "critical_after": "30m", "triggered_alarms": ["a1", "a2"]},
                 ["software update status `RollbackInProgress`", "image `ami-1`", "triggered alarms: `a1`, `a2`",
                  "critical after `30m`"], id="failed-rollback-in-progress"),
    pytest.param({"health_status": "Unhealthy", "reason": "GPU XID 79", "repair_action": "Replace",
                  "recommendation": "Replace the node", "node_recovery": "Automatic"},
                 ["health status `Unhealthy`", "reason: GPU XID 79", "recommendation: Replace the node",
                  "repair action `Replace` · node recovery `Automatic`"], id="unhealthy-node-event"),
    pytest.param({"instance_status": "Failure", "message": "Node failed health checks", "node_recovery": "None"},
                 ["instance status `Failure`", "message: Node failed health checks", "node recovery `None`"],
                 id="unhealthy-node-state"),
    pytest.param({"status": None, "failure_message": None, "future_key": "v", "nested": {"a": 1}},
                 ["future key: v"], id="unknown-keys-scalars-only"),
    pytest.param({}, [], id="no-details"),
])
def test_details_rendering(details, lines):
    assert detail_lines(details) == lines
    text = sections(render(note(item(details=details))))[0]
    assert text.split("\n")[2:] == [f"• {line}" for line in lines]


def test_details_capped():
    details = {f"key_{i}": f"value {i}" for i in range(12)}
    lines = detail_lines(details)
    assert len(lines) == 8
    assert lines[-1] == "_(+5 more details)_"
    assert lines[:7] == [f"key {i}: value {i}" for i in range(7)]


# -- console link ---------------------------------------------------------------------------


def test_console_url():
    assert console_url("us-west-2", "ml prod/1") == (
        "https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2"
        "#/cluster-management/ml%20prod%2F1")


def test_console_url_of_a_cluster_elsewhere_in_the_fleet_names_the_cluster_not_its_key():
    assert console_url("us-east-1", "ml-prod@444455556666/us-east-1") == (
        "https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/cluster-management/ml-prod")


@pytest.mark.parametrize("region", ["evil.example/x#", "us-west-2.evil.example", "", "US-WEST-2"])
def test_console_url_refuses_what_is_not_a_region(region):
    with pytest.raises(ValueError):
        console_url(region, CLUSTER)


@pytest.mark.parametrize(("region", "url"), [
    ("us-west-2", "https://us-west-2.console.aws.amazon.com/sagemaker/home?region=us-west-2#/cluster-management/ml-prod"),
    ("eu-central-1", "https://eu-central-1.console.aws.amazon.com/sagemaker/home?region=eu-central-1#/cluster-management/ml-prod"),
    ("us-gov-west-1", "https://us-gov-west-1.console.aws.amazon.com/sagemaker/home?region=us-gov-west-1#/cluster-management/ml-prod"),
    (None, None),
    ("evil.example/x#", None),
])
def test_console_button_iff_region(region, url):
    blocks = render(note(item(), region=region))["blocks"]
    actions = [b for b in blocks if b["type"] == "actions"]
    if url is None:
        assert actions == []
        return
    assert blocks[-1] == actions[0]
    assert actions[0]["elements"] == [{
        "type": "button", "action_id": "open-console", "url": url,
        "text": {"type": "plain_text", "text": "Open cluster in the SageMaker console", "emoji": True},
    }]


# -- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "escaped"), [
    ("a & b", "a &amp; b"),
    ("<!channel>", "&lt;!channel&gt;"),
    ("<@U123> <#C1>", "&lt;@U123&gt; &lt;#C1&gt;"),
    ("<http://evil.example|click>", "&lt;http://evil.example|click&gt;"),
    ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),
    ("hi @channel, @Here and @everyone", "hi @\u2060channel, @\u2060Here and @\u2060everyone"),
    ("mail@channels.example", "mail@channels.example"),
    ("plain", "plain"),
])
def test_escape_mrkdwn(raw, escaped):
    assert escape_mrkdwn(raw) == escaped


PAYLOADS = ["<!channel>", "<!here>", "<@U123>", "<#C1>", "<http://evil.example|click>", "&lt;!channel&gt;"]


def _with(field: str, value: str) -> Notification:
    text = f"x {value} y"
    kwargs: dict[str, Any] = {}
    details: dict[str, Any] = {"status": "Degraded"}
    if field in ("instance_group", "node"):
        kwargs["group" if field == "instance_group" else "node"] = text
    elif field == "summary":
        kwargs["summary"] = text
    elif field == "failure_message":
        details["failure_message"] = text
    elif field == "description":
        details["event_description"] = text
    elif field == "cluster_event":
        details["cluster_event"] = {"description": text, "level": "Error", "failure_message": text}
    elif field == "taint":
        details["taints"] = {"missing": [text], "changed": [{"key": text, "current": text, "desired": text}]}
    elif field == "label":
        details["labels"] = {"missing": {text: text}, "changed": {text: {"current": text, "desired": text}}}
    elif field == "reason":
        details["reason"] = text
    cluster = text if field == "cluster" else CLUSTER
    region = text if field == "region" else "us-west-2"
    return note(item(cluster=cluster, details=details, **kwargs), cluster=cluster, region=region)


FIELDS = ["cluster", "region", "instance_group", "node", "summary", "failure_message", "description",
          "cluster_event", "taint", "label", "reason"]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", FIELDS)
def test_untrusted_text_can_neither_ping_nor_link(field, payload):
    rendered = render(_with(field, payload))
    serialized = json.dumps(rendered, ensure_ascii=False)
    # no raw angle bracket anywhere: Slack parses control sequences only from raw < >
    assert "<" not in serialized and ">" not in serialized
    for sequence in ("<!", "<@", "<#", "<http"):
        assert sequence not in serialized
    # and people see exactly what the data said
    shown = [slack_display(t) for t in mrkdwn_texts(rendered)]
    assert any(f"x {payload} y" in t for t in shown), shown
    if payload == "&lt;!channel&gt;":  # already-escaped text is not decoded into a control sequence
        assert not any("<!channel>" in t for t in shown)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_header_is_plain_and_inert(payload):
    header = render(_with("cluster", payload))["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert header["text"] == "🟠 x " + payload.replace("<", "‹").replace(">", "›") + " y: 1 firing"


def test_header_is_one_line():
    header = render(note(item(cluster="a\nb\tc"), cluster="a\nb\tc"))["blocks"][0]["text"]["text"]
    assert header == "🟠 a b c: 1 firing"


# -- limits ---------------------------------------------------------------------------------


def test_long_summary_cut_so_the_rest_of_the_section_fits():
    # the summary is cut to 1 000 characters (was: to the section's 3 000), so that since when, the
    # evidence and the next step still fit after it
    text = sections(render(note(item(summary="s" * 10_000, details={"status": "Failed"}))))[0]
    assert len(text) < 3000
    assert text.split("\n")[1] == "s" * 999 + "…"
    assert text.split("\n")[2] == "• status `Failed`"


def test_escaping_growth_is_cut_without_breaking_an_entity():
    text = sections(render(note(item(summary="&" * 2_000))))[0]  # 2 000 chars become 10 000
    assert len(text) <= 3000
    assert text.endswith("&amp;…")
    assert not re.search(r"&[a-z]{0,3}…$", text.removesuffix("&amp;…") + "…")


def test_long_detail_value_cut():
    lines = detail_lines({"failure_message": "f" * 10_000})
    assert lines == ["failure: " + "f" * 499 + "…"]


def test_long_cluster_name_cut_in_header():
    payload = render(note(item(cluster="c" * 300), cluster="c" * 300))
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("c…: 1 firing")


@pytest.mark.parametrize(("count", "region", "shown", "more"), [
    (80, "us-west-2", 46, "…and 34 more findings (34 firing, 0 resolved): see the SNS message or the console"),
    (80, None, 47, "…and 33 more findings (33 firing, 0 resolved): see the SNS message or the console"),
    (48, "us-west-2", 46, "…and 2 more findings (2 firing, 0 resolved): see the SNS message or the console"),
    (47, "us-west-2", 47, None),
    (48, None, 48, None),
])
def test_block_limit(count, region, shown, more):
    items = [item(summary=f"finding {i}") for i in range(count)]
    blocks = render(note(*items, region=region))["blocks"]
    assert len(blocks) <= 50
    texts = sections({"blocks": blocks})
    assert [t.split("\n")[1] for t in texts[:shown]] == [f"finding {i}" for i in range(shown)]
    if more is None:
        assert len(texts) == count
    else:
        assert len(blocks) == 50
        assert texts[shown:] == [more]


def test_block_limit_counts_resolved_in_the_rest():
    items = [item(summary=f"f{i}") for i in range(40)] + [item("resolved", summary=f"r{i}") for i in range(40)]
    texts = sections(render(note(*items)))
    assert texts[-1] == "…and 34 more findings (0 firing, 34 resolved): see the SNS message or the console"


# -- sender, against the local sink ---------------------------------------------------------

PAYLOAD = {"text": "hello", "blocks": []}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sender(url: str, sleeps: Sleeps, **kwargs: Any) -> SlackSender:
    return SlackSender(url, sleep=sleeps, jitter=lambda: 0.0, **kwargs)


def assert_no_url(exc: BaseException, url: str) -> None:
    text = f"{exc} {exc!r} {exc.args}"
    for secret in (url, "/services/", "T000/B000", "XXXX"):
        assert secret not in text


def test_send_ok(slack_sink):  # noqa: F811 (pytest fixture)
    sleeps = Sleeps()
    sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert len(slack_sink.requests) == 1
    request = slack_sink.requests[0]
    assert request.path == "/services/T000/B000/XXXX"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.json == PAYLOAD
    assert sleeps == []


def test_send_rendered_payload(slack_sink):  # noqa: F811
    payload = render(note(item(summary="ünïcode ✓")))
    SlackSender(slack_sink.url).send(payload)
    assert slack_sink.payloads == [payload]


def test_429_honours_retry_after(slack_sink):  # noqa: F811
    slack_sink.respond(429, "rate_limited", headers={"Retry-After": "2"})
    sleeps = Sleeps()
    s = sender(slack_sink.url, sleeps)
    s.send(PAYLOAD)
    assert sleeps == [2.0]
    assert len(slack_sink.requests) == 2
    assert s.attempts == 2


def test_429_retry_after_capped(slack_sink):  # noqa: F811
    slack_sink.respond(429, "rate_limited", headers={"Retry-After": "600"})
    sleeps = Sleeps()
    sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert sleeps == [30.0]


def test_429_without_retry_after_backs_off(slack_sink):  # noqa: F811
    slack_sink.respond(429, "rate_limited")
    sleeps = Sleeps()
    sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert sleeps == [0.5]


def test_retry_after_beyond_deadline_gives_up(slack_sink):  # noqa: F811
    slack_sink.respond(429, "rate_limited", headers={"Retry-After": "5"})
    sleeps = Sleeps()
    s = sender(slack_sink.url, sleeps, deadline=10.0, clock=lambda: 7.0)
    with pytest.raises(SlackDeliveryError) as caught:
        s.send(PAYLOAD)
    assert str(caught.value) == ("Slack webhook: delivery failed after 1 attempt: HTTP 429 rate_limited; "
                                 "no time left before the deadline")
    assert sleeps == [] and len(slack_sink.requests) == 1


def test_deadline_passed_makes_no_request(slack_sink):  # noqa: F811
    with pytest.raises(SlackDeliveryError) as caught:
        sender(slack_sink.url, Sleeps(), deadline=10.0, clock=lambda: 10.0).send(PAYLOAD)
    assert caught.value.attempts == 0
    assert slack_sink.requests == []


def test_5xx_until_attempts_spent(slack_sink):  # noqa: F811
    slack_sink.respond(500, "boom", times=4)
    sleeps = Sleeps()
    with pytest.raises(SlackDeliveryError) as caught:
        sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert len(slack_sink.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert str(caught.value) == "Slack webhook: delivery failed after 4 attempts: HTTP 500 boom"
    assert caught.value.status == 500 and caught.value.attempts == 4
    assert_no_url(caught.value, slack_sink.url)


def test_backoff_has_jitter(slack_sink):  # noqa: F811
    slack_sink.respond(503, "", times=3)
    sleeps = Sleeps()
    SlackSender(slack_sink.url, sleep=sleeps, jitter=lambda: 1.0).send(PAYLOAD)
    assert sleeps == [0.75, 1.5, 3.0]
    assert len(slack_sink.requests) == 4


def test_5xx_then_ok(slack_sink):  # noqa: F811
    slack_sink.respond(502, "bad gateway")
    sleeps = Sleeps()
    sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert len(slack_sink.requests) == 2 and sleeps == [0.5]


def test_timeout_retried_then_error(slack_sink):  # noqa: F811
    slack_sink.respond(200, "ok", delay=1.0, times=2)
    sleeps = Sleeps()
    with pytest.raises(SlackDeliveryError) as caught:
        sender(slack_sink.url, sleeps, timeout=0.2, max_attempts=2).send(PAYLOAD)
    assert len(slack_sink.requests) == 2
    assert sleeps == [0.5]
    assert str(caught.value) == "Slack webhook: delivery failed after 2 attempts: timed out"
    assert_no_url(caught.value, slack_sink.url)


@pytest.mark.parametrize(("status", "body"), [(404, "no_service"), (400, "invalid_payload"), (403, "action_prohibited"),
                                              (410, "channel_is_archived")])
def test_other_4xx_is_permanent_at_once(slack_sink, status, body):  # noqa: F811
    slack_sink.respond(status, body)
    sleeps = Sleeps()
    with pytest.raises(SlackPermanentError) as caught:
        sender(slack_sink.url, sleeps).send(PAYLOAD)
    assert len(slack_sink.requests) == 1 and sleeps == []
    assert str(caught.value) == f"Slack webhook refused the message: HTTP {status} {body}"
    assert caught.value.status == status
    assert isinstance(caught.value, SlackError)
    assert_no_url(caught.value, slack_sink.url)


def test_connection_refused_is_retried_and_has_no_url():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/XXXX"
    sleeps = Sleeps()
    with pytest.raises(SlackDeliveryError) as caught:
        sender(url, sleeps, max_attempts=3).send(PAYLOAD)
    assert sleeps == [0.5, 1.0]
    assert str(caught.value) == ("Slack webhook: delivery failed after 3 attempts: "
                                 "ConnectionRefusedError: Connection refused")
    assert_no_url(caught.value, url)


class Unanswered(list):
    """The sender's on_unanswered calls: (attempt, reason)."""

    def __call__(self, attempt: int, reason: str) -> None:
        self.append((attempt, reason))


class RawServer:
    """A webhook that misbehaves once it has read a whole request: `answer(conn, stop)` decides
    (the local sink can only answer late, not drop the connection or stall in the body)."""

    def __init__(self, answer: Callable[[socket.socket, threading.Event], None]):
        self.requests = 0
        self._answer = answer
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/services/T000/B000/XXXX"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests += 1
                self._answer(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[socket.socket, threading.Event], None]) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_default_timeout_leaves_slack_time_to_answer():
    # a request Slack received but answered after the timeout is retried: a possible duplicate
    assert SlackSender("https://hooks.slack.com/services/T000/B000/XXXX").timeout == 15.0


def test_slow_answer_within_the_timeout_is_posted_once(slack_sink):  # noqa: F811
    slack_sink.respond(200, "ok", delay=0.3)
    s = sender(slack_sink.url, Sleeps(), timeout=1.0)
    s.send(PAYLOAD)
    assert len(slack_sink.requests) == 1 and s.attempts == 1


def test_an_answer_after_the_timeout_is_retried_and_reported_as_possibly_posted(slack_sink):  # noqa: F811
    # Slack received the request (the sink recorded it) but answered after 0.2 s: the retry
    # is needed (no alert is lost) and may show the message twice, so it is reported
    slack_sink.respond(200, "ok", delay=0.6)
    unanswered = Unanswered()
    sleeps = Sleeps()
    s = sender(slack_sink.url, sleeps, timeout=0.2, on_unanswered=unanswered)
    s.send(PAYLOAD)
    assert len(slack_sink.requests) == 2 and sleeps == [0.5]
    assert s.unanswered == 1 and unanswered == [(1, "timed out")]


def test_connection_closed_after_the_request_is_a_possible_duplicate(raw_server):
    server = raw_server(lambda conn, stop: None)  # reads the request, closes without a status line
    unanswered = Unanswered()
    s = sender(server.url, Sleeps(), max_attempts=2, on_unanswered=unanswered)
    with pytest.raises(SlackDeliveryError) as caught:
        s.send(PAYLOAD)
    assert server.requests == 2 and s.unanswered == 2
    assert unanswered == [(1, "RemoteDisconnected"), (2, "RemoteDisconnected")]
    assert_no_url(caught.value, server.url)


def test_connection_refused_is_retried_freely_not_a_possible_duplicate():
    with socket.socket() as sock:  # a port nobody listens on: nothing reached Slack
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unanswered = Unanswered()
    s = sender(f"http://127.0.0.1:{port}/services/T000/B000/XXXX", Sleeps(), max_attempts=3,
               on_unanswered=unanswered)
    with pytest.raises(SlackDeliveryError):
        s.send(PAYLOAD)
    assert s.attempts == 3 and s.unanswered == 0 and unanswered == []


def test_a_2xx_whose_body_is_lost_is_delivered_not_retried(raw_server):
    def ok_then_stall(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nok")
        stop.wait(1.0)  # the rest of the body never comes

    server = raw_server(ok_then_stall)
    s = sender(server.url, Sleeps(), timeout=0.2, max_attempts=2)
    s.send(PAYLOAD)  # Slack said 200: it is posted, whatever happens to the body
    assert server.requests == 1 and s.attempts == 1 and s.unanswered == 0


@pytest.mark.parametrize("url", [
    "ftp://hooks.slack.com/services/T000/B000/XXXX",
    "http://hooks.slack.com/services/T000/B000/XXXX",  # plain http only to the local sink
    "hooks.slack.com/services/T000/B000/XXXX",
    "https:///services/T000/B000/XXXX",
    "",
])
def test_invalid_url_refused_without_echoing_it(url):
    with pytest.raises(SlackPermanentError) as caught:
        SlackSender(url)
    assert str(caught.value) == "Slack webhook URL is not an https URL"
    assert_no_url(caught.value, url or "XXXX")


def test_repr_hides_the_url(slack_sink):  # noqa: F811
    assert "XXXX" not in repr(SlackSender(slack_sink.url))


# -- injection through every untrusted field ------------------------------------------------
#
# Everything below comes from event data or cluster state (names, FailureMessage, event
# descriptions, health reasons, image ids, alarm names, remediation lines built from node ids).
# Each field gets each payload; the properties: no control sequence, no extra line, no escape
# from a code span, no control character, and Slack's limits hold however long the value.

def _untrusted(field: str, value: str) -> Notification:
    """A notification carrying `value` in `field` (any field a finding or message can carry)."""
    details: dict[str, Any] = {"status": "Degraded"}
    kwargs: dict[str, Any] = {}
    cluster, region, actions = CLUSTER, "us-west-2", ()
    update: dict[str, Any] = {}  # the item's fields besides the finding's
    message: dict[str, Any] = {}  # the notification's fields besides cluster and region
    direct = {"summary": "summary", "instance_group": "group", "node": "node"}
    detail_keys = {"status", "group_status", "instance_status", "health_status", "software_update_status",
                   "failure_message", "message", "reason", "event_description", "description", "recommendation",
                   "guidance", "repair_action", "node_recovery", "critical_after", "instance_type",
                   "current_image_id", "desired_image_id", "shortfall_ratio", "current_count", "target_state_count"}
    if field == "cluster":
        cluster = value
    elif field == "region":
        region = value
    elif field == "action":
        actions = (f"would reboot {value} (dry run)",)
    elif field in direct:
        kwargs[direct[field]] = value
    elif field in detail_keys:
        details[field] = value
    elif field in ("triggered_alarms", "auto_rollback_alarms"):
        details[field] = [value, "ok-alarm"]
    elif field in ("counts_key", "counts_value"):
        details["counts"] = {value: 1} if field == "counts_key" else {"current": value}
    elif field in ("cluster_event", "cluster_event_level"):
        key = "level" if field == "cluster_event_level" else "description"
        details["cluster_event"] = {"description": "d", "failure_message": value, key: value}
    elif field in ("taint", "label"):
        kind = "taints" if field == "taint" else "labels"
        details[kind] = ({"missing": [value], "changed": [{"key": value, "current": value, "desired": value}]}
                         if kind == "taints" else {"missing": {value: value}, "changed": {value: {"current": value, "desired": value}}})
    elif field in ("extra_key", "extra_value"):
        details[value if field == "extra_key" else "future_evidence"] = "v" if field == "extra_key" else value
    elif field == "next_step":  # built from an action or the node's repair action: event data
        update["next_step"] = f"HyperPod repairs the node automatically ({value})"
    elif field in ("resolved_summary", "resolved_status", "resolved_key", "resolved_value"):
        # what is true now: re-read cluster state, shown instead of the firing evidence
        kwargs["reason"] = "resolved"
        evidence = {"summary": value if field == "resolved_summary" else "Instance group workers is back",
                    "group_status": value if field == "resolved_status" else "InService"}
        if field in ("resolved_key", "resolved_value"):
            key, shown = (value, "v") if field == "resolved_key" else ("future_evidence", value)
            evidence[key] = shown
        update.update(resolved_evidence=evidence, resolved_at=SINCE + timedelta(hours=2))
    elif field == "account":  # from the cluster's ARN
        message["account"] = value
    elif field in ("tag_key", "tag_value"):
        message["tags"] = {value: "v"} if field == "tag_key" else {"team": value}
    elif field == "runbook_url":  # the rules validate it; the message is read back from SNS all the same
        update["runbook_url"] = f"https://wiki.example.com/{value}"
    elif field == "mention":  # the rules validate it too; a mention is the one raw sequence we write
        update["receivers"] = (ReceiverRef(name="oncall", mention=value),)
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(field)
    untrusted = item(cluster=cluster, details=details, first_seen=SINCE, **kwargs).model_copy(
        update={"actions": actions, **update})
    return note(untrusted, cluster=cluster, region=region).model_copy(
        update={"sent_at": SINCE + timedelta(hours=3), **message})


UNTRUSTED_FIELDS = [
    "cluster", "region", "summary", "instance_group", "node", "action", "status", "group_status", "instance_status",
    "health_status", "software_update_status", "failure_message", "message", "reason", "event_description",
    "description", "recommendation", "guidance", "repair_action", "node_recovery", "critical_after", "instance_type",
    "current_image_id", "desired_image_id", "shortfall_ratio", "current_count", "target_state_count",
    "triggered_alarms", "auto_rollback_alarms", "counts_key", "counts_value", "cluster_event", "cluster_event_level",
    "taint", "label", "extra_key", "extra_value", "next_step", "resolved_summary", "resolved_status", "resolved_key",
    "resolved_value", "account", "tag_key", "tag_value", "runbook_url", "mention",
]
INJECTIONS = PAYLOADS + [
    "<!everyone> <!subteam^S123|team>", "<mailto:a@evil.example|mail>", "@channel @here",
    "`<!channel>`", "x` <!here> `y", "```\n<!channel>\n```",  # out of a code span
    "ok\n• *RESOLVED* · all clear\n> quoted", "a\r\nb\u2028c\u2029d\x85e",  # new lines that pretend
    "\x00\x07\x1b[31mred\x1b[0m\x7f\x9b", "\u202eevil\u202c \u2066x\u2069", "*bold* _it_ ~strike~ :rotating_light:",
]
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _texts(payload: dict[str, Any]) -> list[str]:
    """Every text Slack shows: mrkdwn texts, the header and button labels."""
    texts = mrkdwn_texts(payload)
    for block in payload["blocks"]:
        if block["type"] == "header":
            texts.append(block["text"]["text"])
        elif block["type"] == "actions":
            texts.extend(e["text"]["text"] for e in block["elements"])
    return texts


#: the one control sequence we write ourselves into every message with times: a date, its fallback the UTC time
DATE_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>")


def without_dates(serialized: str) -> str:
    return DATE_TOKEN.sub("", serialized)


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", UNTRUSTED_FIELDS)
def test_no_field_can_inject(field, payload):
    rendered = render(_untrusted(field, payload), "oncall")
    benign = render(_untrusted(field, "plain"), "oncall")
    serialized = without_dates(json.dumps(rendered, ensure_ascii=False))
    if field == "mention" and MENTION.match(payload):  # a route's mention, as the rules may write it: its job
        assert sections(rendered)[0] == f"{payload} 1 warning alert"
        assert "<" not in serialized.replace(payload, "", 1)
        return
    # no control sequence: <!..>, <@..>, <http..|..> (but our own dates, in the strict form above)
    assert "<" not in serialized and ">" not in serialized
    # a word joiner defuses bare mentions where Slack parses them (plain_text, the header, never does)
    assert not [t for t in mrkdwn_texts(rendered) if "@channel" in t or "@here" in t]
    # no extra lines: a field's text cannot add a bullet, a "resolved" line or a quote (nor a button: a
    # runbook link that is no URL makes none, so there only the texts are compared)
    texts = mrkdwn_texts if field == "runbook_url" else _texts
    assert [t.count("\n") for t in texts(rendered)] == [t.count("\n") for t in texts(benign)]
    # no way out of a code span: as many backticks in the blocks' mrkdwn as with a harmless value, unless
    # the field is free text (where a backtick is only formatting, as in the fallback text; the header is plain)
    if field not in ("summary", "failure_message", "message", "reason", "event_description", "description",
                     "recommendation", "guidance", "action", "cluster_event", "cluster_event_level", "extra_key",
                     "extra_value", "shortfall_ratio", "current_count", "target_state_count", "counts_key",
                     "counts_value", "next_step", "resolved_summary", "resolved_key", "resolved_value"):
        assert [t.count("`") for t in mrkdwn_texts(rendered)[1:]] == [t.count("`") for t in mrkdwn_texts(benign)[1:]]
    assert not [t for t in _texts(rendered) if _CONTROL.search(t)], "control or bidi characters reach Slack"


@pytest.mark.parametrize("field", UNTRUSTED_FIELDS)
def test_any_field_however_long_keeps_slacks_limits(field):
    rendered = render(_untrusted(field, "&<" * 50_000), "oncall")  # grows fourfold when escaped
    blocks = rendered["blocks"]
    assert len(blocks) <= 50 and len(rendered["text"]) <= 3000
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        elif block["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        elif block["type"] == "actions":
            assert len(block["elements"]) <= 25
            assert all(len(e["url"]) <= 3000 and len(e["text"]["text"]) <= 75 for e in block["elements"])
    assert len(json.dumps(rendered).encode()) < 40_000  # one finding: far below what Slack accepts
    assert "<" not in without_dates(json.dumps(rendered))  # a cut never leaves half a date behind


# -- every message kind, as the notifier posts it (tests/message_samples.py, golden files) --------------


def posted(kind: str) -> dict[str, dict[str, Any]]:
    """What the notifier posts for sample `kind`: receiver -> its payload."""
    return {name: render(part, name) for name, part in routed(SAMPLES[kind])}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_matches_its_golden_file(kind):
    for receiver, payload in posted(kind).items():
        check_golden("slack", kind if receiver == "default" else f"{kind}.{receiver}", payload)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_keeps_slacks_limits_and_says_where(kind):
    for payload in posted(kind).values():
        assert len(payload["blocks"]) <= 50 and len(payload["text"]) <= 100
        context = payload["blocks"][1]["elements"][0]["text"]
        assert "cluster `ml-prod` · account `123456789012` · region `us-west-2`" in context
        assert "<" not in without_dates(json.dumps(payload).replace("<!subteam^S0123ABCD>", ""))


#: the samples' first seen, 2026-11-30 07:16 UTC, as Slack date formatting
SAMPLE_SINCE = "<!date^1796022960^{date_short_pretty} {time}|2026-11-30 07:16 UTC>"


def test_firing_says_since_when_for_how_long_and_what_happens_next():
    (section,) = sections(render(SAMPLES["firing"], "default"))
    lines = section.split("\n")
    assert lines[:3] == [
        "🔴 *CRITICAL* · `failed-rollback` · group `p5-train`",
        "Software update of instance group p5-train failed and its rollback failed too",
        # first seen 07:16, the message sent 09:30: Slack shows the date in the reader's zone, else UTC
        f"🕒 Firing for 2h14m, since {SAMPLE_SINCE}",
    ]
    assert lines[-1] == "➡️ _Next:_ Nothing automatic: a person must act"
    assert "• failure: Instance i-0a1b2c3d4e5f60718 failed health checks after the update" in lines


def test_repeat_says_so_and_how_long():
    lines = sections(render(SAMPLES["repeat"]))[0].split("\n")
    assert lines[2:4] == ["_🔁 Repeat reminder: still firing_", f"🕒 Firing for 2h14m, since {SAMPLE_SINCE}"]


def test_escalated_says_so_and_since_when():
    lines = sections(render(SAMPLES["escalated"]))[0].split("\n")
    assert lines[2:4] == ["_⏫ Escalated to critical_", f"🕒 Firing for 2h14m, since {SAMPLE_SINCE}"]


def test_resolved_says_what_is_true_now_when_it_cleared_and_how_long_it_lasted():
    (section,) = sections(render(SAMPLES["resolved"]))
    assert section.split("\n") == [
        "✅ *Resolved* · ~warning~ · `degraded-group` · group `p5-train`",
        "Instance group p5-train is back to InService, 16/16 nodes",
        "_was:_ Instance group p5-train is Degraded (15/16 nodes)",
        "🕒 Cleared <!date^1796030960^{date_short_pretty} {time}|2026-11-30 09:29 UTC>, lasted 2h13m",
        "• group status `InService`",
        "• nodes: 16 current · 16 target",
    ]
    # not the firing evidence: the item's details (Degraded, 15 nodes) are not shown
    assert "`Degraded`" not in section and "15 current" not in section


def test_remediated_shows_the_action_and_the_next_step():
    lines = sections(render(SAMPLES["remediated"]))[0].split("\n")
    assert lines[-2:] == [
        "🛠 _Remediation:_ would replace i-0a1b2c3d4e5f60718 (dry run)",
        ("➡️ _Next:_ HyperPod repairs the node automatically (NodeRecovery Automatic, repair action Replace); "
         "remediation is a dry run: it would replace i-0a1b2c3d4e5f60718 and changes nothing"),
    ]


@pytest.mark.parametrize(("first_seen", "sent_at", "line"), [
    (SINCE, SINCE + timedelta(hours=2, minutes=14, seconds=59), "🕒 Firing for 2h14m, since "),  # whole minutes
    (SINCE, SINCE + timedelta(seconds=40), "🕒 Firing for 40s, since "),
    (SINCE, SINCE + timedelta(days=3, hours=1), "🕒 Firing for 3d1h, since "),
    (SINCE, SINCE - timedelta(minutes=5), "🕒 Firing for 0s, since "),  # a clock ahead: never negative
    (SINCE, None, "🕒 Firing since "),
])
def test_how_long_against_the_messages_time(first_seen, sent_at, line):
    message = note(item(first_seen=first_seen)).model_copy(update={"sent_at": sent_at})
    assert sections(render(message))[0].split("\n")[2] == line + SINCE_TOKEN


def test_a_date_slack_cannot_format_is_its_fallback():
    assert slack_date(datetime(1969, 12, 31, 23, 0, tzinfo=timezone.utc)) == "1969-12-31 23:00 UTC"
    assert slack_date(SINCE) == SINCE_TOKEN


def test_resolved_without_times_or_evidence():
    resolved = item("resolved").model_copy(update={"resolved_evidence": {"summary": "Cluster ml-prod is InService"}})
    assert sections(render(note(resolved)))[0].split("\n")[1:] == [
        "Cluster ml-prod is InService", "_was:_ Instance group workers is Degraded (2/4 nodes)"]


# -- context: account, region, tags -----------------------------------------------------------------


@pytest.mark.parametrize(("fields", "context"), [
    ({"account": "123456789012"},
     "HyperPod cluster `ml-prod` · account `123456789012` · region `us-west-2` · 1 firing"),
    ({"tags": {"team": "llm", "env": "prod"}},
     "HyperPod cluster `ml-prod` · region `us-west-2` · tags `env=prod` `team=llm` · 1 firing"),
    ({"tags": {f"k{i}": "v" for i in range(50)}},
     "HyperPod cluster `ml-prod` · region `us-west-2` · tags `k0=v` `k1=v` `k10=v` (+47 more) · 1 firing"),
    ({"tags": {}}, "HyperPod cluster `ml-prod` · region `us-west-2` · 1 firing"),
])
def test_context_says_account_and_a_few_tags(fields, context):
    payload = render(note(item()).model_copy(update=fields))
    assert payload["blocks"][1]["elements"][0]["text"] == context + " · 0 resolved"


# -- mentions: per receiver, firing only, checked ---------------------------------------------------

GROUP = "<!subteam^S0123ABCD>"


def routed_item(severity: str = "critical", reason: str = "first", mention: str | None = GROUP) -> NotificationItem:
    return item(reason, severity=severity).model_copy(update={"receivers": (
        ReceiverRef(name="ml-oncall", mention=mention, route=0), ReceiverRef(name="default"))})


def test_mention_first_for_the_receiver_whose_route_adds_it():
    message = note(routed_item())
    oncall, default = render(message, "ml-oncall"), render(message, "default")
    assert sections(oncall)[0] == f"{GROUP} 1 critical alert"
    assert len(sections(oncall)) == len(sections(default)) + 1
    assert GROUP not in json.dumps(default) and GROUP not in json.dumps(render(message))


@pytest.mark.parametrize(("items", "line"), [
    ([routed_item(), routed_item(), routed_item("warning")], f"{GROUP} 3 alerts: 2 critical, 1 warning"),
    ([routed_item(), routed_item("warning", mention="<!here>")], f"{GROUP} <!here> 2 alerts: 1 critical, 1 warning"),
    ([routed_item(), routed_item(mention=None)], f"{GROUP} 1 critical alert"),  # that route mentions nobody
    ([routed_item(), routed_item(reason="resolved")], f"{GROUP} 1 critical alert"),  # resolved never mentions
    ([routed_item(reason="resolved")], None),
])
def test_mention_counts_the_firing_items_it_is_for(items, line):
    payload = render(note(*items), "ml-oncall")
    first = sections(payload)[0]
    assert first == line if line else not first.startswith("<")


@pytest.mark.parametrize("mention", [
    "<!subteam^S0123ABCD|oncall>", "<!everyone>", "<!subteam^s0123>", "<@U123> <!channel>", "<#C0123>",
    "<http://evil.example|click>", "!here", "<!here", "<@X123>", "<!date^1^{time}|x>", "",
])
def test_a_mention_slack_would_read_otherwise_is_refused(mention):
    payload = render(note(routed_item(mention=mention)), "ml-oncall")
    assert not sections(payload)[0].startswith("<")
    assert "<" not in without_dates(json.dumps(payload))


@pytest.mark.parametrize("mention", ["<!subteam^S0123ABCD>", "<@U0123ABCD>", "<@W0123ABCD>", "<!here>", "<!channel>"])
def test_the_mentions_the_rules_may_write(mention):
    assert sections(render(note(routed_item(mention=mention)), "ml-oncall"))[0] == f"{mention} 1 critical alert"


# -- runbook buttons --------------------------------------------------------------------------------

RUNBOOK = "https://wiki.example.com/runbooks/degraded"


def buttons(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["action_id"], e["text"]["text"], e["url"])
            for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_runbook_button_beside_the_console_button_once_per_runbook():
    firing = item().model_copy(update={"runbook_url": RUNBOOK})
    resolved = item("resolved", policy="taint-drift").model_copy(update={"runbook_url": RUNBOOK + "/taints"})
    payload = render(note(firing, firing, resolved))
    assert [(a, t) for a, t, _ in buttons(payload)] == [("open-console", "Open cluster in the SageMaker console"),
                                                       ("runbook-0", "Runbook: degraded-group")]
    assert buttons(payload)[1][2] == RUNBOOK
    assert payload["blocks"][-1]["type"] == "actions"


def test_runbook_button_without_a_region():
    payload = render(note(item().model_copy(update={"runbook_url": RUNBOOK}), region=None))
    assert buttons(payload) == [("runbook-0", "Runbook: degraded-group", RUNBOOK)]


@pytest.mark.parametrize("url", [
    "http://wiki.example.com/x", "javascript:alert(1)", "https://", "https:///path", "https://wiki.example.com/a b",
    "https://wiki.example.com/<!channel>", "https://wiki.example.com/x|label", 'https://wiki.example.com/"x',
    "https://wiki.example.com/\x00", "https://wiki.example.com/" + "x" * 3000, "ftp://wiki.example.com", "",
])
def test_a_runbook_url_that_is_not_https_is_no_button(url):
    payload = render(note(item().model_copy(update={"runbook_url": url})))
    assert [a for a, _, _ in buttons(payload)] == ["open-console"]
    assert runbook_url(url) is None


def test_at_most_25_buttons():
    items = [item(summary=f"f{i}").model_copy(update={"runbook_url": f"{RUNBOOK}/{i}"}) for i in range(40)]
    payload = render(note(*items))
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert len(actions["elements"]) == 25 and len(payload["blocks"]) <= 50
    assert [e["url"] for e in actions["elements"][1:]] == [f"{RUNBOOK}/{i}" for i in range(24)]


def test_block_limit_with_mention_and_runbooks():
    items = [routed_item().model_copy(update={"runbook_url": RUNBOOK}) for _ in range(80)]
    blocks = render(note(*items), "ml-oncall")["blocks"]
    assert len(blocks) == 50
    assert [b["type"] for b in blocks[:3]] == ["header", "context", "section"] and blocks[-1]["type"] == "actions"
    assert blocks[-2]["text"]["text"].startswith("…and 35 more findings (35 firing, 0 resolved)")


# -- the demo's HTML view ---------------------------------------------------------------------------


def test_html_shows_dates_as_their_fallback_mentions_highlighted_and_runbook_buttons():
    page = slack_html.message_html(render(SAMPLES["firing"].for_receiver("ml-oncall"), "ml-oncall"))
    assert "Firing for 2h14m, since <span class=\"date\"" in page and ">2026-11-30 07:16 UTC</span>" in page
    assert "<!date" not in page and "{date_short_pretty}" not in page
    assert '<span class="mention" title="user group">@S0123ABCD</span> 1 critical alert' in page
    assert f'<a class="button runbook" href="{SAMPLE_RUNBOOK}">Runbook: failed-rollback</a>' in page
    assert '<a class="button" href="https://us-west-2.console.aws.amazon.com/' in page


@pytest.mark.parametrize("text", [
    "&lt;!date^1^{time}|<b>x</b>&gt;", "<!date^1^x|<script>alert(1)</script>>", "<!subteam^S1|<img src=x>>",
    "<!everyone>", "<@U1><script>", "&lt;!here&gt;",
])
def test_html_of_anything_is_inert(text):
    page = slack_html.mrkdwn(text)
    assert "<script" not in page and "<img" not in page and "<b>x" not in page
