"""The hyperpod-guard stack: ingestion -> evaluation -> alerting, plus monitoring."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from hyperpod_guard import naming
from hyperpod_guard.ledger_store import IDEMPOTENCY_ACTIONS, IDEMPOTENCY_PK

from .alerting import Alerting
from .archive import Archive
from .chatops import ChatOps
from .config import Config
from .digest import WeeklyDigest
from .evaluation import Evaluation
from .fleet import Fleet
from .ingestion import Ingestion
from .monitoring import Monitoring
from .workload import Workload


class HyperPodGuardStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs: Any):
        super().__init__(scope, id, description="hyperpod-guard: policy checks and alerts for SageMaker HyperPod",
                         **kwargs)
        self.config = config
        self.alerting = Alerting(self, "Alerting", config=config)
        self.evaluation = Evaluation(self, "Evaluation", config=config, topic=self.alerting.topic,
                                     key=self.alerting.key)
        # triggers invoke each function's `live` alias (SnapStart); alarms and graphs read the function's metrics,
        # which CloudWatch sums over its versions (FunctionName dimension)
        self.ingestion = Ingestion(self, "Ingestion", config=config, evaluator=self.evaluation.evaluator.live)
        functions = {"evaluator": self.evaluation.evaluator.function, "sweep": self.evaluation.sweep.function,
                     "worker": self.evaluation.worker.function}
        # the episode archive: every evaluation (and the sweep's retries) writes the episodes that resolved
        self.archive = Archive(self, "Archive", config=config)
        for writer in (self.evaluation.evaluator, self.evaluation.sweep, self.evaluation.worker):
            self.archive.grant_write(writer.function)
        # the weekly digest (-c weeklyDigest=true): alarmed and graphed with the other functions
        self.digest: WeeklyDigest | None = None
        if config.weekly_digest:
            self.digest = WeeklyDigest(self, "WeeklyDigest", config=config, archive=self.archive,
                                       table=self.evaluation.table, topic=self.alerting.topic, key=self.alerting.key)
            functions["digest"] = self.digest.function.function
        # the work queue itself is busy by design (its backlog is on the dashboard); its DLQ is alarmed
        queues = {"events-dlq": self.ingestion.dlq, "evaluator-failures": self.evaluation.failures,
                  "work-dlq": self.evaluation.work_dlq}
        if self.alerting.notifier:
            functions["slack-notifier"] = self.alerting.notifier.function
            queues["slack-dlq"] = self.alerting.notifier_dlq
            self._remember_deliveries(self.alerting.notifier.function)
        # Slack app mode (-c slackMode=app): the buttons' endpoint and the worker that carries the clicks out
        self.chatops: ChatOps | None = None
        if config.slack_app and self.alerting.notifier:
            self.chatops = ChatOps(self, "ChatOps", config=config, table=self.evaluation.table,
                                   notifier=self.alerting.notifier, work_queue_=self.evaluation.work_queue)
            functions["slack-interactivity"] = self.chatops.endpoint.function
            functions["slack-actions"] = self.chatops.actions.function
            queues["slack-actions-dlq"] = self.chatops.dlq
        # a hub (-c spokeAccounts=... or -c organizationId=...): the fleet bus, its rule, the spoke roles to assume
        self.fleet: Fleet | None = None
        if config.fleet:
            self.fleet = Fleet(self, "Fleet", config=config, evaluator=self.evaluation.evaluator.live,
                               dlq=self.ingestion.dlq,
                               readers=[self.evaluation.evaluator.function, self.evaluation.sweep.function,
                                        self.evaluation.worker.function],
                               informed=[self.chatops.actions.function] if self.chatops else [])
        # the blast radius (-c workloadEksClusters=..., -c workloadSlurm=true, -c lambdaSubnets=... with
        # -c lambdaSecurityGroups=...): the functions that evaluate clusters read the work on a sick node
        self.workload: Workload | None = None
        if config.workload:
            self.workload = Workload(self, "Workload", config=config,
                                     evaluating=[self.evaluation.evaluator.function, self.evaluation.worker.function])
        self.monitoring = Monitoring(self, "Monitoring", config=config, key=self.alerting.key,
                                     functions=functions, queues=queues, sweep=self.evaluation.sweep.function,
                                     work_queue=self.evaluation.work_queue, chatops=self.chatops is not None)
        CfnOutput(self, "AlertsTopicArn", value=self.alerting.topic.topic_arn)
        CfnOutput(self, "OperationsTopicArn", value=self.monitoring.ops_topic.topic_arn)
        CfnOutput(self, "LedgerTableName", value=self.evaluation.table.table_name)
        CfnOutput(self, "RulesPath", value=config.rules_path)
        if self.alerting.slack_secret:
            CfnOutput(self, "SlackWebhookSecret", value=self.alerting.slack_secret.secret_name)
        if self.alerting.receiver_secrets:
            # one output for all: an output's logical id keeps only the letters and digits of its id, so one
            # per receiver would make `ml-oncall` and `mloncall` collide
            CfnOutput(self, "SlackReceiverSecrets",
                      value=",".join(naming.slack_receiver_secret_name(config.prefix, name)
                                     for name in self.alerting.receiver_secrets),
                      description="the named Slack receivers' secrets (comma-separated): put each one's webhook URL in")
        self._acknowledge()

    def _remember_deliveries(self, notifier: lambda_.Function) -> None:
        """The Slack notifier keeps Powertools idempotency records (one per SNS message id) in the
        ledger table, so that a redelivered message is not posted twice: the item calls Powertools
        makes, on its own records only (partition key IDEMPOTENCY), never on the alerts."""
        table = self.evaluation.table
        notifier.add_environment("TABLE_NAME", table.table_name)
        notifier.add_to_role_policy(iam.PolicyStatement(
            actions=list(IDEMPOTENCY_ACTIONS), resources=[table.table_arn],
            # ForAllValues: every partition key the request touches must be IDEMPOTENCY
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [IDEMPOTENCY_PK]}},
        ))

    def _acknowledge(self) -> None:
        """cdk-nag findings we accept, each with its reason."""
        def ack(scope: Construct, rule: str, reason: str) -> None:
            Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))

        ack(self,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The managed basic execution role grants only CloudWatch Logs writes to the function's own log group.")
        ack(self, "AwsSolutions-IAM5[Resource::*]",
            "sagemaker:ListClusters has no resource-level permissions; KMS key policies name the key itself as '*'.")
        ack(self,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:cluster/*]",
            "HyperPod cluster ARNs carry a generated cluster id, not the name: "
            "clusters of this account and region only.")
        ack(self,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-plan/*]",
            "sagemaker:DescribeTrainingPlan only, for the plans the clusters' groups name (TrainingPlanArn), "
            "which are bought outside this stack: training plans of this account and region only.")
        parameters = f"arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter{self.config.rules_path}/*"
        ack(self, f"AwsSolutions-IAM5[Resource::{parameters}]",
            "The rules are every parameter under the rules path (several parameters, merged).")
        ack(self, "AwsSolutions-SMG4",
            "A Slack incoming-webhook URL cannot be rotated by a Lambda: Slack issues it; rotate it by hand in Slack.")
        ack(self, "AwsSolutions-SQS3",
            "These queues are the dead-letter/failure queues themselves; a DLQ of a DLQ would only move the problem.")
