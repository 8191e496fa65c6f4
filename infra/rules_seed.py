"""RulesSeed: the stack puts rules in SSM only where there are none, and never overwrites rules a user pushed.

Not CloudFormation-owned parameters (a `rules push` would drift them and the next deploy reset them):
one AwsCustomResource per parameter making SSM `PutParameter` with `Overwrite: false`, first the
seed version's parts `<path>/v/seed-<hash>/NN`, then `<path>/manifest` (which depends on every
part, so it is written last: the same order as `hyperpod-guard rules push`). `ParameterAlreadyExists`
is ignored: after a push the manifest exists, the seed's write is a no-op and the pushed rules stay
live. Create and update make the same call; delete does nothing, so the rules outlive `cdk destroy`.
A changed `rulesFile` is a new seed version (another hash), which goes live only where no manifest
exists; `rules push` is how rules change after the first deploy.

The provider is the Node.js function bundled in aws-cdk-lib (no Docker; one per stack, with a log
group kept as long as the functions' logs). Each call's policy names its one parameter ARN: no wildcard.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from hyperpod_guard.rules_store import seed_version

from .common import retention
from .config import Config

REPO = Path(__file__).resolve().parents[1]
#: the error the seed's writes ignore: the parameter is there (rules exist)
ALREADY_EXISTS = "ParameterAlreadyExists"


def put_parameter_call(name: str, value: str) -> cr.AwsSdkCall:
    return cr.AwsSdkCall(
        service="SSM", action="putParameter",
        parameters={"Name": name, "Value": value, "Type": "String", "Tier": "Standard", "Overwrite": False},
        physical_resource_id=cr.PhysicalResourceId.of(name),
        ignore_error_codes_matching=ALREADY_EXISTS,
    )


class RulesSeed(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config):
        super().__init__(scope, id)
        document = json.loads((REPO / config.rules_file).read_text())
        planned, manifest = seed_version(document, config.rules_path, config.rules_file)
        self.version = manifest.id
        writes = [*planned, (f"{config.rules_path}/manifest", manifest.serialise())]
        self.parts: list[cr.AwsCustomResource] = []
        # the provider function's logs, kept as long as the functions' own (its default would be forever)
        log_group = logs.LogGroup(self, "ProviderLogs", retention=retention(config.log_retention_days),
                                  removal_policy=RemovalPolicy.DESTROY)
        for index, (name, value) in enumerate(writes):
            arn = f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{name}"
            call = put_parameter_call(name, value)
            resource = cr.AwsCustomResource(
                self, "Manifest" if index == len(planned) else f"Part{index:02d}",
                on_create=call, on_update=call,  # on_delete: none, the rules stay
                policy=cr.AwsCustomResourcePolicy.from_statements([
                    iam.PolicyStatement(actions=["ssm:PutParameter"], resources=[arn]),
                ]),
                install_latest_aws_sdk=False, log_group=log_group,
            )
            if index == len(planned):
                for part in self.parts:  # the switch comes last
                    resource.node.add_dependency(part)
                self.manifest = resource
            else:
                self.parts.append(resource)
