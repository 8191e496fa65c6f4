"""Every metric the dashboard and the alarms read in our namespace is one the functions emit, under
the dimensions they emit it with: a renamed metric fails here instead of leaving an empty graph."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections import Counter
from typing import Any

from hyperpod_guard.constants import NAMESPACE, Dimension, Metric, Service
from hyperpod_guard.findings import Severity
from tests.unit.test_metric_names import emitted_by

from .test_stack import resources

#: dashboard SEARCH('{Namespace,Dim1,Dim2} MetricName="Name"', ...)
_SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\} MetricName=\"(?P<metric>[^\"]+)\"")


def _text(value: Any) -> str:
    """A template string, its tokens (Ref, GetAtt) as a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_text(part) for part in parts)
    return "TOKEN"


def read_metrics(template: dict[str, Any]) -> list[tuple[str, str, dict[str, str] | None]]:
    """(namespace, metric, dimensions) of every metric the dashboards and alarms read; the dimensions
    of a SEARCH are its schema's names, each mapped to "*"."""
    found: list[tuple[str, str, dict[str, str] | None]] = []
    for dashboard in resources(template, "AWS::CloudWatch::Dashboard").values():
        body = json.loads(_text(dashboard["Properties"]["DashboardBody"]))
        for widget in body["widgets"]:
            for line in widget.get("properties", {}).get("metrics", []):
                if isinstance(line[0], dict):  # an expression
                    match = _SEARCH.search(line[0].get("expression", ""))
                    assert match, f"an expression the test cannot read: {line[0]}"
                    namespace, *dimensions = match["schema"].split(",")
                    found.append((namespace, match["metric"], dict.fromkeys(dimensions, "*")))
                else:
                    namespace, metric, *rest = [part for part in line if not isinstance(part, dict)]
                    found.append((namespace, metric, dict(zip(rest[::2], rest[1::2], strict=True))))
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if "MetricName" in properties:
            dimensions = {d["Name"]: _text(d["Value"]) for d in properties.get("Dimensions", [])}
            found.append((properties["Namespace"], properties["MetricName"], dimensions))
        for query in properties.get("Metrics", []):
            stat = query.get("MetricStat", {}).get("Metric")
            if stat:
                dimensions = {d["Name"]: _text(d["Value"]) for d in stat.get("Dimensions", [])}
                found.append((stat["Namespace"], stat["MetricName"], dimensions))
            assert "Expression" not in query or NAMESPACE not in query["Expression"], "read this expression too"
    return found


def emitted_per_cluster() -> dict[Service, dict[Metric, set[frozenset[Dimension]]]]:
    """What the sweep's evaluation of a cluster emits (service._emit_cluster_health, run and its EMF read back),
    by the `service` it carries: gauges whose dimensions (Cluster, Severity) are set on their own EMF
    documents, which the source scan (emitted_by) does not read. Every gauge is emitted here: an open alert
    of one severity, and a report mark (MinutesSinceLastEvent)."""
    from hyperpod_guard.service import ClusterHealth, _emit_cluster_health

    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # Powertools prints each EMF document
        _emit_cluster_health(ClusterHealth("a-cluster", Counter({Severity.CRITICAL: 1}), 1, 1, 1.0))
    emitted: dict[Service, dict[Metric, set[frozenset[Dimension]]]] = {}
    for document in map(json.loads, out.getvalue().splitlines()):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                others = frozenset(Dimension(d) for d in dimensions if d != Dimension.SERVICE)
                for metric in directive["Metrics"]:
                    emitted.setdefault(Service(document[Dimension.SERVICE]), {}).setdefault(
                        Metric(metric["Name"]), set()).add(others)
    return emitted


def _emitted(service: Service, per_cluster: dict[Service, dict[Metric, set[frozenset[Dimension]]]]) -> dict[
        Metric, set[frozenset[Dimension]]]:
    """The metrics a function emits, each with its dimension sets: its code's counts and its per-cluster gauges."""
    emitted = {metric: set(sets) for metric, sets in emitted_by(service).items()}
    for metric, sets in per_cluster.get(service, {}).items():
        emitted.setdefault(metric, set()).update(sets)
    return emitted


def test_the_dashboard_and_alarms_read_only_metrics_the_functions_emit(template: dict[str, Any]) -> None:
    ours = [(metric, dimensions) for namespace, metric, dimensions in read_metrics(template) if namespace == NAMESPACE]
    assert len(ours) >= 9  # the two searches and seven counts the dashboard shows today: the test reads them
    per_cluster = emitted_per_cluster()
    for metric, dimensions in ours:
        assert metric in set(Metric), f"{metric} is no hyperpod_guard.constants.Metric"
        dimensions = dict(dimensions or {})
        service = dimensions.pop(Dimension.SERVICE, None)
        assert service is not None, f"{metric}: every function's metric carries its service"
        services = list(Service) if service == "*" else [Service(service)]
        # a graph shows a metric only under exactly the dimensions it is emitted with
        emitted = [_emitted(s, per_cluster).get(Metric(metric), set()) for s in services]
        assert any(frozenset(dimensions) in sets for sets in emitted), (
            f"{metric} {sorted(dimensions)} is not emitted by {service} (it is: {emitted})")


def test_the_fleet_health_row_shows_every_per_cluster_gauge(template: dict[str, Any]) -> None:
    """Each gauge the sweep emits per cluster has its graph (a SEARCH over its dimensions, so a new cluster
    shows without a redeploy), and every graph of the row reads one of them (the test above: as emitted)."""
    per_cluster = emitted_per_cluster()
    assert set(per_cluster) == {Service.SWEEP}  # the inline sweep's and the workers' alike
    gauges = {(metric, dimensions | {Dimension.SERVICE}) for metric, sets in per_cluster[Service.SWEEP].items()
              for dimensions in sets}
    assert gauges == {(metric, frozenset({Dimension.CLUSTER, Dimension.SERVICE})) for metric in (
        Metric.OPEN_ALERTS, Metric.UNHEALTHY_NODES, Metric.CAPACITY_SHORTFALL, Metric.MINUTES_SINCE_LAST_EVENT)} | {
        (Metric.OPEN_ALERTS, frozenset({Dimension.CLUSTER, Dimension.SEVERITY, Dimension.SERVICE}))}
    shown = {(Metric(metric), frozenset(map(Dimension, dimensions or {})))
             for namespace, metric, dimensions in read_metrics(template)
             if namespace == NAMESPACE and Dimension.CLUSTER in (dimensions or {})}
    assert shown == gauges


def test_every_other_namespace_is_aws(template: dict[str, Any]) -> None:
    assert {namespace for namespace, _, _ in read_metrics(template)} == {NAMESPACE, "AWS/Lambda", "AWS/SQS"}


def test_the_functions_emit_into_the_dashboards_namespace(template: dict[str, Any]) -> None:
    # ours have names; the rules seed's provider (AwsCustomResource, generated name) emits no metrics
    functions = [f for f in resources(template, "AWS::Lambda::Function").values() if "FunctionName" in f["Properties"]]
    assert len(functions) == 4
    assert {f["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] for f in functions} == {NAMESPACE}
