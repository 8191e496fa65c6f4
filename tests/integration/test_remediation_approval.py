"""Remediation that needs a person's approval (issue 20), end to end on moto: evaluation -> ledger ->
plan -> approval requested (news, with the ApprovalRef the Slack buttons come from) -> decided
(ApprovalStore.decide, as the Slack actions worker calls it) -> the next evaluation acts once, through
the budgets and the audit, naming the approver. And ApprovalStore alone: request, decide, use,
expiry, the refusals, and concurrent clicks.

The SageMaker node actions are answered and recorded as in test_remediation.py (FakeHyperPod)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import boto3
import pytest

from hyperpod_guard.ledger_store import create_table
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.remediation.approvals import ApprovalRefused, ApprovalStore
from tests.integration.test_remediation import (  # noqa: F401 (fixtures)
    CLUSTER, NODE, REBOOT, T0, at, batch_infer, budget_used, hyperpod, items, node_rules, put_rules, run_sweep, store,
)
from tests.runtime_fixtures import runtime, stack  # noqa: F401

FINGERPRINT = "0123456789abcdef0123"
APPROVER, OTHER = "U0APPROVER", "U0OTHER"


def approval_rules(**remediation) -> dict:
    rules = node_rules({"dry_run": False, "approval": "required", **remediation})
    rules["chatops"] = {"approvers": [APPROVER]}
    return rules


@pytest.fixture
def approvals(runtime) -> ApprovalStore:
    return ApprovalStore(runtime.ledger.dynamodb, runtime.ledger.table_name)


def unhealthy_fingerprint(runtime) -> str:
    (record,) = runtime.ledger.load(CLUSTER).values()
    return record.fingerprint


# --- the executor's gate -------------------------------------------------------------------------------------


def test_approved_action_runs_once_and_its_audit_names_the_approver(stack, runtime, hyperpod, store, approvals):
    put_rules(approval_rules())
    batch_infer()
    run_sweep(runtime, 0)
    assert hyperpod.calls == []
    (message,) = delivered(stack)
    (item,) = message["message"]["items"]
    assert (item["reason"], item["actions"]) == (
        "first", [f"awaiting approval: would reboot {NODE} (expires 2026-11-24T13:00:00Z)"])
    assert item["next_step"].startswith("Remediation waits for an approver")
    fingerprint = item["finding"]["fingerprint"]
    pending = approvals.get(CLUSTER, fingerprint)
    assert pending is not None and pending.status == "pending" and pending.nodes == (NODE,)
    assert item["approval"] == {"id": pending.id, "action": f"reboot {NODE}", "expires_at": "2026-11-24T13:00:00Z",
                                "status": "pending", "decided_by": None}
    email = " ".join(message["message"]["text"].split())
    assert f"Awaiting approval: reboot {NODE} (until 2026-11-24 13:00 UTC)" in email
    run_sweep(runtime, 5)  # waiting: quiet, and asked only once
    assert hyperpod.calls == [] and items(stack) == []
    assert approvals.get(CLUSTER, fingerprint) == pending

    approvals.decide(CLUSTER, fingerprint, pending.id, True, APPROVER, at(6))
    run_sweep(runtime, 7)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    shown = [i for m in delivered(stack) for i in m["message"]["items"]]
    assert [(i["reason"], i["actions"], i["approval"]["status"], i["approval"]["decided_by"]) for i in shown] == [
        ("remediated", [f"rebooted {NODE} (approved by {APPROVER})"], "used", APPROVER)]
    (audit,) = store.audits(CLUSTER)
    assert (audit["approved_by"], audit["approval"], audit["dry_run"], json.loads(audit["request"])) == (
        APPROVER, pending.id, "false", {"ClusterName": CLUSTER, "NodeIds": [NODE]})
    used = approvals.get(CLUSTER, fingerprint)
    assert used is not None and used.status == "used"
    assert budget_used(runtime, "BUDGET", at(7)) == 1
    # used: never again on its strength
    assert approvals.use(CLUSTER, fingerprint, pending.id, at(8)) is False
    run_sweep(runtime, 8)
    assert hyperpod.calls == []


def test_rejected_action_never_runs_and_is_not_asked_again_this_episode(stack, runtime, hyperpod, store, approvals):
    put_rules(approval_rules())
    batch_infer()
    run_sweep(runtime, 0)
    fingerprint = unhealthy_fingerprint(runtime)
    pending = approvals.get(CLUSTER, fingerprint)
    assert pending is not None
    delivered(stack)
    approvals.decide(CLUSTER, fingerprint, pending.id, False, APPROVER, at(2))
    for minute in (3, 70, 4 * 60 + 1):
        run_sweep(runtime, minute)
    assert hyperpod.calls == []
    assert store.audits(CLUSTER) == []
    # the repeat 4h on says so, without asking again
    assert [(i[0], i[3]) for i in items(stack)] == [("repeat", [f"rejected by {APPROVER}"])]
    after = approvals.get(CLUSTER, fingerprint)
    assert after is not None and (after.id, after.status) == (pending.id, "rejected")


def test_an_expired_request_runs_nothing_and_is_asked_again(stack, runtime, hyperpod, approvals):
    put_rules(approval_rules(approval_expires="30m"))
    batch_infer()
    run_sweep(runtime, 0)
    fingerprint = unhealthy_fingerprint(runtime)
    first = approvals.get(CLUSTER, fingerprint)
    assert first is not None and first.expires_at == at(30)
    with pytest.raises(ApprovalRefused, match="expired at 2026-11-24T12:30:00Z"):
        approvals.decide(CLUSTER, fingerprint, first.id, True, APPROVER, at(31))
    delivered(stack)
    run_sweep(runtime, 31)
    assert hyperpod.calls == []
    second = approvals.get(CLUSTER, fingerprint)
    assert second is not None and second.id != first.id and second.status == "pending"
    # a click on the old request's buttons is refused: superseded
    with pytest.raises(ApprovalRefused, match="superseded"):
        approvals.decide(CLUSTER, fingerprint, first.id, True, APPROVER, at(32))
    # approved, but not acted on before it expired: nothing runs; it is asked for anew
    approvals.decide(CLUSTER, fingerprint, second.id, True, APPROVER, at(33))
    run_sweep(runtime, 62)
    assert hyperpod.calls == []
    third = approvals.get(CLUSTER, fingerprint)
    assert third is not None and third.id not in (first.id, second.id) and third.status == "pending"


def test_a_dry_run_stays_a_dry_run_and_asks_nobody(stack, runtime, hyperpod, store, approvals):
    put_rules(approval_rules(dry_run=True))
    batch_infer()
    run_sweep(runtime, 0)
    assert hyperpod.calls == []
    assert items(stack) == [("first", "unhealthy-node/instance-failure", NODE, [f"would reboot {NODE} (dry run)"])]
    assert approvals.get(CLUSTER, unhealthy_fingerprint(runtime)) is None
    (audit,) = store.audits(CLUSTER)
    assert audit["dry_run"] == "true" and "approved_by" not in audit


def test_the_budget_still_applies_and_keeps_the_approval_for_the_retry(stack, runtime, hyperpod, store, approvals):
    rules = approval_rules()
    rules["remediation_budget"] = {"max_nodes_per_hour": 1, "max_group_percent": 100}
    put_rules(rules)
    batch_infer()
    run_sweep(runtime, 0)
    fingerprint = unhealthy_fingerprint(runtime)
    pending = approvals.get(CLUSTER, fingerprint)
    assert pending is not None
    # another action took the hour's only node
    assert store.take_budget(CLUSTER, "other-group", 1, per_hour=1, group_limit=1, now=at(1))
    approvals.decide(CLUSTER, fingerprint, pending.id, True, APPROVER, at(2))
    delivered(stack)
    run_sweep(runtime, 3)
    assert hyperpod.calls == []
    assert [a.get("outcome") for a in store.audits(CLUSTER)] == ["skipped: budget spent"]
    kept = approvals.get(CLUSTER, fingerprint)
    assert kept is not None and kept.status == "approved"  # not used up by a refused budget
    run_sweep(runtime, 55)  # the budget frees at 61: still waiting for it
    assert hyperpod.calls == []
    # the approval expired meanwhile (1h): asked for anew, nothing done
    run_sweep(runtime, 62)
    assert hyperpod.calls == []
    renewed = approvals.get(CLUSTER, fingerprint)
    assert renewed is not None and renewed.id != pending.id and renewed.status == "pending"
    approvals.decide(CLUSTER, fingerprint, renewed.id, True, APPROVER, at(63))
    run_sweep(runtime, 64)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]


# --- ApprovalStore alone -----------------------------------------------------------------------------------------


@pytest.fixture
def table(aws) -> ApprovalStore:
    client = boto3.client("dynamodb")
    create_table(client, "ledger")
    return ApprovalStore(client, "ledger")


def ask(table: ApprovalStore, minute: float = 0, replaces: str | None = None, expires: float = 60):
    approval = table.request(CLUSTER, FINGERPRINT, action=f"reboot {NODE}",
                             requests=({"ClusterName": CLUSTER, "NodeIds": [NODE]},), nodes=(NODE,),
                             first_seen=T0, now=at(minute), expires_in=timedelta(minutes=expires), replaces=replaces)
    assert approval is not None
    return approval


def test_request_get_decide_use(table):
    asked = ask(table)
    assert table.get(CLUSTER, FINGERPRINT) == asked
    assert (asked.status_at(at(59)), asked.status_at(at(60))) == ("pending", "expired")
    ref = asked.ref(at(1))
    assert (ref.id, ref.action, ref.status, ref.expires_at) == (asked.id, f"reboot {NODE}", "pending", at(60))
    approved = table.decide(CLUSTER, FINGERPRINT, asked.id, True, APPROVER, at(5))
    assert (approved.status, approved.decided_by, approved.decided_at) == ("approved", APPROVER, at(5))
    assert table.get(CLUSTER, FINGERPRINT) == approved
    assert table.use(CLUSTER, FINGERPRINT, asked.id, at(6)) is True
    assert table.use(CLUSTER, FINGERPRINT, asked.id, at(6)) is False
    stored = table.get(CLUSTER, FINGERPRINT)
    assert stored is not None and stored.status == "used"


def test_refusals_and_idempotence(table):
    asked = ask(table)
    with pytest.raises(ApprovalRefused, match="superseded"):
        table.decide(CLUSTER, FINGERPRINT, "not-this-one", True, APPROVER, at(1))
    with pytest.raises(ApprovalRefused, match="no such approval"):
        table.decide(CLUSTER, "f" * 20, asked.id, True, APPROVER, at(1))
    table.decide(CLUSTER, FINGERPRINT, asked.id, False, APPROVER, at(2))
    # the same decision by the same person again: as it is (a double click, a redelivered interaction)
    again = table.decide(CLUSTER, FINGERPRINT, asked.id, False, APPROVER, at(3))
    assert (again.status, again.decided_at) == ("rejected", at(2))
    with pytest.raises(ApprovalRefused, match=f"already rejected by {APPROVER} at 2026-11-24T12:02:00Z"):
        table.decide(CLUSTER, FINGERPRINT, asked.id, True, APPROVER, at(3))
    with pytest.raises(ApprovalRefused, match=f"already rejected by {APPROVER}"):
        table.decide(CLUSTER, FINGERPRINT, asked.id, False, OTHER, at(3))
    assert table.use(CLUSTER, FINGERPRINT, asked.id, at(4)) is False  # rejected: never used
    # a new request replaces it, only on the condition that it is still the one read
    assert table.request(CLUSTER, FINGERPRINT, action="x", requests=(), nodes=(), first_seen=T0, now=at(5),
                         expires_in=timedelta(hours=1), replaces=None) is None
    newer = ask(table, 5, replaces=asked.id)
    assert table.request(CLUSTER, FINGERPRINT, action="x", requests=(), nodes=(), first_seen=T0, now=at(6),
                         expires_in=timedelta(hours=1), replaces=asked.id) is None
    # approved, then expired before it was used: use refuses
    table.decide(CLUSTER, FINGERPRINT, newer.id, True, APPROVER, at(6))
    assert table.use(CLUSTER, FINGERPRINT, newer.id, at(65)) is False
    with pytest.raises(ApprovalRefused, match="expired at"):
        table.decide(CLUSTER, FINGERPRINT, newer.id, True, APPROVER, at(66))


def test_concurrent_clicks_decide_once_and_the_action_is_used_once(table):
    asked = ask(table)
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(8)

    def click(user: str, approve: bool) -> None:
        barrier.wait()
        try:
            outcomes[user] = table.decide(CLUSTER, FINGERPRINT, asked.id, approve, user, at(1)).status
        except ApprovalRefused as refused:
            outcomes[user] = refused.reason

    users = [(f"U0{n:03d}", n % 2 == 0) for n in range(8)]
    threads = [threading.Thread(target=click, args=user) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = table.get(CLUSTER, FINGERPRINT)
    assert stored is not None and stored.decided_by is not None
    winners = [user for user, outcome in outcomes.items() if outcome in ("approved", "rejected")]
    assert winners == [stored.decided_by]
    assert all(outcome.startswith(f"already {stored.status} by {stored.decided_by}")
               for user, outcome in outcomes.items() if user not in winners)
    if stored.status != "approved":
        table.decide(CLUSTER, FINGERPRINT, ask(table, 2, replaces=asked.id).id, True, APPROVER, at(3))
        stored = table.get(CLUSTER, FINGERPRINT)
        assert stored is not None
    used: list[bool] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        used.append(table.use(CLUSTER, FINGERPRINT, stored.id, at(4)))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(used) == [False] * 7 + [True]
