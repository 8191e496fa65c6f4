"""EventBridge -> Lambda: evaluate one HyperPod event. Thin: Powertools around service.handle_event.

Environment (settings.EvaluatorSettings, read with the first event; settings.Observability at import): TABLE_NAME,
TOPIC_ARN, RULES_PATH (/hyperpod-guard/rules), RULES_MAX_AGE (60), TAGS_MAX_AGE (300), HYPERPOD_GUARD_TRACING (false),
POWERTOOLS_LOG_LEVEL, EVENT_ACCOUNTS (the accounts whose events are believed; unset: no account/region check).
Events from another account or region are logged and counted as ignored. Bad events are logged, counted and
dropped (the function returns normally); AWS errors raise so that Lambda retries and the on-failure
destination keeps the event.

Duplicates (EventBridge and HyperPod both deliver at least once, and a storm repeats one
condition under many event ids) need no idempotency record here: the ledger's conditional
writes make a second evaluation of the same state a read with nothing to send. That keeps an
event at one DynamoDB call when nothing changed (benchmarks/: aws_calls_per_state_event).

Importing this module loads Powertools' Logger and Metrics only; the pipeline (boto3,
pydantic models, policies) loads with the first event, so a cold start's init phase stays
close to a bare `import boto3` (benchmarks/: cold_import_ratio). An init no event waits for
(SnapStart's, provisioned concurrency's) loads it all instead: `prime` (observability.prime_at_init).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .. import aws_clients
from ..constants import Dimension, Metric, Service
from .observability import capture_handler, count, make_logger, make_metrics, prime_at_init, record_outcomes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..service import Runtime

logger = make_logger()
metrics = make_metrics(Service.EVALUATOR)


@functools.cache
def runtime() -> Runtime:
    from ..service import Runtime
    from ..settings import EvaluatorSettings

    return Runtime.from_env(EvaluatorSettings.from_env())


aws_clients.on_reset(runtime.cache_clear)  # tests point the clients elsewhere


def prime() -> None:
    """Load what the first event would: the pipeline, the runtime and its clients, the rules store's
    SSM client and the event models. No AWS call: a connection would not outlive a snapshot, and the
    rules and the cluster are read as they are when the event comes."""
    from ..events import build_models

    runtime().rules.prime()
    build_models()


def process(event: dict[str, Any], token: str) -> dict[str, Any]:
    from .. import clock
    from ..service import handle_event

    result = handle_event(event, runtime(), clock.now(), token)
    count(metrics, Metric.EVENTS, dimensions={Dimension.DETAIL_TYPE: result.detail_type[:250]})
    if result.invalid:
        logger.warning("dropping invalid event", extra={"reason": result.invalid})
        count(metrics, Metric.INVALID_EVENTS)
        return {"invalid": result.invalid}
    if result.ignored:
        logger.info("ignoring event", extra={"reason": result.ignored, "detail_type": result.detail_type,
                                             "cluster": result.cluster})
        count(metrics, Metric.IGNORED_EVENTS)
        return {"ignored": result.ignored}
    if result.stale:
        logger.info("stale event: its text changes no alert", extra={"reason": result.stale, "cluster": result.cluster})
        count(metrics, Metric.STALE_EVENTS)
    if result.rules_error:
        logger.error("rules are invalid; evaluating with fallback rules", extra={"reason": result.rules_error})
        count(metrics, Metric.RULES_ERRORS)
    for outcome in result.outcomes:
        for decision in outcome.decisions:
            if decision.changed or decision.notify:
                logger.info("alert decision", extra={
                    "cluster": outcome.cluster, "policy": decision.record.policy, "state": decision.record.state.value,
                    "notify": decision.notify.value if decision.notify else None, "why": decision.why,
                    "fingerprint": decision.record.fingerprint,
                })
    for (policy, severity), n in sorted(result.finding_counts.items()):
        count(metrics, Metric.FINDINGS, n, {Dimension.POLICY: policy, Dimension.SEVERITY: severity})
    totals = record_outcomes(metrics, result.outcomes)
    return {"cluster": result.cluster, "findings": result.findings, **totals}


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    count(metrics, Metric.INVOCATIONS)
    if not isinstance(event, dict):  # not even an EventBridge event: count and drop
        logger.warning("dropping invalid event", extra={"reason": f"event is a {type(event).__name__}"})
        count(metrics, Metric.INVALID_EVENTS)
        return {"invalid": "not an object"}
    from ..service import new_token

    return process(event, new_token(context.aws_request_id))


prime_at_init(prime)
