"""HyperPod clusters on moto, with the fields moto leaves out.

moto implements DescribeCluster/ListClusters/DescribeClusterNode/ListClusterNodes but
returns no group Status, KubernetesConfig, SoftwareUpdateStatus, Orchestrator or
NodeRecovery (see shared/reference/hyperpod-api.md §3). Its server runs in this process,
so we put cluster objects of our own into moto's SageMaker backend: they answer
`describe()` with a full DescribeCluster document (e.g. a scenario's snapshot.json), and
moto's own request handling and botocore's response parsing do the rest. The code under
test still reaches them only through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from ..timeutil import parse_timestamp

ACCOUNT = "123456789012"  # moto's default account
_TIMESTAMP_KEYS = ("CreationTime", "LaunchTime", "LastSoftwareUpdateTime")


def _backend(account: str, region: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[account][region]


def _with_datetimes(value: Any) -> Any:
    """ISO strings -> datetime for timestamp members (moto's serializer wants datetimes)."""
    if isinstance(value, dict):
        return {k: (parse_timestamp(v) if k in _TIMESTAMP_KEYS and v is not None else _with_datetimes(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_with_datetimes(v) for v in value]
    return value


class InjectedNode:
    def __init__(self, details: dict[str, Any], launched: datetime):
        self.details = _with_datetimes(details)
        self.instance_id = details["InstanceId"]
        self.instance_group_name = details.get("InstanceGroupName", "")
        # a node without a LaunchTime of its own was launched with its cluster: never "after" a report
        # of a simulated clock (a launch time of now would say every node was replaced since)
        self.launch_time = self.details.setdefault("LaunchTime", launched)

    def describe(self) -> dict[str, Any]:
        return copy.deepcopy(self.details)

    def summary(self) -> dict[str, Any]:
        keys = ("InstanceGroupName", "InstanceId", "InstanceType", "LaunchTime", "InstanceStatus")
        summary = {k: copy.deepcopy(self.details[k]) for k in keys if k in self.details}
        summary.setdefault("LaunchTime", self.launch_time)
        summary.setdefault("InstanceStatus", {"Status": "Running"})
        summary.setdefault("InstanceType", "ml.p5.48xlarge")
        return summary


class InjectedCluster:
    """Quacks like moto's Cluster for the read operations."""

    def __init__(self, snapshot: dict[str, Any], account: str, region: str):
        self.cluster_name = snapshot["ClusterName"]
        self.arn = f"arn:aws:sagemaker:{region}:{account}:cluster/{self.cluster_name}"
        self.snapshot = _with_datetimes({"ClusterArn": self.arn, **snapshot})
        self.creation_time = self.snapshot.get("CreationTime") or datetime.now(UTC)
        self.snapshot.setdefault("CreationTime", self.creation_time)
        self.status = self.snapshot.get("ClusterStatus", "InService")
        self.nodes: dict[str, InjectedNode] = {}
        self.tags: list[dict[str, str]] = []

    def describe(self) -> dict[str, Any]:
        return copy.deepcopy(self.snapshot)

    def summary(self) -> dict[str, Any]:
        return {"ClusterArn": self.arn, "ClusterName": self.cluster_name, "CreationTime": self.creation_time,
                "ClusterStatus": self.snapshot.get("ClusterStatus", "InService")}


def put_cluster(snapshot: dict[str, Any], *, region: str, nodes: list[dict[str, Any]] | None = None,
                account: str = ACCOUNT) -> InjectedCluster:
    """Make `snapshot` (a DescribeCluster response) what moto answers for its cluster from now on."""
    snapshot = {k: v for k, v in snapshot.items() if k not in ("Nodes", "ResponseMetadata")}
    cluster = InjectedCluster(snapshot, account, region)
    for details in nodes or []:
        cluster.nodes[details["InstanceId"]] = InjectedNode(details, cluster.creation_time)
    _backend(account, region).clusters[cluster.cluster_name] = cluster
    return cluster


def delete_cluster(name: str, *, region: str, account: str = ACCOUNT) -> None:
    _backend(account, region).clusters.pop(name, None)
