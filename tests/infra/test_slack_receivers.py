"""Named Slack receivers (issue 18): the stack creates one webhook secret per `slackReceivers` name, and
the Slack notifier may read every secret under the receivers' prefix, so that one created there by hand
(an existing webhook, "imported") is read without a redeploy. The rules' routing names the receivers;
the notifier finds receiver X's secret at SLACK_RECEIVER_SECRET_PREFIX + X (naming.slack_receiver_secret_name).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from unittest import mock

import aws_cdk as cdk
import pytest
from aws_cdk import ArnFormat
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from hyperpod_guard import naming
from hyperpod_guard.constants import SLACK_RECEIVER_SECRET_PREFIX
from hyperpod_guard.settings import SlackNotifierSettings
from infra.app import build
from infra.config import ConfigError

from .conftest import CDK_JSON_CONTEXT, make_stack
from .test_stack import PREFIX, RECEIVER_SECRETS_ARN, as_list, evaluate, find, function, iam_statements, resources

RECEIVERS = {"slackReceivers": "ml-oncall, platform"}  # as `-c slackReceivers=ml-oncall,platform` gives it
#: what the template's pseudo parameters stand for when a test evaluates an ARN
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-west-2", "AWS::AccountId": "123456789012"}


def _secrets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> Properties of every secret the stack creates."""
    return {r["Properties"]["Name"]: r["Properties"]
            for r in resources(template, "AWS::SecretsManager::Secret").values()}


def _notifier_statements(template: dict[str, Any], prefix: str = PREFIX) -> list[dict[str, Any]]:
    """The statements of the notifier's role (test_stack.function_statements, for any stack prefix)."""
    _, notifier = find(template, "AWS::Lambda::Function", FunctionName=f"{prefix}-slack-notifier")
    role = notifier["Role"]["Fn::GetAtt"][0]
    return [statement for r in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role} in r["Properties"]["Roles"]
            for statement in r["Properties"]["PolicyDocument"]["Statement"]]


def _secret_reads(template: dict[str, Any], prefix: str = PREFIX) -> list[dict[str, Any]]:
    """The notifier's statements that allow any Secrets Manager action."""
    return [s for s in _notifier_statements(template, prefix)
            if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))]


def _receivers_statement(template: dict[str, Any], prefix: str = PREFIX) -> dict[str, Any]:
    """The one that is not on the default secret (a Ref): the receivers' prefix."""
    (statement,) = [s for s in _secret_reads(template, prefix) if "Ref" not in s["Resource"]]
    return statement


# --- naming and settings: one prefix from the stack to the notifier -----------------------------------

def test_receiver_secret_names() -> None:
    assert naming.slack_receiver_secret_prefix() == "hyperpod-guard/slack/"
    assert naming.slack_receiver_secret_prefix("team-a") == "team-a/slack/"
    assert naming.slack_receiver_secret_name("team-a", "ml-oncall") == "team-a/slack/ml-oncall"
    # the default receiver's secret stays where it was, outside the receivers' prefix
    assert not naming.slack_secret_name().startswith(naming.slack_receiver_secret_prefix())


def test_the_notifier_settings_read_the_prefix_the_stack_writes(template: dict[str, Any]) -> None:
    env = function(template, "slack-notifier")[1]["Environment"]["Variables"]
    assert SlackNotifierSettings.variables()["receiver_secret_prefix"] is SLACK_RECEIVER_SECRET_PREFIX
    assert env[SLACK_RECEIVER_SECRET_PREFIX.name] == "hyperpod-guard/slack/"
    # unset (local runs, the demo): the default prefix
    assert SLACK_RECEIVER_SECRET_PREFIX.read({}) == naming.slack_receiver_secret_prefix()
    written = env[SLACK_RECEIVER_SECRET_PREFIX.name]
    read = SlackNotifierSettings.from_env({"SLACK_WEBHOOK_SECRET": "s", "TABLE_NAME": "t",
                                           SLACK_RECEIVER_SECRET_PREFIX.name: written})
    assert read.receiver_secret_prefix == naming.slack_receiver_secret_prefix(PREFIX)


