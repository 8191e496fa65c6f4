"""The spoke stack (issue 22, infra/spoke.py): its parameters, the rule that forwards HyperPod events to the
hub's bus, the role the hub assumes (trust with the external id and the hub's role ARN; exactly the hub's
SageMaker reads, remediation only under EnableRemediation), the blast radius's grants (issue 23: only with
WorkloadEksClusters / EnableWorkloadSlurm, exactly the hub's own, for this region), StackSet-ready, cdk-nag and
cfn-lint clean (the template is the same whatever the parameters: the checks see every conditional resource)."""

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
from infra.spoke import MAX_WORKLOAD_EKS_CLUSTERS, SPOKE_ID, STACKSET_TEMPLATE, stackset_template
from infra.workload import EKS_READ, SLURM_POLL, SLURM_SEND

from .conftest import REPO, make_stack
from .test_stack import (
    ACCOUNT,
    EVENT_DIRS,
    LINTED,
    PARTITION,
    PREFIX,
    _join,
    _violations,
    as_list,
    evaluate,
    key,
    resources,
)
from .test_workload import grants, role_of

HUB = "123456789012"
HERE = "111122223333"
CLUSTERS = _join("arn:", PARTITION, ":sagemaker:*:", ACCOUNT, ":cluster/*")
PLANS = _join("arn:", PARTITION, ":sagemaker:*:", ACCOUNT, ":training-plan/*")
REF = {name: {"Ref": name} for name in ("HubAccountId", "HubEventBusArn", "HubRolePrefix", "ExternalId",
                                        "SpokeRoleName", "EnableRemediation", "RoleRegion", "WorkloadEksClusters",
                                        "EnableWorkloadSlurm")}
