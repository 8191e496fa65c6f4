"""EventBridge -> Lambda: evaluate one HyperPod event. Thin: Powertools around service.handle_event.

Environment: TABLE_NAME, TOPIC_ARN, RULES_PATH (/hyperpod-guard/rules), RULES_MAX_AGE (60),
IDEMPOTENCY_TTL (3600), HYPERPOD_GUARD_TRACING (false), POWERTOOLS_LOG_LEVEL.
Bad events are logged, counted and dropped (the function returns normally); AWS errors raise
so that Lambda retries and the on-failure destination keeps the event.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import aws_clients, clock
from ..ledger_store import TTL_ATTRIBUTE
from ..service import Runtime, handle_event, new_token
from .observability import capture_handler, count, make_logger, make_metrics, record_outcomes

logger = make_logger()
metrics = make_metrics("evaluator")
#: duplicates of an event id within this window return the first result (EventBridge and
#: HyperPod both deliver at least once)
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="id", raise_on_no_idempotency_key=False,
    expires_after_seconds=int(os.environ.get("IDEMPOTENCY_TTL", "3600")),
)


@functools.cache
def runtime() -> Runtime:
    return Runtime.from_env()


@functools.cache
def _idempotent_process():
    # Built on first use, not at import: the table and endpoint come from the environment.
    persistence = DynamoDBPersistenceLayer(
        table_name=os.environ["TABLE_NAME"], key_attr="pk", sort_key_attr="sk", static_pk_value="IDEMPOTENCY",
        expiry_attr=TTL_ATTRIBUTE, boto3_client=aws_clients.client("dynamodb"),
    )
    return idempotent_function(data_keyword_argument="event", persistence_store=persistence, config=IDEMPOTENCY)(process)


aws_clients.on_reset(runtime.cache_clear)
aws_clients.on_reset(_idempotent_process.cache_clear)


def process(event: dict[str, Any], token: str) -> dict[str, Any]:
    result = handle_event(event, runtime(), clock.now(), token)
    count(metrics, "Events", DetailType=result.detail_type[:250])
    if result.invalid:
        logger.warning("dropping invalid event", extra={"reason": result.invalid})
        count(metrics, "InvalidEvents")
        return {"invalid": result.invalid}
    if result.ignored:
        logger.info("ignoring event", extra={"reason": result.ignored, "detail_type": result.detail_type})
        count(metrics, "IgnoredEvents")
        return {"ignored": result.ignored}
    if result.rules_error:
        logger.error("rules are invalid; evaluating with fallback rules", extra={"reason": result.rules_error})
        count(metrics, "RulesErrors")
    for outcome in result.outcomes:
        for decision in outcome.decisions:
            if decision.changed or decision.notify:
                logger.info("alert decision", extra={
                    "cluster": outcome.cluster, "policy": decision.record.policy, "state": decision.record.state.value,
                    "notify": decision.notify.value if decision.notify else None, "why": decision.why,
                    "fingerprint": decision.record.fingerprint,
                })
    for (policy, severity), n in sorted(result.finding_counts.items()):
        count(metrics, "Findings", n, Policy=policy, Severity=severity)
    totals = record_outcomes(metrics, result.outcomes)
    return {"cluster": result.cluster, "findings": result.findings, **totals}


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    count(metrics, "Invocations")  # also when idempotency answers a duplicate from the ledger table
    if not isinstance(event, dict):  # not even an EventBridge event: count and drop
        logger.warning("dropping invalid event", extra={"reason": f"event is a {type(event).__name__}"})
        count(metrics, "InvalidEvents")
        return {"invalid": "not an object"}
    IDEMPOTENCY.register_lambda_context(context)
    return _idempotent_process()(event=event, token=new_token(context.aws_request_id))
