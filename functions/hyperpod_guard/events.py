"""The three HyperPod EventBridge detail-types as typed inputs (pydantic models).

`parse_event(raw)` returns a `StateChangeEvent`, `NodeHealthEvent` or `ClusterEvent`, an
`IgnoredEvent` (with the reason) for any other event, or raises `InvalidEventError` with a
one-line message. Tolerant where AWS may vary (unknown fields, unknown enum values, missing
envelope fields, epoch-ms or ISO times), strict where a wrong type means a broken producer.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidEventError
from .snapshot import ApiModel, ClusterSnapshot, one_line
from .timeutil import Timestamp

SOURCE = "aws.sagemaker"
STATE_CHANGE = "SageMaker HyperPod Cluster State Change"
NODE_HEALTH = "SageMaker HyperPod Cluster Node Health Event"
CLUSTER_EVENT = "SageMaker HyperPod Cluster Event"
DETAIL_TYPES = (STATE_CHANGE, NODE_HEALTH, CLUSTER_EVENT)
#: CreateCluster's ClusterName pattern: the only names DescribeCluster accepts
CLUSTER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")

#: the healthy value of HealthSummary.HealthStatus (the docs show only "Unhealthy";
#: compare case-insensitively and treat anything else as not healthy)
HEALTHY = "healthy"


class _Envelope(BaseModel):
    """EventBridge envelope (the fields of Powertools' `EventBridgeModel`) with everything but
    detail-type/source/detail optional: hand-written test events and some replays omit `id`,
    `account` or `time`. Our own, not a subclass of `EventBridgeModel`: importing that imports all of
    Powertools' `parser.models` (some 30 envelope modules, built at import: ~0.25 s of a cold start
    as deployed, benchmarks/cold_path.py) to reuse eight fields."""

    #: defer_build: each event model (and this base, never validated) is built on first use, so a cold
    #: start pays only for the kind of event it handles
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True, defer_build=True)

    version: str = "0"
    id: str = ""
    source: str
    account: str = ""
    time: Timestamp = None
    region: str = ""
    resources: list[str] = Field(default_factory=list)
    detail_type: str = Field(alias="detail-type")
    replay_name: str | None = Field(default=None, alias="replay-name")

    @property
    def cluster_name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


# --- State Change: the detail is a DescribeCluster-shaped document ------------------


class StateChangeEvent(_Envelope):
    detail: ClusterSnapshot

    @property
    def cluster_name(self) -> str:
        return self.detail.name


# --- Node Health ----------------------------------------------------------------------


class HealthSummary(ApiModel):
    model_config = ConfigDict(defer_build=True)  # Node Health / Cluster Event only: built on first use

    health_status: str | None = None
    health_status_reason: str | None = None
    repair_action: str | None = None
    recommendation: str | None = None


class NodeHealthDetail(ApiModel):
    model_config = ConfigDict(defer_build=True)

    cluster_name: str = Field(min_length=1)
    cluster_arn: str | None = None
    #: DescribeClusterNode refuses a NodeId over 256 characters (a retry cannot help)
    instance_id: str | None = Field(default=None, max_length=256)
    health_summary: HealthSummary = Field(default_factory=HealthSummary)


class NodeHealthEvent(_Envelope):
    detail: NodeHealthDetail

    @property
    def cluster_name(self) -> str:
        return self.detail.cluster_name

    @property
    def healthy(self) -> bool:
        return (self.detail.health_summary.health_status or "").strip().lower() == HEALTHY


# --- Cluster Event (Continuous provisioning only) ---------------------------------------


class SlurmHealth(ApiModel):
    """`EventMetadata.SlurmHealth`: the health of a Slurm component on the cluster's controller node
    (Component `Slurmdbd`; Status `Healthy` | `Unhealthy`; Reason `DaemonDown` | `DaemonDisabled` |
    `DbUnreachable`, omitted when healthy). Plain strings: a value AWS adds is kept, not rejected."""

    model_config = ConfigDict(defer_build=True)

    component: str | None = None
    status: str | None = None
    reason: str | None = None


class DatabaseConfiguration(ApiModel):
    """`EventMetadata.DatabaseConfiguration`: a change to the cluster's external Slurm accounting database.
    RollbackStatus (`NotApplicable` | `Reverted` | `RevertFailed`) is omitted when the change succeeded."""

    model_config = ConfigDict(defer_build=True)

    rollback_status: str | None = None
    advisory: str | None = None
    failure_message: str | None = None


class EventMetadata(ApiModel):
    """The typed members of `EventMetadata` that policies read (the others stay raw, `event_metadata`)."""

    model_config = ConfigDict(defer_build=True)

    slurm_health: SlurmHealth | None = None
    database_configuration: DatabaseConfiguration | None = None


class EventMetadataHolder(ApiModel):
    model_config = ConfigDict(defer_build=True)  # Node Health / Cluster Event only: built on first use

    #: a union in the API: exactly one of Cluster / InstanceGroup / InstanceGroupScaling / Instance /
    #: DatabaseConfiguration / SlurmHealth, as sent
    event_metadata: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: the same `EventMetadata`, its members that policies read typed
    metadata: EventMetadata = Field(default_factory=EventMetadata, validation_alias="EventMetadata", exclude=True)


class ClusterEventDetails(ApiModel):
    model_config = ConfigDict(defer_build=True)

    event_id: str | None = None
    cluster_arn: str | None = None
    cluster_name: str = Field(min_length=1)
    instance_group_name: str | None = None
    instance_id: str | None = None
    resource_type: str | None = None
    event_time: Timestamp = None
    #: Info | Warn | Error; absent in some documented examples
    event_level: str | None = None
    description: str = ""
    event_details: EventMetadataHolder | None = None
    #: the cluster operation (ListClusterOperations) the event belongs to, when it belongs to one
    operation_id: str | None = None

    @property
    def failure_message(self) -> str | None:
        """FailureMessage from whichever EventMetadata member is present."""
        metadata = self.event_details.event_metadata if self.event_details else {}
        messages = (m.get("FailureMessage") for m in metadata.values() if isinstance(m, dict))
        return next((m for m in messages if isinstance(m, str) and m), None)

    @property
    def slurm_health(self) -> SlurmHealth | None:
        return self.event_details.metadata.slurm_health if self.event_details else None

    @property
    def database_configuration(self) -> DatabaseConfiguration | None:
        return self.event_details.metadata.database_configuration if self.event_details else None


class ClusterEventDetail(ApiModel):
    model_config = ConfigDict(defer_build=True)

    event_details: ClusterEventDetails


class ClusterEvent(_Envelope):
    detail: ClusterEventDetail

    @property
    def cluster_name(self) -> str:
        return self.detail.event_details.cluster_name

    @property
    def info(self) -> ClusterEventDetails:
        return self.detail.event_details


HyperPodEvent = StateChangeEvent | NodeHealthEvent | ClusterEvent

_MODELS: dict[str, type[HyperPodEvent]] = {
    STATE_CHANGE: StateChangeEvent,
    NODE_HEALTH: NodeHealthEvent,
    CLUSTER_EVENT: ClusterEvent,
}


def build_models() -> None:
    """Build every event model now rather than with the first event of its kind (an init that no event
    waits for: handlers/evaluator.prime)."""
    for model in _MODELS.values():
        model.model_rebuild(force=True)


@dataclass(frozen=True)
class IgnoredEvent:
    """An event that is not ours to evaluate, and why."""

    detail_type: str
    reason: str


#: The environment variable the stack sets on the evaluator and the sweep: the accounts whose events are
#: believed, comma-separated (the deployment's own account, then the `eventAccounts` allow-list).
EVENT_ACCOUNTS_ENV = "EVENT_ACCOUNTS"


def event_accounts(value: str | None) -> frozenset[str] | None:
    """EVENT_ACCOUNTS' value as a set of account ids; None when the variable is not set."""
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


