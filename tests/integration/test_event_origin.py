"""Only our account and region (issue 14, item 4): the evaluator Lambda handler on moto, with the
EVENT_ACCOUNTS the stack sets, ignores an event from another account or region even when a local
cluster of the same name has the problem the event reports: nothing is read, written or published,
and IgnoredEvents counts it.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from hyperpod_guard.local.provision import delivered
from tests.conftest import ACCOUNT, REGION
from tests.runtime_fixtures import invoke_evaluator, scenario, serve, stack  # noqa: F401

OTHER = "444455556666"  # the account the sample event comes from


@pytest.fixture
def deployed(stack, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """The stack's resources and the evaluator's environment, EVENT_ACCOUNTS as the stack sets it
    without an allow-list (the Lambda's own region is AWS_REGION, us-west-2 here)."""
    monkeypatch.setenv("EVENT_ACCOUNTS", ACCOUNT)
    from hyperpod_guard import aws_clients

    aws_clients.reset()  # the handler's runtime reads the environment anew
    return stack


def unhealthy_node(account: str, region: str) -> dict[str, Any]:
    """unhealthy-node-no-repair (critical at once, no grace) from `account`/`region`; the cluster
    exists locally with that node."""
    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot, nodes=[{"InstanceId": event["detail"]["InstanceId"], "InstanceGroupName": "p5-train",
                            "InstanceType": "ml.p5.48xlarge", "InstanceStatus": {"Status": "Running"}}])
    event.update(account=account, region=region)
    return event


def ledger_items(table: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_the_same_event_from_this_account_pages(deployed):
    """The control: from our own account and region the event pages at once."""
    answer, _, metrics = invoke_evaluator(unhealthy_node(ACCOUNT, REGION))
    assert answer["notifications"] == 1 and metrics.get("IgnoredEvents") is None
    (message,) = delivered(deployed)
    assert message["attributes"]["severity"] == "critical"


@pytest.mark.parametrize(("account", "region", "why"), [
    pytest.param(OTHER, REGION, f"event from account '{OTHER}'", id="another account"),
    pytest.param(ACCOUNT, "us-east-1", "event from region 'us-east-1'", id="another region"),
    pytest.param("", REGION, "names no account", id="no account"),
])
def test_an_event_from_elsewhere_is_ignored_before_anything_is_read(deployed, account, region, why):
    event = unhealthy_node(account, region)
    answer, logs, metrics = invoke_evaluator(event)
    assert why in answer.get("ignored", ""), answer
    assert metrics["IgnoredEvents"] == 1 and metrics.get("Notifications") is None
    (line,) = [line for line in logs if line.get("message") == "ignoring event"]
    assert why in line["reason"] and line["cluster"] == "pretrain-east" and line["correlation_id"] == event["id"]
    assert delivered(deployed) == []
    assert ledger_items(deployed.table_name) == []  # not even the rules-invalid or a pending record


def test_without_event_accounts_local_runs_believe_any_account(stack):  # noqa: F811
    """The CLI, the demo and the other tests replay sample events from many accounts: no check."""
    answer, _, _ = invoke_evaluator(unhealthy_node(OTHER, "us-east-1"))
    assert answer["notifications"] == 1
