"""LedgerStore on moto: item round-trips, conditional commits, confirm/release with the claim
token, the sparse `open` index, TTL, and concurrent evaluations agreeing on one notification."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from hyperpod_guard.findings import Escalation, Finding, Severity
from hyperpod_guard.ledger import (
    CLAIM_LEASE,
    RESOLVED_RETENTION,
    AlertRecord,
    AlertState,
    Reason,
    Timing,
    carry,
    clear,
    observe,
)
from hyperpod_guard.ledger_store import LedgerConflict, LedgerStore, alert_key, create_table, from_item, to_item

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
TABLE = "ledger"


def finding(cluster: str = "training", condition: str = "status-degraded", **overrides) -> Finding:
    fields = dict(
        policy="degraded-group", severity=Severity.WARNING, cluster=cluster, condition=condition,
        summary="Instance group gpu-workers is Degraded", instance_group="gpu-workers",
    )
    fields.update(overrides)
    return Finding(**fields)


@pytest.fixture
def store(aws) -> LedgerStore:
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    return LedgerStore(TABLE, client)


def raw_item(store: LedgerStore, record: AlertRecord) -> dict:
    return store.dynamodb.get_item(
        TableName=TABLE, Key=alert_key(record.cluster, record.fingerprint, record.node), ConsistentRead=True
    )["Item"]


def stored(store: LedgerStore, record: AlertRecord) -> AlertRecord:
    return store.load(record.cluster)[record.fingerprint]


def fire(store: LedgerStore, token: str = "t1", now: datetime = T0, **finding_fields) -> AlertRecord:
    """A new finding observed and committed: firing, FIRST owed and claimed by `token`."""
    decision = observe(None, finding(**finding_fields), Timing(), now, token=token)
    (written,) = store.commit([decision], token, now)
    return written


def full_record() -> AlertRecord:
    return AlertRecord(
        fingerprint="0123456789abcdef0123", cluster="training", policy="degraded-group",
        condition="status-degraded", state=AlertState.FIRING, severity=Severity.CRITICAL,
        summary="Instance group gpu-workers is Degraded — 节点 3/4", first_seen=T0,
        last_seen=T0 + timedelta(minutes=5, microseconds=123456), instance_group="gpu-workers",
        node="i-0123456789abcdef0", origin="event",
        details={"ratio": 0.1 + 0.2, "tiny": 1e-300, "count": 3, "name": "ノード-ü",
                 "nested": {"xs": [1, 2.5, None]}},
        fired_at=T0 + timedelta(minutes=1), resolved_at=None, last_notified=T0 + timedelta(minutes=1),
        notified_severity=Severity.WARNING, owed=Reason.ESCALATED, claim_token="token-1",
        claim_until=T0 + timedelta(minutes=3), reason="escalated from warning to critical", version=7,
    )


# -- items ------------------------------------------------------------------------------------


def test_to_item_from_item_round_trip_with_every_field():
    record = full_record()
    item = to_item(record)
    assert from_item(item) == record
    assert item["pk"] == {"S": "CLUSTER#training"}
    assert item["sk"] == {"S": "ALERT#N#i-0123456789abcdef0#0123456789abcdef0123"}  # a node's alert sorts under it
    assert item["version"] == {"N": "7"}
    assert item["open_pk"] == {"S": "OPEN"}
    assert item["open_sk"] == {"S": "training#0123456789abcdef0123"}
    assert "expires_at" not in item


def test_to_item_from_item_round_trip_with_none_fields():
    record = AlertRecord.start(finding(instance_group=None), T0)
    item = to_item(record)
    for key in ("instance_group", "node", "fired_at", "resolved_at", "last_notified", "notified_severity",
                "owed", "claim_token", "claim_until"):
        assert item[key] == {"NULL": True}, key
    back = from_item(item)
    assert back == record
    assert back.details == {}


def test_round_trip_through_dynamodb(store):
    record = full_record()
    store.dynamodb.put_item(TableName=TABLE, Item=to_item(record))
    assert store.load("training") == {record.fingerprint: record}
    assert store.load("inference") == {}


def test_resolved_item_is_not_open_and_expires():
    record = replace(full_record(), state=AlertState.RESOLVED, resolved_at=T0 + timedelta(hours=1), owed=None)
    item = to_item(record)
    assert "open_pk" not in item and "open_sk" not in item
    assert item["expires_at"] == {"N": str(int((T0 + timedelta(hours=1) + RESOLVED_RETENTION).timestamp()))}
    owing = to_item(replace(record, owed=Reason.RESOLVED))
    assert owing["open_pk"] == {"S": "OPEN"}
    assert "expires_at" not in owing


# -- commit -------------------------------------------------------------------------------------


def test_commit_writes_a_new_record_with_the_claim(store):
    decision = observe(None, finding(), Timing(), T0, token="t1")
    (written,) = store.commit([decision], "t1", T0)
    assert (written.version, written.claim_token, written.claim_until) == (1, "t1", T0 + CLAIM_LEASE)
    assert (written.state, written.owed) == (AlertState.FIRING, Reason.FIRST)
    assert stored(store, written) == written


def test_a_stale_commit_of_the_same_decision_conflicts(store):
    decision = observe(None, finding(), Timing(), T0, token="t1")
    store.commit([decision], "t1", T0)
    with pytest.raises(LedgerConflict):
        store.commit([decision], "t2", T0 + timedelta(seconds=1))
    assert stored(store, decision.record).claim_token == "t1"


def test_a_commit_based_on_an_old_version_conflicts(store):
    written = fire(store)
    store.confirm([written], "t1", T0)
    old = written  # version 1, not yet notified; the store now has version 2, notified
    later = observe(old, finding(), Timing(), T0 + timedelta(hours=5), token="t2")
    assert later.notify is Reason.FIRST  # the stale view would send the first again
    with pytest.raises(LedgerConflict):
        store.commit([later], "t2", T0 + timedelta(hours=5))
    fresh = stored(store, written)
    assert fresh.version == 2
    again = observe(fresh, finding(), Timing(), T0 + timedelta(hours=5), token="t2")
    (rewritten,) = store.commit([again], "t2", T0 + timedelta(hours=5))
    assert (rewritten.version, rewritten.owed, rewritten.claim_token) == (3, Reason.REPEAT, "t2")


def test_a_conflict_in_one_record_cancels_the_whole_transaction(store):
    first = fire(store, condition="a")
    fresh = observe(None, finding(condition="b"), Timing(), T0, token="t2")
    # a changed summary, so that the stale record is written (an unchanged one would not be)
    stale = observe(replace(first, version=0), finding(condition="a", summary="now 2/8 nodes"), Timing(), T0, token="t2")
    with pytest.raises(LedgerConflict):
        store.commit([fresh, stale], "t2", T0)
    assert set(store.load("training")) == {first.fingerprint}


def test_unchanged_decisions_are_not_written(store):
    written = fire(store)
    store.confirm([written], "t1", T0)
    record = stored(store, written)
    assert store.commit([carry(record, T0 + timedelta(minutes=1))], "t2", T0 + timedelta(minutes=1)) == []
    assert stored(store, written).version == 2


def test_commit_of_150_decisions_spans_transactions(store):
    decisions = [observe(None, finding(condition=f"c{i:03}"), Timing(), T0, token="t1") for i in range(150)]
    written = store.commit(decisions, "t1", T0)
    assert len(written) == 150
    loaded = store.load("training")
    assert len(loaded) == 150
    assert loaded == {record.fingerprint: record for record in written}
    assert {record.version for record in loaded.values()} == {1}


# -- confirm and release -------------------------------------------------------------------------


def test_confirm_records_the_notification_and_drops_owed_and_claim(store):
    written = fire(store, severity=Severity.CRITICAL)
    store.confirm([written], "t1", T0 + timedelta(seconds=3))
    record = stored(store, written)
    assert record.last_notified == T0 + timedelta(seconds=3)
    assert record.notified_severity is Severity.CRITICAL
    assert (record.owed, record.claim_token, record.claim_until) == (None, None, None)
    assert record.version == 2
    assert record.state is AlertState.FIRING
    assert "open_pk" in raw_item(store, written)  # still firing: still open


def test_confirm_by_another_token_changes_nothing(store):
    written = fire(store)
    before = raw_item(store, written)
    store.confirm([written], "t2", T0 + timedelta(seconds=3))
    assert raw_item(store, written) == before


def test_release_drops_the_claim_but_keeps_owed(store):
    written = fire(store)
    store.release([written], "t2")  # not ours: nothing
    assert stored(store, written) == written
    store.release([written], "t1")
    record = stored(store, written)
    assert (record.owed, record.claim_token, record.claim_until) == (Reason.FIRST, None, None)
    assert record.last_notified is None
    assert record.version == 2
    # the next evaluation, by anyone, sends it
    retry = carry(record, T0 + timedelta(minutes=1), token="t3")
    assert (retry.notify, retry.why) == (Reason.FIRST, "re-sending owed first notification")


def test_resolved_and_confirmed_record_expires_and_leaves_the_open_index(store):
    written = fire(store)
    store.confirm([written], "t1", T0)
    resolved_at = T0 + timedelta(hours=1)
    decision = clear(stored(store, written), Timing(), resolved_at, "the group is InService", token="t2")
    assert decision.notify is Reason.RESOLVED
    (resolving,) = store.commit([decision], "t2", resolved_at)
    item = raw_item(store, written)
    assert item["open_pk"] == {"S": "OPEN"}  # owes the resolved message
    assert "expires_at" not in item
    confirmed_at = resolved_at + timedelta(seconds=2)
    store.confirm([resolving], "t2", confirmed_at)
    item = raw_item(store, written)
    assert "open_pk" not in item and "open_sk" not in item
    expires = int(item["expires_at"]["N"])
    assert expires == int((confirmed_at + RESOLVED_RETENTION).timestamp())
    assert abs(expires - (resolved_at + RESOLVED_RETENTION).timestamp()) <= 2
    record = from_item(item)
    assert (record.state, record.owed, record.claim_token) == (AlertState.RESOLVED, None, None)
    assert record.last_notified == confirmed_at
    assert store.open_clusters() == set()


def test_open_clusters_lists_pending_firing_and_owing_clusters(store):
    # pending (grace), firing and confirmed, resolved but owing, resolved and done
    pending = observe(None, finding("pending-cluster"), Timing(grace=timedelta(minutes=15)), T0)
    assert pending.record.state is AlertState.PENDING
    store.commit([pending], "t1", T0)
    store.confirm([fire(store, cluster="firing-cluster")], "t1", T0)
    owing = fire(store, cluster="owing-cluster")
    store.confirm([owing], "t1", T0)
    resolving = clear(stored(store, owing), Timing(), T0 + timedelta(hours=1), "gone", token="t1")
    store.commit([resolving], "t1", T0 + timedelta(hours=1))
    done = fire(store, cluster="done-cluster")
    store.confirm([done], "t1", T0)
    at_1h = T0 + timedelta(hours=1)
    (resolved,) = store.commit([clear(stored(store, done), Timing(), at_1h, "gone", token="t1")], "t1", at_1h)
    store.confirm([resolved], "t1", T0 + timedelta(hours=1))
    silent = observe(None, finding("silent-cluster"), Timing(grace=timedelta(minutes=15)), T0)
    (silent_written,) = store.commit([silent], "t1", T0)
    store.commit([clear(silent_written, Timing(), T0 + timedelta(minutes=5), "gone")], "t1", T0 + timedelta(minutes=5))
    assert store.open_clusters() == {"pending-cluster", "firing-cluster", "owing-cluster"}


def test_open_clusters_with_many_open_alerts_lists_each_cluster_once(store):
    store.commit([observe(None, finding("a", condition=f"c{i}"), Timing(), T0) for i in range(30)], "t1", T0)
    store.commit([observe(None, finding("b#with-hash"), Timing(), T0)], "t1", T0)
    assert store.open_clusters() == {"a", "b#with-hash"}


# -- races ----------------------------------------------------------------------------------------


@pytest.fixture
def atomic_moto(monkeypatch):
    """DynamoDB applies each conditional write atomically; moto (running in this process
    behind ThreadedMotoServer) does not: a transaction checks its conditions and writes in
    separate steps and, when cancelled, restores a copy of the table taken before it started,
    which can undo a concurrent write. Serialise moto's item operations so that a race test
    tests the ledger, not moto."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "get_item", "query", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, __original=original, **kwargs):
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


