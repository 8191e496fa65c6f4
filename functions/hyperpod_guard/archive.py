"""The episode archive (issue 21): every alert episode once it is over, and HyperPod's own node repairs, in S3.

One JSON object per line, one S3 object per episode or fact, under keys that say what they hold, so that a
retry writes the same object again (never a second one) and Athena (the Glue tables infra/ defines) reads the
fleet's history by date partition:

| what          | key                                                                      | dt (UTC)     |
|---------------|--------------------------------------------------------------------------|--------------|
| an episode    | `episodes/dt=YYYY-MM-DD/<cluster>/<fingerprint>-<first_seen:%Y%m%dT%H%M%SZ>.json` | resolved     |
| a repair fact | `repairs/dt=YYYY-MM-DD/<cluster>/<event_id>.json`                         | the event's  |

`<cluster>` is the cluster's fleet key (fleet.py) with its '/' escaped (`ml-prod@444455556666%2Fus-east-1`): `folder`.

Who writes: the evaluation that resolves an episode after it fired (pipeline.archive; a pending alert that
cleared in its grace was no incident), then marks the alert `archived_at` (LedgerStore.mark_archived); the
sweep writes those it finds resolved and unmarked (a put that failed), without overwriting one already there
(service.archive_unarchived). The evaluator writes the node reboots and replacements that Cluster Events
report (cluster_events.REPAIRS). `ArchiveReader` reads them back by day (the report, the digest).

Pure apart from the two S3 classes and `audited_actions` (a Query of the remediation audit trail).
"""

from __future__ import annotations

import fnmatch
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from .fleet import name_of, split_key
from .ledger import AlertRecord, AlertState
from .timeutil import Timestamp, isoformat, parse_timestamp

EPISODES_PREFIX = "episodes/"
REPAIRS_PREFIX = "repairs/"
#: what the functions that write the archive need on the bucket (infra grants them on the two prefixes)
S3_ACTIONS_WRITE = ("s3:PutObject",)
#: ... and whoever reads it (the report, the digest)
S3_ACTIONS_READ = ("s3:ListBucket", "s3:GetObject")
CONTENT_TYPE = "application/x-ndjson"
#: an episode's details are kept up to this many characters of JSON (each string of them is already bounded,
#: ledger.TEXT_LIMIT; a finding that folds many others in can still be long): beyond it, the scalars only
DETAILS_LIMIT = 16_000
#: the details that say why it failed, most telling first: the HMA fault type, a failure message, a status
REASON_KEYS = ("reason", "failure_message", "health_status", "status", "group_status", "cluster_status",
               "instance_status", "software_update_status", "rollback_status")
#: the tail of an episode's key: its first seen, to the second
_FIRST_SEEN_FORMAT = "%Y%m%dT%H%M%SZ"
_GLOB = re.compile(r"[*?\[]")

ResolvedBy = Literal["hyperpod-repair", "remediation", "manual", "expired", "gone"]

#: a datetime in, ISO 8601 UTC ("…Z") out
Moment = Annotated[datetime, BeforeValidator(parse_timestamp), PlainSerializer(isoformat, return_type=str)]


class Cleared(StrEnum):
    """How an alert's clear reason (alerting._clear_reason) says it ended, when that decides what resolved it."""

    #: the cluster no longer exists: whatever else happened, it is gone
    CLUSTER_GONE = "cluster-gone"
    #: the alert's node no longer exists
    GONE = "gone"
    #: an event's finding not reported again for alerting.EVENT_FINDING_TTL
    EXPIRED = "expired"


