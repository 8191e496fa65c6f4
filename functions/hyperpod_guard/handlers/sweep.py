"""Schedule -> Lambda: evaluate every cluster. Heals lost events, advances pending alerts past
their grace, resolves alerts of deleted clusters, and resolves rules-invalid once fixed.

Deployed, the sweep fans out: it checks the rules, lists the clusters (and those remembered with
open alerts) and sends one message per cluster to the work queue, which the worker
(handlers/worker.py) evaluates, many Lambdas at once. Without a queue it evaluates them itself,
SWEEP_CONCURRENCY threads at a time (local runs).

Environment (settings.SweepSettings, settings.WorkQueueSettings): as the evaluator, plus
SWEEP_CONCURRENCY (8) and WORK_QUEUE_URL (unset: no fan-out).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import aws_clients, clock
from ..cluster_reader import ClusterSummary
from ..constants import Metric, Service
from ..service import Runtime, new_token, sweep
from ..settings import SweepSettings, WorkQueueSettings
from .observability import capture_handler, count, make_logger, make_metrics, record_outcomes
from .worker import EvaluateCluster, WorkQueue

logger = make_logger()
metrics = make_metrics(Service.SWEEP)


@functools.cache
def runtime() -> Runtime:
    return Runtime.from_env(SweepSettings.from_env())


aws_clients.on_reset(runtime.cache_clear)


@functools.cache
def work_queue() -> WorkQueue | None:
    """The workers' queue (WORK_QUEUE_URL); None: the sweep evaluates every cluster itself."""
    url = WorkQueueSettings.from_env().work_queue_url
    return WorkQueue(url, aws_clients.client("sqs")) if url else None


aws_clients.on_reset(work_queue.cache_clear)


def fan_out(queue: WorkQueue, run: str, at: datetime) -> Callable[[list[ClusterSummary]], None]:
    """service.sweep's dispatch: one evaluate-cluster message per cluster, 10 per SendMessageBatch."""
    def dispatch(clusters: list[ClusterSummary]) -> None:
        queue.send([EvaluateCluster(cluster=c.name, run=run, at=at, image_version_status=c.image_version_status)
                    for c in clusters])

    return dispatch


class SweepFailed(Exception):
    """Some clusters could not be evaluated (the others were): Lambda reports an error."""


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now, token, queue = clock.now(), new_token(context.aws_request_id), work_queue()
    result = sweep(runtime(), now, token, dispatch=fan_out(queue, token, now) if queue else None)
    count(metrics, Metric.SWEEP_CLUSTERS, result.clusters)
    count(metrics, Metric.SWEEP_GONE_CLUSTERS, result.gone)
    count(metrics, Metric.SWEEP_RUNS)
    if queue:  # the workers count what they evaluate
        count(metrics, Metric.SWEEP_ENQUEUED, result.enqueued)
    else:
        count(metrics, Metric.SWEEP_EVALUATED, result.evaluated)
    if result.rules_error:
        logger.error("rules are invalid; evaluating with fallback rules", extra={"reason": result.rules_error})
        count(metrics, Metric.RULES_ERRORS)
    totals = record_outcomes(metrics, result.outcomes)
    summary = {"clusters": result.clusters, "gone": result.gone, "enqueued": result.enqueued,
               "evaluated": result.evaluated, "findings": result.findings, **totals}
    logger.info("sweep done", extra=summary)
    if result.errors:
        count(metrics, Metric.SWEEP_ERRORS, len(result.errors))
        raise SweepFailed(f"{len(result.errors)} cluster(s) or fleet location(s) failed: {sorted(result.errors)}")
    return summary
