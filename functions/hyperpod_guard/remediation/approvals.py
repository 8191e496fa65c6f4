"""Approval of remediation actions: a policy whose remediation says `approval: required` does not act
until a person approves (Slack's Approve / Reject buttons, chatops/actions.py); then the action runs
once, through the budgets and the audit (remediation/executor.py), naming the approver.

One approval per alert at a time, in the ledger table:

| item     | pk                  | sk                       |
|----------|---------------------|--------------------------|
| approval | `CLUSTER#<cluster>` | `APPROVAL#<fingerprint>` |

Its life: requested (`pending`, with an `id` and an expiry) -> `approved` or `rejected` (decide, by
one person, before it expires) -> `used` (the executor ran the approved action: at most once per
approval). A pending or approved approval not used by its expiry is `expired`. A request for the alert
replaces the one before (a click on the old one's buttons is then refused: superseded). A rejection
stands for the rest of the alert's episode: the action is not asked for again until the alert starts
anew. Every change is a conditional write, so two clicks, two evaluations or a click racing an
evaluation cannot approve twice, decide twice or act twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from botocore.exceptions import ClientError

from ..notify.message import ApprovalRef, ApprovalStatus
from ..timeutil import isoformat, parse_timestamp

_APPROVAL = "APPROVAL#"
#: an approval is kept this long after it expired (DynamoDB TTL): a late click is told why, audits see it
APPROVAL_RETENTION = timedelta(days=7)
#: a decision that keeps losing to concurrent writes of the approval is tried this often
_DECIDE_ATTEMPTS = 5
#: The IAM actions ApprovalStore's calls need on the table (the stack grants these to the functions that
#: remediate and to the actions worker): get (GetItem), request (PutItem), decide and use (UpdateItem).
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


class ApprovalRefused(Exception):
    """A decision that cannot be taken: expired, already decided (by whom), superseded or unknown."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Approval:
    """A remediation action awaiting (or given) a person's decision."""

    cluster: str
    fingerprint: str
    id: str
    #: as stored: pending, approved, rejected or used (`status_at` adds expired)
    status: ApprovalStatus
    #: what it would do, in words: "replace i-0abc, i-0def"
    action: str
    #: the exact API parameters it was asked for, one per call, and the nodes they name
    requests: tuple[dict[str, Any], ...]
    nodes: tuple[str, ...]
    #: the alert's episode it is about
    first_seen: datetime
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None

    def status_at(self, now: datetime) -> ApprovalStatus:
        """The status at `now`: a pending or approved approval past its expiry is expired."""
        if self.status in ("pending", "approved") and self.expires_at <= now:
            return "expired"
        return self.status

    def ref(self, now: datetime) -> ApprovalRef:
        """As a message carries it (Slack renders the buttons of a pending one)."""
        return ApprovalRef(id=self.id, action=self.action, expires_at=self.expires_at, status=self.status_at(now),
                           decided_by=self.decided_by)


