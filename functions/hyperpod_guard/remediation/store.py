"""Remediation state in the ledger table: per-alert backoff, 60-minute budgets, and the audit trail.

| item     | pk                  | sk                                  |
|----------|---------------------|-------------------------------------|
| backoff  | `CLUSTER#<cluster>` | `REMEDIATION#<fingerprint>`         |
| budget   | `CLUSTER#<cluster>` | `BUDGET` / `BUDGET#<group>`         |
| audit    | `CLUSTER#<cluster>` | `AUDIT#<time>#<id>`                 |
| node     | `CLUSTER#<cluster>` | `NODEACTION#<node>`: when it was last rebooted/replaced |

A budget item holds the takes of the last 60 minutes (`takes`: id, at, nodes) and a `version`
that changes on every write: a take reads the cluster's and the group's item, checks the sum,
and writes both on condition that neither changed since (optimistic, so concurrent Lambdas
never count past a limit).
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from ..timeutil import isoformat, parse_timestamp

AUDIT_RETENTION = timedelta(days=90)
#: a node's last action is remembered as long as a report can be replayed (SQS keeps 14 days)
NODE_ACTION_RETENTION = timedelta(days=15)
_NODE_ACTION = "NODEACTION#"
#: how long one invocation holds the right to act on an alert
ATTEMPT_LEASE = timedelta(minutes=10)
#: a budget counts the nodes acted on in the last BUDGET_WINDOW (sliding, not per clock hour)
BUDGET_WINDOW = timedelta(minutes=60)
#: read-check-write rounds when other invocations change a budget between our read and our write;
#: every lost round is someone else's successful write, so this bounds contention, not progress
BUDGET_ATTEMPTS = 10
#: The IAM actions RemediationStore's calls from the functions need on the table (the stack grants
#: exactly these; a test records the calls on moto and compares). Transactions are authorised per
#: item: TransactGetItems' Get as GetItem, TransactWriteItems' Update as UpdateItem; node_actions()
#: is a Query (audits(), also a Query, serves tests and operators, not the functions).
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")


@dataclass(frozen=True)
class Attempt:
    """An alert's remediation history, as a claim to act on it returns it."""

    failures: int
    #: when an action on it was last made news of its own (None: never)
    reported_at: datetime | None


