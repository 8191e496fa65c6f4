"""Least privilege and encryption at rest, checked on every resource of the synthesised templates.

tests/infra/test_stack.py already pins, and this module does not repeat:
- test_no_wildcard_actions: no `*` or `service:*` (nor `kms:GenerateDataKey*`) action in any
  identity policy (AWS::IAM::Policy, ManagedPolicy, role inline policies), default and all options;
- test_sagemaker_scoped_to_clusters: SageMaker actions only on this account's and region's
  cluster ARNs, `Resource: "*"` only for sagemaker:ListClusters (no resource-level permissions);
- test_evaluation_role / test_notifier_role / test_remediation_only_when_enabled: each role's grants;
- test_table_mirrors_ledger_store, test_topic_encrypted_and_tls_only, test_queue_encrypted_and_tls_only:
  the named table, topics and queues of the default stack.
Here: the same guarantees for *every* resource of each variant (so a queue or topic added later
is covered without a new test), and what identity policies alone do not show: resource policies,
managed policies and trust policies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .test_stack import ALL_OPTIONS, as_list, iam_statements, resources

VARIANTS = {"default": {}, "all-options": ALL_OPTIONS, "without-slack": {"slack": False},
            "slack-app": {**ALL_OPTIONS, "slackMode": "app", "slackChannels": "default=C0123ABCD"}}
#: resource policies and where their statements are
RESOURCE_POLICIES = {
    "AWS::KMS::Key": "KeyPolicy", "AWS::SQS::QueuePolicy": "PolicyDocument", "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::Lambda::Permission": None,
}
#: the only AWS managed policy a role may carry: CloudWatch Logs for the function's own logs
BASIC_EXECUTION = "service-role/AWSLambdaBasicExecutionRole"


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def variant(request: pytest.FixtureRequest, synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return synth(**VARIANTS[request.param])


def _wildcard(action: str) -> bool:
    return action == "*" or action.endswith("*")


def _account_root(principal: Any) -> bool:
    """{"AWS": arn:<partition>:iam::<this account>:root}: the key policy's delegation to IAM."""
    if not isinstance(principal, dict) or set(principal) != {"AWS"}:
        return False
    parts = principal["AWS"].get("Fn::Join", ["", []])[1] if isinstance(principal["AWS"], dict) else [principal["AWS"]]
    return parts[-1:] == [":root"] and {"Ref": "AWS::AccountId"} in parts


# --- identity and resource policies ---------------------------------------------------------------

def test_no_statement_allows_by_exclusion(variant: dict[str, Any]) -> None:
    """NotAction / NotResource in an Allow grant everything else: never used."""
    statements = [s for _, s in iam_statements(variant)]
    for type_, key in RESOURCE_POLICIES.items():
        if key:
            statements += [s for r in resources(variant, type_).values() for s in r["Properties"][key]["Statement"]]
    assert statements  # not vacuous
    assert [s for s in statements if s["Effect"] == "Allow" and ({"NotAction", "NotResource", "NotPrincipal"} & set(s))] == []


def test_resource_policies_allow_no_wildcard_action(variant: dict[str, Any]) -> None:
    """Queue, topic and key policies allow named actions to named principals. Deny statements
    (TLS only) may use `sqs:*`; the one `kms:*` is the key policy's standard delegation to the
    account's IAM policies (without it no role could be granted the key), which is then
    narrowed by the identity policies test_stack.py checks."""
    allowed = []
    for type_, key in RESOURCE_POLICIES.items():
        if not key:
            continue
        for r in resources(variant, type_).values():
            allowed += [s for s in r["Properties"][key]["Statement"] if s["Effect"] == "Allow"]
    assert allowed
    wildcards = [s for s in allowed if any(_wildcard(a) for a in as_list(s["Action"]))]
    assert all(_account_root(s["Principal"]) and as_list(s["Action"]) == ["kms:*"] for s in wildcards), wildcards
    assert len(wildcards) == len(resources(variant, "AWS::KMS::Key"))
    services = [s for s in allowed if "Service" in s.get("Principal", {})]
    assert all(not any(_wildcard(a) for a in as_list(s["Action"])) for s in services)
    assert not [s for s in allowed if s.get("Principal") in ("*", {"AWS": "*"})]  # nobody anonymous