def _key(cluster: str, fingerprint: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": f"{_APPROVAL}{fingerprint}"}}


def _fixed(moment: datetime) -> dict[str, str]:
    """A time of fixed width (microseconds always), so that a condition's string order is the time order."""
    return {"S": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def _time(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return parse_timestamp(value) if value else None


def _from_item(item: dict[str, Any]) -> Approval:
    return Approval(
        cluster=item["cluster"]["S"], fingerprint=item["fingerprint"]["S"], id=item["id"]["S"],
        status=cast("ApprovalStatus", item["status"]["S"]), action=item["action"]["S"],
        requests=tuple(json.loads(item["requests"]["S"])), nodes=tuple(json.loads(item["nodes"]["S"])),
        first_seen=_time(item, "first_seen"), requested_at=_time(item, "requested_at"),  # type: ignore[arg-type]
        expires_at=_time(item, "approval_expires"),  # type: ignore[arg-type]
        decided_by=item.get("decided_by", {}).get("S"), decided_at=_time(item, "decided_at"),
    )


def _failed_condition(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class ApprovalStore:
    def __init__(self, client: Any, table: str):
        self.client = client
        self.table = table

    def get(self, cluster: str, fingerprint: str) -> Approval | None:
        """The alert's approval (the latest requested), whatever its status; None when there is none."""
        key = _key(cluster, fingerprint)
        item = self.client.get_item(TableName=self.table, ConsistentRead=True, Key=key).get("Item")
        return _from_item(item) if item else None

    def request(self, cluster: str, fingerprint: str, *, action: str, requests: tuple[dict[str, Any], ...],
                nodes: tuple[str, ...], first_seen: datetime, now: datetime, expires_in: timedelta,
                replaces: str | None) -> Approval | None:
        """Ask for approval of an action (pending until `now + expires_in`), replacing the approval
        `replaces` (the id read; None: there was none). None when the alert's approval changed since
        it was read (another request, or a decision): read it again."""
        approval = Approval(cluster, fingerprint, uuid.uuid4().hex[:12], "pending", action, requests, nodes,
                            first_seen, now, now + expires_in)
        item = {
            **_key(cluster, fingerprint), "cluster": {"S": cluster}, "fingerprint": {"S": fingerprint},
            "id": {"S": approval.id}, "status": {"S": approval.status}, "action": {"S": action},
            "requests": {"S": json.dumps(list(requests), sort_keys=True)}, "nodes": {"S": json.dumps(list(nodes))},
            "first_seen": {"S": isoformat(first_seen)}, "requested_at": {"S": isoformat(now)},
            "approval_expires": _fixed(approval.expires_at),
            "expires_at": {"N": str(int((approval.expires_at + APPROVAL_RETENTION).timestamp()))},
        }
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if replaces is not None:
            condition = {"ConditionExpression": "id = :replaces",
                         "ExpressionAttributeValues": {":replaces": {"S": replaces}}}
        try:
            self.client.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as exc:
            if _failed_condition(exc):
                return None
            raise
        return approval

    def decide(self, cluster: str, fingerprint: str, approval_id: str, approve: bool, by: str,
               now: datetime) -> Approval:
        """`by` approves or rejects the approval `approval_id` of the alert. The same decision by the
        same person again returns it as it is (a click twice, a redelivery). Raises ApprovalRefused:
        unknown or superseded id, already decided (by whom), expired."""
        wanted: ApprovalStatus = "approved" if approve else "rejected"
        for _ in range(_DECIDE_ATTEMPTS):
            current = self.get(cluster, fingerprint)
            if current is None or current.id != approval_id:
                raise ApprovalRefused("superseded by a newer request" if current is not None
                                      else "no such approval (unknown, or it ended long ago)")
            status = current.status_at(now)
            if status != "pending":
                same = current.status in ("approved", "used") if approve else current.status == "rejected"
                if same and current.decided_by == by and status != "expired":
                    return current
                raise ApprovalRefused(_decided(current, status))
            try:
                self.client.update_item(
                    TableName=self.table, Key=_key(cluster, fingerprint),
                    UpdateExpression="SET #status = :status, decided_by = :by, decided_at = :at",
                    ConditionExpression="id = :id AND #status = :pending AND approval_expires > :now",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":status": {"S": wanted}, ":by": {"S": by}, ":at": {"S": isoformat(now)},
                                               ":id": {"S": approval_id}, ":pending": {"S": "pending"},
                                               ":now": _fixed(now)},
                )
            except ClientError as exc:
                if _failed_condition(exc):
                    continue  # decided, replaced or expired meanwhile: read it again and say which
                raise
            return replace(current, status=wanted, decided_by=by, decided_at=now)
        raise ApprovalRefused(f"{_DECIDE_ATTEMPTS} concurrent changes in a row; try again")

    def use(self, cluster: str, fingerprint: str, approval_id: str, now: datetime) -> bool:
        """Mark the approved approval used, before its action runs: True for exactly one caller, and
        only while it is approved and not expired (the action runs at most once per approval)."""
        try:
            self.client.update_item(
                TableName=self.table, Key=_key(cluster, fingerprint),
                UpdateExpression="SET #status = :used, used_at = :at",
                ConditionExpression="id = :id AND #status = :approved AND approval_expires > :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":used": {"S": "used"}, ":at": {"S": isoformat(now)},
                                           ":id": {"S": approval_id}, ":approved": {"S": "approved"},
                                           ":now": _fixed(now)},
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True


def _decided(approval: Approval, status: ApprovalStatus) -> str:
    """Why a decision on `approval` (at `status`) cannot be taken, in words."""
    if status == "expired":
        return f"expired at {isoformat(approval.expires_at)}"
    verb = {"approved": "approved", "rejected": "rejected", "used": "approved (and carried out)"}.get(status, status)
    at = f" at {isoformat(approval.decided_at)}" if approval.decided_at else ""
    return f"already {verb} by {approval.decided_by}{at}"
