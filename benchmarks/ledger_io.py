"""`calls_per_event` (issue 17, Ledger I/O): the AWS calls one evaluator event makes, by service and
operation, for each kind of event, on a warm container against moto in server mode (as the demo).

Kinds:
- `duplicate_cached`: a State Change event repeating a condition already notified, inside the rules
  (RULES_MAX_AGE) and silences (SILENCES_MAX_AGE) caches: no SSM call, no silences Query;
- `duplicate_uncached`: the same, with both caches expired (the runtime rebuilt with max age 0);
- `notify_1`: a State Change event that fires and notifies one alert (degraded-group, past its grace);
- `notify_many`: one that notifies every finding of the 256-group synthetic cluster
  (bench.synthetic_describe_cluster, served by the moto HyperPod stand-in), past every grace;
- `node_health`: a Node Health Event for one unhealthy node (the unhealthy-node-auto-replace scenario).

For each: `calls` (service:Operation -> count), `notified` (alerts in the messages SNS accepted),
`dynamodb_writes` and `confirm_writes` (the DynamoDB writes after the SNS Publish: confirming the
notification). Target: confirm_writes <= ceil(N/100) + 1 for N notified alerts (before issue 17: N
sequential UpdateItems). The commit before the Publish is ceil((N + report marks)/100) transactions more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from datetime import datetime, timedelta
from math import ceil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _counted(calls: list[str], run: Any) -> None:
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation: str, params: dict[str, Any]) -> Any:  # every client: ours and Powertools'
        calls.append(f"{self.meta.service_model.service_name}:{operation}")
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run()
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def _figure(calls: list[str], notified: int) -> dict[str, Any]:
    by_call: dict[str, int] = {}
    for call in calls:
        by_call[call] = by_call.get(call, 0) + 1
    writes = [i for i, call in enumerate(calls) if call.startswith("dynamodb:") and call.split(":")[1] in WRITES]
    published = [i for i, call in enumerate(calls) if call == "sns:Publish"]
    after = [i for i in writes if published and i > published[-1]]
    return {"calls": dict(sorted(by_call.items())), "notified": notified, "dynamodb_writes": len(writes),
            "confirm_writes": len(after)}


def _put_feature_cluster(name: str, now: datetime) -> None:
    """A cluster whose group scales on a training plan: DescribeCluster from the moto backend, its operation
    and plan from the SageMaker stand-in (validated against botocore's model)."""
    from hyperpod_guard.local import sagemaker_standin
    from hyperpod_guard.local.hyperpod_state import put_cluster

    plan = "arn:aws:sagemaker:us-west-2:123456789012:training-plan/p5-io"
    base = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())["detail"]
    group = dict(base["InstanceGroups"][0], ActiveOperations={"Scaling": 1}, TrainingPlanArn=plan)
    put_cluster(dict(base, ClusterName=name, InstanceGroups=[group]), region="us-west-2")
    sagemaker_standin.put_operations(name, [{"OperationId": "3f1e0c9a-1b2d-4c3e-8f4a-5b6c7d8e9f01", "Type": "Scaling",
                                             "Status": "InProgress", "CreationTime": now - timedelta(minutes=10)}])
    sagemaker_standin.put_training_plans([{"TrainingPlanArn": plan, "TrainingPlanName": "p5-io", "Status": "Active",
                                           "EndTime": now + timedelta(days=10)}])


