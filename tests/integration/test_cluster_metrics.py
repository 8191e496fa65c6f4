"""The sweep's per-cluster gauges (issue 21, "Metrics for dashboards"), on moto (server mode): every sweep's
evaluation of a cluster, inline or a worker's, emits OpenAlerts (also by Severity), UnhealthyNodes,
CapacityShortfall and MinutesSinceLastEvent with the dimension Cluster, as EMF documents of their own;
an event's evaluation emits none of them (each cluster reports once per sweep interval).

Read from what the functions print (EMF: Powertools writes one JSON document a line to stdout, which
Lambda sends to CloudWatch Logs; tests/lambda_output.py). Contents, never times: the clock is fixed, so
the minutes are exact. `cluster_health`, the pure part, has its table at the end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard import clock
from hyperpod_guard.constants import NAMESPACE, Dimension, Metric, Service
from hyperpod_guard.findings import Severity
from hyperpod_guard.freshness import ReportMark
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.service import cluster_health
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.conftest import REGION
from tests.integration.test_sweep_fanout import mapping, run_sweep, work_queue, worker  # noqa: F401 (fixtures)
from tests.lambda_output import lambda_output
from tests.runtime_fixtures import LambdaContext, scenario, serve, stack  # noqa: F401 (fixtures)

#: the per-cluster gauges: a document carrying the Cluster dimension is one of them
GAUGES = {Metric.OPEN_ALERTS, Metric.UNHEALTHY_NODES, Metric.CAPACITY_SHORTFALL, Metric.MINUTES_SINCE_LAST_EVENT}
#: when the Node Health report of the sick cluster was made; the sweep runs 42 minutes later
REPORTED = datetime(2026, 11, 26, 6, 42, 13, tzinfo=UTC)
SWEEP_AT = REPORTED + timedelta(minutes=42)
SICK, HEALTHY = "sick", "healthy"
#: the sick cluster's nodes: one in Failure (NodeRecovery None: critical at once), one Running that its
#: health agent reports unhealthy
FAILED_NODE, REPORTED_NODE = "i-0e4d3c2b1a0f9e8d7", "i-0d3c2b1a0f9e8d7c6"

Gauge = tuple[str, tuple[tuple[str, str], ...], float]


def gauges(out: str) -> list[Gauge]:
    """(metric, its dimensions but `service`, value) of every EMF document in `out` carrying a Cluster
    dimension, sorted; each checked to be in our namespace, the sweep's service, and alone in its document."""
    found: list[Gauge] = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        ((directive,),) = [document["_aws"]["CloudWatchMetrics"]]
        if Dimension.CLUSTER not in directive["Dimensions"][0]:
            assert not {m["Name"] for m in directive["Metrics"]} & GAUGES, f"a gauge without its cluster: {line}"
            continue
        ((dimensions,), (metric,)) = directive["Dimensions"], directive["Metrics"]
        assert directive["Namespace"] == NAMESPACE and document[Dimension.SERVICE] == Service.SWEEP
        assert metric["Name"] in GAUGES
        named = tuple(sorted((d, document[d]) for d in dimensions if d != Dimension.SERVICE))
        (value,) = document[metric["Name"]]  # Powertools writes a metric's values as a list
        found.append((metric["Name"], named, value))
    return sorted(found)


def of(cluster: str, metric: Metric, value: float, severity: str | None = None) -> Gauge:
    named = ((Dimension.CLUSTER.value, cluster),) + (((Dimension.SEVERITY.value, severity),) if severity else ())
    return (metric.value, named, float(value))


#: a sweep of the two clusters: the sick one has a node in Failure, the Running node its agent reported
#: unhealthy (each an open critical alert; the failed node counted once), a group 2 short of its target
#: (degraded-group: warning, pending in its 5m grace: open), and its report 42 minutes ago; the healthy
#: one has nothing open, no shortfall and no report (so no MinutesSinceLastEvent)
EXPECTED = sorted([
    of(SICK, Metric.OPEN_ALERTS, 3), of(SICK, Metric.OPEN_ALERTS, 2, "critical"),
    of(SICK, Metric.OPEN_ALERTS, 1, "warning"),
    of(SICK, Metric.UNHEALTHY_NODES, 2), of(SICK, Metric.CAPACITY_SHORTFALL, 2),
    of(SICK, Metric.MINUTES_SINCE_LAST_EVENT, 42),
    of(HEALTHY, Metric.OPEN_ALERTS, 0), of(HEALTHY, Metric.UNHEALTHY_NODES, 0),
    of(HEALTHY, Metric.CAPACITY_SHORTFALL, 0),
])


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    clock.use(lambda: SWEEP_AT)
    yield
    clock.use(None)


@pytest.fixture
def clusters(stack: Resources, fixed_clock: None) -> dict[str, Any]:  # noqa: F811
    """The two clusters on moto, and the sick one's Node Health report (made at REPORTED) for the test to
    evaluate: its report mark is the cluster's last event."""
    _, sick = scenario("node-failure-recovery-none")
    sick = json.loads(json.dumps(sick).replace(sick["ClusterName"], SICK))
    (group,) = sick["InstanceGroups"]
    group.update(CurrentCount=2, TargetCount=4, TargetStateCount=4)
    assert [(n["InstanceId"], n["InstanceStatus"]["Status"]) for n in sick["Nodes"]] == [
        (FAILED_NODE, "Failure"), (REPORTED_NODE, "Running")]
    serve(sick)
    _, healthy = scenario("healthy-eks-cluster")
    serve(json.loads(json.dumps(healthy).replace(healthy["ClusterName"], HEALTHY)))

    event, _ = scenario("unhealthy-node-no-repair")
    event = copy.deepcopy(event)
    event.update(region=REGION, time=REPORTED.strftime("%Y-%m-%dT%H:%M:%SZ"), resources=[sick["ClusterArn"]])
    event["detail"].update(ClusterName=SICK, ClusterArn=sick["ClusterArn"], InstanceId=REPORTED_NODE)
    return event


