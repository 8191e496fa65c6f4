"""Events lie about time (issue 14): the real handlers on moto, an injected clock, events with
their EventBridge `time`, delivered late, twice and out of order.

moto lacks BatchRebootClusterNodes/BatchReplaceClusterNodes: FakeHyperPod (a botocore
`before-call` hook on the evaluator's own SageMaker client, after botocore validated the request
against its model) answers them and records each call.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import handle_event, new_token, sweep
from hyperpod_guard.timeutil import isoformat
from tests.integration.test_remediation import REBOOT, REPLACE, FakeHyperPod, put_rules
from tests.lambda_output import lambda_output, split
from tests.runtime_fixtures import LambdaContext, runtime, scenario, serve, stack  # noqa: F401

T0 = datetime.fromisoformat("2026-11-26T06:42:13+00:00")
CLUSTER, NODE = "pretrain-east", "i-0f1e2d3c4b5a69788"  # scenario unhealthy-node-no-repair


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def hyperpod(runtime) -> FakeHyperPod:
    return FakeHyperPod(runtime.reader.sagemaker)


def serve_node(status: str = "Running", *, launched: datetime = T0 - timedelta(days=30), recovery: str = "None") -> None:
    """The cluster with its node `status` (NodeRecovery None: nobody else repairs it)."""
    _, snapshot = scenario("unhealthy-node-no-repair")
    snapshot["NodeRecovery"] = recovery
    node = copy.deepcopy(snapshot["Nodes"][0])
    node.update(InstanceStatus={"Status": status}, LaunchTime=isoformat(launched))
    serve(snapshot, nodes=[node])


def health(status: str, minutes: float) -> dict[str, Any]:
    """A Node Health event for NODE that HyperPod made at T0 + minutes."""
    event, _ = scenario("unhealthy-node-no-repair")
    event["id"] = f"health-{status}-{minutes}"
    event["time"] = isoformat(at(minutes))
    event["detail"]["HealthSummary"].update(HealthStatus=status, RepairAction="None")
    return event


def deliver(runtime, event: dict[str, Any], minutes: float):
    """EventBridge delivers `event` (made whenever it says) at T0 + minutes."""
    return handle_event(copy.deepcopy(event), runtime, at(minutes), new_token())


def reasons(stack) -> list[tuple[str, str]]:
    """(reason, condition) of every item SNS delivered since the last call."""
    return [(i["reason"], i["finding"]["condition"]) for m in delivered(stack) for i in m["message"]["items"]]


def remediation(action: str = "reboot", *, silenced_until: datetime | None = None) -> None:
    rules: dict[str, Any] = {"version": 1, "policies": {"unhealthy-node": {
        "remediation": {"enabled": True, "dry_run": False, "action": action}}}}
    if silenced_until:
        rules["silences"] = [{"matchers": {"cluster": CLUSTER}, "until": isoformat(silenced_until), "comment": "maintenance"}]
    put_rules(rules)


# --- item 1: one report, one action -----------------------------------------------------------------


def test_one_unhealthy_report_on_a_running_node_is_acted_on_once_in_a_day(stack, runtime, hyperpod):
    remediation()
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 0), 0)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    assert reasons(stack) == [("first", "unhealthy")]
    for hour in range(1, 25):  # a day of sweeps every hour: the node stays Running
        assert sweep(runtime, at(hour * 60), new_token()).errors == {}
        assert hyperpod.take() == [], f"acted again at {hour}h on the strength of one report"
    # what is sent after the first page: nothing until the report expires, unconfirmed, after 24h
    assert reasons(stack) == [("resolved", "unhealthy")]
    # the same report redelivered (an EventBridge retry) is the same observation: nothing more
    deliver(runtime, health("Unhealthy", 0), 24 * 60 + 5)
    assert hyperpod.take() == []


def test_a_newer_report_after_the_action_is_a_new_observation(stack, runtime, hyperpod):
    remediation()
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 0), 0)
    assert len(hyperpod.take()) == 1
    deliver(runtime, health("Unhealthy", 30), 31)  # within the hour an action gets to take effect
    assert hyperpod.take() == []
    deliver(runtime, health("Unhealthy", 90), 91)  # a report made after the action: the node is still bad
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    assert reasons(stack) == [("first", "unhealthy")]  # the second reboot is not news before the repeat interval


# --- item 2: order ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action, operation", [("reboot", REBOOT), ("replace", REPLACE)])
def test_a_redelivered_old_unhealthy_report_after_a_newer_healthy_one_changes_nothing(
        stack, runtime, hyperpod, action, operation):
    remediation(action)
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 0), 0)
    deliver(runtime, health("Healthy", 10), 10)
    assert reasons(stack) == [("first", "unhealthy"), ("resolved", "unhealthy")]
    assert hyperpod.take() == [(operation, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    result = deliver(runtime, health("Unhealthy", 0), 70)  # a retry or a DLQ redrive of the t0 report
    assert reasons(stack) == [] and hyperpod.take() == []
    assert result.stale and "older than" in result.stale


def test_an_older_healthy_report_does_not_resolve_a_newer_unhealthy_one(stack, runtime):
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 10), 10)
    assert reasons(stack) == [("first", "unhealthy")]
    result = deliver(runtime, health("Healthy", 5), 11)  # made before the Unhealthy one, delivered after
    assert reasons(stack) == []
    assert result.stale
    (record,) = runtime.ledger.load(CLUSTER).values()
    assert record.state.value == "firing"
    deliver(runtime, health("Healthy", 20), 21)  # a newer Healthy does resolve it
    assert reasons(stack) == [("resolved", "unhealthy")]


def test_a_stale_event_is_counted_and_logged_with_why(stack):
    from hyperpod_guard.handlers import evaluator

    serve_node("Running")
    with lambda_output() as output:
        evaluator.handler(health("Healthy", 10), LambdaContext())
        evaluator.handler(health("Unhealthy", 0), LambdaContext())
    logs, metrics = split(output.getvalue())
    assert metrics.get("StaleEvents") == 1
    [line] = [r for r in logs if r["message"].startswith("stale event")]
    assert "is older than the one of 2026-11-26T06:52:13Z" in line["reason"]


# --- state wins over stale text -------------------------------------------------------------------------


def test_a_report_about_a_node_launched_after_it_resolves_instead_of_paging(stack, runtime, hyperpod):
    remediation()
    serve_node("Running", launched=at(5))  # the instance was replaced after the report was made
    result = deliver(runtime, health("Unhealthy", 0), 6)
    assert reasons(stack) == [] and hyperpod.take() == []
    assert result.outcomes[-1].decisions == []


def test_an_open_report_resolves_when_the_sweep_sees_its_node_relaunched(stack, runtime):
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 0), 0)
    assert reasons(stack) == [("first", "unhealthy")]
    serve_node("Running", launched=at(20))
    sweep(runtime, at(30), new_token())
    assert reasons(stack) == [("resolved", "unhealthy")]


def test_a_report_confirmed_by_failure_is_one_alert(stack, runtime):
    serve_node("Failure")
    deliver(runtime, health("Unhealthy", 0), 0)
    [message] = delivered(stack)
    [item] = message["message"]["items"]
    assert (item["reason"], item["finding"]["condition"]) == ("first", "instance-failure")
    assert [a["condition"] for a in item["finding"]["details"]["also"]] == ["unhealthy"]
    sweep(runtime, at(10), new_token())
    assert reasons(stack) == []


# --- item 3: a silence never swallows a resolved -----------------------------------------------------------


def silence(until: datetime) -> None:
    rules = {"version": 1, "silences": [{"matchers": {"cluster": CLUSTER}, "until": isoformat(until), "comment": "maintenance"}]}
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules),
                                      Overwrite=True)


def test_a_page_that_clears_during_a_silence_gets_its_resolved_and_a_recurrence_is_a_new_episode(stack, runtime):
    serve_node("Failure")
    sweep(runtime, at(0), new_token())
    assert reasons(stack) == [("first", "instance-failure")]
    silence(until=at(120))
    serve_node("Running")
    sweep(runtime, at(30), new_token())
    assert reasons(stack) == [("resolved", "instance-failure")]
    serve_node("Failure")  # back within the silence: a new episode, quiet
    sweep(runtime, at(60), new_token())
    assert reasons(stack) == []
    sweep(runtime, at(125), new_token())  # the silence is over, the problem is not: it pages
    assert reasons(stack) == [("first", "instance-failure")]


def test_a_late_report_made_before_the_nodes_last_action_does_not_act_again(stack, runtime, hyperpod):
    """Found by the lifecycle model: the node was rebooted for its Failure; a report the health agent
    made before that reboot arrives late, about the same node: no second reboot on old news."""
    remediation()
    serve_node("Failure")
    sweep(runtime, at(0), new_token())
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    serve_node("Running")
    deliver(runtime, health("Unhealthy", -10), 240)  # made 10 minutes before the reboot
    assert hyperpod.take() == []
    deliver(runtime, health("Unhealthy", 250), 250)  # a report after the reboot is news
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]


def test_a_silenced_alert_is_not_remediated_when_the_state_confirms_it(stack, runtime, hyperpod):
    """Found by the lifecycle model: the Unhealthy page leads its node's problem; a silence comes; the node
    is then seen in Failure (a new observation for the page it leads): still no action while silenced."""
    remediation()
    serve_node("Running")
    deliver(runtime, health("Unhealthy", 0), 0)
    assert len(hyperpod.take()) == 1
    remediation(silenced_until=at(24 * 60))
    serve_node("Failure")
    sweep(runtime, at(120), new_token())
    assert hyperpod.take() == []
