"""The blast-radius reader (workload/reader.py) with small fake AWS clients: what it reads once for many nodes,
its bounds (MAX_NODES, the deadline), the words of its failures and its metrics.

The clients are fakes exposing the boto3 method names the reader calls (DescribeCluster, ListClusterNodes,
DescribeClusterNode, SendCommand, GetCommandInvocation), recording every call; STS is a real boto3 client
(presigning is local) and the EKS reads that go past the prelude reach a real local Kubernetes API stand-in
(local/kube_standin.py) over plain http, which checks the token as EKS does. The round trips through moto,
TLS and the evaluator handler are in tests/integration/test_blast_radius*.py. Time is a fake clock: the
tests assert what was read and said, never how long it took.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from hyperpod_guard.snapshot import ClusterSnapshot
from hyperpod_guard.workload import reader
from hyperpod_guard.workload.model import Workload
from hyperpod_guard.workload.reader import ENDPOINT_MAX_AGE, MAX_NODES, Reads, blast_radius, endpoint_of
from hyperpod_guard.workload.slurm import MARKER
from tests.kube_standin import EKS_TOKEN, KubeStandin, running
from tests.lambda_output import lambda_output

REGION = "us-west-2"
EKS_ARN = f"arn:aws:eks:{REGION}:123456789012:cluster/ml-eks"
SLURM_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:cluster/abc123def456"
CONTROLLER = "i-0c0ffee1234567890"
#: the nodes local/kube/cluster.json knows (llama-ft and tensorboard on the first, DaemonSets on the second)
KUBE_NODES = ("i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002")


@pytest.fixture(autouse=True)
def no_endpoints() -> Iterator[None]:
    reader.forget_endpoints()
    yield
    reader.forget_endpoints()


class Clock:
    """Time that moves only when a test (or a fake call) moves it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Clients:
    """reader.Clients: the fake of each service, and every service asked for, in order."""

    def __init__(self, **fakes: Any) -> None:
        sts = boto3.client("sts", region_name=REGION, aws_access_key_id="AKIDEXAMPLE",
                           aws_secret_access_key="secret",  # noqa: S106 (a test value)
                           endpoint_url=f"https://sts.{REGION}.amazonaws.com")
        self.fakes = {"sts": sts, **fakes}
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        with self._lock:
            self.asked.append(service)
        return self.fakes[service]


def refused(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"not authorized to perform {operation}"}}, operation)


class FakeEks:
    def __init__(self, endpoint: str = "https://ABC.gr7.us-west-2.eks.amazonaws.com", *, status: str = "ACTIVE",
                 error: Exception | None = None, block: threading.Event | None = None) -> None:
        self.endpoint, self.status, self.error, self.block = endpoint, status, error, block
        self.calls: list[str] = []
        self.answered = threading.Event()

    def describe_cluster(self, *, name: str) -> dict[str, Any]:
        self.calls.append(name)
        try:
            if self.block is not None:
                self.block.wait()
            if self.error is not None:
                raise self.error
        finally:
            self.answered.set()
        cluster: dict[str, Any] = {"name": name, "arn": EKS_ARN, "status": self.status}
        if self.endpoint:
            cluster.update(endpoint=self.endpoint, certificateAuthority={"data": ""})
        return {"cluster": cluster}


class FakeSageMaker:
    def __init__(self, controllers: list[dict[str, Any]] | None = None, hostnames: dict[str, str] | None = None,
                 error: Exception | None = None, node_error: Exception | None = None) -> None:
        self.controllers = controllers if controllers is not None else [
            {"InstanceGroupName": "controller-machine", "InstanceId": CONTROLLER,
             "InstanceStatus": {"Status": "Running"}}]
        self.hostnames = hostnames or {}
        self.error, self.node_error = error, node_error
        self.listed: list[dict[str, Any]] = []
        self.described: list[str] = []

    def list_cluster_nodes(self, **params: Any) -> dict[str, Any]:
        self.listed.append(params)
        if self.error is not None:
            raise self.error
        return {"ClusterNodeSummaries": [s for s in self.controllers
                                         if params["InstanceGroupNameContains"] in s["InstanceGroupName"]]}

    def describe_cluster_node(self, *, ClusterName: str, NodeId: str) -> dict[str, Any]:  # noqa: N803 (boto3's)
        self.described.append(NodeId)
        if self.node_error is not None:
            raise self.node_error
        details: dict[str, Any] = {"InstanceId": NodeId}
        if NodeId in self.hostnames:
            details["PrivateDnsHostname"] = self.hostnames[NodeId]
        return {"NodeDetails": details}