def test_a_sweep_reports_each_cluster_once_and_an_event_reports_none(stack, clusters, monkeypatch):  # noqa: F811
    from hyperpod_guard.handlers import evaluator

    with lambda_output() as out:
        assert evaluator.handler(clusters, LambdaContext())["notifications"] == 1  # the reported node, critical
    assert gauges(out.getvalue()) == []  # an event's evaluation: none of them
    delivered(stack)

    monkeypatch.setenv("SWEEP_CONCURRENCY", "1")  # moto's DynamoDB transactions are not thread-safe
    with lambda_output() as out:
        summary = run_sweep()
    assert (summary["evaluated"], summary["enqueued"]) == (2, 0)  # inline
    assert gauges(out.getvalue()) == EXPECTED


def test_the_workers_report_as_the_inline_sweep(stack, clusters, work_queue, mapping):  # noqa: F811
    from hyperpod_guard.handlers import evaluator

    evaluator.handler(clusters, LambdaContext())
    with lambda_output() as out:
        assert run_sweep()["enqueued"] == 2
    assert gauges(out.getvalue()) == []  # the sweep handed them over: the workers report
    with lambda_output() as out:
        mapping.drain()
    assert gauges(out.getvalue()) == EXPECTED


# --- cluster_health: what the gauges say, from a snapshot, the alerts and the report marks ----------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def snapshot(groups: list[tuple[int | None, int | None]], nodes: dict[str, str], *,
             restricted: tuple[tuple[int, int], ...] = ()) -> ClusterSnapshot:
    """A cluster whose groups have these (CurrentCount, TargetCount) and whose nodes these statuses."""
    def group(i: int, current: int | None, target: int | None) -> dict[str, Any]:
        return {"InstanceGroupName": f"g{i}", "CurrentCount": current, "TargetCount": target}

    return ClusterSnapshot.model_validate({
        "ClusterName": "c", "ClusterStatus": "InService",
        "InstanceGroups": [group(i, *counts) for i, counts in enumerate(groups)],
        "RestrictedInstanceGroups": [group(i, *counts) for i, counts in enumerate(restricted)],
        "Nodes": [{"InstanceId": node, "InstanceGroupName": "g0", "InstanceStatus": {"Status": status}}
                  for node, status in nodes.items()]})


def alert(policy: str, severity: Severity, state: AlertState, node: str | None = None) -> AlertRecord:
    return AlertRecord(policy=policy, severity=severity, cluster="c", condition="x", summary="s", node=node,
                       fingerprint=f"{policy}/{node}/{state}", state=state, first_seen=NOW, last_seen=NOW)


def mark(minutes_ago: float) -> ReportMark:
    return ReportMark("c", f"k{minutes_ago}", NOW - timedelta(minutes=minutes_ago))


@pytest.mark.parametrize(("cluster", "records", "marks", "expected"), [
    pytest.param(snapshot([(2, 4), (5, 3), (None, 4), (1, None)], {}), [], [], ({}, 0, 2, None),
                 id="shortfall: a group above target adds nothing, one without both counts is not judged"),
    pytest.param(snapshot([(1, 2)], {}, restricted=((0, 3),)), [], [], ({}, 0, 4, None),
                 id="shortfall: restricted groups count too"),
    pytest.param(snapshot([], {"i-1": "Failure", "i-2": "Running", "i-3": "Pending"}),
                 [alert("unhealthy-node", Severity.CRITICAL, AlertState.FIRING, "i-1"),
                  alert("unhealthy-node", Severity.WARNING, AlertState.PENDING, "i-2"),
                  alert("unhealthy-node", Severity.CRITICAL, AlertState.RESOLVED, "i-3"),
                  alert("taint-drift", Severity.WARNING, AlertState.FIRING, "i-4")], [],
                 ({Severity.CRITICAL: 1, Severity.WARNING: 2}, 2, 0, None),
                 id="nodes: in Failure or with an open unhealthy-node alert, once each; resolved alerts are not open"),
    pytest.param(snapshot([], {}), [], [mark(30), mark(7.5), mark(90)], ({}, 0, 0, 7.5),
                 id="last event: the newest report mark"),
    pytest.param(snapshot([], {}), [], [mark(-2)], ({}, 0, 0, 0.0),
                 id="last event: a report stamped ahead of the clock is just now"),
])
def test_cluster_health(cluster: ClusterSnapshot, records: list[AlertRecord], marks: list[ReportMark],
                        expected: tuple[dict[Severity, int], int, int, float | None]) -> None:
    health = cluster_health(cluster, records, marks, NOW)
    assert (dict(health.open_alerts), health.unhealthy_nodes, health.capacity_shortfall,
            health.minutes_since_last_event) == expected
