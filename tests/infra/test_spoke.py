"""The spoke stack (issue 22, infra/spoke.py): its parameters, the rule that forwards HyperPod events to the
hub's bus, the role the hub assumes (trust with the external id and the hub's role ARN; exactly the hub's
SageMaker reads, remediation only under EnableRemediation), StackSet-ready, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from hyperpod_guard import fleet
from infra.app import spoke
from infra.evaluation import SAGEMAKER_FEATURE_READ, SAGEMAKER_PLAN_READ, SAGEMAKER_READ, SAGEMAKER_REMEDIATE
from infra.ingestion import EVENT_PATTERN
from infra.spoke import SPOKE_ID, STACKSET_TEMPLATE, stackset_template

from .conftest import make_stack
from .test_stack import ACCOUNT, EVENT_DIRS, PARTITION, PREFIX, _join, _violations, as_list, evaluate, resources

HUB = "123456789012"
HERE = "111122223333"
CLUSTERS = _join("arn:", PARTITION, ":sagemaker:*:", ACCOUNT, ":cluster/*")
PLANS = _join("arn:", PARTITION, ":sagemaker:*:", ACCOUNT, ":training-plan/*")
REF = {name: {"Ref": name} for name in ("HubAccountId", "HubEventBusArn", "HubRolePrefix", "ExternalId",
                                        "SpokeRoleName", "EnableRemediation", "RoleRegion")}


@pytest.fixture(scope="module")
def spoke_synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    """spoke_synth(**context) -> the spoke template (Template.from_stack runs cdk-nag: raises on a finding)."""
    cache: dict[str, dict[str, Any]] = {}

    def run(**context: Any) -> dict[str, Any]:
        key = json.dumps(context, sort_keys=True)
        if key not in cache:
            outdir = tmp_path_factory.mktemp("cdk.out")
            app, _ = make_stack(outdir, **context)
            cache[key] = Template.from_stack(spoke(app)).to_json()
            assert _violations(outdir) == []
        return cache[key]

    return run


@pytest.fixture(scope="module")
def template(spoke_synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return spoke_synth()


def reader(template: dict[str, Any]) -> dict[str, Any]:
    """The role the hub assumes (the resource, Condition included)."""
    ((resource),) = [r for r in resources(template, "AWS::IAM::Role").values()
                     if r["Properties"].get("RoleName") == REF["SpokeRoleName"]]
    return resource


def reader_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the role's inline policies and of the policies attached to it."""
    lid = next(lid for lid, r in template["Resources"].items() if r is reader(template))
    statements = [s for p in reader(template)["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": lid} in policy["Properties"]["Roles"]:
            assert policy["Condition"] == "CreatesRole"  # no policy outlives the role
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def forward_rule(template: dict[str, Any]) -> dict[str, Any]:
    ((rule),) = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()]
    return rule


# --- StackSet-ready ------------------------------------------------------------------------------

def test_no_bootstrap_version_and_no_assets(template: dict[str, Any], synth) -> None:
    assert "BootstrapVersion" not in template["Parameters"]
    assert "Rules" not in template
    assert not resources(template, "AWS::CDK::Metadata")
    assert "aws:asset:path" not in json.dumps(template)
    assert stackset_template(template) is template
    # the hub, synthesised with the bootstrap stack, is not StackSet-ready: the check sees it
    with pytest.raises(ValueError, match="BootstrapVersion"):
        stackset_template(synth())


def test_app_writes_the_spoke_template_and_make_synth_the_stackset_copy(tmp_path: Path) -> None:
    app, _ = make_stack(tmp_path)
    app.synth()
    manifest = json.loads((tmp_path / "manifest.json").read_text())["artifacts"][SPOKE_ID]
    assert manifest["properties"]["stackName"] == f"{PREFIX}-spoke"
    assert manifest["properties"]["templateFile"] == f"{SPOKE_ID}.template.json"
    assert manifest["environment"] == "aws://unknown-account/unknown-region"  # any account and region
    # `cdk deploy` with the caller's credentials: no bootstrap role to assume or hand to CloudFormation
    assert not {"assumeRoleArn", "cloudFormationExecutionRoleArn", "requiresBootstrapStackVersion",
                "stackTemplateAssetObjectUrl"} & set(manifest["properties"])
    # what `make synth` runs after `cdk synth`
    subprocess.run([sys.executable, "-m", "infra.spoke", str(tmp_path)], check=True, capture_output=True, text=True)
    copied = json.loads((tmp_path / STACKSET_TEMPLATE).read_text())
    assert copied == json.loads((tmp_path / f"{SPOKE_ID}.template.json").read_text())
    assert "BootstrapVersion" not in copied["Parameters"]


# --- parameters ----------------------------------------------------------------------------------