def calls_per_event_figures() -> dict[str, object]:
    from bench import _Stage, _state_change, synthetic_describe_cluster  # bench imports this module: not at the top

    with _Stage() as stage:
        from hyperpod_guard import aws_clients, clock
        from hyperpod_guard.handlers import evaluator
        from hyperpod_guard.local.hyperpod_state import put_cluster
        from hyperpod_guard.local.lambda_context import LambdaContext
        from hyperpod_guard.local.provision import delivered

        def handle(event: dict[str, Any]) -> None:
            evaluator.handler(event, LambdaContext())

        def notified_items() -> int:
            return sum(len(m["message"]["items"]) for m in delivered(stage.resources, max_batches=100))

        figures: dict[str, Any] = {}
        start = clock.now()
        base = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())["detail"]
        put_cluster(dict(base, ClusterName="io-1"), region="us-west-2")
        big = synthetic_describe_cluster()
        put_cluster(dict(big, ClusterName="io-big"), region="us-west-2")
        node_event = json.loads((REPO / "events/unhealthy-node-auto-replace/event.json").read_text())
        node_snapshot = json.loads((REPO / "events/unhealthy-node-auto-replace/snapshot.json").read_text())
        node_event = json.loads(json.dumps(node_event).replace(node_snapshot["ClusterName"], "io-node"))
        node_snapshot = json.loads(json.dumps(node_snapshot).replace(node_snapshot["ClusterName"], "io-node"))
        put_cluster(node_snapshot, region="us-west-2", nodes=node_snapshot.get("Nodes"))
        _put_feature_cluster("io-plan", start)  # issue 19: a group scaling on a training plan

        with contextlib.redirect_stdout(io.StringIO()):
            handle(_state_change("io-1", "io-warm"))  # cold start; degraded-group pending (5m grace)
            handle(_state_change("io-big", "io-big-warm"))  # the big cluster's pending alerts
        delivered(stage.resources, max_batches=100)
        later = start + timedelta(hours=1)  # past every grace: they fire
        clock.use(lambda: later)
        try:
            for kind, cluster in (("notify_1", "io-1"), ("notify_many", "io-big")):
                calls: list[str] = []
                _counted(calls, lambda c=cluster: handle(_state_change(c, f"io-{c}-fire")))
                figures[kind] = _figure(calls, notified_items())
            with contextlib.redirect_stdout(io.StringIO()):  # the big event outlasts the 30 s silences cache
                handle(_state_change("io-1", "io-dup-prime"))
            calls = []
            _counted(calls, lambda: handle(_state_change("io-1", "io-dup-cached")))
            figures["duplicate_cached"] = _figure(calls, notified_items())
            calls = []
            node = copy.deepcopy(node_event)
            node["time"] = later.strftime("%Y-%m-%dT%H:%M:%SZ")
            _counted(calls, lambda: handle(node))
            figures["node_health"] = _figure(calls, notified_items())
            # the HyperPod features it has are read too (issue 19): its operations while a group scales, its
            # training plan (cached per container after the first event); a cluster without them: none
            with contextlib.redirect_stdout(io.StringIO()):
                handle(_state_change("io-plan", "io-plan-prime"))
            delivered(stage.resources, max_batches=100)  # the prime's own message
            calls = []
            _counted(calls, lambda: handle(_state_change("io-plan", "io-plan-warm")))
            figures["features_scaling_on_plan"] = _figure(calls, notified_items())
            # both caches expired: the runtime rebuilt with max age 0 (each event reads rules and silences)
            os.environ.update({"RULES_MAX_AGE": "0", "SILENCES_MAX_AGE": "0"})
            aws_clients.reset()
            with contextlib.redirect_stdout(io.StringIO()):
                handle(_state_change("io-1", "io-dup-rebuild"))  # the clients' and runtime's first use
            calls = []
            _counted(calls, lambda: handle(_state_change("io-1", "io-dup-uncached")))
            figures["duplicate_uncached"] = _figure(calls, notified_items())
        finally:
            clock.use(None)
            for name in ("RULES_MAX_AGE", "SILENCES_MAX_AGE"):
                os.environ.pop(name, None)
    return {"calls_per_event": figures}


def _confirm_writes_ok(results: dict[str, Any]) -> bool:
    figures = results["calls_per_event"]
    notifying = [f for f in figures.values() if f["notified"]]
    return bool(notifying) and all(f["confirm_writes"] <= ceil(f["notified"] / 100) + 1 for f in notifying)


TARGETS = {
    "calls_per_event": ("DynamoDB writes confirming N notified alerts <= ceil(N/100)+1", _confirm_writes_ok),
}


if __name__ == "__main__":
    print(json.dumps(calls_per_event_figures(), indent=2))
