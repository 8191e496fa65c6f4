"""The HyperPod feature reads and the Cluster Event backfill (issue 19), on moto in server mode plus the SageMaker
stand-in (hyperpod_guard/local/sagemaker_standin.py): moto lacks these APIs; the stand-in answers them through the
runtime's own client and validates every request and answer against botocore's model (a mismatch is refused, see
test_the_stand_in_refuses_what_the_model_does_not_allow)."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from hyperpod_guard.local import sagemaker_standin as standin
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.service import Runtime, handle_event, new_token, read_features, sweep
from tests.conftest import ACCOUNT, REGION
from tests.integration.test_cli_check import env  # noqa: F401 (fixture)
from tests.integration.test_cli_clusters import run as run_cli
from tests.runtime_fixtures import runtime, scenario, stack  # noqa: F401 (fixtures)

T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
PLAN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-plan/p5-reserved"
OBSERVABILITY = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:extension/sagemaker-observability/v1/a1b2c3"
INFERENCE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:extension/eks-inference-operator/v2/d4e5f6"
RUNNING = "0b0c0d0e-1111-4222-8333-444455556666"
OLD_DONE = "0b0c0d0e-1111-4222-8333-444455556667"
FRESH_DONE = "0b0c0d0e-1111-4222-8333-444455556668"
FEATURE_CALLS = {"ListClusterOperations", "DescribeClusterOperation", "ListClusterExtensions",
                 "DescribeClusterExtension", "DescribeTrainingPlan", "ListClusterEvents", "DescribeClusterEvent"}


@pytest.fixture(autouse=True)
def served(aws: str) -> None:
    standin.serve()


def cluster(name: str = "ml-prod", *, plan: bool = False, scaling: bool = False, continuous: bool = False,
            image: str | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {"InstanceGroupName": "p5", "InstanceType": "ml.p5.48xlarge", "Status": "InService",
                             "CurrentCount": 4, "TargetCount": 4}
    if plan:
        group |= {"TrainingPlanArn": PLAN, "TrainingPlanStatus": "Active"}
    if scaling:
        group |= {"ActiveOperations": {"Scaling": 1}, "TargetCount": 6}
    document: dict[str, Any] = {"ClusterName": name, "ClusterStatus": "InService", "InstanceGroups": [group]}
    if continuous:
        document["NodeProvisioningMode"] = "Continuous"
    if image:
        document["ImageVersionStatus"] = image  # ListClusters' ClusterSummary (the stand-in adds it to moto's)
    put_cluster(document, region=REGION)
    return document


def calls_of(rt: Runtime) -> Counter[str]:
    """SageMaker operations the runtime's own client calls from now on."""
    made: Counter[str] = Counter()
    rt.reader.sagemaker.meta.events.register("before-call.sagemaker", lambda model, **_: made.update([model.name]))
    return made


def state_change(name: str) -> dict[str, Any]:
    event, _ = scenario("degraded-group-failed")
    event["detail"] = {"ClusterName": name, "ClusterStatus": "InService"}
    return event


def put_features(name: str) -> None:
    standin.put_operations(name, [
        {"OperationId": RUNNING, "Type": "Scaling", "Status": "InProgress", "CreationTime": T0 - timedelta(hours=30),
         "ScalingDetails": [{"InstanceGroupName": "p5", "Status": "InProgress",
                             "Original": {"CurrentCount": 4, "TargetCount": 4}, "Desired": {"TargetCount": 6}}]},
        {"OperationId": FRESH_DONE, "Type": "DeepHealthCheck", "Status": "Done", "CreationTime": T0 - timedelta(hours=2)},
        {"OperationId": OLD_DONE, "Type": "Scaling", "Status": "Superseded", "CreationTime": T0 - timedelta(days=3)},
    ])
    standin.put_extensions(name, [
        {"ExtensionArn": OBSERVABILITY, "ExtensionName": "observability", "ExtensionVersion": "1.0.0",
         "Status": "Degraded", "CreationTime": T0 - timedelta(days=10),
         "NodeSummary": {"TotalCount": 4, "ActiveCount": 1},
         "Health": {"Issues": [{"Code": "AccessDenied", "Message": "cannot write to AMP", "NodeCount": 3}]}},
        {"ExtensionArn": INFERENCE, "ExtensionName": "inference-operator", "ExtensionVersion": "2.0.0",
         "Status": "Active", "CreationTime": T0 - timedelta(days=10)},
    ])
    standin.put_training_plans([
        {"TrainingPlanArn": PLAN, "TrainingPlanName": "p5-reserved", "Status": "Active", "TotalInstanceCount": 4,
         "UnhealthyInstanceCount": 1, "AvailableSpareInstanceCount": 0, "EndTime": T0 + timedelta(hours=20),
         "ReservedCapacitySummaries": [{"ReservedCapacityArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:reserved-capacity/rc-1",
                                        "InstanceType": "ml.p5.48xlarge", "TotalInstanceCount": 4, "Status": "Active",
                                        "EndTime": T0 + timedelta(hours=20)}]},
    ])