def test_parameters_and_their_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert list(parameters) == list(REF)
    assert {name: p.get("Default") for name, p in parameters.items()} == {
        "HubAccountId": None, "HubEventBusArn": None, "HubRolePrefix": PREFIX, "ExternalId": PREFIX,
        "SpokeRoleName": fleet.DEFAULT_SPOKE_ROLE, "EnableRemediation": "false", "RoleRegion": ""}
    assert parameters["EnableRemediation"]["AllowedValues"] == ["true", "false"]


def test_parameter_defaults_follow_the_context(spoke_synth) -> None:
    parameters = spoke_synth(prefix="ml-guard", spokeRoleName="guard-reader", spokeExternalId="ext:1",
                             spokeAccounts=[HERE], fleetRegions="eu-west-1,us-east-1")["Parameters"]
    assert {name: parameters[name]["Default"] for name in ("HubRolePrefix", "ExternalId", "SpokeRoleName",
                                                           "RoleRegion")} == {
        "HubRolePrefix": "ml-guard", "ExternalId": "ext:1", "SpokeRoleName": "guard-reader", "RoleRegion": "eu-west-1"}


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("HubAccountId", ["123456789012"], ["12345678901", "arn:aws:iam::123456789012:root"]),
    ("HubEventBusArn", ["arn:aws:events:us-west-2:123456789012:event-bus/hyperpod-guard-fleet",
                        "arn:aws-cn:events:cn-north-1:123456789012:event-bus/x"],
     ["hyperpod-guard-fleet", "arn:aws:sqs:us-west-2:123456789012:q"]),
    ("ExternalId", ["hyperpod-guard", "a:b/c@d=e"], ["x", "has space"]),
    ("SpokeRoleName", ["hyperpod-guard-spoke"], ["path/name", "r" * 65]),
    ("HubRolePrefix", ["hyperpod-guard"], ["Bad_Prefix", ""]),
    ("RoleRegion", ["", "us-east-1", "eu-central-1"], ["Frankfurt", "us-east"]),
])
def test_parameter_patterns(template: dict[str, Any], name: str, good: list[str], bad: list[str]) -> None:
    """CloudFormation matches AllowedPattern against the whole value."""
    pattern = template["Parameters"][name]["AllowedPattern"]
    assert [v for v in good if not re.fullmatch(pattern, v)] == []
    assert [v for v in bad if re.fullmatch(pattern, v)] == []


# --- the rule that forwards HyperPod events to the hub ---------------------------------------------

def test_rule_forwards_this_accounts_hyperpod_events_to_the_hub_bus(template: dict[str, Any]) -> None:
    rule = forward_rule(template)
    assert "EventBusName" not in rule  # the default bus, where SageMaker puts them
    assert rule["EventPattern"] == {**EVENT_PATTERN, "account": [ACCOUNT]}
    assert rule["State"] == "ENABLED"
    ((target),) = rule["Targets"]
    assert target["Arn"] == REF["HubEventBusArn"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}}]
    assert "Policies" not in role and "ManagedPolicyArns" not in role
    policies = resources(template, "AWS::IAM::Policy").values()
    (statements,) = [p["Properties"]["PolicyDocument"]["Statement"] for p in policies
                     if {"Ref": role_id} in p["Properties"]["Roles"]]
    assert statements == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": REF["HubEventBusArn"]}]


@pytest.mark.parametrize("scenario", EVENT_DIRS, ids=lambda d: d.name)
def test_rule_pattern_matches_the_sample_events(template: dict[str, Any], scenario: Path) -> None:
    """moto's matcher: the HyperPod events of the spoke's own account go to the hub, nothing else."""
    event = json.loads((scenario / "event.json").read_text())
    expected = not json.loads((scenario / "expected.json").read_text()).get("ignored", False)
    pattern = forward_rule(template)["EventPattern"]

    def matcher(account: str) -> EventPattern:
        return EventPattern.load(json.dumps({k: evaluate(v, {"AWS::AccountId": account}) for k, v in pattern.items()}))

    assert matcher(event["account"]).matches_event(event) is expected
    assert matcher("999988887777").matches_event(event) is False


# --- the role the hub assumes --------------------------------------------------------------------