def test_twenty_concurrent_evaluations_notify_exactly_once(store, atomic_moto):
    the_finding = finding()
    barrier = threading.Barrier(20, timeout=60)
    outcomes: dict[str, list] = {}
    first_reads: list[Reason | None] = []
    errors: list[BaseException] = []

    def evaluate(token: str) -> None:
        try:
            mine = LedgerStore(TABLE, boto3.session.Session().client("dynamodb"))
            conflicts = 0
            while True:
                decision = observe(mine.load("training").get(the_finding.fingerprint), the_finding, Timing(), T0,
                                   token=token)
                if conflicts == 0:  # the first time, everyone has read the same (empty) ledger
                    barrier.wait()
                    first_reads.append(decision.notify)
                try:
                    written = mine.commit([decision], token, T0)
                except LedgerConflict:
                    conflicts += 1
                    assert conflicts < 50, "never settled"
                    continue
                if decision.notify:
                    mine.confirm(written, token, T0)
                outcomes[token] = [decision.notify, decision.why]
                return
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(f"thread-{i}",), daemon=True) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert first_reads == [Reason.FIRST] * 20  # all decided to send the first...
    assert len(outcomes) == 20
    notified = [token for token, (notify, _) in outcomes.items() if notify]
    assert len(notified) == 1, outcomes  # ...and exactly one did
    assert outcomes[notified[0]][0] is Reason.FIRST
    record = stored(store, AlertRecord.start(the_finding, T0))
    assert (record.owed, record.claim_token) == (None, None)
    assert record.last_notified == T0
    others = {why for token, (_, why) in outcomes.items() if token != notified[0]}
    assert others <= {
        "firing: first notification (another invocation is sending it)",
        "firing: notified 0s ago, next repeat in 4h",
    }