def test_the_sweeps_reads_fill_the_snapshot(stack, runtime):
    cluster("ml-prod", plan=True, image="SecurityUpdateRequired")
    put_features("ml-prod")
    made = calls_of(runtime)
    [summary] = runtime.reader.list_cluster_summaries()
    snapshot = runtime.reader.describe("ml-prod")
    assert snapshot is not None
    read = read_features(runtime, snapshot, T0, sweep=True, summary=summary)

    assert read.image_version_status == "SecurityUpdateRequired"  # from ListClusters: no call of its own
    # the InProgress one (30 h old: any age) described with its ScalingDetails; the Done one of 2 h ago listed;
    # the Superseded one of 3 days ago left out
    assert [(o.operation_id, o.status) for o in read.operations or ()] == [(FRESH_DONE, "Done"), (RUNNING, "InProgress")]
    running = next(o for o in read.operations or () if o.status == "InProgress")
    assert running.scaling_details[0]["InstanceGroupName"] == "p5"
    degraded, active = read.extensions or ()
    assert (degraded.status, degraded.node_summary and degraded.node_summary.active_count) == ("Degraded", 1)
    assert [(i.code, i.message, i.node_count) for i in degraded.health_issues] == [("AccessDenied", "cannot write to AMP", 3)]
    assert (active.status, active.node_summary, active.health_issues) == ("Active", None, ())  # not described
    [plan] = read.training_plans or ()
    assert (plan.training_plan_arn, plan.unhealthy_instance_count, plan.available_spare_instance_count) == (PLAN, 1, 0)
    assert plan.reserved_capacity_summaries[0].end_time == T0 + timedelta(hours=20)
    assert made == Counter({"ListClusters": 1, "DescribeCluster": 1, "ListClusterOperations": 1,
                            "DescribeClusterOperation": 1, "ListClusterExtensions": 1, "DescribeClusterExtension": 1,
                            "DescribeTrainingPlan": 1})


def test_an_event_of_a_cluster_without_the_features_makes_no_feature_call(stack, runtime):
    cluster("ml-prod")  # no plan, nothing scaling, not Continuous
    made = calls_of(runtime)
    result = handle_event(state_change("ml-prod"), runtime, T0, new_token())
    assert result.invalid is None
    assert made == Counter({"DescribeCluster": 1})
    assert not set(made) & FEATURE_CALLS


def test_an_event_reads_operations_while_scaling_and_each_plan_once_per_container(stack, runtime):
    cluster("ml-prod", plan=True, scaling=True)
    put_features("ml-prod")
    made = calls_of(runtime)
    handle_event(state_change("ml-prod"), runtime, T0, new_token())
    handle_event(state_change("ml-prod"), runtime, T0 + timedelta(seconds=30), new_token())
    # operations: every event while a group scales; extensions: the sweep's only; the plan: cached
    assert {op: made[op] for op in FEATURE_CALLS if made[op]} == {
        "ListClusterOperations": 2, "DescribeClusterOperation": 2, "DescribeTrainingPlan": 1}


