"""`cdk synth` / `cdk deploy` entry point (see cdk.json). cdk-nag AwsSolutions runs on every synth."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from .config import Config
from .stack import HyperPodGuardStack


def build(app: cdk.App) -> HyperPodGuardStack:
    config = Config.from_node(app.node)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = HyperPodGuardStack(app, "HyperPodGuard", config=config, env=env, stack_name=config.prefix)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