def test_a_resolve_committed_while_a_repeat_is_being_sent_is_not_lost(store):
    """A sends a repeat; meanwhile B sees the problem gone and, finding A's claim, owes the
    resolved message. A's confirm must not erase what B owes: the next evaluation sends it."""
    written = fire(store, token="A")
    store.confirm([written], "A", T0)
    at_4h = T0 + timedelta(hours=4)
    repeat = observe(stored(store, written), finding(), Timing(), at_4h, token="A")
    assert repeat.notify is Reason.REPEAT
    (sending,) = store.commit([repeat], "A", at_4h)
    # B, while A publishes
    gone = clear(stored(store, written), Timing(), at_4h + timedelta(seconds=5), "gone", token="B")
    assert (gone.notify, gone.record.owed) == (None, Reason.RESOLVED)
    store.commit([gone], "B", at_4h + timedelta(seconds=5))
    # SNS accepted A's repeat
    store.confirm([sending], "A", at_4h + timedelta(seconds=6))
    record = stored(store, written)
    assert (record.state, record.owed, record.claim_token) == (AlertState.RESOLVED, Reason.RESOLVED, None)
    assert record.last_notified == at_4h + timedelta(seconds=6)
    assert store.open_clusters() == {"training"}
    later = at_4h + timedelta(minutes=1)
    retry = carry(record, later, token="C")
    assert (retry.notify, retry.why) == (Reason.RESOLVED, "re-sending owed resolved notification")
    (resolving,) = store.commit([retry], "C", later)
    store.confirm([resolving], "C", later)
    done = stored(store, written)
    assert (done.owed, done.claim_token) == (None, None)
    assert "open_pk" not in raw_item(store, written)
    assert store.open_clusters() == set()


