"""Ingestion: the EventBridge rule that sends HyperPod's events to the evaluator (and, on a hub, the same
rule on the fleet bus: infra/fleet.py)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hyperpod_guard.events import DETAIL_TYPES, SOURCE

from .common import event_accounts, secure_queue
from .config import Config

#: Which events: all three HyperPod detail-types; the evaluator filters in code (EventBridge cannot
#: match fields inside arrays of objects such as InstanceGroups[].Status reliably). The rule adds from
#: whom, `account`: this deployment's own and the spoke accounts (common.event_accounts), so that a bus
#: policy admitting other accounts does not make their clusters' events ours.
EVENT_PATTERN = {"source": [SOURCE], "detail-type": list(DETAIL_TYPES)}


def hyperpod_rule(scope: Construct, id: str, *, name: str, description: str, accounts: Sequence[str] | None,
                  evaluator: lambda_.IFunction, dlq: sqs.IQueue, event_bus: events.IEventBus | None = None,
                  ) -> events.Rule:
    """A rule on `event_bus` (default: the account's default bus) sending EVENT_PATTERN's events from `accounts`
    (None: from whoever the bus admits) to `evaluator`, the evaluator's `live` alias: an event the evaluator
    cannot take is retried for 6 hours, then kept in `dlq`."""
    return events.Rule(
        scope, id, rule_name=name, description=description, event_bus=event_bus,
        event_pattern=events.EventPattern(
            source=EVENT_PATTERN["source"], detail_type=EVENT_PATTERN["detail-type"],
            account=list(accounts) if accounts is not None else None,
        ),
        targets=[targets.LambdaFunction(
            evaluator, dead_letter_queue=dlq, retry_attempts=8, max_event_age=Duration.hours(6),
        )],
    )


class Ingestion(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, evaluator: lambda_.IFunction):
        """`evaluator`: what the rule invokes, the evaluator's `live` alias (common.PythonFunction)."""
        super().__init__(scope, id)
        self.dlq = secure_queue(self, "EventsDlq", config=config, name="events-dlq")
        self.rule = hyperpod_rule(
            self, "HyperPodEvents", name=f"{config.prefix}-hyperpod-events",
            description="hyperpod-guard: SageMaker HyperPod state change, node health and cluster events",
            accounts=event_accounts(config), evaluator=evaluator, dlq=self.dlq,
        )
