"""Blast radius of a Slurm-orchestrated cluster through the real evaluator handler (issue 23): a node alert says
which Slurm jobs run on the node, read by squeue/sinfo on the controller through SSM Run Command.

Real parts: moto in server mode (SageMaker with local/hyperpod_state.py's injected cluster: its DescribeCluster,
DescribeClusterNode with the node's PrivateDnsHostname, and moto's own ListClusterNodes, which filters by
InstanceGroupNameContains; SNS, SQS, DynamoDB, SSM) and the SSM stand-in (local/ssm_standin.py) answering
SendCommand / GetCommandInvocation with recorded squeue and sinfo output, every request and answer validated
against botocore's SSM model. Nothing of the reader is mocked.
"""

from __future__ import annotations

import json

import pytest

from hyperpod_guard.local import ssm_standin
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.provision import Resources
from tests.conftest import EVENTS, REGION
from tests.runtime_fixtures import (  # noqa: F401 (stack: a fixture)
    invoke_evaluator,
    node_event,
    only_item,
    put_rules,
    scenario,
    stack,
)

#: [a-z0-9] only: the cluster's id (its ARN's last part; hyperpod_state.py's ARNs carry the name) goes into the
#: HyperPod SSM target, whose id part is AWS's 12 lowercase letters or digits
CLUSTER = "slurmprod"
NODE = "i-0a1b2c3d4e5f60016"
CONTROLLER = "i-0c0ffee1234567890"
TARGET = f"sagemaker-cluster:{CLUSTER}_controller-machine-{CONTROLLER}"
HOST = "ip-10-1-0-16"
# recorded on a HyperPod Slurm controller: two jobs with work on the node, the node drained with a reason
SQUEUE = ("4211|llama-70b-pretrain|alice|research|dev|RUNNING|16|ip-10-1-0-[16-31]\n"
          "4230|eval-nightly|bob|platform|batch|RUNNING|1|ip-10-1-0-16\n")
SINFO = "drained|Kill task failed [root@2026-11-30T04:10:02]\n"
STDOUT = SQUEUE + "--- hyperpod-guard sinfo ---\n" + SINFO
WORKLOAD_ON = {"version": 1, "workload": [{"match": {"cluster": "slurm*"}, "timeout": "3s"}]}


@pytest.fixture(autouse=True)
def slurm_cluster(stack: Resources) -> None:  # noqa: F811
    """A Slurm cluster (controller, login and worker groups; no Orchestrator) whose worker node failed."""
    ssm_standin.serve()
    snapshot = json.loads((EVENTS / "slurm-dbd-down" / "snapshot.json").read_text())
    snapshot = {k: v for k, v in snapshot.items() if k not in ("ClusterArn", "Nodes")}
    snapshot["ClusterName"] = CLUSTER
    put_cluster(snapshot, region=REGION, nodes=[
        {"InstanceId": CONTROLLER, "InstanceGroupName": "controller-machine", "InstanceType": "ml.m5.12xlarge",
         "InstanceStatus": {"Status": "Running"}},
        {"InstanceId": "i-0a1b2c3d4e5f600aa", "InstanceGroupName": "login-group", "InstanceType": "ml.m5.4xlarge",
         "InstanceStatus": {"Status": "Running"}},
        {"InstanceId": NODE, "InstanceGroupName": "p5-workers", "InstanceType": "ml.p5.48xlarge",
         "InstanceStatus": {"Status": "Failure", "Message": "NvidiaErrorTerminate"},
         "PrivateDnsHostname": f"{HOST}.{REGION}.compute.internal"},
    ])





