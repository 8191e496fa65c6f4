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
from tests.conftest import ACCOUNT, EVENTS, REGION


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


def put_rules(rules: dict[str, Any]) -> None:
    """The rules the functions read from now on (RULES_MAX_AGE 0): one SSM parameter under the rules path."""
    import boto3

    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules),
                                      Overwrite=True)


def node_event(cluster: str, node: str, *, healthy: bool = False, account: str = ACCOUNT) -> dict[str, Any]:
    """A Node Health Event (unhealthy-node-no-repair's) about `node` of `cluster` in this account and region."""
    event, _ = scenario("unhealthy-node-no-repair")
    arn = f"arn:aws:sagemaker:{REGION}:{account}:cluster/{cluster}"
    event.update(account=account, region=REGION, resources=[arn], id=f"{cluster}-{node}-{healthy}")
    event["detail"].update(ClusterName=cluster, ClusterArn=arn, InstanceId=node)
    if healthy:
        event["detail"]["HealthSummary"] = {"HealthStatus": "Healthy"}
    return event


def only_item(resources: Resources, node: str) -> dict[str, Any]:
    """The one message SNS delivered since the last call, and its one item about `node`."""
    from hyperpod_guard.local.provision import delivered

    (message,) = delivered(resources)
    items = [i for i in message["message"]["items"] if i["finding"]["node"] == node]
    assert len(items) == 1, message
    return items[0]

