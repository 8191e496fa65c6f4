"""The evaluator end to end on moto (server mode): event -> DescribeCluster -> policies ->
DynamoDB ledger -> SNS (read back through an SQS subscription).

moto lacks most HyperPod status fields; tests/runtime_fixtures.serve() injects full
DescribeCluster documents into moto's backend (see hyperpod_guard/local/hyperpod_state.py).
Timelines call service.handle_event with an injected clock; the handler tests call the real
Lambda handler (Powertools logging and metrics) with the wall clock.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from hyperpod_guard.local.hyperpod_state import delete_cluster
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import handle_event, new_token, sweep
from tests.conftest import REGION
from tests.runtime_fixtures import LambdaContext, runtime, scenario, serve, stack  # noqa: F401
from tests.slack_sink import slack_sink  # noqa: F401

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def degraded():
    """A group Failed at 1/4 nodes, grace 5m: one alert (critical status, its warning shortfall folded in)."""
    event, snapshot = scenario("degraded-group-failed")
    serve(snapshot)
    return event, snapshot


def step(runtime, event, minutes):
    return handle_event(copy.deepcopy(event), runtime, at(minutes), new_token())


def sent(stack):
    return delivered(stack)


def fire(runtime, event, minutes=0):
    """Seen twice, past the 5m grace of degraded-group: firing."""
    step(runtime, event, minutes)
    return step(runtime, event, minutes + 6)


def test_grace_then_first_then_nothing_until_repeat_then_resolved(stack, runtime):
    event, snapshot = degraded()
    assert step(runtime, event, 0).outcomes[-1].notification is None  # pending: 5m grace
    assert sent(stack) == []
    step(runtime, event, 5)
    first = sent(stack)
    assert len(first) == 1
    body = first[0]["message"]
    assert [(i["reason"], i["finding"]["condition"]) for i in body["items"]] == [("first", "status-failed")]
    assert [a["condition"] for a in body["items"][0]["finding"]["details"]["also"]] == ["below-target"]
    assert first[0]["attributes"] == {"severity": "critical", "cluster": "ml-prod", "policy": '["degraded-group"]',
                                      "status": "firing", "receivers": '["default"]', "account": "111122223333",
                                      "region": "us-west-2"}
    assert first[0]["subject"].startswith("[CRITICAL] ml-prod: ") and len(first[0]["subject"]) < 100
    for minutes in (30, 60, 239):
        step(runtime, event, minutes)
    assert sent(stack) == []  # inside the 4h repeat interval
    step(runtime, event, 245)
    repeat = sent(stack)
    assert [i["reason"] for i in repeat[0]["message"]["items"]] == ["repeat"]
    for group in snapshot["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group["TargetCount"])
    serve(snapshot)
    step(runtime, event, 250)
    resolved = sent(stack)
    assert len(resolved) == 1
    assert resolved[0]["attributes"]["status"] == "resolved"
    assert {i["reason"] for i in resolved[0]["message"]["items"]} == {"resolved"}
    step(runtime, event, 260)
    assert sent(stack) == []


def test_same_event_twenty_times_is_one_message(stack, runtime):
    event, _ = degraded()
    for minute in range(20):  # one a minute: pending for the 5m grace, then firing
        step(runtime, event, minute)
    messages = sent(stack)
    assert len(messages) == 1
    assert len(messages[0]["message"]["items"]) == 1


def test_silenced_findings_send_nothing_but_keep_state(stack, runtime):
    event, _ = degraded()
    rules = {"version": 1, "silences": [{"matchers": {"cluster": "ml-*", "policy": "degraded-group"},
                                         "until": "2026-11-25T00:00:00Z", "comment": "maintenance"}]}
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules))
    result = fire(runtime, event)
    assert sent(stack) == []
    assert {d.why for d in result.outcomes[-1].decisions} == {"silenced until 2026-11-25T00:00:00Z: maintenance"}
    # the silence expires: never notified, so the first notification goes out now
    step(runtime, event, 13 * 60)
    assert [i["reason"] for i in sent(stack)[0]["message"]["items"]] == ["first"]


def test_cluster_failed_inhibits_group_findings(stack, runtime):
    event, snapshot = scenario("cluster-failed-with-message")
    serve(snapshot)
    step(runtime, event, 0)
    step(runtime, event, 6)
    messages = sent(stack)
    assert len(messages) == 1
    assert [(i["finding"]["condition"], i["finding"]["instance_group"]) for i in messages[0]["message"]["items"]] == [
        ("cluster-failed", None)]


def test_invalid_rules_raise_one_alert_and_evaluation_goes_on_with_defaults(stack, runtime):
    event, _ = degraded()
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value='{"version": 1, "policies": {"degraded-group": {"grace": "soon"}}}')
    result = fire(runtime, event)
    assert "grace" in result.rules_error
    messages = sent(stack)
    by_cluster = {m["message"]["cluster"]: m for m in messages}
    assert set(by_cluster) == {"_hyperpod-guard", "ml-prod"}
    assert [i["finding"]["policy"] for i in by_cluster["_hyperpod-guard"]["message"]["items"]] == ["rules-invalid"]
    # fixed rules: the sweep resolves the rules-invalid alert
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value='{"version": 1}', Overwrite=True)
    sweep(runtime, at(20), new_token())
    resolved = [m for m in sent(stack) if m["message"]["cluster"] == "_hyperpod-guard"]
    assert [i["reason"] for i in resolved[0]["message"]["items"]] == ["resolved"]


def test_cluster_gone_resolves_its_alerts(stack, runtime):
    event, _ = degraded()
    fire(runtime, event)
    assert len(sent(stack)) == 1
    delete_cluster("ml-prod", region=REGION)
    result = step(runtime, event, 20)
    assert result.findings == 0
    messages = sent(stack)
    assert [i["reason"] for i in messages[0]["message"]["items"]] == ["resolved"]
    assert "no longer exists" in result.outcomes[-1].decisions[0].why


def test_sweep_resolves_alerts_of_clusters_that_disappeared(stack, runtime):
    event, _ = degraded()
    fire(runtime, event)
    assert len(sent(stack)) == 1
    delete_cluster("ml-prod", region=REGION)
    result = sweep(runtime, at(30), new_token())
    assert result.gone == 1
    assert [i["reason"] for i in sent(stack)[0]["message"]["items"]] == ["resolved"]


def node_event(status: str, repair: str = "None") -> dict:
    event, snapshot = scenario("unhealthy-node-no-repair")
    event["detail"]["HealthSummary"].update(HealthStatus=status, RepairAction=repair)
    return event


def serve_with_node(node_id: str):
    """The unhealthy-node scenario's cluster, with the node running; returns its snapshot."""
    _, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot, nodes=[{"InstanceId": node_id, "InstanceGroupName": "p5-train", "InstanceType": "ml.p5.48xlarge",
                            "InstanceStatus": {"Status": "Running"}}])
    return snapshot