def test_a_new_episode_committed_while_a_resolved_is_being_sent_keeps_its_first(store):
    """A sends the resolved message; meanwhile the problem is back and B owes a FIRST for the
    new episode. A's confirm must neither drop that FIRST nor close the record."""
    written = fire(store, token="A")
    store.confirm([written], "A", T0)
    at_1h = T0 + timedelta(hours=1)
    (resolving,) = store.commit([clear(stored(store, written), Timing(), at_1h, "gone", token="A")], "A", at_1h)
    back = observe(stored(store, written), finding(), Timing(), at_1h + timedelta(seconds=30), token="B")
    assert (back.notify, back.record.owed, back.record.state) == (None, Reason.FIRST, AlertState.FIRING)
    store.commit([back], "B", at_1h + timedelta(seconds=30))
    store.confirm([resolving], "A", at_1h + timedelta(seconds=31))
    record = stored(store, written)
    assert (record.state, record.owed, record.claim_token) == (AlertState.FIRING, Reason.FIRST, None)
    assert record.first_seen == at_1h + timedelta(seconds=30)
    item = raw_item(store, written)
    assert item["open_pk"] == {"S": "OPEN"} and "expires_at" not in item
    retry = observe(record, finding(), Timing(), at_1h + timedelta(minutes=1), token="C")
    assert retry.notify is Reason.FIRST