#: EVENT_ACCOUNTS' value when a fleet's bus admits an AWS Organization: any account the bus let in is believed
ANY_ACCOUNT = "*"


def foreign_origin(account: str, region: str, *, accounts: frozenset[str] | None,
                   regions: Collection[str]) -> str | None:
    """Why an event is not this deployment's to evaluate (the reason for IgnoredEvents), or None.

    A cluster name is unique only within one account and region: an event from elsewhere would be
    evaluated against a cluster that merely has the same name. `accounts` None means EVENT_ACCOUNTS
    is not set (the CLI, the demo and tests replay sample events from many accounts and regions): no
    check. Otherwise the event's account must be one of `accounts` (or `accounts` holds ANY_ACCOUNT) and its
    region one of `regions` (the function's own, and a hub's FLEET_REGIONS); an empty account or region
    fails, since EventBridge always sets both (an empty `accounts` believes nothing).
    """
    if accounts is None:
        return None
    if not account:
        return "event names no account (EventBridge always sets one): not believed"
    if account not in accounts and ANY_ACCOUNT not in accounts:
        return (f"event from account {account!r}, which is neither this deployment's nor on its allow-list "
                f"({EVENT_ACCOUNTS_ENV}: the spoke accounts)")
    if not region:
        return "event names no region (EventBridge always sets one): not believed"
    if region not in regions:
        return f"event from region {region!r}, which this deployment does not watch ({', '.join(regions) or 'none'})"
    return None


