"""The weekly digest (`-c weeklyDigest=true`, issue 21): a function on a schedule (`digestSchedule`, Mondays
08:00 UTC by default) that reads the last week's episodes from the archive and the open alerts from the
ledger, and publishes ONE summary message to the alerts topic (handlers/digest.py, notify/digest.py).
Off by default: nothing of it exists without the flag.

IAM, exactly what it calls: the archive read (Archive.grant_read: ListBucket on the two prefixes,
GetObject), the open alerts (LedgerStore.open_alerts: Query on the `open` index, then on the table), the
rules (GetParametersByPath: `routing.default`, where the digest goes), SNS Publish and the topic key's
GenerateDataKey/Decrypt.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from hyperpod_guard.ledger_store import OPEN_INDEX, OPEN_INDEX_ACTIONS
from hyperpod_guard.settings import DigestSettings

from .archive import Archive
from .common import python_function
from .config import Config

#: what LedgerStore.open_alerts calls on the table itself (load: one Query per cluster with open alerts)
DIGEST_TABLE_ACTIONS = ("dynamodb:Query",)
#: a week of a large fleet: one ListObjectsV2 page per day and a GetObject per episode (~10 ms each on a
#: warm connection), then the report; well within 5 minutes for tens of thousands of episodes
DIGEST_TIMEOUT_S = 300
DIGEST_MEMORY_MB = 512


class WeeklyDigest(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, archive: Archive, table: dynamodb.ITable,
                 topic: sns.ITopic, key: kms.IKey):
        super().__init__(scope, id)
        self.function = python_function(
            self, "Function", config=config, name="digest", handler="hyperpod_guard.handlers.digest.handler",
            description="hyperpod-guard: publishes the weekly reliability digest to the alerts topic",
            memory_mb=DIGEST_MEMORY_MB, timeout=Duration.seconds(DIGEST_TIMEOUT_S),
            environment=DigestSettings.environment(table_name=table.table_name, topic_arn=topic.topic_arn,
                                                   rules_path=config.rules_path),
        )
        function = self.function.function
        archive.grant_read(function)
        function.add_to_role_policy(iam.PolicyStatement(actions=list(DIGEST_TABLE_ACTIONS),
                                                        resources=[table.table_arn]))
        function.add_to_role_policy(iam.PolicyStatement(actions=list(OPEN_INDEX_ACTIONS),
                                                        resources=[f"{table.table_arn}/index/{OPEN_INDEX}"]))
        path = f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{config.rules_path}"
        function.add_to_role_policy(iam.PolicyStatement(actions=["ssm:GetParametersByPath"],
                                                        resources=[path, f"{path}/*"]))
        # not topic.grantPublish: it grants kms:GenerateDataKey* (a wildcard action) for the key
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        function.add_to_role_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                                        resources=[key.key_arn]))
        self.schedule = events.Rule(
            self, "Schedule", rule_name=f"{config.prefix}-digest",
            description="hyperpod-guard: the weekly reliability digest",
            schedule=events.Schedule.expression(config.digest_schedule),
            # as the sweep's: EventBridge's own retries off (Lambda retries a failed async invocation)
            targets=[targets.LambdaFunction(self.function.live, retry_attempts=0)],
        )
