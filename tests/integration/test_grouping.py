"""Grouping (issue 17): a cluster's alerts that start together go out as one message, on moto in
server mode; counts (messages, items, flushes), not times.

The evaluator runs as deployed with grouping on (rules: group_wait 30s, group_interval 5m): its
notifications are written owed and a flush is scheduled on the work queue (a real SQS queue on
moto, SendMessage with DelaySeconds). SQS holds a delayed message back in real time while these
tests move an injected clock, so local/work_queue.LocalFlushQueue keeps each flush with the time it
becomes due, and the test delivers it then to `service.flush_group`, as the worker's event source
would (or twice, or never)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from hyperpod_guard.grouping import FlushGroup, Grouper, GroupStore, SqsFlushQueue
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.local.work_queue import LocalFlushQueue
from hyperpod_guard.rules_store import push_rules
from hyperpod_guard.service import Runtime, flush_group, handle_event, new_token, sweep
from tests.runtime_fixtures import scenario, serve, stack  # noqa: F401 (a fixture)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
WAIT, INTERVAL = timedelta(seconds=30), timedelta(minutes=5)
RULES: dict[str, Any] = {"version": 1, "grouping": {"group_wait": "30s", "group_interval": "5m"},
                         "policies": {"degraded-group": {"grace": "0m"}}}


class Grouped:
    """The evaluator with grouping on, the work queue, and what SNS delivered."""

    def __init__(self, stack: Resources, rules: dict[str, Any] = RULES):
        push_rules(rules, stack.rules_path, ssm=boto3.client("ssm"))
        sqs = boto3.client("sqs")
        self.queue_url = sqs.create_queue(QueueName="hyperpod-guard-work")["QueueUrl"]
        self.queue = LocalFlushQueue(SqsFlushQueue(self.queue_url, sqs))
        self.runtime = Runtime.from_env()
        self.runtime.grouper = Grouper(GroupStore(self.runtime.ledger.table_name, self.runtime.ledger.dynamodb),
                                       self.queue)
        self.stack = stack
        self.messages: list[dict[str, Any]] = []

    def event(self, raw: dict[str, Any], now: datetime) -> None:
        result = handle_event(copy.deepcopy(raw), self.runtime, now, new_token())
        assert result.invalid is None and result.ignored is None, result
        self.queue.stamp(now)

    def flush(self, until: datetime, *, twice: bool = False) -> int:
        """Deliver every flush due by `until`, at its time; how many sent a message."""
        sent = 0
        while (due := self.queue.next_due()) is not None and due <= until:
            for message in self.queue.due(due):
                for _ in range(2 if twice else 1):
                    outcome = flush_group(self.runtime, message, due, new_token())
                    sent += outcome is not None and outcome.notification is not None
                self.queue.stamp(due)  # a flush may re-queue itself (early) or another be scheduled
        return sent

    def take(self) -> list[dict[str, Any]]:
        new = [d["message"] for d in delivered(self.stack, max_batches=200)]
        self.messages += new
        return new


def items(messages: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(item["reason"], item["finding"].get("node")) for m in messages for item in m["items"]]


def node_storm(count: int, **group: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """`count` nodes of the unhealthy-node scenario's cluster (all Running in the API; its instance
    group as `group` says), served, and a Node Health event (Unhealthy) for each; their ids."""
    event, snapshot = scenario("unhealthy-node-no-repair")
    assert snapshot is not None
    snapshot["InstanceGroups"][0].update(group)
    template = snapshot["Nodes"][0]
    nodes = []
    for i in range(count):
        node = copy.deepcopy(template)
        node["InstanceId"] = f"i-{i:017x}"
        node["KubernetesConfig"] = {}
        nodes.append(node)
    serve(snapshot, nodes)
    events = []
    for i, node in enumerate(nodes):
        raw = copy.deepcopy(event)
        raw["id"], raw["detail"]["InstanceId"] = f"storm-{i}", node["InstanceId"]
        events.append(raw)
    return events, [n["InstanceId"] for n in nodes]


def state_change(node_event: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A State Change event of the node event's cluster (its detail: the cluster as served now)."""
    _, snapshot = scenario("unhealthy-node-no-repair")
    return {**node_event, "id": f"state-{at.isoformat()}", "time": at.isoformat(),
            "detail-type": "SageMaker HyperPod Cluster State Change", "detail": snapshot}


@pytest.fixture
def grouped(stack: Resources) -> Grouped:
    return Grouped(stack)


def test_a_storm_of_unhealthy_nodes_in_2_minutes_is_at_most_3_messages_naming_every_node(grouped):
    """150 nodes here (moto's TransactWriteItems slows with the table); `make bench` storms 500."""
    events, nodes = node_storm(150)
    for i, raw in enumerate(events):  # over 2 minutes
        at = T0 + timedelta(seconds=i * 120 / len(events))
        raw["time"] = at.isoformat()
        grouped.event(raw, at)
        grouped.flush(at)
    grouped.flush(T0 + timedelta(minutes=30))
    messages = grouped.take()
    assert 1 <= len(messages) <= 3, [len(m["items"]) for m in messages]  # without grouping: 150
    sent = items(messages)
    assert sorted(node for _, node in sent) == sorted(nodes)  # every node named, each once
    assert {reason for reason, _ in sent} == {"first"}
    # the first critical page went out group_wait after the storm began
    assert messages[0]["sent_at"] == (T0 + WAIT).isoformat().replace("+00:00", "Z")


