"""degraded-group with the cluster's operations read (ListClusterOperations / DescribeClusterOperation):
a below-target shortfall waits while a young Scaling operation for the group is InProgress, fires once the
operation is older than `scaling_grace` (the operation in its evidence), and a Superseded scale-up is noted
on the capacity finding. Operation documents are validated against botocore's
DescribeClusterOperationResponse shape with the stand-in's validator (tests/botocore_model.valid)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.events import parse_event
from hyperpod_guard.findings import Finding
from hyperpod_guard.policies import degraded_group
from hyperpod_guard.policies.degraded_group import DegradedGroupSettings
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import valid
from tests.builders import cluster_event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CLUSTER_ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
OP1, OP2 = "1b3d5f7a-9c2e-4d4f-b6a8-0c2e4a6b8d1f", "2c4e6a8b-0d3f-4e5a-87b9-1d3f5b7c9e2a"
H, M = timedelta(hours=1), timedelta(minutes=1)


def operation(op_id: str = OP1, *, type_: str = "Scaling", status: str = "InProgress", age: timedelta | None = 10 * M,
              groups: tuple[tuple[str, str], ...] | None = (("gpu", "InProgress"),)) -> dict[str, Any]:
    out: dict[str, Any] = {"OperationId": op_id, "ClusterArn": CLUSTER_ARN, "Type": type_, "Status": status}
    if age is not None:
        out["CreationTime"] = NOW - age
    if groups:
        out["ScalingDetails"] = [{"InstanceGroupName": g, "Status": s, "Original": {"TargetCount": 5},
                                  "Desired": {"TargetCount": 10}} for g, s in groups]
    return valid(out, "DescribeClusterOperationResponse")


def snapshot(operations: list[dict[str, Any]] | None, *, scaling: bool = True, current: int = 5,
             minimum: int | None = None) -> ClusterSnapshot:
    group: dict[str, Any] = {"InstanceGroupName": "gpu", "Status": "InService", "CurrentCount": current,
                             "TargetCount": 10}
    if minimum is not None:
        group["MinCount"] = minimum
    if scaling:
        group["ActiveOperations"] = {"Scaling": 1}
    document: dict[str, Any] = {"ClusterName": "c", "ClusterArn": CLUSTER_ARN, "ClusterStatus": "InService",
                                "InstanceGroups": [group]}
    if operations is not None:
        document["Operations"] = operations
    return ClusterSnapshot.model_validate(document)


def evaluate(snap: ClusterSnapshot, settings: DegradedGroupSettings | None = None, event: Any = None) -> list[Finding]:
    return degraded_group.evaluate(snap, event, settings or DegradedGroupSettings(), NOW)


# Each row: snapshot, settings, expected [(condition, operation ids in the evidence)].
@pytest.mark.parametrize("snap, settings, want", [
    pytest.param(snapshot(None), None, [], id="not-read-scaling-waits-as-before"),
    pytest.param(snapshot(None, scaling=False), None, [("below-target", None)], id="not-read-not-scaling-fires"),
    pytest.param(snapshot([operation(age=10 * M)]), None, [], id="young-scaling-waits"),
    pytest.param(snapshot([operation(age=59 * M)], scaling=False), None, [],
                 id="young-scaling-named-by-details-waits-without-active-operations"),
    pytest.param(snapshot([operation(age=2 * H)]), None, [("below-target", [OP1])], id="old-scaling-fires-with-it"),
    pytest.param(snapshot([operation(age=2 * H)]), DegradedGroupSettings(scaling_grace=3 * H), [],
                 id="scaling-grace-setting"),
    pytest.param(snapshot([operation(age=10 * M, groups=(("gpu", "Done"), ("cpu", "InProgress")))], scaling=False),
                 None, [("below-target", [OP1])], id="group-part-done-fires-with-it"),
    pytest.param(snapshot([operation(age=10 * M, groups=(("cpu", "InProgress"),))], scaling=False), None,
                 [("below-target", None)], id="other-group-scaling-fires"),
    pytest.param(snapshot([operation(age=None)]), None, [], id="no-start-waits-while-scaling"),
    pytest.param(snapshot([operation(age=10 * M, groups=None)], scaling=False), None, [("below-target", [OP1])],
                 id="summary-without-details-needs-active-operations"),
    pytest.param(snapshot([operation(age=10 * M, groups=None)]), None, [], id="summary-while-scaling-waits"),
    pytest.param(snapshot([operation(type_="DeepHealthCheck", age=10 * M, groups=None)], scaling=False), None,
                 [("below-target", None)], id="deep-health-check-is-no-scaling"),
    pytest.param(snapshot([operation(status="Superseded", age=3 * H, groups=(("gpu", "Superseded"),))],
                          scaling=False), None, [("below-target", [OP1])], id="superseded-noted-on-the-shortfall"),
    pytest.param(snapshot([operation(OP1, status="Superseded", age=3 * H, groups=(("gpu", "Superseded"),)),
                           operation(OP2, age=2 * H)]), None, [("below-target", [OP2, OP1])],
                 id="old-scaling-after-superseded-both-noted"),
    pytest.param(snapshot([operation(age=10 * M)], current=1, minimum=2), None, [("below-min", [OP1])],
                 id="below-min-fires-while-scaling-as-before"),
])
def test_shortfall_and_operations(snap, settings, want):
    got = evaluate(snap, settings)
    assert [(f.condition, [o["operation_id"] for o in f.details["operations"]] if "operations" in f.details else None)
            for f in got] == want


def test_the_operation_evidence():
    finding, = evaluate(snapshot([operation(age=2 * H)]))
    assert finding.details["operations"] == [{
        "operation_id": OP1, "type": "Scaling", "status": "InProgress", "since": "2026-06-01T10:00:00Z", "age": "2h",
        "scaling_details": [{"instance_group": "gpu", "status": "InProgress", "original": {"TargetCount": 5},
                             "desired": {"TargetCount": 10}}],
    }]


def test_a_cluster_events_operation_id_is_in_the_evidence():
    event = parse_event(cluster_event({
        "EventId": "83ea0bb5-be77-45e8-a458-0a87f778a205", "ClusterArn": CLUSTER_ARN, "ClusterName": "c",
        "InstanceGroupName": "gpu", "ResourceType": "InstanceGroup", "EventTime": "2026-06-01T11:59:00Z",
        "EventLevel": "Error", "Description": "Instance group gpu scaling failed", "OperationId": OP1,
        "EventDetails": {"EventMetadata": {"InstanceGroup": {"FailureMessage": "no capacity"}}},
    }, arn=CLUSTER_ARN))
    finding, = evaluate(snapshot(None, scaling=False), event=event)
    assert finding.details["cluster_event"]["operation_id"] == OP1
