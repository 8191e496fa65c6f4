"""Slack Block Kit rendering (pure) and the webhook sender (against the local sink)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from hyperpod_guard.notify.slack import (
    SlackDeliveryError,
    SlackError,
    SlackPermanentError,
    SlackSender,
    console_url,
    detail_lines,
    escape_mrkdwn,
    render,
)
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


def test_fallback_text_is_the_subject():
    payload = render(note(item(severity="critical", summary="Instance group workers is Failed"), item()))
    assert payload["text"] == "[CRITICAL] ml-prod: Instance group workers is Failed (+1 more)"
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
    assert [s.split("\n")[1] for s in sections(payload)] == ["c", "w", "i", "r"]
    assert [b["type"] for b in payload["blocks"]] == ["header", "context"] + ["section"] * 4 + ["actions"]


def test_firing_section_exact():
    payload = render(note(item(details={"status": "Degraded", "counts": {"current": 2, "target": 4, "min": 1}})))
    assert sections(payload) == [
        "🟠 *WARNING* · `degraded-group` · group `workers`\n"
        "Instance group workers is Degraded (2/4 nodes)\n"
        "• status `Degraded`\n"
        "• nodes: 2 current · 4 target · 1 min"
    ]


@pytest.mark.parametrize(("reason", "first_seen", "severity", "line"), [
    ("repeat", SINCE, "warning", "_🔁 Still firing: repeat reminder (firing since 2026-06-01 17:20 UTC)_"),
    ("repeat", None, "warning", "_🔁 Still firing: repeat reminder_"),
    ("escalated", SINCE, "critical", "_⏫ Escalated to critical (firing since 2026-06-01 17:20 UTC)_"),
    ("escalated", None, "critical", "_⏫ Escalated to critical_"),
])
def test_repeat_and_escalated_reason_shown(reason, first_seen, severity, line):
    text = sections(render(note(item(reason, severity=severity, first_seen=first_seen))))[0]
    assert text.split("\n")[2] == line


@pytest.mark.parametrize("reason", ["first", "resolved"])
def test_first_and_resolved_have_no_reason_line(reason):
    text = sections(render(note(item(reason))))[0]
    assert text.split("\n") == [text.split("\n")[0], "Instance group workers is Degraded (2/4 nodes)"]


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


def test_long_summary_cut_to_section_limit():
    text = sections(render(note(item(summary="s" * 10_000))))[0]
    assert len(text) == 3000
    assert text.endswith("s…")


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
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(field)
    untrusted = item(cluster=cluster, details=details, **kwargs).model_copy(update={"actions": actions})
    return note(untrusted, cluster=cluster, region=region)


UNTRUSTED_FIELDS = [
    "cluster", "region", "summary", "instance_group", "node", "action", "status", "group_status", "instance_status",
    "health_status", "software_update_status", "failure_message", "message", "reason", "event_description",
    "description", "recommendation", "guidance", "repair_action", "node_recovery", "critical_after", "instance_type",
    "current_image_id", "desired_image_id", "shortfall_ratio", "current_count", "target_state_count",
    "triggered_alarms", "auto_rollback_alarms", "counts_key", "counts_value", "cluster_event", "cluster_event_level",
    "taint", "label", "extra_key", "extra_value",
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


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", UNTRUSTED_FIELDS)
def test_no_field_can_inject(field, payload):
    rendered = render(_untrusted(field, payload))
    benign = render(_untrusted(field, "plain"))
    serialized = json.dumps(rendered, ensure_ascii=False)
    assert "<" not in serialized and ">" not in serialized  # no control sequence: <!..>, <@..>, <http..|..>
    # a word joiner defuses bare mentions where Slack parses them (plain_text, the header, never does)
    assert not [t for t in mrkdwn_texts(rendered) if "@channel" in t or "@here" in t]
    # no extra lines: a field's text cannot add a bullet, a "resolved" line or a quote
    assert [t.count("\n") for t in _texts(rendered)] == [t.count("\n") for t in _texts(benign)]
    # no way out of a code span: as many backticks in the blocks' mrkdwn as with a harmless value, unless
    # the field is free text (where a backtick is only formatting, as in the fallback text; the header is plain)
    if field not in ("summary", "failure_message", "message", "reason", "event_description", "description",
                     "recommendation", "guidance", "action", "cluster_event", "cluster_event_level", "extra_key",
                     "extra_value", "shortfall_ratio", "current_count", "target_state_count", "counts_key",
                     "counts_value"):
        assert [t.count("`") for t in mrkdwn_texts(rendered)[1:]] == [t.count("`") for t in mrkdwn_texts(benign)[1:]]
    assert not [t for t in _texts(rendered) if _CONTROL.search(t)], "control or bidi characters reach Slack"


@pytest.mark.parametrize("field", UNTRUSTED_FIELDS)
def test_any_field_however_long_keeps_slacks_limits(field):
    rendered = render(_untrusted(field, "&<" * 50_000))  # grows fourfold when escaped
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
            assert all(len(e["url"]) <= 3000 for e in block["elements"])
    assert len(json.dumps(rendered).encode()) < 40_000  # one finding: far below what Slack accepts