def _lone_surrogate(raw: Mapping[str, Any]) -> bool:
    """A string holding half a UTF-16 pair (JSON "\\ud800") cannot be encoded as UTF-8: no ledger
    item or SNS message could carry it, so evaluating the event would fail on every retry."""
    pending: list[Any] = [raw]
    while pending:  # a loop, not recursion: an event may be nested deeper than the stack allows
        value = pending.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(value, Mapping):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def parse_event(raw: Any) -> HyperPodEvent | IgnoredEvent:
    """Raw EventBridge event (dict) -> typed event, IgnoredEvent, or InvalidEventError."""
    if not isinstance(raw, Mapping):
        raise InvalidEventError(f"event must be a JSON object, got {type(raw).__name__}")
    detail_type, source = raw.get("detail-type"), raw.get("source")
    if not isinstance(detail_type, str) or not detail_type:
        raise InvalidEventError("event has no 'detail-type' string: not an EventBridge event")
    if source != SOURCE:
        return IgnoredEvent(detail_type, f"source is {source!r}, not {SOURCE!r}")
    model = _MODELS.get(detail_type)
    if model is None:
        return IgnoredEvent(detail_type, "not a HyperPod detail-type this tool evaluates")
    if not isinstance(raw.get("detail"), Mapping):
        raise InvalidEventError(f"{detail_type!r} event has no 'detail' object")
    if _lone_surrogate(raw):
        raise InvalidEventError(f"invalid {detail_type!r} event: a string is not valid Unicode (a lone surrogate)")
    try:
        event = model.model_validate(dict(raw))
    except ValidationError as exc:
        raise InvalidEventError(f"invalid {detail_type!r} event: {one_line(exc)}") from None
    except (TypeError, ValueError) as exc:  # e.g. a string too deep or odd for pydantic
        raise InvalidEventError(f"invalid {detail_type!r} event: {exc}".splitlines()[0]) from None
    if len(event.cluster_name) > 63 or not CLUSTER_NAME.fullmatch(event.cluster_name):
        # DescribeCluster refuses such a name (ValidationException): retrying cannot help
        raise InvalidEventError(f"invalid {detail_type!r} event: ClusterName {event.cluster_name[:80]!r} "
                                "is not a HyperPod cluster name")
    return event