def test_the_prefix_follows_the_stack_prefix(synth: Callable[..., dict[str, Any]]) -> None:
    template = synth(prefix="team-a", slackReceivers="ml-oncall")
    _, notifier = find(template, "AWS::Lambda::Function", FunctionName="team-a-slack-notifier")
    assert notifier["Environment"]["Variables"][SLACK_RECEIVER_SECRET_PREFIX.name] == "team-a/slack/"
    assert "team-a/slack/ml-oncall" in _secrets(template)
    arn = evaluate(_receivers_statement(template, "team-a")["Resource"], PSEUDO)
    assert arn == "arn:aws:secretsmanager:us-west-2:123456789012:secret:team-a/slack/*"


# --- the secrets -------------------------------------------------------------------------------------

def test_a_secret_per_receiver_made_like_the_default_one(synth: Callable[..., dict[str, Any]]) -> None:
    secrets = _secrets(synth(**RECEIVERS))
    assert sorted(secrets) == [f"{PREFIX}/slack-webhook", f"{PREFIX}/slack/ml-oncall", f"{PREFIX}/slack/platform"]
    default = secrets[f"{PREFIX}/slack-webhook"]
    for name in ("ml-oncall", "platform"):
        secret = secrets[naming.slack_receiver_secret_name(PREFIX, name)]
        # the same key as the default one (the account's aws/secretsmanager: no KmsKeyId), a generated
        # placeholder until someone puts the URL in, never a value in the template
        assert secret.get("KmsKeyId") == default.get("KmsKeyId") is None
        assert secret["GenerateSecretString"] == default["GenerateSecretString"] == {}
        assert "SecretString" not in secret
        assert f"receiver {name!r}" in secret["Description"] and "put it here" in secret["Description"]


