"""`storm_read_growth` (issue 17, Ledger I/O): whether one event's ledger reads grow with a storm.

A storm of Node Health events (Unhealthy) about STORM_NODES distinct nodes of one cluster, each
through the evaluator's path (service.handle_event on a warm Runtime) against moto in server mode, as
the demo. Before issue 17 every event read every alert and report mark of its cluster: event k read
O(k) items (event 200 read 163 KB), the storm O(N²). Now an event reads the cluster's alerts without
a node, its node's alerts and its report mark.

What is measured (ReadMeter): the ledger's reads, i.e. the Query and GetItem calls on a cluster's
partition (pk `CLUSTER#...`) for alert keys (sort key prefix `ALERT`: alerts, report marks, the
layout marker); per call, the size of the HTTP response body moto returned (the bytes DynamoDB
would send) and the items in it. Not ConsumedCapacity: our calls do not ask for it, and moto answers
a fixed number of units per call whatever it read (DynamoDB bills 4 KB units of the items read).

Figures:
- `storm_read_growth`: bytes read by the storm's last event / by its first (target <= 2: flat). The
  storm hits a cluster the evaluator has seen before (one State Change event first), as a storm
  does: the first evaluation of a cluster with no layout marker reads it whole once (ledger_store.py);
- `storm_read_bytes` / `storm_read_items`: first, last and largest event of the storm;
- `storm_threaded`: the same storm on a new cluster, every event delivered twice (an EventBridge
  redelivery), dealt to STORM_THREADS threads at once: SNS messages, notified items, and whether each
  node's alert was notified exactly once (`exactly_once`, target: true). moto's DynamoDB is not
  thread-safe (a cancelled transaction restores a copy of the table), so its item operations are
  serialised, as tests/integration/test_ledger_store.py's atomic_moto does: DynamoDB's own atomicity.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "events" / "unhealthy-node-auto-replace"
STORM_NODES, STORM_THREADS = 500, 8
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


class ReadMeter:
    """Bytes and items of the ledger's reads made through one DynamoDB client (its Query and GetItem
    calls on a cluster's alert keys, every page), from any thread."""

    def __init__(self, client: Any):
        self.bytes = self.items = self.calls = 0
        self._lock = threading.Lock()
        client.meta.events.register("provide-client-params.dynamodb", self._which)
        client.meta.events.register("after-call.dynamodb", self._count)

    @staticmethod
    def _which(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in ("Query", "GetItem"):
            return
        values = [v.get("S", "") for v in (params.get("ExpressionAttributeValues") or {}).values()]
        values += [v.get("S", "") for v in (params.get("Key") or {}).values()]
        context["ledger_read"] = (any(v.startswith("CLUSTER#") for v in values)
                                  and any(v.startswith("ALERT") for v in values))

    def _count(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("ledger_read"):
            with self._lock:
                self.calls += 1
                self.bytes += len(http_response.content or b"")
                self.items += len(parsed.get("Items", ())) + (1 if parsed.get("Item") else 0)

    def taken(self) -> tuple[int, int]:
        with self._lock:
            return self.bytes, self.items


def node_id(index: int) -> str:
    return f"i-{index:017x}"


def storm_cluster(cluster: str, nodes: int) -> dict[str, Any]:
    """The unhealthy-node-auto-replace scenario's cluster, renamed, with `nodes` Running nodes."""
    snapshot = json.loads((SCENARIO / "snapshot.json").read_text())
    template = snapshot["Nodes"][0]
    snapshot["ClusterName"] = cluster
    snapshot["Nodes"] = [dict(copy.deepcopy(template), InstanceId=node_id(i)) for i in range(nodes)]
    return snapshot


def unhealthy(cluster: str, node: str, at: datetime) -> dict[str, Any]:
    """The scenario's Node Health event (Unhealthy, RepairAction Replace: a warning) about `node`, made at `at`."""
    event = json.loads((SCENARIO / "event.json").read_text())
    event["id"] = f"storm-{cluster}-{node}"
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"].update(ClusterName=cluster, InstanceId=node)
    return event


def state_change(cluster: str, at: datetime) -> dict[str, Any]:
    """A State Change event about the cluster (its detail as DescribeCluster answers it)."""
    event = json.loads((REPO / "events" / "degraded-group-failed" / "event.json").read_text())
    event.update(id=f"warm-{cluster}", time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    event["detail"]["ClusterName"] = cluster  # its detail is not believed: the cluster is read again
    return event


def storm(runtime: Any, meter: ReadMeter, cluster: str, nodes: int, start: datetime) -> list[tuple[int, int]]:
    """One Unhealthy event per node, one after the other: (bytes, items) the ledger read for each."""
    from hyperpod_guard.service import handle_event, new_token

    per_event: list[tuple[int, int]] = []
    for i in range(nodes):
        at = start + timedelta(seconds=i)
        before = meter.taken()
        handle_event(unhealthy(cluster, node_id(i), at), runtime, at, new_token())
        after = meter.taken()
        per_event.append((after[0] - before[0], after[1] - before[1]))
        _collect(i)
    return per_event


def _collect(i: int) -> None:
    """moto keeps every model instance it makes, for its dashboard (moto.core.model_instances), the
    copy of the table each transaction takes (to roll back) included: a 500-node storm would hold
    gigabytes. The dashboard's references are dropped now and then (moto's reset does the same)."""
    if i % 10 == 9:
        from moto.core.model_instances import reset_model_data

        reset_model_data()


def threaded_storm(runtime: Any, cluster: str, nodes: int, start: datetime, *, threads: int = STORM_THREADS,
                   seed: int = 17) -> None:
    """Every node's event twice (the same event: a redelivery), shuffled, over `threads` threads at once."""
    from hyperpod_guard.service import handle_event, new_token

    deliveries = [i for i in range(nodes) for _ in range(2)]
    random.Random(seed).shuffle(deliveries)
    barrier = threading.Barrier(threads)

    def deliver(batch: list[int]) -> None:
        barrier.wait()  # the first events of the cluster race too (its layout marker)
        for done, i in enumerate(batch):
            at = start + timedelta(seconds=i)
            handle_event(unhealthy(cluster, node_id(i), at), runtime, at, new_token())
            _collect(done)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done in [pool.submit(deliver, deliveries[t::threads]) for t in range(threads)]:
            done.result()


def notified_once(messages: list[dict[str, Any]], cluster: str, nodes: int) -> dict[str, Any]:
    """What SNS carried for the cluster: messages, notified items, and whether every node's alert was
    notified exactly once (one `first` each, nothing else)."""
    items = [item for m in messages if m["message"]["cluster"] == cluster for item in m["message"]["items"]]
    per_node = Counter((item["finding"]["node"], item["reason"]) for item in items)
    expected = Counter({(node_id(i), "first"): 1 for i in range(nodes)})
    return {"messages": sum(1 for m in messages if m["message"]["cluster"] == cluster), "notified": len(items),
            "exactly_once": per_node == expected}


@contextlib.contextmanager
def serialised_moto() -> Iterator[None]:
    """moto's DynamoDB item operations one at a time (this process runs the moto server)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    names = ("put_item", "get_item", "query", "update_item", "delete_item", "transact_write_items")
    originals = {name: getattr(DynamoDBBackend, name) for name in names}

    def locked(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)
        return call

    for name, original in originals.items():
        setattr(DynamoDBBackend, name, locked(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)


def storm_read_figures() -> dict[str, object]:
    from bench import _Stage  # bench imports this module: not at the top

    # two stages (moto reset between): moto copies the whole table for every transaction
    with _Stage() as stage, serialised_moto(), contextlib.redirect_stdout(io.StringIO()):
        from hyperpod_guard.local.hyperpod_state import put_cluster  # on the path _Stage adds
        from hyperpod_guard.local.provision import delivered
        from hyperpod_guard.service import Runtime, handle_event, new_token

        runtime = Runtime.from_env()
        meter = ReadMeter(runtime.ledger.dynamodb)
        cluster = storm_cluster("storm-reads", STORM_NODES)
        put_cluster(cluster, region="us-west-2", nodes=cluster["Nodes"])
        handle_event(state_change("storm-reads", T0), runtime, T0, new_token())  # a cluster seen before
        per_event = storm(runtime, meter, "storm-reads", STORM_NODES, T0 + timedelta(minutes=1))
        sequential = notified_once(delivered(stage.resources, max_batches=10 * STORM_NODES), "storm-reads",
                                   STORM_NODES)
    with _Stage() as stage, serialised_moto(), contextlib.redirect_stdout(io.StringIO()):
        runtime = Runtime.from_env()
        cluster = storm_cluster("storm-threaded", STORM_NODES)
        put_cluster(cluster, region="us-west-2", nodes=cluster["Nodes"])
        threaded_storm(runtime, "storm-threaded", STORM_NODES, T0 + timedelta(minutes=1))
        threaded = notified_once(delivered(stage.resources, max_batches=10 * STORM_NODES), "storm-threaded",
                                 STORM_NODES)
    (first_bytes, first_items), (last_bytes, last_items) = per_event[0], per_event[-1]
    return {
        "storm_read_growth": last_bytes / first_bytes,
        "storm_read_bytes": {"first": first_bytes, "last": last_bytes, "max": max(b for b, _ in per_event),
                             "total": sum(b for b, _ in per_event)},
        "storm_read_items": {"first": first_items, "last": last_items, "max": max(i for _, i in per_event)},
        "storm_read_notified": sequential,
        "storm_threaded": {"threads": STORM_THREADS, "events": 2 * STORM_NODES, **threaded},
    }


TARGETS = {
    "storm_read_growth": ("<= 2", lambda r: r["storm_read_growth"] <= 2),
    "storm_threaded": ("each node's alert notified exactly once",
                       lambda r: r["storm_threaded"]["exactly_once"] and r["storm_read_notified"]["exactly_once"]),
}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    print(json.dumps(storm_read_figures(), indent=2))
