"""Blast radius through the real evaluator handler (issue 23): a node alert of an EKS-orchestrated cluster says
what runs on the node, read from the cluster's Kubernetes API within the rules' timeout.

Real parts: moto in server mode (SageMaker with local/hyperpod_state.py's injected cluster, SNS, SQS, DynamoDB,
SSM), moto's eks:DescribeCluster giving the endpoint and CA of a local Kubernetes API stand-in served over TLS
with a self-signed certificate (local/kube_standin.py), which checks that each request carries a token made as
`aws eks get-token` makes one. Nothing of the reader is mocked: DescribeCluster, the CA, the token, TLS and
the Kubernetes reads all run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.workload import reader
from tests.conftest import ACCOUNT, REGION
from tests.kube_standin import EKS_TOKEN, KubeStandin, down_url, running, self_signed, serve_as_eks
from tests.runtime_fixtures import (  # noqa: F401 (stack: a fixture)
    invoke_evaluator,
    node_event,
    only_item,
    put_rules,
    scenario,
    stack,
)

CLUSTER = "ml-eks-prod"
EKS_CLUSTER = "ml-eks"
NODE = "i-0a1b2c3d4e5f60001"  # hyperpod-i-0a1b2c3d4e5f60001 in local/kube/cluster.json: llama-ft and tensorboard
#: the longest timeout, so that a loaded machine never turns a read into "unknown: timeout" (the hang case sets 1s)
WORKLOAD_ON = {"version": 1, "workload": [{"match": {"cluster": "ml-eks-*"}, "timeout": "10s"}]}


@pytest.fixture
def kube(stack: Resources) -> Iterator[KubeStandin]:  # noqa: F811
    """The cluster's Kubernetes API (https, its own CA, real EKS tokens), behind moto's EKS DescribeCluster,
    and an unhealthy node of an EKS-orchestrated HyperPod cluster whose orchestrator it is."""
    reader.forget_endpoints()
    tls, ca_data = self_signed()
    for standin in running(token=EKS_TOKEN, tls=tls):
        eks_arn = serve_as_eks(standin.url, ca_data, name=EKS_CLUSTER, account=ACCOUNT, region=REGION)
        put_unhealthy(eks_arn)
        yield standin
    reader.forget_endpoints()


def put_unhealthy(eks_arn: str, *, status: str = "Failure") -> None:
    _, snapshot = scenario("unhealthy-node-no-repair")
    assert snapshot is not None
    snapshot = {k: v for k, v in snapshot.items() if k != "ClusterArn"}
    snapshot.update(ClusterName=CLUSTER, Orchestrator={"Eks": {"ClusterArn": eks_arn}})
    node = {"InstanceId": NODE, "InstanceGroupName": "worker-group-1", "InstanceType": "ml.p5.48xlarge",
            "InstanceStatus": {"Status": status, "Message": "NvidiaErrorTerminate" if status == "Failure" else ""}}
    put_cluster(snapshot, region=REGION, nodes=[node])





def test_a_node_alert_says_what_runs_on_the_node(stack: Resources, kube: KubeStandin) -> None:  # noqa: F811
    put_rules(WORKLOAD_ON)
    answer, _, metrics = invoke_evaluator(node_event(CLUSTER, NODE))
    assert answer["notifications"] == 1
    workload = only_item(stack, NODE)["workload"]
    assert workload["unknown"] is None and workload["node"] == f"hyperpod-{NODE}"
    jobs = {(j["kind"], j["namespace"], j["name"]): j for j in workload["jobs"]}
    llama = jobs[("PyTorchJob", "team-a", "llama-ft")]
    assert (llama["on_node"], llama["total"], llama["auto_resume"], llama["queue"]) == (2, 4, True, "team-a-localqueue")
    assert ("Deployment", "team-a", "tensorboard") in jobs
    assert "Unhealthy" in workload["node_state"]
    # read from the API server with a real EKS token (the stand-in refuses others with 401)
    assert kube.requests and all(r.status != 401 for r in kube.requests)
    assert f"/api/v1/nodes/hyperpod-{NODE}" in kube.paths
    assert metrics["WorkloadsRead"] == 1


def test_off_by_default(stack: Resources, kube: KubeStandin) -> None:  # noqa: F811
    put_rules({"version": 1})
    answer, _, metrics = invoke_evaluator(node_event(CLUSTER, NODE))
    assert answer["notifications"] == 1
    assert only_item(stack, NODE).get("workload") is None
    assert kube.requests == [] and "WorkloadsRead" not in metrics


@pytest.mark.parametrize(("break_it", "why"), [
    pytest.param(lambda kube: setattr(kube, "status", 403), "forbidden: grant the view access entry", id="403"),
    pytest.param(lambda kube: kube.hang(), "timeout", id="hangs"),
    pytest.param("down", "connection refused", id="unreachable"),
])
def test_an_unreadable_workload_keeps_the_alert(stack: Resources, kube: KubeStandin, break_it: Any,  # noqa: F811
                                                why: str) -> None:
    hangs = why == "timeout"  # the shortest timeout there; the longest where an answer is awaited
    put_rules({"version": 1, "workload": [{"match": {"cluster": "ml-eks-*"}, "timeout": "1s" if hangs else "10s"}]})
    if break_it == "down":
        _, ca_data = self_signed()
        serve_as_eks(down_url().replace("http:", "https:"), ca_data, name=EKS_CLUSTER, account=ACCOUNT,
                     region=REGION)
    else:
        break_it(kube)
    answer, _, metrics = invoke_evaluator(node_event(CLUSTER, NODE))
    assert answer["notifications"] == 1  # the alert went out
    item = only_item(stack, NODE)
    assert item["reason"] == "first" and item["finding"]["policy"] == "unhealthy-node"
    assert why in item["workload"]["unknown"], item["workload"]
    if hangs:  # the rules' timeout, not what was left of it when the API was called
        assert item["workload"]["unknown"] == "timeout: no answer within 1s"
    assert item["workload"]["jobs"] == []
    assert metrics["WorkloadsUnknown"] == 1


def test_routing_by_owner(stack: Resources, kube: KubeStandin) -> None:  # noqa: F811
    """A route by namespace (and a job's label) sends the alert to the team whose job is on the node; a route
    naming a namespace with nothing on the node does not take it."""
    put_rules({**WORKLOAD_ON, "routing": {"routes": [
        {"match": {"namespace": "team-z"}, "receivers": ["team-z"]},
        {"match": {"namespace": "team-a", "workload_labels": {"kueue.x-k8s.io/queue-name": "team-a-localqueue"}},
         "receivers": ["team-a"], "continue": True},
        {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"]},
    ]}})
    invoke_evaluator(node_event(CLUSTER, NODE))
    (message,) = delivered(stack)
    (item,) = message["message"]["items"]
    assert [r["name"] for r in item["receivers"]] == ["team-a", "ml-oncall"]
    # an email or Chatbot subscription filtering on the `receivers` attribute follows the owner route too
    assert json.loads(message["attributes"]["receivers"]) == ["ml-oncall", "team-a"]


def test_the_resolved_reads_nothing(stack: Resources, kube: KubeStandin) -> None:  # noqa: F811
    put_rules(WORKLOAD_ON)
    invoke_evaluator(node_event(CLUSTER, NODE))
    delivered(stack)
    read = len(kube.requests)
    put_unhealthy(serve_as_eks(kube.url, self_signed()[1], name=EKS_CLUSTER, account=ACCOUNT, region=REGION),
                  status="Running")
    answer, _, _ = invoke_evaluator(node_event(CLUSTER, NODE, healthy=True))
    assert answer["notifications"] == 1
    item = only_item(stack, NODE)
    assert item["reason"] == "resolved" and item.get("workload") is None
    assert len(kube.requests) == read


def test_the_owners_hear_the_rest_of_the_episode(stack: Resources, kube: KubeStandin) -> None:  # noqa: F811
    """An owner route took the page; by the time the node is healthy again the API refuses (or the job has
    moved): the resolved still reaches the owners, who were paged, and not only the default receivers."""
    put_rules({**WORKLOAD_ON, "routing": {"routes": [
        {"match": {"namespace": "team-a"}, "receivers": ["team-a"], "continue": True}]}})
    invoke_evaluator(node_event(CLUSTER, NODE))
    first = only_item(stack, NODE)
    assert [r["name"] for r in first["receivers"]] == ["team-a"] and first["owners"] == ["team-a"]

    kube.status = 403
    put_unhealthy(serve_as_eks(kube.url, self_signed()[1], name=EKS_CLUSTER, account=ACCOUNT, region=REGION),
                  status="Running")
    invoke_evaluator(node_event(CLUSTER, NODE, healthy=True))
    resolved = only_item(stack, NODE)
    assert resolved["reason"] == "resolved" and resolved.get("workload") is None
    assert sorted(r["name"] for r in resolved["receivers"]) == ["default", "team-a"]
