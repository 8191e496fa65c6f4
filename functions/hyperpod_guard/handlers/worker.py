"""SQS -> Lambda: the work queue, a few messages per invocation. Thin: Powertools' batch utility around
one function per kind of message.

The sweep (handlers/sweep.py) lists the clusters and sends one message per cluster here instead of
evaluating 1,000 clusters in one Lambda's 5 minutes; the event source mapping runs up to its maximum
concurrency of these at once (infra/evaluation.py sizes both). A message that fails is reported in
`batchItemFailures` (the mapping has ReportBatchItemFailures): only it comes back, after the queue's
visibility timeout, until maxReceiveCount moves it to the dead-letter queue (alarmed). The others of
its batch are done and deleted.

Messages are small JSON objects told apart by `kind` (`WorkMessage`); what each kind does is in
`HANDLERS`. A new kind: its model in `WorkMessage`, its function in `HANDLERS`, nothing else.
- `evaluate-cluster`: evaluate one cluster as the inline sweep does (`service.evaluate_cluster` with
  every node listed), with the rules and the active silences as they are now.
- `flush-group`: send a cluster's owed notifications as one grouped message (grouping.py,
  `service.flush_group`); sent by any evaluation with grouping on, delayed until it is due.

Duplicated and late messages are harmless: SQS delivers at least once, and a retried message may come
after the next sweep's. The worker does not evaluate "as of the sweep": it reads the cluster and the
ledger as they are now (the message's `at` is for the logs), so a late message is one more evaluation
of the present state, like an event that arrives during a sweep. The ledger writes each decision on
condition that nobody wrote since, and a notification is claimed before it is sent and confirmed after
(pipeline.py): a second evaluation of the same state finds nothing to send
(tests/integration/test_sweep_fanout.py: test_a_message_delivered_twice_notifies_once).

Environment: settings.EvaluatorSettings (as the evaluator). Metrics carry the sweep's `service`:
this is the sweep's work, done elsewhere (the dashboard's sweep lines stay whole).

Importing this module loads pydantic and the messages; the pipeline and Powertools' batch utility load
with the first message, unless the init is one no message waits for (SnapStart's, provisioned
concurrency's): then `prime` loads them (observability.prime_at_init), as the evaluator's does. Only
in the worker's own init: the sweep imports this module for `WorkQueue` and the messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from .. import aws_clients
from ..constants import Metric, Service, Var
from ..errors import HyperPodGuardError
from ..grouping import FlushGroup
from .observability import capture_handler, count, make_logger, make_metrics, prime_at_init, record_outcomes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..alerting import Outcome
    from ..service import Runtime

logger = make_logger()
metrics = make_metrics(Service.SWEEP)

#: set by Lambda: the handler its runtime imports, "hyperpod_guard.handlers.worker.handler" in the worker
HANDLER: Var[str] = Var("_HANDLER", str, "")
#: SendMessageBatch takes at most 10 entries
SEND_BATCH = 10
#: SendMessageBatch calls for the entries SQS refused with a fault of its own (throttled, unavailable)
SEND_ATTEMPTS = 3


# -- the messages ------------------------------------------------------------------------------------


class EvaluateCluster(BaseModel):
    """Evaluate `cluster` as the sweep does. `run` and `at`: the sweep run that sent it (its token and
    time), for the logs; the evaluation itself is as of now."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["evaluate-cluster"] = "evaluate-cluster"
    cluster: str
    run: str
    at: AwareDatetime
    #: what the sweep's ListClusters said of the cluster's images (a worker does not list clusters again)
    image_version_status: str | None = None


#: every message of the work queue, told apart by `kind`
WorkMessage = Annotated[EvaluateCluster | FlushGroup, Field(discriminator="kind")]


@functools.cache
def _messages() -> TypeAdapter[WorkMessage]:
    return TypeAdapter(WorkMessage)


def parse(body: str) -> WorkMessage:
    """A message's body as its model; pydantic's ValidationError for an unknown kind or a bad field."""
    return _messages().validate_json(body)


class WorkNotQueued(HyperPodGuardError):
    """SQS refused some messages: their work was not handed over (the next run sends it again)."""


class WorkQueue:
    """The sending side: messages in SendMessageBatch calls of SEND_BATCH."""

    def __init__(self, queue_url: str, sqs: Any):
        self.queue_url = queue_url
        self.sqs = sqs

    def send(self, messages: Sequence[WorkMessage]) -> None:
        """Send every message, or raise WorkNotQueued naming the ones SQS refused (those sent stay
        sent: a message twice is harmless, see the module)."""
        refused: list[str] = []
        for start in range(0, len(messages), SEND_BATCH):
            pending = {str(i): m for i, m in enumerate(messages[start:start + SEND_BATCH])}
            for _ in range(SEND_ATTEMPTS):
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": entry_id, "MessageBody": m.model_dump_json()} for entry_id, m in pending.items()])
                failed = {f["Id"]: f for f in response.get("Failed", [])}
                # the sender's fault (too large, malformed) fails again: only SQS's own faults are retried
                refused += [f"{pending[i].model_dump_json()}: {f.get('Code')}" for i, f in failed.items()
                            if f.get("SenderFault")]
                pending = {i: pending[i] for i, f in failed.items() if not f.get("SenderFault")}
                if not pending:
                    break
            refused += [f"{m.model_dump_json()}: not accepted after {SEND_ATTEMPTS} attempts" for m in pending.values()]
        if refused:
            raise WorkNotQueued(f"{len(refused)} of {len(messages)} message(s) not queued: {'; '.join(refused[:10])}")