class FakeSsm:
    """SendCommand and GetCommandInvocation: squeue on `host` lists one job of `account` per host."""

    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        self.accounts = accounts or {}
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send_command(self, **params: Any) -> dict[str, Any]:
        with self._lock:
            self.sent.append(params)
            return {"Command": {"CommandId": f"c-{len(self.sent)}"}}

    def get_command_invocation(self, *, CommandId: str, InstanceId: str) -> dict[str, Any]:  # noqa: N803
        params = self.sent[int(CommandId.removeprefix("c-")) - 1]
        host = params["Parameters"]["commands"][1].split()[2]
        account = self.accounts.get(host, "research")
        return {"Status": "Success", "ResponseCode": 0,
                "StandardOutputContent": f"42|train|alice|{account}|dev|RUNNING|2|{host}\n{MARKER}\n"}

    def hosts(self) -> list[str]:
        return [p["Parameters"]["commands"][1].split()[2] for p in self.sent]


def slurm_cluster(*groups: str, nodes: tuple[tuple[str, str | None], ...] = ()) -> ClusterSnapshot:
    return ClusterSnapshot.from_describe_cluster({
        "ClusterName": "slurm-prod", "ClusterArn": SLURM_ARN,
        "InstanceGroups": [{"InstanceGroupName": g} for g in groups or ("controller-machine", "p5-workers")],
        "Nodes": [{"InstanceId": i, **({"PrivateDnsHostname": h} if h else {})} for i, h in nodes]})


def eks_cluster(eks_arn: str | None = EKS_ARN) -> ClusterSnapshot:
    return ClusterSnapshot.from_describe_cluster({
        "ClusterName": "ml-eks-prod", "ClusterArn": f"arn:aws:sagemaker:{REGION}:123456789012:cluster/ml-eks-prod",
        "Orchestrator": {"Eks": {"ClusterArn": eks_arn} if eks_arn else {}}})


def node_ids(count: int) -> list[str]:
    return [f"i-{n:017x}" for n in range(1, count + 1)]


def hostnames(nodes: list[str]) -> dict[str, str]:
    return {node: f"ip-10-1-0-{n}.{REGION}.compute.internal" for n, node in enumerate(nodes, start=1)}


@pytest.fixture
def kube() -> Iterator[KubeStandin]:
    """The Kubernetes API stand-in over http, checking each request's token as EKS's authenticator would."""
    yield from running(token=EKS_TOKEN)


# -- bounds: how many nodes, each once, within the deadline ---------------------------------------------


def test_a_message_reads_max_nodes_and_says_so_of_the_rest() -> None:
    nodes = node_ids(MAX_NODES + 1)
    ssm, sagemaker = FakeSsm(), FakeSageMaker(hostnames=hostnames(nodes))

    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), slurm_cluster(), nodes, Reads(3), Clock())

    assert sorted(found) == nodes
    assert [found[node].unknown for node in nodes[:MAX_NODES]] == [None] * MAX_NODES
    assert found[nodes[-1]] == Workload(nodes[-1], unknown="not read: a message reads the workload of 10 nodes at most")
    assert len(ssm.sent) == MAX_NODES and f"ip-10-1-0-{MAX_NODES + 1}" not in ssm.hosts()


def test_a_node_named_twice_is_read_once() -> None:
    nodes = node_ids(2)
    ssm, sagemaker = FakeSsm(), FakeSageMaker(hostnames=hostnames(nodes))

    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), slurm_cluster(), [*nodes, nodes[0], nodes[1]],
                         Reads(3), Clock())

    assert sorted(found) == nodes
    assert sorted(ssm.hosts()) == ["ip-10-1-0-1", "ip-10-1-0-2"]
    assert sorted(sagemaker.described) == nodes


def test_no_nodes_reads_nothing() -> None:
    clients = Clients()
    assert blast_radius(clients, slurm_cluster(), [], Reads(3), Clock()) == {}
    assert clients.asked == []


