"""Reading HyperPod state: DescribeCluster, DescribeClusterNode, ListClusterNodes, ListClusters.

Events are hints; this is the truth. A cluster or node that no longer exists is an answer
(None), not an error; every other AWS error propagates so that Lambda retries.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .snapshot import ClusterSnapshot, Node


def is_not_found(exc: ClientError) -> bool:
    """AWS says ResourceNotFound; moto answers a ValidationException "Could not find ..."."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    return code in ("ResourceNotFound", "ResourceNotFoundException") or (
        code in ("ValidationException", "ValidationError") and "could not find" in message.lower()
    )


class ClusterReader:
    def __init__(self, sagemaker: Any):
        self.sagemaker = sagemaker

    def describe(self, cluster: str) -> ClusterSnapshot | None:
        try:
            response = self.sagemaker.describe_cluster(ClusterName=cluster)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        response.pop("ResponseMetadata", None)
        return ClusterSnapshot.from_describe_cluster(response)

    def describe_node(self, cluster: str, instance_id: str) -> Node | None:
        try:
            details = self.sagemaker.describe_cluster_node(ClusterName=cluster, NodeId=instance_id)["NodeDetails"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        node = Node.model_validate(details)
        return None if node.status == "NotFound" else node

    def list_nodes(self, cluster: str) -> list[Node] | None:
        """Every node of the cluster (summaries: group, id, status), or None if the cluster is gone."""
        nodes: list[Node] = []
        try:
            for page in self.sagemaker.get_paginator("list_cluster_nodes").paginate(ClusterName=cluster):
                nodes.extend(Node.model_validate(summary) for summary in page.get("ClusterNodeSummaries", []))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return nodes

    def list_clusters(self) -> list[str]:
        names: list[str] = []
        for page in self.sagemaker.get_paginator("list_clusters").paginate():
            names.extend(summary["ClusterName"] for summary in page.get("ClusterSummaries", []))
        return names
