"""The episode archive (issue 21, hyperpod_guard/archive.py): the S3 bucket the functions write each alert
episode and HyperPod repair fact to (JSON lines, date-partitioned), and the Glue database and tables that let
Athena query the fleet's history without a crawler.

- the bucket (`naming.archive_bucket_name`): SSE-S3, TLS only, public access blocked, ACLs off, no versioning
  (a retry overwrites the same key with the same episode); objects expire after `archiveRetentionDays` (730)
  and move to Standard-IA after IA_AFTER_DAYS where S3 transitions them at all (objects under 128 KiB stay in
  Standard: S3's default minimum object size for transitions, and an episode is ~2 KiB). Retained when the
  stack is destroyed: it is the fleet's history, and CloudFormation cannot delete a bucket that holds objects;
  `make deploy` adopts it again (--import-existing-resources), its name being fixed;
- server access logs: none, acknowledged (ACCESS_LOGS_REASON);
- the Glue tables `episodes` and `repairs` over the two prefixes, their columns derived from the pydantic models
  (`glue_columns`: what the functions write is what Athena reads), the OpenX JSON SerDe, and partition
  projection on `dt` (the day in the key: `episodes/dt=YYYY-MM-DD/<cluster>/...`), so no crawler and no
  `MSCK REPAIR`;
- `grant_write`: ARCHIVE_BUCKET and s3:PutObject on `episodes/*` and `repairs/*` only (the evaluator, the worker,
  the sweep); `grant_read`: ListBucket on those prefixes and GetObject (the weekly digest).
"""

from __future__ import annotations

import types
from datetime import date, datetime
from typing import Any, Literal, Union, get_args, get_origin

from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct
from pydantic import BaseModel

from hyperpod_guard import naming
from hyperpod_guard.archive import (
    EPISODES_PREFIX,
    REPAIRS_PREFIX,
    S3_ACTIONS_READ,
    S3_ACTIONS_WRITE,
    Episode,
    RepairFact,
)
from hyperpod_guard.constants import ARCHIVE_BUCKET

from .config import Config, ConfigError

#: days in S3 Standard before the transition to Standard-IA (its minimum storage duration is 30 days)
IA_AFTER_DAYS = 30
#: the partition column: the day in every key (`episodes/dt=YYYY-MM-DD/...`), a string Athena compares as text
PARTITION = "dt"
#: the first day partition projection knows: before any episode could have been archived
PROJECTION_START = "2026-01-01"
SERDE = "org.openx.data.jsonserde.JsonSerDe"
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
ACCESS_LOGS_REASON = (
    "The archive is written by the stack's own functions only (each put is logged by the function) and read by "
    "operators and Athena with their IAM identities; CloudTrail S3 data events are the audit trail where an "
    "account wants one. A log bucket per deployment would only add a bucket to secure and expire.")


