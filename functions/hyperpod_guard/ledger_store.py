"""DynamoDB storage for the alert ledger (and the idempotency records), one table.

Single-table layout (keys are strings):

| item          | pk                  | sk                              | notes                                 |
|---------------|---------------------|---------------------------------|---------------------------------------|
| alert         | `CLUSTER#<cluster>` | `ALERT#C#<fingerprint>`         | the cluster's and its groups' alerts  |
| node alert    | `CLUSTER#<cluster>` | `ALERT#N#<node>#<fingerprint>`  | a node's alerts (`<node>`: _node_part) |
| layout marker | `CLUSTER#<cluster>` | `ALERT#C#LAYOUT`                | every alert is under the keys above   |
| report mark   | `CLUSTER#<cluster>` | `ALERTMARK#<key>`               | newest report applied, per kind, scope |
| idempotency   | `IDEMPOTENCY`       | `<function>#<hash>`             | written by Powertools Idempotency     |
| silence       | `SILENCE`           | `SILENCE#<id>`                  | an ad-hoc silence (silences.py)       |
| remediation   | `CLUSTER#<cluster>` | `REMEDIATION#`, `BUDGET`, `AUDIT#`, `NODEACTION#` | remediation/store.py |
| group         | `CLUSTER#<cluster>` | `GROUP`                         | grouping.py                           |
| Slack thread  | `CLUSTER#<cluster>` | `SLACKALERT#<fp>#<rcv>[#<first seen>]` | a parent (slack_threads.py) |
| Slack message | `CLUSTER#<cluster>` | `SLACKMSG#<channel>#<ts>`       | what a parent shows (slack_threads.py)  |
| approval      | `CLUSTER#<cluster>` | `APPROVAL#<fingerprint>`        | an action awaiting approval (approvals.py) |
| backfill mark | `CLUSTER#<cluster>` | `BACKFILL`                      | Cluster Events read back (BackfillMark) |

Every alert has a `version` for optimistic concurrency. An acknowledgement (`acknowledge`, from Slack)
is a conditional UpdateItem of the alert that increments it too, so an evaluation that read the alert
before it re-reads instead of writing the acknowledgement away.

GSI `open` (sparse, keys only): `open_pk = "OPEN"`, `open_sk = "<cluster>#<fingerprint>"`, present
only while an alert is pending, firing or owes a notification: the sweep finds clusters with
open alerts (e.g. clusters that were deleted) with one Query, `hyperpod-guard alerts` the
clusters whose records to read. GSI `resolved` (sparse, all attributes): `resolved_pk =
"RESOLVED"`, `resolved_sk = "<cluster>#<fingerprint>"`, present while an alert is resolved:
`hyperpod-guard alerts --state resolved` reads them without a Scan. TTL attribute `expires_at`:
resolved alerts are kept RESOLVED_RETENTION, report marks and backfill marks MARK_RETENTION, silences
silences.SILENCE_RETENTION after they end, idempotency records as Powertools sets them.

The episode archive (archive.py): once a resolved alert's episode is in S3, `mark_archived` sets its
`archived_at`; when the put failed, how it cleared (`archive_cleared`, `archive_resolution`) instead, for the
sweep that writes it later (`unarchived_alerts`: the `resolved` index, those without `archived_at`). An
UpdateItem on the episode (first_seen, state resolved), not on the version: bookkeeping of the archive, not a
decision about the alert, so it makes no evaluation that read the alert before it re-read and decide again.
A later Put of the same episode (a resolved notification re-sent) writes the alert without them: the sweep
then finds it unarchived and puts it only if S3 does not hold it (If-None-Match), which costs one request.

Reads (issue 17): an evaluation reads what it can change (`LedgerReads`, ledger_reads.py), not the
whole cluster: the alerts without a node (one Query of `ALERT#C#`, the layout marker included),
those of the nodes it read or names (one Query of `ALERT#N#<node>#` each) and its event's report
mark (GetItem), so that a storm over N nodes costs each event the same, not O(N). The sweep and a
cluster that is gone read everything: one Query of `ALERT`, alerts and marks alike.

Alerts written before this layout are under `ALERT#<fingerprint>` (a fingerprint is 20 lowercase
hex digits, so neither `ALERT#C#` nor `ALERT#N#` is a prefix of one). A cluster without the layout
marker is read whole, and its old items are moved (a Put of the new key where none is, and a Delete
of the old one on its version, in one transaction) before the marker is written; only then do
scoped reads begin. The code before this layout cannot evaluate a cluster that has the marker (it
takes the marker for an alert and fails): during a deploy, a container still running it fails such
an evaluation and Lambda's retry runs the new code. One that read before the move and writes after
it leaves an old copy: the next whole read (the sweep) moves it, or deletes it when the current key
holds the alert already.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from .findings import SHAPE, FindingFields, Severity, shape_of
from .freshness import ReportMark
from .ledger import CLAIM_LEASE, RESOLVED_RETENTION, AlertRecord, AlertState, Decision, Reason, bounded
from .timeutil import isoformat, parse_timestamp

logger = logging.getLogger(__name__)

OPEN_INDEX = "open"
RESOLVED_INDEX = "resolved"
_TRANSACTION_LIMIT = 100
#: a confirm/release transaction cancelled by another transaction on one of its items is tried this often
_CONFLICT_ATTEMPTS = 3
_ALERT, _MARK = "ALERT#", "ALERTMARK#"
_BACKFILL = "BACKFILL"
#: the sort key prefixes of alerts without a node and of one node's alerts; `_ALERT` + a fingerprint: an old item
_CLUSTER_ALERT, _NODE_ALERT = f"{_ALERT}C#", f"{_ALERT}N#"
#: present once every alert of the cluster is under the keys above (upper case: never a fingerprint)
_LAYOUT = f"{_CLUSTER_ALERT}LAYOUT"
#: a node id used in a sort key as it is; any other (longer, or with '#' or other characters) is hashed
_PLAIN_NODE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
#: moving a cluster's old items, lost to concurrent writers, is tried this often before the read gives up
_MOVE_ATTEMPTS = 5
#: a report mark outlives what can replay its event: SQS keeps a dead letter at most 14 days
MARK_RETENTION = timedelta(days=15)
#: The IAM actions LedgerStore's calls need on the table (the stack grants exactly these; a test
#: records the calls on moto and compares). TransactWriteItems has no action of its own: IAM
#: authorises each item, Put as PutItem, Update as UpdateItem, ConditionCheck as ConditionCheckItem.
#: GetItem: an event's report mark, a backfill mark, `get` and `acknowledge`; UpdateItem: confirm/release, and
#: `acknowledge`; DeleteItem: moving an alert of the old layout (in a transaction).
TABLE_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")
#: ... and on the `open` index (open_clusters, which only the sweep calls)
OPEN_INDEX_ACTIONS = ("dynamodb:Query",)
#: ... and on the `resolved` index (unarchived_alerts: the sweep, with the episode archive on)
RESOLVED_INDEX_ACTIONS = ("dynamodb:Query",)
#: The partition key of the Slack notifier's idempotency records; the stack confines the notifier's
#: table access to it (dynamodb:LeadingKeys), so that it can neither read nor change alerts.
IDEMPOTENCY_PK = "IDEMPOTENCY"
#: What Powertools' DynamoDBPersistenceLayer (notify/delivery.py) calls on those records: put,
#: update, delete, and get when a refused put does not return the record. Declared here, not in the
#: handler, because infra imports it and must not import a handler (its Powertools Logger binds stdout).
IDEMPOTENCY_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


@dataclass(frozen=True)
class ClusterLedger:
    """What the ledger knows of one cluster (or of the part an evaluation read, LedgerReads): its
    alerts and its report marks, by fingerprint / key."""

    records: dict[str, AlertRecord] = field(default_factory=dict)
    marks: dict[str, ReportMark] = field(default_factory=dict)


@dataclass(frozen=True)
class BackfillMark:
    """How far the sweep read a Continuous-provisioning cluster's Cluster Events back (ListClusterEvents,
    service.backfill_events): every event up to `after` (its EventTime) was delivered or evaluated. Not
    under `ALERT`: an evaluation's reads never see it. Which events were delivered is in the report marks
    (a delivered Cluster Event leaves its EventTime in the mark of its scope)."""

    cluster: str
    after: datetime


@dataclass(frozen=True)
class LedgerReads:
    """Which of a cluster's alerts and report marks to read. `nodes` None: all of them. Otherwise
    the alerts without a node, those of `nodes`, and the report mark keyed `mark` (if any)."""

    nodes: frozenset[str] | None = None
    mark: str | None = None


@dataclass(frozen=True)
class Acknowledgement:
    """What LedgerStore.acknowledge did: the alert as acknowledged (`record`), or why not (`refused`:
    "the alert resolved at …", "a newer episode started at …", "no such alert", …)."""

    record: AlertRecord | None
    refused: str | None = None


#: an acknowledgement that keeps losing to concurrent writes of the alert is tried this often
_ACK_ATTEMPTS = 5


@dataclass(frozen=True)
class Unarchived:
    """A resolved alert whose episode is not in the archive yet, and how it cleared when its evaluation noted
    that (LedgerStore.mark_archived after a failed put; an archive.Cleared value, and the reason in words)."""

    record: AlertRecord
    cleared: str | None = None
    resolution: str | None = None


class LedgerConflict(Exception):
    """Another invocation changed one of the records since we read them: read and decide again."""


def _node_part(node: str) -> str:
    """A node as its alerts' sort keys name it. From the node as the record keeps it (bounded),
    so that a read by a finding's node finds the record; hashed unless plain (a node id from an
    event's text may hold '#', or be longer than a sort key)."""
    kept = bounded(node)
    if _PLAIN_NODE.fullmatch(kept):
        return kept
    return "~" + hashlib.sha256(kept.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _node_prefix(node: str) -> str:
    return f"{_NODE_ALERT}{_node_part(node)}#"


def alert_key(cluster: str, fingerprint: str, node: str | None) -> dict[str, dict[str, str]]:
    """The key of an alert: a node's alerts sort under the node, so that a read of one node finds them."""
    sk = f"{_node_prefix(node)}{fingerprint}" if node else f"{_CLUSTER_ALERT}{fingerprint}"
    return {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": sk}}


def _s(value: str | None) -> dict[str, Any]:
    return {"S": value} if value is not None else {"NULL": True}


def _t(value: datetime | None) -> dict[str, Any]:
    return _s(isoformat(value) if value else None)


#: a finding's fields are stored under their own names (SHAPE), as strings, except these
_DETAILS, _SEVERITY = "details", "severity"
_SHAPE_DEFAULTS = {f.name: f.default for f in fields(FindingFields) if f.default is not MISSING}


def _shape_to_item(record: AlertRecord) -> dict[str, dict[str, Any]]:
    item = {name: _s(value) for name, value in shape_of(record).items() if name != _DETAILS}
    item["severity"] = _s(record.severity.value)
    item["details_json"] = _s(json.dumps(record.details, ensure_ascii=False, default=str))
    return item


def _shape_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """The finding's fields of a stored alert; one missing (an item written before it existed)
    takes its default."""
    shape: dict[str, Any] = {}
    for name in SHAPE:
        value = _get(item, name)
        shape[name] = _SHAPE_DEFAULTS.get(name, "") if value is None else value
    shape[_SEVERITY] = Severity(shape[_SEVERITY])
    shape[_DETAILS] = json.loads(_get(item, "details_json") or "{}")
    return shape


def to_item(record: AlertRecord) -> dict[str, dict[str, Any]]:
    item: dict[str, dict[str, Any]] = {
        **alert_key(record.cluster, record.fingerprint, record.node),
        **_shape_to_item(record),
        "fingerprint": _s(record.fingerprint), "state": _s(record.state.value), "reported_at": _t(record.reported_at),
        "first_seen": _t(record.first_seen), "last_seen": _t(record.last_seen), "fired_at": _t(record.fired_at),
        "resolved_at": _t(record.resolved_at), "last_notified": _t(record.last_notified),
        "resolved_evidence_json": _s(json.dumps(record.resolved_evidence, ensure_ascii=False, default=str)
                                     if record.resolved_evidence is not None else None),
        "notified_severity": _s(record.notified_severity.value if record.notified_severity else None),
        "owed": _s(record.owed.value if record.owed else None), "claim_token": _s(record.claim_token),
        "claim_until": _t(record.claim_until), "reason": _s(record.reason), "version": {"N": str(record.version)},
        "acknowledged_by": _s(record.acknowledged_by), "acknowledged_at": _t(record.acknowledged_at),
        "acknowledged_until": _t(record.acknowledged_until), "owners": _names(record.owners),
    }
    if record.state is AlertState.RESOLVED:
        item["resolved_pk"] = {"S": "RESOLVED"}
        item["resolved_sk"] = {"S": f"{record.cluster}#{record.fingerprint}"}
    if record.open:
        item["open_pk"] = {"S": "OPEN"}
        item["open_sk"] = {"S": f"{record.cluster}#{record.fingerprint}"}
    elif record.resolved_at:
        item["expires_at"] = {"N": str(int((record.resolved_at + RESOLVED_RETENTION).timestamp()))}
    return item


def _get(item: dict[str, Any], key: str) -> Any:
    value = item.get(key, {"NULL": True})
    return None if "NULL" in value else next(iter(value.values()))


def from_item(item: dict[str, Any]) -> AlertRecord:
    def when(key: str) -> datetime | None:
        return parse_timestamp(_get(item, key))

    notified = _get(item, "notified_severity")
    owed = _get(item, "owed")
    return AlertRecord(
        **_shape_from_item(item),
        fingerprint=_get(item, "fingerprint"), state=AlertState(_get(item, "state")),
        first_seen=when("first_seen"), last_seen=when("last_seen"),  # type: ignore[arg-type]
        reported_at=when("reported_at"), fired_at=when("fired_at"),
        resolved_at=when("resolved_at"), last_notified=when("last_notified"),
        resolved_evidence=json.loads(evidence) if (evidence := _get(item, "resolved_evidence_json")) else None,
        notified_severity=Severity(notified) if notified else None, owed=Reason(owed) if owed else None,
        claim_token=_get(item, "claim_token"), claim_until=when("claim_until"), reason=_get(item, "reason") or "",
        acknowledged_by=_get(item, "acknowledged_by"), acknowledged_at=when("acknowledged_at"),
        acknowledged_until=when("acknowledged_until"), owners=tuple(sorted(_get(item, "owners") or ())),
        version=int(_get(item, "version") or 0),
    )


def _names(names: tuple[str, ...]) -> dict[str, Any]:
    """A string set (DynamoDB has no empty set: none is NULL)."""
    return {"SS": sorted(set(names))} if names else {"NULL": True}


def mark_to_item(mark: ReportMark, now: datetime) -> dict[str, dict[str, Any]]:
    return {
        "pk": {"S": f"CLUSTER#{mark.cluster}"}, "sk": {"S": f"{_MARK}{mark.key}"}, "cluster": _s(mark.cluster),
        "key": _s(mark.key), "time": _t(mark.time), "event_id": _s(mark.event_id), "version": {"N": str(mark.version)},
        "expires_at": {"N": str(int((now + MARK_RETENTION).timestamp()))},
    }


def mark_from_item(item: dict[str, Any]) -> ReportMark:
    return ReportMark(cluster=_get(item, "cluster"), key=_get(item, "key"), time=parse_timestamp(_get(item, "time")),  # type: ignore[arg-type]
                      event_id=_get(item, "event_id") or "", version=int(_get(item, "version") or 0))


@dataclass
class _Read:
    """What one read found: the ledger, whether the layout marker is there, and the alerts under
    keys of the old layout (with their items), which a record under the current key outranks."""

    ledger: ClusterLedger = field(default_factory=ClusterLedger)
    layout: bool = False
    old: list[tuple[AlertRecord, dict[str, Any]]] = field(default_factory=list)
    current: set[str] = field(default_factory=set)


def _parse(items: Iterable[dict[str, Any]]) -> _Read:
    read = _Read()
    for item in items:
        sk = item["sk"]["S"]
        if sk.startswith(_MARK):
            mark = mark_from_item(item)
            read.ledger.marks[mark.key] = mark
        elif sk == _LAYOUT:
            read.layout = True
        elif sk.startswith((_CLUSTER_ALERT, _NODE_ALERT)):
            record = from_item(item)
            read.ledger.records[record.fingerprint] = record
            read.current.add(record.fingerprint)
        else:
            read.old.append((from_item(item), item))
    for record, _ in read.old:
        read.ledger.records.setdefault(record.fingerprint, record)
    return read


class LedgerStore:
    def __init__(self, table_name: str, dynamodb: Any):
        self.table_name = table_name
        self.dynamodb = dynamodb

    def load(self, cluster: str) -> dict[str, AlertRecord]:
        """Every alert record of a cluster (open and recently resolved), by fingerprint, whatever
        the keys they are under. Read only (the CLI, tests); an evaluation reads with load_cluster."""
        return _parse(self._query(cluster, "ALERT")).ledger.records

    def load_cluster(self, cluster: str, reads: LedgerReads | None = None) -> ClusterLedger:
        """The alert records and report marks an evaluation decides on: those `reads` names (None:
        all of them), read consistently, every page. A cluster whose alerts are not all under the
        current keys yet (no layout marker) is read whole and its old items moved first, so that
        every record returned can be committed. Raises LedgerConflict when moving keeps losing
        to concurrent writers."""
        if reads is not None and reads.nodes is not None:
            items = self._query(cluster, _CLUSTER_ALERT)
            if any(item["sk"]["S"] == _LAYOUT for item in items):
                for node in sorted(reads.nodes):
                    items += self._query(cluster, _node_prefix(node))
                if reads.mark is not None:
                    items += self._get(cluster, f"{_MARK}{reads.mark}")
                return _parse(items).ledger
        for attempt in range(1, _MOVE_ATTEMPTS + 1):
            read = _parse(self._query(cluster, "ALERT"))  # alerts and report marks
            if read.layout and not read.old:
                return read.ledger
            try:
                self._move(cluster, read)
            except LedgerConflict:
                if attempt == _MOVE_ATTEMPTS:
                    raise
                logger.info("moving the alerts of %s to the current keys lost to a concurrent write, re-reading "
                            "(attempt %d)", cluster, attempt)
                continue
            return read.ledger  # the same records, now under their current keys
        raise AssertionError("unreachable")  # the loop returns or raises

    def _query(self, cluster: str, prefix: str) -> list[dict[str, Any]]:
        """The cluster's items whose sort key starts with `prefix`: one consistent Query, every page."""
        items: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.table_name, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":prefix": {"S": prefix}},
        ):
            items += page["Items"]
        return items

    def _get(self, cluster: str, sk: str) -> list[dict[str, Any]]:
        item = self.dynamodb.get_item(TableName=self.table_name, ConsistentRead=True,
                                      Key={"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": sk}}).get("Item")
        return [item] if item else []

    def _move(self, cluster: str, read: _Read) -> None:
        """Put each old item under its current key (unless one is there: then the current one is the
        alert, and the old copy only goes) and delete the old one on its version, both in one
        transaction; then write the layout marker, after every old item moved."""
        batch: list[dict[str, Any]] = []
        for record, item in read.old:
            delete = {"Delete": {
                "TableName": self.table_name, "Key": {"pk": item["pk"], "sk": item["sk"]},
                "ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": item["version"]},
            }}
            pair = [delete] if record.fingerprint in read.current else [
                {"Put": {"TableName": self.table_name,
                         "Item": {**item, **alert_key(cluster, record.fingerprint, record.node)},
                         "ConditionExpression": "attribute_not_exists(pk)"}}, delete]
            if len(batch) + len(pair) > _TRANSACTION_LIMIT:
                self._transact_move(batch)
                batch = []
            batch += pair
        marker = {"TableName": self.table_name, "ConditionExpression": "attribute_not_exists(pk)",
                  "Item": {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": _LAYOUT}, "layout": {"N": "2"}}}
        if batch and not read.layout and len(batch) < _TRANSACTION_LIMIT:
            self._transact_move([*batch, {"Put": marker}])
            return
        if batch:
            self._transact_move(batch)
        if not read.layout:  # nothing (more) to move: the marker alone, unless another wrote it
            try:
                self.dynamodb.put_item(**marker)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def _transact_move(self, items: list[dict[str, Any]]) -> None:
        """A move's transaction; cancelled by a concurrent writer (a condition, or another transaction
        on one of its items) it raises LedgerConflict: the caller reads again."""
        try:
            self._transact(items)
        except ClientError as exc:
            reasons = {reason.get("Code") or "None" for reason in exc.response.get("CancellationReasons") or []}
            if exc.response["Error"]["Code"] == "TransactionCanceledException" and reasons <= {
                    "None", "ConditionalCheckFailed", "TransactionConflict"}:
                raise LedgerConflict(str(exc)) from exc
            raise

    def get(self, cluster: str, fingerprint: str, node: str | None) -> AlertRecord | None:
        """One alert, by its key (a consistent GetItem); None when there is none."""
        item = self.dynamodb.get_item(TableName=self.table_name, ConsistentRead=True,
                                      Key=alert_key(cluster, fingerprint, node)).get("Item")
        return from_item(item) if item else None

    def acknowledge(self, cluster: str, fingerprint: str, node: str | None, first_seen: datetime, by: str,
                    now: datetime, until: datetime | None) -> Acknowledgement:
        """`by` (a Slack user id) acknowledges the episode of the alert that started at `first_seen`:
        no repeats until `until` (None: until it resolves). Refused when there is no such alert, it
        resolved, a newer episode started, or someone else's acknowledgement still lasts. The same user
        acknowledging again succeeds and keeps the first acknowledgement (a click twice, a redelivery).

        A conditional UpdateItem on the version read, the state (pending or firing) and the episode
        (first_seen): an evaluation writing the alert meanwhile makes it read again and decide anew."""
        for _ in range(_ACK_ATTEMPTS):
            record = self.get(cluster, fingerprint, node)
            refused = _ack_refusal(record, first_seen, by, now)
            if refused is not None or record is None:
                return Acknowledgement(None, refused or "no such alert")
            if record.acknowledged(now) and record.acknowledged_by == by:
                return Acknowledgement(record)
            acknowledged = replace(record, acknowledged_by=by, acknowledged_at=now, acknowledged_until=until,
                                   version=record.version + 1)
            try:
                self.dynamodb.update_item(
                    TableName=self.table_name, Key=alert_key(cluster, fingerprint, node),
                    UpdateExpression="SET acknowledged_by = :by, acknowledged_at = :at, "
                                     "acknowledged_until = :until, #v = #v + :one",
                    ConditionExpression="#v = :v AND #state IN (:pending, :firing) AND first_seen = :first_seen",
                    ExpressionAttributeNames={"#v": "version", "#state": "state"},
                    ExpressionAttributeValues={
                        ":by": _s(by), ":at": _t(now), ":until": _t(until), ":one": {"N": "1"},
                        ":v": {"N": str(record.version)}, ":pending": _s(AlertState.PENDING.value),
                        ":firing": _s(AlertState.FIRING.value), ":first_seen": _t(record.first_seen),
                    },
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # written meanwhile: read it again and judge anew
            return Acknowledgement(acknowledged)
        raise LedgerConflict(f"acknowledging {cluster}/{fingerprint}: {_ACK_ATTEMPTS} concurrent writes in a row")

    def report_marks(self, cluster: str) -> dict[str, ReportMark]:
        """Every report mark of the cluster, by key (one consistent Query): what the backfill checks the
        listed Cluster Events against."""
        return {mark.key: mark for mark in map(mark_from_item, self._query(cluster, _MARK))}

    def backfill_mark(self, cluster: str) -> BackfillMark | None:
        item = next(iter(self._get(cluster, _BACKFILL)), None)
        after = parse_timestamp(_get(item, "after")) if item else None
        return BackfillMark(cluster, after) if after else None

    def save_backfill_mark(self, mark: BackfillMark, now: datetime) -> None:
        """Store the mark unless a later one is stored (two sweeps of one cluster at once: the furthest
        wins; the events both read are evaluated twice, which the ledger makes harmless)."""
        # fixed width (microseconds always), so that the condition's string order is the time order
        after = {"S": mark.after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            self.dynamodb.put_item(
                TableName=self.table_name, ConditionExpression="attribute_not_exists(pk) OR #after <= :after",
                Item={"pk": {"S": f"CLUSTER#{mark.cluster}"}, "sk": {"S": _BACKFILL}, "after": after,
                      "expires_at": {"N": str(int((now + MARK_RETENTION).timestamp()))}},
                ExpressionAttributeNames={"#after": "after"}, ExpressionAttributeValues={":after": after},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def open_clusters(self) -> set[str]:
        """Clusters that have pending or firing alerts, or notifications still owed."""
        clusters: set[str] = set()
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name, IndexName=OPEN_INDEX, KeyConditionExpression="open_pk = :open",
            ExpressionAttributeValues={":open": {"S": "OPEN"}},
        ):
            # a keys-only index: the cluster is the part of open_sk before the fingerprint
            clusters.update(_get(item, "open_sk").rsplit("#", 1)[0] for item in page["Items"])
        return clusters

    def open_alerts(self, cluster_glob: str = "*") -> list[AlertRecord]:
        """Pending and firing alerts (and resolved ones still owing their notification) of the
        clusters matching the glob: the `open` index names the clusters (one paginated Query),
        then one Query per such cluster reads its records. No Scan."""
        from .policy_settings import glob_match

        records: list[AlertRecord] = []
        for cluster in sorted(c for c in self.open_clusters() if glob_match(cluster_glob, c)):
            records += [r for r in self.load(cluster).values() if r.open]
        return records

    def resolved_alerts(self, cluster_glob: str = "*") -> list[AlertRecord]:
        """Resolved alerts (kept RESOLVED_RETENTION) of the clusters matching the glob: a paginated
        Query of the `resolved` index, narrowed to the glob's literal prefix. No Scan."""
        from .policy_settings import glob_match

        prefix = cluster_glob
        for index, char in enumerate(cluster_glob):
            if char in "*?[":
                prefix = cluster_glob[:index]
                break
        else:
            prefix = f"{cluster_glob}#"  # no wildcard: exactly this cluster
        condition, values = "resolved_pk = :resolved", {":resolved": {"S": "RESOLVED"}}
        if prefix:
            condition += " AND begins_with(resolved_sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        records: list[AlertRecord] = []
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, IndexName=RESOLVED_INDEX,
                                       KeyConditionExpression=condition, ExpressionAttributeValues=values):
            records += [r for r in map(from_item, page["Items"])
                        if r.state is AlertState.RESOLVED and glob_match(cluster_glob, r.cluster)]
        return records

    def unarchived_alerts(self, limit: int | None = None) -> list[Unarchived]:
        """Resolved alerts that fired and whose episode the archive does not hold yet (no `archived_at`), at
        most `limit`: a paginated Query of the `resolved` index (the filter saves transfer, not reads)."""
        found: list[Unarchived] = []
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name, IndexName=RESOLVED_INDEX, KeyConditionExpression="resolved_pk = :resolved",
            FilterExpression="attribute_not_exists(archived_at) AND attribute_type(fired_at, :string)",
            ExpressionAttributeValues={":resolved": {"S": "RESOLVED"}, ":string": {"S": "S"}},
        ):
            for item in page["Items"]:
                record = from_item(item)
                if record.state is AlertState.RESOLVED and record.fired_at is not None:
                    found.append(Unarchived(record, _get(item, "archive_cleared"), _get(item, "archive_resolution")))
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def mark_archived(self, record: AlertRecord, now: datetime | None, *, cleared: str | None = None,
                      resolution: str | None = None) -> bool:
        """The archive holds `record`'s episode since `now` (`archived_at`); or, `now` None, it could not be
        written: how it cleared, for the sweep's retry. On the episode, not the version (see the module's
        docstring). False when the alert is no longer that resolved episode (it came back: nothing to mark)."""
        if now is not None:
            expression, values = "SET archived_at = :at", {":at": _t(now)}
        else:
            expression, values = "SET archive_cleared = :cleared, archive_resolution = :words", {
                ":cleared": _s(cleared), ":words": _s(resolution)}
        try:
            self.dynamodb.update_item(
                TableName=self.table_name, Key=alert_key(record.cluster, record.fingerprint, record.node),
                UpdateExpression=expression, ConditionExpression="first_seen = :first_seen AND #state = :resolved",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={**values, ":first_seen": _t(record.first_seen),
                                           ":resolved": _s(AlertState.RESOLVED.value)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def commit(self, decisions: Iterable[Decision], token: str, now: datetime,
               marks: Sequence[ReportMark] = ()) -> list[AlertRecord]:
        """Write every changed record and report mark, each on the condition that nobody wrote
        it since we read it; records to notify about get this invocation's claim. Returns what
        was written (with claims and new versions). Raises LedgerConflict."""
        written: list[AlertRecord] = []
        for decision in decisions:
            if not decision.changed:
                continue
            record = decision.record
            if decision.notify:
                record = replace(record, claim_token=token, claim_until=now + CLAIM_LEASE)
            written.append(replace(record, version=record.version + 1))
        # marks first: a transaction that advances a mark also holds the alerts it decided
        puts = [self._conditional_put(mark_to_item(replace(m, version=m.version + 1), now)) for m in marks]
        puts += [self._conditional_put(to_item(r)) for r in written]
        for start in range(0, len(puts), _TRANSACTION_LIMIT):
            self._transact(puts[start:start + _TRANSACTION_LIMIT])
        return written

    def _conditional_put(self, item: dict[str, Any]) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        version = int(item["version"]["N"])
        if version == 1:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#v = :v"
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":v": {"N": str(version - 1)}}
        return {"Put": put}

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self.dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            code = exc.response["Error"]["Code"]
            if code in ("TransactionCanceledException", "ConditionalCheckFailedException") and (
                not reasons or any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
            ):
                raise LedgerConflict(str(exc)) from exc
            raise

    def confirm(self, records: Iterable[AlertRecord], token: str, now: datetime,
                owners: Mapping[str, tuple[str, ...]] | None = None) -> None:
        """SNS accepted the message: record it as sent and drop the claim (if still ours). `owners`: by
        fingerprint, the receivers an owner route sent the message's item to, kept with its episode.

        While we were sending, another invocation may have committed a different owed
        notification under our claim (a resolve, an escalation, a new episode): then only
        what we sent is recorded (if it was about the same episode) and the claim dropped,
        so that the newer owed notification is sent by the next evaluation, not erased.

        Each record gets the first of these updates whose condition holds, or none: (1) sent and
        owed cleared (the same owed, state and episode: nothing newer was committed), (2) sent
        only (the same episode), (3) the claim dropped. All on the condition that the claim is
        still ours. Written in transactions of up to 100 records (_update_first)."""
        chains: list[list[dict[str, Any]]] = []
        owners = owners or {}
        for record in records:
            sent: dict[str, dict[str, Any]] = {":now": {"S": isoformat(now)}, ":sev": {"S": record.severity.value}}
            kept = tuple(sorted(set(record.owners) | set(owners.get(record.fingerprint, ()))))
            owned = ", owners = :owners" if kept != record.owners else ""
            if owned:
                sent[":owners"] = {"SS": list(kept)}
            episode = {":first_seen": _t(record.first_seen)}
            expires = (
                {":exp": {"N": str(int((now + RESOLVED_RETENTION).timestamp()))}}
                if record.state is AlertState.RESOLVED else {}
            )
            chain: list[dict[str, Any]] = []
            if record.owed is not None:
                chain.append(self._update_if_claimed(
                    record, token,
                    "SET last_notified = :now, notified_severity = :sev, #v = #v + :one" + owned
                    + (", expires_at = :exp REMOVE open_pk, open_sk," if expires else " REMOVE")
                    + " owed, claim_token, claim_until",
                    {**sent, **episode, **expires, ":owed": {"S": record.owed.value},
                     ":state": {"S": record.state.value}},
                    also="owed = :owed AND #state = :state AND first_seen = :first_seen", names={"#state": "state"},
                ))
            chain.append(self._update_if_claimed(
                record, token,
                "SET last_notified = :now, notified_severity = :sev, #v = #v + :one" + owned
                + " REMOVE claim_token, claim_until",
                {**sent, **episode}, also="first_seen = :first_seen",
            ))
            chain.append(self._release_update(record, token))
            chains.append(chain)
        self._update_first(chains)

    def release(self, records: Iterable[AlertRecord], token: str) -> None:
        """Sending failed: give up the claim so that a retry sends the owed notification."""
        self._update_first([[self._release_update(record, token)] for record in records])

    def _release_update(self, record: AlertRecord, token: str) -> dict[str, Any]:
        return self._update_if_claimed(record, token, "SET #v = #v + :one REMOVE claim_token, claim_until", {})

    def _update_if_claimed(
        self, record: AlertRecord, token: str, expression: str, values: dict[str, Any], *,
        also: str = "", names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A transaction item: the update, on the condition that the claim is still ours (and `also`)."""
        return {"Update": {
            "TableName": self.table_name, "Key": alert_key(record.cluster, record.fingerprint, record.node),
            "UpdateExpression": expression,
            "ConditionExpression": "claim_token = :token" + (f" AND {also}" if also else ""),
            "ExpressionAttributeNames": {"#v": "version", **(names or {})},
            "ExpressionAttributeValues": {":token": {"S": token}, ":one": {"N": "1"}, **values},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",  # whose claim it is now (_may_still_hold)
        }}

    def _update_first(self, chains: Sequence[Sequence[dict[str, Any]]]) -> None:
        """Apply to each item the first update of its chain whose condition holds (none if none
        does), as sequential conditional UpdateItems one item after the other would, but in
        TransactWriteItems of up to 100 items: ⌈N/100⌉ writes when every first condition holds.

        A transaction is all or nothing: when some items' conditions fail (the claim expired and
        was taken over: the new claimer decides), its CancellationReasons name them; those move on
        to the next update of their chain (or are left alone at its end) and the batch is written
        again, so that one lost claim neither leaves the others unconfirmed nor raises."""
        pending = [(index, 0) for index, chain in enumerate(chains) if chain]
        while pending:
            pending.sort()  # the same item twice (never in one transaction): in the order given
            batch: list[tuple[int, int]] = []
            later: list[tuple[int, int]] = []
            keys: set[str] = set()
            for index, step in pending:
                key = json.dumps(chains[index][step]["Update"]["Key"], sort_keys=True)
                if len(batch) < _TRANSACTION_LIMIT and key not in keys:
                    keys.add(key)
                    batch.append((index, step))
                else:
                    later.append((index, step))
            failed = self._transact_updates([chains[index][step] for index, step in batch])
            if failed:
                for position, (index, step) in enumerate(batch):
                    if position not in failed:
                        later.append((index, step))
                    elif step + 1 < len(chains[index]) and _may_still_hold(failed[position], chains[index][step]):
                        later.append((index, step + 1))
            pending = later

    def _transact_updates(self, items: list[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
        """Write the items in one transaction: the items whose condition failed (the transaction
        then wrote nothing), by position, each with what DynamoDB returned of it (None if
        nothing), or an empty dict (it wrote them all). A transaction
        cancelled only because another one was writing one of its items (TransactionConflict) is
        tried again, at most _CONFLICT_ATTEMPTS times in all; any other error is raised."""
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                self.dynamodb.transact_write_items(TransactItems=items)
                return {}
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                codes = [reason.get("Code") or "None" for reason in reasons]
                failed = {position: reason.get("Item") for position, reason in enumerate(reasons)
                          if reason.get("Code") == "ConditionalCheckFailed"}
                if len(codes) != len(items) or set(codes) - {"None", "ConditionalCheckFailed", "TransactionConflict"}:
                    raise
                if failed:
                    return failed
                if "TransactionConflict" not in codes or attempt == _CONFLICT_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")


def _ack_refusal(record: AlertRecord | None, first_seen: datetime, by: str, now: datetime) -> str | None:
    """Why `by` may not acknowledge the episode of `record` that started at `first_seen`, or None."""
    if record is None:
        return "no such alert"
    if record.first_seen > first_seen:
        return f"a newer episode started at {isoformat(record.first_seen)}"
    if record.first_seen != first_seen:
        return f"no such episode (this alert's started at {isoformat(record.first_seen)})"
    if record.state is AlertState.RESOLVED:
        return f"the alert resolved at {isoformat(record.resolved_at)}" if record.resolved_at else "the alert resolved"
    if record.acknowledged(now) and record.acknowledged_by != by:
        return f"already acknowledged by {record.acknowledged_by} at {isoformat(record.acknowledged_at)}" \
            if record.acknowledged_at else f"already acknowledged by {record.acknowledged_by}"
    return None


def _may_still_hold(current: dict[str, Any] | None, update: dict[str, Any]) -> bool:
    """Whether the next update of a chain may hold after this one's condition failed: not when the
    item as it is (if DynamoDB returned it) is no longer claimed by the token every update requires."""
    if current is None:
        return True
    return _get(current, "claim_token") == update["Update"]["ExpressionAttributeValues"][":token"]["S"]


#: The table as the stack defines it (infra/ mirrors this; the demo and tests create it from here).
TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"}
        for name in ("pk", "sk", "open_pk", "open_sk", "resolved_pk", "resolved_sk")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [{
        "IndexName": OPEN_INDEX,
        "KeySchema": [{"AttributeName": "open_pk", "KeyType": "HASH"},
                      {"AttributeName": "open_sk", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }, {
        "IndexName": RESOLVED_INDEX,
        "KeySchema": [{"AttributeName": "resolved_pk", "KeyType": "HASH"},
                      {"AttributeName": "resolved_sk", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_ATTRIBUTE = "expires_at"


def create_table(dynamodb: Any, table_name: str) -> None:
    """Create the ledger table (for local stand-ins; in AWS the stack creates it)."""
    dynamodb.create_table(TableName=table_name, **TABLE_DEFINITION)
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