class RemediationFact(BaseModel):
    """One remediation action of ours in an episode, as its audit record says."""

    model_config = ConfigDict(frozen=True)

    at: Moment
    #: reboot | replace | update-cluster
    action: str
    #: the audit's words: "replaced i-…", "failed: …", "skipped: budget spent", "would reboot i-… (dry run)"
    outcome: str
    dry_run: bool
    approved_by: str | None = None
    nodes: list[str] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """A real action that the API accepted (not a dry run, a failure or a skip)."""
        return not self.dry_run and not self.outcome.startswith(("failed", "skipped"))

    @classmethod
    def from_audit(cls, item: Mapping[str, str]) -> RemediationFact | None:
        """From an audit item (remediation/store.py `AUDIT#`, its values as strings: `at`, `action`, `dry_run`,
        `request`, then `response`, `error` or `outcome`, and `approved_by`); None when it is not one."""
        from .remediation.actions import DONE  # only when there are audits to read

        at, action = parse_timestamp(item.get("at")), item.get("action")
        if at is None or not action:
            return None
        dry_run = item.get("dry_run") == "true"
        request, response = _json(item.get("request")), _json(item.get("response"))
        nodes = [str(n) for n in (request.get("NodeIds") or [])]
        if item.get("outcome"):
            outcome = item["outcome"]
        elif item.get("error"):
            outcome = f"failed: {item['error']}"
        elif dry_run:
            outcome = f"would {action} {', '.join(nodes)} (dry run)" if nodes else f"would {action} (dry run)"
        else:
            nodes = [str(n) for n in response.get("Successful", nodes)]
            outcome = f"{DONE[action]} {', '.join(nodes)}" if action in DONE else f"called {item.get('operation')}"
        return cls(at=at, action=action, outcome=outcome, dry_run=dry_run, approved_by=item.get("approved_by"),
                   nodes=nodes)


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class RepairFact(BaseModel):
    """HyperPod's own repair of a node, from a Cluster Event (cluster_events.REPAIRS)."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    account: str | None = None
    region: str | None = None
    event_id: str
    at: Moment
    instance_group: str | None = None
    node: str | None = None
    kind: Literal["reboot", "replacement"]
    phase: Literal["started", "completed", "failed"]
    description: str = ""


class Episode(BaseModel):
    """One alert episode: from first seen to resolved (or open), what it was, and what ended it."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = 1
    fingerprint: str
    cluster: str
    account: str | None = None
    region: str | None = None
    policy: str
    condition: str
    severity: str
    instance_group: str | None = None
    node: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    first_seen: Moment
    fired_at: Timestamp = None
    resolved_at: Timestamp = None
    open: bool
    #: resolved_at - (fired_at or first_seen), never negative; None while open
    duration_seconds: float | None = None
    #: None while open
    resolved_by: ResolvedBy | None = None
    #: why it cleared, in words ("the condition cleared", "node i-… no longer exists")
    resolution: str | None = None
    summary: str
    #: the top failure reason: the HMA fault type, a failure message or a status (REASON_KEYS)
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    actions: list[RemediationFact] = Field(default_factory=list)
    acknowledged_by: str | None = None

    @classmethod
    def from_record(cls, record: AlertRecord, *, now: datetime, cluster: str | None = None,
                    account: str | None = None, region: str | None = None, tags: Mapping[str, str] | None = None,
                    actions: Iterable[RemediationFact] = (), cleared: Cleared | None = None,
                    repairs: Iterable[RepairFact] = (), resolution: str | None = None) -> Episode:
        """The episode of `record` as of `now` (an open record: `open`, nothing resolved). `actions`: our
        remediation in the episode (audited_actions); `cleared`: how its clear reason ended it (pipeline);
        `repairs`: HyperPod's repairs of its node that the caller knows of; `resolution`: the clear reason in
        words (default: read from the record's last transition)."""
        actions = sorted(actions, key=lambda a: a.at)
        resolved = record.state is AlertState.RESOLVED
        resolved_at = (record.resolved_at or now) if resolved else None
        start = record.fired_at or record.first_seen
        return cls(
            fingerprint=record.fingerprint, cluster=cluster or record.cluster, account=account, region=region,
            policy=record.policy, condition=record.condition, severity=record.severity.value,
            instance_group=record.instance_group, node=record.node, tags=dict(tags or {}),
            first_seen=record.first_seen, fired_at=record.fired_at, resolved_at=resolved_at, open=not resolved,
            duration_seconds=max(0.0, (resolved_at - start).total_seconds()) if resolved_at else None,
            resolved_by=resolved_by(record, actions, cleared, repairs) if resolved else None,
            resolution=(resolution or clear_words(record.reason)) if resolved else None,
            summary=record.summary, reason=failure_reason(record.details) or record.condition,
            details=bounded_details(record.details), actions=actions, acknowledged_by=record.acknowledged_by,
        )


