"""Remediation end to end on moto: evaluation -> ledger -> plan -> budget/backoff -> HyperPod API
call -> audit trail -> SNS message (-> Slack rendering).

moto lacks UpdateCluster and BatchReboot/ReplaceClusterNodes: a botocore `before-call` hook on
the evaluator's own SageMaker client answers them locally and records the exact request body.
botocore's client-side validation runs before the hook, so every captured request is valid.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

from hyperpod_guard.local.provision import delivered
from hyperpod_guard.notify import slack
from hyperpod_guard.notify.message import Notification
from hyperpod_guard.remediation.store import RemediationStore
from hyperpod_guard.rules import MANAGED_KEY_PREFIXES, has_prefix
from hyperpod_guard.service import handle_event, new_token, sweep
from tests.runtime_fixtures import runtime, scenario, serve, stack  # noqa: F401

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
CLUSTER, GROUP, NODE = "batch-infer", "g5-batch", "i-0e4d3c2b1a0f9e8d7"  # scenario node-failure-recovery-none
REBOOT, REPLACE, UPDATE = "BatchRebootClusterNodes", "BatchReplaceClusterNodes", "UpdateCluster"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class FakeHyperPod:
    """Answers the remediation operations on `client`; everything else still goes to moto."""

    def __init__(self, client: Any):
        self.client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: operation -> error codes to answer with, next call first ("Code*" repeats forever, "OK" succeeds)
        self.errors: dict[str, list[str]] = {}
        for operation in (UPDATE, REBOOT, REPLACE):
            client.meta.events.register(f"before-call.sagemaker.{operation}", self._answer)

    def fail(self, operation: str, *codes: str) -> None:
        self.errors[operation] = list(codes)

    def _answer(self, model: Any, params: dict[str, Any], **_: Any):
        body = json.loads(params["body"])
        self.calls.append((model.name, body))
        queue = self.errors.get(model.name, [])
        code = "OK"
        if queue:
            code = (queue[0] if queue[0].endswith("*") else queue.pop(0)).rstrip("*")  # "Code*": every call from now on
        if code != "OK":
            error = {"Error": {"Code": code, "Message": f"{code} from the test"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return AWSResponse(params["url"], 400, {}, None), error
        if model.name == UPDATE:
            parsed = {"ClusterArn": f"arn:aws:sagemaker:us-west-2:123456789012:cluster/{body['ClusterName']}"}
        else:
            parsed = {"Successful": body["NodeIds"], "Failed": []}
        return AWSResponse(params["url"], 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def hyperpod(runtime) -> FakeHyperPod:
    return FakeHyperPod(runtime.reader.sagemaker)


@pytest.fixture
def store(runtime) -> RemediationStore:
    return RemediationStore(runtime.ledger.table_name, runtime.ledger.dynamodb)


def put_rules(rules: dict[str, Any]) -> None:
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules),
                                      Overwrite=True)


def node_rules(remediation: dict[str, Any], budget: dict[str, Any] | None = None, policy: str = "unhealthy-node") -> dict[str, Any]:
    rules: dict[str, Any] = {"version": 1, "policies": {policy: {"remediation": {"enabled": True, **remediation}}}}
    if budget:
        rules["remediation_budget"] = budget
    return rules


def node_doc(instance_id: str, status: str = "Failure", group: str = GROUP) -> dict[str, Any]:
    return {"InstanceId": instance_id, "InstanceGroupName": group, "InstanceType": "ml.g5.12xlarge",
            "InstanceStatus": {"Status": status}}


def batch_infer(nodes: list[dict[str, Any]] | None = None, **group: Any) -> dict[str, Any]:
    """The node-failure-recovery-none cluster (NodeRecovery None), served with `nodes`."""
    _, snapshot = scenario("node-failure-recovery-none")
    snapshot["InstanceGroups"][0].update(group)
    serve(snapshot, nodes=nodes)
    return snapshot


def run_sweep(runtime, minutes: float):
    result = sweep(runtime, at(minutes), new_token())
    assert result.errors == {}
    return result


def items(stack) -> list[tuple[str, str, str | None, list[str]]]:
    """(reason, policy/condition, node, actions) of every item SNS delivered since the last call."""
    return [(i["reason"], f'{i["finding"]["policy"]}/{i["finding"]["condition"]}', i["finding"]["node"], i["actions"])
            for m in delivered(stack) for i in m["message"]["items"]]


def budget_used(runtime, sk: str, now: datetime = T0) -> int | None:
    """The nodes budget item `sk` (`BUDGET`, `BUDGET#<group>`) counts in the 60 minutes before `now`."""
    item = runtime.ledger.dynamodb.get_item(TableName=runtime.ledger.table_name, ConsistentRead=True,
                                            Key={"pk": {"S": f"CLUSTER#{CLUSTER}"}, "sk": {"S": sk}}).get("Item")
    if not item:
        return None
    return sum(int(t["M"]["nodes"]["N"]) for t in item["takes"]["L"]
               if datetime.fromisoformat(t["M"]["at"]["S"]) > now - timedelta(minutes=60))


# --- dry run and live calls -------------------------------------------------------------------------


def test_dry_run_sends_nothing_audits_the_exact_request_and_reports_it(stack, runtime, hyperpod, store):
    put_rules(node_rules({}))  # enabled, dry_run by default
    batch_infer()
    token = new_token()
    sweep(runtime, at(0), token)
    assert hyperpod.calls == []
    assert items(stack) == [("first", "unhealthy-node/instance-failure", NODE,
                             [f"would reboot {NODE} (dry run)"])]
    (audit,) = store.audits(CLUSTER)
    assert json.loads(audit.pop("request")) == {"ClusterName": CLUSTER, "NodeIds": [NODE]}
    assert audit.pop("sk").startswith("AUDIT#2026-11-24T12:00:00Z#")
    assert audit.pop("fingerprint")
    assert audit == {
        "pk": f"CLUSTER#{CLUSTER}", "at": "2026-11-24T12:00:00Z",
        "expires_at": str(int((T0 + timedelta(days=90)).timestamp())), "policy": "unhealthy-node",
        "action": "reboot", "operation": REBOOT, "actor": f"hyperpod-guard:{token}", "instance_group": GROUP,
        "dry_run": "true",
    }
    # the same dry run is repeated at most hourly (audited each time), but it is news of its own
    # ("remediated", since no notification is due) no more often than the 4h repeat interval
    run_sweep(runtime, 30)
    assert items(stack) == []
    run_sweep(runtime, 60)
    assert items(stack) == []
    assert len(store.audits(CLUSTER)) == 2
    run_sweep(runtime, 4 * 60 + 1)  # the alert's repeat falls due too: one message carries both
    assert items(stack) == [("repeat", "unhealthy-node/instance-failure", NODE, [f"would reboot {NODE} (dry run)"])]
    run_sweep(runtime, 5 * 60 + 2)
    assert items(stack) == []
    assert hyperpod.calls == []
    assert len(store.audits(CLUSTER)) == 4


@pytest.mark.parametrize(("action", "operation", "verb"), [("reboot", REBOOT, "rebooted"), ("replace", REPLACE, "replaced")])
def test_live_run_sends_exactly_the_planned_request(stack, runtime, hyperpod, store, action, operation, verb):
    put_rules(node_rules({"dry_run": False, "action": action}))
    batch_infer()
    run_sweep(runtime, 0)
    assert hyperpod.take() == [(operation, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    assert items(stack) == [("first", "unhealthy-node/instance-failure", NODE, [f"{verb} {NODE}"])]
    (audit,) = store.audits(CLUSTER)
    assert (audit["dry_run"], audit["operation"], json.loads(audit["response"])) == (
        "false", operation, {"Successful": [NODE], "Failed": []})
    assert budget_used(runtime, "BUDGET") == 1
    assert budget_used(runtime, f"BUDGET#{GROUP}") == 1
    run_sweep(runtime, 30)  # an action gets an hour to take effect
    assert hyperpod.calls == [] and items(stack) == []


@pytest.mark.parametrize("current", [30, 26], ids=["status-degraded only", "status-degraded and below-target"])
def test_thirty_failed_nodes_of_a_degraded_group_are_two_calls(stack, runtime, hyperpod, current):
    ids = [f"i-0{n:016x}" for n in range(30)]
    put_rules(node_rules({"dry_run": False}, {"max_nodes_per_hour": 100, "max_group_percent": 100}, "degraded-group"))
    batch_infer([node_doc(i) for i in reversed(ids)] + [node_doc("i-0ffffffffffffffff", "Running")],
                Status="Degraded", TargetCount=30, CurrentCount=current)
    run_sweep(runtime, 0)  # pending: 5m grace
    assert hyperpod.calls == []
    delivered(stack)
    run_sweep(runtime, 6)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": ids[:25]}),
                               (REBOOT, {"ClusterName": CLUSTER, "NodeIds": ids[25:]})]
    group_items = [i for i in items(stack) if i[1].startswith("degraded-group/")]
    # one problem, one alert (a shortfall is folded into the Degraded status): it reboots every node in Failure
    assert group_items == [("first", "degraded-group/status-degraded", None, [f"rebooted {', '.join(ids)}"])]
    assert budget_used(runtime, "BUDGET") == 30


def test_second_batch_refused_gives_back_only_its_nodes(stack, runtime, hyperpod, store):
    ids = [f"i-0{n:016x}" for n in range(30)]
    put_rules(node_rules({"dry_run": False}, {"max_nodes_per_hour": 100, "max_group_percent": 100}, "degraded-group"))
    batch_infer([node_doc(i) for i in ids], Status="Degraded", TargetCount=30, CurrentCount=30)
    hyperpod.fail(REBOOT, "OK", "ValidationException")
    run_sweep(runtime, 0)
    run_sweep(runtime, 6)
    assert [body["NodeIds"] for _, body in hyperpod.take()] == [ids[:25], ids[25:]]
    assert budget_used(runtime, "BUDGET") == 25
    assert budget_used(runtime, f"BUDGET#{GROUP}") == 25
    audits = sorted(store.audits(CLUSTER), key=lambda a: "error" in a)
    assert [("error" in a, json.loads(a["request"])["NodeIds"]) for a in audits] == [(False, ids[:25]), (True, ids[25:])]


# --- budgets ------------------------------------------------------------------------------------------


def test_budget_spent_then_acts_when_its_takes_leave_the_window(stack, runtime, hyperpod, store):
    failed = ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"]
    put_rules(node_rules({"dry_run": False}, {"max_nodes_per_hour": 2, "max_group_percent": 100}))
    batch_infer([node_doc(i) for i in failed])
    run_sweep(runtime, 0)
    calls = hyperpod.take()
    assert [op for op, _ in calls] == [REBOOT, REBOOT]
    acted = [body["NodeIds"] for _, body in calls]
    assert all(len(ids) == 1 for ids in acted)
    acted_ids = {ids[0] for ids in acted}
    (skipped,) = set(failed) - acted_ids
    by_node = {node: actions for _, _, node, actions in items(stack)}
    assert by_node == {**{n: [f"rebooted {n}"] for n in acted_ids},
                       skipped: ["skipped: budget spent (at most 2 nodes per cluster and 4 in g5-batch per 60 minutes)"]}
    assert budget_used(runtime, "BUDGET") == 2
    assert [a.get("outcome") for a in store.audits(CLUSTER)].count("skipped: budget spent") == 1
    # the rebooted nodes recover; the third waits until their takes leave the 60-minute window
    batch_infer([node_doc(i, "Running" if i in acted_ids else "Failure") for i in failed])
    run_sweep(runtime, 30)
    run_sweep(runtime, 59)
    assert hyperpod.calls == []
    assert {(r, n) for r, _, n, _ in items(stack)} == {("resolved", n) for n in acted_ids}
    run_sweep(runtime, 60)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [skipped]})]
    assert items(stack) == [("remediated", "unhealthy-node/instance-failure", skipped, [f"rebooted {skipped}"])]
    assert budget_used(runtime, "BUDGET", at(60)) == 1


def test_take_budget_counts_nothing_when_refused(stack, store, runtime):
    assert store.take_budget(CLUSTER, "a", 3, per_hour=4, group_limit=10, now=T0)
    assert not store.take_budget(CLUSTER, "b", 2, per_hour=4, group_limit=10, now=T0)  # cluster: 3 + 2 > 4
    assert not store.take_budget(CLUSTER, "a", 5, per_hour=4, group_limit=10, now=T0)  # more than the hour allows
    assert (budget_used(runtime, "BUDGET"), budget_used(runtime, "BUDGET#b")) == (3, None)
    assert store.take_budget(CLUSTER, "b", 1, per_hour=4, group_limit=10, now=T0)
    assert store.take_budget(CLUSTER, "b", 4, per_hour=4, group_limit=10, now=at(60))  # T0's takes have left the window


# --- errors: conflict and backoff ------------------------------------------------------------------------


def test_conflict_is_skipped_and_retried_after_five_minutes(stack, runtime, hyperpod, store):
    put_rules(node_rules({"dry_run": False}))  # default budget: 4 per cluster, 1 in g5-batch (10% of 4) per hour
    batch_infer()
    hyperpod.fail(REBOOT, "ConflictException")
    run_sweep(runtime, 0)
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    assert items(stack) == [("first", "unhealthy-node/instance-failure", NODE,
                             ["skipped: cluster busy (ConflictException), retried later"])]
    assert "ConflictException" in store.audits(CLUSTER)[0]["error"]
    run_sweep(runtime, 1)
    run_sweep(runtime, 4)
    assert hyperpod.calls == [] and items(stack) == []
    run_sweep(runtime, 5)  # the node was not touched: the conflict must not have used up the group's budget of 1
    assert items(stack) == [("remediated", "unhealthy-node/instance-failure", NODE, [f"rebooted {NODE}"])]
    assert hyperpod.take() == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})]
    assert budget_used(runtime, f"BUDGET#{GROUP}") == 1


def test_failed_call_backs_off_15m_then_30m(stack, runtime, hyperpod, store):
    put_rules(node_rules({"dry_run": False}))
    batch_infer()
    hyperpod.fail(REBOOT, "ValidationException*")  # every call fails
    expected = {0: "attempt 1, next in 15m", 15: "attempt 2, next in 30m", 45: "attempt 3, next in 1h"}
    for minute in (0, 14, 15, 44, 45, 104):
        run_sweep(runtime, minute)
        calls = hyperpod.take()
        actions = [a for _, _, _, acts in items(stack) for a in acts]
        if minute in expected:
            assert calls == [(REBOOT, {"ClusterName": CLUSTER, "NodeIds": [NODE]})], minute
            # the first failure is news (in the first message); the retries are audited, and are not
            # news again before the alert's repeat interval (4h)
            assert actions == ([f"failed: {REBOOT} ValidationException ({expected[minute]})"] if minute == 0 else []), minute
        else:
            assert (calls, actions) == ([], []), minute
    assert [a["error"].split(":")[0] for a in store.audits(CLUSTER)] == ["ValidationException"] * 3


# --- taint drift -----------------------------------------------------------------------------------------


def test_required_taint_drift_sends_valid_update_cluster_requests(stack, runtime, hyperpod, load_json):
    event, snapshot = scenario("taint-drift-required-p5")
    rules = load_json("events/taint-drift-required-p5/rules.json")
    rules["policies"]["taint-drift"]["remediation"] = {"enabled": True, "dry_run": False}
    put_rules(rules)
    a, b = snapshot["InstanceGroups"][0], snapshot["InstanceGroups"][1]
    a["CurrentCount"] = 15  # InstanceCount must stay TargetCount (16): never scale
    a["KubernetesConfig"]["CurrentLabels"]["kubernetes.io/arch"] = "amd64"
    a["KubernetesConfig"]["CurrentTaints"].append(
        {"Key": "sagemaker.amazonaws.com/node-health-status", "Value": "Unschedulable", "Effect": "NoSchedule"})
    for side in ("CurrentLabels", "DesiredLabels"):
        b["KubernetesConfig"][side]["sagemaker.amazonaws.com/compute-type"] = "hyperpod"
    serve(snapshot)
    for minute in (0, 16):  # 15m grace
        handle_event(copy.deepcopy(event), runtime, at(minute), new_token())
    calls = hyperpod.take()
    gpu = {"Key": "nvidia.com/gpu", "Value": "present", "Effect": "NoSchedule"}
    role = a["ExecutionRole"]
    assert calls == [
        (UPDATE, {"ClusterName": "foundation-models", "InstanceGroups": [{
            "InstanceGroupName": "p5-train-a", "ExecutionRole": role, "InstanceCount": 16, "InstanceType": "ml.p5.48xlarge",
            "KubernetesConfig": {"Labels": {"workload-class": "gpu-training", "team": "fm"}, "Taints": [gpu]}}]}),
        (UPDATE, {"ClusterName": "foundation-models", "InstanceGroups": [{
            "InstanceGroupName": "p5-train-b", "ExecutionRole": role, "InstanceCount": 8, "InstanceType": "ml.p5.48xlarge",
            "KubernetesConfig": {"Labels": {"team": "fm", "sagemaker.amazonaws.com/compute-type": "hyperpod",
                                            "workload-class": "gpu-training"}, "Taints": [gpu]}}]}),
    ]
    input_shape = runtime.reader.sagemaker.meta.service_model.operation_model(UPDATE).input_shape
    declared = {g["InstanceGroupName"]: g["KubernetesConfig"] for g in snapshot["InstanceGroups"]}
    for _, params in calls:
        validate_parameters(params, input_shape)  # raises ParamValidationError
        (spec,) = params["InstanceGroups"]
        config = declared[spec["InstanceGroupName"]]
        keys = list(spec["KubernetesConfig"]["Labels"]) + [t["Key"] for t in spec["KubernetesConfig"]["Taints"]]
        for key in (k for k in keys if has_prefix(k, MANAGED_KEY_PREFIXES)):
            assert key in config["DesiredLabels"] or key in {t["Key"] for t in config["DesiredTaints"]}, key
    assert sorted((i[1], i[3][0]) for i in items(stack)) == [
        ("taint-drift/required", "re-declared the required taints/labels of p5-train-a"),
        ("taint-drift/required", "re-declared the required taints/labels of p5-train-b"),
    ]


def test_current_vs_desired_drift_is_never_remediated(stack, runtime, hyperpod, store):
    event, snapshot = scenario("taint-drift-current-vs-desired")
    put_rules({"version": 1, "policies": {"taint-drift": {"remediation": {"enabled": True, "dry_run": False}}}})
    serve(snapshot)
    for minute in (0, 16):
        handle_event(copy.deepcopy(event), runtime, at(minute), new_token())
    fired = items(stack)
    assert [i[1] for i in fired] == ["taint-drift/current-vs-desired"] and fired[0][3] == []
    assert hyperpod.calls == [] and store.audits(snapshot["ClusterName"]) == []


# --- Slack ------------------------------------------------------------------------------------------------


def test_remediation_lines_show_in_the_slack_rendering(stack, runtime, hyperpod):
    put_rules(node_rules({}))
    batch_infer()
    run_sweep(runtime, 0)
    (message,) = delivered(stack)
    payload = slack.render(Notification.model_validate(message["message"]))
    lines = [line for block in payload["blocks"] if block["type"] == "section"
             for line in block["text"]["text"].split("\n")]
    assert [line for line in lines if line.startswith("🛠")] == [
        f"🛠 _Remediation:_ would reboot {NODE} (dry run)"]


def test_silenced_alerts_are_left_alone_and_skips_alone_send_no_message(stack, runtime):
    """A silence (maintenance) stops remediation too; a "skipped: waiting" line is no news."""
    event, snapshot = scenario("unhealthy-node-auto-replace")
    serve(snapshot, nodes=[{"InstanceId": event["detail"]["InstanceId"], "InstanceGroupName": "p5-train",
                            "InstanceType": "ml.p5.48xlarge", "InstanceStatus": {"Status": "Running"}}])
    rules = {"version": 1, "policies": {"unhealthy-node": {"remediation": {"enabled": True, "dry_run": True}}}}
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules))
    t0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    handle_event(event, runtime, t0, new_token())  # NodeRecovery Automatic: remediation waits 30m
    first = delivered(stack)
    assert len(first) == 1 and first[0]["message"]["items"][0]["actions"][0].startswith("skipped: waiting")
    handle_event(event, runtime, t0 + timedelta(minutes=10), new_token())
    assert delivered(stack) == []  # a skip alone is no news
    silenced = dict(rules, silences=[{"matchers": {"cluster": "*"}, "until": "2026-11-25T00:00:00Z"}])
    ssm.put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(silenced), Overwrite=True)
    handle_event(event, runtime, t0 + timedelta(minutes=45), new_token())  # past `after`, but silenced
    assert delivered(stack) == []
    assert RemediationStore(stack.table_name, boto3.client("dynamodb")).audits(snapshot["ClusterName"]) == []