def test_lambda_permissions_name_their_source(variant: dict[str, Any]) -> None:
    """Only EventBridge (from our rules) and SNS (from our topic) may invoke the functions; and, in Slack app
    mode, anyone through the interactivity endpoint's Function URL only (Slack's signature is checked by the
    handler before anything else: tests/integration/test_chatops.py), never the function directly."""
    permissions = [r["Properties"] for r in resources(variant, "AWS::Lambda::Permission").values()]
    assert permissions
    urls = resources(variant, "AWS::Lambda::Url")
    endpoint = {r["Properties"]["TargetFunctionArn"]["Fn::GetAtt"][0] for r in urls.values()}
    for permission in permissions:
        if permission["Principal"] == "*":
            url = (permission["Action"], permission.get("FunctionUrlAuthType"), permission.get("InvokedViaFunctionUrl"))
            assert url in (("lambda:InvokeFunctionUrl", "NONE", None), ("lambda:InvokeFunction", None, True)), permission
            alias = variant["Resources"][permission["FunctionName"]["Ref"]]["Properties"]
            assert alias["FunctionName"]["Ref"] in endpoint and alias["Name"] == "live"
            continue
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["Principal"] in ("events.amazonaws.com", "sns.amazonaws.com")
        assert "SourceArn" in permission
    assert len(endpoint) == len(urls) <= 1


# --- roles ----------------------------------------------------------------------------------------

def test_function_roles_are_for_lambda_only_and_carry_only_basic_execution(variant: dict[str, Any]) -> None:
    roles = resources(variant, "AWS::IAM::Role")
    function_roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in resources(variant, "AWS::Lambda::Function").values()}
    assert function_roles
    for role_id in function_roles:
        role = roles[role_id]["Properties"]
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert [(s["Effect"], s["Action"], s["Principal"]) for s in trust] == [
            ("Allow", "sts:AssumeRole", {"Service": "lambda.amazonaws.com"})], role_id
        names = [m["Fn::Join"][1][-1] if isinstance(m, dict) else m for m in role.get("ManagedPolicyArns", [])]
        assert names == [f":iam::aws:policy/{BASIC_EXECUTION}"], role_id
        assert not role.get("Policies"), role_id  # grants live in AWS::IAM::Policy (checked in test_stack.py)


def test_other_roles_grant_nothing(variant: dict[str, Any]) -> None:
    """The only other role is AWS Chatbot's channel role (-c chatbotSlack*): it lets Chatbot post
    the topic's messages and may do nothing in the account."""
    roles = resources(variant, "AWS::IAM::Role")
    function_roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in resources(variant, "AWS::Lambda::Function").values()}
    attached = {ref["Ref"] for p in resources(variant, "AWS::IAM::Policy").values() for ref in p["Properties"]["Roles"]}
    for role_id in set(roles) - function_roles:
        role = roles[role_id]["Properties"]
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert [(s["Effect"], s["Action"], s["Principal"]) for s in trust] == [
            ("Allow", "sts:AssumeRole", {"Service": "chatbot.amazonaws.com"})], role_id
        assert not role.get("ManagedPolicyArns") and not role.get("Policies") and role_id not in attached, role_id


def test_no_user_group_or_access_key(variant: dict[str, Any]) -> None:
    for type_ in ("AWS::IAM::User", "AWS::IAM::Group", "AWS::IAM::AccessKey", "AWS::IAM::InstanceProfile"):
        assert resources(variant, type_) == {}


# --- data at rest ---------------------------------------------------------------------------------

def test_every_table_is_encrypted(variant: dict[str, Any]) -> None:
    tables = resources(variant, "AWS::DynamoDB::Table")
    assert tables
    assert all(t["Properties"]["SSESpecification"]["SSEEnabled"] is True for t in tables.values())


def test_every_topic_is_encrypted_with_the_stacks_key(variant: dict[str, Any]) -> None:
    topics = resources(variant, "AWS::SNS::Topic")
    (key_id,) = resources(variant, "AWS::KMS::Key")
    assert topics
    assert all(t["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]} for t in topics.values())


def test_every_queue_is_encrypted(variant: dict[str, Any]) -> None:
    queues = resources(variant, "AWS::SQS::Queue")
    assert queues
    for queue_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, queue_id


def test_every_kms_key_rotates(variant: dict[str, Any]) -> None:
    keys = resources(variant, "AWS::KMS::Key")
    assert keys and all(k["Properties"]["EnableKeyRotation"] is True for k in keys.values())


def test_secrets_are_never_in_the_template(variant: dict[str, Any]) -> None:
    """The webhook secret is created without a value (generated placeholder); the URL is put
    in by the operator after deploying and never passes through the template or the environment."""
    for secret in resources(variant, "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]
    for function in resources(variant, "AWS::Lambda::Function").values():
        environment = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [v for v in environment.values() if "hooks.slack.com" in str(v)]
