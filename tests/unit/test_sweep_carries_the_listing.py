"""The sweep's listing travels with each cluster it hands to a worker (issue 19): a worker does not list the
clusters again, so the cluster's ImageVersionStatus (ListClusters only) reaches image-hygiene through the
evaluate-cluster message."""

from __future__ import annotations

from datetime import datetime, timezone

from hyperpod_guard.cluster_reader import ClusterSummary
from hyperpod_guard.handlers.sweep import fan_out
from hyperpod_guard.handlers.worker import EvaluateCluster, WorkMessage
from pydantic import TypeAdapter

AT = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


class Queue:
    def __init__(self) -> None:
        self.sent: list[EvaluateCluster] = []

    def send(self, messages: list[EvaluateCluster]) -> None:
        self.sent.extend(messages)


def test_each_message_carries_the_clusters_image_status():
    queue = Queue()
    fan_out(queue, "run-1", AT)([ClusterSummary("ml-prod", image_version_status="EndOfLife"),  # type: ignore[arg-type]
                                 ClusterSummary("gone-but-remembered")])
    assert [(m.cluster, m.image_version_status) for m in queue.sent] == [("ml-prod", "EndOfLife"),
                                                                          ("gone-but-remembered", None)]
    # and back, as the worker reads the SQS body
    body = queue.sent[0].model_dump_json()
    assert TypeAdapter(WorkMessage).validate_json(body) == queue.sent[0]
    # a message sent before the field existed still reads
    old = '{"kind": "evaluate-cluster", "cluster": "c", "run": "r", "at": "2026-11-30T08:00:00Z"}'
    assert TypeAdapter(WorkMessage).validate_json(old).image_version_status is None