def test_unhealthy_node_then_healthy_again(stack, runtime):
    event = node_event("Unhealthy")
    node_id = event["detail"]["InstanceId"]
    serve_with_node(node_id)
    step(runtime, event, 0)
    fired = sent(stack)
    assert [(i["finding"]["node"], i["finding"]["instance_group"], i["finding"]["severity"]) for i in fired[0]["message"]["items"]] == [
        (node_id, "p5-train", "critical")]
    step(runtime, node_event("Healthy"), 5)
    assert [i["reason"] for i in sent(stack)[0]["message"]["items"]] == ["resolved"]


def test_unhealthy_event_for_a_node_that_is_gone_is_handled(stack, runtime):
    event = node_event("Unhealthy")
    _, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot, nodes=[])  # DescribeClusterNode: not found (already replaced)
    result = step(runtime, event, 0)
    assert result.invalid is None and result.findings == 0
    assert sent(stack) == []


def test_node_health_event_does_not_resolve_other_nodes_alerts(stack, runtime):
    event, snapshot = scenario("node-failure-recovery-none")
    serve(snapshot)
    sweep(runtime, at(0), new_token())  # the sweep lists nodes: the Failure node fires
    assert [i["finding"]["condition"] for i in sent(stack)[0]["message"]["items"]] == ["instance-failure"]
    other = node_event("Healthy")
    other["detail"]["ClusterName"] = snapshot["ClusterName"]
    other["detail"]["InstanceId"] = "i-0aaaaaaaaaaaaaaaa"
    step(runtime, other, 5)
    assert sent(stack) == []


