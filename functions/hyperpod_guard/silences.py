"""Ad-hoc silences: operational state an on-call person sets from the command line (`hyperpod-guard
silence add|list|expire`), kept apart from the rules-as-code silences of the rules document.

Like Alertmanager's silences (`silence/silence.go`): glob matchers on the alert's cluster (its name,
in every account and region), the cluster's account and region, policy, instance group and node,
exact matchers on the cluster's tags, an end (`until`), an author and a
comment. The evaluator applies the active ones together with the rules' silences
(`alerting.muted_reason`); a muted alert says which silence muted it:
"silenced by <author> until <time> (<id>): <comment>".

Stored in the ledger table (ledger_store.py lists the layout):

| item    | pk        | sk             | notes                                                            |
|---------|-----------|----------------|------------------------------------------------------------------|
| silence | `SILENCE` | `SILENCE#<id>` | matchers, `until`, author, comment; TTL `expires_at` (see below) |

`expires_at` is `until` + SILENCE_RETENTION. A matcher an item lacks (`account` and `region` of a
silence written before the fleet) reads back as '*'.

One partition holds them all: an evaluation reads every silence with one Query (there are few,
and TTL removes them SILENCE_RETENTION after they end). `SilenceCache` keeps them in the process
for SILENCES_MAX_AGE seconds (default 30, like the rules' cache), so an evaluation reads them at
most once and a warm container not even that; `silence expire` takes effect within that time.

The model (`AdHocSilence`, `new_silence`) is pure; `SilenceStore` is the DynamoDB access.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import HyperPodGuardError
from .findings import FindingFields
from .fleet import Location, location_of, name_of
from .policy_settings import glob_match
from .timeutil import isoformat, parse_timestamp

SILENCE_PK = "SILENCE"
_SK = "SILENCE#"
#: how long an ended silence stays listable (`silence list --expired`) before TTL removes it
SILENCE_RETENTION = timedelta(days=7)
#: seconds the evaluator keeps the silences it read (constants.SILENCES_MAX_AGE sets it)
DEFAULT_MAX_AGE = 30.0
#: The IAM actions SilenceStore's calls from the functions need on the table (active(): one Query).
#: add() and expire() (PutItem, UpdateItem) are the CLI's, made with the operator's credentials.
TABLE_ACTIONS = ("dynamodb:Query",)
MATCHERS = ("cluster", "account", "region", "policy", "instance_group", "node")


def location_matches(account: str, region: str, location: Location | None) -> bool:
    """Whether globs on a cluster's account and region hold for `location` (fleet.py); None (unknown: no
    fleet, or a home cluster's bare key with no home given) matches only '*'. The rules' matchers
    (rules.ClusterMatch, rules.SilenceMatchers) and the ad-hoc silences share it."""
    if location is None:
        return account == "*" and region == "*"
    return glob_match(account, location.account) and glob_match(region, location.region)


def place_matches(cluster: str, account: str, region: str, key: str, location: Location | None = None) -> bool:
    """Whether a matcher's cluster glob holds for a fleet key's cluster NAME (in every account, fleet.py) and its
    account and region globs for `location` (None: the key's own, if qualified). The rules' overrides, routes
    and silences and the ad-hoc silences all match a place with this."""
    return glob_match(cluster, name_of(key)) and location_matches(account, region, location or location_of(key))


class SilenceRefused(HyperPodGuardError):
    """A silence that would mute too much or nothing at all (empty matchers, an end in the past)."""


class SilenceNotFound(HyperPodGuardError):
    """No active silence has this id."""


@dataclass(frozen=True)
class AdHocSilence:
    """Mutes the alerts it matches until `until`. Globs ('*' matches anything, also no value);
    `tags`: the cluster must carry each with exactly this value (tags not read: no match)."""

    id: str
    until: datetime
    created_at: datetime
    author: str
    comment: str
    cluster: str = "*"
    #: globs on the cluster's AWS account id and region (fleet.py)
    account: str = "*"
    region: str = "*"
    policy: str = "*"
    instance_group: str = "*"
    node: str = "*"
    tags: Mapping[str, str] = field(default_factory=dict)
    #: when `silence expire` ended it early (None: it runs until `until`)
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until > now

    @property
    def empty(self) -> bool:
        """Every matcher '*' and no tags: it would mute every alert of every cluster."""
        return all(getattr(self, name) == "*" for name in MATCHERS) and not self.tags

    def applies_to_place(self, cluster: str, location: Location | None = None) -> bool:
        """The cluster glob against the key's cluster name, account and region against `location` (None: the
        key's own, if qualified; fleet.py)."""
        return place_matches(self.cluster, self.account, self.region, cluster, location)

    def applies_to_cluster(self, cluster: str, tags: Mapping[str, str] | None,
                           location: Location | None = None) -> bool:
        return self.applies_to_place(cluster, location) and self.tags_match(tags)

    def tags_match(self, tags: Mapping[str, str] | None) -> bool:
        return all(tags is not None and tags.get(key) == value for key, value in self.tags.items())

    def matches(self, record: FindingFields, tags: Mapping[str, str] | None, now: datetime,
                location: Location | None = None) -> bool:
        """`location`: where the alert's cluster lives, as applies_to_place."""
        return self.active(now) and self.applies_to_cluster(record.cluster, tags, location) and all((
            glob_match(self.policy, record.policy), glob_match(self.instance_group, record.instance_group),
            glob_match(self.node, record.node),
        ))

    def reason(self) -> str:
        """What a muted alert says (its ledger `why`, logs, `alerts`, `evaluate`)."""
        return f"silenced by {self.author} until {isoformat(self.until)} ({self.id}): {self.comment}"

    def matchers_text(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in MATCHERS if getattr(self, name) != "*"]
        parts += [f"tag:{key}={value}" for key, value in sorted(self.tags.items())]
        return " ".join(parts) or "(everything)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "matchers": {**{name: getattr(self, name) for name in MATCHERS}, "tags": dict(self.tags)},
            "until": isoformat(self.until), "created_at": isoformat(self.created_at), "author": self.author,
            "comment": self.comment, "expired_at": isoformat(self.expired_at) if self.expired_at else None,
        }

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": SILENCE_PK}, "sk": {"S": f"{_SK}{self.id}"}, "id": {"S": self.id},
            **{name: {"S": getattr(self, name)} for name in MATCHERS},
            "tags": {"M": {key: {"S": value} for key, value in self.tags.items()}},
            "until": {"S": isoformat(self.until)}, "created_at": {"S": isoformat(self.created_at)},
            "author": {"S": self.author}, "comment": {"S": self.comment},
            "expires_at": {"N": str(expires_at(self.until))},
        }
        if self.expired_at:
            item["expired_at"] = {"S": isoformat(self.expired_at)}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AdHocSilence:
        def when(key: str) -> datetime:
            moment = parse_timestamp(item[key]["S"])
            assert moment is not None, f"silence {item['id']['S']}: {key} unreadable"
            return moment

        expired = item.get("expired_at", {}).get("S")
        return cls(
            id=item["id"]["S"], until=when("until"), created_at=when("created_at"), author=item["author"]["S"],
            comment=item["comment"]["S"], **{name: item.get(name, {"S": "*"})["S"] for name in MATCHERS},
            tags={key: value["S"] for key, value in item.get("tags", {"M": {}})["M"].items()},
            expired_at=parse_timestamp(expired) if expired else None,
        )


