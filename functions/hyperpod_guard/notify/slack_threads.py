"""Where each alert's Slack thread is (app mode), in the ledger table.

| item            | pk                  | sk                                                 |
|-----------------|---------------------|----------------------------------------------------|
| pointer         | `CLUSTER#<cluster>` | `SLACKALERT#<fingerprint>#<receiver>`              |
| episode pointer | `CLUSTER#<cluster>` | `SLACKALERT#<fingerprint>#<receiver>#<first_seen>` |
| parent          | `CLUSTER#<cluster>` | `SLACKMSG#<channel>#<ts>`                          |

A pointer says where the parent of the alert's latest episode is, for that receiver (channel, ts,
first_seen): it never goes back to an older episode. An episode pointer says where the parent of that
episode is; both are written with the parent. A message is looked up by its item's episode (`episode`):
the pointer when it is of that episode (the usual case: one read), else the episode pointer. News of an
episode a newer one superseded (held back by Lambda's retries while the next episode began) is stale: it
updates its own episode's parent, never the newer one's, and posts nothing. Pointers written before there
were episode pointers are found as the pointer of their episode until a newer episode replaces them.
A parent keeps what it shows (the notification, the newest of each item; each item's
state) with `version`, `shown`, `posted` and `gone`.

A parent's `body` is its notification and states as zlib-compressed JSON (a grouped message's items
are a few kB each; an item is at most 400 KB). Each item's state (firing / acknowledged / resolved,
who, when) carries `as_of`, the time of the evaluation (or the click) it comes from: an older state
never replaces a newer one, whatever order the SNS messages and clicks arrive in (`merge`).

Exactly once per SNS message and receiver, although a delivery is several Slack calls: each call's
success is written right after it, so a retry of the same message skips what was done.
- a parent is posted, then written with its pointers in one transaction, its `posted` naming the
  message (`<message id>#<receiver>`, delivery.Receiver.key): a retry finds the pointers, and in the
  parent its own key: nothing to post, no reply to make;
- a reply is posted, then its message's key is added to the parent's `posted`;
- new states are written first (`version` + 1, conditional on the version read: optimistic
  concurrency against another delivery or a click), then chat.update, then `shown = version`: a retry
  updates only while `shown < version`.
What is left of at-least-once is the moment between a Slack call and its record (as in webhook mode).

Pointers and parents are kept THREAD_RETENTION after their last change (TTL `expires_at`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..ledger_store import TTL_ATTRIBUTE
from ..timeutil import Timestamp, isoformat, parse_timestamp
from .message import Notification, NotificationItem

State = Literal["firing", "acknowledged", "resolved"]

POINTER, PARENT = "SLACKALERT#", "SLACKMSG#"
#: how long a thread is remembered after its last change: a repeat every 4 h keeps it; a month-old
#: alert that fires again starts a new thread (a new episode does anyway)
THREAD_RETENTION = timedelta(days=30)
#: conditional writes lost to concurrent writers (another receiver's delivery, a click) before giving up
_ATTEMPTS = 5
_TRANSACTION_LIMIT = 100
#: what ThreadStore calls on the ledger table (the stack grants exactly these). TransactWriteItems
#: is authorised per item: Put as PutItem, Update as UpdateItem.
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")


class ThreadConflict(Exception):
    """A parent kept changing under us for _ATTEMPTS writes."""


class ItemState(BaseModel):
    """One item's state on its parent message, as of `as_of`."""

    model_config = ConfigDict(frozen=True)

    state: State
    as_of: Timestamp
    #: acknowledged: by whom (a Slack user id), when, until when (None: until resolved)
    by: str | None = None
    at: Timestamp = None
    until: Timestamp = None

    def acknowledged_at(self, moment: datetime) -> bool:
        return self.state == "acknowledged" and (self.until is None or self.until > moment)


