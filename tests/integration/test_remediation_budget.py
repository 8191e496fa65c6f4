"""Remediation budgets are a sliding window (the last 60 minutes), atomic across concurrent Lambdas.

Store methods are driven directly with an injected `now` on moto (server mode); the last test runs
the executor through sweeps to pin the over-budget message and retry time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from hyperpod_guard.remediation import store as budgets
from hyperpod_guard.remediation.store import RemediationStore
from tests.integration.test_remediation import (  # noqa: F401 (fixtures)
    CLUSTER, REBOOT, batch_infer, hyperpod, items, node_doc, node_rules, put_rules, run_sweep)
from tests.runtime_fixtures import runtime, stack  # noqa: F401

DAY = datetime(2026, 11, 24, tzinfo=timezone.utc)


def clock(hh_mm_ss: str) -> datetime:
    h, m, *s = (int(part) for part in hh_mm_ss.split(":"))
    return DAY.replace(hour=h, minute=m, second=s[0] if s else 0)


@pytest.fixture
def store(runtime) -> RemediationStore:
    return RemediationStore(runtime.ledger.table_name, runtime.ledger.dynamodb)


def other_store(runtime) -> RemediationStore:
    """Another Lambda: its own session and client."""
    return RemediationStore(runtime.ledger.table_name, boto3.session.Session().client("dynamodb"))


def budget_item(runtime, sk: str) -> dict[str, Any] | None:
    return runtime.ledger.dynamodb.get_item(TableName=runtime.ledger.table_name, ConsistentRead=True,
                                            Key={"pk": {"S": f"CLUSTER#{CLUSTER}"}, "sk": {"S": sk}}).get("Item")


def counted(runtime, sk: str, now: datetime) -> list[int]:
    """The nodes of each take that item counts at `now`, oldest first."""
    item = budget_item(runtime, sk) or {"takes": {"L": []}}
    takes = [(datetime.fromisoformat(t["M"]["at"]["S"]), int(t["M"]["nodes"]["N"])) for t in item["takes"]["L"]]
    return [nodes for moment, nodes in sorted(takes) if moment > now - timedelta(minutes=60)]


def test_a_burst_either_side_of_the_hour_shares_one_budget(stack, store):
    take = lambda now: store.take_budget(CLUSTER, "a", 4, per_hour=4, group_limit=10, now=now)  # noqa: E731
    assert take(clock("10:59:59"))
    assert not take(clock("11:00"))  # a clock-hour budget would allow 8 nodes within a second
    assert take(clock("11:00")).retry_at == clock("11:59:59")  # when the 10:59:59 take leaves the window
    assert not take(clock("11:59:30"))
    assert take(clock("12:00:01"))
    assert not take(clock("12:30"))


def test_group_limit_is_a_sliding_window_too(stack, store, runtime):
    def take(group: str, nodes: int, now: datetime):
        return store.take_budget(CLUSTER, group, nodes, per_hour=100, group_limit=2, now=now)

    assert take("a", 1, clock("10:30")) and take("a", 1, clock("10:59"))
    assert take("b", 2, clock("11:00"))  # another group's budget
    refused = take("a", 1, clock("11:00"))
    assert not refused and refused.retry_at == clock("11:30")  # one node of room once 10:30 leaves
    refused = take("a", 2, clock("11:00"))
    assert not refused and refused.retry_at == clock("11:59")  # two need both gone
    assert take("a", 1, clock("11:30"))  # at retry_at exactly: the window is the 60 minutes before now
    assert not take("a", 1, clock("11:58"))
    assert take("a", 2, clock("12:30:01"))
    # everything up to 11:30:01 has left the window
    assert counted(runtime, "BUDGET", clock("12:30:01")) == counted(runtime, "BUDGET#a", clock("12:30:01")) == [2]


def test_cluster_limit_counts_every_group(stack, store):
    assert store.take_budget(CLUSTER, "a", 3, per_hour=4, group_limit=10, now=clock("10:00"))
    refused = store.take_budget(CLUSTER, "b", 2, per_hour=4, group_limit=10, now=clock("10:10"))
    assert not refused and refused.retry_at == clock("11:00")
    assert not store.take_budget(CLUSTER, "a", 5, per_hour=4, group_limit=10, now=clock("10:10"))  # never fits
    assert store.take_budget(CLUSTER, "b", 1, per_hour=4, group_limit=10, now=clock("10:10"))


def test_refund_frees_exactly_the_refunded_nodes_and_only_within_the_window(stack, store, runtime):
    take = lambda nodes, now: store.take_budget(CLUSTER, "a", nodes, per_hour=4, group_limit=4, now=now)  # noqa: E731
    first, second = take(3, clock("10:00")), take(1, clock("10:10"))
    assert first and second and not take(1, clock("10:10"))
    store.refund(CLUSTER, "a", 2, first, now=clock("10:10"))  # 2 of its 3 nodes were never touched
    for sk in ("BUDGET", "BUDGET#a"):
        assert counted(runtime, sk, clock("10:10")) == [1, 1]
    assert not take(3, clock("10:20"))
    third = take(2, clock("10:20"))
    assert third
    # the first take left the window at 11:00: refunding it now gives nothing back, and takes nothing
    # from the others; an over-large refund of the third removes the third alone
    store.refund(CLUSTER, "a", 1, first, now=clock("11:05"))
    assert counted(runtime, "BUDGET", clock("11:05")) == [1, 2]
    store.refund(CLUSTER, "a", 5, third, now=clock("11:05"))
    assert counted(runtime, "BUDGET", clock("11:05")) == counted(runtime, "BUDGET#a", clock("11:05")) == [1]
    assert take(3, clock("11:05")) and not take(1, clock("11:05"))


class Interleaved:
    """A store's DynamoDB client on which `between` runs right after a budget read, `times` times:
    another Lambda writing between this one's read and its write."""

    def __init__(self, client: Any, between: Callable[[], None], times: int = 1):
        self.client, self.between, self.times, self.writes = client, between, times, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_get_items(self, **kwargs: Any) -> Any:
        response = self.client.transact_get_items(**kwargs)
        if self.times:
            self.times -= 1
            self.between()
        return response

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.writes += 1
        return self.client.transact_write_items(**kwargs)


