"""Remediation state in the ledger table: per-alert backoff, hourly budgets, and the audit trail.

| item     | pk                  | sk                                  |
|----------|---------------------|-------------------------------------|
| backoff  | `CLUSTER#<cluster>` | `REMEDIATION#<fingerprint>`         |
| budget   | `CLUSTER#<cluster>` | `BUDGET#<hour>` / `BUDGET#<hour>#<group>` |
| audit    | `CLUSTER#<cluster>` | `AUDIT#<time>#<id>`                 |
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..timeutil import isoformat

AUDIT_RETENTION = timedelta(days=90)
#: how long one invocation holds the right to act on an alert
ATTEMPT_LEASE = timedelta(minutes=10)


def _key(cluster: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": sk}}


def _failed_condition(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    reasons = exc.response.get("CancellationReasons") or []
    return code == "ConditionalCheckFailedException" or (
        code == "TransactionCanceledException" and any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    )


class RemediationStore:
    def __init__(self, table_name: str, dynamodb: Any):
        self.table_name = table_name
        self.dynamodb = dynamodb

    def claim(self, cluster: str, fingerprint: str, now: datetime) -> int | None:
        """The right to act on this alert now (not in backoff, nobody else acting): returns the
        number of failures so far, or None."""
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name, Key=_key(cluster, f"REMEDIATION#{fingerprint}"),
                UpdateExpression="SET next_attempt = :lease", ReturnValues="ALL_NEW",
                ConditionExpression="attribute_not_exists(next_attempt) OR next_attempt <= :now",
                ExpressionAttributeValues={":lease": {"S": isoformat(now + ATTEMPT_LEASE)}, ":now": {"S": isoformat(now)}},
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return None
            raise
        return int(response["Attributes"].get("failures", {"N": "0"})["N"])

    def settle(self, cluster: str, fingerprint: str, next_attempt: datetime, failures: int) -> None:
        self.dynamodb.update_item(
            TableName=self.table_name, Key=_key(cluster, f"REMEDIATION#{fingerprint}"),
            UpdateExpression="SET next_attempt = :next, failures = :failures, expires_at = :exp",
            ExpressionAttributeValues={
                ":next": {"S": isoformat(next_attempt)}, ":failures": {"N": str(failures)},
                ":exp": {"N": str(int((next_attempt + timedelta(days=7)).timestamp()))},
            },
        )

    def take_budget(self, cluster: str, group: str | None, nodes: int, *, per_hour: int, group_limit: int,
                    now: datetime) -> bool:
        """Atomically count `nodes` against this hour's cluster and group budgets; False when
        either would be exceeded (nothing is counted then)."""
        if nodes > per_hour or nodes > group_limit:
            return False
        hour = now.strftime("%Y-%m-%dT%H")
        expires = {"N": str(int((now + timedelta(hours=2)).timestamp()))}

        def update(sk: str, limit: int) -> dict[str, Any]:
            return {"Update": {
                "TableName": self.table_name, "Key": _key(cluster, sk),
                "UpdateExpression": "ADD nodes :n SET expires_at = :exp",
                "ConditionExpression": "attribute_not_exists(nodes) OR nodes <= :room",
                "ExpressionAttributeValues": {":n": {"N": str(nodes)}, ":room": {"N": str(limit - nodes)}, ":exp": expires},
            }}

        items = [update(f"BUDGET#{hour}", per_hour)]
        if group:
            items.append(update(f"BUDGET#{hour}#{group}", group_limit))
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def refund(self, cluster: str, group: str | None, nodes: int, *, now: datetime) -> None:
        """Give back `nodes` that take_budget counted at `now` but that were not acted on (the
        API refused the request), so that a retry is not refused for a budget nobody used."""
        if nodes <= 0:
            return
        hour = now.strftime("%Y-%m-%dT%H")
        sks = [f"BUDGET#{hour}"] + ([f"BUDGET#{hour}#{group}"] if group else [])
        self.dynamodb.transact_write_items(TransactItems=[{"Update": {
            "TableName": self.table_name, "Key": _key(cluster, sk), "UpdateExpression": "ADD nodes :n",
            "ConditionExpression": "attribute_exists(nodes)", "ExpressionAttributeValues": {":n": {"N": str(-nodes)}},
        }} for sk in sks])

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