def test_a_denied_read_leaves_its_field_unread_and_counts(stack, runtime, caplog, capsys):
    cluster("ml-prod", plan=True)
    put_features("ml-prod")
    standin.deny("ListClusterExtensions", "DescribeTrainingPlan")
    snapshot = runtime.reader.describe("ml-prod")
    assert snapshot is not None
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="hyperpod_guard.service"):
        read = read_features(runtime, snapshot, T0, sweep=True)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m.get("HyperPodReadsUnavailable") for m in emf] == [[1.0], [1.0]], emf
    assert (read.extensions, read.training_plans) == (None, None)  # not read: their policies say nothing
    assert read.operations is not None and len(read.operations) == 2  # the other reads went on
    warnings = sorted(r.getMessage() for r in caplog.records if r.name == "hyperpod_guard.service")
    assert [w.split(";")[0] for w in warnings] == ["cannot read DescribeTrainingPlan of cluster ml-prod",
                                                   "cannot read ListClusterExtensions of cluster ml-prod"]
    assert "AccessDeniedException" in warnings[0]
    # the evaluation itself goes on
    assert sweep(runtime, T0, new_token()).errors == {}


def test_the_stand_in_refuses_what_the_model_does_not_allow(stack, runtime):
    cluster("ml-prod")
    # what is put: an unknown enum value (ParamValidator does not check enums: the stand-in does) and a wrong type
    with pytest.raises(standin.ModelMismatch, match=r"'Paused' is not one of ExtensionStatus's values"):
        standin.put_extensions("ml-prod", [{"ExtensionArn": OBSERVABILITY, "ExtensionName": "observability",
                                            "ExtensionVersion": "1.0.0", "Status": "Paused"}])
    with pytest.raises(standin.ModelMismatch, match=r"Invalid type for parameter NodeSummary.ActiveCount"):
        standin.put_extensions("ml-prod", [{"ExtensionArn": OBSERVABILITY, "ExtensionName": "observability",
                                            "ExtensionVersion": "1.0.0", "Status": "Degraded",
                                            "NodeSummary": {"TotalCount": 4, "ActiveCount": "one"}}])
    # an answer that does not match (state slipped past the put helpers): refused as StandInModelMismatch, which
    # the reader does not take for "not available": the read fails loudly
    broken = {"ExtensionDetails": {"ClusterArn": "arn:aws:sagemaker:us-west-2:123456789012:cluster/ml-prod",
                                   "ExtensionArn": OBSERVABILITY, "ExtensionName": "observability",
                                   "ExtensionVersion": "1.0.0", "Status": "Degraded"},
              "NodeSummary": {"TotalCount": 4, "ActiveCount": "one"}}
    standin.state().cluster("ml-prod").extensions.append(broken)
    snapshot = runtime.reader.describe("ml-prod")
    assert snapshot is not None and snapshot.arn
    with pytest.raises(ClientError, match=r"(?s)StandInModelMismatch.*DescribeClusterExtension answer does not match "
                                          r"botocore's model.*NodeSummary.ActiveCount"):
        runtime.reader.extensions(snapshot.arn)
    assert len(standin.rejections()) == 1
    # a value AWS may add tomorrow, declared: answered and kept raw (unknown statuses are news)
    standin.state().cluster("ml-prod").extensions.clear()
    standin.allow_new_value("ExtensionStatus", "Paused")
    standin.put_extensions("ml-prod", [{"ExtensionArn": OBSERVABILITY, "ExtensionName": "observability",
                                        "ExtensionVersion": "1.0.0", "Status": "Paused"}])
    assert [e.status for e in runtime.reader.extensions(snapshot.arn)] == ["Paused"]


# -- backfill ------------------------------------------------------------------------------------------------


MISSED = "5f7b9d1e-3a6c-4b8d-8e0f-4a6c8e0f2b5d"
DELIVERED = "1b3d5f7a-9c2e-4d4f-b6a8-0c2e4a6b8d1f"


