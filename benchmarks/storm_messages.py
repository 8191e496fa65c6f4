"""`storm_messages` (issue 17, grouping): 500 distinct unhealthy nodes of one cluster within 2 minutes ->
how many messages SNS carries, and whether every node is named in them. Target: <= 3 messages.

The whole path as deployed, on moto in server mode: each Node Health event through the evaluator's
Lambda handler (grouping on with the default rules: group_wait 30s, group_interval 5m; WORK_QUEUE_URL
set), and each flush through the worker's handler at the time it is due (the cluster's GROUP item says
when: the work queue holds a delayed message back in real seconds, the bench moves a clock of its own).
Counted: the SNS messages the topic's subscription received (parts of a split message each count), the
distinct nodes their items name, the flushes delivered. Without grouping the same storm is 500 messages.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NODES = 500
CLUSTER = "storm-500"


def storm_messages_figures(nodes: int = NODES) -> dict[str, object]:
    import os

    from bench import _Stage  # bench imports this module: not at the top

    with _Stage() as stage:
        from hyperpod_guard import aws_clients, clock
        from hyperpod_guard.constants import WORK_QUEUE_URL
        from hyperpod_guard.grouping import FlushGroup, GroupStore
        from hyperpod_guard.local.hyperpod_state import put_cluster
        from hyperpod_guard.local.lambda_context import LambdaContext
        from hyperpod_guard.local.provision import delivered

        sqs = aws_clients.client("sqs")
        work = sqs.create_queue(QueueName="hyperpod-guard-work")["QueueUrl"]
        os.environ[WORK_QUEUE_URL.name] = work
        aws_clients.reset()
        from hyperpod_guard.handlers import evaluator, worker

        event = json.loads((REPO / "events/unhealthy-node-no-repair/event.json").read_text())
        snapshot = json.loads((REPO / "events/unhealthy-node-no-repair/snapshot.json").read_text())
        snapshot, event = (json.loads(json.dumps(doc).replace(snapshot["ClusterName"], CLUSTER))
                           for doc in (snapshot, event))
        template = snapshot["Nodes"][0]
        ids = [f"i-0{index:016x}" for index in range(nodes)]
        put_cluster(snapshot, region="us-west-2",
                    nodes=[{**template, "InstanceId": node, "KubernetesConfig": {}} for node in ids])
        groups = GroupStore(stage.resources.table_name, aws_clients.client("dynamodb"))
        start = clock.now()
        now = start
        clock.use(lambda: now)
        flushes = 0

        def flush_due(until: datetime) -> None:
            nonlocal now, flushes
            while (state := groups.get(CLUSTER)).flush_at is not None and state.flush_id and state.flush_at <= until:
                now = max(now, state.flush_at)
                body = FlushGroup(cluster=CLUSTER, flush_id=state.flush_id).model_dump_json()
                record = {"messageId": f"flush-{flushes}", "receiptHandle": "bench", "body": body, "attributes": {},
                          "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:hyperpod-guard-work",
                          "awsRegion": "us-west-2"}
                worker.handler({"Records": [record]}, LambdaContext(function_name="hyperpod-guard-worker"))
                flushes += 1

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                for index, node in enumerate(ids):
                    at = start + timedelta(seconds=120 * index / nodes)
                    flush_due(at)
                    now = at
                    raw: dict[str, Any] = copy.deepcopy(event)
                    raw["id"], raw["time"] = f"storm-{index}", at.strftime("%Y-%m-%dT%H:%M:%SZ")
                    raw["detail"]["InstanceId"] = node
                    evaluator.handler(raw, LambdaContext())
                flush_due(start + timedelta(minutes=30))
        finally:
            clock.use(None)
            os.environ.pop(WORK_QUEUE_URL.name, None)
        messages = [m["message"] for m in delivered(stage.resources, max_batches=100)]
        named = {item["finding"].get("node") for m in messages for item in m["items"]}
    return {"storm_messages": len(messages), "storm_nodes": nodes, "storm_nodes_named": len(named & set(ids)),
            "storm_flushes": flushes}


TARGETS = {
    "storm_messages": ("<= 3 messages for 500 distinct unhealthy nodes, every node named",
                       lambda r: r["storm_messages"] <= 3 and r["storm_nodes_named"] == r["storm_nodes"]),
}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    print(json.dumps(storm_messages_figures(), indent=2))
