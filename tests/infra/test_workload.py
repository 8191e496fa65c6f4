"""The blast radius's infrastructure (issue 23, infra/workload.py): eks:DescribeCluster on exactly the listed EKS
clusters and an access entry (view policy, cluster scope) per cluster and evaluating role; the Slurm read's SSM
Run Command grants; the evaluating functions in the given subnets; the outputs; nothing of it without the
context; and the context refused when malformed. cdk-nag and cfn-lint run on the `workload` variant in
test_stack.py (LINTED)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.config import ConfigError

from .conftest import make_stack
from .test_stack import (
    ACCOUNT,
    ALL_OPTIONS,
    EVALUATING,
    LINTED,
    PARTITION,
    REGION,
    _join,
    as_list,
    function,
    iam_statements,
    key,
    live,
    resources,
)

Synth = Callable[..., dict[str, Any]]
CLUSTERS = ["ml-prod", "ml_dev2"]
SUBNETS = ["subnet-0123abcd", "subnet-0123456789abcdef0"]
SECURITY_GROUPS = ["sg-0123abcd"]
EKS = {"workloadEksClusters": ",".join(CLUSTERS)}
SLURM = {"workloadSlurm": "true"}
VPC = {"lambdaSubnets": ",".join(SUBNETS), "lambdaSecurityGroups": ",".join(SECURITY_GROUPS)}
#: every option on, with the stack's other options (the variant cdk-nag and cfn-lint check)
EVERYTHING = LINTED["workload"]
#: the functions that do not evaluate clusters (in the variants below)
OTHERS = ("sweep", "slack-notifier", "slack-interactivity", "slack-actions")
VIEW_POLICY_ARN = _join("arn:", PARTITION, ":eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
RUN_SHELL_SCRIPT = _join("arn:", PARTITION, ":ssm:", REGION, "::document/AWS-RunShellScript")
HYPERPOD_CLUSTERS = _join("arn:", PARTITION, ":sagemaker:", REGION, ":", ACCOUNT, ":cluster/*")
VPC_ACCESS = _join("arn:", PARTITION, ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
#: what the workload grants; the evaluating roles' ssm:GetParametersByPath (the rules) is not part of it
WORKLOAD_ACTIONS = {"eks:DescribeCluster", "ssm:SendCommand", "ssm:GetCommandInvocation", "ssm:CancelCommand"}


def eks_cluster(name: str) -> dict[str, Any]:
    return _join("arn:", PARTITION, ":eks:", REGION, ":", ACCOUNT, f":cluster/{name}")


def role_of(template: dict[str, Any], name: str) -> str:
    return function(template, name)[1]["Role"]["Fn::GetAtt"][0]


def grants(template: dict[str, Any], role: str) -> set[tuple[str, str]]:
    """(action, resource) of every Allow statement attached to `role` (CDK's minimizePolicies merges statements, so
    they are compared pair by pair), of the workload's actions only."""
    pairs: set[tuple[str, str]] = set()
    for r in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} not in r["Properties"]["Roles"]:
            continue
        for statement in r["Properties"]["PolicyDocument"]["Statement"]:
            actions = [action for action in as_list(statement["Action"]) if action in WORKLOAD_ACTIONS]
            if actions:
                assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
            pairs |= {(action, key(resource)) for action in actions for resource in as_list(statement["Resource"])}
    return pairs


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function name (without the prefix) -> Properties; CDK's own functions (the rules seed's custom resource)
    are unnamed, under their logical id."""
    return {r["Properties"]["FunctionName"].removeprefix("hyperpod-guard-") if "FunctionName" in r["Properties"]
            else lid: r["Properties"] for lid, r in resources(template, "AWS::Lambda::Function").items()}


def managed_policies(template: dict[str, Any], role: str) -> list[str]:
    return [key(arn) for arn in template["Resources"][role]["Properties"].get("ManagedPolicyArns", [])]


# --- without the context: nothing ----------------------------------------------------------------

@pytest.mark.parametrize("context", [{}, {**ALL_OPTIONS, "slackMode": "app", "slackChannels": "default=C0123ABCD",
                                          "weeklyDigest": True, "workloadSlurm": "false"}],
                         ids=["default", "everything-else"])
def test_without_workload_context_there_is_nothing(synth: Synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    assert not resources(template, "AWS::EKS::AccessEntry")
    actions = {a for _, s in iam_statements(template) for a in as_list(s["Action"])}
    assert "sns:Publish" in actions  # not vacuous
    assert not actions & WORKLOAD_ACTIONS
    assert not [name for name, fn in functions_of(template).items() if "VpcConfig" in fn]
    assert not [lid for lid in resources(template, "AWS::IAM::Role")
                if key(VPC_ACCESS) in managed_policies(template, lid)]
    assert not [name for name in template.get("Outputs", {}) if name.startswith("Workload")]


# --- EKS: DescribeCluster on exactly the listed clusters, an access entry per cluster and role -----------

@pytest.mark.parametrize("name", EVALUATING)
@pytest.mark.parametrize("context", [EKS, EVERYTHING], ids=["eks", "everything"])
def test_eks_describe_cluster_on_exactly_the_listed_clusters(synth: Synth, context: dict[str, Any],
                                                              name: str) -> None:
    template = synth(**context)
    eks = {pair for pair in grants(template, role_of(template, name)) if pair[0].startswith("eks:")}
    assert eks == {("eks:DescribeCluster", key(eks_cluster(cluster))) for cluster in CLUSTERS}


def test_eks_grants_nothing_else(synth: Synth) -> None:
    """The EKS option alone: DescribeCluster on the evaluating roles, no SSM command, no VPC, no other role."""
    template = synth(**EKS)
    for name in EVALUATING:
        assert {action for action, _ in grants(template, role_of(template, name))} == {"eks:DescribeCluster"}
    for name in ("sweep", "slack-notifier"):
        assert grants(template, role_of(template, name)) == set()
    assert not [name for name, fn in functions_of(template).items() if "VpcConfig" in fn]


@pytest.mark.parametrize("context", [EKS, EVERYTHING], ids=["eks", "everything"])
def test_an_access_entry_per_cluster_and_evaluating_role(synth: Synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    entries = [r["Properties"] for r in resources(template, "AWS::EKS::AccessEntry").values()]
    roles = {role_of(template, name) for name in EVALUATING}
    assert sorted((e["ClusterName"], e["PrincipalArn"]["Fn::GetAtt"][0]) for e in entries) == sorted(
        (cluster, role) for cluster in CLUSTERS for role in roles)
    for entry in entries:
        assert entry["PrincipalArn"]["Fn::GetAtt"][1] == "Arn"
        # the view policy on the whole cluster, and nothing else: no Kubernetes groups, no username
        assert entry == {"ClusterName": entry["ClusterName"], "PrincipalArn": entry["PrincipalArn"], "Type": "STANDARD",
                         "AccessPolicies": [{"PolicyArn": VIEW_POLICY_ARN, "AccessScope": {"Type": "cluster"}}]}


def test_eks_outputs(synth: Synth) -> None:
    template = synth(**EKS)
    entries = sorted(resources(template, "AWS::EKS::AccessEntry"))
    outputs = template["Outputs"]
    assert sorted(v["Fn::GetAtt"][0] for v in outputs["WorkloadEksAccessEntries"]["Value"]["Fn::Join"][1]) == entries
    assert all(v["Fn::GetAtt"][1] == "AccessEntryArn"
               for v in outputs["WorkloadEksAccessEntries"]["Value"]["Fn::Join"][1])
    assert outputs["WorkloadReaderRoleArns"]["Value"] == {"Fn::Join": [",", [
        {"Fn::GetAtt": [role_of(template, name), "Arn"]} for name in EVALUATING]]}


# --- Slurm: SSM Run Command of AWS-RunShellScript, the invocation read and cancelled ----------------------

@pytest.mark.parametrize("name", EVALUATING)
@pytest.mark.parametrize("context", [SLURM, EVERYTHING], ids=["slurm", "everything"])
def test_slurm_grants_exactly_the_run_command(synth: Synth, context: dict[str, Any], name: str) -> None:
    template = synth(**context)
    ssm = {pair for pair in grants(template, role_of(template, name)) if pair[0].startswith("ssm:")}
    assert ssm == {("ssm:SendCommand", key(RUN_SHELL_SCRIPT)), ("ssm:SendCommand", key(HYPERPOD_CLUSTERS)),
                   # no resource-level permissions (Service Authorization Reference): "*"
                   ("ssm:GetCommandInvocation", key("*")), ("ssm:CancelCommand", key("*"))}


def test_slurm_grants_nothing_else(synth: Synth) -> None:
    template = synth(**SLURM)
    assert not resources(template, "AWS::EKS::AccessEntry")
    for name in EVALUATING:
        assert "eks:DescribeCluster" not in {action for action, _ in grants(template, role_of(template, name))}
    for name in ("sweep", "slack-notifier"):
        assert grants(template, role_of(template, name)) == set()
    assert "WorkloadEksAccessEntries" not in template["Outputs"]
    assert "WorkloadReaderRoleArns" in template["Outputs"]


def test_only_the_evaluating_roles_get_workload_grants(synth: Synth) -> None:
    template = synth(**EVERYTHING)
    assert {f"hyperpod-guard-{name}" for name in OTHERS} <= {  # not vacuous: app mode's functions are there
        fn["Properties"].get("FunctionName") for fn in resources(template, "AWS::Lambda::Function").values()}
    evaluating = {role_of(template, name) for name in EVALUATING}
    for role in resources(template, "AWS::IAM::Role"):
        if role not in evaluating:
            assert grants(template, role) == set(), role


# --- VPC: the evaluating functions in the given subnets --------------------------------------------------

@pytest.mark.parametrize("context", [VPC, EVERYTHING], ids=["vpc", "everything"])
def test_evaluating_functions_run_in_the_vpc(synth: Synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    in_vpc = {name: fn["VpcConfig"] for name, fn in functions_of(template).items() if "VpcConfig" in fn}
    assert in_vpc == {name: {"SubnetIds": SUBNETS, "SecurityGroupIds": SECURITY_GROUPS} for name in EVALUATING}
    # their roles may manage the functions' network interfaces (as lambda.Function does for a VPC); no other
    for lid in resources(template, "AWS::IAM::Role"):
        assert (key(VPC_ACCESS) in managed_policies(template, lid)) == (
            lid in {role_of(template, name) for name in EVALUATING}), lid


def test_vpc_alone_grants_no_workload_read(synth: Synth) -> None:
    template = synth(**VPC)
    assert not resources(template, "AWS::EKS::AccessEntry")
    assert not [name for name in template["Outputs"] if name.startswith("Workload")]
    for name in EVALUATING:
        assert grants(template, role_of(template, name)) == set()


def test_vpc_publishes_new_versions(tmp_path: Path) -> None:
    """The VPC is set on the CloudFormation function after lambda.Function built it: the version each deploy
    publishes (SnapStart restores it) must still see it, so the `live` alias moves to a version in the VPC.
    Built here back to back (not from the session's cache), so that both see the same code."""
    default, vpc = (Template.from_stack(make_stack(tmp_path / name, **context)[1]).to_json()
                    for name, context in (("default", {}), ("vpc", VPC)))
    assert function(default, "sweep")[1]["Code"] == function(vpc, "sweep")[1]["Code"]  # the same code
    for name in EVALUATING:
        assert live(default, name)[1]["FunctionVersion"] != live(vpc, name)[1]["FunctionVersion"], name
    assert live(default, "sweep")[1]["FunctionVersion"] == live(vpc, "sweep")[1]["FunctionVersion"]


# --- context -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("context", "named"), [
    ({"workloadEksClusters": "ml-prod,-leading-dash"}, "workloadEksClusters"),
    ({"workloadEksClusters": "has space"}, "workloadEksClusters"),
    ({"workloadEksClusters": "x" * 101}, "workloadEksClusters"),
    ({"workloadEksClusters": "arn:aws:eks:us-east-1:123456789012:cluster/ml-prod"}, "workloadEksClusters"),
    ({"workloadSlurm": "maybe"}, "workloadSlurm"),
    ({"lambdaSubnets": "subnet-0123abcd"}, "lambdaSecurityGroups"),
    ({"lambdaSecurityGroups": "sg-0123abcd"}, "lambdaSubnets"),
    ({"lambdaSubnets": "subnet-xyz", "lambdaSecurityGroups": "sg-0123abcd"}, "lambdaSubnets"),
    ({"lambdaSubnets": "subnet-0123abcd", "lambdaSecurityGroups": "sg-0123abcd,vpc-0123abcd"}, "lambdaSecurityGroups"),
    ({"lambdaSubnets": "subnet-0123abcd",
      "lambdaSecurityGroups": ",".join(f"sg-0123abc{i}" for i in range(6))}, "lambdaSecurityGroups"),
])
def test_bad_context_is_refused(tmp_path: Path, context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_stack(tmp_path, **context)
    assert named in str(raised.value)


def test_context_forms(synth: Synth) -> None:
    """A JSON list as cdk.json holds it, repeats dropped: the same template as the comma-separated form."""
    assert synth(workloadEksClusters=[*CLUSTERS, CLUSTERS[0]]) == synth(**EKS)