@pytest.mark.parametrize("earlier", [0, 1], ids=["new items", "existing items"])
@pytest.mark.parametrize("granted", [True, False], ids=["still fits", "no longer fits"])
def test_a_take_between_read_and_write_is_seen_before_counting(stack, store, runtime, earlier, granted):
    if earlier:
        assert store.take_budget(CLUSTER, "a", earlier, per_hour=5, group_limit=5, now=clock("10:00"))
    other = other_store(runtime)
    racer = lambda: other.take_budget(CLUSTER, "b", 3, per_hour=5, group_limit=5, now=clock("10:30"))  # noqa: E731
    client = store.dynamodb = Interleaved(store.dynamodb, lambda: racer() or pytest.fail("the racer was refused"))
    ours = 5 - 3 - earlier + (not granted)  # fits what we read; after the racer's 3, fits exactly or by one too many
    taken = store.take_budget(CLUSTER, "a", ours, per_hour=5, group_limit=5, now=clock("10:30"))
    # our first write found the cluster item changed (or created, for new items): read again, check again
    assert bool(taken) is granted
    assert client.writes == 1 + granted
    expected = [earlier] * bool(earlier) + [3] + [ours] * granted
    assert sorted(counted(runtime, "BUDGET", clock("10:30"))) == sorted(expected)
    assert sorted(counted(runtime, "BUDGET#a", clock("10:30"))) == sorted([earlier] * bool(earlier) + [ours] * granted)