def resolved_by(record: AlertRecord, actions: Iterable[RemediationFact], cleared: Cleared | None,
                repairs: Iterable[RepairFact] = ()) -> ResolvedBy:
    """What ended the episode, the first that holds: the cluster is gone; a real action of ours succeeded
    (remediation); HyperPod repaired the node (a reboot/replacement Cluster Event of it in the episode, or the
    node's NodeRecovery is Automatic with a repair action, as notify/message.next_step reads its details);
    the node is gone; an event's finding expired; else a person (or something we cannot see): manual."""
    if cleared is Cleared.CLUSTER_GONE:
        return "gone"
    if any(action.succeeded for action in actions):
        return "remediation"
    end = record.resolved_at or datetime.max.replace(tzinfo=UTC)
    if record.node and (any(r.node == record.node and record.first_seen <= r.at <= end for r in repairs)
                        or auto_repaired(record.details)):
        return "hyperpod-repair"
    if cleared is Cleared.GONE:
        return "gone"
    if cleared is Cleared.EXPIRED:
        return "expired"
    return "manual"


def auto_repaired(details: Mapping[str, Any]) -> bool:
    """The finding says HyperPod repairs its node itself: NodeRecovery set (not None) and a repair action
    that is not None (the unhealthy-node policy's `node_recovery` and `repair_action`)."""
    recovery, repair = str(details.get("node_recovery") or ""), str(details.get("repair_action") or "")
    return bool(recovery) and recovery.lower() != "none" and repair.lower() != "none"


def clear_words(reason: str) -> str | None:
    """The clear reason of a resolved alert's last transition (ledger.clear: "resolved: <why>; not notified: …",
    "resolved: <why> (notified before; …)", "cleared before its grace elapsed (<why>)"), or None when a later
    transition wrote over it (a notification re-sent)."""
    if reason.startswith("resolved: "):
        return re.split(r"; not notified: | \(notified before| \(another invocation", reason[len("resolved: "):])[0]
    if reason.startswith("cleared before its grace elapsed ("):
        return reason[len("cleared before its grace elapsed ("):].removesuffix(")")
    return None


def failure_reason(details: Mapping[str, Any]) -> str | None:
    """The first of REASON_KEYS the details hold, as text."""
    for key in REASON_KEYS:
        value = details.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def bounded_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """`details` as kept in the archive: whole up to DETAILS_LIMIT characters of JSON, else its scalars."""
    kept = dict(details)
    if len(json.dumps(kept, default=str, ensure_ascii=False)) <= DETAILS_LIMIT:
        return kept
    scalars = {k: v for k, v in kept.items() if isinstance(v, str | int | float | bool) or v is None}
    return {**scalars, "truncated": True}


# -- keys ------------------------------------------------------------------------------------------------


def episode_key(episode: Episode) -> str:
    """Where an episode is kept: under the day it resolved (UTC). An open episode has no place yet."""
    if episode.resolved_at is None:
        raise ValueError(f"episode {episode.fingerprint} of {episode.cluster} is open: it is archived once resolved")
    day = episode.resolved_at.astimezone(UTC).date().isoformat()
    first_seen = episode.first_seen.astimezone(UTC).strftime(_FIRST_SEEN_FORMAT)
    return f"{EPISODES_PREFIX}dt={day}/{folder(episode.cluster)}/{episode.fingerprint}-{first_seen}.json"


def repair_key(fact: RepairFact) -> str:
    day = fact.at.astimezone(UTC).date().isoformat()
    return f"{REPAIRS_PREFIX}dt={day}/{folder(fact.cluster)}/{fact.event_id}.json"


def folder(cluster: str) -> str:
    """A cluster's folder in a day: its fleet key (fleet.py), whose '/' (`name@account/region`) is escaped so that
    the key stays one path segment; a home cluster's bare name as it is."""
    return urllib.parse.quote(cluster, safe="@")


# -- S3 --------------------------------------------------------------------------------------------------


class ArchiveWriter:
    """Puts episodes and repair facts (encrypted by the bucket's default encryption)."""

    def __init__(self, s3: Any, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    def put_episode(self, episode: Episode, *, only_new: bool = False) -> bool:
        """Write the episode at its key (again: the same object). `only_new` (the sweep): leave an object
        already there as it is (S3's If-None-Match: the evaluation that wrote it knew more, e.g. the cluster's
        tags). False when that was the case."""
        return self._put(episode_key(episode), episode, only_new=only_new)

    def put_repair(self, fact: RepairFact) -> None:
        self._put(repair_key(fact), fact)

    def _put(self, key: str, model: BaseModel, *, only_new: bool = False) -> bool:
        from botocore.exceptions import ClientError

        body = (model.model_dump_json() + "\n").encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE,
                               **({"IfNoneMatch": "*"} if only_new else {}))
        except ClientError as exc:
            if only_new and exc.response["Error"]["Code"] in ("PreconditionFailed", "412"):
                return False
            raise
        return True


Progress = Callable[[int, int], None]