def test_no_receivers_no_secrets_but_the_same_access(template: dict[str, Any]) -> None:
    """Without `slackReceivers` the stack creates no receiver secret, yet the notifier may read the
    prefix: a secret created there by hand works without a redeploy."""
    assert list(_secrets(template)) == [f"{PREFIX}/slack-webhook"]
    assert evaluate(_receivers_statement(template)["Resource"], PSEUDO) == (
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:hyperpod-guard/slack/*")
    assert "SlackReceiverSecrets" not in template["Outputs"]


def test_outputs_name_the_receivers_secrets(synth: Callable[..., dict[str, Any]]) -> None:
    output = synth(**RECEIVERS)["Outputs"]["SlackReceiverSecrets"]
    assert output["Value"] == "hyperpod-guard/slack/ml-oncall,hyperpod-guard/slack/platform"


def test_names_as_a_json_list_and_repeats_dropped(synth: Callable[..., dict[str, Any]]) -> None:
    template = synth(slackReceivers='["platform", "ml-oncall", "platform"]')
    assert template["Outputs"]["SlackReceiverSecrets"]["Value"] == (
        "hyperpod-guard/slack/platform,hyperpod-guard/slack/ml-oncall")
    assert len(_secrets(template)) == 3


# --- least privilege ---------------------------------------------------------------------------------

@pytest.mark.parametrize("context", [{}, RECEIVERS], ids=["default", "receivers"])
def test_the_notifier_reads_the_receivers_prefix_and_nothing_broader(synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    default_id, _ = find(template, "AWS::SecretsManager::Secret", Name=f"{PREFIX}/slack-webhook")
    reads = _secret_reads(template)
    # the default secret by its own ARN (grant_read: GetSecretValue + DescribeSecret), the receivers by prefix
    assert [s["Resource"] for s in reads if "Ref" in s["Resource"]] == [{"Ref": default_id}]
    receivers = _receivers_statement(template)
    assert len(reads) == 2 and receivers["Effect"] == "Allow" and "Condition" not in receivers
    assert as_list(receivers["Action"]) == ["secretsmanager:GetSecretValue"]  # what parameters.get_secret calls
    pattern = evaluate(receivers["Resource"], PSEUDO)
    arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:"
    # IAM matches `*` across '/' too: the receivers' secrets (name + "-" + 6 random characters) only
    assert fnmatchcase(f"{arn}hyperpod-guard/slack/ml-oncall-AbC123", pattern)
    assert fnmatchcase(f"{arn}hyperpod-guard/slack/imported-by-hand-x1Y2z3", pattern)
    for other in ("hyperpod-guard/slack-webhook-AbC123", "hyperpod-guard-b/slack/x-AbC123", "other/slack/x-AbC123",
                  "hyperpod-guard/rules-AbC123"):
        assert not fnmatchcase(f"{arn}{other}", pattern), other
    for elsewhere in ("eu-west-1:123456789012", "us-west-2:210987654321"):  # another region, another account
        assert not fnmatchcase(f"arn:aws:secretsmanager:{elsewhere}:secret:hyperpod-guard/slack/x-AbC123", pattern)
    # no kms grant: the secrets use the account's aws/secretsmanager key, which Secrets Manager uses for the reader
    assert not [s for s in _notifier_statements(template) if any(a.startswith("kms:") for a in as_list(s["Action"]))]


@pytest.mark.parametrize("context", [{}, RECEIVERS], ids=["default", "receivers"])
def test_only_the_notifier_reads_slack_secrets(synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    notifier_role = function(template, "slack-notifier")[1]["Role"]["Fn::GetAtt"][0]
    notifier_policies = {lid for lid, r in resources(template, "AWS::IAM::Policy").items()
                         if {"Ref": notifier_role} in r["Properties"]["Roles"]}
    others = [(lid, s) for lid, s in iam_statements(template)
              if lid not in notifier_policies and any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))]
    assert others == []


def test_the_cdk_nag_acknowledgement_covers_the_receivers_prefix_only(tmp_path: Path) -> None:
    """The IAM5 acknowledgement names the one wildcard resource, on the notifier only: another wildcard
    on secrets, even in the notifier's own policy, is still a finding."""
    _, stack = make_stack(tmp_path, **RECEIVERS)
    assert stack.alerting.notifier
    stack.alerting.notifier.function.add_to_role_policy(iam.PolicyStatement(
        actions=["secretsmanager:GetSecretValue"],
        resources=[stack.format_arn(service="secretsmanager", resource="secret", resource_name=f"{PREFIX}/*",
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME)],
    ))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        Template.from_stack(stack)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = [v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]]
    broader = f"arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{PREFIX}/*"
    assert rules == [f"AwsSolutions-IAM5[Resource::{broader}]"]


def test_an_environment_bound_stack_passes_cdk_nag_too(tmp_path: Path) -> None:
    """`cdk synth` with credentials binds the stack to an account and region (CDK_DEFAULT_*): the grant stays
    written with pseudo parameters, so the acknowledgement above still names it."""
    with mock.patch.dict(os.environ, CDK_DEFAULT_ACCOUNT="123456789012", CDK_DEFAULT_REGION="eu-west-1"):
        app = cdk.App(outdir=str(tmp_path), context={**CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [], **RECEIVERS})
        stack = build(app)
    assert (stack.account, stack.region) == ("123456789012", "eu-west-1")
    template = Template.from_stack(stack).to_json()  # raises on an unacknowledged finding
    assert _receivers_statement(template)["Resource"] == RECEIVER_SECRETS_ARN


# --- configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("receivers", [
    "default", "ML-oncall", "-oncall", "ml_oncall", "ml.oncall", "a" * 64, "ml/oncall", '["ok", "Not OK"]',
], ids=lambda v: v[:20])
def test_an_invalid_receiver_name_is_a_config_error(tmp_path: Path, receivers: str) -> None:
    with pytest.raises(ConfigError, match="'slackReceivers'"):
        make_stack(tmp_path, slackReceivers=receivers)


def test_receivers_need_the_slack_notifier(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'slackReceivers' needs 'slack'"):
        make_stack(tmp_path, slack=False, slackReceivers="ml-oncall")


def test_the_longest_name_is_accepted(synth: Callable[..., dict[str, Any]]) -> None:
    name = "a" + "-9" * 31  # 63 characters
    assert naming.slack_receiver_secret_name(PREFIX, name) in _secrets(synth(slackReceivers=name))
