"""The blast radius (issue 23): what the evaluating functions need to read the work on a sick node, each part
opt-in by context; the rules then turn the read on per cluster (`workload:` in the rules).

- `-c workloadEksClusters=name1,name2`: EKS clusters of this account and region. The evaluating functions may
  call eks:DescribeCluster on exactly those (the API endpoint and its CA), and each of their roles gets an EKS
  access entry per cluster with AmazonEKSViewPolicy on the whole cluster (read-only Kubernetes RBAC). The
  bearer token is a presigned STS GetCallerIdentity URL (hyperpod_guard/workload/eks_token.py): no IAM action.
- `-c workloadSlurm=true`: the read-only squeue/sinfo on a Slurm cluster's controller through SSM Run Command
  (hyperpod_guard/workload/slurm.py): SendCommand of AWS-RunShellScript to the clusters' nodes, and the
  command's invocation read (and cancelled at our timeout).
- `-c lambdaSubnets=subnet-...,subnet-... -c lambdaSecurityGroups=sg-...`: the evaluating functions run in
  those subnets (a private EKS endpoint is reachable from its VPC only).

The evaluating functions are those that evaluate clusters, and so build the alerts a workload is read for: the
evaluator (service.handle_event -> evaluate_cluster) and the worker (evaluate_cluster for the sweep's clusters,
flush_group for grouped notifications). The deployed sweep only lists clusters and hands them to the worker
(it evaluates inline only without a work queue, which the stack always gives it): nothing here is its.

Without this context nothing here is built, and the template is the same as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Aws, CfnOutput, Fn, Stack, Validations
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from hyperpod_guard.workload.slurm import DOCUMENT

from .config import Config

#: what the EKS read calls on a listed cluster (endpoint and certificate authority)
EKS_READ = ("eks:DescribeCluster",)
#: read-only Kubernetes access for the access entries: get/list/watch most objects, no Secrets
VIEW_POLICY = "AmazonEKSViewPolicy"
#: the access policy's scope: every namespace (a job may sit in any)
ACCESS_SCOPE = "cluster"
ACCESS_ENTRY_TYPE = "STANDARD"
#: what the Slurm read calls: SendCommand authorises the document and the target
SLURM_SEND = ("ssm:SendCommand",)
#: ... and the command's result, polled, and cancelled at our timeout: neither has a resource type in the
#: Service Authorization Reference (a command id is no resource), so they are granted on "*"
SLURM_POLL = ("ssm:CancelCommand", "ssm:GetCommandInvocation")
#: the ENIs of a function in a VPC (what lambda.Function adds itself when given a VPC)
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


def eks_cluster_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:eks:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster/{name}"


def view_policy_arn() -> str:
    return f"arn:{Aws.PARTITION}:eks::aws:cluster-access-policy/{VIEW_POLICY}"


def run_shell_script_arn() -> str:
    """AWS-RunShellScript, an AWS-owned document: its ARN has no account."""
    return f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}::document/{DOCUMENT}"


def hyperpod_clusters_arn() -> str:
    """The HyperPod clusters of this account and region: SSM authorises a command to a HyperPod node
    (target `sagemaker-cluster:<cluster id>_<group>-<instance id>`) on its cluster's ARN, as Session Manager
    does (the HyperPod IAM docs grant ssm:StartSession there); a cluster's ARN carries a generated id, not its
    name, hence every cluster's."""
    return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster/*"


# The grants, built here for the hub's evaluating roles and the spoke's role (infra/spoke.py) alike, so that the
# two cannot drift apart.

def eks_read_statement(cluster_arns: Sequence[str]) -> iam.PolicyStatement:
    """eks:DescribeCluster on exactly these clusters (eks_cluster_arn)."""
    return iam.PolicyStatement(actions=list(EKS_READ), resources=list(cluster_arns))


def eks_access_entry(scope: Construct, id: str, *, cluster_name: str, principal_arn: str) -> eks.CfnAccessEntry:
    """The principal's access entry on the cluster: read-only Kubernetes RBAC (the view policy) on the whole
    cluster. EKS takes one entry per principal and cluster."""
    return eks.CfnAccessEntry(
        scope, id, cluster_name=cluster_name, principal_arn=principal_arn, type=ACCESS_ENTRY_TYPE,
        access_policies=[eks.CfnAccessEntry.AccessPolicyProperty(
            policy_arn=view_policy_arn(), access_scope=eks.CfnAccessEntry.AccessScopeProperty(type=ACCESS_SCOPE))],
    )


def slurm_statements() -> list[iam.PolicyStatement]:
    """SendCommand of AWS-RunShellScript to this account's and region's HyperPod clusters; the command's result
    polled and cancelled on "*" (SLURM_POLL). Fresh statements on each call: a policy freezes what it is given."""
    return [iam.PolicyStatement(actions=list(SLURM_SEND), resources=[run_shell_script_arn(), hyperpod_clusters_arn()]),
            iam.PolicyStatement(actions=list(SLURM_POLL), resources=["*"])]


#: why SLURM_POLL on "*" is acceptable (cdk-nag AwsSolutions-IAM5)
SLURM_POLL_REASON = ("ssm:GetCommandInvocation and ssm:CancelCommand have no resource-level permissions nor condition "
                     "keys (a command id is no resource): any command of this account and region; the function calls "
                     "them only with the id of the command it sent.")


class Workload(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, evaluating: Sequence[lambda_.Function]):
        """`evaluating`: the functions that evaluate clusters (the evaluator and the worker)."""
        super().__init__(scope, id)
        self.access_entries: list[eks.CfnAccessEntry] = []
        if config.workload_eks_clusters:
            self._eks(config.workload_eks_clusters, evaluating)
        if config.workload_slurm:
            self._slurm(evaluating)
        if config.lambda_subnets:
            self._vpc(config, evaluating)
        self._outputs(config, evaluating)

    def _eks(self, clusters: Sequence[str], evaluating: Sequence[lambda_.Function]) -> None:
        """eks:DescribeCluster on exactly the listed clusters, and one access entry per cluster and role (EKS
        takes one entry per principal and cluster) with the view policy on the whole cluster."""
        for function in evaluating:
            function.add_to_role_policy(eks_read_statement([eks_cluster_arn(name) for name in clusters]))
            role = _role(function)
            for name in clusters:
                self.access_entries.append(eks_access_entry(
                    self, f"{name}-{function.node.id}", cluster_name=name, principal_arn=role.role_arn))

    def _slurm(self, evaluating: Sequence[lambda_.Function]) -> None:
        for function in evaluating:
            for statement in slurm_statements():
                function.add_to_role_policy(statement)
            Validations.of(_role(function)).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]", reason=SLURM_POLL_REASON))

    def _vpc(self, config: Config, evaluating: Sequence[lambda_.Function]) -> None:
        """The functions in the given subnets with the given security groups: set on the CloudFormation function,
        as lambda.Function takes a VPC only when it is built (and an IVpc, whose id the context does not give),
        with the ENI permissions lambda.Function would have added (AWSLambdaVPCAccessExecutionRole)."""
        for function in evaluating:
            cfn = function.node.default_child
            assert isinstance(cfn, lambda_.CfnFunction)
            cfn.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
                subnet_ids=list(config.lambda_subnets), security_group_ids=list(config.lambda_security_groups))
            role = _role(function)
            role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(VPC_ACCESS_POLICY))
            Validations.of(role).acknowledge(Acknowledgment(
                id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{VPC_ACCESS_POLICY}]",
                reason="The managed policy Lambda documents for a function in a VPC (its network interfaces), the "
                       "one lambda.Function adds when given a VPC.",
            ))

    def _outputs(self, config: Config, evaluating: Sequence[lambda_.Function]) -> None:
        stack = Stack.of(self)
        if config.workload_eks_clusters or config.workload_slurm:
            CfnOutput(stack, "WorkloadReaderRoleArns", value=Fn.join(",", [_role(f).role_arn for f in evaluating]),
                      description="the roles that read the workload on a node (comma-separated): the principals of "
                                  "an EKS access entry made by hand (README: Blast radius)")
        if self.access_entries:
            CfnOutput(stack, "WorkloadEksAccessEntries",
                      value=Fn.join(",", [entry.attr_access_entry_arn for entry in self.access_entries]),
                      description="the EKS access entries this stack made (view policy, cluster scope), "
                                  "one per cluster and reader role (comma-separated)")


def _role(function: lambda_.Function) -> iam.IRole:
    assert function.role is not None
    return function.role
