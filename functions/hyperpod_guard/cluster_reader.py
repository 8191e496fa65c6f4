"""Reading HyperPod state: DescribeCluster, DescribeClusterNode, ListClusterNodes, ListClusters,
and the cluster's tags (ListTags).

Events are hints; this is the truth. A cluster or node that no longer exists is an answer
(None), not an error; every other AWS error propagates so that Lambda retries. Tags are the
exception: they only select rules, so a failure to read them must not stop an evaluation
(TagCache raises TagsUnavailable and the caller evaluates the cluster as untagged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .constants import TAGS_MAX_AGE
from .errors import HyperPodGuardError
from .snapshot import ClusterSnapshot, Node

DEFAULT_TAGS_MAX_AGE = 300.0


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

    def list_tags(self, arn: str) -> dict[str, str]:
        """The cluster's tags, {key: value}, from ListTags on its ARN (every page)."""
        tags: dict[str, str] = {}
        for page in self.sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
            tags.update((tag["Key"], tag.get("Value", "")) for tag in page.get("Tags", []))
        return tags


class TagsUnavailable(HyperPodGuardError):
    """ListTags failed (AccessDenied, throttling, an endpoint down): the cluster's tags are unknown."""


class TagCache:
    """Cluster tags by ARN, kept `max_age` seconds in the container: tags change rarely, and
    the sweep would otherwise call ListTags for every cluster every few minutes. A failed
    read is not kept, so the next evaluation tries again."""

    def __init__(self, reader: ClusterReader, max_age: float = DEFAULT_TAGS_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()  # the sweep evaluates clusters on several threads

    @classmethod
    def from_env(cls, reader: ClusterReader) -> TagCache:
        """TAGS_MAX_AGE: seconds to keep a cluster's tags (default 300)."""
        return cls(reader, TAGS_MAX_AGE.read())

    def get(self, arn: str) -> dict[str, str]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(arn)
        if entry and now - entry[0] < self.max_age:
            return dict(entry[1])
        try:
            tags = self.reader.list_tags(arn)
        except (ClientError, BotoCoreError) as exc:
            raise TagsUnavailable(f"ListTags on {arn} failed: {' '.join(str(exc).split())}") from exc
        with self._lock:
            self._entries[arn] = (now, tags)
        return dict(tags)
