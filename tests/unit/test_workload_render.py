"""The "Workload" section of a node alert (issue 23) in every rendering: Slack (webhook, app mode's parent and
reply), email and Chatbot. Firing items that carry a workload show it, with the hint next to the next step;
resolved items never; the evidence above it gives way so it is never cut off; every channel's limits hold with
30 such items in one message and with hostile names."""

from __future__ import annotations

import json
import re
from typing import Any

from hyperpod_guard.notify import chatbot, email
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from hyperpod_guard.notify.slack import SECTION_LIMIT, render, render_parent, render_reply
from hyperpod_guard.notify.slack_threads import merge
from hyperpod_guard.workload import words
from hyperpod_guard.workload.model import Job, Workload
from tests.chatbot_schema import validate_chatbot
from tests.message_samples import (
    EKS_WORKLOAD,
    SAMPLES,
    SENT_AT,
    SLURM_WORKLOAD,
    UNKNOWN_WORKLOAD,
    degraded,
    firing,
    message,
    on_node,
    resolved,
    unhealthy_node,
)
from tests.unit.test_chatbot import assert_inert_and_bounded

HINT = "auto-resume is off: llama-70b-pretrain will not restart by itself; restart it or turn on auto-resume"
LLAMA_LINE = ("PyTorchJob llama-70b-pretrain in team-llm (queue ml-high, priority high): 8 of 64 pods on this node, "
              "auto-resume off")
_DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[^>]*>")