def test_a_silence_committed_while_the_first_is_being_sent_still_records_it_as_sent(store):
    """A sends the first; meanwhile B evaluates under a silence (owes nothing). The first did
    go out: when the silence ends it must not be sent again."""
    sending = fire(store, token="A")
    muted = observe(stored(store, sending), finding(), Timing(), T0 + timedelta(seconds=5), muted="silenced", token="B")
    assert (muted.notify, muted.record.owed) == (None, None)
    store.commit([muted], "B", T0 + timedelta(seconds=5))
    store.confirm([sending], "A", T0 + timedelta(seconds=6))
    record = stored(store, sending)
    assert (record.owed, record.claim_token, record.reason) == (None, None, "silenced")
    assert (record.last_notified, record.notified_severity) == (T0 + timedelta(seconds=6), Severity.WARNING)
    after = observe(record, finding(), Timing(), T0 + timedelta(hours=1), token="C")
    assert (after.notify, after.why) == (None, "firing: notified 59m54s ago, next repeat in 3h6s")


def test_an_escalation_committed_while_a_repeat_is_being_sent_is_sent_next(store):
    """A sends a repeat at info; meanwhile the finding escalates and B owes ESCALATED. A's
    confirm records the info repeat as sent and leaves ESCALATED owed, unclaimed."""
    escalating = dict(severity=Severity.INFO,
                      escalation=Escalation(timedelta(hours=4, seconds=10), Severity.CRITICAL))
    written = fire(store, token="A", **escalating)
    store.confirm([written], "A", T0)
    at_4h = T0 + timedelta(hours=4)
    repeat = observe(stored(store, written), finding(**escalating), Timing(), at_4h, token="A")
    assert (repeat.notify, repeat.record.severity) == (Reason.REPEAT, Severity.INFO)
    (sending,) = store.commit([repeat], "A", at_4h)
    escalated = observe(stored(store, written), finding(**escalating), Timing(), at_4h + timedelta(seconds=30),
                        token="B")
    assert (escalated.notify, escalated.record.owed) == (None, Reason.ESCALATED)
    store.commit([escalated], "B", at_4h + timedelta(seconds=30))
    store.confirm([sending], "A", at_4h + timedelta(seconds=31))
    record = stored(store, written)
    assert (record.owed, record.claim_token, record.severity) == (Reason.ESCALATED, None, Severity.CRITICAL)
    assert (record.last_notified, record.notified_severity) == (at_4h + timedelta(seconds=31), Severity.INFO)
    retry = carry(record, at_4h + timedelta(minutes=1), token="C")
    assert (retry.notify, retry.why) == (Reason.ESCALATED, "re-sending owed escalated notification")
