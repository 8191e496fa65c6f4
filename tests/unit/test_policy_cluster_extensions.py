"""cluster-extensions: one row per case of extension status, node counts and health issues.

Each extension is built as a DescribeClusterExtension answer, validated against botocore's output shape
(DescribeClusterExtensionResponse: ExtensionDetails, NodeSummary, Health) with the stand-in's validator
(tests/botocore_model.py: ParamValidator, enums, max lengths, patterns), then flattened the way the
reader does (`Health.Issues` -> `HealthIssues`); the DescribeCluster part of the snapshot is validated as
DescribeClusterResponse. Only the rows with unknown values break an enum, and they name those values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.findings import Finding
from hyperpod_guard.policies import cluster_extensions
from hyperpod_guard.policies.cluster_extensions import ClusterExtensionsSettings, extension_name
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import NewValue, members, model_errors, valid
from tests.conftest import REPO

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CLUSTER_ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
CW = "amazon-cloudwatch-observability"
#: values botocore's enums do not know (yet): news
SUSPENDED: NewValue = ("ExtensionStatus", "Suspended")
NEW_CODE: NewValue = ("ExtensionHealthIssueCode", "NewCode")


def extension(name: str = CW, status: str = "Active", *, nodes: tuple[int, int] | None = (16, 16),
              issues: list[tuple[str, str, int]] | None = None, allow: Iterable[NewValue] = ()) -> dict[str, Any]:
    """A DescribeClusterExtension answer (validated), flattened into our snapshot's `Extensions` item.
    nodes: (total, active); issues: (code, message, node count); allow: the enum values it uses on purpose
    that botocore does not know."""
    answer: dict[str, Any] = {"ExtensionDetails": {
        "ClusterArn": CLUSTER_ARN,
        "ExtensionArn": f"arn:aws:sagemaker:us-west-2:111122223333:extension/eks-{name}/c/a1b2c3",
        "ExtensionName": name, "ExtensionVersion": "1.2.0", "Status": status, "CreationTime": NOW - timedelta(days=3),
    }}
    if nodes is not None:
        answer["NodeSummary"] = {"TotalCount": nodes[0], "ActiveCount": nodes[1]}
    if issues is not None:
        answer["Health"] = {"Issues": [{"Code": c, "Message": m, "NodeCount": n} for c, m, n in issues]}
    valid(answer, "DescribeClusterExtensionResponse", allow=allow)
    summary = valid(members(answer["ExtensionDetails"], "ExtensionSummary"), "ExtensionSummary", allow=allow)
    out: dict[str, Any] = {**summary}
    if "NodeSummary" in answer:
        out["NodeSummary"] = answer["NodeSummary"]
    if "Health" in answer:
        out["HealthIssues"] = answer["Health"]["Issues"]
    return out


def snapshot(extensions: list[dict[str, Any]] | None, *, scaling: bool = False) -> ClusterSnapshot:
    document: dict[str, Any] = valid({
        "ClusterName": "ml-prod", "ClusterArn": CLUSTER_ARN, "ClusterStatus": "InService",
        "CreationTime": NOW - timedelta(days=9),
        "InstanceGroups": [{"InstanceGroupName": "gpu", "InstanceType": "ml.p5.48xlarge", "Status": "InService",
                            "CurrentCount": 16, "TargetCount": 16, "ExecutionRole": "arn:aws:iam::111122223333:role/r",
                            "LifeCycleConfig": {"SourceS3Uri": "s3://b/lc", "OnCreate": "on_create.sh"},
                            "ThreadsPerCore": 1, **({"ActiveOperations": {"Scaling": 1}} if scaling else {})}],
    }, "DescribeClusterResponse")
    if extensions is not None:
        document["Extensions"] = extensions
    return ClusterSnapshot.model_validate(document)


def evaluate(snap: ClusterSnapshot, settings: ClusterExtensionsSettings | None = None) -> list[Finding]:
    return cluster_extensions.evaluate(snap, None, settings or ClusterExtensionsSettings(), NOW)


DENIED = ("AccessDenied", "The node role may not call cloudwatch:PutMetricData", 3)
UNREACHABLE = ("DependencyUnreachable", "logs.us-west-2.amazonaws.com timed out", 1)
CONFLICT = ("ConfigurationConflict", "A DaemonSet of the same name exists", 2)
OTHER = ("Other", "Pod restarts", 5)


@pytest.mark.parametrize("extensions, scaling, want", [
    pytest.param(None, False, [], id="not-read-says-nothing"),
    pytest.param([], False, [], id="none-installed"),
    pytest.param([extension()], False, [], id="active-every-node"),
    pytest.param([extension(status="Creating", nodes=(16, 0))], False, [], id="creating-says-nothing"),
    pytest.param([extension(status="Updating", nodes=(16, 4))], False, [], id="updating-says-nothing"),
    pytest.param([extension(status="Deleting", nodes=None)], False, [], id="deleting-says-nothing"),
    pytest.param([extension(status="Degraded", nodes=(16, 13), issues=[DENIED])], False,
                 [(f"{CW}/degraded", "warning")], id="degraded-warning"),
    pytest.param([extension(status="CreateFailed", nodes=None)], False,
                 [(f"{CW}/create-failed", "critical")], id="create-failed-critical"),
    pytest.param([extension(status="UpdateFailed")], False, [(f"{CW}/update-failed", "critical")],
                 id="update-failed-critical"),
    pytest.param([extension(status="DeleteFailed")], False, [(f"{CW}/delete-failed", "warning")],
                 id="delete-failed-warning"),
    pytest.param([extension(nodes=(16, 14))], False, [(f"{CW}/nodes-inactive", "warning")], id="active-nodes-short"),
    pytest.param([extension(nodes=(16, 14))], True, [], id="active-nodes-short-while-scaling"),
    pytest.param([extension(status="Suspended", allow=[SUSPENDED])], False, [(f"{CW}/status-unknown", "warning")],
                 id="unknown-status-is-news"),
    pytest.param([extension(status="Degraded", issues=[DENIED]),
                  extension("aws-fsx-csi-driver", status="CreateFailed")], False,
                 [(f"{CW}/degraded", "warning"), ("aws-fsx-csi-driver/create-failed", "critical")],
                 id="two-extensions-two-conditions"),
])
def test_evaluate(extensions, scaling, want):
    got = evaluate(snapshot(extensions, scaling=scaling))
    assert [(f.condition, f.severity.value) for f in got] == want
    for finding in got:
        assert (finding.policy, finding.problem, finding.instance_group, finding.node) == (
            "cluster-extensions", "extension", None, None)


def test_inactive_nodes_can_be_turned_off():
    snap = snapshot([extension(nodes=(16, 14)), extension("x", status="Degraded")])
    off = ClusterExtensionsSettings(check_inactive_nodes=False)
    assert [f.condition for f in evaluate(snap, off)] == ["x/degraded"]


def test_degraded_summary_and_evidence_top_three_issues():
    finding, = evaluate(snapshot([extension(status="Degraded", nodes=(16, 5),
                                            issues=[UNREACHABLE, DENIED, OTHER, CONFLICT])]))
    assert finding.summary == (f"Extension {CW} of cluster ml-prod is Degraded: 5 of 16 nodes Other, "
                               "3 of 16 nodes AccessDenied, 2 of 16 nodes ConfigurationConflict")
    assert finding.details == {
        "extension": CW, "extension_arn": f"arn:aws:sagemaker:us-west-2:111122223333:extension/eks-{CW}/c/a1b2c3",
        "version": "1.2.0", "status": "Degraded", "nodes": {"total": 16, "active": 5},
        "health_issues": [{"code": "Other", "message": "Pod restarts", "node_count": 5},
                          {"code": "AccessDenied", "message": DENIED[1], "node_count": 3},
                          {"code": "ConfigurationConflict", "message": CONFLICT[1], "node_count": 2}],
        "health_issue_count": 4,
    }


def test_the_example_summary():
    finding, = evaluate(snapshot([extension(status="Degraded", nodes=(16, 13), issues=[DENIED])]))
    assert finding.summary == f"Extension {CW} of cluster ml-prod is Degraded: 3 of 16 nodes AccessDenied"


def test_unknown_values_are_kept_raw():
    """The unknown rows use values botocore's enums refuse: news, kept raw in the evidence."""
    bad = {"ExtensionArn": "arn:aws:sagemaker:us-west-2:111122223333:extension/eks-x/c/a1", "ExtensionName": "x",
           "ExtensionVersion": "1.0.0", "Status": "Suspended"}
    refused, = model_errors(bad, "ExtensionSummary")
    assert "'Suspended' is not one of ExtensionStatus's values" in refused
    assert model_errors(bad, "ExtensionSummary", allow=[SUSPENDED]) == []
    finding, = evaluate(snapshot([extension(status="Suspended", nodes=(4, 4), issues=[("NewCode", "m", 1)],
                                            allow=[SUSPENDED, NEW_CODE])]))
    assert finding.details["status"] == "Suspended" and finding.details["health_issues"][0]["code"] == "NewCode"
    assert finding.summary == ("Extension amazon-cloudwatch-observability of cluster ml-prod has a status this tool "
                               "does not know: Suspended: 1 of 4 nodes NewCode")
    assert "Active" in finding.details["known_statuses"]