#: what a deployment in the spoke account needs to give (the others have defaults)
REQUIRED = {"HubAccountId": HUB, "HubEventBusArn": f"arn:aws:events:us-west-2:{HUB}:event-bus/{PREFIX}-fleet"}
#: CreateStackSet's TemplateBody limit (the README's `--template-body file://...`)
TEMPLATE_BODY_LIMIT = 51_200


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
    # the CLI's `cdk synth` also writes each resource's construct path in its metadata: so does this one
    app, _ = make_stack(tmp_path, **{"aws:cdk:enable-path-metadata": True})
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
    # what `make synth` then runs over it: cfn-lint with the Makefile's options; and it fits a --template-body
    result = subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                             *make_synth_lint_options(), "--", str(tmp_path / STACKSET_TEMPLATE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len((tmp_path / STACKSET_TEMPLATE).read_bytes()) <= TEMPLATE_BODY_LIMIT
    assert "aws:cdk:path" in json.dumps(copied)


def make_synth_lint_options() -> list[str]:
    """The options `make synth` gives cfn-lint (its recipe: `$(BIN)/cfn-lint <options> -- cdk.out/*.template.json`)."""
    recipe = re.search(r"^synth:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    ((options),) = re.findall(r"cfn-lint (.*?) -- cdk\.out/\*\.template\.json", recipe.group(1))
    return options.split()


# --- parameters ----------------------------------------------------------------------------------

def test_parameters_and_their_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert list(parameters) == list(REF)
    assert {name: p.get("Default") for name, p in parameters.items()} == {
        "HubAccountId": None, "HubEventBusArn": None, "HubRolePrefix": PREFIX, "ExternalId": PREFIX,
        "SpokeRoleName": fleet.DEFAULT_SPOKE_ROLE, "EnableRemediation": "false", "RoleRegion": "",
        "WorkloadEksClusters": "", "EnableWorkloadSlurm": "false"}
    assert parameters["EnableRemediation"]["AllowedValues"] == ["true", "false"]
    assert parameters["EnableWorkloadSlurm"]["AllowedValues"] == ["true", "false"]


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
    # names as the hub's workloadEksClusters takes them (config.EKS_CLUSTER_NAME_PATTERN), at most as many as
    # there are access entry slots; no spaces and no empty name (an empty slot would be left out silently)
    ("WorkloadEksClusters", ["", "ml-prod", "ml-prod,ml_dev2", "x" * 100,
                             ",".join(f"c{i}" for i in range(MAX_WORKLOAD_EKS_CLUSTERS))],
     ["ml-prod, ml_dev2", "ml-prod,,ml_dev2", ",ml-prod", "ml-prod,", "-leading-dash", "x" * 101,
      "arn:aws:eks:us-east-1:123456789012:cluster/ml-prod",
      ",".join(f"c{i}" for i in range(MAX_WORKLOAD_EKS_CLUSTERS + 1))]),
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


# --- the blast radius: the hub reads a spoke cluster's workload as the spoke role (issue 23) ----------

NO_VALUE = object()
#: what deployed() resolves besides Ref and Condition
INTRINSICS = {"Fn::GetAtt", "Fn::If", "Fn::Not", "Fn::Or", "Fn::And", "Fn::Equals", "Fn::Join", "Fn::Select",
              "Fn::Split"}


def deployed(template: dict[str, Any], region: str = "us-east-1", **parameters: str) -> dict[str, dict[str, Any]]:
    """What CloudFormation would create from the template with these parameters in account HERE and `region`:
    logical id -> Properties resolved, the resources whose condition holds. A resource's Ref is `<lid>`, its
    Fn::GetAtt `<lid>.<attribute>`; Fn::Select past the end of a list raises, as it fails the deployment."""
    given = {**REQUIRED, **parameters}
    refs: dict[str, Any] = {
        **{name: given.get(name, p.get("Default")) for name, p in template["Parameters"].items()},
        "AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": HERE, "AWS::NoValue": NO_VALUE}
    assert None not in refs.values(), refs
    conditions: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in conditions:
            conditions[name] = bool(resolve(template["Conditions"][name]))
        return conditions[name]

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1 and (function_ := next(iter(value))) in INTRINSICS | {"Ref", "Condition"}:
            argument = value[function_]
            if function_ == "Ref":
                return refs.get(argument, f"<{argument}>")
            if function_ == "Fn::GetAtt":
                return f"<{argument[0]}.{argument[1]}>"
            if function_ == "Condition":
                return condition(argument)
            if function_ == "Fn::If":
                return resolve(argument[1] if condition(argument[0]) else argument[2])
            if function_ == "Fn::Not":
                return not resolve(argument[0])
            if function_ in ("Fn::Or", "Fn::And"):
                return (any if function_ == "Fn::Or" else all)(resolve(a) for a in argument)
            if function_ == "Fn::Equals":
                return resolve(argument[0]) == resolve(argument[1])
            return evaluate({function_: resolve(argument)}, refs)
        return {k: v for k, v in ((k, resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    return {lid: resolve(r.get("Properties", {})) for lid, r in template["Resources"].items()
            if "Condition" not in r or condition(r["Condition"])}


def of_type(template: dict[str, Any], created: dict[str, dict[str, Any]], type_: str) -> dict[str, dict[str, Any]]:
    return {lid: properties for lid, properties in created.items() if template["Resources"][lid]["Type"] == type_}


def role_grants(template: dict[str, Any], created: dict[str, dict[str, Any]],
                role_name: str = fleet.DEFAULT_SPOKE_ROLE) -> dict[str, list[dict[str, Any]]]:
    """Policy name -> statements of the spoke role as created: its inline policies and the policies put on it (by
    reference where this stack makes it, by name where another region's stack does)."""
    found = {p["PolicyName"]: p["PolicyDocument"]["Statement"]
             for lid, role in of_type(template, created, "AWS::IAM::Role").items() if role.get("RoleName") == role_name
             for p in role["Policies"]}
    found.update({p["PolicyName"]: p["PolicyDocument"]["Statement"]
                  for p in of_type(template, created, "AWS::IAM::Policy").values()
                  if p["Roles"] in (["<HubReader>"], [role_name])})
    return found


def actions_of(statements: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {action for policy in statements.values() for s in policy for action in as_list(s["Action"])}


def access_entries(template: dict[str, Any], created: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return list(of_type(template, created, "AWS::EKS::AccessEntry").values())


def eks_arn(name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:eks:{region}:{HERE}:cluster/{name}"


def view_entry(cluster: str, principal: str) -> dict[str, Any]:
    view = {"PolicyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy", "AccessScope": {"Type": "cluster"}}
    return {"ClusterName": cluster, "PrincipalArn": principal, "Type": "STANDARD", "AccessPolicies": [view]}


#: the spoke role's grants without the blast radius: the hub's SageMaker reads (test_role_is_least_privilege)
READS = {*SAGEMAKER_READ, *SAGEMAKER_FEATURE_READ, *SAGEMAKER_PLAN_READ, "sagemaker:ListClusters"}
SLURM_STATEMENTS = [
    {"Action": "ssm:SendCommand", "Effect": "Allow", "Resource": [
        "arn:aws:ssm:eu-west-1::document/AWS-RunShellScript", f"arn:aws:sagemaker:eu-west-1:{HERE}:cluster/*"]},
    {"Action": ["ssm:CancelCommand", "ssm:GetCommandInvocation"], "Effect": "Allow", "Resource": "*"}]


@pytest.mark.parametrize("parameters", [{}, {"WorkloadEksClusters": "", "EnableWorkloadSlurm": "false"},
                                        {"RoleRegion": "us-east-1"}, {"RoleRegion": "eu-west-1"}],
                         ids=["defaults", "explicit", "role-here", "role-elsewhere"])
def test_workload_grants_nothing_by_default(template: dict[str, Any], parameters: dict[str, str]) -> None:
    """Left at their defaults, the new parameters create nothing: the resources are those of before (issue 22)."""
    created = deployed(template, **parameters)
    assert sorted(template["Resources"][lid]["Type"] for lid in created) == sorted(
        [*(["AWS::IAM::Role", "AWS::IAM::Policy"] if "HubReader" in created else []),
         "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Events::Rule"])  # the forwarder's role and policy, the rule
    assert not access_entries(template, created)
    assert actions_of(role_grants(template, created)) == (READS if "HubReader" in created else set())
    # the resources of before do not depend on the new parameters; the new ones are all under their conditions
    new = {lid for lid, r in template["Resources"].items() if r.get("Condition", "").startswith("Workload")}
    assert len(new) == MAX_WORKLOAD_EKS_CLUSTERS + 2
    assert "Workload" not in json.dumps({lid: r for lid, r in template["Resources"].items() if lid not in new})


@pytest.mark.parametrize("clusters", [["ml-prod"], ["ml-prod", "ml_dev2"],
                                      [f"team{i}-eks" for i in range(MAX_WORKLOAD_EKS_CLUSTERS)]],
                         ids=["one", "two", "max"])
def test_workload_eks_on_exactly_the_listed_clusters(template: dict[str, Any], clusters: list[str]) -> None:
    """eks:DescribeCluster on exactly the listed clusters of this region, and one access entry per cluster for the
    spoke role with the view policy on the whole cluster; nothing of the Slurm read."""
    created = deployed(template, region="eu-west-1", WorkloadEksClusters=",".join(clusters))
    granted = role_grants(template, created)
    assert granted.pop("hyperpod-guard-workload-eks-eu-west-1") == [
        {"Action": "eks:DescribeCluster", "Effect": "Allow", "Resource": [eks_arn(c, "eu-west-1") for c in clusters]}]
    assert actions_of(granted) == READS
    assert access_entries(template, created) == [view_entry(c, "<HubReader.Arn>") for c in clusters]


def test_workload_in_a_region_whose_stack_does_not_create_the_role(template: dict[str, Any]) -> None:
    """RoleRegion elsewhere: the grants go to the role RoleRegion's stack made, by its name."""
    created = deployed(template, region="eu-west-1", RoleRegion="us-east-1", SpokeRoleName="guard-reader",
                       WorkloadEksClusters="ml-prod", EnableWorkloadSlurm="true")
    assert "HubReader" not in created
    assert "<HubReader" not in json.dumps(created)  # nothing refers to the role this stack does not make
    assert role_grants(template, created, "guard-reader") == {
        "hyperpod-guard-workload-eks-eu-west-1": [
            {"Action": "eks:DescribeCluster", "Effect": "Allow", "Resource": [eks_arn("ml-prod", "eu-west-1")]}],
        "hyperpod-guard-workload-slurm-eu-west-1": SLURM_STATEMENTS}
    assert access_entries(template, created) == [view_entry("ml-prod", f"arn:aws:iam::{HERE}:role/guard-reader")]


def test_workload_slurm_grants_exactly_the_run_command(template: dict[str, Any]) -> None:
    created = deployed(template, region="eu-west-1", EnableWorkloadSlurm="true")
    granted = role_grants(template, created)
    assert granted.pop("hyperpod-guard-workload-slurm-eu-west-1") == SLURM_STATEMENTS
    assert actions_of(granted) == READS
    assert not access_entries(template, created)


def test_workload_both(template: dict[str, Any]) -> None:
    created = deployed(template, region="eu-west-1", WorkloadEksClusters="ml-prod,ml_dev2", EnableWorkloadSlurm="true")
    assert actions_of(role_grants(template, created)) == {*READS, *EKS_READ, *SLURM_SEND, *SLURM_POLL}
    assert len(access_entries(template, created)) == 2


def test_workload_grants_are_the_hubs_own(template: dict[str, Any], synth) -> None:
    """The spoke role gets what the hub's evaluating roles get at home (infra/workload.py's builders): the same
    SSM statements, and eks:DescribeCluster on the same ARNs for the same names; the hub's workload variant."""
    hub = synth(**LINTED["workload"])
    at_home = grants(hub, role_of(hub, "evaluator"))
    spoke_ssm = {(action, key(resource)) for s in template["Resources"]["HubReaderWorkloadSlurm"]["Properties"][
        "PolicyDocument"]["Statement"] for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}
    assert spoke_ssm == {pair for pair in at_home if pair[0].startswith("ssm:")}
    names = LINTED["workload"]["workloadEksClusters"]
    ((statement),) = role_grants(template, deployed(template, region="eu-west-1", WorkloadEksClusters=names))[
        "hyperpod-guard-workload-eks-eu-west-1"]
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": HERE}
    assert sorted(statement["Resource"]) == sorted(evaluate(json.loads(resource), pseudo)
                                                   for action, resource in at_home if action == "eks:DescribeCluster")
    assert len(statement["Resource"]) == len(names.split(","))


def test_workload_eks_conditions(template: dict[str, Any]) -> None:
    """Every access entry slot and its ARN sit under the condition that the list has that many names."""
    slots = resources(template, "AWS::EKS::AccessEntry").values()
    assert sorted(r["Condition"] for r in slots) == sorted(
        f"WorkloadEksCluster{i}" for i in range(1, MAX_WORKLOAD_EKS_CLUSTERS + 1))
    policies = {r["Condition"]: r for r in resources(template, "AWS::IAM::Policy").values()
                if r.get("Condition", "").startswith("Workload")}
    assert set(policies) == {"WorkloadEks", "WorkloadSlurm"}
    ((statement),) = policies["WorkloadEks"]["Properties"]["PolicyDocument"]["Statement"]
    assert [r["Fn::If"][0] for r in statement["Resource"]] == [
        f"WorkloadEksCluster{i}" for i in range(1, MAX_WORKLOAD_EKS_CLUSTERS + 1)]


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
