"""`cdk synth` / `cdk deploy` entry point (see cdk.json). cdk-nag AwsSolutions runs on every synth.

Two stacks: the hub (`HyperPodGuard`, stack name the prefix), which `make deploy` deploys, and the spoke
(`HyperPodGuardSpoke`, `<prefix>-spoke`; infra/spoke.py), which `make deploy-spoke` deploys in each watched
account and region, and whose template `make synth` also writes for a StackSet.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from .config import Config
from .spoke import SPOKE_ID, HyperPodGuardSpoke
from .stack import HyperPodGuardStack


def build(app: cdk.App) -> HyperPodGuardStack:
    """The hub stack (returned) and the spoke stack (`spoke(app)`)."""
    config = Config.from_node(app.node)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = HyperPodGuardStack(app, "HyperPodGuard", config=config, env=env, stack_name=config.prefix)
    # environment-agnostic: one template for every spoke account and region
    HyperPodGuardSpoke(app, SPOKE_ID, config=config, stack_name=f"{config.prefix}-spoke")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def spoke(app: cdk.App) -> HyperPodGuardSpoke:
    """The spoke stack `build` added to `app`."""
    found = app.node.find_child(SPOKE_ID)
    assert isinstance(found, HyperPodGuardSpoke)
    return found


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
