"""Grouping: a cluster's alerts that start close together go out as one message, as Alertmanager's
group_wait / group_interval do (rules: `grouping`).

Lambda has no timer. With grouping on, an evaluation writes its notifications to the ledger as
*owed* (no claim: nobody is sending them yet) and makes sure a *flush* of the cluster is due:

- the cluster's `GROUP` item in the ledger table says when the next flush is due (`flush_at`,
  `flush_id`) and when the last one started (`last_flush`);
- the flush is a message on the work queue, delayed until it is due (SQS DelaySeconds), which the
  worker turns into `service.flush_group`: claim every owed notification of the cluster, send one
  message, confirm (pipeline.flush_owed, the same claims and conditional writes as any send).

When it is due: `group_wait` after the first owed notification of a quiet cluster; after a message,
not before `group_interval` has passed since it; but the cluster's first critical page (a critical
alert starting or escalating when no critical page went out for group_interval) pulls the flush
forward to `group_wait` from now: while people are being paged about the cluster, more critical
alerts join its next update. Exactly-once is the ledger's doing, not this module's:
a duplicate or superseded flush message finds nothing owed or another flush due; a flush whose
message was lost is `OVERDUE`, and the next evaluation that owes something (the sweep evaluates
every cluster) schedules another.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from .rules import Grouping
from .timeutil import isoformat, parse_timestamp

logger = logging.getLogger(__name__)

GROUP_SK = "GROUP"
#: a flush this far past its time was lost (its message failed for good, or never went): schedule another
OVERDUE = timedelta(minutes=15)
#: SQS holds a message back at most 15 minutes; a flush due later is re-queued when the message comes
MAX_DELAY = timedelta(minutes=15)
#: a flush message arriving this close to its time is on time (SQS delays are whole seconds)
ON_TIME = timedelta(seconds=1)
#: conditional writes lost to concurrent schedulers before giving up (they scheduled a flush: enough)
_ATTEMPTS = 3
#: what GroupStore calls on the ledger table, and FlushQueue on the work queue (the stack grants exactly these)
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
QUEUE_ACTIONS = ("sqs:SendMessage",)


class FlushGroup(BaseModel):
    """The work-queue message that sends a cluster's owed notifications (handlers/worker.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["flush-group"] = "flush-group"
    cluster: str
    flush_id: str


@dataclass(frozen=True)
class GroupState:
    """The cluster's `GROUP` item: the flush that is due, and when the last one started."""

    cluster: str
    flush_at: datetime | None = None
    flush_id: str | None = None
    last_flush: datetime | None = None
    #: when the last message with a critical page (first, escalated, repeat) went out
    last_critical: datetime | None = None
    #: what the flush's message shows of the cluster (the flush does not describe it again)
    cluster_arn: str | None = None
    tags: dict[str, str] | None = None

    def waiting(self, now: datetime) -> bool:
        """A flush is due and its message still on its way (not overdue)."""
        return self.flush_at is not None and now - self.flush_at < OVERDUE


def next_flush(state: GroupState, grouping: Grouping, now: datetime, *, critical: bool) -> datetime:
    """When the cluster's next message may go: group_wait from now for a quiet cluster or its first
    critical page (`critical`: a critical alert starts or escalates, and no critical page went out
    for group_interval), else not before group_interval since the last message."""
    soonest = now + grouping.group_wait
    paging = state.last_critical is not None and now - state.last_critical < grouping.group_interval
    if (critical and not paging) or state.last_flush is None:
        return soonest
    return max(soonest, state.last_flush + grouping.group_interval)


