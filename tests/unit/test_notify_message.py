"""The SNS message's cluster tags: in the body, in the email text, and as one `tags` attribute."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from hyperpod_guard.notify.message import ATTRIBUTE_LIMIT, FindingPayload, Notification, NotificationItem

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def notification(tags: dict[str, str] | None) -> Notification:
    finding = FindingPayload(policy="cluster-health", severity="critical", cluster="burst-infer", fingerprint="f1",
                             condition="autoscaling-failed", summary="Autoscaling (Karpenter) of cluster burst-infer failed")
    return Notification(cluster="burst-infer", region="us-west-2", sent_at=NOW, tags=tags,
                        items=(NotificationItem(reason="first", finding=finding),))


@pytest.mark.parametrize("tags, attribute", [
    pytest.param(None, None, id="not-read"),
    pytest.param({}, None, id="untagged: no empty attribute"),
    pytest.param({"team": "llm"}, ["team=llm"], id="one"),
    pytest.param({"z": "1", "aws:cloudformation:stack-name": "hp", "cost center": "a=b"},
                 ["aws:cloudformation:stack-name=hp", "cost center=a=b", "z=1"], id="sorted-any-key-characters"),
])
def test_tags_attribute(tags, attribute):
    attributes = notification(tags).attributes()
    # `receivers`: where the rules' routing sends the items (here none routed: the default receiver)
    assert set(attributes) == {"severity", "cluster", "policy", "status", "receivers", "region"} | (
        {"tags"} if attribute else set())
    assert json.loads(attributes["receivers"]["StringValue"]) == ["default"]
    if attribute:
        assert attributes["tags"]["DataType"] == "String.Array"
        assert json.loads(attributes["tags"]["StringValue"]) == attribute


def test_fifty_tags_are_still_one_attribute():
    tags = {f"k{i:02d}": "v" * 256 for i in range(50)}  # AWS: at most 50 tags, values up to 256 characters
    attributes = notification(tags).attributes()
    assert len(attributes) == 7 <= ATTRIBUTE_LIMIT  # severity, cluster, policy, status, receivers, region, tags
    assert len(json.loads(attributes["tags"]["StringValue"])) == 50


def test_tags_in_body_and_text_and_back():
    message = notification({"team": "llm", "env": "prod"})
    body = json.loads(message.body())
    assert body["tags"] == {"team": "llm", "env": "prod"}
    lines = message.text().splitlines()
    assert lines[0] == message.preview and "tags: env=prod, team=llm" in lines[:8]  # the email's head
    assert Notification.model_validate_json(message.body()).tags == {"team": "llm", "env": "prod"}  # the Slack notifier's read
    assert "tags:" not in notification(None).text() and json.loads(notification(None).body())["tags"] is None


# --- a notification too large for one SNS message ------------------------------------------------

def many(count: int, detail_chars: int = 1500) -> Notification:
    items = tuple(NotificationItem(reason="first", finding=FindingPayload(
        policy="taint-drift", severity="warning", cluster="big", instance_group=f"group-{i}",
        fingerprint=f"{i:020d}", condition="current-vs-desired", summary=f"Nodes of instance group group-{i} drift",
        details={"evidence": "x" * detail_chars},
    )) for i in range(count))
    return Notification(cluster="big", region="us-west-2", items=items)


def test_a_small_notification_is_one_message() -> None:
    small = many(3)
    assert small.split() == [small] and small.part is None


def test_hundreds_of_findings_go_as_numbered_parts_that_each_fit_sns() -> None:
    big = many(400)
    assert len(big.body().encode()) > 256 * 1024  # one message would be refused by SNS
    parts = big.split()
    assert len(parts) > 1
    assert [p.part for p in parts] == list(range(1, len(parts) + 1)) and {p.parts for p in parts} == {len(parts)}
    assert all(len(p.body().encode()) <= 240 * 1024 for p in parts)
    # SNS counts the whole per-protocol message (body, email, Chatbot JSON) against its 256 KiB
    assert all(len(p.sns_message().encode()) <= 240 * 1024 for p in parts)
    assert [i for p in parts for i in p.items] == list(big.items)  # nothing lost, order kept
    assert parts[0].subject.endswith(f"[1/{len(parts)}]") and len(parts[0].subject) < 100
    assert f"Part 2 of {len(parts)}" in parts[1].text() and parts[1].text().startswith(parts[1].preview)
    assert Notification.model_validate_json(parts[1].body()).part == 2  # the Slack notifier reads it back


def test_publisher_sends_every_part() -> None:
    from hyperpod_guard.notify.sns import SnsPublisher

    class Sns:
        def __init__(self) -> None:
            self.messages: list[dict] = []

        def publish(self, **kwargs) -> dict:
            self.messages.append(kwargs)
            return {"MessageId": f"m-{len(self.messages)}"}

    sns = Sns()
    big = many(400)
    assert SnsPublisher("arn:aws:sns:us-west-2:123456789012:t", sns).publish(big) == "m-1"
    assert len(sns.messages) == len(big.split()) > 1
    assert {m["MessageStructure"] for m in sns.messages} == {"json"}
    messages = [json.loads(m["Message"]) for m in sns.messages]
    assert all(set(m) == {"default", "email", "https"} for m in messages)
    assert sum(len(json.loads(m["default"])["items"]) for m in messages) == 400  # what the Slack notifier reads
