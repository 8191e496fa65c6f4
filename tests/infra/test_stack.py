"""The CDK stack as synthesised: resources, wiring, least privilege, context variants, cdk-nag, cfn-lint.

Templates come from `Template.from_stack` (which also runs the cdk-nag validation plugin), built
with cdk.json's context like `cdk synth`, asset bundling skipped. Resources are found by their
physical names (`hyperpod-guard-...`), never by generated logical ids.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from hyperpod_guard.events import DETAIL_TYPES, SOURCE
from hyperpod_guard.findings import Severity
from hyperpod_guard.ledger_store import IDEMPOTENCY_ACTIONS, IDEMPOTENCY_PK, TABLE_DEFINITION, TTL_ATTRIBUTE
from hyperpod_guard.rules_store import plan_parts
from infra.bundling import EXCLUDE, FUNCTIONS, NOT_SHIPPED, PACKAGE, copy_package
from infra.config import DEFAULTS, ConfigError
from infra.evaluation import (
    SAGEMAKER_READ,
    SAGEMAKER_REMEDIATE,
    WORK_BATCH_SIZE,
    WORK_MAX_CONCURRENCY,
    WORK_MAX_RECEIVES,
    WORK_RETENTION_S,
    WORK_VISIBILITY_S,
    WORKER_TIMEOUT_S,
)
from infra.ingestion import EVENT_PATTERN

from tests import import_graph

from .conftest import CDK_JSON_CONTEXT, REPO, make_stack

PREFIX = "hyperpod-guard"
RULES_PATH = "/hyperpod-guard/rules"
EVENT_DIRS = sorted(path.parent for path in (REPO / "events").glob("*/event.json"))
#: every option on at once (the variant cdk-nag and cfn-lint must also accept)
ALL_OPTIONS: dict[str, Any] = {
    "emails": ["a@example.com"], "opsEmails": ["ops@example.com"], "chatbotSlackWorkspaceId": "T0123ABCD",
    "chatbotSlackChannelId": "C0123ABCD", "remediation": True, "logLevel": "debug", "sweepRate": 15,
    "slackReceivers": ["ml-oncall", "platform"],
}
#: the variants cdk-nag and cfn-lint check: each feature that adds resources on, and all of them at once
#: (Slack app mode, issue 20; the weekly digest, issue 21; a hub, issue 22)
APP_MODE: dict[str, Any] = {"slackMode": "app", "slackChannels": "default=C0123ABCD,ml-oncall=C0456EFGH"}
#: a hub (issue 22, infra/fleet.py): of listed spoke accounts, and of an AWS Organization
FLEET: dict[str, Any] = {"spokeAccounts": "111122223333,444455556666", "fleetRegions": "us-east-1,eu-west-1"}
FLEET_ORG: dict[str, Any] = {"organizationId": "o-abcdefghij12"}
LINTED: dict[str, dict[str, Any]] = {
    "default": {}, "all-options": ALL_OPTIONS, "slack-app": APP_MODE,
    "everything": {**ALL_OPTIONS, **APP_MODE, "weeklyDigest": True},
    "fleet": FLEET, "fleet-org": {**FLEET_ORG, **ALL_OPTIONS, **APP_MODE},
    # the blast radius (issue 23, infra/workload.py): every option of it on, with the others
    "workload": {**ALL_OPTIONS, **APP_MODE, "workloadEksClusters": "ml-prod,ml_dev2", "workloadSlurm": True,
                 "lambdaSubnets": "subnet-0123abcd,subnet-0123456789abcdef0", "lambdaSecurityGroups": "sg-0123abcd"},
}
FUNCTIONS_SPEC = {  # name -> (handler, MemorySize, Timeout)
    "evaluator": ("hyperpod_guard.handlers.evaluator.handler", 512, 60),
    "sweep": ("hyperpod_guard.handlers.sweep.handler", 512, 300),
    "slack-notifier": ("hyperpod_guard.handlers.slack_notifier.handler", 256, 90),
    "worker": ("hyperpod_guard.handlers.worker.handler", 512, 60),
}
#: the dead-letter and failure queues (each alarmed on its depth); the work queue is busy by design
QUEUES = ("events-dlq", "evaluator-failures", "slack-dlq", "work-dlq")
#: the functions that evaluate clusters (the sweep hands its clusters to the worker)
EVALUATING = ("evaluator", "worker")


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


PARTITION, REGION, ACCOUNT = ({"Ref": f"AWS::{name}"} for name in ("Partition", "Region", "AccountId"))
CLUSTERS_ARN = _join("arn:", PARTITION, ":sagemaker:", REGION, ":", ACCOUNT, ":cluster/*")
PLANS_ARN = _join("arn:", PARTITION, ":sagemaker:", REGION, ":", ACCOUNT, ":training-plan/*")
RULES_ARNS = [_join("arn:", PARTITION, ":ssm:", REGION, ":", ACCOUNT, f":parameter{RULES_PATH}"),
              _join("arn:", PARTITION, ":ssm:", REGION, ":", ACCOUNT, f":parameter{RULES_PATH}/*")]
DENY_INSECURE = {"Bool": {"aws:SecureTransport": "false"}}
#: the named Slack receivers' secrets, which the notifier reads by name (infra/alerting.py Alerting._receivers)
RECEIVER_SECRETS_ARN = _join("arn:", PARTITION, ":secretsmanager:", REGION, ":", ACCOUNT, f":secret:{PREFIX}/slack/*")


# --- template helpers ---------------------------------------------------------------------------

def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == type_}


def find(template: dict[str, Any], type_: str, **properties: Any) -> tuple[str, dict[str, Any]]:
    """The one resource of `type_` whose Properties contain `properties`: (logical id, Properties)."""
    found = [(lid, r.get("Properties", {})) for lid, r in resources(template, type_).items()
             if all(r.get("Properties", {}).get(k) == v for k, v in properties.items())]
    assert len(found) == 1, f"expected one {type_} with {properties}, found {[lid for lid, _ in found]}"
    return found[0]


def function(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    return find(template, "AWS::Lambda::Function", FunctionName=f"{PREFIX}-{name}")


def live(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """The function's `live` alias, which its triggers invoke (infra/common.py)."""
    fn, _ = function(template, name)
    return find(template, "AWS::Lambda::Alias", FunctionName={"Ref": fn}, Name="live")


