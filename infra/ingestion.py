"""Ingestion: the EventBridge rule that sends HyperPod's events to the evaluator."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from hyperpod_guard.events import DETAIL_TYPES, SOURCE

from .common import event_accounts, secure_queue
from .config import Config

#: Which events: all three HyperPod detail-types; the evaluator filters in code (EventBridge cannot
#: match fields inside arrays of objects such as InstanceGroups[].Status reliably). The rule adds from
#: whom, `account`: this deployment's own and the `eventAccounts` allow-list (common.event_accounts),
#: so that a bus policy admitting other accounts does not make their clusters' events ours.
EVENT_PATTERN = {"source": [SOURCE], "detail-type": list(DETAIL_TYPES)}


class Ingestion(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, evaluator: lambda_.IFunction):
        """`evaluator`: what the rule invokes, the evaluator's `live` alias (common.PythonFunction)."""
        super().__init__(scope, id)
        self.dlq = secure_queue(self, "EventsDlq", config=config, name="events-dlq")
        self.rule = events.Rule(
            self, "HyperPodEvents", rule_name=f"{config.prefix}-hyperpod-events",
            description="hyperpod-guard: SageMaker HyperPod state change, node health and cluster events",
            event_pattern=events.EventPattern(
                source=EVENT_PATTERN["source"], detail_type=EVENT_PATTERN["detail-type"],
                account=event_accounts(config),
            ),
            targets=[targets.LambdaFunction(
                evaluator, dead_letter_queue=self.dlq, retry_attempts=8, max_event_age=Duration.hours(6),
            )],
        )
