"""Batched confirm and release (issue 17, Ledger I/O) on moto in server mode: counts, not times.

A notification of N alerts is confirmed in TransactWriteItems of up to 100 items (⌈N/100⌉ writes,
not N sequential UpdateItems), and a record whose claim was lost while we were sending is left
alone without leaving the others unconfirmed: the outcome equals confirming one record at a time."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from math import ceil

import boto3
import pytest

from hyperpod_guard.findings import Severity
from hyperpod_guard.ledger import AlertRecord, Reason, Timing, clear, observe
from hyperpod_guard.ledger_store import LedgerStore, alert_key, create_table

from .test_ledger_store import T0, TABLE, finding, raw_item, stored

N = 247  # the alerts one notification carries on the 256-group synthetic cluster (benchmarks/bench.py)
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@pytest.fixture
def store(aws) -> LedgerStore:
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    return LedgerStore(TABLE, client)


class Calls:
    """The DynamoDB operations a client makes (a botocore event hook), by name."""

    def __init__(self, client) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", self._record)

    def _record(self, model, **_) -> None:
        self.counts[model.name] += 1

    @property
    def writes(self) -> int:
        return sum(n for name, n in self.counts.items() if name in WRITES)


def fire_many(store: LedgerStore, n: int, token: str = "t1", cluster: str = "training") -> list[AlertRecord]:
    """n new findings of one cluster committed together: each firing, FIRST owed, claimed by `token`."""
    decisions = [observe(None, finding(cluster=cluster, condition=f"node-{i:03d}", severity=Severity.CRITICAL),
                         Timing(), T0, token=token) for i in range(n)]
    return store.commit(decisions, token, T0)


def take_over(store: LedgerStore, record: AlertRecord, token: str) -> None:
    """Another invocation found the claim expired and took it (as commit would: a new version)."""
    store.dynamodb.update_item(
        TableName=store.table_name, Key=alert_key(record.cluster, record.fingerprint, record.node),
        UpdateExpression="SET claim_token = :t, #v = #v + :one", ExpressionAttributeNames={"#v": "version"},
        ExpressionAttributeValues={":t": {"S": token}, ":one": {"N": "1"}},
    )


def test_confirming_247_alerts_takes_at_most_4_writes_and_confirms_each(store):
    written = fire_many(store, N)
    calls = Calls(store.dynamodb)
    store.confirm(written, "t1", T0 + timedelta(seconds=3))
    assert calls.writes <= ceil(N / 100) + 1, calls.counts  # the old code: 247 UpdateItems
    assert calls.counts == {"TransactWriteItems": 3}
    ledger = store.load("training")
    assert len(ledger) == N
    for record in written:
        now = ledger[record.fingerprint]
        assert now == replace(record, last_notified=T0 + timedelta(seconds=3), notified_severity=Severity.CRITICAL,
                              owed=None, claim_token=None, claim_until=None, version=record.version + 1)


def test_releasing_247_claims_takes_3_writes(store):
    written = fire_many(store, N)
    calls = Calls(store.dynamodb)
    store.release(written, "t1")
    assert calls.counts == {"TransactWriteItems": 3}
    for record in store.load("training").values():
        assert (record.owed, record.claim_token, record.claim_until, record.version) == (Reason.FIRST, None, None, 2)


def _scenario(store: LedgerStore) -> tuple[list[AlertRecord], dict[str, str]]:
    """247 claimed records, and while we were sending: three claims (in three different batches)
    taken over by another invocation, and one record resolved under our claim (confirm records
    what we sent and leaves RESOLVED owed). Returns the records and what happened, by fingerprint."""
    written = fire_many(store, N)
    happened: dict[str, str] = {}
    for index in (5, 150, 246):
        take_over(store, written[index], "other")
        happened[written[index].fingerprint] = "taken over"
    resolving = written[42]
    # B sees the problem gone; finding A's claim, it owes the resolve and keeps the claim
    decision = clear(stored(store, resolving), Timing(), T0 + timedelta(seconds=1), "gone", token="other")
    assert decision.notify is None and decision.record.claim_token == "t1"
    store.commit([decision], "other", T0 + timedelta(seconds=1))
    happened[resolving.fingerprint] = "resolved meanwhile"
    return written, happened


def test_a_claim_lost_in_the_middle_of_a_batch_leaves_that_record_alone_and_confirms_the_others(store):
    written, happened = _scenario(store)
    before = {r.fingerprint: raw_item(store, r) for r in written if happened.get(r.fingerprint) == "taken over"}
    resolved_before = stored(store, written[42])
    calls = Calls(store.dynamodb)
    sent_at = T0 + timedelta(seconds=5)
    store.confirm(written, "t1", sent_at)  # neither raises nor gives up on the others
    confirm_calls = dict(calls.counts)
    ledger = store.load("training")
    for record in written:
        now = ledger[record.fingerprint]
        if happened.get(record.fingerprint) == "taken over":
            assert raw_item(store, record) == before[record.fingerprint]  # the new claimer decides
        elif happened.get(record.fingerprint) == "resolved meanwhile":  # what we sent recorded, RESOLVED still owed
            assert now == replace(resolved_before, last_notified=sent_at, notified_severity=Severity.CRITICAL,
                                  claim_token=None, claim_until=None, version=resolved_before.version + 1)
            assert now.state is not record.state  # (the resolve is not undone)
        else:
            assert (now.last_notified, now.owed, now.claim_token, now.version) == (sent_at, None, None, 2)
    # each batch with a failed condition is cancelled and written again without it: 3 + 3, not 247
    assert confirm_calls == {"TransactWriteItems": 6}


def test_batched_confirm_equals_confirming_one_record_at_a_time(aws):
    """The same races, confirmed in one call and one record per call (what the per-item code did),
    leave identical items."""
    client = boto3.client("dynamodb")
    outcomes = []
    for name in ("batched", "one-by-one"):
        create_table(client, f"{TABLE}-{name}")
        store = LedgerStore(f"{TABLE}-{name}", client)
        written, _ = _scenario(store)
        if name == "batched":
            store.confirm(written, "t1", T0 + timedelta(seconds=5))
        else:
            for record in written:
                store.confirm([record], "t1", T0 + timedelta(seconds=5))
        items = client.scan(TableName=store.table_name, ConsistentRead=True)["Items"]
        outcomes.append(sorted(items, key=lambda item: item["sk"]["S"]))
    assert outcomes[0] == outcomes[1]


def test_the_same_record_twice_is_confirmed_once_not_in_one_transaction(store):
    (written,) = fire_many(store, 1)
    calls = Calls(store.dynamodb)
    store.confirm([written, written], "t1", T0 + timedelta(seconds=3))  # moto, like DynamoDB, refuses one item twice
    record = stored(store, written)
    assert (record.owed, record.claim_token, record.version) == (None, None, 2)
    assert calls.writes <= 4  # the second: its claim is gone, so it stops at its first failed condition
