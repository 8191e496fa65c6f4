"""Schedule -> Lambda: evaluate every cluster. Heals lost events, advances pending alerts past
their grace, resolves alerts of deleted clusters, and resolves rules-invalid once fixed.

Environment (settings.SweepSettings): as the evaluator, plus SWEEP_CONCURRENCY (8).
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import aws_clients, clock
from ..constants import Metric, Service
from ..service import Runtime, new_token, sweep
from ..settings import SweepSettings
from .observability import capture_handler, count, make_logger, make_metrics, record_outcomes

logger = make_logger()
metrics = make_metrics(Service.SWEEP)


@functools.cache
def runtime() -> Runtime:
    return Runtime.from_env(SweepSettings.from_env())


aws_clients.on_reset(runtime.cache_clear)


class SweepFailed(Exception):
    """Some clusters could not be evaluated (the others were): Lambda reports an error."""


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = sweep(runtime(), clock.now(), new_token(context.aws_request_id))
    count(metrics, Metric.SWEEP_CLUSTERS, result.clusters)
    count(metrics, Metric.SWEEP_GONE_CLUSTERS, result.gone)
    count(metrics, Metric.SWEEP_RUNS)
    if result.rules_error:
        logger.error("rules are invalid; evaluating with fallback rules", extra={"reason": result.rules_error})
        count(metrics, Metric.RULES_ERRORS)
    totals = record_outcomes(metrics, result.outcomes)
    summary = {"clusters": result.clusters, "gone": result.gone, "findings": result.findings, **totals}
    logger.info("sweep done", extra=summary)
    if result.errors:
        count(metrics, Metric.SWEEP_ERRORS, len(result.errors))
        raise SweepFailed(f"{len(result.errors)} cluster(s) failed: {sorted(result.errors)}")
    return summary
