"""SQS -> Lambda: the actions worker. Carries out the clicks the interactivity endpoint
(handlers/slack_interactivity.py) believed and queued, one message per click (chatops/actions.py says what
each button does and who may click it). Thin: Powertools' batch utility, as handlers/worker.py.

Once per click: SQS delivers at least once, so each click is carried out under Powertools idempotency,
keyed on the click (its action_ts, user and action id: Interaction.key), its record in the ledger table
beside the notifier's (partition IDEMPOTENCY). A redelivered message finds the record and does nothing;
a click whose carrying out failed has no record (Powertools deletes it) and is tried again, up to the
queue's maxReceiveCount, then waits in the dead-letter queue (alarmed). The actions themselves also
tolerate being done twice (chatops/actions.py).

The rules' `chatops` section (who may approve, acknowledge, silence; the workspace; how long an acknowledge
lasts) is read as the evaluator reads the rules (cached RULES_MAX_AGE). Counted (service `slack-actions`):
ChatOpsClicksDone, ChatOpsClicksRefused, ChatOpsClicksFailed.

Environment: settings.SlackActionsSettings (TABLE_NAME, RULES_PATH, RULES_MAX_AGE, WORK_QUEUE_URL,
IDEMPOTENCY_TTL) and settings.SlackAppSettings (the bot token's secret, SLACK_API_URL, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import aws_clients, clock
from ..chatops.interaction import Interaction
from ..constants import Metric, Service
from .observability import capture_handler, count, make_logger, make_metrics, prime_at_init

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..chatops.actions import Actions
    from ..rules_store import RulesStore
    from ..settings import SlackActionsSettings

logger = make_logger()
metrics = make_metrics(Service.SLACK_ACTIONS)

#: the idempotency records' key, after the function's name: fixed (not derived from where the function is
#: defined), so that moving it cannot make a record already written miss a redelivery
RECORD_KEY = "hyperpod_guard.handlers.slack_actions.click"
#: Powertools' function name when AWS_LAMBDA_FUNCTION_NAME is not set (tests, the demo)
_NO_FUNCTION_NAME = "test-func"


@functools.cache
def settings() -> SlackActionsSettings:
    from ..settings import SlackActionsSettings

    return SlackActionsSettings.from_env()


@functools.cache
def actions() -> Actions:
    from ..chatops.actions import Actions
    from ..fleet import FleetSettings
    from ..ledger_store import LedgerStore
    from ..notify.slack_app import app_api
    from ..notify.slack_threads import ThreadStore
    from ..remediation.approvals import ApprovalStore
    from ..settings import SlackAppSettings
    from ..silences import SilenceStore
    from .worker import WorkQueue

    config, dynamodb = settings(), aws_clients.client("dynamodb")
    return Actions(
        ledger=LedgerStore(config.table_name, dynamodb), approvals=ApprovalStore(dynamodb, config.table_name),
        silences=SilenceStore(config.table_name, dynamodb), api=app_api(SlackAppSettings.from_env()),
        threads=ThreadStore(dynamodb, config.table_name),
        work=WorkQueue(config.work_queue_url, aws_clients.client("sqs")) if config.work_queue_url else None,
        home=FleetSettings.from_env().home,
    )


@functools.cache
def rules() -> RulesStore:
    from ..rules_store import RulesStore

    config = settings()
    return RulesStore(config.rules_path, config.rules_max_age)


@functools.cache
def once() -> tuple[IdempotencyConfig, Callable[..., dict[str, str]]]:
    """`click`, carried out at most once per Interaction.key (the ledger table keeps the records)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from ..ledger_store import IDEMPOTENCY_PK, TTL_ATTRIBUTE

    config = settings()
    idempotency = IdempotencyConfig(event_key_jmespath="key", raise_on_no_idempotency_key=True,
                                    expires_after_seconds=config.idempotency_ttl, response_hook=_done_before)
    persistence = DynamoDBPersistenceLayer(
        table_name=config.table_name, key_attr="pk", sort_key_attr="sk", static_pk_value=IDEMPOTENCY_PK,
        expiry_attr=TTL_ATTRIBUTE, boto3_client=aws_clients.client("dynamodb"))
    decorate = idempotent_function(data_keyword_argument="click", persistence_store=persistence, config=idempotency,
                                   key_prefix=f"{config.function_name or _NO_FUNCTION_NAME}.{RECORD_KEY}")
    return idempotency, decorate(click)


def _done_before(response: Any, idempotent_data: DataRecord) -> Any:  # an IdempotentHookFunction
    """A click SQS delivered again: answered from its idempotency record, said and counted."""
    logger.info("click already carried out; not again", extra={"outcome": (response or {}).get("outcome")})
    count(metrics, Metric.CHATOPS_DUPLICATES)
    return response


def click(click: dict[str, Any]) -> dict[str, str]:
    """Carry out one click (`click`: the Interaction as a dict plus its `key`); what it came to."""
    interaction = Interaction.model_validate({k: v for k, v in click.items() if k != "key"})
    chatops = rules().load().rules.chatops
    result = actions().carry_out(interaction, chatops, clock.now())
    if result.outcome == "done":
        count(metrics, Metric.CHATOPS_DONE)
    else:
        count(metrics, Metric.CHATOPS_REFUSED)
    logger.info(f"click {result.outcome}", extra={
        "user": interaction.user_id, "action": interaction.action, "cluster": interaction.value.cluster,
        "fingerprint": interaction.value.fingerprint, "node": interaction.value.node, "text": result.text})
    return result.to_dict()


aws_clients.on_reset(settings.cache_clear)
aws_clients.on_reset(actions.cache_clear)
aws_clients.on_reset(rules.cache_clear)
aws_clients.on_reset(once.cache_clear)


@functools.cache
def processor() -> BatchProcessor:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    # a click's failure is its own, whoever shared its batch (handlers/worker.py)
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def prime() -> None:
    """Load what the first click would: the stores and the Web API client, the rules store's client, the
    idempotency layer and the batch processor. No AWS or Slack call (the bot token is read with the first click)."""
    rules().prime()
    once()
    processor()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    idempotency, carry_out = once()
    idempotency.register_lambda_context(context)

    def record_handler(record: SQSRecord) -> None:
        try:
            interaction = Interaction.model_validate_json(record.body)
        except ValueError:  # pydantic's ValidationError: not what the endpoint queues; ends in the DLQ
            logger.exception("malformed click message", extra={"message_id": record.message_id})
            count(metrics, Metric.CHATOPS_FAILED)
            raise
        try:
            carry_out(click={**interaction.model_dump(mode="json"), "key": interaction.key})
        except Exception:
            logger.exception("carrying out a click failed; SQS delivers it again", extra={
                "message_id": record.message_id, "user": interaction.user_id, "action": interaction.action})
            count(metrics, Metric.CHATOPS_FAILED)
            raise

    response = process_partial_response(event=event, record_handler=record_handler, processor=processor(),
                                        context=context)
    logger.info("batch done", extra={"messages": len(event.get("Records", [])),
                                     "failed": len(response["batchItemFailures"])})
    return response


prime_at_init(prime)
