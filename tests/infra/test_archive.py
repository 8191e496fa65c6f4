"""The episode archive and the weekly digest as synthesised (issue 21, infra/archive.py, infra/digest.py): the
bucket (name, encryption, TLS only, public access blocked, lifecycle, kept on destroy), the Glue database and
tables (columns from the archive's models, the OpenX JSON SerDe, partition projection on `dt`), the writers'
grants (exactly PutObject on the two prefixes), the digest function only with `weeklyDigest` (its schedule,
its IAM exactly what it calls, SnapStart, alarms), outputs; cdk-nag and cfn-lint clean in both modes; the
context refused when malformed. The behaviour: tests/integration/test_digest.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from hyperpod_guard import naming
from hyperpod_guard.archive import Episode, RepairFact
from infra.app import build
from infra.archive import IA_AFTER_DAYS, OUTPUT_FORMAT, SERDE, database_name, glue_type
from infra.config import ConfigError
from infra.digest import DIGEST_TIMEOUT_S

from .conftest import CDK_JSON_CONTEXT, make_stack
from .test_stack import (
    ALL_OPTIONS,
    PREFIX,
    RULES_ARNS,
    alarms,
    as_list,
    evaluate,
    find,
    function,
    function_statements,
    key,
    live,
    resources,
    topic,
)

DIGEST = {"weeklyDigest": True}
WRITERS = ("evaluator", "worker", "sweep")
#: a deployment's values for the pseudo parameters (what `evaluate` substitutes)
PSEUDO = {"AWS::AccountId": "123456789012", "AWS::Region": "us-west-2", "AWS::Partition": "aws"}


@pytest.fixture(scope="module")
def digest(synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return synth(**DIGEST)


def bucket(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = resources(template, "AWS::S3::Bucket").items()
    return logical_id, resource


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """`value` with the pseudo parameters and the bucket's Ref (its name) resolved."""
    bucket_id, _ = bucket(template)
    name = naming.archive_bucket_name(PREFIX, PSEUDO["AWS::AccountId"], PSEUDO["AWS::Region"])
    return evaluate(value, {**PSEUDO, bucket_id: name})


def s3_grants(template: dict[str, Any], name: str) -> set[tuple[str, str, str | None]]:
    """(action, resource, condition) of every S3 Allow of the function's role."""
    return {(action, key(resource), key(s["Condition"]) if "Condition" in s else None)
            for s in function_statements(template, name) if s["Effect"] == "Allow"
            for action in as_list(s["Action"]) if action.startswith("s3:") for resource in as_list(s["Resource"])}


def objects(template: dict[str, Any], prefix: str) -> str:
    bucket_id, _ = bucket(template)
    return key({"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{prefix}*"]]})


# --- the bucket ------------------------------------------------------------------------------------------