def sections(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


def node_finding(n: int, **details: Any) -> FindingPayload:
    finding = unhealthy_node()
    return FindingPayload(**{**finding.__dict__, "node": f"i-{n:017x}", "fingerprint": f"{n:020x}",
                             "details": {**finding.details, **details}})


def crowded(n: int) -> Workload:
    """A node with many jobs of the longest names Kubernetes allows."""
    jobs = tuple(Job(f"job-{n}-{k}-" + "x" * 240, "HyperPodPyTorchJob", namespace="n" * 63, queue="q" * 253,
                     priority_class="p" * 253, on_node=8, total=64, auto_resume=k % 2 == 0) for k in range(12))
    return Workload(f"hyperpod-i-{n:017x}", jobs, node_state="taints: " + "k=v:NoSchedule, " * 100)


# -- Slack ---------------------------------------------------------------------------------------------------------

def test_slack_shows_the_hint_under_the_next_step_then_the_workload() -> None:
    (section,) = sections(render(SAMPLES["workload-eks"], "default"))
    lines = section.split("\n")
    next_at = next(n for n, line in enumerate(lines) if line.startswith("➡️ _Next:_"))
    assert lines[next_at + 1:] == [
        f"💡 {HINT}",
        "*Workload* on `hyperpod-i-0a1b2c3d4e5f60718`",
        f"• {LLAMA_LINE}",
        "• HyperPodPyTorchJob eval-sweep in team-eval: 1 of 4 pods on this node, auto-resume on",
        "• node state: health Unhealthy · taints: node.kubernetes.io/unreachable:NoExecute",
    ]


def test_slack_says_a_slurm_job_and_an_unknown_workload() -> None:
    (slurm,) = sections(render(SAMPLES["workload-slurm"], "default"))
    assert "• Slurm job train-7b (4242) of alice, account ml-research, partition dev: 1 of 16 nodes" in slurm
    assert "💡 Slurm has the node drained: train-7b (4242) resumes by itself only if" in slurm
    (unknown,) = sections(render(SAMPLES["workload-unknown"], "default"))
    assert unknown.endswith("*Workload* on `hyperpod-i-0a1b2c3d4e5f60718`\n"
                            "• workload unknown: forbidden: grant the view access entry")
    assert "💡" not in unknown


def test_app_mode_parent_and_reply_show_it() -> None:
    sample = SAMPLES["workload-eks"]
    shown, states, _ = merge(sample.model_copy(update={"items": ()}), {}, sample.items, SENT_AT)
    (parent,) = [s for s in sections(render_parent(shown, "default", states)) if "unhealthy-node" in s]
    assert f"💡 {HINT}\n*Workload* on `hyperpod-i-0a1b2c3d4e5f60718`\n• {LLAMA_LINE}" in parent
    assert parent.endswith("🔥 *Firing*")  # the state line stays last
    (reply,) = sections(render_reply(sample, "default"))
    assert f"💡 {HINT}" in reply and f"• {LLAMA_LINE}" in reply


def test_a_resolved_item_never_shows_it() -> None:
    item = on_node(resolved(unhealthy_node(), "Node i-0a1b2c3d4e5f60718 is Healthy"), EKS_WORKLOAD)
    notification = message(item)
    shown, states, _ = merge(notification.model_copy(update={"items": ()}), {}, notification.items, SENT_AT)
    texts = [*sections(render(notification)), *sections(render_parent(shown, "default", states)),
             *sections(render_reply(notification)), email.render(notification),
             json.dumps(chatbot.render(notification), ensure_ascii=False)]
    assert not any("Workload" in text or "llama" in text or "auto-resume" in text for text in texts)


def test_without_a_workload_nothing_changes() -> None:
    plain = firing("first", unhealthy_node())
    assert render(message(plain)) == render(message(plain.model_copy(update={"workload": None})))
    assert "Workload" not in json.dumps(render(message(plain)))


def test_long_evidence_gives_way_to_the_workload() -> None:
    item = on_node(firing("first", node_finding(1, failure_message="f " * 3000, reason="r " * 3000,
                                                recommendation="c " * 3000)), crowded(1))
    webhook, reply = sections(render(message(item)))[0], sections(render_reply(message(item)))[0]
    assert "➡️ _Next:_ HyperPod repairs the node" in webhook  # a reply says what changed: no next step
    for text in (webhook, reply):
        assert len(text) <= SECTION_LIMIT
        assert "💡 auto-resume is off:" in text and "more jobs\n" in text
        assert text.split("\n")[-1].startswith("• node state: taints: k=v:NoSchedule")  # the tail is whole


def _grouped(count: int) -> Notification:
    items = [on_node(firing("first", node_finding(n, failure_message="f " * 300)), crowded(n)) for n in range(count)]
    return message(*items, resolved(degraded(), "back to InService"))


def _within_slack_limits(payload: dict[str, Any]) -> None:
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        elif block["type"] == "actions":
            assert len(block["elements"]) <= 25
    assert "<" not in _DATE.sub("", json.dumps(payload))


def test_thirty_items_with_a_workload_each_keep_slacks_limits() -> None:
    notification = _grouped(30)
    webhook = render(notification, "default")
    _within_slack_limits(webhook)
    texts = [t for t in sections(webhook) if "unhealthy-node" in t]
    assert len(texts) == 30  # no extra block per workload: every item still has its section
    assert all("*Workload* on `hyperpod-i-" in t and "💡 auto-resume is off:" in t for t in texts)
    shown, states, _ = merge(notification.model_copy(update={"items": ()}), {}, notification.items, SENT_AT)
    parent = render_parent(shown, "default", states)
    _within_slack_limits(parent)
    assert sum("*Workload* on" in t for t in sections(parent)) == 30
    reply = render_reply(notification, "default")
    _within_slack_limits(reply)
    assert sum("*Workload* on" in t for t in sections(reply)) == 30


# -- email ---------------------------------------------------------------------------------------------------------

def test_email_has_the_hint_under_next_then_the_jobs() -> None:
    text = email.render(SAMPLES["workload-eks"])
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("Next: "))
    after = lines[start:]
    hint_at = next(n for n, line in enumerate(after) if line.startswith("Hint: "))
    assert all(line.startswith("  ") for line in after[1:hint_at])  # only the next step's wrapped lines between
    assert " ".join(" ".join(after[hint_at:]).split()).startswith(
        f"Hint: {HINT} Workload on hyperpod-i-0a1b2c3d4e5f60718: - {LLAMA_LINE} - HyperPodPyTorchJob eval-sweep")
    assert "- workload unknown: forbidden: grant the view access entry" in email.render(SAMPLES["workload-unknown"])