def test_the_next_message_waits_group_interval_and_carries_everything_that_changed(grouped):
    events, nodes = node_storm(3)
    grouped.event(events[0], T0)
    grouped.flush(T0 + WAIT)
    assert items(grouped.take()) == [("first", nodes[0])]
    # a minute later two more nodes: the next message waits until group_interval after the first
    grouped.event(events[1], T0 + timedelta(minutes=1))
    grouped.event(events[2], T0 + timedelta(minutes=2))
    assert grouped.flush(T0 + WAIT + INTERVAL - timedelta(seconds=1)) == 0
    assert grouped.take() == []
    assert grouped.flush(T0 + WAIT + INTERVAL) == 1
    assert sorted(items(grouped.take())) == sorted([("first", nodes[1]), ("first", nodes[2])])


def test_the_first_critical_page_of_a_cluster_waits_group_wait_at_most(grouped):
    """A warning went out; a critical alert starting next is not held for the group's interval."""
    events, nodes = node_storm(1, Status="Degraded", CurrentCount=31)
    grouped.event(state_change(events[0], T0), T0)
    grouped.flush(T0 + WAIT)
    assert [(i["finding"]["policy"], i["finding"]["severity"]) for m in grouped.take() for i in m["items"]] == [
        ("degraded-group", "warning")]
    grouped.event(events[0], T0 + timedelta(minutes=1))
    assert grouped.flush(T0 + timedelta(minutes=1) + WAIT) == 1
    assert items(grouped.take()) == [("first", nodes[0])]


def test_an_alert_that_clears_before_its_group_is_sent_pages_nobody(grouped):
    events, nodes = node_storm(1)
    grouped.event(events[0], T0)
    healthy = copy.deepcopy(events[0])
    healthy["id"], healthy["time"] = "healthy-again", (T0 + timedelta(seconds=10)).isoformat()
    healthy["detail"]["HealthSummary"] = {"HealthStatus": "Healthy", "HealthStatusReason": "passed"}
    grouped.event(healthy, T0 + timedelta(seconds=10))
    grouped.flush(T0 + timedelta(minutes=10))
    assert grouped.take() == []


def test_a_flush_delivered_twice_sends_one_message(grouped):
    events, nodes = node_storm(2)
    grouped.event(events[0], T0)
    grouped.event(events[1], T0 + timedelta(seconds=5))
    assert grouped.flush(T0 + WAIT, twice=True) == 1
    assert sorted(items(grouped.take())) == sorted([("first", nodes[0]), ("first", nodes[1])])


def test_a_superseded_flush_message_sends_nothing(grouped):
    events, _ = node_storm(1)
    grouped.event(events[0], T0)
    stale = FlushGroup(cluster=events[0]["detail"]["ClusterName"], flush_id="an-older-flush")
    assert flush_group(grouped.runtime, stale, T0 + WAIT, new_token()) is None
    assert grouped.take() == []
    assert grouped.flush(T0 + WAIT) == 1


def test_a_lost_flush_is_scheduled_again_by_the_sweep_once_overdue(grouped):
    from hyperpod_guard.grouping import OVERDUE

    events, nodes = node_storm(1)
    grouped.event(events[0], T0)
    grouped.queue.pending.clear()  # the message is lost (its worker failed for good)
    assert sweep(grouped.runtime, T0 + OVERDUE / 2, new_token()).errors == {}
    grouped.queue.stamp(T0 + OVERDUE / 2)
    assert grouped.queue.pending == []  # not overdue yet: the flush may still come
    later = T0 + WAIT + OVERDUE + timedelta(seconds=1)
    assert sweep(grouped.runtime, later, new_token()).errors == {}
    grouped.queue.stamp(later)
    assert grouped.flush(later + WAIT) == 1
    assert items(grouped.take()) == [("first", nodes[0])]


def test_when_sns_refuses_a_flush_its_retry_sends_the_message_once(grouped):
    events, nodes = node_storm(1)
    grouped.event(events[0], T0)
    (message,) = grouped.queue.due(T0 + WAIT)
    sns = grouped.runtime.publisher.sns

    def refuse(**_: Any) -> None:
        raise RuntimeError("SNS is down (injected)")

    sns.meta.events.register("before-call.sns.Publish", refuse)
    try:
        with pytest.raises(RuntimeError):
            flush_group(grouped.runtime, message, T0 + WAIT, new_token())
    finally:
        sns.meta.events.unregister("before-call.sns.Publish", refuse)
    assert grouped.take() == []
    retry_at = T0 + WAIT + timedelta(minutes=6)  # the message's visibility timeout, then SQS delivers it again
    retried = flush_group(grouped.runtime, message, retry_at, new_token())
    assert retried is not None and retried.notification is not None
    again = flush_group(grouped.runtime, message, retry_at, new_token())  # and once more: nothing is owed
    assert again is None or again.notification is None
    assert items(grouped.take()) == [("first", nodes[0])]


def test_grouping_off_sends_at_once(stack):
    grouped = Grouped(stack, {**RULES, "grouping": {"group_wait": "0s"}})
    events, nodes = node_storm(2)
    grouped.event(events[0], T0)
    grouped.event(events[1], T0 + timedelta(seconds=1))
    assert grouped.queue.sent == 0
    assert items(grouped.take()) == [("first", nodes[0]), ("first", nodes[1])]


def test_flush_messages_go_to_the_work_queue_with_their_delay(grouped):
    events, _ = node_storm(1)
    grouped.event(events[0], T0)
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=grouped.queue_url,
                                                          AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    (pending,) = grouped.queue.pending
    assert pending.delay == WAIT
    assert json.loads(FlushGroup.model_validate(pending.flush).model_dump_json())["kind"] == "flush-group"