def glue_type(annotation: Any) -> str:
    """A pydantic field's annotation as a Hive type: str/Literal/datetime -> string (timestamps stay ISO 8601
    text: `from_iso8601_timestamp(col)` in Athena), bool -> boolean, int -> bigint, float -> double,
    list[X] -> array<X>, dict[str, str] -> map<string,string>, a model -> struct<...>; Optional[X] is X.
    Anything free-form (dict[str, Any]) is string: the OpenX SerDe gives a nested object as its JSON text
    (`json_extract(details, '$.status')`)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return glue_type(inner)
    if origin is Literal:
        values = get_args(annotation)
        return "bigint" if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else "string"
    if origin in (list, tuple):
        return f"array<{glue_type(get_args(annotation)[0])}>"
    if origin is dict:
        key, value = get_args(annotation)
        return f"map<{glue_type(key)},{glue_type(value)}>" if value in (str, int, float, bool) else "string"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = ",".join(f"{name}:{glue_type(f.annotation)}" for name, f in annotation.model_fields.items())
        return f"struct<{fields}>"
    scalar = {str: "string", bool: "boolean", int: "bigint", float: "double", datetime: "string", date: "string"}
    if annotation in scalar:
        return scalar[annotation]
    return "string"


def glue_columns(model: type[BaseModel]) -> list[glue.CfnTable.ColumnProperty]:
    """One column per field of `model`, in its order (the JSON keys the archive writes)."""
    return [glue.CfnTable.ColumnProperty(name=name, type=glue_type(field.annotation), comment=field.description)
            for name, field in model.model_fields.items()]


def database_name(prefix: str) -> str:
    """The Glue database: Athena names take lowercase letters, digits and underscores only."""
    return f"{prefix.replace('-', '_')}_archive"


class Archive(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config):
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self, "Bucket", bucket_name=self._bucket_name(config), encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, versioned=False,
            lifecycle_rules=[s3.LifecycleRule(
                id="expire", expiration=Duration.days(config.archive_retention_days),
                transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                           transition_after=Duration.days(IA_AFTER_DAYS))]
                if config.archive_retention_days > IA_AFTER_DAYS else None,
            )],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.bucket).acknowledge(Acknowledgment(id="AwsSolutions-S1", reason=ACCESS_LOGS_REASON))

        self.database_name = database_name(config.prefix)
        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="hyperpod-guard: the alert episodes and HyperPod repair facts"),
        )
        self.episodes = self._table("EpisodesTable", "episodes", EPISODES_PREFIX, Episode,
                                    "one row per alert episode, partitioned by the day it resolved (UTC)")
        self.repairs = self._table("RepairsTable", "repairs", REPAIRS_PREFIX, RepairFact,
                                   "HyperPod's own node reboots and replacements (Cluster Events), by the event's day")
        CfnOutput(scope, "ArchiveBucketName", value=self.bucket.bucket_name,
                  description="the episode archive (hyperpod-guard report --bucket)")
        CfnOutput(scope, "ArchiveDatabase", value=self.database_name,
                  description="the Glue database of the archive's Athena tables (episodes, repairs)")

    def _bucket_name(self, config: Config) -> str:
        """naming.archive_bucket_name of the stack's account and region: synthesised without an environment
        (the tests), CloudFormation's pseudo parameters, which it passes through."""
        stack = Stack.of(self)
        try:
            return naming.archive_bucket_name(config.prefix, stack.account, stack.region)
        except ValueError as exc:
            raise ConfigError(f"context 'prefix': {exc}") from None

    def _table(self, id: str, name: str, prefix: str, model: type[BaseModel], description: str) -> glue.CfnTable:
        location = f"s3://{self.bucket.bucket_name}/{prefix}"
        table = glue.CfnTable(
            self, id, catalog_id=Aws.ACCOUNT_ID, database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name, description=description, table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION, type="string",
                                                             comment="the day (UTC), YYYY-MM-DD")],
                parameters={
                    "classification": "json", "EXTERNAL": "TRUE",
                    # partition projection: Athena computes the partitions from the query's dt, no crawler
                    "projection.enabled": "true",
                    f"projection.{PARTITION}.type": "date",
                    f"projection.{PARTITION}.format": "yyyy-MM-dd",
                    f"projection.{PARTITION}.range": f"{PROJECTION_START},NOW",
                    f"projection.{PARTITION}.interval": "1",
                    f"projection.{PARTITION}.interval.unit": "DAYS",
                    "storage.location.template": f"{location}{PARTITION}=${{{PARTITION}}}/",
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=glue_columns(model), location=location, input_format=INPUT_FORMAT,
                    output_format=OUTPUT_FORMAT, compressed=False,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=SERDE,
                        # a malformed line is an error, not a row of nulls; keys are our snake_case field names
                        parameters={"ignore.malformed.json": "false", "case.insensitive": "true"}),
                ),
            ),
        )
        table.add_dependency(self.database)
        return table

    # -- grants ------------------------------------------------------------------------------------

    def _objects(self) -> list[str]:
        return [self.bucket.arn_for_objects(f"{prefix}*") for prefix in (EPISODES_PREFIX, REPAIRS_PREFIX)]

    def grant_write(self, function: lambda_.Function) -> None:
        """ARCHIVE_BUCKET, and S3_ACTIONS_WRITE (PutObject) on the two prefixes only: never a read, a delete or
        another key (not bucket.grantPut: it adds PutObjectLegalHold, PutObjectRetention, Abort...)."""
        function.add_environment(ARCHIVE_BUCKET.name, self.bucket.bucket_name)
        function.add_to_role_policy(iam.PolicyStatement(actions=list(S3_ACTIONS_WRITE), resources=self._objects()))
        self._acknowledge(function, S3_ACTIONS_WRITE)

    def grant_read(self, function: lambda_.Function) -> None:
        """ARCHIVE_BUCKET, ListBucket confined to the two prefixes, GetObject on them (S3_ACTIONS_READ)."""
        function.add_environment(ARCHIVE_BUCKET.name, self.bucket.bucket_name)
        listing = [a for a in S3_ACTIONS_READ if a == "s3:ListBucket"]
        objects = [a for a in S3_ACTIONS_READ if a != "s3:ListBucket"]
        function.add_to_role_policy(iam.PolicyStatement(
            actions=listing, resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in (EPISODES_PREFIX, REPAIRS_PREFIX)]}}))
        function.add_to_role_policy(iam.PolicyStatement(actions=objects, resources=self._objects()))
        self._acknowledge(function, tuple(objects))

    def _acknowledge(self, function: lambda_.Function, actions: tuple[str, ...]) -> None:
        """cdk-nag IAM5 names each object wildcard by the bucket's logical id: acknowledged one by one."""
        bucket = Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        for prefix in (EPISODES_PREFIX, REPAIRS_PREFIX):
            Validations.of(function).acknowledge(Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{prefix}*]",
                reason=f"{', '.join(actions)} on the archive's {prefix} objects only: one object per episode or "
                       "repair fact, its key made of the day, the cluster and the fingerprint or event id.",
            ))