def test_email_stays_bounded_with_thirty_crowded_items() -> None:
    text = email.render(_grouped(30))
    assert len(text) <= email.EMAIL_LIMIT + 2000 and "more findings" in text


# -- Chatbot -------------------------------------------------------------------------------------------------------

def test_chatbot_puts_the_hint_after_the_next_step_and_the_workload_in_the_description() -> None:
    payload = chatbot.render(SAMPLES["workload-eks"])
    validate_chatbot(payload)
    steps = payload["content"]["nextSteps"]
    assert steps[:2] == [SAMPLES["workload-eks"].items[0].next_step, HINT]
    description = payload["content"]["description"]
    assert f"*Workload* on `hyperpod-i-0a1b2c3d4e5f60718`\n• {LLAMA_LINE}\n" in description
    slurm = chatbot.render(SAMPLES["workload-slurm"])
    assert "• Slurm job train-7b (4242) of alice, account ml-research, partition dev: 1 of 16 nodes" in slurm[
        "content"]["description"]


def test_chatbot_keeps_the_workload_of_a_lead_finding_cut_to_fit() -> None:
    item = on_node(firing("first", node_finding(1, failure_message="f " * 3000, reason="r " * 3000)), crowded(1))
    payload = chatbot.render(message(item))
    assert_inert_and_bounded(payload)
    assert "*Workload* on `hyperpod-i-" in payload["content"]["description"]


def test_chatbot_stays_within_its_schema_and_limits_with_thirty_crowded_items() -> None:
    payload = chatbot.render(_grouped(30))
    assert_inert_and_bounded(payload)
    assert len(payload["content"]["nextSteps"]) <= chatbot.NEXT_STEPS


# -- hostile names -------------------------------------------------------------------------------------------------

HOSTILE = "<!channel> @here [x](https://evil.example) &lt;!here&gt; `tick` *bold*\n<@U123>"


def test_hostile_names_stay_inert_everywhere() -> None:
    job = Job(HOSTILE, "PyTorchJob", namespace=HOSTILE, queue=HOSTILE, priority_class=HOSTILE, on_node=1, total=2,
              auto_resume=False)
    slurm = Job(HOSTILE, "slurm", user=HOSTILE, account=HOSTILE, queue=HOSTILE, on_node=1, total=2)
    items: list[NotificationItem] = [
        on_node(firing("first", node_finding(1)), Workload(HOSTILE, (job,), node_state=HOSTILE)),
        on_node(firing("first", node_finding(2)), Workload(HOSTILE, (slurm,), node_state=HOSTILE)),
        on_node(firing("first", node_finding(3)), Workload(HOSTILE, unknown=HOSTILE)),
    ]
    notification = message(*items)
    slack = render(notification, "default")
    _within_slack_limits(slack)  # no raw "<": no mention, no link
    assert "@\u2060here" in json.dumps(slack, ensure_ascii=False)
    assert_inert_and_bounded(chatbot.render(notification))
    text = email.render(notification)
    assert "<!channel>" in text  # plain text: shown as typed, SNS sends it as text/plain
    assert all(len(line) <= words.LINE_LIMIT + 10 for line in text.splitlines())


def test_every_workload_sample_renders_in_every_channel() -> None:
    for name, workload in (("workload-eks", EKS_WORKLOAD), ("workload-slurm", SLURM_WORKLOAD),
                           ("workload-unknown", UNKNOWN_WORKLOAD)):
        sample = SAMPLES[name]
        assert sample.items[0].workload == workload
        assert Notification.model_validate_json(sample.model_dump_json()) == sample  # travels through SNS
        for line in words.lines(workload):
            assert line in sections(render(sample))[0]
            assert line in chatbot.render(sample)["content"]["description"]
            assert line in " ".join(email.render(sample).split())
