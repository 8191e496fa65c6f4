"""Fixtures for the runtime tests: provisioned moto resources, HyperPod state, a Lambda context."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.lambda_context import LambdaContext  # noqa: F401 (re-exported for the tests)
from hyperpod_guard.local.provision import Resources, provision
from hyperpod_guard.service import Runtime
from tests.conftest import EVENTS, REGION


@pytest.fixture
def stack(aws: str, monkeypatch: pytest.MonkeyPatch) -> Resources:
    """The stack's resources on moto, and the functions' environment set from them."""
    resources = provision()
    for key, value in resources.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RULES_MAX_AGE", "0")  # tests change rules between steps
    return resources


@pytest.fixture
def runtime(stack: Resources) -> Runtime:
    return Runtime.from_env()


def scenario(name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A scenario's event and snapshot (deep copies, free to edit)."""
    folder = EVENTS / name
    event = json.loads((folder / "event.json").read_text())
    snapshot_file = folder / "snapshot.json"
    snapshot = json.loads(snapshot_file.read_text()) if snapshot_file.exists() else copy.deepcopy(event["detail"])
    return event, snapshot


def serve(snapshot: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> None:
    """What DescribeCluster (and the node APIs) answer from now on for this cluster."""
    put_cluster(snapshot, region=REGION, nodes=nodes if nodes is not None else snapshot.get("Nodes"))


def invoke_evaluator(event: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, float]]:
    """The evaluator Lambda handler on one event: (its answer, its log lines, its EMF metrics by name)."""
    from hyperpod_guard.handlers import evaluator
    from tests.lambda_output import lambda_output, split

    with lambda_output() as output:
        answer = evaluator.handler(copy.deepcopy(event), LambdaContext())
    logs, metrics = split(output.getvalue())
    return answer, logs, metrics