def queue(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    return find(template, "AWS::SQS::Queue", QueueName=f"{PREFIX}-{name}")


def topic(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    return find(template, "AWS::SNS::Topic", TopicName=f"{PREFIX}-{name}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every AWS::IAM::Policy / ManagedPolicy and every Role inline policy."""
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for lid, r in resources(template, type_).items():
            for statement in r["Properties"]["PolicyDocument"]["Statement"]:
                yield lid, statement
    for lid, r in resources(template, "AWS::IAM::Role").items():
        for policy in r["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield lid, statement


def function_statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The statements of the function's execution role (its AWS::IAM::Policy resources)."""
    role = function(template, name)[1]["Role"]["Fn::GetAtt"][0]
    return [statement for r in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in r["Properties"]["Roles"]
            for statement in r["Properties"]["PolicyDocument"]["Statement"]]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in as_list(s["Action"])}


def evaluate(value: Any, refs: dict[str, str]) -> Any:
    """A tiny CloudFormation evaluator for Ref / Fn::Join / Fn::Select / Fn::Split."""
    if isinstance(value, (str, int)):
        return value
    if isinstance(value, list):
        return [evaluate(v, refs) for v in value]
    ((function_, argument),) = value.items()
    if function_ == "Ref":
        return refs[argument]
    if function_ == "Fn::Join":
        return argument[0].join(evaluate(argument[1], refs))
    if function_ == "Fn::Select":
        return evaluate(argument[1], refs)[int(argument[0])]
    if function_ == "Fn::Split":
        return evaluate(argument[1], refs).split(argument[0])
    raise AssertionError(f"cannot evaluate {value}")


def key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- 1. the default stack: resources and functions -----------------------------------------------

def test_defaults_mirror_cdk_json() -> None:
    assert {k: CDK_JSON_CONTEXT[k] for k in DEFAULTS} == DEFAULTS


def test_resource_counts(template: dict[str, Any]) -> None:
    counts = Counter(r["Type"] for r in template["Resources"].values())
    rules_parts = plan_parts(json.loads((REPO / "rules/defaults.json").read_text()), RULES_PATH)
    assert rules_parts  # the seed must create something
    expected = {
        # 4 functions + the rules seed's provider (AwsCustomResource), each with its log group
        "AWS::Lambda::Function": 5, "AWS::SNS::Topic": 2, "AWS::SQS::Queue": 5, "AWS::DynamoDB::Table": 1,
        "AWS::SecretsManager::Secret": 1, "AWS::KMS::Key": 1, "AWS::CloudWatch::Alarm": 14,
        "AWS::CloudWatch::Dashboard": 1, "AWS::Events::Rule": 2, "AWS::SSM::Parameter": 0,
        "Custom::AWS": len(rules_parts) + 1,  # one PutParameter per part, then the manifest (test_rules_seed.py)
        "AWS::Logs::LogGroup": 5, "AWS::Lambda::EventInvokeConfig": 2, "AWS::SNS::Subscription": 1,
        "AWS::Lambda::EventSourceMapping": 1,
        # each of the 4 has the version of this deploy and its `live` alias (SnapStart: tests/infra/test_snapstart.py)
        "AWS::Lambda::Version": 4, "AWS::Lambda::Alias": 4,
    }
    assert {t: counts[t] for t in expected} == expected


def test_kms_key_rotation(template: dict[str, Any]) -> None:
    ((_, key_),) = resources(template, "AWS::KMS::Key").items()
    assert key_["Properties"]["EnableKeyRotation"] is True
    assert key_["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("name", FUNCTIONS_SPEC)
def test_function(template: dict[str, Any], name: str) -> None:
    handler, memory, timeout = FUNCTIONS_SPEC[name]
    _, fn = function(template, name)
    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert (fn["Handler"], fn["MemorySize"], fn["Timeout"]) == (handler, memory, timeout)
    env = fn["Environment"]["Variables"]
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_LOG_LEVEL"]) == (
        PREFIX, "HyperPodGuard", "INFO")
    # the handler exists: a top-level `handler` in the module the asset carries
    module, attribute = handler.rsplit(".", 1)
    tree = ast.parse((FUNCTIONS / (module.replace(".", "/") + ".py")).read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert attribute in names
    # its own log group, kept 30 days
    log_group = template["Resources"][fn["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"] == {"LogGroupName": f"/aws/lambda/{PREFIX}-{name}", "RetentionInDays": 30}


@pytest.mark.parametrize("name", ["evaluator", "sweep", "worker"])
def test_evaluation_environment(template: dict[str, Any], name: str) -> None:
    table, _ = find(template, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    alerts, _ = topic(template, "alerts")
    env = function(template, name)[1]["Environment"]["Variables"]
    assert env["TABLE_NAME"] == {"Ref": table}
    assert env["TOPIC_ARN"] == {"Ref": alerts}
    assert env["RULES_PATH"] == RULES_PATH
    assert env["TAGS_MAX_AGE"] == "300"
    assert env["RULES_REQUIRED"] == "true"  # the stack seeds the rules: their absence is an alert
    assert env["EVENT_ACCOUNTS"] == ACCOUNT  # events of this account only (the rule's pattern, too)
    assert "SLACK_WEBHOOK_SECRET" not in env
    # every one hands work over: the sweep its clusters (set, it fans out; unset, it would evaluate inline),
    # any evaluation its cluster's grouped message (grouping.py; unset, every message would go at once)
    work, _ = queue(template, "work")
    assert env.get("WORK_QUEUE_URL") == {"Ref": work}


def test_unseeded_rules_are_not_required(synth: Callable[..., dict[str, Any]]) -> None:
    env = function(synth(seedRules=False), "evaluator")[1]["Environment"]["Variables"]
    assert env["RULES_REQUIRED"] == "false"


def test_notifier_reads_the_created_secret(template: dict[str, Any]) -> None:
    secret_id, secret = find(template, "AWS::SecretsManager::Secret", Name=f"{PREFIX}/slack-webhook")
    env = function(template, "slack-notifier")[1]["Environment"]["Variables"]
    assert set(env) >= {"SLACK_WEBHOOK_SECRET", "TABLE_NAME"} and "TOPIC_ARN" not in env
    # CDK derives the name from the secret's ARN (name + "-" + 6 random characters): check it evaluates right
    arn = f"arn:aws:secretsmanager:us-west-2:123456789012:secret:{secret['Name']}-AbC123"
    assert evaluate(env["SLACK_WEBHOOK_SECRET"], {secret_id: arn}) == f"{PREFIX}/slack-webhook"


def test_notifier_keeps_idempotency_records_in_the_ledger_with_item_access_only(template: dict[str, Any]) -> None:
    table, _ = find(template, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    assert function(template, "slack-notifier")[1]["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": table}
    dynamodb = [s for s in function_statements(template, "slack-notifier")
                if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert len(dynamodb) == 1 and dynamodb[0]["Effect"] == "Allow"
    assert dynamodb[0]["Resource"] == {"Fn::GetAtt": [table, "Arn"]}  # the table's items, no index
    assert sorted(as_list(dynamodb[0]["Action"])) == sorted(IDEMPOTENCY_ACTIONS) == [
        "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    # its own records only: never the alerts in the same table
    assert dynamodb[0]["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [IDEMPOTENCY_PK]}}


@pytest.mark.parametrize(("name", "failure_queue"), [("evaluator", "evaluator-failures"), ("slack-notifier", "slack-dlq")])
def test_async_invoke_config(template: dict[str, Any], name: str, failure_queue: str) -> None:
    fn, _ = function(template, name)
    alias, _ = live(template, name)
    queue_id, _ = queue(template, failure_queue)
    _, config = find(template, "AWS::Lambda::EventInvokeConfig", FunctionName={"Ref": fn})
    # the alias's settings (async invoke settings are per qualifier; the alias is what is invoked)
    assert config["Qualifier"] == {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": alias}]}]}
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 6 * 3600
    # the role may send to that queue (the destination needs it)
    assert any(s["Effect"] == "Allow" and "sqs:SendMessage" in as_list(s["Action"])
               and {"Fn::GetAtt": [queue_id, "Arn"]} in as_list(s["Resource"]) for s in function_statements(template, name))


# --- 2. EventBridge ------------------------------------------------------------------------------

def hyperpod_rule(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return find(template, "AWS::Events::Rule", Name=f"{PREFIX}-hyperpod-events")


def test_event_rule(template: dict[str, Any]) -> None:
    rule_id, rule = hyperpod_rule(template)
    expected = {"source": ["aws.sagemaker"], "detail-type": [
        "SageMaker HyperPod Cluster State Change", "SageMaker HyperPod Cluster Node Health Event",
        "SageMaker HyperPod Cluster Event"]}
    assert EVENT_PATTERN == expected == {"source": [SOURCE], "detail-type": list(DETAIL_TYPES)}
    assert rule["EventPattern"] == {**EVENT_PATTERN, "account": [ACCOUNT]}  # this deployment's events only
    assert rule["State"] == "ENABLED"
    evaluator, _ = live(template, "evaluator")
    dlq, _ = queue(template, "events-dlq")
    ((target),) = rule["Targets"]
    assert target["Arn"] == {"Ref": evaluator}  # the alias's ARN
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 6 * 3600}
    # EventBridge may invoke the evaluator's alias (from this rule only) and write to the DLQ
    find(template, "AWS::Lambda::Permission", FunctionName={"Ref": evaluator},
         Principal="events.amazonaws.com", SourceArn={"Fn::GetAtt": [rule_id, "Arn"]})
    _, dlq_policy = find(template, "AWS::SQS::QueuePolicy", Queues=[{"Ref": dlq}])
    assert any(s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
               and s["Action"] == "sqs:SendMessage" for s in dlq_policy["PolicyDocument"]["Statement"])


def test_sample_events_cover_both_outcomes() -> None:
    ignored = [d.name for d in EVENT_DIRS if json.loads((d / "expected.json").read_text()).get("ignored")]
    assert ignored == ["non-hyperpod-event-ignored"]
    assert len(EVENT_DIRS) - len(ignored) >= 10


def rule_pattern(template: dict[str, Any], account: str) -> EventPattern:
    """The rule's pattern as deployed in `account` (AWS::AccountId resolved), for moto's matcher."""
    pattern = hyperpod_rule(template)[1]["EventPattern"]
    return EventPattern.load(json.dumps({k: evaluate(v, {"AWS::AccountId": account}) for k, v in pattern.items()}))


@pytest.mark.parametrize("scenario", EVENT_DIRS, ids=lambda d: d.name)
def test_event_pattern_matches_sample_event(template: dict[str, Any], scenario: Path) -> None:
    """moto's EventBridge matcher: the HyperPod events reach the evaluator, the others do not; and
    only when they come from the account the stack is deployed in."""
    event = json.loads((scenario / "event.json").read_text())  # the full envelope, "account" included
    expected = not json.loads((scenario / "expected.json").read_text()).get("ignored", False)
    assert rule_pattern(template, event["account"]).matches_event(event) is expected
    assert rule_pattern(template, "999988887777").matches_event(event) is False


def test_event_accounts_allow_list(synth: Callable[..., dict[str, Any]]) -> None:
    """`eventAccounts`, the deprecated name of `spokeAccounts` (a hub: tests/infra/test_fleet.py). The rule and
    EVENT_ACCOUNTS name this account, then these."""
    template = synth(eventAccounts="111122223333, 444455556666,111122223333")
    assert hyperpod_rule(template)[1]["EventPattern"]["account"] == [ACCOUNT, "111122223333", "444455556666"]
    for name in ("evaluator", "sweep"):
        env = function(template, name)[1]["Environment"]["Variables"]
        assert evaluate(env["EVENT_ACCOUNTS"], {"AWS::AccountId": "123456789012"}) == (
            "123456789012,111122223333,444455556666")
    event = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())  # from 111122223333
    assert rule_pattern(template, "123456789012").matches_event(event)
    assert "EVENT_ACCOUNTS" not in function(template, "slack-notifier")[1]["Environment"]["Variables"]


def test_sweep_schedule(template: dict[str, Any]) -> None:
    _, rule = find(template, "AWS::Events::Rule", Name=f"{PREFIX}-sweep")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    sweep, _ = live(template, "sweep")
    ((target),) = rule["Targets"]
    assert target["Arn"] == {"Ref": sweep}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}


# --- 3. the ledger table -------------------------------------------------------------------------

def test_table_mirrors_ledger_store(template: dict[str, Any]) -> None:
    _, table = find(template, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    assert table["BillingMode"] == TABLE_DEFINITION["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(map(key, table["AttributeDefinitions"])) == sorted(map(key, TABLE_DEFINITION["AttributeDefinitions"]))
    assert table["GlobalSecondaryIndexes"] == TABLE_DEFINITION["GlobalSecondaryIndexes"]
    # `resolved` (issue 16): `hyperpod-guard alerts --state resolved` reads it instead of a Scan
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["open", "resolved"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert TTL_ATTRIBUTE == "expires_at"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_table_is_retained(template: dict[str, Any]) -> None:
    table_id, _ = find(template, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    assert template["Resources"][table_id]["DeletionPolicy"] == "Retain"


# --- 4. SNS and SQS ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["alerts", "operations"])
def test_topic_encrypted_and_tls_only(template: dict[str, Any], name: str) -> None:
    topic_id, props = topic(template, name)
    key_id, _ = next(iter(resources(template, "AWS::KMS::Key").items()))
    assert props["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    _, policy = find(template, "AWS::SNS::TopicPolicy", Topics=[{"Ref": topic_id}])
    assert any(s["Effect"] == "Deny" and s["Condition"] == DENY_INSECURE and "sns:Publish" in as_list(s["Action"])
               and s["Resource"] == {"Ref": topic_id} for s in policy["PolicyDocument"]["Statement"])


def test_slack_subscription_redrives_to_dlq(template: dict[str, Any]) -> None:
    alerts, _ = topic(template, "alerts")
    notifier, _ = live(template, "slack-notifier")
    dlq, _ = queue(template, "slack-dlq")
    _, subscription = find(template, "AWS::SNS::Subscription", Protocol="lambda", TopicArn={"Ref": alerts})
    assert subscription["Endpoint"] == {"Ref": notifier}
    assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert "FilterPolicy" not in subscription  # Slack gets every severity
    find(template, "AWS::Lambda::Permission", FunctionName={"Ref": notifier},
         Principal="sns.amazonaws.com", SourceArn={"Ref": alerts})


@pytest.mark.parametrize("name", QUEUES)
def test_queue_encrypted_and_tls_only(template: dict[str, Any], name: str) -> None:
    queue_id, props = queue(template, name)
    assert props["SqsManagedSseEnabled"] is True
    assert props["MessageRetentionPeriod"] == 14 * 86400
    _, policy = find(template, "AWS::SQS::QueuePolicy", Queues=[{"Ref": queue_id}])
    assert any(s["Effect"] == "Deny" and s["Condition"] == DENY_INSECURE and s["Action"] == "sqs:*"
               and s["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]} for s in policy["PolicyDocument"]["Statement"])


# --- 5. IAM --------------------------------------------------------------------------------------

@pytest.mark.parametrize("context", [{}, ALL_OPTIONS], ids=["default", "all-options"])
def test_no_wildcard_actions(synth, context: dict[str, Any]) -> None:
    statements = list(iam_statements(synth(**context)))
    actions = actions_of([s for _, s in statements])
    assert {"sagemaker:DescribeCluster", "ssm:GetParametersByPath", "sns:Publish"} <= actions  # not vacuous
    assert [a for a in actions if a == "*" or a.endswith("*")] == []


@pytest.mark.parametrize("context", [{}, ALL_OPTIONS], ids=["default", "all-options"])
def test_sagemaker_scoped_to_clusters(synth, context: dict[str, Any]) -> None:
    statements = [s for _, s in iam_statements(synth(**context))]
    for statement in statements:
        actions = set(as_list(statement["Action"]))
        sagemaker = {a for a in actions if a.startswith("sagemaker:")}
        if sagemaker == {"sagemaker:DescribeTrainingPlan"}:  # the plans a cluster's groups run on
            assert as_list(statement["Resource"]) == [PLANS_ARN], statement
        elif sagemaker - {"sagemaker:ListClusters"}:
            assert as_list(statement["Resource"]) == [CLUSTERS_ARN], statement
        if "*" in as_list(statement["Resource"]):  # only ListClusters lacks resource-level permissions
            assert actions == {"sagemaker:ListClusters"}, statement


@pytest.mark.parametrize("name", EVALUATING)
def test_evaluation_role(template: dict[str, Any], name: str) -> None:
    statements = function_statements(template, name)
    assert actions_of(statements) >= set(SAGEMAKER_READ) | {"sagemaker:ListClusters", "ssm:GetParametersByPath"}
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in as_list(s["Action"]))]
    assert actions_of(ssm) == {"ssm:GetParametersByPath"}
    assert sorted(key(r) for s in ssm for r in as_list(s["Resource"])) == sorted(map(key, RULES_ARNS))
    alerts, _ = topic(template, "alerts")
    publish = [s for s in statements if "sns:Publish" in as_list(s["Action"])]
    assert [s["Resource"] for s in publish] == [{"Ref": alerts}]
    assert not actions_of(statements) & set(SAGEMAKER_REMEDIATE)
    assert not any(a.startswith("secretsmanager:") for a in actions_of(statements))


@pytest.mark.parametrize("name", EVALUATING)
def test_evaluation_reads_tags_of_clusters_only(template: dict[str, Any], name: str) -> None:
    """ListTags (rules that select clusters by tag) on the cluster ARNs, like the other SageMaker reads."""
    granted = [s for s in function_statements(template, name) if "sagemaker:ListTags" in as_list(s["Action"])]
    assert len(granted) == 1 and granted[0]["Effect"] == "Allow"
    assert as_list(granted[0]["Resource"]) == [CLUSTERS_ARN]
    assert set(as_list(granted[0]["Action"])) == set(SAGEMAKER_READ)


def test_notifier_role(template: dict[str, Any]) -> None:
    statements = function_statements(template, "slack-notifier")
    secret_id, _ = find(template, "AWS::SecretsManager::Secret", Name=f"{PREFIX}/slack-webhook")
    read = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    # its webhook secret, and the named receivers' under their prefix (tests/infra/test_slack_receivers.py)
    assert [s["Resource"] for s in read] == [{"Ref": secret_id}, RECEIVER_SECRETS_ARN]
    assert not any(a.split(":")[0] in ("sagemaker", "ssm", "sns") for a in actions_of(statements))
    # DynamoDB: only the idempotency records' item calls (see the test above)
    assert {a for a in actions_of(statements) if a.startswith("dynamodb:")} == {
        "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}


def test_remediation_only_when_enabled(template: dict[str, Any], synth) -> None:
    assert not actions_of([s for _, s in iam_statements(template)]) & set(SAGEMAKER_REMEDIATE)
    remediating = synth(remediation=True)
    for name in EVALUATING:
        statements = function_statements(remediating, name)
        granted = [s for s in statements if set(as_list(s["Action"])) & set(SAGEMAKER_REMEDIATE)]
        assert actions_of(granted) >= set(SAGEMAKER_REMEDIATE)
        assert all(as_list(s["Resource"]) == [CLUSTERS_ARN] for s in granted)
    for name in ("sweep", "slack-notifier"):  # the sweep evaluates no cluster itself
        assert not actions_of(function_statements(remediating, name)) & set(SAGEMAKER_REMEDIATE)


# --- 6. alarms -----------------------------------------------------------------------------------

def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in resources(template, "AWS::CloudWatch::Alarm").values()}


def test_alarm_set_and_actions(template: dict[str, Any]) -> None:
    ops, _ = topic(template, "operations")
    found = alarms(template)
    expected = {f"{PREFIX}-{f}-{kind}" for f in FUNCTIONS_SPEC for kind in ("errors", "throttles")}
    expected |= {f"{PREFIX}-{q}-depth" for q in QUEUES} | {f"{PREFIX}-sweep-not-running", f"{PREFIX}-sweep-cluster-errors"}
    assert set(found) == expected
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [{"Ref": ops}], name


@pytest.mark.parametrize("name", FUNCTIONS_SPEC)
def test_function_alarms(template: dict[str, Any], name: str) -> None:
    fn, _ = function(template, name)
    for kind, metric in (("errors", "Errors"), ("throttles", "Throttles")):
        alarm = alarms(template)[f"{PREFIX}-{name}-{kind}"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", metric, "Sum")
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": fn}}]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("name", QUEUES)
def test_queue_depth_alarm(template: dict[str, Any], name: str) -> None:
    queue_id, _ = queue(template, name)
    alarm = alarms(template)[f"{PREFIX}-{name}-depth"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


@pytest.mark.parametrize(("context", "period"), [({}, 15 * 60), ({"sweepRate": 15}, 45 * 60), ({"sweepRate": 1}, 5 * 60)])
def test_sweep_not_running_alarm(synth, context: dict[str, Any], period: int) -> None:
    template = synth(**context)
    sweep, _ = function(template, "sweep")
    alarm = alarms(template)[f"{PREFIX}-sweep-not-running"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "Invocations", "Sum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": sweep}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (period, 1)


# --- 7. context variants -------------------------------------------------------------------------

def test_email_subscription_filters_on_severity(synth) -> None:
    template = synth(emails=["a@example.com"])
    alerts, _ = topic(template, "alerts")
    _, subscription = find(template, "AWS::SNS::Subscription", Protocol="email")
    assert subscription["Endpoint"] == "a@example.com"
    assert subscription["TopicArn"] == {"Ref": alerts}
    assert subscription["FilterPolicy"] == {"severity": ["critical", "warning"]}
    assert set(subscription["FilterPolicy"]["severity"]) <= {s.value for s in Severity}


def test_email_severities_and_comma_separated_emails(synth) -> None:
    template = synth(emails="a@example.com, b@example.com", emailSeverities="critical")
    subscriptions = [r["Properties"] for r in resources(template, "AWS::SNS::Subscription").values()
                     if r["Properties"]["Protocol"] == "email"]
    assert sorted(s["Endpoint"] for s in subscriptions) == ["a@example.com", "b@example.com"]
    assert all(s["FilterPolicy"] == {"severity": ["critical"]} for s in subscriptions)


def test_ops_emails_subscribe_to_operations(synth) -> None:
    template = synth(opsEmails=["ops@example.com"])
    ops, _ = topic(template, "operations")
    _, subscription = find(template, "AWS::SNS::Subscription", Protocol="email")
    assert (subscription["Endpoint"], subscription["TopicArn"]) == ("ops@example.com", {"Ref": ops})
    assert "FilterPolicy" not in subscription


def test_chatbot(synth, template: dict[str, Any]) -> None:
    assert not resources(template, "AWS::Chatbot::SlackChannelConfiguration")
    variant = synth(chatbotSlackWorkspaceId="T0123ABCD", chatbotSlackChannelId="C0123ABCD")
    alerts, _ = topic(variant, "alerts")
    _, chatbot = find(variant, "AWS::Chatbot::SlackChannelConfiguration", ConfigurationName=f"{PREFIX}-alerts")
    assert (chatbot["SlackWorkspaceId"], chatbot["SlackChannelId"]) == ("T0123ABCD", "C0123ABCD")
    assert chatbot["SnsTopicArns"] == [{"Ref": alerts}]


def test_without_slack(synth) -> None:
    template = synth(slack=False)
    # (the rules seed's provider function has a generated name)
    names = {r["Properties"].get("FunctionName") for r in resources(template, "AWS::Lambda::Function").values()}
    assert names == {f"{PREFIX}-evaluator", f"{PREFIX}-sweep", f"{PREFIX}-worker", None}
    assert not resources(template, "AWS::SecretsManager::Secret")
    assert not resources(template, "AWS::SNS::Subscription")
    assert {r["Properties"]["QueueName"] for r in resources(template, "AWS::SQS::Queue").values()} == {
        f"{PREFIX}-events-dlq", f"{PREFIX}-evaluator-failures", f"{PREFIX}-work", f"{PREFIX}-work-dlq"}
    assert len(alarms(template)) == 11 and not any("slack" in name for name in alarms(template))
    assert "SlackWebhookSecret" not in template.get("Outputs", {})


def test_existing_slack_secret(synth) -> None:
    template = synth(slackSecretName="existing/name")
    assert not resources(template, "AWS::SecretsManager::Secret")
    env = function(template, "slack-notifier")[1]["Environment"]["Variables"]
    assert env["SLACK_WEBHOOK_SECRET"] == "existing/name"
    read = [s for s in function_statements(template, "slack-notifier")
            if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert len(read) == 2 and "secret:existing/name-??????" in json.dumps(read[0]["Resource"])
    assert read[1]["Resource"] == RECEIVER_SECRETS_ARN  # the named receivers' stay under the stack's prefix


def test_sweep_rate(synth) -> None:
    _, rule = find(synth(sweepRate=15), "AWS::Events::Rule", Name=f"{PREFIX}-sweep")
    assert rule["ScheduleExpression"] == "rate(15 minutes)"


def test_log_level(synth) -> None:
    template = synth(logLevel="debug")
    for name in FUNCTIONS_SPEC:
        assert function(template, name)[1]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(("context", "named"), [
    ({"prefix": "Bad_Prefix"}, "'prefix'"),
    ({"logLevel": "LOUD"}, "'logLevel'"),
    ({"sweepRate": 0}, "'sweepRate'"),
    ({"sweepRate": 61}, "'sweepRate'"),
    ({"sweepRate": "often"}, "'sweepRate'"),
    ({"logRetentionDays": 0}, "'logRetentionDays'"),
    ({"logRetentionDays": 1000}, "'logRetentionDays'"),
    ({"emailSeverities": ["critcal"]}, "'emailSeverities'"),
    ({"emails": "not-an-email"}, "'emails'"),
    ({"opsEmails": ["ops@example"]}, "'opsEmails'"),
    ({"chatbotSlackWorkspaceId": "T0123ABCD"}, "chatbotSlackChannelId"),
    ({"chatbotSlackChannelId": "C0123ABCD"}, "chatbotSlackWorkspaceId"),
    ({"slack": "maybe"}, "'slack'"),
    ({"eventAccounts": "12345678901"}, "'eventAccounts'"),
    ({"eventAccounts": ["111122223333", "arn:aws:iam::444455556666:root"]}, "'eventAccounts'"),
    ({"slackReceivers": "ml-oncall,default"}, "'slackReceivers'"),
    ({"slackReceivers": ["ML_oncall"]}, "'slackReceivers'"),
], ids=lambda v: v if isinstance(v, str) else json.dumps(v))
def test_invalid_context(tmp_path: Path, context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_stack(tmp_path, **context)
    assert named in str(raised.value)


# --- 8. cdk-nag ----------------------------------------------------------------------------------

def _violations(outdir: Path) -> list[str]:
    report = outdir / "validation-report.json"
    if not report.exists():
        return []
    return [v["ruleName"] for plugin in json.loads(report.read_text())["pluginReports"] for v in plugin["violations"]]


@pytest.mark.parametrize("context", list(LINTED.values()), ids=list(LINTED))
def test_cdk_nag_has_no_findings(tmp_path: Path, context: dict[str, Any]) -> None:
    _, stack = make_stack(tmp_path, **context)
    Template.from_stack(stack)  # raises RuntimeError("ValidationFailed ...") on any unacknowledged finding
    assert _violations(tmp_path) == []


def test_cdk_nag_plugin_is_active(tmp_path: Path) -> None:
    _, stack = make_stack(tmp_path)
    sqs.Queue(stack, "Naked", encryption=sqs.QueueEncryption.UNENCRYPTED)
    # the message names the findings in some runs and only the report file in others ("Validation
    # failed. A copy of this report can be found in: ..."): the report itself is the reliable part
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        Template.from_stack(stack)
    assert sorted(_violations(tmp_path)) == ["AwsSolutions-SQS2", "AwsSolutions-SQS4"]


# --- 9. cfn-lint ---------------------------------------------------------------------------------

@pytest.mark.parametrize("context", list(LINTED.values()), ids=list(LINTED))
def test_cfn_lint(synth, tmp_path: Path, context: dict[str, Any]) -> None:
    path = tmp_path / "HyperPodGuard.template.json"
    path.write_text(json.dumps(synth(**context), indent=1))
    # cfn-lint 1.x has no `python -m cfnlint` (no __main__): call its console entry point
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
         "--ignore-checks", "W3005", "--", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- 10. the Lambda asset ------------------------------------------------------------------------

def test_asset_copy_excludes_local_and_caches(tmp_path: Path) -> None:
    source = tmp_path / "src" / "hyperpod_guard"
    shutil.copytree(FUNCTIONS / "hyperpod_guard", source)
    # what a developer's tree typically holds besides the sources
    (source / "__pycache__").mkdir(exist_ok=True)
    (source / "__pycache__" / "engine.cpython-314.pyc").write_bytes(b"")
    (source / "handlers" / "__pycache__").mkdir(exist_ok=True)
    (source / "handlers" / "__pycache__" / "evaluator.cpython-314.pyc").write_bytes(b"")
    (source / "stray.pyc").write_bytes(b"")
    (source / ".pytest_cache").mkdir(exist_ok=True)
    assert (source / "local" / "__init__.py").exists()

    assert (source / "cli" / "__init__.py").exists()

    target = copy_package(tmp_path / "asset", source)

    copied = {p.relative_to(target).as_posix() for p in target.rglob("*")}
    assert not [p for p in copied if re.search(r"(^|/)(cli|local|__pycache__|\.pytest_cache)(/|$)", p)]
    assert not [p for p in copied if p.endswith(".pyc")]
    for handler in ("evaluator", "sweep", "slack_notifier"):
        assert f"handlers/{handler}.py" in copied
    assert {"__init__.py", "py.typed", "ledger_store.py", "rules_store.py"} <= copied
    # nothing the asset carries imports the left-out local stand-ins
    for module in target.rglob("*.py"):
        imports = [n for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in imports for a in n.names] + [n.module or "" for n in imports if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n == "local" or n.endswith(".local") or n.startswith("local.")
                    or "hyperpod_guard.local" in n], module


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _runtime(name: str) -> bool:
    """A module of the runtime package: anything but hyperpod_guard.cli* and hyperpod_guard.local*."""
    return name.split(".")[1:2] not in ([n] for n in NOT_SHIPPED)


def test_asset_carries_the_runtime_package_and_not_cli_or_local(tmp_path: Path) -> None:
    """Exactly the runtime package: every file outside cli/ and local/, nothing under them; and no
    module it carries imports them, even in a function (tests/import_graph.py)."""
    assert set(NOT_SHIPPED) == {"cli", "local"}
    target = copy_package(tmp_path / "asset")
    assert _files(target) == {f for f in _files(PACKAGE) if f.split("/")[0] not in NOT_SHIPPED}
    shipped, everything = import_graph.modules(target), import_graph.modules(PACKAGE)
    assert set(shipped) == {name for name in everything if _runtime(name)}
    assert {"hyperpod_guard.handlers.evaluator", "hyperpod_guard.handlers.sweep",
            "hyperpod_guard.handlers.slack_notifier", "hyperpod_guard.policies"} <= set(shipped)
    assert [name for name in everything if not _runtime(name)], "the cli and local packages exist"
    # what a shipped module imports is shipped: the handlers' import closure stays in the asset
    graph = import_graph.build(PACKAGE)
    leaks = {name: sorted(graph[name] - set(shipped)) for name in shipped if graph[name] - set(shipped)}
    assert not leaks, f"runtime modules importing the command line or the stand-ins: {leaks}"
    handlers = [name for name in shipped if name.startswith("hyperpod_guard.handlers.")]
    assert import_graph.reachable(graph, handlers) <= set(shipped)


def test_asset_is_chosen_by_package_not_by_file_name(tmp_path: Path) -> None:
    """A file added under cli/ or local/ stays out; a runtime module named like the command line
    ships (a nested `cli`, a `cli_*.py`, `scenarios.py`, `redrive.py`)."""
    source = tmp_path / "src" / "hyperpod_guard"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__"))
    added_out = ["cli/new_command.py", "cli/more/__init__.py", "local/extra.py"]
    added_in = ["cli_helpers.py", "scenarios.py", "redrive.py", "notify/local.py", "handlers/cli/__init__.py"]
    for name in added_out + added_in:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("")
    copied = _files(copy_package(tmp_path / "asset", source))
    assert set(added_in) <= copied
    assert not set(added_out) & copied
    assert not [f for f in copied if f.split("/")[0] in NOT_SHIPPED]


def test_asset_hash_ignores_cli_and_local(tmp_path: Path) -> None:
    """CDK fingerprints functions/ with EXCLUDE: a change to the command line or the stand-ins does
    not change the functions' asset (no redeploy); a change to the runtime does."""
    functions = tmp_path / "functions"
    shutil.copytree(PACKAGE, functions / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))

    def fingerprint() -> str:
        return cdk.FileSystem.fingerprint(str(functions), exclude=list(EXCLUDE))

    before = fingerprint()
    for name in ("cli/common.py", "local/demo.py"):
        with (functions / PACKAGE.name / name).open("a") as file:
            file.write("# changed\n")
    (functions / PACKAGE.name / "cli" / "new_command.py").write_text("")
    (functions / PACKAGE.name / "__pycache__").mkdir()
    (functions / PACKAGE.name / "__pycache__" / "engine.cpython-314.pyc").write_bytes(b"")
    assert fingerprint() == before
    (functions / PACKAGE.name / "handlers" / "cli.py").write_text("")
    assert fingerprint() != before
