"""The hub's side of the fleet (`-c spokeAccounts=...` or `-c organizationId=o-...`): the fleet bus the spoke
stacks (infra/spoke.py) forward their HyperPod events to, the rule on it, and what the functions that read
clusters need to read them in a spoke account: its role to assume, and the environment that names it
(hyperpod_guard.fleet.FleetSettings).

Without fleet context nothing here is built and the stack is a single-account deployment, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Aws, CfnOutput, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hyperpod_guard import fleet

from .common import event_accounts
from .config import Config
from .evaluation import SAGEMAKER_FEATURE_READ, SAGEMAKER_PLAN_READ, SAGEMAKER_READ, SAGEMAKER_REMEDIATE
from .ingestion import hyperpod_rule

#: what the functions that read clusters call on a spoke role (the session is cached per account and region)
ASSUME_ROLE = ("sts:AssumeRole",)


def spoke_role_arns(config: Config) -> list[str]:
    """The spoke roles the hub's functions may assume: one per spoke account, or any account's of the
    organization (`*`, limited by the aws:ResourceOrgID condition of the grant)."""
    accounts = ["*"] if config.organization_id else config.spoke_accounts
    return [f"arn:{Aws.PARTITION}:iam::{account}:role/{config.spoke_role_name}" for account in accounts]


class Fleet(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, evaluator: lambda_.IFunction, dlq: sqs.IQueue,
                 readers: Sequence[lambda_.Function], informed: Sequence[lambda_.Function] = ()):
        """`evaluator`, `dlq`: the default bus rule's target and dead-letter queue (infra/ingestion.py), which the
        fleet bus's rule shares. `readers`: the functions that read clusters (the evaluator, the sweep, the worker):
        they get the fleet's environment and may assume the spoke roles. `informed`: the environment only (the
        Slack actions worker, which keys clusters but reads none)."""
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{config.prefix}-fleet")
        self._admit_spokes(config)
        # the same pattern and target as the default bus's rule; in organization mode from any account the bus
        # admits (EVENT_ACCOUNTS is `*` then), else from the spokes and this account (a spoke stack may forward
        # this account's other regions too)
        self.rule = hyperpod_rule(
            self, "HyperPodEvents", name=f"{config.prefix}-fleet-hyperpod-events",
            description="hyperpod-guard: the spoke accounts' HyperPod events, forwarded to the fleet bus",
            accounts=None if config.organization_id else event_accounts(config),
            evaluator=evaluator, dlq=dlq, event_bus=self.bus,
        )
        environment = {
            fleet.HOME_ACCOUNT: Aws.ACCOUNT_ID,
            fleet.FLEET_REGIONS: ",".join(config.fleet_regions or [Aws.REGION]),
            fleet.SPOKE_ROLE_NAME: config.spoke_role_name,
            fleet.SPOKE_EXTERNAL_ID: config.external_id,
            # the accounts the sweep lists (with organizationId, EVENT_ACCOUNTS is `*`: these are the ones it knows)
            fleet.FLEET_ACCOUNTS: ",".join(config.spoke_accounts),
        }
        for function in (*readers, *informed):
            for name, value in environment.items():
                function.add_environment(name, value)
        self._grant_assume(config, readers)
        self._grant_home_regions(config, readers)
        self._outputs(config)

    def _admit_spokes(self, config: Config) -> None:
        """The bus's resource policy: events:PutEvents from each spoke account (its root: the account's
        IAM decides which of its principals, here the spoke stack's forwarding role), or from any principal
        of the organization."""
        if config.organization_id:
            self.bus.add_to_resource_policy(iam.PolicyStatement(
                sid="OrganizationPutEvents", actions=["events:PutEvents"], resources=[self.bus.event_bus_arn],
                principals=[iam.AnyPrincipal()],
                conditions={"StringEquals": {"aws:PrincipalOrgID": config.organization_id}},
            ))
            return
        for account in config.spoke_accounts:
            self.bus.add_to_resource_policy(iam.PolicyStatement(
                sid=f"Spoke{account}PutEvents", actions=["events:PutEvents"], resources=[self.bus.event_bus_arn],
                principals=[iam.AccountPrincipal(account)],
            ))

    def _grant_assume(self, config: Config, readers: Sequence[lambda_.Function]) -> None:
        conditions = {"StringEquals": {"aws:ResourceOrgID": config.organization_id}} if config.organization_id else None
        for function in readers:
            function.add_to_role_policy(iam.PolicyStatement(
                actions=list(ASSUME_ROLE), resources=spoke_role_arns(config), conditions=conditions,
            ))
        if config.organization_id:
            Validations.of(Stack.of(self)).acknowledge(Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/{config.spoke_role_name}]",
                reason="Organization mode: the spoke role in any account of the organization (aws:ResourceOrgID "
                       "condition), which the hub cannot list at deploy time; the role trusts only the hub's roles "
                       "with the external id.",
            ))

    def _grant_home_regions(self, config: Config, readers: Sequence[lambda_.Function]) -> None:
        """The hub's own account in the fleet's other regions is read with the functions' own credentials, not
        a spoke role (hyperpod_guard.service.Runtime.at): the SageMaker reads the stack grants in its own region
        (infra/evaluation.py), in each of `fleetRegions` too; the remediation actions with `-c remediation=true`.
        One policy per function, apart from its role's statements so that cfn-lint's W3037 (it does not know the
        HyperPod feature actions yet) is ignored here only, as for the home region's feature reads."""
        if not config.fleet_regions:
            return  # the hub's own region only: infra/evaluation.py grants it
        arns = {kind: [f"arn:{Aws.PARTITION}:sagemaker:{region}:{Aws.ACCOUNT_ID}:{kind}/*"
                       for region in config.fleet_regions] for kind in ("cluster", "training-plan")}
        statements = [
            iam.PolicyStatement(actions=[*SAGEMAKER_READ, *SAGEMAKER_FEATURE_READ], resources=arns["cluster"]),
            iam.PolicyStatement(actions=list(SAGEMAKER_PLAN_READ), resources=arns["training-plan"]),
        ]
        if config.remediation:
            statements.append(iam.PolicyStatement(actions=list(SAGEMAKER_REMEDIATE), resources=arns["cluster"]))
        for function in readers:
            policy = iam.Policy(self, f"{function.node.id}FleetRegionReads", statements=statements)
            assert function.role is not None
            policy.attach_to_role(function.role)
            cfn = policy.node.default_child
            assert isinstance(cfn, iam.CfnPolicy)
            cfn.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3037"]}})
        for region in config.fleet_regions:
            for kind, what in (("cluster", "clusters"), ("training-plan", "training plans")):
                Validations.of(Stack.of(self)).acknowledge(Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:{region}:<AWS::AccountId>:{kind}/*]",
                    reason=f"The hub's own {what} in the fleet region {region} (fleetRegions): this account only; "
                           "cluster and plan ARNs carry generated ids, not names.",
                ))

    def _outputs(self, config: Config) -> None:
        """What a spoke stack's parameters take (README: Many accounts)."""
        stack = Stack.of(self)
        CfnOutput(stack, "FleetEventBusArn", value=self.bus.event_bus_arn,
                  description="the fleet bus: the spoke stack's HubEventBusArn")
        CfnOutput(stack, "FleetHubAccountId", value=Aws.ACCOUNT_ID, description="the spoke stack's HubAccountId")
        CfnOutput(stack, "FleetExternalId", value=config.external_id, description="the spoke stack's ExternalId")
        CfnOutput(stack, "FleetSpokeRoleName", value=config.spoke_role_name,
                  description="the spoke stack's SpokeRoleName: the role the hub assumes in each spoke account")
        CfnOutput(stack, "FleetHubRolePattern",
                  value=f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{config.prefix}-*",
                  description="the hub's roles a spoke role trusts (the spoke stack's HubRolePrefix is the prefix)")
