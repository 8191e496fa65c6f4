"""Evaluation: the ledger table, the rules seed, the evaluator, the sweep, and the worker that evaluates
the clusters the sweep hands over through the work queue."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from constructs import Construct

from hyperpod_guard import grouping, ledger_store, naming, silences
from hyperpod_guard.ledger_store import (
    OPEN_INDEX,
    OPEN_INDEX_ACTIONS,
    RESOLVED_INDEX,
    RESOLVED_INDEX_ACTIONS,
    TTL_ATTRIBUTE,
)
from hyperpod_guard.remediation import actions as remediation_actions
from hyperpod_guard.remediation import store as remediation_store
from hyperpod_guard.settings import EvaluatorSettings, SweepSettings, WorkQueueSettings

from .common import believed_accounts, python_function, secure_queue, work_queue
from .config import Config
from .rules_seed import RulesSeed

#: what the evaluator and the sweep read (ListTags: the cluster's tags, for rules that select clusters by tag)
SAGEMAKER_READ = ("sagemaker:DescribeCluster", "sagemaker:DescribeClusterNode", "sagemaker:ListClusterNodes",
                  "sagemaker:ListTags")
#: the HyperPod feature reads (cluster_reader.py, issue 19), on the cluster ARN: operations and extensions
#: (the sweep's reads, made by the worker; operations also by an event of a cluster scaling), Cluster Events
#: (the backfill of Continuous-provisioning clusters)
SAGEMAKER_FEATURE_READ = ("sagemaker:DescribeClusterEvent", "sagemaker:DescribeClusterExtension",
                          "sagemaker:DescribeClusterOperation", "sagemaker:ListClusterEvents",
                          "sagemaker:ListClusterExtensions", "sagemaker:ListClusterOperations")
#: ... and the training plans the groups run on, on the training-plan ARN
SAGEMAKER_PLAN_READ = ("sagemaker:DescribeTrainingPlan",)
#: granted only with -c remediation=true
SAGEMAKER_REMEDIATE = tuple(f"sagemaker:{operation}" for operation in remediation_actions.API_OPERATIONS)
#: what the evaluator and the sweep call on the ledger table: declared next to the calls (dry runs
#: use the remediation store too, so it is granted with or without -c remediation=true)
TABLE_ACTIONS = tuple(sorted({*ledger_store.TABLE_ACTIONS, *remediation_store.TABLE_ACTIONS,
                             *silences.TABLE_ACTIONS, *grouping.TABLE_ACTIONS}))
#: what the sweep calls on the table now that it fans out: the rules-invalid alert's records, read (Query),
#: committed and confirmed (transactions of Put and Update items); and the `open` index (OPEN_INDEX_ACTIONS).
#: The clusters' records are the worker's. tests/infra/test_dynamodb_grants.py checks this against the calls
SWEEP_TABLE_ACTIONS = ("dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem")

# The sweep's fan-out (handlers/worker.py); benchmarks/sweep_projection.py projects with these numbers.
#: the worker's size: a 256-group cluster is the heaviest message (measured: ~0.13 s CPU on its first
#: evaluation, 9 AWS calls; ~0.46 s at 512 MB's 0.29 vCPU), so a batch of WORK_BATCH_SIZE takes a few
#: seconds, far below the timeout; a small cluster ~6 ms
WORKER_MEMORY_MB = 512
WORKER_TIMEOUT_S = 60
#: clusters per invocation: one cluster's failure is its own message's (ReportBatchItemFailures), so a
#: batch only shares the invocation (the rules and silences caches, a warm container); 5 keeps the slowest
#: batch at ~3 s (256 groups each) while WORK_MAX_CONCURRENCY workers take 100 clusters a round
WORK_BATCH_SIZE = 5
#: workers at once (the event source's maximum concurrency): 1,000 clusters in 10 rounds; projected 28-47 s
#: (38-57 s with 20 ms per AWS call and a cold start; two runs) for 1,000 clusters of 256 groups, the
#: sweep's own time included: within half the 5-minute interval, with room for clusters with many nodes
#: (the synthetic one lists none). Bounded so that SageMaker's and DynamoDB's request rates, and the
#: account's Lambda concurrency the evaluator shares, stay modest
WORK_MAX_CONCURRENCY = 20
#: receives before a message goes to the dead-letter queue: a cluster that fails three times in a
#: row is not a blip (botocore already retried each call five times)
WORK_MAX_RECEIVES = 3
#: AWS recommends a source queue's visibility timeout of at least six times the function's timeout
WORK_VISIBILITY_S = 6 * WORKER_TIMEOUT_S
#: a message is stale once newer sweeps have sent their own; longer than WORK_MAX_RECEIVES visibility
#: timeouts, so that a failing message reaches the dead-letter queue before it expires
WORK_RETENTION_S = 3600


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
            # the evaluator ignores events of other accounts (and regions) than these, as the rules do
            "event_accounts": believed_accounts(config),
        }
        # the sweep sends one message per cluster here, and grouping (any evaluation) its delayed flushes;
        # the worker does both kinds of work
        self.work_queue, self.work_dlq = work_queue(
            self, "Work", config=config, name="work", visibility_timeout=Duration.seconds(WORK_VISIBILITY_S),
            max_receive_count=WORK_MAX_RECEIVES, retention=Duration.seconds(WORK_RETENTION_S),
        )
        work = WorkQueueSettings.environment(work_queue_url=self.work_queue.queue_url)
        environment = {**EvaluatorSettings.environment(**values), **work}
        self.failures = secure_queue(self, "EvaluatorFailures", config=config, name="evaluator-failures")
        self.evaluator = python_function(
            self, "Evaluator", config=config, name="evaluator", handler="hyperpod_guard.handlers.evaluator.handler",
            description="hyperpod-guard: evaluates one HyperPod event against the rules and alerts",
            # measured on the dev machine: ~100 MB peak RSS with the four clients; imports ~0.06 s at init and
            # ~0.35 s with the first event (benchmarks/: the pipeline loads lazily);
            # 512 MB (a third of a vCPU) keeps the cold start short; the work itself is ~2 API round trips
            memory_mb=512, timeout=Duration.seconds(60), environment=environment,
        )
        # on the alias the rule invokes: async invoke settings are per qualifier
        self.evaluator.live.configure_async_invoke(
            retry_attempts=2, max_event_age=Duration.hours(6), on_failure=destinations.SqsDestination(self.failures),
        )
        self.sweep = python_function(
            self, "Sweep", config=config, name="sweep", handler="hyperpod_guard.handlers.sweep.handler",
            description="hyperpod-guard: re-evaluates every cluster on a schedule (through the worker)",
            memory_mb=512, timeout=Duration.minutes(5),
            environment={**SweepSettings.environment(**values), **work},
        )
        self.worker = python_function(
            self, "Worker", config=config, name="worker", handler="hyperpod_guard.handlers.worker.handler",
            description="hyperpod-guard: evaluates the clusters the sweep hands over, sends grouped messages",
            memory_mb=WORKER_MEMORY_MB, timeout=Duration.seconds(WORKER_TIMEOUT_S), environment=environment,
        )
        self.worker.live.add_event_source(event_sources.SqsEventSource(
            self.work_queue, batch_size=WORK_BATCH_SIZE, max_concurrency=WORK_MAX_CONCURRENCY,
            report_batch_item_failures=True,
        ))
        self.schedule = events.Rule(
            self, "SweepSchedule", rule_name=f"{config.prefix}-sweep",
            description="hyperpod-guard: periodic re-evaluation of every cluster",
            schedule=events.Schedule.rate(Duration.minutes(config.sweep_rate_minutes)),
            targets=[targets.LambdaFunction(self.sweep.live, retry_attempts=0)],
        )
        for function in (self.evaluator, self.worker):
            self._grant(function.function, config, topic, key)
        self._grant_sweep(config, topic, key)

    def _grant_sweep(self, config: Config, topic: sns.ITopic, key: kms.IKey) -> None:
        """What the sweep itself calls: the rules and their alert (its records in the ledger, SNS),
        ListClusters, the open index, and the work queue. Reading and evaluating clusters is the worker's."""
        sweep = self.sweep.function
        self._grant_rules_and_alerts(sweep, config, topic, key, SWEEP_TABLE_ACTIONS)
        sweep.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:ListClusters"], resources=["*"]))
        # only the sweep lists the open alerts (the clusters that may have been deleted), and the resolved ones
        # not archived yet (archive.py: an episode whose put failed is archived by the next sweep)
        sweep.add_to_role_policy(iam.PolicyStatement(
            actions=list(OPEN_INDEX_ACTIONS), resources=[f"{self.table.table_arn}/index/{OPEN_INDEX}"],
        ))
        sweep.add_to_role_policy(iam.PolicyStatement(
            actions=list(RESOLVED_INDEX_ACTIONS), resources=[f"{self.table.table_arn}/index/{RESOLVED_INDEX}"],
        ))
        # not queue.grantSendMessages: it adds GetQueueAttributes and GetQueueUrl, never called
        # (SendMessageBatch is authorised as sqs:SendMessage)
        sweep.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"],
                                                     resources=[self.work_queue.queue_arn]))

    def _grant_rules_and_alerts(self, function: lambda_.Function, config: Config, topic: sns.ITopic, key: kms.IKey,
                                table_actions: tuple[str, ...]) -> None:
        function.add_to_role_policy(iam.PolicyStatement(actions=list(table_actions), resources=[self.table.table_arn]))
        # not topic.grantPublish: it grants kms:GenerateDataKey* (a wildcard action) for the key
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn],
        ))
        path = f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{config.rules_path}"
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["ssm:GetParametersByPath"], resources=[path, f"{path}/*"],
        ))

    def _grant(self, function: lambda_.Function, config: Config, topic: sns.ITopic, key: kms.IKey) -> None:
        """What evaluating clusters needs (the evaluator and the worker)."""
        # not table.grantReadWriteData: it adds Scan, BatchWriteItem, DeleteItem, streams... never called
        self._grant_rules_and_alerts(function, config, topic, key, TABLE_ACTIONS)
        clusters = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster/*"
        function.add_to_role_policy(iam.PolicyStatement(actions=list(SAGEMAKER_READ), resources=[clusters]))
        self._grant_feature_reads(function, clusters)
        # ListClusters has no resource-level permissions
        function.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:ListClusters"], resources=["*"]))
        if config.remediation:
            function.add_to_role_policy(iam.PolicyStatement(actions=list(SAGEMAKER_REMEDIATE), resources=[clusters]))
        # grouping: an evaluation schedules its cluster's flush on the work queue (a flush that comes early re-queues)
        function.add_to_role_policy(iam.PolicyStatement(actions=list(grouping.QUEUE_ACTIONS),
                                                        resources=[self.work_queue.queue_arn]))

    def _grant_feature_reads(self, function: lambda_.Function, clusters: str) -> None:
        """The HyperPod feature reads, in a policy of their own: cfn-lint's IAM data (W3037) does not know
        the operations and extensions actions yet (sagemaker:ListClusterOperations, DescribeClusterOperation,
        ListClusterExtensions, DescribeClusterExtension: operations of botocore's model, whose IAM actions are
        named after them), so the check is ignored here only, not for the role's other statements."""
        plans = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:training-plan/*"
        policy = iam.Policy(self, f"{function.node.id}FeatureReads", statements=[
            iam.PolicyStatement(actions=list(SAGEMAKER_FEATURE_READ), resources=[clusters]),
            iam.PolicyStatement(actions=list(SAGEMAKER_PLAN_READ), resources=[plans]),
        ])
        assert function.role is not None
        policy.attach_to_role(function.role)
        cfn = policy.node.default_child
        assert isinstance(cfn, iam.CfnPolicy)
        cfn.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
