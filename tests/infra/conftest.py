"""Fixtures for the stack tests: synthesised templates, built once per context and cached.

jsii starts a Node process per Python process (~3 s for the first construct); after that each
App/stack costs ~0.2-0.5 s, so the default template is built once per session and variants
only where a test needs them. Asset bundling is skipped (`aws:cdk:bundling-stacks: []`): no pip.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from unittest import mock  # noqa: E402

import aws_cdk as cdk  # noqa: E402
import pytest  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from infra.app import build  # noqa: E402
from infra.stack import HyperPodGuardStack  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: what `cdk synth` passes: cdk.json's context (defaults and feature flags such as minimizePolicies)
CDK_JSON_CONTEXT: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]


def make_stack(outdir: Path, **context: Any) -> tuple[cdk.App, HyperPodGuardStack]:
    """A fresh app + stack as `cdk synth` builds it (cdk-nag plugin included), without bundling."""
    # the stack's env comes from CDK_DEFAULT_*: keep the template independent of the caller's shell
    with mock.patch.dict(os.environ):
        os.environ.pop("CDK_DEFAULT_ACCOUNT", None)
        os.environ.pop("CDK_DEFAULT_REGION", None)
        app = cdk.App(outdir=str(outdir), context={**CDK_JSON_CONTEXT, "aws:cdk:bundling-stacks": [], **context})
        return app, build(app)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    """synth(**context) -> the template dict (Template.from_stack runs the cdk-nag plugin); cached."""
    cache: dict[str, dict[str, Any]] = {}

    def run(**context: Any) -> dict[str, Any]:
        key = json.dumps(context, sort_keys=True)
        if key not in cache:
            _, stack = make_stack(tmp_path_factory.mktemp("cdk.out"), **context)
            cache[key] = Template.from_stack(stack).to_json()
        return cache[key]

    return run


@pytest.fixture(scope="session")
def template(synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The default stack (cdk.json's context = config.DEFAULTS)."""
    return synth()
