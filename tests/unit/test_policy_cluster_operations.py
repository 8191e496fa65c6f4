"""cluster-operations: one row per case of operation type, status and age.

Every operation document here (and the DescribeCluster part of the snapshot) is first validated against
botocore's output shape (DescribeClusterOperationResponse, a superset of ClusterOperationSummary) with the
stand-in's validator (tests/botocore_model.py: ParamValidator, enums, max lengths, patterns): the snapshot
holds what the API can answer, and the rows with unknown values are the only ones that break an enum, on
purpose (they name those values: NEW_VALUES).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.findings import Finding
from hyperpod_guard.policies import cluster_operations
from hyperpod_guard.policies.cluster_operations import ClusterOperationsSettings, operation_context
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import NewValue, members, model_errors, valid
from tests.conftest import REPO

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CLUSTER_ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
OP1, OP2, OP3 = ("1b3d5f7a-9c2e-4d4f-b6a8-0c2e4a6b8d1f", "2c4e6a8b-0d3f-4e5a-87b9-1d3f5b7c9e2a",
                 "3d5f7a9c-1e4a-4b6c-98d0-2e4a6b8c0f3b")
#: the type and status botocore's enums do not know (yet) that the unknown rows use: news
NEW_VALUES: tuple[NewValue, ...] = (("ClusterOperationType", "NodeRefresh"), ("ClusterOperationStatus", "Failed"))


def operation(op_id: str = OP1, *, type_: str = "Scaling", status: str = "InProgress", age: timedelta | None,
              groups: list[tuple[str, str, int, int]] | None = None) -> dict[str, Any]:
    """A DescribeClusterOperation answer (groups: (name, status, original target, desired target))."""
    out: dict[str, Any] = {"OperationId": op_id, "ClusterArn": CLUSTER_ARN, "Type": type_, "Status": status}
    if age is not None:
        out["CreationTime"] = NOW - age
    if groups:
        out["ScalingDetails"] = [
            {"InstanceGroupName": g, "Status": s, "Original": {"CurrentCount": o, "TargetCount": o, "MinCount": 0},
             "Desired": {"TargetCount": d, "MinCount": 0}} for g, s, o, d in groups]
    return out


def snapshot(operations: list[dict[str, Any]] | None, *, allow: Iterable[NewValue] = (),
             scaling: bool = False) -> ClusterSnapshot:
    for op in operations or ():
        valid(op, "DescribeClusterOperationResponse", allow=allow)
    document: dict[str, Any] = valid({
        "ClusterName": "c", "ClusterArn": CLUSTER_ARN, "ClusterStatus": "InService",
        "CreationTime": NOW - timedelta(days=9),
        "InstanceGroups": [{"InstanceGroupName": "gpu", "InstanceType": "ml.p5.48xlarge", "Status": "InService",
                            "CurrentCount": 8, "TargetCount": 16, "LifeCycleConfig": {"SourceS3Uri": "s3://b/lc",
                            "OnCreate": "on_create.sh"}, "ExecutionRole": "arn:aws:iam::111122223333:role/r",
                            "ThreadsPerCore": 1, **({"ActiveOperations": {"Scaling": 1}} if scaling else {})}],
    }, "DescribeClusterResponse")
    if operations is not None:
        document["Operations"] = operations
    return ClusterSnapshot.model_validate(document)


def evaluate(snap: ClusterSnapshot, settings: ClusterOperationsSettings | None = None) -> list[Finding]:
    return cluster_operations.evaluate(snap, None, settings or ClusterOperationsSettings(), NOW)


H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize("operations, settings, want", [
    pytest.param(None, None, [], id="not-read-says-nothing"),
    pytest.param([], None, [], id="no-operations"),
    pytest.param([operation(age=59 * M)], None, [], id="young-scaling"),
    pytest.param([operation(age=H + M, groups=[("gpu", "InProgress", 8, 16)])], None,
                 [("scaling-stuck", OP1, "1h1m", "1h")], id="scaling-stuck"),
    pytest.param([operation(age=H + M)], ClusterOperationsSettings(scaling_stuck_after=2 * H), [],
                 id="scaling-threshold-setting"),
    pytest.param([operation(type_="DeepHealthCheck", age=3 * H)], None, [], id="deep-health-check-young-at-3h"),
    pytest.param([operation(type_="DeepHealthCheck", age=5 * H)], None,
                 [("deep-health-check-stuck", OP1, "5h", "4h")], id="deep-health-check-stuck"),
    pytest.param([operation(status="Done", age=30 * H), operation(OP2, status="Superseded", age=20 * H)], None, [],
                 id="done-and-superseded-say-nothing"),
    pytest.param([operation(age=None)], None, [], id="no-creation-time-no-guess"),
    pytest.param([operation(age=-H)], None, [], id="clock-skew-future-start"),
    pytest.param([operation(type_="NodeRefresh", age=3 * H)], None, [], id="unknown-type-uses-longer-threshold"),
    pytest.param([operation(type_="NodeRefresh", age=5 * H)], None,
                 [("operation-stuck", OP1, "5h", "4h")], id="unknown-type-stuck-raw-type-kept"),
    pytest.param([operation(status="Failed", age=2 * M)], None,
                 [("operation-status-unknown", OP1, "2m", None)], id="unknown-status-is-news"),
    pytest.param([operation(OP2, age=2 * H), operation(OP1, age=3 * H), operation(OP3, age=10 * M)], None,
                 [("scaling-stuck", OP1, "3h", "1h")], id="two-stuck-oldest-leads"),
])
def test_evaluate(operations, settings, want):
    got = evaluate(snapshot(operations, allow=NEW_VALUES), settings)
    assert [(f.condition, f.details["operation_id"], f.details.get("age"), f.details.get("threshold"))
            for f in got] == want
    for finding in got:
        assert (finding.policy, finding.severity.value, finding.problem, finding.instance_group) == (
            "cluster-operations", "warning", "operations", None)


def test_unknown_enum_values_are_not_in_the_model():
    """The unknown rows above use values botocore refuses: news, kept raw in the evidence."""
    refused = [model_errors(bad, "DescribeClusterOperationResponse")
               for bad in (operation(type_="NodeRefresh", age=H), operation(status="Failed", age=H))]
    assert [len(errors) for errors in refused] == [1, 1]
    assert "'NodeRefresh' is not one of ClusterOperationType's values" in refused[0][0]
    assert "'Failed' is not one of ClusterOperationStatus's values" in refused[1][0]
    finding, = evaluate(snapshot([operation(type_="NodeRefresh", status="Failed", age=M)], allow=NEW_VALUES))
    assert (finding.details["type"], finding.details["status"]) == ("NodeRefresh", "Failed")
    assert "Failed" in finding.summary and finding.details["known_statuses"] == ["Done", "InProgress", "Superseded"]


def test_stuck_finding_evidence():
    snap = snapshot([operation(age=2 * H, groups=[("gpu", "InProgress", 8, 16)]),
                     operation(OP2, age=90 * M)])
    finding, = evaluate(snap)
    assert finding.summary == (f"Scaling operation {OP1} of cluster c has been InProgress for 2h "
                               "(stuck after 1h): gpu 8 -> 16 nodes")
    assert finding.details == {
        "operation_id": OP1, "type": "Scaling", "status": "InProgress", "since": "2026-06-01T10:00:00Z", "age": "2h",
        "threshold": "1h",
        "scaling_details": [{"instance_group": "gpu", "status": "InProgress",
                             "original": {"CurrentCount": 8, "TargetCount": 8, "MinCount": 0},
                             "desired": {"TargetCount": 16, "MinCount": 0}}],
        "more_operations": [{"operation_id": OP2, "type": "Scaling", "status": "InProgress",
                             "since": "2026-06-01T10:30:00Z", "age": "1h30m"}],
        "more_count": 1,
    }


@pytest.mark.parametrize("operations, scaling, want", [
    pytest.param(None, False, {}, id="not-read"),
    pytest.param([operation(type_="DeepHealthCheck", age=H)], False, {}, id="not-scaling"),
    pytest.param([operation(status="Done", age=H, groups=[("gpu", "Done", 8, 16)])], False, {}, id="done"),
    pytest.param([operation(age=H, groups=[("cpu", "InProgress", 2, 4)])], False, {}, id="other-group"),
    pytest.param([operation(status="Superseded", age=2 * H, groups=[("gpu", "Superseded", 8, 16)]),
                  operation(OP2, age=10 * M, groups=[("gpu", "InProgress", 8, 12), ("cpu", "InProgress", 2, 4)])],
                 True, [(OP2, "InProgress", ["gpu"]), (OP1, "Superseded", ["gpu"])], id="superseded-newest-first"),
    pytest.param([operation(age=10 * M)], True, [(OP1, "InProgress", None)], id="summary-without-details"),
])
def test_operation_context(operations, scaling, want):
    snap = snapshot(operations, scaling=scaling)
    context = operation_context(snap, snap.instance_groups[0], NOW)
    if want == {}:
        assert context == {}
        return
    assert [(o["operation_id"], o["status"],
             [d["instance_group"] for d in o["scaling_details"]] if "scaling_details" in o else None)
            for o in context["operations"]] == want


def test_the_policy_and_its_settings():
    assert cluster_operations.POLICY.name == "cluster-operations"
    assert cluster_operations.POLICY.settings is ClusterOperationsSettings
    defaults = ClusterOperationsSettings()
    assert (defaults.scaling_stuck_after, defaults.deep_health_check_stuck_after) == (H, 4 * H)
    assert all(f.description for name, f in ClusterOperationsSettings.model_fields.items()
               if name in ("scaling_stuck_after", "deep_health_check_stuck_after"))


def test_the_scenario_snapshot_is_what_the_api_answers():
    """events/scaling-operation-stuck/snapshot.json: its DescribeCluster part and each operation validate
    against botocore's shapes; the policy finds the stuck scale-up (the scenario test runs every policy)."""
    document = json.loads((REPO / "events/scaling-operation-stuck/snapshot.json").read_text())
    operations = document.pop("Operations")
    valid(document, "DescribeClusterResponse")
    for op in operations:
        valid(op, "DescribeClusterOperationResponse")
        valid(members(op, "ClusterOperationSummary"), "ClusterOperationSummary")
    snap = ClusterSnapshot.from_describe_cluster({**document, "Operations": operations})
    finding, = cluster_operations.evaluate(snap, None, ClusterOperationsSettings(),
                                           datetime(2026, 11, 26, 9, 40, 5, tzinfo=UTC))
    assert (finding.condition, finding.details["operation_id"], finding.details["age"]) == (
        "scaling-stuck", "9f3b1d7e-2a4c-4e6a-8b0d-1c3e5a7b9d2f", "1h47m25s")