def test_nodes_inactive_summary():
    finding, = evaluate(snapshot([extension(nodes=(16, 14))]))
    assert finding.summary == (f"Extension {CW} of cluster ml-prod is Active on fewer nodes than it should be: "
                               "14 of 16 nodes active")


def test_name_from_the_arn_when_missing():
    snap = ClusterSnapshot.model_validate({"ClusterName": "c", "Extensions": [
        {"ExtensionArn": "arn:aws:sagemaker:us-west-2:111122223333:extension/eks-foo/c/a1", "Status": "CreateFailed"}]})
    assert extension_name(snap.extensions[0]) == "eks-foo"
    assert [f.condition for f in evaluate(snap)] == ["eks-foo/create-failed"]


def test_the_policy_and_its_settings():
    assert cluster_extensions.POLICY.name == "cluster-extensions"
    assert cluster_extensions.POLICY.settings is ClusterExtensionsSettings
    assert ClusterExtensionsSettings().grace == timedelta(minutes=15)
    assert all(ClusterExtensionsSettings.model_fields[f].description for f in ("grace", "check_inactive_nodes"))


def test_the_scenario_snapshot_is_what_the_api_answers():
    """events/extension-degraded/snapshot.json: its DescribeCluster part validates as DescribeClusterResponse,
    each extension as ExtensionSummary + the DescribeClusterExtension answer it was flattened from."""
    document = json.loads((REPO / "events/extension-degraded/snapshot.json").read_text())
    extensions = document.pop("Extensions")
    valid(document, "DescribeClusterResponse")
    for item in extensions:
        summary = valid(members(item, "ExtensionSummary"), "ExtensionSummary")
        answer: dict[str, Any] = {"ExtensionDetails": {**summary, "ClusterArn": document["ClusterArn"]},
                                  "NodeSummary": item["NodeSummary"]}
        if "HealthIssues" in item:
            answer["Health"] = {"Issues": item["HealthIssues"]}
        valid(answer, "DescribeClusterExtensionResponse")
        assert set(item) <= set(summary) | {"NodeSummary", "HealthIssues"}
    snap = ClusterSnapshot.from_describe_cluster({**document, "Extensions": extensions})
    finding, = evaluate(snap)
    assert finding.summary == f"Extension {CW} of cluster ml-prod is Degraded: 3 of 16 nodes AccessDenied"