def test_the_bucket_is_named_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    bucket_id, resource = bucket(template)
    properties = resource["Properties"]
    assert resolve(properties["BucketName"], template) == "hyperpod-guard-archive-123456789012-us-west-2"
    assert properties["BucketEncryption"] == {"ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert "VersioningConfiguration" not in properties  # a retry overwrites the same key with the same episode
    # the fleet's history outlives the stack (and CloudFormation cannot delete a bucket holding objects)
    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
    _, policy = find(template, "AWS::S3::BucketPolicy", Bucket={"Ref": bucket_id})
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert (deny["Action"], deny["Principal"], deny["Condition"]) == (
        "s3:*", {"AWS": "*"}, {"Bool": {"aws:SecureTransport": "false"}})
    assert not [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]


@pytest.mark.parametrize(("days", "transition"), [(None, True), (90, True), (IA_AFTER_DAYS, False), (7, False)])
def test_the_lifecycle_expires_and_moves_to_infrequent_access(synth: Callable[..., dict[str, Any]],
                                                               days: int | None, transition: bool) -> None:
    template = synth(**({} if days is None else {"archiveRetentionDays": days}))
    (rule,) = bucket(template)[1]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", days or 730)
    expected = [{"StorageClass": "STANDARD_IA", "TransitionInDays": IA_AFTER_DAYS}] if transition else None
    assert rule.get("Transitions") == expected


def test_the_outputs(template: dict[str, Any]) -> None:
    bucket_id, _ = bucket(template)
    assert template["Outputs"]["ArchiveBucketName"]["Value"] == {"Ref": bucket_id}
    assert template["Outputs"]["ArchiveDatabase"]["Value"] == "hyperpod_guard_archive"


def test_deployed_the_kept_bucket_has_a_plain_name_the_next_deploy_adopts(tmp_path: Path) -> None:
    """`cdk deploy` synthesises with the account and region (CDK_DEFAULT_*): the retained bucket's name is then a
    plain string, which `make deploy --import-existing-resources` matches to adopt it after a destroy."""
    environment = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "us-west-2"}
    with mock.patch.dict(os.environ, environment):
        app = cdk.App(outdir=str(tmp_path), context={**CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": []})
        deployed = Template.from_stack(build(app)).to_json()
    _, resource = bucket(deployed)
    assert resource["Properties"]["BucketName"] == "hyperpod-guard-archive-123456789012-us-west-2"
    assert resource["DeletionPolicy"] == "Retain"


def test_the_name_follows_the_prefix_and_refuses_one_too_long(tmp_path: Path) -> None:
    """Deployed, the account and region are known when synthesising (CDK_DEFAULT_*): a name over S3's 63
    characters is refused then, naming the context key to change."""
    assert database_name("team-a") == "team_a_archive"
    environment = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "ap-southeast-2"}
    context = {**CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [], "prefix": "a-prefix-of-thirty-one-letters"}
    with mock.patch.dict(os.environ, environment), pytest.raises(ConfigError, match="'prefix'"):
        build(cdk.App(outdir=str(tmp_path), context=context))


# --- Glue ------------------------------------------------------------------------------------------------


def table(template: dict[str, Any], name: str) -> dict[str, Any]:
    found = [r["Properties"] for r in resources(template, "AWS::Glue::Table").values()
             if r["Properties"]["TableInput"]["Name"] == name]
    assert len(found) == 1
    return found[0]


def test_the_database(template: dict[str, Any]) -> None:
    ((_, database),) = resources(template, "AWS::Glue::Database").items()
    assert database["Properties"]["DatabaseInput"]["Name"] == "hyperpod_guard_archive"
    assert database["Properties"]["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert not resources(template, "AWS::Glue::Crawler")  # partition projection instead


@pytest.mark.parametrize(("name", "model", "prefix"), [("episodes", Episode, "episodes/"),
                                                        ("repairs", RepairFact, "repairs/")])
def test_the_tables_read_what_the_archive_writes(template: dict[str, Any], name: str, model: Any, prefix: str) -> None:
    properties = table(template, name)
    assert properties["DatabaseName"] == "hyperpod_guard_archive"
    table_input = properties["TableInput"]
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    storage = table_input["StorageDescriptor"]
    # one column per field of the model, in its order, typed from its annotation
    assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == [
        (field, glue_type(info.annotation)) for field, info in model.model_fields.items()]
    assert storage["SerdeInfo"]["SerializationLibrary"] == SERDE == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert storage["OutputFormat"] == OUTPUT_FORMAT
    location = f"s3://hyperpod-guard-archive-123456789012-us-west-2/{prefix}"
    assert resolve(storage["Location"], template) == location
    assert table_input["PartitionKeys"] == [{"Name": "dt", "Type": "string", "Comment": "the day (UTC), YYYY-MM-DD"}]
    parameters = table_input["Parameters"]
    assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == {
        "projection.enabled": "true", "projection.dt.type": "date", "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2026-01-01,NOW", "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS"}
    # the keys the archive writes: <prefix>dt=YYYY-MM-DD/<cluster>/<object>.json
    assert resolve(parameters["storage.location.template"], template) == location + "dt=${dt}/"


def test_the_episode_columns_are_typed_for_athena(template: dict[str, Any]) -> None:
    columns = {c["Name"]: c["Type"] for c in table(template, "episodes")["TableInput"]["StorageDescriptor"]["Columns"]}
    assert (columns["open"], columns["duration_seconds"], columns["version"]) == ("boolean", "double", "bigint")
    assert (columns["first_seen"], columns["resolved_at"], columns["resolved_by"]) == ("string", "string", "string")
    assert columns["tags"] == "map<string,string>"
    assert columns["details"] == "string"  # free-form: its JSON text, json_extract in Athena
    assert columns["actions"] == ("array<struct<at:string,action:string,outcome:string,dry_run:boolean,"
                                  "approved_by:string,nodes:array<string>>>")


# --- the writers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WRITERS)
def test_the_writers_may_put_episodes_and_repairs_only(synth: Callable[..., dict[str, Any]], name: str) -> None:
    for template in (synth(), synth(**DIGEST, **ALL_OPTIONS)):
        assert s3_grants(template, name) == {("s3:PutObject", objects(template, "episodes/"), None),
                                             ("s3:PutObject", objects(template, "repairs/"), None)}
        bucket_id, _ = bucket(template)
        assert function(template, name)[1]["Environment"]["Variables"]["ARCHIVE_BUCKET"] == {"Ref": bucket_id}


def test_nothing_else_touches_the_archive(template: dict[str, Any], digest: dict[str, Any]) -> None:
    assert not s3_grants(template, "slack-notifier")
    assert "ARCHIVE_BUCKET" not in function(template, "slack-notifier")[1]["Environment"]["Variables"]
    readers = {name for name in ("evaluator", "worker", "sweep", "digest", "slack-notifier")
               if any(a != "s3:PutObject" for a, _, _ in s3_grants(digest, name))}
    assert readers == {"digest"}


# --- the weekly digest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [{}, ALL_OPTIONS, {"weeklyDigest": "false"}], ids=["default", "all-options", "off"])
def test_no_digest_by_default(synth: Callable[..., dict[str, Any]], context: dict[str, Any]) -> None:
    template = synth(**context)
    names = {r["Properties"].get("FunctionName") for r in resources(template, "AWS::Lambda::Function").values()}
    assert f"{PREFIX}-digest" not in names
    rules = {r["Properties"].get("Name") for r in resources(template, "AWS::Events::Rule").values()}
    assert f"{PREFIX}-digest" not in rules
    assert not [a for a in alarms(template) if "digest" in a]


def test_the_digest_function_runs_on_its_schedule(digest: dict[str, Any], synth: Callable[..., dict[str, Any]]) -> None:
    fn_id, fn = function(digest, "digest")
    assert (fn["Handler"], fn["Timeout"], fn["Runtime"]) == (
        "hyperpod_guard.handlers.digest.handler", DIGEST_TIMEOUT_S, "python3.14")
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    alias, _ = live(digest, "digest")
    rule_id, rule = find(digest, "AWS::Events::Rule", Name=f"{PREFIX}-digest")
    assert rule["ScheduleExpression"] == "cron(0 8 ? * MON *)"
    ((target),) = rule["Targets"]
    assert target["Arn"] == {"Ref": alias} and target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    find(digest, "AWS::Lambda::Permission", FunctionName={"Ref": alias}, Principal="events.amazonaws.com",
         SourceArn={"Fn::GetAtt": [rule_id, "Arn"]})
    custom = synth(**DIGEST, digestSchedule="cron(30 6 ? * FRI *)")
    assert find(custom, "AWS::Events::Rule", Name=f"{PREFIX}-digest")[1]["ScheduleExpression"] == "cron(30 6 ? * FRI *)"
    env = fn["Environment"]["Variables"]
    table_id, _ = find(digest, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    alerts, _ = topic(digest, "alerts")
    bucket_id, _ = bucket(digest)
    assert (env["ARCHIVE_BUCKET"], env["TABLE_NAME"], env["TOPIC_ARN"]) == (
        {"Ref": bucket_id}, {"Ref": table_id}, {"Ref": alerts})
    assert (env["RULES_PATH"], env["DIGEST_DAYS"], env["DIGEST_TOP"]) == (f"/{PREFIX}/rules", "7", "5")
    assert fn_id in {r["Properties"]["FunctionName"]["Ref"] for r in resources(digest, "AWS::Lambda::Alias").values()}


def test_the_digest_may_do_exactly_what_it_calls(digest: dict[str, Any]) -> None:
    table_id, _ = find(digest, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    alerts, _ = topic(digest, "alerts")
    ((key_id, _),) = resources(digest, "AWS::KMS::Key").items()
    bucket_id, _ = bucket(digest)
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    expected = {
        ("s3:ListBucket", key({"Fn::GetAtt": [bucket_id, "Arn"]}),
         key({"StringLike": {"s3:prefix": ["episodes/*", "repairs/*"]}})),
        ("s3:GetObject", objects(digest, "episodes/"), None), ("s3:GetObject", objects(digest, "repairs/"), None),
        ("dynamodb:Query", key(table_arn), None),
        ("dynamodb:Query", key({"Fn::Join": ["", [table_arn, "/index/open"]]}), None),
        ("sns:Publish", key({"Ref": alerts}), None),
        ("kms:GenerateDataKey", key({"Fn::GetAtt": [key_id, "Arn"]}), None),
        ("kms:Decrypt", key({"Fn::GetAtt": [key_id, "Arn"]}), None),
        *(("ssm:GetParametersByPath", key(arn), None) for arn in RULES_ARNS),
    }
    granted = {(action, key(resource), key(s["Condition"]) if "Condition" in s else None)
               for s in function_statements(digest, "digest") if s["Effect"] == "Allow"
               for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}
    assert granted == expected


def test_the_digest_is_alarmed(digest: dict[str, Any]) -> None:
    fn_id, _ = function(digest, "digest")
    found = alarms(digest)
    for kind, metric in (("errors", "Errors"), ("throttles", "Throttles")):
        alarm = found[f"{PREFIX}-digest-{kind}"]
        dimensions = [{"Name": "FunctionName", "Value": {"Ref": fn_id}}]
        assert (alarm["MetricName"], alarm["Dimensions"]) == (metric, dimensions)


# --- context (cdk-nag and cfn-lint: tests/infra/test_stack.py, whose LINTED variants include the digest) ---


@pytest.mark.parametrize(("context", "named"), [
    ({"archiveRetentionDays": 0}, "'archiveRetentionDays'"),
    ({"archiveRetentionDays": "two years"}, "'archiveRetentionDays'"),
    ({"weeklyDigest": "maybe"}, "'weeklyDigest'"),
    ({"weeklyDigest": True, "digestSchedule": "every monday"}, "'digestSchedule'"),
    ({"digestSchedule": "cron(0 8 * * MON)"}, "'digestSchedule'"),  # five fields: EventBridge takes six
], ids=lambda v: v if isinstance(v, str) else json.dumps(v))
def test_invalid_context(tmp_path: Path, context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_stack(tmp_path, **context)
    assert named in str(raised.value)
