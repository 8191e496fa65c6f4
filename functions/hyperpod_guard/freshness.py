"""Events lie about time: which report an event is, and whether a newer one was already applied.

EventBridge and HyperPod deliver at least once, late and out of order, and a DLQ redrive replays
old events. An event's *text* (a node reported Unhealthy or Healthy, a Cluster Event saying a
rollback failed) is a report about one scope at one time. The ledger keeps, per kind of report
and scope, the time of the newest report applied (a `ReportMark`); a report older than that
changes no alert: its findings are not observed and what it says is healthy again is not
resolved. Fresh state read now is never stale: findings from DescribeCluster(Node) always count.

State Change events carry no report: their detail is never believed (the cluster is read
again), so they need no mark and cost no write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .timeutil import isoformat

if TYPE_CHECKING:  # not at run time: the Slack notifier imports this module (via ledger_store) and
    # needs none of the event models (pydantic, built at import)
    from .events import HyperPodEvent

#: bytes of a report key kept as they are; longer ones are cut and hashed (still one key per scope)
KEY_LIMIT = 300


@dataclass(frozen=True)
class Report:
    """What an event reports about, and when. `key` names the sequence it belongs to:
    "<kind>/<scope>", e.g. "node-health/node/i-0abc", "cluster-event/group/p5" or
    "slurm-health/cluster/Slurmdbd"."""

    key: str
    #: when it happened (Cluster Event: EventTime; otherwise the envelope's `time`), never after `now`
    time: datetime
    event_id: str = ""


@dataclass(frozen=True)
class ReportMark:
    """The newest report applied for one key of one cluster (stored in the ledger)."""

    cluster: str
    key: str
    time: datetime
    event_id: str = ""
    #: optimistic concurrency, as alert records: 0 = not stored yet
    version: int = 0


def report_of(event: HyperPodEvent | None, now: datetime) -> Report | None:
    """The report an event's text makes, or None (no event, a State Change, no time)."""
    from .events import ClusterEvent, NodeHealthEvent

    if isinstance(event, NodeHealthEvent) and event.detail.instance_id:
        key, when = f"node-health/node/{event.detail.instance_id}", event.time
    elif isinstance(event, ClusterEvent):
        info = event.info
        if info.slurm_health:
            # a sequence of its own per component, about the cluster whichever controller node sent it: a
            # Healthy report is newer than the Unhealthy one even if the controller was replaced in
            # between, and another Cluster Event about the cluster does not make a Slurm report stale
            key = f"slurm-health/cluster/{info.slurm_health.component or ''}"
        elif info.database_configuration:
            key = "database-configuration/cluster"
        else:
            scope = (f"node/{info.instance_id}" if info.instance_id
                     else f"group/{info.instance_group_name}" if info.instance_group_name else "cluster")
            key = f"cluster-event/{scope}"
        when = info.event_time or event.time
    else:
        return None
    if when is None:
        return None  # never from EventBridge (it always sets `time`): cannot be ordered, applied as received
    # a producer's clock ahead of ours must not hold back every later report
    return Report(_bounded(key), min(when, now), event.id[:200])


def _bounded(key: str) -> str:
    """The key as the ledger can store it (a sort key holds 1 KB; an event's names are unbounded)."""
    if len(key.encode()) <= KEY_LIMIT:
        return key
    return f"{key[:100]}#{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def stale(report: Report, mark: ReportMark | None) -> str | None:
    """Why the report must not change alerts (a newer one of the same key was applied), or None.
    Equal times are not stale: a redelivery of the newest report is harmless (the ledger
    makes it idempotent), and two reports in the same second keep their arrival order."""
    if mark is None or report.time >= mark.time:
        return None
    newer = f" ({mark.event_id})" if mark.event_id else ""
    return (f"stale: the {report.key} report of {isoformat(report.time)} is older than the one of "
            f"{isoformat(mark.time)}{newer} already applied")


def advance(report: Report, mark: ReportMark | None, cluster: str) -> ReportMark | None:
    """The mark to store after applying `report`, or None when the stored one stays."""
    if mark is not None and mark.time >= report.time:
        return None
    return ReportMark(cluster, report.key, report.time, report.event_id, mark.version if mark else 0)
