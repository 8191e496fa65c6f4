"""Blast radius, wired into the message (issue 23): what runs on the nodes a cluster's message is about, read
within the rules' `workload.timeout`, never failing, delaying past that, or losing the message.

    blast_radius(clients, snapshot, nodes, reads) -> {instance id: Workload}

EKS: `eks:DescribeCluster` of the cluster's orchestrator (`Orchestrator.Eks.ClusterArn`) for its endpoint and
CA (kept per process: they change only when the cluster is recreated), a bearer token signed locally
(eks_token.py: no STS call), then each node's Kubernetes object and pods (eks.py). HyperPod names a node
`hyperpod-<instance id>` in Kubernetes.

Slurm: the controller's instance (ListClusterNodes of the controller group), each node's Slurm name (the first
label of its PrivateDnsHostname, from the alert's own DescribeClusterNode when it was read), then squeue/sinfo
through SSM Run Command (slurm.py).

The nodes are read in parallel; whatever has not answered when the timeout is up is "workload unknown:
timeout" (its thread ends on its own: each call is bounded by the clients' timeouts, so none lingers). AWS
calls go through clients with short timeouts and one retry (aws_clients.quick_client), not the pipeline's
patient ones: this read is an extra, the message is what matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from ..constants import METRICS_NAMESPACE, Dimension, Metric
from ..fleet import name_of
from ..snapshot import ClusterSnapshot
from . import eks, slurm
from .eks_token import eks_token
from .model import Workload

logger = logging.getLogger(__name__)

#: a message about more nodes than this reads the first ones only (a storm's message is about the cluster)
MAX_NODES = 10
#: how long a process keeps an EKS cluster's endpoint and CA (they change only if the cluster is recreated)
ENDPOINT_MAX_AGE = 3600.0
#: the Kubernetes node name HyperPod gives an instance of an EKS-orchestrated cluster
EKS_NODE_PREFIX = "hyperpod-"

#: a client of an AWS service in the cluster's account and region, with short timeouts
Clients = Callable[[str], Any]

_endpoints: dict[str, tuple[float, str, str]] = {}  # EKS cluster ARN -> (read at, endpoint, CA data)
_endpoints_lock = threading.Lock()


@dataclass(frozen=True)
class Reads:
    """What the rules say of one cluster's workload reads (rules.WorkloadReads, as plain values)."""

    timeout: float
    controller_group: str | None = None