# -- what each kind does -----------------------------------------------------------------------------


@functools.cache
def runtime() -> Runtime:
    from ..service import Runtime
    from ..settings import EvaluatorSettings

    return Runtime.from_env(EvaluatorSettings.from_env())


aws_clients.on_reset(runtime.cache_clear)  # tests point the clients elsewhere


def evaluate(message: EvaluateCluster, record: SQSRecord) -> list[Outcome]:
    """One cluster, as the inline sweep evaluates each (service.sweep): every node listed."""
    from .. import clock
    from ..cluster_reader import ClusterSummary
    from ..service import check_rules, evaluate_cluster, new_token

    rt, now, token = runtime(), clock.now(), new_token(record.message_id)
    extra = {"cluster": message.cluster, "sweep_run": message.run, "message_id": record.message_id,
             "age_s": round((now - message.at).total_seconds(), 1)}
    try:
        # the rules as any evaluation loads them; their alert's resolution is the sweep's (always=True there)
        loaded, rules_outcome = check_rules(rt, now, token)
        if loaded.error:
            logger.warning("rules are invalid; evaluating with fallback rules", extra={**extra, "reason": loaded.error})
        listed = ClusterSummary(message.cluster, image_version_status=message.image_version_status)
        evaluation, outcome = evaluate_cluster(rt, message.cluster, None, loaded.rules, now, token, list_nodes=True,
                                               silences=rt.active_silences(now), summary=listed)
    except Exception:
        logger.exception("evaluating cluster %s failed; SQS delivers the message again", message.cluster, extra=extra)
        count(metrics, Metric.SWEEP_ERRORS)
        raise
    count(metrics, Metric.SWEEP_EVALUATED)
    logger.info("cluster evaluated", extra={**extra, "findings": len(evaluation.findings)})
    return [o for o in (rules_outcome, outcome) if o is not None]


def flush(message: FlushGroup, record: SQSRecord) -> list[Outcome]:
    """A cluster's grouped message is due: its owed notifications, as one message (grouping.py)."""
    from .. import clock
    from ..service import flush_group, new_token

    outcome = flush_group(runtime(), message, clock.now(), new_token(record.message_id))
    logger.info("group flushed" if outcome else "flush superseded or early",
                extra={"cluster": message.cluster, "flush_id": message.flush_id, "message_id": record.message_id,
                       "notified": len(outcome.notification.items) if outcome and outcome.notification else 0})
    return [outcome] if outcome is not None else []


#: kind -> what the worker does with such a message: the notifications it led to (for the metrics)
HANDLERS: dict[str, Callable[[Any, SQSRecord], list[Outcome]]] = {
    "evaluate-cluster": evaluate,
    "flush-group": flush,
}


# -- the Lambda --------------------------------------------------------------------------------------


@functools.cache
def processor() -> BatchProcessor:
    # imported here: Powertools' batch package loads its parser models (~0.1 s), and the sweep imports
    # this module for WorkQueue and the messages only
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    # a batch whose every message failed is answered like any other (each message in batchItemFailures),
    # not raised: a message's failure is its own, whoever shared its batch; SweepErrors counts it
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def prime() -> None:
    """Load what the first message would: the pipeline, the runtime and its clients, the rules store's
    SSM client, the messages' model and Powertools' batch processor. No AWS call: a connection would
    not outlive a snapshot, and the cluster, the rules and the silences are read when a message comes."""
    runtime().rules.prime()
    _messages()
    processor()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    outcomes: list[Outcome] = []

    def record_handler(record: SQSRecord) -> None:
        try:
            message = parse(record.body)
        except ValueError:  # pydantic's ValidationError: fails alone, and ends in the dead-letter queue
            logger.exception("malformed work message", extra={"message_id": record.message_id})
            raise
        outcomes.extend(HANDLERS[message.kind](message, record))

    response = process_partial_response(event=event, record_handler=record_handler, processor=processor(),
                                        context=context)
    record_outcomes(metrics, outcomes)
    logger.info("batch done", extra={"messages": len(event.get("Records", [])),
                                     "failed": len(response["batchItemFailures"])})
    return response


if HANDLER.read().startswith(f"{__name__}."):  # the worker's init, not the sweep's (see the module)
    prime_at_init(prime)