def continuous_cluster() -> dict[str, Any]:
    _, snapshot = scenario("rollback-failed-cluster-event")
    assert snapshot is not None
    snapshot = {**snapshot, "NodeProvisioningMode": "Continuous"}
    put_cluster(snapshot, region=REGION)
    return snapshot


def delivered_event(snapshot: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The capacity Cluster Event as EventBridge delivered it (its envelope id is EventBridge's, not the EventId)."""
    event, _ = scenario("degraded-group-capacity-event")
    event |= {"account": "111122223333", "region": REGION, "time": when.isoformat()}
    event["detail"]["EventDetails"] |= {"ClusterName": snapshot["ClusterName"], "ClusterArn": snapshot["ClusterArn"],
                                        "EventTime": int(when.timestamp() * 1000), "EventId": DELIVERED,
                                        # a scope of its own: an older report of the same scope would be stale
                                        "InstanceId": "i-0de11ve7ed0000001"}
    return event


def test_the_sweep_evaluates_a_missed_cluster_event_once_and_skips_a_delivered_one(stack, runtime):
    snapshot = continuous_cluster()
    name = snapshot["ClusterName"]
    missed_at, delivered_at = T0 - timedelta(minutes=30), T0 - timedelta(minutes=20)
    rollback, _ = scenario("rollback-failed-cluster-event")
    details = copy.deepcopy(rollback["detail"]["EventDetails"])
    details["EventTime"] = missed_at
    capacity = delivered_event(snapshot, delivered_at)
    standin.put_cluster_events(name, [
        {k: v for k, v in details.items() if k not in ("ClusterName", "ClusterArn")},
        {**{k: v for k, v in capacity["detail"]["EventDetails"].items() if k not in ("ClusterName", "ClusterArn")},
         "EventTime": delivered_at},
    ])
    delivered = handle_event(copy.deepcopy(capacity), runtime, delivered_at + timedelta(seconds=5), new_token())
    assert delivered.invalid is None and delivered.ignored is None
    before = standin.calls()

    first = sweep(runtime, T0, new_token())
    assert first.errors == {} and first.backfilled == 1
    called = standin.calls() - before
    assert called == Counter({"ListClusterEvents": 1, "DescribeClusterEvent": 1, "ListClusterOperations": 1,
                              "ListClusterExtensions": 1})  # only the missed event was described
    # outcomes: the rules' check, the missed event's evaluation, the sweep's; the missed event's report was applied
    # (its mark names it: the envelope's id is the EventId), the delivered one's mark is as the delivery left it
    _, backfilled, _ = first.outcomes
    assert [d.record.severity.value for d in backfilled.decisions if d.record.policy == "failed-rollback"] == ["critical"]
    marks = {k: (m.time, m.event_id) for k, m in runtime.ledger.report_marks(name).items()}
    assert marks == {"cluster-event/group/p5-train": (missed_at, MISSED),
                     "cluster-event/node/i-0de11ve7ed0000001": (delivered_at, capacity["id"])}

    before = standin.calls()
    second = sweep(runtime, T0 + timedelta(minutes=5), new_token())
    assert second.errors == {} and second.backfilled == 0  # once: the mark moved past it
    assert (standin.calls() - before)["DescribeClusterEvent"] == 0
    assert runtime.ledger.backfill_mark(name).after == delivered_at  # type: ignore[union-attr]


def test_a_cluster_not_in_continuous_mode_lists_no_events(stack, runtime):
    cluster("ml-prod")
    before = standin.calls()
    assert sweep(runtime, T0, new_token()).errors == {}
    assert (standin.calls() - before)["ListClusterEvents"] == 0


def test_the_clusters_command_shows_the_listings_patch_debt(env):  # noqa: F811 (fixture from test_cli_check)
    cluster("ml-prod", image="EndOfLife")
    cluster("ml-dev")
    result = run_cli(env, "--format", "json")
    assert result.returncode == 0, result.stderr
    by_name = {c["cluster"]: c for c in json.loads(result.stdout)["clusters"]}
    assert by_name["ml-prod"]["image_version_status"] == "EndOfLife"  # from ListClusters alone
    assert "image_version_status" not in by_name["ml-dev"]
