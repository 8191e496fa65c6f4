"""The spoke stack: what each watched account and region runs for the hub (infra/fleet.py).

- a rule on the default bus that forwards the account's HyperPod events (infra/ingestion.EVENT_PATTERN) to
  the hub's fleet bus, with a role that may put events on exactly that bus;
- the role the hub's functions assume to read the clusters (hyperpod_guard.fleet.FleetSettings.role_arn):
  exactly the SageMaker reads the hub's own functions have (infra/evaluation.py), plus the remediation
  actions only with EnableRemediation=true; trusted by the hub account, only for the hub's roles
  (aws:PrincipalArn `<hub prefix>-*`) and with the external id.

Everything the deployments differ in is a CloudFormation parameter (defaults from the context), and the
stack needs no bootstrap stack (no assets, no BootstrapVersion, no CDK roles), so the one template deploys
with `cdk deploy` in each account and region, with the caller's credentials, or as a CloudFormation
StackSet over an organization.

An IAM role is global while the stack is per region: the role is created in one region of each account,
`RoleRegion` (empty: every region, right when the account runs one spoke stack), and reads the clusters
of every region of its account; the other regions' stacks forward events only.

The blast radius (issue 23, infra/workload.py), opt-in per stack, i.e. per account and region: the hub reads a
spoke cluster's workload as the spoke role, so each region's stack grants the role what the hub's own evaluating
roles get at home, for its own region, from the same builders:
- `WorkloadEksClusters=name1,name2` (up to MAX_WORKLOAD_EKS_CLUSTERS): eks:DescribeCluster on exactly those EKS
  clusters and one access entry per cluster for the role (AmazonEKSViewPolicy, cluster scope);
- `EnableWorkloadSlurm=true`: the Slurm read's SSM Run Command grants.
The grants are inline policies named after the region, put on the role by name, so a region whose stack does not
create the role grants it too (the role's stack, in RoleRegion, must be deployed first). A StackSet with
service-managed permissions takes no transform (AWS::LanguageExtensions' Fn::ForEach included), so the per-cluster
entries are a fixed number of slots, each under the condition that the list has that many names; the parameter's
pattern refuses more names than slots.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import Acknowledgment, Aws, CfnCondition, CfnOutput, CfnParameter, Fn, Stack, Validations
from aws_cdk import aws_eks as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from hyperpod_guard import fleet

from . import workload
from .config import EKS_CLUSTER_NAME_PATTERN, EXTERNAL_ID_PATTERN, PREFIX_PATTERN, ROLE_NAME_PATTERN, Config
from .evaluation import SAGEMAKER_FEATURE_READ, SAGEMAKER_PLAN_READ, SAGEMAKER_READ, SAGEMAKER_REMEDIATE
from .ingestion import EVENT_PATTERN

#: what `make synth` writes beside the CDK template: the spoke template as a StackSet takes it
STACKSET_TEMPLATE = "spoke-stackset.template.json"
#: the construct id, which names the template CDK writes (cdk.out/HyperPodGuardSpoke.template.json)
SPOKE_ID = "HyperPodGuardSpoke"
#: the reads without resource-level permissions
LIST_CLUSTERS = ("sagemaker:ListClusters",)
#: the EKS clusters a spoke stack can give an access entry to (its region's); a StackSet takes no transform that
#: would loop over the list, so each is a slot of its own in the template
MAX_WORKLOAD_EKS_CLUSTERS = 10
#: WorkloadEksClusters: empty, or 1..MAX_WORKLOAD_EKS_CLUSTERS comma-separated names (no spaces, no empty name)
WORKLOAD_EKS_CLUSTERS_PATTERN = (f"({EKS_CLUSTER_NAME_PATTERN}(,{EKS_CLUSTER_NAME_PATTERN})"
                                 f"{{0,{MAX_WORKLOAD_EKS_CLUSTERS - 1}}})?")


class HyperPodGuardSpoke(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs: Any):
        super().__init__(
            scope, id, description="hyperpod-guard spoke: forwards HyperPod events to the hub, a role for its reads",
            # no bootstrap stack: no assets, no BootstrapVersion parameter or rule (a StackSet cannot have them),
            # and `cdk deploy` uses the caller's credentials. Not BootstraplessSynthesizer: it still names the
            # bootstrap's deploy and CloudFormation execution roles, which `cdk deploy` then passes to
            # CloudFormation, failing in an account that was never bootstrapped
            synthesizer=cdk.LegacyStackSynthesizer(), analytics_reporting=False, **kwargs,
        )
        hub_account = CfnParameter(self, "HubAccountId", allowed_pattern=fleet.ACCOUNT_ID.pattern,
                                   description="the hub's AWS account id (the hub stack's FleetHubAccountId output)")
        hub_bus = CfnParameter(
            self, "HubEventBusArn", allowed_pattern=r"arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[\w.\-/]+",
            description="the hub's fleet bus (the hub stack's FleetEventBusArn output)")
        hub_prefix = CfnParameter(self, "HubRolePrefix", default=config.prefix, allowed_pattern=PREFIX_PATTERN,
                                  description="the hub's roles are named <HubRolePrefix>-*: the hub's prefix")
        external_id = CfnParameter(self, "ExternalId", default=config.external_id, allowed_pattern=EXTERNAL_ID_PATTERN,
                                   description="the external id the hub passes (the hub stack's FleetExternalId)")
        role_name = CfnParameter(self, "SpokeRoleName", default=config.spoke_role_name,
                                 allowed_pattern=ROLE_NAME_PATTERN,
                                 description="the role the hub assumes (the hub stack's FleetSpokeRoleName)")
        remediation = CfnParameter(self, "EnableRemediation", default="false", allowed_values=["true", "false"],
                                   description="true: the role may also carry out the hub's remediation actions")
        role_region = CfnParameter(
            self, "RoleRegion", default=config.fleet_regions[0] if config.fleet_regions else "",
            allowed_pattern=f"({fleet.REGION_NAME.pattern})?",
            description="the one region of each account whose stack creates the role (IAM is global); empty: "
                        "every region's, right with one spoke stack per account")
        eks_clusters = CfnParameter(
            self, "WorkloadEksClusters", default="", allowed_pattern=WORKLOAD_EKS_CLUSTERS_PATTERN,
            constraint_description=f"empty, or up to {MAX_WORKLOAD_EKS_CLUSTERS} EKS cluster names, comma-separated "
                                   "without spaces",
            description="the EKS clusters of this account and region whose workload the hub may read (comma-separated "
                        f"names, up to {MAX_WORKLOAD_EKS_CLUSTERS}): eks:DescribeCluster and an access entry with "
                        "AmazonEKSViewPolicy for the role; empty: none")
        slurm = CfnParameter(self, "EnableWorkloadSlurm", default="false", allowed_values=["true", "false"],
                             description="true: the role may read the workload of this region's Slurm clusters "
                                         "(SSM Run Command of AWS-RunShellScript)")
        self.remediation = CfnCondition(self, "RemediationEnabled",
                                        expression=Fn.condition_equals(remediation.value_as_string, "true"))
        self.creates_role = CfnCondition(self, "CreatesRole", expression=Fn.condition_or(
            Fn.condition_equals(role_region.value_as_string, ""),
            Fn.condition_equals(role_region.value_as_string, Aws.REGION)))

        self.forwarder, self.rule = self._forward(config, hub_bus.value_as_string)
        self.role = self._role(hub_account.value_as_string, hub_prefix.value_as_string, external_id.value_as_string,
                               role_name.value_as_string)
        self.access_entries = self._workload(eks_clusters.value_as_string, slurm.value_as_string,
                                             role_name.value_as_string)
        output = CfnOutput(self, "SpokeRoleArn", value=self.role.attr_arn,
                           description="the role the hub assumes in this account")
        output.condition = self.creates_role
        self._acknowledge()

    def _forward(self, config: Config, hub_bus: str) -> tuple[iam.Role, events.CfnRule]:
        """The rule on the default bus: this account's HyperPod events to the hub's bus (cross-account and
        cross-region targets need a role)."""
        forwarder = iam.Role(self, "Forwarder", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                             description="hyperpod-guard spoke: puts this account's HyperPod events on the hub's bus")
        forwarder.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[hub_bus]))
        rule = events.CfnRule(
            self, "ForwardToHub", name=f"{config.prefix}-spoke-to-hub", state="ENABLED",
            description="hyperpod-guard spoke: HyperPod events of this account, forwarded to the hub's fleet bus",
            # this account's own only: a bus policy admitting others does not make the hub believe them
            event_pattern={**EVENT_PATTERN, "account": [Aws.ACCOUNT_ID]},
            targets=[events.CfnRule.TargetProperty(id="hub", arn=hub_bus, role_arn=forwarder.role_arn)],
        )
        return forwarder, rule

    def _role(self, hub_account: str, hub_prefix: str, external_id: str, role_name: str) -> iam.CfnRole:
        """The role the hub assumes: the hub's own reads of clusters and training plans, for this account."""
        # every region of this account: the one role serves each region the fleet reads (IAM is global)
        clusters = f"arn:{Aws.PARTITION}:sagemaker:*:{Aws.ACCOUNT_ID}:cluster/*"
        plans = f"arn:{Aws.PARTITION}:sagemaker:*:{Aws.ACCOUNT_ID}:training-plan/*"
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:{Aws.PARTITION}:iam::{hub_account}:root"},
            "Condition": {
                "StringEquals": {"sts:ExternalId": external_id},
                # CDK names the hub's roles after its stack, which is named after the prefix
                "StringLike": {"aws:PrincipalArn": f"arn:{Aws.PARTITION}:iam::{hub_account}:role/{hub_prefix}-*"},
            },
        }]}
        remediate = {"Effect": "Allow", "Action": list(SAGEMAKER_REMEDIATE), "Resource": clusters}
        reads = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": list(SAGEMAKER_READ), "Resource": clusters},
            {"Effect": "Allow", "Action": list(SAGEMAKER_PLAN_READ), "Resource": plans},
            # ListClusters has no resource-level permissions
            {"Effect": "Allow", "Action": list(LIST_CLUSTERS), "Resource": "*"},
            Fn.condition_if(self.remediation.logical_id, remediate, Aws.NO_VALUE),
        ]}
        role = iam.CfnRole(
            self, "HubReader", role_name=role_name, assume_role_policy_document=trust,
            description="hyperpod-guard spoke: the hub's reads of this account's HyperPod clusters",
            policies=[iam.CfnRole.PolicyProperty(policy_name="hyperpod-guard-reads", policy_document=reads)],
        )
        role.cfn_options.condition = self.creates_role
        # the feature reads in a policy of their own, as the hub's (evaluation.Evaluation._grant_feature_reads):
        # cfn-lint's IAM data (W3037) does not know the operations and extensions actions yet
        features = iam.CfnPolicy(
            self, "HubReaderFeatureReads", policy_name="hyperpod-guard-feature-reads", roles=[role.ref],
            policy_document={"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": list(SAGEMAKER_FEATURE_READ), "Resource": clusters}]},
        )
        features.cfn_options.condition = self.creates_role
        features.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
        return role

    def _workload(self, eks_clusters: str, slurm: str, role_name: str) -> list[eks.CfnAccessEntry]:
        """The role's grants for the hub's workload reads in this region (infra/workload.py's builders): policies
        put on the role by name (its own here, or the one RoleRegion's stack made), the access entries naming it."""
        # this stack's role where it makes one: CloudFormation then creates the grants after it
        role = Fn.condition_if(self.creates_role.logical_id, self.role.ref, role_name).to_string()
        role_arn = Fn.condition_if(self.creates_role.logical_id, self.role.attr_arn,
                                   f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{role_name}").to_string()
        # padded with empty names, so that Fn::Select finds every slot however few names are given
        names = Fn.split(",", Fn.join("", [eks_clusters, "," * (MAX_WORKLOAD_EKS_CLUSTERS - 1)]))
        self.workload_eks = CfnCondition(self, "WorkloadEks", expression=Fn.condition_not(
            Fn.condition_equals(eks_clusters, "")))
        self.workload_slurm = CfnCondition(self, "WorkloadSlurm", expression=Fn.condition_equals(slurm, "true"))
        entries: list[eks.CfnAccessEntry] = []
        arns: list[str] = []
        for slot in range(1, MAX_WORKLOAD_EKS_CLUSTERS + 1):
            name = Fn.select(slot - 1, names)
            given = CfnCondition(self, f"WorkloadEksCluster{slot}",
                                 expression=Fn.condition_not(Fn.condition_equals(name, "")))
            arns.append(Fn.condition_if(given.logical_id, workload.eks_cluster_arn(name), Aws.NO_VALUE).to_string())
            entry = workload.eks_access_entry(self, f"WorkloadEksAccessEntry{slot}", cluster_name=name,
                                              principal_arn=role_arn)
            entry.cfn_options.condition = given
            entries.append(entry)
        self._policy("HubReaderWorkloadEks", f"hyperpod-guard-workload-eks-{Aws.REGION}", role, self.workload_eks,
                     [workload.eks_read_statement(arns)])
        slurm_policy = self._policy("HubReaderWorkloadSlurm", f"hyperpod-guard-workload-slurm-{Aws.REGION}", role,
                                    self.workload_slurm, workload.slurm_statements())
        Validations.of(slurm_policy).acknowledge(Acknowledgment(id="AwsSolutions-IAM5[Resource::*]",
                                                                reason=workload.SLURM_POLL_REASON))
        return entries

    def _policy(self, id: str, name: str, role: str, condition: CfnCondition,
                statements: list[iam.PolicyStatement]) -> iam.CfnPolicy:
        """An inline policy of the role, named after the region (one role serves every region's stack)."""
        policy = iam.CfnPolicy(self, id, policy_name=name, roles=[role], policy_document={
            "Version": "2012-10-17", "Statement": [statement.to_statement_json() for statement in statements]})
        policy.cfn_options.condition = condition
        return policy

    def _acknowledge(self) -> None:
        """cdk-nag findings we accept, each with its reason."""
        def ack(rule: str, reason: str) -> None:
            Validations.of(self).acknowledge(Acknowledgment(id=rule, reason=reason))

        ack("AwsSolutions-IAM5[Resource::*]", "sagemaker:ListClusters has no resource-level permissions.")
        ack("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:*:<AWS::AccountId>:cluster/*]",
            "HyperPod cluster ARNs carry a generated cluster id, not the name: clusters of this account only, in "
            "every region the hub's fleet reads (one IAM role serves all of the account's regions).")
        ack("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:*:<AWS::AccountId>:training-plan/*]",
            "sagemaker:DescribeTrainingPlan only, for the plans the clusters' groups name, bought outside this "
            "stack: training plans of this account only, in every region the hub's fleet reads.")
        ack("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:cluster/*]",
            "ssm:SendCommand of AWS-RunShellScript only (EnableWorkloadSlurm): SSM authorises a command to a HyperPod "
            "node on its cluster's ARN, which carries a generated id, not the name: clusters of this account and "
            "region only.")


def stackset_template(template: dict[str, Any]) -> dict[str, Any]:
    """The spoke template as a StackSet takes it, checked: no bootstrap version (parameter or rule) and no
    asset (nor an asset's parameter), which only `cdk deploy` could provide. ValueError naming what is wrong."""
    parameters = template.get("Parameters", {})
    found = [*(["Parameters.BootstrapVersion"] if "BootstrapVersion" in parameters else []),
             *[f"Parameters.{name} (an asset's)" for name in parameters if name.startswith("AssetParameters")],
             *(["Rules"] if template.get("Rules") else []),
             *[f"Resources.{lid} (an asset)" for lid, resource in template.get("Resources", {}).items()
               if "aws:asset:path" in resource.get("Metadata", {})]]
    if found:
        raise ValueError(f"the spoke template is not StackSet-ready: {', '.join(found)}")
    return template


if __name__ == "__main__":  # make synth: cdk.out/HyperPodGuardSpoke.template.json -> cdk.out/spoke-stackset...
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")
    checked = stackset_template(json.loads((out / f"{SPOKE_ID}.template.json").read_text()))
    (out / STACKSET_TEMPLATE).write_text(json.dumps(checked, indent=1) + "\n")
    print(f"{out / STACKSET_TEMPLATE}: StackSet-ready (no BootstrapVersion, no assets)")
