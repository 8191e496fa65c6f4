"""Per-event ledger reads that stay flat under a storm (issue 17), on moto through service.handle_event.

An event reads the alerts without a node, its node's alerts and its report mark, not the whole
cluster (ledger_store.py, ledger_reads.py). Counted, not timed: the bytes and items of the ledger's
Query/GetItem responses (benchmarks/storm_reads.ReadMeter, which `make bench` reports as
storm_read_growth), the notifications SNS carried, the items under each key.

Migration: a table written before this layout holds `ALERT#<fingerprint>` items. The first
evaluation of such a cluster reads it whole and moves them; a scoped read never misses one (it
would start a second alert and page again).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3

from hyperpod_guard.ledger import AlertState, Reason, Timing, observe
from hyperpod_guard.ledger_store import LedgerStore
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import handle_event, new_token, sweep
from tests.integration.test_ledger_store import atomic_moto, finding  # noqa: F401 (fixture)
from tests.runtime_fixtures import runtime, serve, stack  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from storm_reads import (
    ReadMeter,
    node_id,
    notified_once,
    state_change,
    storm,
    storm_cluster,
    threaded_storm,
    unhealthy,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
CLUSTER = "storm-reads"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def serve_cluster(cluster: str, nodes: int, *, group_status: str = "InService") -> None:
    snapshot = storm_cluster(cluster, nodes)
    snapshot["InstanceGroups"][0]["Status"] = group_status
    serve(snapshot, nodes=snapshot["Nodes"])


def deliver(runtime, event: dict[str, Any], minutes: float) -> None:
    result = handle_event(event, runtime, at(minutes), new_token())
    assert result.invalid is None and result.ignored is None, result


def node_event(status: str, node: int, minutes: float, cluster: str = CLUSTER) -> dict[str, Any]:
    event = unhealthy(cluster, node_id(node), at(minutes))
    event["id"] = f"{status}-{node}-{minutes}"
    event["detail"]["HealthSummary"]["HealthStatus"] = status
    return event


def sent(stack) -> list[tuple[str, str, str | None]]:
    """(reason, condition, node) of every item SNS delivered since the last call."""
    return [(i["reason"], i["finding"]["condition"], i["finding"]["node"])
            for m in delivered(stack, max_batches=100) for i in m["message"]["items"]]


def alert_items(cluster: str = CLUSTER) -> dict[str, dict[str, Any]]:
    """The cluster's items under alert keys (alerts, the layout marker; not report marks), by sort key."""
    client = boto3.client("dynamodb")
    items: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("query").paginate(
            TableName=table_name(), KeyConditionExpression="pk = :pk AND begins_with(sk, :alert)",
            ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":alert": {"S": "ALERT#"}}):
        items.update((item["sk"]["S"], item) for item in page["Items"])
    return items


def table_name() -> str:
    import os

    return os.environ["TABLE_NAME"]


def to_old_layout(cluster: str = CLUSTER) -> int:
    """Rewrite the cluster's alerts as the code before issue 17 kept them (`ALERT#<fingerprint>`, the
    same attributes), without a layout marker: a table of an existing deployment. Returns how many."""
    client = boto3.client("dynamodb")
    moved = 0
    for sk, item in alert_items(cluster).items():
        if "fingerprint" not in item:  # the layout marker
            client.delete_item(TableName=table_name(), Key={"pk": item["pk"], "sk": item["sk"]})
            continue
        old = f"ALERT#{item['fingerprint']['S']}"
        if sk != old:
            client.put_item(TableName=table_name(), Item={**item, "sk": {"S": old}})
            client.delete_item(TableName=table_name(), Key={"pk": item["pk"], "sk": item["sk"]})
        moved += 1
    return moved