def test_role_trusts_the_hubs_roles_with_the_external_id(template: dict[str, Any]) -> None:
    role = reader(template)
    assert role["Properties"]["RoleName"] == REF["SpokeRoleName"]
    ((statement),) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "sts:AssumeRole")
    assert statement["Principal"] == {"AWS": _join("arn:", PARTITION, ":iam::", REF["HubAccountId"], ":root")}
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": REF["ExternalId"]},
        "StringLike": {"aws:PrincipalArn": _join("arn:", PARTITION, ":iam::", REF["HubAccountId"], ":role/",
                                                 REF["HubRolePrefix"], "-*")},
    }
    # the hub's functions' roles are named by CloudFormation after the hub's stack (the prefix): they match;
    # another prefix's or another account's do not
    pattern = evaluate(statement["Condition"]["StringLike"]["aws:PrincipalArn"],
                       {"AWS::Partition": "aws", "HubAccountId": HUB, "HubRolePrefix": PREFIX})
    assert fnmatch.fnmatchcase(f"arn:aws:iam::{HUB}:role/{PREFIX}-EvaluationEvaluatorServiceRole7-1AbCdEf", pattern)
    assert not fnmatch.fnmatchcase(f"arn:aws:iam::{HUB}:role/admin", pattern)
    assert not fnmatch.fnmatchcase(f"arn:aws:iam::{HERE}:role/{PREFIX}-x", pattern)


def test_hub_roles_are_named_after_the_hub_stack(synth) -> None:
    """The trust's `<prefix>-*` holds because the hub's roles have no fixed names: CloudFormation names them
    `<stack name>-<logical id>-<suffix>`, and the hub's stack name is the prefix (infra/app.py)."""
    template = synth(spokeAccounts=[HERE])
    assert [lid for lid, r in resources(template, "AWS::IAM::Role").items() if "RoleName" in r["Properties"]] == []


def test_role_is_least_privilege(template: dict[str, Any]) -> None:
    """Exactly the hub's SageMaker reads (infra/evaluation.py's constants), on this account's clusters and
    training plans; ListClusters alone on '*'; the remediation actions only inside Fn::If on EnableRemediation."""
    plain = [s for s in reader_statements(template) if "Fn::If" not in s]
    (conditional,) = [s["Fn::If"] for s in reader_statements(template) if "Fn::If" in s]
    granted = {action: s["Resource"] for s in plain for action in as_list(s["Action"])}
    assert all(s["Effect"] == "Allow" and set(s) == {"Effect", "Action", "Resource"} for s in plain)
    assert set(granted) == {*SAGEMAKER_READ, *SAGEMAKER_FEATURE_READ, *SAGEMAKER_PLAN_READ, "sagemaker:ListClusters"}
    assert granted == {**dict.fromkeys((*SAGEMAKER_READ, *SAGEMAKER_FEATURE_READ), CLUSTERS),
                       **dict.fromkeys(SAGEMAKER_PLAN_READ, PLANS), "sagemaker:ListClusters": "*"}
    condition, remediate, otherwise = conditional
    assert condition == "RemediationEnabled"
    assert template["Conditions"]["RemediationEnabled"] == {"Fn::Equals": [REF["EnableRemediation"], "true"]}
    assert remediate == {"Effect": "Allow", "Action": list(SAGEMAKER_REMEDIATE), "Resource": CLUSTERS}
    assert otherwise == {"Ref": "AWS::NoValue"}
    # nowhere else in the template
    assert all(json.dumps(template).count(f'"{action}"') == 1 for action in SAGEMAKER_REMEDIATE)


@pytest.mark.parametrize(("role_region", "region", "creates"), [
    ("", "us-east-1", True), ("us-east-1", "us-east-1", True), ("us-east-1", "eu-west-1", False)])
def test_role_is_created_in_one_region_of_the_account(template: dict[str, Any], role_region: str, region: str,
                                                      creates: bool) -> None:
    """IAM is global: with RoleRegion set, only that region's stack creates the role (and its policy, output)."""
    assert reader(template)["Condition"] == "CreatesRole"
    assert template["Outputs"]["SpokeRoleArn"]["Condition"] == "CreatesRole"
    ((function_, branches),) = template["Conditions"]["CreatesRole"].items()
    assert function_ == "Fn::Or"
    refs = {"RoleRegion": role_region, "AWS::Region": region}
    equal = [evaluate(a, refs) == evaluate(b, refs) for a, b in (branch["Fn::Equals"] for branch in branches)]
    assert any(equal) is creates


# --- cdk-nag, cfn-lint ---------------------------------------------------------------------------

@pytest.mark.parametrize("context", [{}, {"organizationId": "o-abcdefghij12", "fleetRegions": "us-east-1"}],
                         ids=["default", "organization"])
def test_cdk_nag_has_no_findings(tmp_path: Path, context: dict[str, Any]) -> None:
    app, _ = make_stack(tmp_path, **context)
    Template.from_stack(spoke(app))  # raises RuntimeError("ValidationFailed ...") on any unacknowledged finding
    assert _violations(tmp_path) == []


def test_cfn_lint(template: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / STACKSET_TEMPLATE
    path.write_text(json.dumps(template, indent=1))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
         "--ignore-checks", "W3005", "--", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