def blast_radius(clients: Clients, snapshot: ClusterSnapshot, nodes: Sequence[str], reads: Reads,
                 clock: Callable[[], float] = time.monotonic) -> dict[str, Workload]:
    """The workload of each of `nodes` (instance ids), by instance id. Never raises; returns within
    `reads.timeout` (and a moment to collect the answers)."""
    wanted = list(dict.fromkeys(nodes))
    if not wanted:
        return {}
    deadline = clock() + reads.timeout
    found = {node: Workload(node, unknown=f"not read: a message reads the workload of {MAX_NODES} nodes at most")
             for node in wanted[MAX_NODES:]}
    reader = _reader(clients, snapshot, reads, deadline, clock)
    pool = ThreadPoolExecutor(max_workers=min(len(wanted), MAX_NODES), thread_name_prefix="workload")
    try:
        futures = {node: pool.submit(_safely, reader, node) for node in wanted[:MAX_NODES]}
        wait(futures.values(), timeout=max(0.0, deadline - clock()))
        for node, future in futures.items():
            found[node] = (future.result() if future.done()
                           else Workload(node, unknown=f"timeout: no answer within {reads.timeout:g}s"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    _count(snapshot, found)
    return found


def _safely(reader: Callable[[str], Workload], node: str) -> Workload:
    try:
        return reader(node)
    except Exception as error:  # the message goes out whatever went wrong here
        logger.warning("workload of %s not read", node, exc_info=True)
        return Workload(node, unknown=f"{type(error).__name__}: {str(error)[:200]}")


def _reader(clients: Clients, snapshot: ClusterSnapshot, reads: Reads, deadline: float,
            clock: Callable[[], float]) -> Callable[[str], Workload]:
    """Reads one node's workload; what the nodes share (the EKS endpoint, the Slurm controller) is found once."""
    if snapshot.orchestration == "eks":
        return _EksNodes(clients, snapshot, reads, deadline, clock).read
    if snapshot.orchestration == "slurm":
        return _SlurmNodes(clients, snapshot, reads, deadline, clock).read
    return lambda node: Workload(node, unknown="the cluster's orchestrator is unknown (DescribeCluster not read)")


class _Once:
    """A value found by the first thread that asks; the others wait for it (or for its error)."""

    def __init__(self, find: Callable[[], Any]) -> None:
        self._find, self._lock = find, threading.Lock()
        self._value: Any = None
        self._error: Exception | None = None
        self._done = False

    def get(self) -> Any:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._find()
                except Exception as error:  # noqa: BLE001 (every node reports it)
                    self._error = error
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value


class _EksNodes:
    def __init__(self, clients: Clients, snapshot: ClusterSnapshot, reads: Reads, deadline: float,
                 clock: Callable[[], float]) -> None:
        self.clients, self.reads, self.deadline, self.clock = clients, reads, deadline, clock
        config = snapshot.orchestrator.eks if snapshot.orchestrator is not None else None
        self.eks_arn = str((config or {}).get("ClusterArn") or "")
        self.access = _Once(self._access)

    def _access(self) -> tuple[str, str, str]:
        """(endpoint, CA data, token) of the EKS cluster."""
        name = self.eks_arn.rpartition("/")[2]
        if not self.eks_arn.startswith("arn:") or not name:
            raise eks.KubeUnavailable("DescribeCluster names no EKS cluster (Orchestrator.Eks.ClusterArn)")
        endpoint, ca_data = endpoint_of(self.clients("eks"), self.eks_arn, self.clock)
        return endpoint, ca_data, eks_token(self.clients("sts"), name)

    def read(self, node: str) -> Workload:
        name = EKS_NODE_PREFIX + node
        try:
            endpoint, ca_data, token = self.access.get()
            left = self.deadline - self.clock()
            if left <= 0:
                raise eks.KubeUnavailable("timeout: no time left after reading the EKS cluster")
            api = eks.KubeApi(endpoint, token, ca_data=ca_data, timeout=left)
        except eks.KubeUnavailable as unavailable:
            return Workload(name, unknown=unavailable.why)
        except Exception as error:  # noqa: BLE001 (eks:DescribeCluster refused, throttled, ...)
            return Workload(name, unknown=_aws_why(error, "eks:DescribeCluster"))
        workload = eks.workload_of(api, name)
        if workload.unknown is not None and workload.unknown.startswith("timeout"):
            # the client's budget is what was left of ours: say the rules' timeout
            return replace(workload, unknown=f"timeout: no answer within {self.reads.timeout:g}s")
        return workload


def endpoint_of(eks_client: Any, eks_arn: str, clock: Callable[[], float] = time.monotonic) -> tuple[str, str]:
    """The EKS cluster's API endpoint and CA data (eks:DescribeCluster), kept ENDPOINT_MAX_AGE per process."""
    with _endpoints_lock:
        known = _endpoints.get(eks_arn)
    if known is not None and clock() - known[0] < ENDPOINT_MAX_AGE:
        return known[1], known[2]
    cluster = eks_client.describe_cluster(name=eks_arn.rpartition("/")[2])["cluster"]
    endpoint, ca_data = cluster.get("endpoint") or "", (cluster.get("certificateAuthority") or {}).get("data") or ""
    if not endpoint:
        raise eks.KubeUnavailable(f"the EKS cluster has no endpoint (status {cluster.get('status')})")
    with _endpoints_lock:
        _endpoints[eks_arn] = (clock(), endpoint, ca_data)
    return endpoint, ca_data


def forget_endpoints() -> None:
    """Tests: forget the EKS endpoints this process read."""
    with _endpoints_lock:
        _endpoints.clear()


class _SlurmNodes:
    def __init__(self, clients: Clients, snapshot: ClusterSnapshot, reads: Reads, deadline: float,
                 clock: Callable[[], float]) -> None:
        self.clients, self.snapshot, self.reads, self.deadline, self.clock = clients, snapshot, reads, deadline, clock
        self.controller = _Once(self._controller)

    def _controller(self) -> tuple[str, str]:
        """(controller group, its running instance id)."""
        group = self.reads.controller_group or next(
            (g.name for g in self.snapshot.instance_groups if g.name and "controller" in g.name.lower()), None)
        if not group:
            raise slurm.SlurmUnreadable("no controller group: name it in the rules (workload.controller_group)")
        sagemaker = self.clients("sagemaker")
        answer = sagemaker.list_cluster_nodes(ClusterName=name_of(self.snapshot.name),
                                              InstanceGroupNameContains=group, MaxResults=100)
        for summary in answer.get("ClusterNodeSummaries") or ():
            if summary.get("InstanceGroupName") == group and (summary.get("InstanceStatus") or {}).get(
                    "Status") == "Running":
                return group, str(summary["InstanceId"])
        raise slurm.SlurmUnreadable(f"no running controller node in the group {group}")

    def _host(self, node: str) -> str:
        known = self.snapshot.node(node)
        hostname = known.private_dns_hostname if known is not None else None
        if not hostname:
            details = self.clients("sagemaker").describe_cluster_node(
                ClusterName=name_of(self.snapshot.name), NodeId=node)["NodeDetails"]
            hostname = details.get("PrivateDnsHostname")
        if not hostname:
            raise slurm.SlurmUnreadable(f"no hostname for {node} (DescribeClusterNode PrivateDnsHostname)")
        return str(hostname).split(".", 1)[0]

    def read(self, node: str) -> Workload:
        cluster_id = (self.snapshot.arn or "").rpartition("/")[2]
        try:
            group, instance = self.controller.get()
        except slurm.SlurmUnreadable as unreadable:
            return Workload(node, unknown=str(unreadable))
        except Exception as error:  # noqa: BLE001 (ListClusterNodes refused)
            return Workload(node, unknown=_aws_why(error, "sagemaker:ListClusterNodes"))
        try:
            host = self._host(node)
        except slurm.SlurmUnreadable as unreadable:
            return Workload(node, unknown=str(unreadable))
        except Exception as error:  # noqa: BLE001 (DescribeClusterNode refused)
            return Workload(node, unknown=_aws_why(error, "sagemaker:DescribeClusterNode"))
        return slurm.workload_of(self.clients("ssm"), cluster_id=cluster_id, controller_group=group,
                                 controller_instance=instance, host=host,
                                 timeout=max(0.0, self.deadline - self.clock()), clock=self.clock)


def _aws_why(error: Exception, call: str) -> str:
    """A failed AWS call in words: 'AccessDeniedException from eks:DescribeCluster: grant it (README)'."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    if code and "AccessDenied" in code:
        return f"{code} from {call}: the stack grants it for the clusters it is told of (README, Blast radius)"
    return f"{code or type(error).__name__}: {str(error)[:200]}"


def _count(snapshot: ClusterSnapshot, found: Mapping[str, Workload]) -> None:
    """EMF metrics WorkloadsRead / WorkloadsUnknown by Orchestrator; each unknown one logged with why."""
    unknown = [w for w in found.values() if w.unknown is not None]
    for workload in unknown:
        logger.warning("workload unknown for %s of %s: %s", workload.node, snapshot.name, workload.unknown,
                       extra={"cluster": snapshot.name, "node": workload.node})
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    if len(found) > len(unknown):
        with single_metric(name=Metric.WORKLOADS_READ, unit=MetricUnit.Count, value=len(found) - len(unknown),
                           namespace=METRICS_NAMESPACE.read()) as metric:
            metric.add_dimension(Dimension.ORCHESTRATOR, snapshot.orchestration)
    if unknown:
        with single_metric(name=Metric.WORKLOADS_UNKNOWN, unit=MetricUnit.Count, value=len(unknown),
                           namespace=METRICS_NAMESPACE.read()) as metric:
            metric.add_dimension(Dimension.ORCHESTRATOR, snapshot.orchestration)
