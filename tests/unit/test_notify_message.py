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
    assert set(attributes) == {"severity", "cluster", "policy", "status"} | ({"tags"} if attribute else set())
    if attribute:
        assert attributes["tags"]["DataType"] == "String.Array"
        assert json.loads(attributes["tags"]["StringValue"]) == attribute


def test_fifty_tags_are_still_one_attribute():
    tags = {f"k{i:02d}": "v" * 256 for i in range(50)}  # AWS: at most 50 tags, values up to 256 characters
    attributes = notification(tags).attributes()
    assert len(attributes) == 5 <= ATTRIBUTE_LIMIT
    assert len(json.loads(attributes["tags"]["StringValue"])) == 50


def test_tags_in_body_and_text_and_back():
    message = notification({"team": "llm", "env": "prod"})
    body = json.loads(message.body())
    assert body["tags"] == {"team": "llm", "env": "prod"}
    assert message.text().splitlines()[:2] == ["hyperpod-guard: cluster burst-infer (us-west-2)", "tags: env=prod, team=llm"]
    assert Notification.model_validate_json(message.body()).tags == {"team": "llm", "env": "prod"}  # the Slack notifier's read
    assert "tags:" not in notification(None).text() and json.loads(notification(None).body())["tags"] is None