def test_endless_contention_counts_nothing_and_says_so(stack, store, runtime):
    other = other_store(runtime)
    racer = lambda: other.take_budget(CLUSTER, "b", 1, per_hour=100, group_limit=100, now=clock("10:00"))  # noqa: E731
    store.dynamodb = Interleaved(store.dynamodb, lambda: racer() or pytest.fail("the racer was refused"),
                                 times=budgets.BUDGET_ATTEMPTS)
    with pytest.raises(budgets.BudgetContention):
        store.take_budget(CLUSTER, "a", 1, per_hour=100, group_limit=100, now=clock("10:00"))
    assert counted(runtime, "BUDGET", clock("10:00")) == [1] * budgets.BUDGET_ATTEMPTS  # the racer's alone
    assert budget_item(runtime, "BUDGET#a") is None


@pytest.mark.parametrize(("groups", "per_hour", "group_limit", "granted"), [
    pytest.param(["a", "b"] * 5, 4, 10, 4, id="two groups share the cluster budget"),
    pytest.param(["a"] * 10, 10, 3, 3, id="one group's limit"),
])
def test_concurrent_takes_never_exceed_the_limit(stack, runtime, monkeypatch, groups, per_hour, group_limit, granted):
    # moto (in this process) rolls a refused transaction back by restoring a copy of the whole table
    # taken before it, erasing what other threads committed meanwhile (see benchmarks/bench.py). Real
    # DynamoDB transactions are serializable: make moto's so too. Reads, checks and the conditional
    # writes of the ten clients still interleave freely; only moto's apply step is one at a time.
    from moto.dynamodb.models import DynamoDBBackend

    serial = threading.RLock()
    for name in ("transact_write_items", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def serialized(self, *args, _original=original, **kwargs):
            with serial:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, serialized)
    stores = [other_store(runtime) for _ in groups]
    barrier = threading.Barrier(len(groups))
    results: list[bool] = []

    def take(store: RemediationStore, group: str) -> None:
        barrier.wait()
        taken = store.take_budget(CLUSTER, group, 1, per_hour=per_hour, group_limit=group_limit, now=clock("10:10"))
        results.append(bool(taken))

    threads = [threading.Thread(target=take, args=pair) for pair in zip(stores, groups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (len(groups) - granted) + [True] * granted
    assert sum(counted(runtime, "BUDGET", clock("10:10"))) == granted
    per_group = [sum(counted(runtime, f"BUDGET#{g}", clock("10:10"))) for g in sorted(set(groups))]
    assert sum(per_group) == granted and max(per_group) <= group_limit


def test_items_stay_small_over_many_hours(stack, store, runtime):
    start = clock("00:00")
    for step in range(24 * 12):  # a take every 5 minutes for a day; at most 12 are ever in the window
        now = start + timedelta(minutes=5 * step)
        assert store.take_budget(CLUSTER, "a", 1, per_hour=100, group_limit=100, now=now)
    last = start + timedelta(minutes=5 * (24 * 12 - 1))
    for sk in ("BUDGET", "BUDGET#a"):
        item = budget_item(runtime, sk)
        assert len(item["takes"]["L"]) == 12
        # an idle cluster's item goes (TTL) once its newest take has left the window
        assert int(item["expires_at"]["N"]) == int((last + timedelta(minutes=60)).timestamp()) + 1


def test_over_budget_is_retried_when_the_oldest_take_leaves_the_window(stack, runtime, hyperpod):
    failed = ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"]
    put_rules(node_rules({"dry_run": False}, {"max_nodes_per_hour": 2, "max_group_percent": 100}))
    batch_infer([node_doc(i) for i in failed])
    run_sweep(runtime, 30)  # 12:30
    acted = {body["NodeIds"][0] for _, body in hyperpod.take()}
    (skipped,) = set(failed) - acted
    by_node = {node: actions for _, _, node, actions in items(stack)}
    assert by_node[skipped] == ["skipped: budget spent (at most 2 nodes per cluster and 4 in g5-batch per 60 minutes)"]
    batch_infer([node_doc(i, "Running" if i in acted else "Failure") for i in failed])
    for minute in (60, 89):  # a clock-hour budget would act at 13:00
        run_sweep(runtime, minute)
        assert hyperpod.calls == [], minute
    run_sweep(runtime, 90)  # 13:30: the 12:30 takes leave the window
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [skipped]})]