def expires_at(until: datetime) -> int:
    return int((until + SILENCE_RETENTION).timestamp())


def new_silence(*, until: datetime, comment: str, author: str, now: datetime, cluster: str = "*", policy: str = "*",
                instance_group: str = "*", node: str = "*", tags: Mapping[str, str] | None = None,
                allow_all: bool = False, silence_id: str | None = None, account: str = "*",
                region: str = "*") -> AdHocSilence:
    """A new silence, or SilenceRefused: an end not in the future, no comment, or matchers that
    match everything (unless `allow_all`)."""
    silence = AdHocSilence(
        id=silence_id or uuid.uuid4().hex[:12], until=until, created_at=now, author=author.strip(),
        comment=comment.strip(), cluster=cluster or "*", policy=policy or "*", instance_group=instance_group or "*",
        node=node or "*", tags=dict(tags or {}), account=account or "*", region=region or "*",
    )
    if until <= now:
        raise SilenceRefused(f"the silence would end at {isoformat(until)}, which is not in the future "
                             f"(now {isoformat(now)})")
    if not silence.comment:
        raise SilenceRefused("a silence needs a comment: say why, for whoever is paged next")
    if not silence.author:
        raise SilenceRefused("a silence needs an author")
    if silence.empty and not allow_all:
        raise SilenceRefused("every matcher is '*' and no tag is given: this silences every alert of every "
                             "cluster; narrow it (--policy, --group, --node, --tag, --account, --cluster-region, a "
                             "--cluster other than '*') or pass --all")
    return silence


class SilenceStore:
    """The silences in the ledger table (client: a boto3 DynamoDB client)."""

    def __init__(self, table_name: str, dynamodb: Any):
        self.table_name = table_name
        self.dynamodb = dynamodb

    def add(self, silence: AdHocSilence) -> None:
        self.dynamodb.put_item(TableName=self.table_name, Item=silence.to_item(),
                               ConditionExpression="attribute_not_exists(pk)")

    def all(self) -> list[AdHocSilence]:
        """Every stored silence, active or ended (until TTL removes it), oldest first: one Query."""
        silences: list[AdHocSilence] = []
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name, KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues={":pk": {"S": SILENCE_PK}, ":sk": {"S": _SK}},
        ):
            silences += [AdHocSilence.from_item(item) for item in page["Items"]]
        return sorted(silences, key=lambda s: (s.created_at, s.id))

    def active(self, now: datetime) -> list[AdHocSilence]:
        return [s for s in self.all() if s.active(now)]

    def expire(self, silence_id: str, now: datetime) -> AdHocSilence:
        """End an active silence now (it stays listable with --expired); SilenceNotFound if there
        is no such silence or it has ended already."""
        from botocore.exceptions import ClientError

        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name, Key={"pk": {"S": SILENCE_PK}, "sk": {"S": f"{_SK}{silence_id}"}},
                UpdateExpression="SET #until = :now, expired_at = :now, expires_at = :exp",
                ConditionExpression="attribute_exists(pk) AND #until > :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": {"S": isoformat(now)}, ":exp": {"N": str(expires_at(now))}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise SilenceNotFound(f"no active silence {silence_id!r} (`hyperpod-guard silence list` shows them; "
                                      "--expired the ended ones)") from None
            raise
        return AdHocSilence.from_item(response["Attributes"])


class SilenceCache:
    """The stored silences as the evaluator sees them: read at most once per `max_age` seconds
    (a monotonic clock, not the evaluation's `now`), filtered by the evaluation's `now`."""

    def __init__(self, store: SilenceStore, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.max_age = max_age
        self.clock = clock
        self._read: tuple[float, list[AdHocSilence]] | None = None

    def active(self, now: datetime) -> tuple[AdHocSilence, ...]:
        if self._read is None or self.max_age <= 0 or self.clock() - self._read[0] >= self.max_age:
            self._read = (self.clock(), self.store.all())
        return tuple(s for s in self._read[1] if s.active(now))
