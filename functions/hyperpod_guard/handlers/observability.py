"""Powertools plumbing shared by the handlers: logger, metrics, an opt-in tracer.

Tracing is off unless HYPERPOD_GUARD_TRACING=true: `Tracer()` imports aws_xray_sdk and
botocore's patching at cold start (about 0.3 s measured on the dev machine, ~as much as
all of boto3), which is a poor trade for a function that mostly waits on two API calls.

Metric names are `constants.Metric` members, never literals (tests/unit/test_metric_names.py).

`prime_at_init`: what a handler loads at init when Lambda snapshots that init (SnapStart) or keeps it
warm (provisioned concurrency), instead of with its first event (benchmarks/cold_path.py: the
`_snapstart_primed` figures).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..constants import METRICS_NAMESPACE, SERVICE_NAME, TRACING, Metric, Service, Var

if TYPE_CHECKING:
    from ..alerting import Outcome

P = ParamSpec("P")
R = TypeVar("R")

#: set by Lambda: "on-demand", "provisioned-concurrency" or "snap-start" (the init of a published
#: version with SnapStart, which Lambda snapshots and resumes every cold start from)
INITIALIZATION_TYPE: Var[str] = Var("AWS_LAMBDA_INITIALIZATION_TYPE", str, "on-demand")
SNAP_START = "snap-start"
#: the inits whose cost no event waits for: the first event's loading is moved there
PRIMED_INITS = frozenset({SNAP_START, "provisioned-concurrency"})


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


def prime_at_init(prime: Callable[[], None]) -> None:
    """Call `prime` (load now what the first event would load; no AWS call) when this init is one no
    event waits for (PRIMED_INITS); an on-demand init stays lean, as an event that is dropped never
    needs the pipeline. Under SnapStart, also reseed `random` after each restore: every environment
    resumed from one snapshot would otherwise draw the same retry jitter (botocore's, the Slack
    sender's)."""
    init_type = INITIALIZATION_TYPE.read()
    if init_type == SNAP_START:
        # in every Lambda managed Python runtime that offers SnapStart (>= 3.12); it ships no py.typed
        from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped]

        register_after_restore(random.seed)
    if init_type in PRIMED_INITS:
        prime()


def count(metrics: Metrics, name: Metric, value: float = 1, dimensions: Mapping[str, str] | None = None) -> None:
    """A count, with its own dimensions when given (one EMF document per dimension set)."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    # single_metric takes its `service` from POWERTOOLS_SERVICE_NAME (the stack's prefix) unless told: the
    # function's own, as on its other metrics
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace,
                       default_dimensions={**metrics.default_dimensions, "service": str(metrics.service)}) as metric:
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