def test_a_slurm_node_alert_says_which_jobs_run_on_the_node(stack: Resources) -> None:  # noqa: F811
    put_rules(WORKLOAD_ON)
    ssm_standin.put_output(TARGET, STDOUT)

    answer, _, metrics = invoke_evaluator(node_event(CLUSTER, NODE))

    assert answer["notifications"] == 1
    workload = only_item(stack, NODE)["workload"]
    assert workload["unknown"] is None and workload["node"] == HOST
    assert [(j["name"], j["user"], j["account"], j["queue"], j["on_node"], j["total"]) for j in workload["jobs"]] == [
        ("llama-70b-pretrain (4211)", "alice", "research", "dev", 1, 16),
        ("eval-nightly (4230)", "bob", "platform", "batch", 1, 1)]
    assert workload["node_state"] == "drained: Kill task failed [root@2026-11-30T04:10:02]"
    # one read-only command, on the controller found by ListClusterNodes, about the node's Slurm name
    [sent] = ssm_standin.sent()
    assert sent["Targets"] == [{"Key": "InstanceIds", "Values": [TARGET]}]
    assert sent["Parameters"]["commands"][1] == f"squeue -w {HOST} -h -o '%i|%j|%u|%a|%P|%T|%D|%N'"
    assert ssm_standin.rejections() == []
    assert metrics["WorkloadsRead"] == 1 and "WorkloadsUnknown" not in metrics


def test_routing_by_slurm_account_reaches_the_team(stack: Resources) -> None:  # noqa: F811
    put_rules({**WORKLOAD_ON, "routing": {"routes": [
        {"match": {"slurm_account": "finance*"}, "receivers": ["team-finance"]},
        {"match": {"slurm_account": "res*"}, "receivers": ["team-research"], "continue": True},
        {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"]},
    ]}})
    ssm_standin.put_output(TARGET, STDOUT)

    invoke_evaluator(node_event(CLUSTER, NODE))

    assert [r["name"] for r in only_item(stack, NODE)["receivers"]] == ["team-research", "ml-oncall"]


def test_a_failed_command_keeps_the_alert_and_says_why(stack: Resources) -> None:  # noqa: F811
    put_rules({**WORKLOAD_ON, "routing": {"routes": [
        {"match": {"slurm_account": "research"}, "receivers": ["team-research"]}]}})
    ssm_standin.put_output(TARGET, stderr="squeue: error: Unable to contact slurm controller (connect failure)",
                           status="Failed")

    answer, _, metrics = invoke_evaluator(node_event(CLUSTER, NODE))

    assert answer["notifications"] == 1  # the alert went out
    item = only_item(stack, NODE)
    assert item["reason"] == "first" and item["finding"]["policy"] == "unhealthy-node"
    assert item["workload"]["jobs"] == []
    assert item["workload"]["unknown"] == (
        f"command Failed on {TARGET} (exit 1): squeue: error: Unable to contact slurm controller (connect failure)")
    assert "team-research" not in [r["name"] for r in item["receivers"]]  # an unknown owner takes no owner route
    assert metrics["WorkloadsUnknown"] == 1


def test_no_running_controller_keeps_the_alert(stack: Resources) -> None:  # noqa: F811
    put_rules({**WORKLOAD_ON, "workload": [{**WORKLOAD_ON["workload"][0], "controller_group": "head-node"}]})

    answer, _, _ = invoke_evaluator(node_event(CLUSTER, NODE))

    assert answer["notifications"] == 1
    assert only_item(stack, NODE)["workload"]["unknown"] == "no running controller node in the group head-node"
    assert ssm_standin.sent() == []


def test_a_grouped_flush_carries_the_workload_of_its_firing_node_items(stack: Resources) -> None:  # noqa: F811
    """With grouping on, the event's evaluation sends nothing (the alert is owed); the flush's message, which
    describes the cluster anew (DescribeCluster, then the node's DescribeClusterNode for its Slurm name), carries
    the node's jobs. The workload is read once: for the message that goes out."""
    from tests.integration.test_grouping import INTERVAL, RULES, T0, WAIT, Grouped

    grouped = Grouped(stack, {**RULES, **WORKLOAD_ON})
    ssm_standin.put_output(TARGET, STDOUT)

    grouped.event(node_event(CLUSTER, NODE), T0)
    assert grouped.take() == [] and ssm_standin.sent() == []
    assert grouped.flush(T0 + WAIT + INTERVAL) == 1

    [message] = grouped.take()
    [item] = [i for i in message["items"] if i["finding"]["node"] == NODE]
    assert item["reason"] == "first"
    assert item["workload"]["node"] == HOST and item["workload"]["unknown"] is None
    assert [j["account"] for j in item["workload"]["jobs"]] == ["research", "platform"]
    assert len(ssm_standin.sent()) == 1