def item_state(item: NotificationItem, as_of: datetime) -> ItemState:
    """The state a notification's item shows: resolved, acknowledged (the ledger says so), or firing."""
    if item.status == "resolved":
        return ItemState(state="resolved", as_of=as_of, at=item.resolved_at or as_of)
    until = item.acknowledged_until
    if item.acknowledged_by and (until is None or until > as_of):
        return ItemState(state="acknowledged", as_of=as_of, by=item.acknowledged_by, at=item.acknowledged_at,
                         until=until)
    return ItemState(state="firing", as_of=as_of)


def _fingerprint(item: NotificationItem) -> str:
    return item.finding.fingerprint


@dataclass(frozen=True)
class AlertThread:
    """The parent message of an alert's episode for one receiver."""

    receiver: str
    channel: str
    ts: str
    first_seen: datetime | None
    fingerprint: str = ""


@dataclass(frozen=True)
class Episode:
    """Where an item's episode stands for one receiver: its parent, if it has one, and whether a newer
    episode of the alert has a parent (then the item is stale news: it updates its own parent only)."""

    thread: AlertThread | None
    superseded: bool = False


@dataclass(frozen=True)
class Parent:
    """A parent message as stored: what it shows and how far Slack shows it."""

    cluster: str
    receiver: str
    channel: str
    ts: str
    notification: Notification
    states: dict[str, ItemState]
    version: int = 1
    #: the version Slack shows (chat.update made for it, or the post)
    shown: int = 1
    #: the SNS message keys (`<message id>#<receiver>`) whose post or reply this thread has
    posted: frozenset[str] = field(default_factory=frozenset)
    #: deleted in Slack (chat.update said message_not_found): a new parent replaces it
    gone: bool = False


def merge(notification: Notification, states: dict[str, ItemState], items: Iterable[NotificationItem],
          as_of: datetime) -> tuple[Notification, dict[str, ItemState], list[NotificationItem]]:
    """`items` (from a message decided at `as_of`) onto what a parent shows: each replaces the item
    with its fingerprint unless the parent's state of it is newer. Returns the notification, the
    states and the items that were applied (the others are stale: not worth a reply either).

    An acknowledgement still running survives a newer firing state that does not carry it (the
    ledger keeps repeats back while it runs, but an escalation is still sent)."""
    shown = {_fingerprint(i): i for i in notification.items}
    states = dict(states)
    fresh = []
    for item in items:
        key = _fingerprint(item)
        current = states.get(key)
        new = item_state(item, as_of)
        if current is not None and _newer(current, new):
            continue
        if new.state == "firing" and current is not None and current.acknowledged_at(as_of):
            new = current.model_copy(update={"as_of": as_of})
        states[key] = new
        shown[key] = item
        fresh.append(item)
    sent_at = max((t for t in (notification.sent_at, as_of) if t is not None), default=None)
    return notification.model_copy(update={"items": tuple(shown.values()), "sent_at": sent_at}), states, fresh


def _newer(current: ItemState, new: ItemState) -> bool:
    """Whether the parent's `current` state of an item is newer than `new`: decided later, or resolved (a
    parent shows one episode, and its resolved is its last word: a firing decided at the same second, or
    a late retry of the episode's first message, never reopens it)."""
    if current.state == "resolved" and new.state != "resolved":
        return True
    return current.as_of is not None and new.as_of is not None and current.as_of > new.as_of


def acknowledge(states: dict[str, ItemState], fingerprint: str, by: str, at: datetime,
                until: datetime | None) -> dict[str, ItemState] | None:
    """The states with `fingerprint` acknowledged by `by` at `at`; None when nothing changes (it is
    not on the message, resolved, or already acknowledged, or its state is newer than the click)."""
    current = states.get(fingerprint)
    if current is None or current.state == "resolved" or (current.as_of is not None and current.as_of > at):
        return None
    if current.state == "acknowledged" and current.by == by and current.until == until:
        return None
    return {**states, fingerprint: ItemState(state="acknowledged", as_of=at, by=by, at=at, until=until)}