def test_what_has_not_answered_by_the_deadline_is_a_timeout_and_the_read_returns_without_it() -> None:
    """The EKS prelude hangs. The clock says the timeout is up as soon as the reads are started: blast_radius
    answers at once with the timeout's words while the read is still blocked (it did not wait for it)."""
    release = threading.Event()
    # refused once released: the late answer must not leave an endpoint in the process's cache for other tests
    eks = FakeEks(block=release, error=refused("ThrottlingException", "DescribeCluster"))

    class Deadline(Clock):
        """0 when the deadline is set, then the deadline itself: the time is up."""

        def __call__(self) -> float:
            now, self.now = self.now, 2.0
            return now

    try:
        found = blast_radius(Clients(eks=eks), eks_cluster(), list(KUBE_NODES), Reads(2), Deadline())
        still_blocked = not release.is_set()
    finally:
        release.set()
        eks.answered.wait(timeout=10)

    assert still_blocked
    assert found == {node: Workload(node, unknown="timeout: no answer within 2s") for node in KUBE_NODES}


def test_the_reads_have_what_is_left_of_the_timeout() -> None:
    """The prelude used the whole timeout (by the node reader's clock): no node read is started, it says why.
    (The waiting thread's clock stands still, so it waits for the node's answer.)"""
    seen = threading.local()

    class Clock:
        def __call__(self) -> float:
            return getattr(seen, "now", 0.0)

    clock = Clock()
    eks = FakeEks()
    original = eks.describe_cluster

    def slow(*, name: str) -> dict[str, Any]:
        seen.now = 5.0  # DescribeCluster took the whole timeout
        return original(name=name)

    eks.describe_cluster = slow  # type: ignore[method-assign]
    found = blast_radius(Clients(eks=eks), eks_cluster(), [KUBE_NODES[0]], Reads(3), clock)

    assert found[KUBE_NODES[0]].unknown == "timeout: no time left after reading the EKS cluster"


# -- EKS ------------------------------------------------------------------------------------------------


def test_the_eks_prelude_is_made_once_for_many_nodes(kube: KubeStandin) -> None:
    eks = FakeEks(kube.url)
    clients = Clients(eks=eks)
    nodes = [*KUBE_NODES, "i-0a1b2c3d4e5f69999"]

    found = blast_radius(clients, eks_cluster(), nodes, Reads(5), Clock())

    assert eks.calls == ["ml-eks"]  # DescribeCluster once, by the EKS cluster's name
    assert Counter(clients.asked) == {"eks": 1, "sts": 1}  # and one token
    assert {r.authorization for r in kube.requests} == {kube.requests[0].authorization}
    assert all(r.status != 401 for r in kube.requests)
    llama, mistral, missing = (found[n] for n in nodes)
    assert llama.unknown is None and {j.name for j in llama.jobs} >= {"llama-ft"}
    assert mistral.unknown is None and mistral.node_state == "health Schedulable"  # DaemonSet pods only
    assert missing.unknown == "node hyperpod-i-0a1b2c3d4e5f69999 not found"


@pytest.mark.parametrize("code, why", [
    ("AccessDeniedException", ("AccessDeniedException from eks:DescribeCluster: the stack grants it for the "
                               "clusters it is told of (README, Blast radius)")),
    ("ThrottlingException", ("ThrottlingException: An error occurred (ThrottlingException) when calling the "
                             "DescribeCluster operation: not authorized to perform DescribeCluster")),
])
def test_describe_cluster_refused_is_said_for_every_node(code: str, why: str) -> None:
    eks = FakeEks(error=refused(code, "DescribeCluster"))

    found = blast_radius(Clients(eks=eks), eks_cluster(), list(KUBE_NODES), Reads(3), Clock())

    assert {w.unknown for w in found.values()} == {why}
    assert len(eks.calls) == 1  # the error is found once and told to every node


def test_an_eks_cluster_without_an_endpoint() -> None:
    eks = FakeEks("", status="CREATING")
    clients = Clients(eks=eks)

    found = blast_radius(clients, eks_cluster(), [KUBE_NODES[0]], Reads(3), Clock())
    blast_radius(clients, eks_cluster(), [KUBE_NODES[0]], Reads(3), Clock())

    assert found[KUBE_NODES[0]].unknown == "the EKS cluster has no endpoint (status CREATING)"
    assert len(eks.calls) == 2  # nothing kept: the next message asks again


def test_an_eks_orchestrator_without_a_cluster_arn() -> None:
    clients = Clients()
    found = blast_radius(clients, eks_cluster(eks_arn=None), [KUBE_NODES[0]], Reads(3), Clock())

    assert found[KUBE_NODES[0]].unknown == "DescribeCluster names no EKS cluster (Orchestrator.Eks.ClusterArn)"
    assert clients.asked == []


