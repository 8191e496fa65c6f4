"""LedgerStore.acknowledge and LedgerStore.get on moto (issue 20): the acknowledgement is stored and
read back, refused for what it cannot be about (no alert, a resolved one, another episode, someone
else's acknowledgement that still lasts), idempotent for the same person, and safe against concurrent
writers: an evaluation that read the alert before the acknowledgement re-reads instead of erasing it."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertState, Reason, Timing, clear, observe
from hyperpod_guard.ledger_store import LedgerConflict, LedgerStore, create_table

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
TABLE = "ledger"
NODE = "i-0123456789abcdef0"


def finding(node: str | None = NODE) -> Finding:
    return Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster="training", condition="unhealthy",
                   summary="Node reported unhealthy", instance_group="gpu", node=node)


@pytest.fixture
def store(aws) -> LedgerStore:
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    return LedgerStore(TABLE, client)


def fire(store: LedgerStore, now: datetime = T0, node: str | None = NODE):
    """Observed and committed (firing, first owed), then confirmed as sent."""
    decision = observe(None, finding(node), Timing(), now, token="t1")
    (written,) = store.commit([decision], "t1", now)
    store.confirm([written], "t1", now)
    record = store.get("training", written.fingerprint, node)
    assert record is not None and record.last_notified == now
    return record


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_get_reads_one_alert_by_its_key(store):
    record = fire(store)
    assert store.get("training", record.fingerprint, NODE) == record
    assert store.get("training", record.fingerprint, "i-0other") is None
    cluster_level = fire(store, node=None)
    assert store.get("training", cluster_level.fingerprint, None) == cluster_level


def test_acknowledge_is_stored_read_back_and_stops_repeats(store):
    record = fire(store)
    done = store.acknowledge("training", record.fingerprint, NODE, record.first_seen, "U0AAA", at(5), at(5 + 24 * 60))
    assert done.refused is None and done.record is not None
    stored = store.get("training", record.fingerprint, NODE)
    assert stored == done.record
    assert (stored.acknowledged_by, stored.acknowledged_at, stored.acknowledged_until) == ("U0AAA", at(5), at(1445))
    assert stored.version == record.version + 1  # an evaluation that read the alert before must re-read
    # the ledger's decision reads it: 4h later no repeat, but the acknowledgement says why
    decision = observe(stored, finding(), Timing(), at(4 * 60 + 1), token="t2")
    assert decision.notify is None and decision.why.startswith("acknowledged by U0AAA")
    assert decision.why.endswith("no repeats until 2026-06-02T12:05:00Z")


def test_until_resolved_is_stored_as_none(store):
    record = fire(store)
    done = store.acknowledge("training", record.fingerprint, NODE, record.first_seen, "U0AAA", at(5), None)
    assert done.record is not None and done.record.acknowledged_until is None
    stored = store.get("training", record.fingerprint, NODE)
    assert stored is not None and stored.acknowledged(at(10 * 24 * 60))
    assert observe(stored, finding(), Timing(), at(10 * 24 * 60), token="t").why.endswith("until resolved")


def test_the_same_user_again_keeps_the_first_acknowledgement(store):
    record = fire(store)
    first = store.acknowledge("training", record.fingerprint, NODE, record.first_seen, "U0AAA", at(5), at(65))
    again = store.acknowledge("training", record.fingerprint, NODE, record.first_seen, "U0AAA", at(9), None)
    assert again.refused is None and again.record == first.record
    stored = store.get("training", record.fingerprint, NODE)
    assert stored is not None and (stored.acknowledged_at, stored.acknowledged_until, stored.version) == (
        at(5), at(65), record.version + 1)


def test_refusals(store):
    record = fire(store)
    fingerprint, first_seen = record.fingerprint, record.first_seen
    assert store.acknowledge("training", "0" * 20, NODE, first_seen, "U0AAA", at(1), None).refused == "no such alert"
    assert store.acknowledge("other", fingerprint, NODE, first_seen, "U0AAA", at(1), None).refused == "no such alert"
    assert store.acknowledge("training", fingerprint, NODE, first_seen, "U0AAA", at(1), at(31)).record is not None
    # someone else's acknowledgement still lasts ...
    refused = store.acknowledge("training", fingerprint, NODE, first_seen, "U0BBB", at(2), None)
    assert (refused.record, refused.refused) == (None, "already acknowledged by U0AAA at 2026-06-01T12:01:00Z")
    # ... until it ends: then another may acknowledge
    taken = store.acknowledge("training", fingerprint, NODE, first_seen, "U0BBB", at(31), None)
    assert taken.record is not None and taken.record.acknowledged_by == "U0BBB"
    # the alert resolves: refused; it fires again: the old episode's button is refused, the new episode
    # starts unacknowledged
    stored = store.get("training", fingerprint, NODE)
    assert stored is not None
    resolved = clear(stored, Timing(), at(40), "the condition cleared", token="t3")
    (written,) = store.commit([resolved], "t3", at(40))
    store.confirm([written], "t3", at(40))
    assert store.acknowledge("training", fingerprint, NODE, first_seen, "U0BBB", at(41), None).refused == \
        "the alert resolved at 2026-06-01T12:40:00Z"
    stored = store.get("training", fingerprint, NODE)
    assert stored is not None and stored.state is AlertState.RESOLVED
    again = observe(stored, finding(), Timing(), at(50), token="t4")
    assert again.notify is Reason.FIRST and again.record.acknowledged_by is None
    store.commit([again], "t4", at(50))
    assert store.acknowledge("training", fingerprint, NODE, first_seen, "U0BBB", at(51), None).refused == \
        "a newer episode started at 2026-06-01T12:50:00Z"
    assert store.acknowledge("training", fingerprint, NODE, at(50), "U0BBB", at(51), None).record is not None


def test_an_evaluation_that_read_before_the_acknowledgement_re_reads(store):
    record = fire(store)
    read_before = store.get("training", record.fingerprint, NODE)
    assert read_before is not None
    store.acknowledge("training", record.fingerprint, NODE, record.first_seen, "U0AAA", at(5), None)
    stale = observe(read_before, finding(), Timing(), at(4 * 60 + 1), token="t2")
    assert stale.notify is Reason.REPEAT  # decided on the record as read before
    with pytest.raises(LedgerConflict):
        store.commit([stale], "t2", at(4 * 60 + 1))
    fresh = store.get("training", record.fingerprint, NODE)
    assert fresh is not None and observe(fresh, finding(), Timing(), at(4 * 60 + 1), token="t2").notify is None


def test_concurrent_acknowledgements_and_evaluations_agree(store):
    """Eight people click at once while evaluations write the alert: exactly one acknowledgement holds, every
    other click is refused naming it, and no write is lost (the version counts every one)."""
    record = fire(store)
    results: dict[str, str | None] = {}
    committed: list[str] = []
    barrier = threading.Barrier(10)

    def click(user: str) -> None:
        barrier.wait()
        done = store.acknowledge("training", record.fingerprint, NODE, record.first_seen, user, at(5), None)
        results[user] = done.refused

    def evaluate(token: str) -> None:
        barrier.wait()
        for _ in range(5):
            current = store.get("training", record.fingerprint, NODE)
            assert current is not None
            decision = observe(current, finding(), Timing(), at(30), token=token)
            try:
                store.commit([replace(decision, changed=True)], token, at(30))
                committed.append(token)
                return
            except LedgerConflict:
                continue

    users = [f"U0{n:03d}" for n in range(8)]
    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    threads += [threading.Thread(target=evaluate, args=(f"e{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = store.get("training", record.fingerprint, NODE)
    assert stored is not None and stored.acknowledged_by in users
    assert stored.version == record.version + 1 + len(committed)
    winners = [u for u, refused in results.items() if refused is None]
    assert winners == [stored.acknowledged_by]
    assert sorted(results[u] for u in users if u not in winners) == \
        [f"already acknowledged by {stored.acknowledged_by} at 2026-06-01T12:05:00Z"] * 7