# -- storage ----------------------------------------------------------------------------------


def _pk(cluster: str) -> dict[str, str]:
    return {"S": f"CLUSTER#{cluster}"}


def _pointer_key(cluster: str, fingerprint: str, receiver: str,
                 first_seen: datetime | None = None) -> dict[str, dict[str, str]]:
    """The alert's pointer (its latest episode) for `receiver`; with `first_seen`, that episode's pointer."""
    episode = f"#{isoformat(first_seen)}" if first_seen is not None else ""
    return {"pk": _pk(cluster), "sk": {"S": f"{POINTER}{fingerprint}#{receiver}{episode}"}}


def _parent_key(cluster: str, channel: str, ts: str) -> dict[str, dict[str, str]]:
    return {"pk": _pk(cluster), "sk": {"S": f"{PARENT}{channel}#{ts}"}}


def _body(notification: Notification, states: dict[str, ItemState]) -> bytes:
    data = {"notification": notification.model_dump(mode="json"),
            "states": {key: state.model_dump(mode="json") for key, state in states.items()}}
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())


def _conditional_failed(exc: Exception) -> bool:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ThreadStore:
    """The pointers and parents of app-mode Slack messages, in the ledger table."""

    def __init__(self, client: Any, table: str):
        self.client = client
        self.table = table

    def _expires(self, now: datetime) -> dict[str, str]:
        return {"N": str(int((now + THREAD_RETENTION).timestamp()))}

    # -- reads -----------------------------------------------------------------------------

    def thread(self, cluster: str, fingerprint: str, receiver: str,
               first_seen: datetime | None = None) -> AlertThread | None:
        """The parent of the alert's latest episode for `receiver`; with `first_seen`, of that episode."""
        item = self.client.get_item(TableName=self.table, Key=_pointer_key(cluster, fingerprint, receiver, first_seen),
                                    ConsistentRead=True).get("Item")
        return self._thread(item) if item else None

    def episode(self, cluster: str, fingerprint: str, receiver: str, first_seen: datetime | None) -> Episode:
        """Where the episode first seen at `first_seen` stands for `receiver`: the pointer when it is of
        that episode (one read), else the episode's own pointer if a newer episode took the pointer. An
        item without first_seen (a message from before they carried it) has no episode to be found by."""
        latest = self.thread(cluster, fingerprint, receiver)
        if first_seen is None or latest is None or latest.first_seen is None:
            return Episode(None)
        if latest.first_seen == first_seen:
            return Episode(latest)
        if latest.first_seen < first_seen:
            return Episode(None)  # a new episode: no parent yet
        return Episode(self.thread(cluster, fingerprint, receiver, first_seen), superseded=True)

    def alert_threads(self, cluster: str, fingerprint: str) -> list[AlertThread]:
        """Every receiver's parent of each of the alert's episodes remembered (one per episode and
        receiver: its episode pointer, or the pointer when the episode has none)."""
        threads: dict[tuple[str, datetime | None], AlertThread] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sk)",
            "ExpressionAttributeValues": {":pk": _pk(cluster), ":sk": {"S": f"{POINTER}{fingerprint}#"}},
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                thread = self._thread(item)
                if thread.fingerprint != fingerprint:
                    continue
                latest = item["sk"]["S"] == _pointer_key(cluster, fingerprint, thread.receiver)["sk"]["S"]
                if not latest or (thread.receiver, thread.first_seen) not in threads:
                    threads[thread.receiver, thread.first_seen] = thread
            if "LastEvaluatedKey" not in page:
                return list(threads.values())
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _thread(item: dict[str, Any]) -> AlertThread:
        return AlertThread(item["receiver"]["S"], item["channel"]["S"], item["ts"]["S"],
                           parse_timestamp(item.get("first_seen", {}).get("S")), item["fingerprint"]["S"])

    def parent(self, cluster: str, channel: str, ts: str) -> Parent | None:
        item = self.client.get_item(TableName=self.table, Key=_parent_key(cluster, channel, ts),
                                    ConsistentRead=True).get("Item")
        if not item:
            return None
        data = json.loads(zlib.decompress(item["body"]["B"]))
        return Parent(
            cluster=cluster, receiver=item["receiver"]["S"], channel=channel, ts=ts,
            notification=Notification.model_validate(data["notification"]),
            states={key: ItemState.model_validate(value) for key, value in data["states"].items()},
            version=int(item["version"]["N"]), shown=int(item.get("shown", {}).get("N", "0")),
            posted=frozenset(item.get("posted", {}).get("SS", ())), gone=item.get("gone", {}).get("BOOL", False),
        )

    # -- writes ----------------------------------------------------------------------------

    def create(self, parent: Parent, now: datetime) -> None:
        """Write a parent just posted, and point each of its items' episodes at it: one transaction
        (the episode pointer, and the pointer unless it is at a newer episode already). Beyond a
        transaction's 100 items, the other pointers follow one by one."""
        expires = self._expires(now)
        put = {"Put": {
            "TableName": self.table, "ConditionExpression": "attribute_not_exists(sk)",
            "Item": {**_parent_key(parent.cluster, parent.channel, parent.ts), "receiver": {"S": parent.receiver},
                     "version": {"N": str(parent.version)}, "shown": {"N": str(parent.shown)},
                     "body": {"B": _body(parent.notification, parent.states)}, TTL_ATTRIBUTE: expires,
                     **({"posted": {"SS": sorted(parent.posted)}} if parent.posted else {})},
        }}
        pointers = [update for item in parent.notification.items for update in self._point(parent, item, expires)]
        first, rest = pointers[: _TRANSACTION_LIMIT - 1], pointers[_TRANSACTION_LIMIT - 1:]
        self._transact([put, *first])
        for update in rest:
            try:
                self.client.update_item(**update["Update"])
            except Exception as exc:
                if not _conditional_failed(exc):
                    raise

    def _point(self, parent: Parent, item: NotificationItem, expires: dict[str, str]) -> list[dict[str, Any]]:
        """The item's pointer and episode pointer at the parent (an item without first_seen: the pointer)."""
        first_seen = isoformat(item.first_seen) if item.first_seen else ""
        values = {":c": {"S": parent.channel}, ":t": {"S": parent.ts}, ":f": {"S": first_seen},
                  ":r": {"S": parent.receiver}, ":fp": {"S": _fingerprint(item)}, ":e": expires}
        update = {"TableName": self.table,
                  "UpdateExpression": "SET channel = :c, ts = :t, first_seen = :f, receiver = :r, fingerprint = :fp, "
                                      f"{TTL_ATTRIBUTE} = :e",
                  "ExpressionAttributeValues": values}
        pointer = {"Update": {
            **update, "Key": _pointer_key(parent.cluster, _fingerprint(item), parent.receiver),
            # ISO 8601 in UTC with a Z compares as text: an older episode never takes a newer one's pointer
            "ConditionExpression": "attribute_not_exists(first_seen) OR first_seen <= :f",
        }}
        if item.first_seen is None:
            return [pointer]
        # the episode's own: the latest parent of the episode (one that replaced a deleted one)
        return [pointer, {"Update": {
            **update, "Key": _pointer_key(parent.cluster, _fingerprint(item), parent.receiver, item.first_seen)}}]

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, dropping the pointer updates whose condition failed (newer episodes)."""
        while items:
            try:
                self.client.transact_write_items(TransactItems=items)
                return
            except Exception as exc:
                reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
                failed = {n for n, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"}
                if not failed or 0 in failed:  # the parent itself: another writer made it (a retry's twin)
                    if failed:
                        return
                    raise
                items = [item for n, item in enumerate(items) if n not in failed]

    def apply(self, cluster: str, channel: str, ts: str, items: Sequence[NotificationItem], as_of: datetime,
              now: datetime) -> tuple[Parent | None, list[NotificationItem]]:
        """`merge` the items onto the parent and write it (version + 1) if that changed anything;
        (the parent as written, the items applied). None: no such parent."""
        return self._change(cluster, channel, ts, now,
                            lambda p: self._merged(p, items, as_of))

    def acknowledge(self, cluster: str, channel: str, ts: str, fingerprint: str, by: str, at: datetime,
                    until: datetime | None) -> Parent | None:
        """Show `fingerprint` acknowledged on the parent (version + 1 if that changed anything)."""
        parent, _ = self._change(cluster, channel, ts, at, lambda p: self._acked(p, fingerprint, by, at, until))
        return parent

    @staticmethod
    def _merged(parent: Parent, items: Sequence[NotificationItem],
                as_of: datetime) -> tuple[Parent | None, list[NotificationItem]]:
        notification, states, fresh = merge(parent.notification, parent.states, items, as_of)
        if states == parent.states and notification.items == parent.notification.items:
            return None, fresh
        return replace(parent, notification=notification, states=states, version=parent.version + 1), fresh

    @staticmethod
    def _acked(parent: Parent, fingerprint: str, by: str, at: datetime,
               until: datetime | None) -> tuple[Parent | None, list[NotificationItem]]:
        states = acknowledge(parent.states, fingerprint, by, at, until)
        return (None if states is None else replace(parent, states=states, version=parent.version + 1)), []

    def _change(self, cluster: str, channel: str, ts: str, now: datetime,
                change: Any) -> tuple[Parent | None, list[NotificationItem]]:
        for _ in range(_ATTEMPTS):
            parent = self.parent(cluster, channel, ts)
            if parent is None:
                return None, []
            changed, fresh = change(parent)
            if changed is None:
                return parent, fresh
            try:
                self.client.update_item(
                    TableName=self.table, Key=_parent_key(cluster, channel, ts),
                    UpdateExpression=f"SET version = :v, body = :b, {TTL_ATTRIBUTE} = :e",
                    ConditionExpression="version = :seen",
                    ExpressionAttributeValues={":v": {"N": str(changed.version)}, ":seen": {"N": str(parent.version)},
                                               ":b": {"B": _body(changed.notification, changed.states)},
                                               ":e": self._expires(now)},
                )
            except Exception as exc:
                if _conditional_failed(exc):
                    continue  # another writer: read and merge again
                raise
            return changed, fresh
        raise ThreadConflict(f"Slack parent {channel}/{ts} kept changing: {_ATTEMPTS} writes lost")

    def mark_posted(self, cluster: str, channel: str, ts: str, key: str) -> None:
        """The SNS message `key` made its reply in this thread."""
        self.client.update_item(TableName=self.table, Key=_parent_key(cluster, channel, ts),
                                UpdateExpression="ADD posted :k", ConditionExpression="attribute_exists(sk)",
                                ExpressionAttributeValues={":k": {"SS": [key]}})

    def mark_shown(self, cluster: str, channel: str, ts: str, version: int) -> None:
        """Slack shows `version` of the parent (chat.update made)."""
        try:
            self.client.update_item(TableName=self.table, Key=_parent_key(cluster, channel, ts),
                                    UpdateExpression="SET shown = :v",
                                    ConditionExpression="attribute_exists(sk) AND (attribute_not_exists(shown) "
                                                        "OR shown < :v)",
                                    ExpressionAttributeValues={":v": {"N": str(version)}})
        except Exception as exc:
            if not _conditional_failed(exc):  # a newer version is shown already
                raise

    def mark_gone(self, cluster: str, channel: str, ts: str) -> None:
        """The parent is gone from Slack: its items' next message posts a new one."""
        self.client.update_item(TableName=self.table, Key=_parent_key(cluster, channel, ts),
                                UpdateExpression="SET gone = :t", ConditionExpression="attribute_exists(sk)",
                                ExpressionAttributeValues={":t": {"BOOL": True}})