def test_bad_event_is_counted_and_dropped(stack, runtime):
    result = handle_event({"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker", "detail": {"ClusterName": 5}}, runtime, T0, new_token())
    assert "ClusterName" in result.invalid
    assert sent(stack) == []


def test_handler_redelivered_event_is_evaluated_again_and_sends_nothing(stack, capsys):
    import sys

    from hyperpod_guard.handlers import evaluator

    # Powertools binds its handler to the stdout of the first Logger created; capture this one
    evaluator.logger.registered_handler.setStream(sys.stdout)
    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot, nodes=[{"InstanceId": event["detail"]["InstanceId"], "InstanceGroupName": "p5-train",
                            "InstanceType": "ml.p5.48xlarge", "InstanceStatus": {"Status": "Running"}}])
    first = evaluator.handler(event, LambdaContext())
    again = evaluator.handler(event, LambdaContext())  # EventBridge delivers at least once
    expected = {"cluster": event["detail"]["ClusterName"], "findings": 1, "notifications": 1,
                "notified_findings": 1, "suppressed": 0}
    assert first == expected
    assert again == dict(expected, notifications=0, notified_findings=0)  # the ledger knows it was sent
    assert len(sent(stack)) == 1
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    decisions = [line for line in logs if line.get("message") == "alert decision"]
    assert decisions and decisions[0]["correlation_id"] == event["id"]
    metrics = [line for line in logs if "_aws" in line]
    assert any("Notifications" in m for m in metrics)


def test_handler_drops_malformed_events_without_raising(stack, capsys):
    from hyperpod_guard.handlers import evaluator

    assert evaluator.handler({"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
                              "id": "x-1", "detail": {"EventDetails": {}}}, LambdaContext())["invalid"]
    assert evaluator.handler(["not", "an", "event"], LambdaContext()) == {"invalid": "not an object"}
    out = capsys.readouterr().out
    assert '"InvalidEvents"' in out


def test_aws_errors_raise_so_lambda_retries(stack, monkeypatch):
    from hyperpod_guard.handlers import evaluator

    event, _ = degraded()
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    from hyperpod_guard import aws_clients
    aws_clients.reset()
    with pytest.raises(Exception) as caught:
        evaluator.handler(event, LambdaContext())
    assert "ResourceNotFound" in type(caught.value).__name__ + str(caught.value)


def test_end_to_end_event_to_slack_once(stack, runtime, slack_sink, monkeypatch):
    """event x20 -> DynamoDB -> SNS -> (SQS copy of what SNS delivers) -> Slack notifier -> webhook sink."""
    from hyperpod_guard.handlers import slack_notifier

    boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=slack_sink.url)
    event, _ = degraded()
    for minute in range(20):
        step(runtime, event, minute)
    for message in sent(stack):
        slack_notifier.handler(message["sns_event"], LambdaContext(function_name="hyperpod-guard-slack"))
    assert len(slack_sink.requests) == 1
    payload = slack_sink.requests[0].json
    assert "ml-prod" in payload["blocks"][0]["text"]["text"]
    # one alert: the Failed group, with its shortfall folded into its evidence
    assert "also: Instance group gpu-workers has 1 of 4 target nodes" in json.dumps(payload)


def test_end_to_end_slack_rate_limited_then_delivered(stack, runtime, slack_sink):
    from hyperpod_guard.handlers import slack_notifier

    boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=slack_sink.url)
    slack_sink.respond(429, "rate_limited", headers={"Retry-After": "0"})
    event, _ = degraded()
    fire(runtime, event)
    (message,) = sent(stack)
    assert slack_notifier.handler(message["sns_event"], LambdaContext()) == {"sent": 1, "dropped": 0}
    assert [r.json is not None for r in slack_sink.requests] == [True, True]  # 429, then 200


def test_sweep_resolves_alerts_of_nodes_that_were_replaced(stack, runtime):
    event = node_event("Unhealthy")
    node_id = event["detail"]["InstanceId"]
    snapshot = serve_with_node(node_id)
    step(runtime, event, 0)
    assert len(sent(stack)) == 1
    serve(snapshot, nodes=[])  # replaced: ListClusterNodes no longer has it
    sweep(runtime, at(10), new_token())
    (resolved,) = sent(stack)
    assert [(i["reason"], i["finding"]["node"]) for i in resolved["message"]["items"]] == [("resolved", node_id)]