def _key(cluster: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": sk}}


def _failed_condition(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    reasons = exc.response.get("CancellationReasons") or []
    return code == "ConditionalCheckFailedException" or (
        code == "TransactionCanceledException" and any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    )


def _contended(exc: ClientError) -> bool:
    """The budget changed under us (version condition) or another transaction held it: read again."""
    reasons = exc.response.get("CancellationReasons") or []
    return exc.response["Error"]["Code"] == "TransactionCanceledException" and any(
        r.get("Code") in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons)


class BudgetContention(RuntimeError):
    """BUDGET_ATTEMPTS rounds in a row lost to concurrent writers: nothing was counted."""


@dataclass(frozen=True)
class Take:
    """What take_budget did: counted the take `id` (truthy; hand it to refund), or refused it
    (falsy) with `retry_at`, when enough counted nodes leave the window for it to fit."""
    id: str | None
    retry_at: datetime | None = None

    def __bool__(self) -> bool:
        return self.id is not None


class _Entry(NamedTuple):
    id: str
    at: datetime
    nodes: int


@dataclass
class _Budget:
    """One budget item as read: its entries still inside the window, oldest first."""
    sk: str
    version: str | None  # None: no item yet
    entries: list[_Entry]

    @classmethod
    def parse(cls, sk: str, item: dict[str, Any] | None, now: datetime) -> _Budget:
        item = item or {}
        entries = [_Entry(m["M"]["id"]["S"], datetime.fromisoformat(m["M"]["at"]["S"]), int(m["M"]["nodes"]["N"]))
                   for m in item.get("takes", {"L": []})["L"]]
        # pruning on read (and so on every write) keeps the item at most `limit` entries long
        return cls(sk, item.get("version", {}).get("S"),
                   sorted((e for e in entries if e.at > now - BUDGET_WINDOW), key=lambda e: e.at))

    def used(self) -> int:
        return sum(e.nodes for e in self.entries)

    def room_at(self, nodes: int, limit: int, now: datetime) -> datetime:
        """When `nodes` more fit under `limit`, as the oldest entries leave the window."""
        used, at = self.used(), now
        for entry in self.entries:
            if used + nodes <= limit:
                break
            used, at = used - entry.nodes, entry.at + BUDGET_WINDOW
        return at


class RemediationStore:
    def __init__(self, table_name: str, dynamodb: Any):
        self.table_name = table_name
        self.dynamodb = dynamodb

    def claim(self, cluster: str, fingerprint: str, now: datetime, observed_at: datetime) -> Attempt | None:
        """The right to act on this alert now, for the observation made at `observed_at`: not in
        backoff, nobody else acting, and that observation (or a newer one) not acted on yet.
        Returns what the attempt needs to know, or None."""
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name, Key=_key(cluster, f"REMEDIATION#{fingerprint}"),
                UpdateExpression="SET next_attempt = :lease", ReturnValues="ALL_NEW",
                ConditionExpression="(attribute_not_exists(next_attempt) OR next_attempt <= :now) "
                                    "AND (attribute_not_exists(acted_on) OR acted_on < :observed)",
                ExpressionAttributeValues={":lease": {"S": isoformat(now + ATTEMPT_LEASE)},
                                           ":now": {"S": isoformat(now)},
                                           ":observed": {"S": isoformat(observed_at)}},
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return None
            raise
        item = response["Attributes"]
        reported = item.get("reported_at", {}).get("S")
        return Attempt(int(item.get("failures", {"N": "0"})["N"]), parse_timestamp(reported) if reported else None)

    def settle(self, cluster: str, fingerprint: str, next_attempt: datetime, failures: int, *,
               acted_on: datetime | None = None, reported_at: datetime | None = None) -> None:
        """After an attempt: when to try again; `acted_on`, the observation an action (or a dry
        run) used up; `reported_at`, when it was last made news of its own."""
        expression = "SET next_attempt = :next, failures = :failures, expires_at = :exp"
        values = {
            ":next": {"S": isoformat(next_attempt)}, ":failures": {"N": str(failures)},
            ":exp": {"N": str(int((next_attempt + timedelta(days=7)).timestamp()))},
        }
        if acted_on:
            expression += ", acted_on = :acted"
            values[":acted"] = {"S": isoformat(acted_on)}
        if reported_at:
            expression += ", reported_at = :reported"
            values[":reported"] = {"S": isoformat(reported_at)}
        self.dynamodb.update_item(
            TableName=self.table_name, Key=_key(cluster, f"REMEDIATION#{fingerprint}"),
            UpdateExpression=expression, ExpressionAttributeValues=values,
        )

    def take_budget(self, cluster: str, group: str | None, nodes: int, *, per_hour: int, group_limit: int,
                    now: datetime) -> Take:
        """Atomically count `nodes` against the cluster's and the group's budgets of the last 60
        minutes; refused (nothing counted) when either would exceed its limit. Uncontended: one
        TransactGetItems and, if granted, one TransactWriteItems."""
        limits = {"BUDGET": per_hour, **({f"BUDGET#{group}": group_limit} if group else {})}
        if any(nodes > limit for limit in limits.values()):
            return Take(None, now + BUDGET_WINDOW)  # never fits; look again when the rules may have changed
        entry = _Entry(uuid.uuid4().hex, now, nodes)
        for _ in range(BUDGET_ATTEMPTS):
            budgets = self._budgets(cluster, list(limits), now)
            if any(b.used() + nodes > limits[b.sk] for b in budgets):
                return Take(None, max(b.room_at(nodes, limits[b.sk], now) for b in budgets))
            if self._replace(cluster, [(b, [*b.entries, entry]) for b in budgets], now):
                return Take(entry.id)
        raise BudgetContention(f"budget of {cluster}: {BUDGET_ATTEMPTS} concurrent writes in a row")

    def refund(self, cluster: str, group: str | None, nodes: int, take: Take, *, now: datetime) -> None:
        """Give back `nodes` of `take` that were not acted on (the API refused the request), so
        that a retry is not refused for a budget nobody used. Only that take's entry shrinks, and
        only while it is in the window (after that it no longer counts anyway)."""
        if nodes <= 0 or not take:
            return
        sks = ["BUDGET"] + ([f"BUDGET#{group}"] if group else [])
        for _ in range(BUDGET_ATTEMPTS):
            budgets = [b for b in self._budgets(cluster, sks, now) if any(e.id == take.id for e in b.entries)]
            if not budgets:
                return
            shrunk = [(b, [e._replace(nodes=e.nodes - nodes) if e.id == take.id else e for e in b.entries])
                      for b in budgets]
            if self._replace(cluster, [(b, [e for e in entries if e.nodes > 0]) for b, entries in shrunk], now):
                return
        raise BudgetContention(f"budget of {cluster}: {BUDGET_ATTEMPTS} concurrent writes in a row")

    def _budgets(self, cluster: str, sks: list[str], now: datetime) -> list[_Budget]:
        # one call, strongly consistent, and both items as of the same moment
        response = self.dynamodb.transact_get_items(TransactItems=[
            {"Get": {"TableName": self.table_name, "Key": _key(cluster, sk)}} for sk in sks])
        return [_Budget.parse(sk, r.get("Item"), now) for sk, r in zip(sks, response["Responses"], strict=True)]

    def _replace(self, cluster: str, changes: list[tuple[_Budget, list[_Entry]]], now: datetime) -> bool:
        """Write each budget's new entries if nobody wrote it since we read it; False when someone did."""
        items = []
        for budget, entries in changes:
            # TTL: once its newest take has left the window, an idle cluster's item goes
            newest = max([now, *(e.at for e in entries)])
            values: dict[str, Any] = {
                ":takes": {"L": [{"M": {"id": {"S": e.id}, "at": {"S": isoformat(e.at)}, "nodes": {"N": str(e.nodes)}}}
                                 for e in entries]},
                # random, not a counter: an item that TTL deleted and that was created again can never
                # show a version that someone read before
                ":version": {"S": uuid.uuid4().hex},
                ":exp": {"N": str(int((newest + BUDGET_WINDOW).timestamp()) + 1)},
            }
            if budget.version is None:
                condition = "attribute_not_exists(version)"
            else:
                condition, values[":seen"] = "version = :seen", {"S": budget.version}
            items.append({"Update": {
                "TableName": self.table_name, "Key": _key(cluster, budget.sk), "ConditionExpression": condition,
                "UpdateExpression": "SET takes = :takes, version = :version, expires_at = :exp",
                "ExpressionAttributeValues": values,
            }})
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _contended(exc):
                time.sleep(random.uniform(0, 0.05))  # noqa: S311 - jitter, so that losers do not collide again in step
                return False
            raise
        return True

    def node_actions(self, cluster: str) -> dict[str, datetime]:
        """When each node of the cluster was last rebooted or replaced, by node id (one Query)."""
        response = self.dynamodb.query(
            TableName=self.table_name, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :node)",
            ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":node": {"S": _NODE_ACTION}},
        )
        return {item["sk"]["S"][len(_NODE_ACTION):]: parse_timestamp(item["at"]["S"])  # type: ignore[misc]
                for item in response["Items"]}

    def acted_on_nodes(self, cluster: str, nodes: list[str], now: datetime) -> None:
        """Remember that `nodes` were acted on at `now`: a report made before that is not a reason to act again."""
        expires = {"N": str(int((now + NODE_ACTION_RETENTION).timestamp()))}
        for node in nodes:
            self.dynamodb.put_item(TableName=self.table_name, Item={
                **_key(cluster, f"{_NODE_ACTION}{node}"), "at": {"S": isoformat(now)}, "expires_at": expires})

    def audit(self, cluster: str, now: datetime, **record: Any) -> None:
        """One audit record: who, what, when, the request and the response (or the error)."""
        item = {
            **_key(cluster, f"AUDIT#{isoformat(now)}#{uuid.uuid4().hex[:8]}"),
            "at": {"S": isoformat(now)},
            "expires_at": {"N": str(int((now + AUDIT_RETENTION).timestamp()))},
        }
        for name, value in record.items():
            if value is None:
                continue
            item[name] = {"S": value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)}
        self.dynamodb.put_item(TableName=self.table_name, Item=item)

    def audits(self, cluster: str) -> list[dict[str, str]]:
        response = self.dynamodb.query(
            TableName=self.table_name, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
            ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":audit": {"S": "AUDIT#"}},
        )
        return [{k: next(iter(v.values())) for k, v in item.items()} for item in response["Items"]]


def group_limit(target_count: int | None, percent: float) -> int:
    """At most `percent` of the group per hour, but at least one node (else nothing could ever be fixed)."""
    return max(1, math.floor((target_count or 0) * percent / 100))