class ArchiveReader:
    """Reads the archive back by day: one paginated ListObjectsV2 per day's prefix, then a GetObject per object.
    `page_size`: keys per listing page (None: S3's 1,000)."""

    def __init__(self, s3: Any, bucket: str, *, page_size: int | None = None):
        self.s3 = s3
        self.bucket = bucket
        self.page_size = page_size

    def episodes(self, start: date, end: date, *, cluster_glob: str = "*",
                 on_progress: Progress | None = None) -> Iterator[Episode]:
        """The episodes that resolved from `start` to `end` (days, both included), of the clusters the glob
        matches. `on_progress(done, total)`: objects read of those listed."""
        for line in self._lines(EPISODES_PREFIX, start, end, cluster_glob, on_progress):
            yield Episode.model_validate_json(line)

    def repairs(self, start: date, end: date, *, cluster_glob: str = "*",
                on_progress: Progress | None = None) -> Iterator[RepairFact]:
        for line in self._lines(REPAIRS_PREFIX, start, end, cluster_glob, on_progress):
            yield RepairFact.model_validate_json(line)

    def _lines(self, prefix: str, start: date, end: date, cluster_glob: str,
               on_progress: Progress | None) -> Iterator[str]:
        keys = [key for day in _days(start, end) for key in self._keys(f"{prefix}dt={day.isoformat()}/", cluster_glob)]
        if on_progress:
            on_progress(0, len(keys))
        for done, key in enumerate(keys, 1):
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            yield from (line for line in body.splitlines() if line.strip())
            if on_progress:
                on_progress(done, len(keys))

    def _keys(self, day_prefix: str, cluster_glob: str) -> list[str]:
        """The day's object keys of the clusters whose NAME matches the glob (in every account and region, as
        the rules' `cluster:` globs): the listing narrowed to the glob's literal start."""
        literal = _GLOB.split(cluster_glob, 1)[0]
        keys: list[str] = []
        pages = {"PageSize": self.page_size} if self.page_size else {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=day_prefix + literal, PaginationConfig=pages):
            for entry in page.get("Contents", []):
                cluster = urllib.parse.unquote(entry["Key"][len(day_prefix):].split("/", 1)[0])
                if fnmatch.fnmatchcase(name_of(cluster), cluster_glob):
                    keys.append(entry["Key"])
        return keys


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


# -- the remediation audit trail -------------------------------------------------------------------------


def audited_actions(dynamodb: Any, table_name: str, record: AlertRecord, until: datetime) -> list[RemediationFact]:
    """Our remediation of `record`'s episode (first seen to `until`), from the audit trail (remediation/store.py:
    `AUDIT#<time>#<id>` items of the cluster): one Query of the episode's time range, its fingerprint's only."""
    # whole seconds, no zone: both below every key of that second whatever its fraction ("…00Z", "…00.5Z")
    low = f"AUDIT#{record.first_seen.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')}"
    high = f"AUDIT#{until.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')}~"
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("query").paginate(
        TableName=table_name, ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high", FilterExpression="fingerprint = :fp",
        ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{record.cluster}"}, ":low": {"S": low},
                                   ":high": {"S": high}, ":fp": {"S": record.fingerprint}},
    ):
        items += page["Items"]
    facts = (RemediationFact.from_audit({k: next(iter(v.values())) for k, v in item.items()}) for item in items)
    return [fact for fact in facts if fact is not None]


def open_episodes(records: Iterable[AlertRecord], *, now: datetime, account: str | None,
                  region: str | None) -> list[Episode]:
    """The ledger's firing alerts as episodes open up to `now` (a pending alert, which may still clear within
    its grace, is no incident yet). The report and the digest add them to what the archive holds."""
    episodes = []
    for record in records:
        if record.state is AlertState.FIRING:
            where = split_key(record.cluster)[1]  # a cluster elsewhere in a fleet: its key says where
            episodes.append(Episode.from_record(record, now=now, cluster=record.cluster, tags={}, actions=[],
                                                account=where.account if where else account,
                                                region=where.region if where else region))
    return episodes


def with_open(archived: list[Episode], still_open: Iterable[Episode]) -> list[Episode]:
    """The archived episodes and the open ones; an episode in both (resolved, its message still owed) is the
    archive's, the settled one."""
    seen = {(e.cluster, e.fingerprint, e.first_seen) for e in archived}
    return archived + [e for e in still_open if (e.cluster, e.fingerprint, e.first_seen) not in seen]
