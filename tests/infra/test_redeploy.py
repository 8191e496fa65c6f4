"""`make destroy`, then `make deploy` again: nothing a destroyed stack leaves behind collides with the new one.

When CloudFormation deletes the stack, a resource is either deleted (its name is free again) or
kept (`DeletionPolicy: Retain`). A kept resource with a fixed name would make the next create fail
("already exists") unless the new stack adopts it: `make deploy` passes `--import-existing-resources`,
and CloudFormation then imports a resource that has a static custom name, `Retain`, and a type that
supports import. A kept resource without a fixed name collides with nothing. README "Deploy" says
what is kept and why; these tests pin it for every variant of the stack, so that a resource added
later (a retained bucket, a log group left with CDK's default RETAIN) fails here, not in an account.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import REPO
from .test_security import VARIANTS

PREFIX = "hyperpod-guard"
#: the property that holds each resource type's physical name (None: the type has no name that could collide)
NAME_PROPERTY: dict[str, str | None] = {
    "AWS::CDK::Metadata": None,
    "AWS::Chatbot::SlackChannelConfiguration": "ConfigurationName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::Policy": None,  # an inline policy of its role: PolicyName is unique within the role only
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::KMS::Key": None,  # a key's id is generated; its name is the alias
    "AWS::Lambda::Alias": "Name",  # `live`, unique within its function only; deleted with it
    "AWS::Lambda::EventInvokeConfig": None,
    "AWS::Lambda::EventSourceMapping": None,  # its id is generated; deleted with the stack (the queue feeds it)
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::Permission": None,
    "AWS::Lambda::Url": None,  # Slack app mode's endpoint: its URL is generated; deleted with its alias
    "AWS::Lambda::Version": None,  # numbered by Lambda; deleted with the stack, and when the next deploy replaces it
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",  # the episode archive: kept on destroy (the fleet's history), adopted again
    "AWS::S3::BucketPolicy": None,  # its bucket's; deleted with the stack (the kept bucket keeps no policy)
    "AWS::Glue::Database": "Name",  # the archive's tables over the bucket: recreated by the next deploy
    "AWS::Glue::Table": None,  # unique within its database only; deleted with it
    "AWS::SNS::Subscription": None,
    "AWS::SNS::Topic": "TopicName",
    "AWS::SNS::TopicPolicy": None,
    "AWS::SQS::Queue": "QueueName",
    "AWS::SQS::QueuePolicy": None,
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",  # CloudFormation deletes it without a recovery window
    # the rules seed's PutParameter calls (infra/rules_seed.py): the parameters outlive a destroy on purpose,
    # and the next deploy's seed ignores ParameterAlreadyExists, so nothing collides
    "Custom::AWS": None,
}
#: types CloudFormation imports by their name (identifier = the name property), so a retained one is adopted
ADOPTABLE = {"AWS::DynamoDB::Table", "AWS::S3::Bucket"}
KEPT = ("Retain", "RetainExceptOnCreate", "Snapshot")


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def variant(request: pytest.FixtureRequest, synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return synth(**VARIANTS[request.param])


def kept(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r.get("DeletionPolicy", "Delete") in KEPT}


def name(resource: dict[str, Any]) -> Any:
    prop = NAME_PROPERTY[resource["Type"]]
    return resource.get("Properties", {}).get(prop) if prop else None


def test_every_resource_type_is_classified(variant: dict[str, Any]) -> None:
    """A new resource type must be placed in NAME_PROPERTY, i.e. someone decided whether its name can collide."""
    unknown = {r["Type"] for r in variant["Resources"].values()} - set(NAME_PROPERTY)
    assert not unknown, f"add these types to NAME_PROPERTY (and think about their DeletionPolicy): {sorted(unknown)}"


def test_a_kept_resource_has_no_fixed_name_or_is_adopted_by_the_next_deploy(variant: dict[str, Any]) -> None:
    for lid, resource in kept(variant).items():
        physical = name(resource)
        if physical is None:
            continue  # a generated name: nothing to collide with
        assert resource["Type"] in ADOPTABLE, (
            f"{lid} ({resource['Type']}) is kept with the fixed name {physical!r}: a redeploy would collide with it")
        # --import-existing-resources matches static names only (no Ref / Fn::Join). The archive bucket's name
        # holds the account and region: a Fn::Join in these environment-agnostic templates, a plain string once
        # the environment is known, as `cdk deploy` knows it (tests/infra/test_archive.py checks that)
        assert isinstance(physical, str) or resource["Type"] == "AWS::S3::Bucket", (
            f"{lid}: a kept resource's name must be a plain string, not {physical}")
        assert resource["DeletionPolicy"] in ("Retain", "RetainExceptOnCreate")


def test_what_a_destroy_keeps_is_the_ledger_the_archive_and_the_key(variant: dict[str, Any]) -> None:
    """What README "Deploy" lists: the ledger table and the episode archive (adopted again) and the KMS key."""
    assert sorted(r["Type"] for r in kept(variant).values()) == [
        "AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::S3::Bucket"]
    assert sorted((r["Type"], name(r)) for r in kept(variant).values() if r["Type"] != "AWS::S3::Bucket") == [
        ("AWS::DynamoDB::Table", f"{PREFIX}-ledger"), ("AWS::KMS::Key", None)]


def test_the_key_alias_goes_with_the_stack(variant: dict[str, Any]) -> None:
    """The kept key keeps no name: its alias is deleted, so the next deploy's key can take it."""
    ((key_id, _),) = [(lid, r) for lid, r in variant["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    ((alias),) = [r for r in variant["Resources"].values() if r["Type"] == "AWS::KMS::Alias"]
    assert alias["Properties"] == {"AliasName": f"alias/{PREFIX}", "TargetKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    assert alias.get("DeletionPolicy", "Delete") == "Delete"


def test_the_prefix_names_the_kept_table(synth: Callable[..., dict[str, Any]]) -> None:
    tables = [r for r in kept(synth(prefix="team-a")).values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert [name(r) for r in tables] == ["team-a-ledger"]


def _recipe(target: str) -> list[str]:
    """The command lines of a Makefile target."""
    text = (REPO / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match, f"no {target} target in the Makefile"
    return [line.strip() for line in match.group(1).splitlines()]


def test_make_deploy_adopts_what_a_destroy_kept() -> None:
    (deploy,) = [line for line in _recipe("deploy") if "cdk deploy" in line]
    assert "--import-existing-resources" in deploy.split()


def test_make_destroy_asks_first() -> None:
    (destroy,) = [line for line in _recipe("destroy") if "cdk destroy" in line]
    assert not {"--force", "-f"} & set(destroy.split())  # cdk asks; CDK_ARGS="--force" is the caller's choice
