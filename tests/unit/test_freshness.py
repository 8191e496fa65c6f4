"""freshness: which report an event makes, and whether a newer one was already applied (tables)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hyperpod_guard.events import parse_event
from hyperpod_guard.freshness import KEY_LIMIT, Report, ReportMark, advance, report_of, stale

T = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
NOW = T + timedelta(hours=1)


def node_health(instance: str | None = "i-0abc", time: str | None = "2026-11-26T06:00:00Z") -> dict[str, Any]:
    event = {"detail-type": "SageMaker HyperPod Cluster Node Health Event", "source": "aws.sagemaker", "id": "e1",
             "detail": {"ClusterName": "c", "InstanceId": instance, "HealthSummary": {"HealthStatus": "Unhealthy"}}}
    if time:
        event["time"] = time
    return event


def cluster_event(**details: Any) -> dict[str, Any]:
    return {"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker", "id": "e2",
            "time": "2026-11-26T06:00:30Z",
            "detail": {"EventDetails": {"ClusterName": "c", "Description": "x", **details}}}


@pytest.mark.parametrize("raw, key, when", [
    (node_health(), "node-health/node/i-0abc", T),
    (cluster_event(InstanceId="i-0abc", InstanceGroupName="g", EventTime="2026-11-26T06:00:00Z"),
     "cluster-event/node/i-0abc", T),  # EventTime, not the envelope's
    (cluster_event(InstanceGroupName="g"), "cluster-event/group/g", T + timedelta(seconds=30)),
    (cluster_event(), "cluster-event/cluster", T + timedelta(seconds=30)),
    (node_health(time="2026-11-26T09:00:00Z"), "node-health/node/i-0abc", NOW),  # a clock ahead of ours: now
], ids=["node health", "cluster event about a node", "about a group", "about the cluster", "future time"])
def test_report_of(raw, key, when):
    assert report_of(parse_event(raw), NOW) == Report(key, when, raw["id"])  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [
    node_health(instance=None),  # says nothing about a node
    node_health(time=None),      # never from EventBridge: cannot be ordered
    {"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker", "time": "2026-11-26T06:00:00Z",
     "detail": {"ClusterName": "c", "ClusterStatus": "InService", "InstanceGroups": []}},  # its detail is never believed
], ids=["no instance", "no time", "state change"])
def test_no_report(raw):
    assert report_of(parse_event(raw), NOW) is None  # type: ignore[arg-type]


def test_an_unbounded_group_name_makes_a_bounded_key_that_is_still_one_per_group():
    long_a, long_b = cluster_event(InstanceGroupName="a" * 5000), cluster_event(InstanceGroupName="a" * 4999 + "b")
    a, b = (report_of(parse_event(raw), NOW) for raw in (long_a, long_b))  # type: ignore[arg-type]
    assert a and b and len(a.key.encode()) <= KEY_LIMIT and a.key != b.key


MARK = ReportMark("c", "node-health/node/i-0abc", T, "newest", version=3)


@pytest.mark.parametrize("offset, is_stale", [
    (timedelta(seconds=-1), True),   # older than the newest applied: its text changes nothing
    (timedelta(0), False),           # the same report again (a redelivery): harmless, the ledger is idempotent
    (timedelta(seconds=1), False),
])
def test_stale(offset, is_stale):
    report = Report(MARK.key, T + offset, "e")
    why = stale(report, MARK)
    assert bool(why) is is_stale
    if why:
        assert why == ("stale: the node-health/node/i-0abc report of 2026-11-26T05:59:59Z is older than the one of "
                       "2026-11-26T06:00:00Z (newest) already applied")
    assert stale(report, None) is None


@pytest.mark.parametrize("offset, advanced", [
    (timedelta(seconds=1), ReportMark("c", MARK.key, T + timedelta(seconds=1), "e", version=3)),
    (timedelta(0), None),
    (timedelta(seconds=-1), None),
])
def test_advance(offset, advanced):
    assert advance(Report(MARK.key, T + offset, "e"), MARK, "c") == advanced
    assert advance(Report("k", T, "e"), None, "c") == ReportMark("c", "k", T, "e", version=0)