def _key(cluster: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CLUSTER#{cluster}"}, "sk": {"S": GROUP_SK}}


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    return value.get("S")


class GroupStore:
    """The `GROUP` items, in the ledger table."""

    def __init__(self, table_name: str, dynamodb: Any):
        self.table_name = table_name
        self.dynamodb = dynamodb

    def get(self, cluster: str) -> GroupState:
        item = self.dynamodb.get_item(TableName=self.table_name, Key=_key(cluster), ConsistentRead=True).get("Item", {})
        tags = _text(item, "tags_json")
        return GroupState(cluster, parse_timestamp(_text(item, "flush_at")), _text(item, "flush_id"),
                          parse_timestamp(_text(item, "last_flush")), parse_timestamp(_text(item, "last_critical")),
                          _text(item, "cluster_arn"), json.loads(tags) if tags else None)

    def schedule(self, seen: GroupState, flush_id: str, at: datetime, *, cluster_arn: str | None,
                 tags: dict[str, str] | None) -> bool:
        """Make `flush_id` the flush due `at`, if the item is still as `seen` (else False)."""
        values: dict[str, Any] = {":at": {"S": isoformat(at)}, ":id": {"S": flush_id}}
        updates = ["flush_at = :at", "flush_id = :id"]
        if cluster_arn:
            values[":arn"] = {"S": cluster_arn}
            updates.append("cluster_arn = :arn")
        if tags is not None:
            values[":tags"] = {"S": json.dumps(tags, sort_keys=True)}
            updates.append("tags_json = :tags")
        conditions = []
        for name, value in (("flush_id", seen.flush_id), ("last_flush", isoformat(seen.last_flush) if seen.last_flush
                                                            else None)):
            if value is None:
                conditions.append(f"attribute_not_exists({name})")
            else:
                values[f":seen_{name}"] = {"S": value}
                conditions.append(f"{name} = :seen_{name}")
        return self._update(seen.cluster, "SET " + ", ".join(updates), " AND ".join(conditions), values)

    def cancel(self, cluster: str, flush_id: str) -> None:
        """Forget the flush `flush_id` (its message could not be sent): the next scheduler starts afresh."""
        self._update(cluster, "REMOVE flush_at, flush_id", "flush_id = :id", {":id": {"S": flush_id}})

    def start(self, cluster: str, flush_id: str, now: datetime) -> bool:
        """The flush `flush_id` begins: it is no longer due, and it is the last flush from now on.
        False when another flush is due instead (this message was superseded). A flush that finds
        none due (a retry of a flush that failed after it began) begins too: sending what is owed
        is always safe, the ledger's claims make it once."""
        return self._update(cluster, "SET last_flush = :now REMOVE flush_at, flush_id",
                            "attribute_not_exists(flush_id) OR flush_id = :id",
                            {":id": {"S": flush_id}, ":now": {"S": isoformat(now)}})

    def paged(self, cluster: str, now: datetime) -> None:
        """A message with a critical page went out (next_flush: later critical alerts join updates)."""
        self.dynamodb.update_item(TableName=self.table_name, Key=_key(cluster),
                                  UpdateExpression="SET last_critical = :now",
                                  ExpressionAttributeValues={":now": {"S": isoformat(now)}})

    def _update(self, cluster: str, expression: str, condition: str, values: dict[str, Any]) -> bool:
        try:
            self.dynamodb.update_item(TableName=self.table_name, Key=_key(cluster), UpdateExpression=expression,
                                      ConditionExpression=condition, ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


class FlushQueue(Protocol):
    def send(self, flush: FlushGroup, delay: timedelta) -> None: ...


class SqsFlushQueue:
    """Flushes as delayed messages on the work queue (handlers/worker.py consumes it)."""

    def __init__(self, queue_url: str, sqs: Any = None):
        self.queue_url = queue_url
        #: None: the process's SQS client, made at the first send (most evaluations schedule nothing)
        self._sqs = sqs

    def send(self, flush: FlushGroup, delay: timedelta) -> None:
        if self._sqs is None:
            from . import aws_clients

            self._sqs = aws_clients.client("sqs")
        seconds = min(MAX_DELAY, max(delay, timedelta(0))).total_seconds()
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=flush.model_dump_json(),
                               DelaySeconds=math.ceil(seconds))


@dataclass
class Grouper:
    """Schedules the flushes of every cluster: the GROUP items and the queue that delivers them."""

    store: GroupStore
    queue: FlushQueue

    def ensure_flush(self, cluster: str, grouping: Grouping, now: datetime, *, critical: bool,
                     cluster_arn: str | None = None, tags: dict[str, str] | None = None) -> datetime | None:
        """Make sure a flush of `cluster` is due no later than its owed notifications allow; when.
        None when concurrent schedulers kept winning (one of them scheduled it)."""
        for _ in range(_ATTEMPTS):
            state = self.store.get(cluster)
            at = next_flush(state, grouping, now, critical=critical)
            if state.waiting(now) and state.flush_at is not None and state.flush_at <= at:
                return state.flush_at  # one is on its way, soon enough
            flush = FlushGroup(cluster=cluster, flush_id=uuid.uuid4().hex)
            if not self.store.schedule(state, flush.flush_id, at, cluster_arn=cluster_arn, tags=tags):
                continue
            try:
                self.queue.send(flush, at - now)
            except Exception:
                self.store.cancel(cluster, flush.flush_id)  # so that the retry of this event schedules again
                raise
            logger.info("flush of %s due at %s", cluster, isoformat(at),
                        extra={"cluster": cluster, "flush_id": flush.flush_id, "critical": critical})
            return at
        return None

    def requeue(self, flush: FlushGroup, state: GroupState, now: datetime) -> bool:
        """A flush message that came before its time (its delay is longer than SQS holds a message):
        send it again for the rest. False if it is due."""
        if state.flush_at is None or state.flush_at - now <= ON_TIME:
            return False
        self.queue.send(flush, state.flush_at - now)
        return True
