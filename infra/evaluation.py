"""Evaluation: the ledger table, the rules seed, the evaluator and the sweep."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from constructs import Construct

from hyperpod_guard import ledger_store, naming, silences
from hyperpod_guard.ledger_store import OPEN_INDEX, OPEN_INDEX_ACTIONS, RESOLVED_INDEX, TTL_ATTRIBUTE
from hyperpod_guard.remediation import actions as remediation_actions
from hyperpod_guard.remediation import store as remediation_store
from hyperpod_guard.settings import EvaluatorSettings, SweepSettings

from .common import event_accounts, python_function, secure_queue
from .config import Config
from .rules_seed import RulesSeed

#: what the evaluator and the sweep read (ListTags: the cluster's tags, for rules that select clusters by tag)
SAGEMAKER_READ = ("sagemaker:DescribeCluster", "sagemaker:DescribeClusterNode", "sagemaker:ListClusterNodes",
                  "sagemaker:ListTags")
#: granted only with -c remediation=true
SAGEMAKER_REMEDIATE = tuple(f"sagemaker:{operation}" for operation in remediation_actions.API_OPERATIONS)
#: what the evaluator and the sweep call on the ledger table: declared next to the calls (dry runs
#: use the remediation store too, so it is granted with or without -c remediation=true)
TABLE_ACTIONS = tuple(sorted({*ledger_store.TABLE_ACTIONS, *remediation_store.TABLE_ACTIONS,
                             *silences.TABLE_ACTIONS}))


class Evaluation(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, topic: sns.ITopic, key: kms.IKey):
        super().__init__(scope, id)
        # mirrors hyperpod_guard.ledger_store.TABLE_DEFINITION (checked by the infra tests)
        self.table = dynamodb.Table(
            self, "Ledger", table_name=naming.table_name(config.prefix),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED, removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=OPEN_INDEX, projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            partition_key=dynamodb.Attribute(name="open_pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="open_sk", type=dynamodb.AttributeType.STRING),
        )
        # read by `hyperpod-guard alerts --state resolved` only (operators' credentials): no function grant
        self.table.add_global_secondary_index(
            index_name=RESOLVED_INDEX, projection_type=dynamodb.ProjectionType.ALL,
            partition_key=dynamodb.Attribute(name="resolved_pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="resolved_sk", type=dynamodb.AttributeType.STRING),
        )
        # rules written only where none exist (infra/rules_seed.py): a deploy never undoes a `rules push`
        self.rules_seed = RulesSeed(self, "RulesSeed", config=config) if config.seed_rules else None
        # the functions' own settings (hyperpod_guard.settings); the others keep their defaults there
        values: dict[str, str | bool] = {
            "table_name": self.table.table_name, "topic_arn": topic.topic_arn, "rules_path": config.rules_path,
            # seeded rules that vanish are an alert; unseeded, an empty path means the defaults
            "rules_required": config.seed_rules,
            # the evaluator ignores events of other accounts (and regions) than these, as the rule does
            "event_accounts": ",".join(event_accounts(config)),
        }
        environment = EvaluatorSettings.environment(**values)
        self.failures = secure_queue(self, "EvaluatorFailures", config=config, name="evaluator-failures")
        self.evaluator = python_function(
            self, "Evaluator", config=config, name="evaluator", handler="hyperpod_guard.handlers.evaluator.handler",
            description="hyperpod-guard: evaluates one HyperPod event against the rules and alerts",
            # measured on the dev machine: ~100 MB peak RSS with the four clients; imports ~0.06 s at init and
            # ~0.35 s with the first event (benchmarks/: the pipeline loads lazily);
            # 512 MB (a third of a vCPU) keeps the cold start short; the work itself is ~2 API round trips
            memory_mb=512, timeout=Duration.seconds(60), environment=environment,
        )
        self.evaluator.configure_async_invoke(
            retry_attempts=2, max_event_age=Duration.hours(6), on_failure=destinations.SqsDestination(self.failures),
        )
        self.sweep = python_function(
            self, "Sweep", config=config, name="sweep", handler="hyperpod_guard.handlers.sweep.handler",
            description="hyperpod-guard: re-evaluates every cluster on a schedule",
            memory_mb=512, timeout=Duration.minutes(5), environment=SweepSettings.environment(**values),
        )
        self.schedule = events.Rule(
            self, "SweepSchedule", rule_name=f"{config.prefix}-sweep",
            description="hyperpod-guard: periodic re-evaluation of every cluster",
            schedule=events.Schedule.rate(Duration.minutes(config.sweep_rate_minutes)),
            targets=[targets.LambdaFunction(self.sweep, retry_attempts=0)],
        )
        for function in (self.evaluator, self.sweep):
            self._grant(function, config, topic, key)
        # only the sweep lists the open alerts (the clusters that may have been deleted)
        self.sweep.add_to_role_policy(iam.PolicyStatement(
            actions=list(OPEN_INDEX_ACTIONS), resources=[f"{self.table.table_arn}/index/{OPEN_INDEX}"],
        ))

    def _grant(self, function: lambda_.Function, config: Config, topic: sns.ITopic, key: kms.IKey) -> None:
        # not table.grantReadWriteData: it adds Scan, BatchWriteItem, DeleteItem, streams... never called
        function.add_to_role_policy(iam.PolicyStatement(actions=list(TABLE_ACTIONS), resources=[self.table.table_arn]))
        # not topic.grantPublish: it grants kms:GenerateDataKey* (a wildcard action) for the key
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn],
        ))
        clusters = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster/*"
        function.add_to_role_policy(iam.PolicyStatement(actions=list(SAGEMAKER_READ), resources=[clusters]))
        # ListClusters has no resource-level permissions
        function.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:ListClusters"], resources=["*"]))
        path = f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{config.rules_path}"
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["ssm:GetParametersByPath"], resources=[path, f"{path}/*"],
        ))
        if config.remediation:
            function.add_to_role_policy(iam.PolicyStatement(actions=list(SAGEMAKER_REMEDIATE), resources=[clusters]))
