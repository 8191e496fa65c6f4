"""Powertools plumbing shared by the handlers: logger, metrics, an opt-in tracer.

Tracing is off unless HYPERPOD_GUARD_TRACING=true: `Tracer()` imports aws_xray_sdk and
botocore's patching at cold start (about 0.3 s measured on the dev machine, ~as much as
all of boto3), which is a poor trade for a function that mostly waits on two API calls.

Metric names are `constants.Metric` members, never literals (tests/unit/test_metric_names.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..constants import METRICS_NAMESPACE, SERVICE_NAME, TRACING, Metric, Service

if TYPE_CHECKING:
    from ..alerting import Outcome

P = ParamSpec("P")
R = TypeVar("R")


def make_logger() -> Logger:
    return Logger(service=SERVICE_NAME.read())


def make_metrics(function: Service) -> Metrics:
    return Metrics(namespace=METRICS_NAMESPACE.read(), service=function)


def tracing_enabled() -> bool:
    return TRACING.read()


def capture_handler(function: Callable[P, R]) -> Callable[P, R]:
    """Tracer.capture_lambda_handler when tracing is enabled, else the function unchanged."""
    if not tracing_enabled():
        return function
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(function)


def count(metrics: Metrics, name: Metric, value: float = 1, dimensions: Mapping[str, str] | None = None) -> None:
    """A count, with its own dimensions when given (one EMF document per dimension set)."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace,
                       default_dimensions=metrics.default_dimensions) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def record_outcomes(metrics: Metrics, outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Notifications sent and alerts suppressed (silenced or inhibited)."""
    totals = {"notifications": 0, "notified_findings": 0, "suppressed": 0}
    for outcome in outcomes:
        if outcome.notification:
            totals["notifications"] += 1
            totals["notified_findings"] += len(outcome.notification.items)
        totals["suppressed"] += len(outcome.suppressed)
    count(metrics, Metric.NOTIFICATIONS, totals["notifications"])
    count(metrics, Metric.NOTIFIED_FINDINGS, totals["notified_findings"])
    count(metrics, Metric.SUPPRESSED_ALERTS, totals["suppressed"])
    return totals