def old_keys(items: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(sk for sk, item in items.items() if sk == f"ALERT#{item.get('fingerprint', {}).get('S')}")


# --- (1) a storm over distinct nodes: each event reads the same ------------------------------------


def test_a_storm_over_distinct_nodes_reads_no_more_at_its_last_event_than_at_its_first(stack, runtime):
    nodes = 100
    serve_cluster(CLUSTER, nodes)
    meter = ReadMeter(runtime.ledger.dynamodb)
    deliver(runtime, state_change(CLUSTER, T0), 0)  # a cluster the evaluator has seen before the storm
    per_event = storm(runtime, meter, CLUSTER, nodes, at(1))

    (first_bytes, first_items), (last_bytes, last_items) = per_event[0], per_event[-1]
    assert last_bytes <= 2 * first_bytes, per_event[::30]
    assert max(b for b, _ in per_event) <= 2 * first_bytes, per_event[::30]
    assert last_items <= first_items + 1, per_event[::30]  # before issue 17: the 99 alerts and marks before it
    assert notified_once(delivered(stack, max_batches=10 * nodes), CLUSTER, nodes) == {
        "messages": nodes, "notified": nodes, "exactly_once": True}


# --- (2) the storm at once: exactly one notification per node ----------------------------------------


def test_a_storm_dealt_to_8_threads_with_every_event_twice_notifies_each_node_once(stack, runtime, atomic_moto):
    nodes = 60
    serve_cluster("storm-threaded", nodes)
    threaded_storm(runtime, "storm-threaded", nodes, T0, threads=8)  # a new cluster: its first reads race too
    assert notified_once(delivered(stack, max_batches=10 * nodes), "storm-threaded", nodes) == {
        "messages": nodes, "notified": nodes, "exactly_once": True}
    assert "ALERT#C#LAYOUT" in alert_items("storm-threaded")
    assert old_keys(alert_items("storm-threaded")) == []


# --- (3) migration: alerts of the layout before issue 17 --------------------------------------------


def _page_three_nodes_and_a_group(stack, runtime) -> None:
    """n0, n1 and n2 reported Unhealthy (paged), the group Failed past its 5m grace (paged), n2
    Healthy again (resolved): 3 firing alerts and a resolved one."""
    serve_cluster(CLUSTER, 4, group_status="Failed")
    deliver(runtime, node_event("Unhealthy", 0, 0), 0)
    deliver(runtime, node_event("Unhealthy", 1, 6), 6)
    deliver(runtime, node_event("Unhealthy", 2, 7), 7)
    deliver(runtime, node_event("Healthy", 2, 8), 8)
    assert sorted(sent(stack)) == sorted([
        ("first", "unhealthy", node_id(0)), ("first", "unhealthy", node_id(1)), ("first", "status-failed", None),
        ("first", "unhealthy", node_id(2)), ("resolved", "unhealthy", node_id(2))])


def test_alerts_of_the_old_layout_are_found_by_a_scoped_event_and_moved_without_a_second_page(stack, runtime):
    _page_three_nodes_and_a_group(stack, runtime)
    before = {item["fingerprint"]["S"]: item for item in alert_items().values() if "fingerprint" in item}
    assert to_old_layout() == 4
    assert len(old_keys(alert_items())) == 4

    deliver(runtime, node_event("Unhealthy", 1, 10), 10)  # a newer report about a paged node
    assert sent(stack) == []  # found: no second FIRST for n1, nor for the group

    items = alert_items()
    assert old_keys(items) == []
    alerts = {item["fingerprint"]["S"]: sk for sk, item in items.items() if "fingerprint" in item}
    assert set(alerts) == set(before)  # nothing lost, nothing doubled
    for fingerprint, sk in alerts.items():
        node = before[fingerprint]["node"].get("S")
        assert sk == (f"ALERT#N#{node}#{fingerprint}" if node else f"ALERT#C#{fingerprint}")
    assert "ALERT#C#LAYOUT" in items

    ledger = LedgerStore(table_name(), boto3.client("dynamodb"))
    assert ledger.open_clusters() == {CLUSTER}
    assert sorted((r.condition, r.node) for r in ledger.open_alerts(CLUSTER)) == [
        ("status-failed", None), ("unhealthy", node_id(0)), ("unhealthy", node_id(1))]
    assert [(r.condition, r.node) for r in ledger.resolved_alerts(CLUSTER)] == [("unhealthy", node_id(2))]

    deliver(runtime, node_event("Unhealthy", 0, 11), 11)  # each moved node alert is found by its node's read
    deliver(runtime, node_event("Unhealthy", 2, 12), 12)  # a resolved one too: a new episode
    assert sent(stack) == [("first", "unhealthy", node_id(2))]
    deliver(runtime, node_event("Healthy", 1, 13), 13)  # resolved and confirmed under the new key
    assert sent(stack) == [("resolved", "unhealthy", node_id(1))]
    n1 = next(r for r in ledger.load(CLUSTER).values() if r.node == node_id(1))
    assert (n1.state, n1.owed, n1.claim_token, n1.last_notified) == (AlertState.RESOLVED, None, None, at(13))
    assert old_keys(alert_items()) == [] and len(alert_items()) == 5  # 4 alerts and the marker


def test_a_released_claim_on_a_moved_alert_is_dropped(stack, runtime):
    from hyperpod_guard.ledger_store import LedgerReads

    _page_three_nodes_and_a_group(stack, runtime)
    to_old_layout()
    store = LedgerStore(table_name(), boto3.client("dynamodb"))
    ledger = store.load_cluster(CLUSTER, LedgerReads(nodes=frozenset({node_id(1)})))  # moves them
    (n1,) = [r for r in ledger.records.values() if r.node == node_id(1)]
    repeat = observe(n1, finding(cluster=CLUSTER, policy=n1.policy, condition=n1.condition, node=n1.node,
                                 instance_group=n1.instance_group, origin=n1.origin, severity=n1.severity),
                     Timing(), at(6 + 4 * 60), token="sender")
    assert repeat.notify is Reason.REPEAT
    (claimed,) = store.commit([repeat], "sender", at(6 + 4 * 60))
    store.release([claimed], "sender")
    after = store.load(CLUSTER)[n1.fingerprint]
    assert (after.owed, after.claim_token, after.version) == (Reason.REPEAT, None, claimed.version + 1)


def test_many_alerts_of_the_old_layout_are_moved_in_several_transactions_and_read_in_pages(aws, monkeypatch):
    from hyperpod_guard.ledger_store import LedgerReads, create_table

    client = boto3.client("dynamodb")
    create_table(client, "ledger")
    monkeypatch.setenv("TABLE_NAME", "ledger")
    store = LedgerStore("ledger", client)
    evidence = {"a": "x" * 1900, "b": "y" * 1900, "c": "z" * 1900}  # ~6 KB an alert: 200 are 2 Query pages
    node_findings = [finding(cluster="big", policy="unhealthy-node", condition="unhealthy", node=f"i-{i:04d}",
                             details=evidence) for i in range(200)]
    group_findings = [finding(cluster="big", condition=f"c{i}") for i in range(50)]
    store.commit([observe(None, f, Timing(), T0) for f in node_findings + group_findings], "t", T0)
    assert to_old_layout("big") == 250
    calls: list[str] = []
    client.meta.events.register("provide-client-params.dynamodb", lambda model, **_: calls.append(model.name))

    ledger = store.load_cluster("big", LedgerReads(nodes=frozenset({"i-0007"})))
    assert len(ledger.records) == 250  # the first read of a cluster without the marker: all of it
    # 250 moves of 2 items (a Put, a Delete), 50 a transaction; then the marker (no room left in the last one)
    assert (calls.count("TransactWriteItems"), calls.count("PutItem")) == (5, 1)
    assert calls.count("Query") == 1 + 2  # the alerts without a node (no marker), then all of it: 2 pages
    items = alert_items("big")
    assert old_keys(items) == [] and len(items) == 251
    calls.clear()
    scoped = store.load_cluster("big", LedgerReads(nodes=frozenset({"i-0007"})))
    assert {r.node for r in scoped.records.values()} == {None, "i-0007"} and len(scoped.records) == 51
    assert calls == ["Query", "Query"]  # the alerts without a node (and the marker), then the node's


def test_an_old_copy_written_after_the_move_is_moved_or_dropped_by_the_next_sweep(stack, runtime):
    """A container still running the code before issue 17 (during a deploy) may write an alert under its
    old key after the move: the sweep reads everything, keeps the current copy and moves a lone one."""
    _page_three_nodes_and_a_group(stack, runtime)
    items = alert_items()
    client = boto3.client("dynamodb")
    n0, n1 = (item for _, item in sorted(items.items()) if item.get("node", {}).get("S") in (node_id(0), node_id(1)))
    client.put_item(TableName=table_name(), Item={**n0, "sk": {"S": f"ALERT#{n0['fingerprint']['S']}"}})  # a copy
    client.delete_item(TableName=table_name(), Key={"pk": n1["pk"], "sk": n1["sk"]})
    client.put_item(TableName=table_name(), Item={**n1, "sk": {"S": f"ALERT#{n1['fingerprint']['S']}"}})  # alone
    assert len(old_keys(alert_items())) == 2

    assert sweep(runtime, at(9), new_token()).errors == {}
    assert sent(stack) == []
    after = alert_items()
    assert old_keys(after) == [] and set(after) == set(items)


def test_concurrent_first_reads_move_the_old_alerts_once(stack, runtime, atomic_moto):
    from hyperpod_guard.ledger_store import LedgerReads

    _page_three_nodes_and_a_group(stack, runtime)
    before = alert_items()
    to_old_layout()
    errors: list[BaseException] = []
    counts: list[int] = []
    barrier = threading.Barrier(6)

    def read(node: int) -> Callable[[], None]:
        def run() -> None:
            try:
                store = LedgerStore(table_name(), boto3.session.Session().client("dynamodb"))
                barrier.wait()
                counts.append(len(store.load_cluster(CLUSTER, LedgerReads(nodes=frozenset({node_id(node)}))).records))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=read(i % 3), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(counts) == 6 and all(n >= 2 for n in counts)  # the group's alert and the node's, at least
    assert set(alert_items()) == set(before)