def test_an_unknown_orchestrator_reads_nothing() -> None:
    clients = Clients()
    found = blast_radius(clients, ClusterSnapshot.minimal("ml-prod"), ["i-1"], Reads(3), Clock())

    assert found == {"i-1": Workload("i-1", unknown="the cluster's orchestrator is unknown (DescribeCluster not read)")}
    assert clients.asked == []


def test_the_endpoint_is_kept_for_endpoint_max_age() -> None:
    eks, clock = FakeEks(), Clock()

    assert endpoint_of(eks, EKS_ARN, clock) == (eks.endpoint, "")
    clock.now += ENDPOINT_MAX_AGE - 1
    endpoint_of(eks, EKS_ARN, clock)
    assert len(eks.calls) == 1
    clock.now += 1
    endpoint_of(eks, EKS_ARN, clock)
    assert len(eks.calls) == 2
    reader.forget_endpoints()
    endpoint_of(eks, EKS_ARN, clock)
    assert len(eks.calls) == 3


def test_a_kept_endpoint_spares_the_next_message_its_describe_cluster(kube: KubeStandin) -> None:
    eks = FakeEks(kube.url)

    for _ in range(2):
        found = blast_radius(Clients(eks=eks), eks_cluster(), [KUBE_NODES[0]], Reads(5), Clock())
        assert found[KUBE_NODES[0]].unknown is None

    assert len(eks.calls) == 1


# -- Slurm ----------------------------------------------------------------------------------------------


def test_slurm_the_controller_group_found_by_its_name() -> None:
    node = "i-0000000000000000a"
    ssm, sagemaker = FakeSsm({"ip-10-1-0-16": "llm"}), FakeSageMaker()
    cluster = slurm_cluster("login-group", "controller-machine", "p5-workers",
                            nodes=((node, "ip-10-1-0-16.us-west-2.compute.internal"),))

    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), cluster, [node], Reads(3), Clock())

    assert sagemaker.listed == [{"ClusterName": "slurm-prod", "InstanceGroupNameContains": "controller-machine",
                                 "MaxResults": 100}]
    [sent] = ssm.sent
    assert sent["Targets"] == [{"Key": "InstanceIds",
                                "Values": [f"sagemaker-cluster:abc123def456_controller-machine-{CONTROLLER}"]}]
    workload = found[node]
    assert workload.node == "ip-10-1-0-16" and workload.unknown is None
    assert [(j.name, j.account) for j in workload.jobs] == [("train (42)", "llm")]
    assert sagemaker.described == []  # the hostname came with the alert's own DescribeClusterNode


def test_slurm_the_controller_group_the_rules_name() -> None:
    node = "i-0000000000000000a"
    sagemaker = FakeSageMaker([
        {"InstanceGroupName": "head", "InstanceId": CONTROLLER, "InstanceStatus": {"Status": "Running"}}],
        hostnames={node: "ip-10-1-0-16"})
    ssm = FakeSsm()

    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), slurm_cluster("head", "controller-machine"), [node],
                         Reads(3, controller_group="head"), Clock())

    assert found[node].unknown is None
    assert sagemaker.listed[0]["InstanceGroupNameContains"] == "head"
    assert ssm.sent[0]["Targets"][0]["Values"] == [f"sagemaker-cluster:abc123def456_head-{CONTROLLER}"]


def test_slurm_without_a_controller_group() -> None:
    clients = Clients(sagemaker=FakeSageMaker(), ssm=FakeSsm())
    found = blast_radius(clients, slurm_cluster("head", "workers"), ["i-1", "i-2"], Reads(3), Clock())

    assert {w.unknown for w in found.values()} == {
        "no controller group: name it in the rules (workload.controller_group)"}
    assert clients.asked == []


@pytest.mark.parametrize("controllers", [
    [],
    [{"InstanceGroupName": "controller-machine", "InstanceId": CONTROLLER, "InstanceStatus": {"Status": "Pending"}}],
    # a group whose name contains the controller group's, running: not the controller group
    [{"InstanceGroupName": "controller-machine-old", "InstanceId": CONTROLLER,
      "InstanceStatus": {"Status": "Running"}}],
], ids=["none", "pending", "another-group"])
def test_slurm_without_a_running_controller(controllers: list[dict[str, Any]]) -> None:
    ssm, sagemaker = FakeSsm(), FakeSageMaker(controllers, hostnames={"i-1": "ip-10-1-0-1"})
    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), slurm_cluster(), ["i-1", "i-2"], Reads(3), Clock())

    assert {w.unknown for w in found.values()} == {"no running controller node in the group controller-machine"}
    assert len(sagemaker.listed) == 1 and ssm.sent == []


def test_slurm_list_cluster_nodes_refused() -> None:
    sagemaker = FakeSageMaker(error=refused("AccessDeniedException", "ListClusterNodes"))
    found = blast_radius(Clients(sagemaker=sagemaker), slurm_cluster(), ["i-1"], Reads(3), Clock())

    assert found["i-1"].unknown == ("AccessDeniedException from sagemaker:ListClusterNodes: the stack grants it for "
                                    "the clusters it is told of (README, Blast radius)")


def test_slurm_the_hostname_from_describe_cluster_node_when_the_snapshot_has_none() -> None:
    ssm, sagemaker = FakeSsm(), FakeSageMaker(hostnames={"i-2": "ip-10-1-0-2.us-west-2.compute.internal"})
    cluster = slurm_cluster(nodes=(("i-1", "ip-10-1-0-1.ec2.internal"), ("i-2", None)))

    found = blast_radius(Clients(sagemaker=sagemaker, ssm=ssm), cluster, ["i-1", "i-2"], Reads(3), Clock())

    assert sagemaker.described == ["i-2"]
    assert sorted(ssm.hosts()) == ["ip-10-1-0-1", "ip-10-1-0-2"]
    assert (found["i-1"].node, found["i-2"].node) == ("ip-10-1-0-1", "ip-10-1-0-2")


def test_slurm_no_hostname_anywhere() -> None:
    ssm = FakeSsm()
    found = blast_radius(Clients(sagemaker=FakeSageMaker(), ssm=ssm), slurm_cluster(), ["i-1"], Reads(3), Clock())

    assert found["i-1"].unknown == "no hostname for i-1 (DescribeClusterNode PrivateDnsHostname)"
    assert ssm.sent == []


def test_slurm_describe_cluster_node_refused_names_that_call() -> None:
    """The words name the call that was refused: DescribeClusterNode, not ListClusterNodes (which answered)."""
    sagemaker = FakeSageMaker(node_error=refused("AccessDeniedException", "DescribeClusterNode"))
    found = blast_radius(Clients(sagemaker=sagemaker, ssm=FakeSsm()), slurm_cluster(), ["i-1"], Reads(3), Clock())

    assert found["i-1"].unknown == ("AccessDeniedException from sagemaker:DescribeClusterNode: the stack grants it "
                                    "for the clusters it is told of (README, Blast radius)")


# -- metrics --------------------------------------------------------------------------------------------


def metrics(output: str) -> dict[tuple[str, str], float]:
    """EMF documents -> {(metric, Orchestrator dimension): value}."""
    found: dict[tuple[str, str], float] = {}
    for line in output.splitlines():
        document = json.loads(line)
        if "_aws" not in document:
            continue
        for definition in document["_aws"]["CloudWatchMetrics"]:
            assert definition["Dimensions"] == [["Orchestrator"]] and definition["Namespace"] == "HyperPodGuard"
            for metric in definition["Metrics"]:
                value = document[metric["Name"]]
                key = (metric["Name"], document["Orchestrator"])
                found[key] = found.get(key, 0) + (sum(value) if isinstance(value, list) else value)
    return found


def test_metrics_count_read_and_unknown_by_orchestrator() -> None:
    nodes = node_ids(3)
    sagemaker = FakeSageMaker(hostnames={nodes[0]: "ip-10-1-0-1", nodes[1]: "ip-10-1-0-2"})  # none for the third

    with lambda_output() as output:
        blast_radius(Clients(sagemaker=sagemaker, ssm=FakeSsm()), slurm_cluster(), nodes, Reads(3), Clock())
        blast_radius(Clients(eks=FakeEks(error=refused("AccessDeniedException", "DescribeCluster"))), eks_cluster(),
                     list(KUBE_NODES), Reads(3), Clock())

    assert metrics(output.getvalue()) == {("WorkloadsRead", "slurm"): 2, ("WorkloadsUnknown", "slurm"): 1,
                                          ("WorkloadsUnknown", "eks"): 2}
