"""failed-rollback: one row per case, from DescribeCluster state and from Cluster Event text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hyperpod_guard.events import ClusterEvent, parse_event
from hyperpod_guard.findings import Severity, fingerprint
from hyperpod_guard.policies import REGISTRY
from hyperpod_guard.policies.failed_rollback import GUIDANCE, NAME, evaluate
from hyperpod_guard.rules import FailedRollbackSettings
from hyperpod_guard.snapshot import ClusterSnapshot

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = FailedRollbackSettings()
CLUSTER = "training"
OLD_AMI, NEW_AMI = "ami-0aaaaaaaaaaaaaaaa", "ami-0bbbbbbbbbbbbbbbb"


def group(status: str | None, name: str = "gpu", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "InstanceGroupName": name, "Status": "InService", "CurrentCount": 4, "TargetCount": 4,
        # after a rollback HyperPod swaps the ids: desired is the image rolled back to
        "CurrentImageId": NEW_AMI, "DesiredImageId": OLD_AMI, "TargetStateCount": 1,
        "ActiveSoftwareUpdateConfig": {"AutoRollbackConfiguration": [{"AlarmName": "gpu-xid"}, {"AlarmName": "nccl"}]},
    }
    if status is not None:
        data["SoftwareUpdateStatus"] = status
    data.update(extra)
    return data


def snapshot(*groups: dict[str, Any], status: str = "InService", failure: str = "") -> ClusterSnapshot:
    return ClusterSnapshot.from_describe_cluster({
        "ClusterName": CLUSTER, "ClusterStatus": status, "FailureMessage": failure,
        "InstanceGroups": list(groups), "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:1:cluster/e"}},
    })


def cluster_event(description: str, *, group_name: str | None = None, instance: str | None = None,
                  level: str = "Error") -> ClusterEvent:
    details: dict[str, Any] = {
        "EventId": "83ea0bb5-be77-45e8-a458-0a87f778a205", "ClusterName": CLUSTER,
        "ClusterArn": "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456",
        "ResourceType": "Instance" if instance else "InstanceGroup", "EventTime": 1748794825350,
        "EventLevel": level, "Description": description,
    }
    if group_name:
        details["InstanceGroupName"] = group_name
    if instance:
        details["InstanceId"] = instance
    event = parse_event({"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
                         "detail": {"EventDetails": details}})
    assert isinstance(event, ClusterEvent)
    return event


GROUP_ROLLBACK_FAILED = f"Rollback failed for IG gpu in Cluster {CLUSTER}. Some instances may be in FailedMaintenance state."
INSTANCE_ROLLBACK_FAILED = "UpdateClusterSoftware rollback failed for instance i-0123456789abcdef0 in IG gpu."
BAKE_ALARM = (f"Baking period failed for IG gpu in Cluster {CLUSTER}. Alarms [a1, a2] entered ALARM state. "
              "Initiating auto-rollback.")
ROLLBACK_INITIATED = f"UpdateClusterSoftware failed for IG gpu in Cluster {CLUSTER}. Initiating rollback."
INSTANCE_ROLLBACK_INITIATED = "Instance i-0123456789abcdef0 in IG gpu failed to update. Rollback initiated."

IMAGE_DETAILS = {
    "current_image_id": NEW_AMI, "desired_image_id": OLD_AMI, "target_state_count": 1, "current_count": 4,
    "auto_rollback_alarms": ["gpu-xid", "nccl"],
}

# (snapshot, event, expected [(severity, condition, group, node, origin)], expected details subset of the first)
CASES = [
    pytest.param(snapshot(group("Failed")), None,
                 [("critical", "rollback-failed", "gpu", None, "state")],
                 {"software_update_status": "Failed", **IMAGE_DETAILS, "guidance": GUIDANCE}, id="state-failed"),
    pytest.param(snapshot(group("RollbackComplete")), None,
                 [("warning", "rolled-back", "gpu", None, "state")],
                 {"software_update_status": "RollbackComplete", **IMAGE_DETAILS}, id="state-rollback-complete"),
    pytest.param(snapshot(group("RollbackInProgress")), None,
                 [("info", "rollback-in-progress", "gpu", None, "state")],
                 {"software_update_status": "RollbackInProgress", "critical_after": "1h", **IMAGE_DETAILS},
                 id="state-rollback-in-progress"),
    pytest.param(snapshot(group("Succeeded")), None, [], None, id="state-succeeded"),
    pytest.param(snapshot(group("InProgress")), None, [], None, id="state-in-progress"),
    pytest.param(snapshot(group("Pending")), None, [], None, id="state-pending"),
    pytest.param(snapshot(group("Rewinding")), None, [], None, id="state-unknown-status"),
    pytest.param(snapshot(group(None)), None, [], None, id="state-no-status"),
    pytest.param(snapshot(group("Failed", name="a"), group("RollbackComplete", name="b"), group("Succeeded", name="c")), None,
                 [("critical", "rollback-failed", "a", None, "state"), ("warning", "rolled-back", "b", None, "state")],
                 None, id="state-per-group"),
    pytest.param(snapshot(group("Succeeded"), status="RollingBack", failure="Update failed"), None,
                 [("critical", "cluster-rolling-back", None, None, "state")],
                 {"status": "RollingBack", "failure_message": "Update failed"}, id="cluster-rolling-back"),
    pytest.param(snapshot(status="RollingBack"), None,
                 [("critical", "cluster-rolling-back", None, None, "state")],
                 {"status": "RollingBack", "failure_message": None}, id="cluster-rolling-back-no-message"),
    pytest.param(snapshot(group("InProgress")), cluster_event(GROUP_ROLLBACK_FAILED, group_name="gpu"),
                 [("critical", "rollback-failed", "gpu", None, "event")],
                 {"event_description": GROUP_ROLLBACK_FAILED, "guidance": GUIDANCE, "software_update_status": "InProgress"},
                 id="event-group-rollback-failed"),
    pytest.param(ClusterSnapshot.minimal(CLUSTER), cluster_event(GROUP_ROLLBACK_FAILED),
                 [("critical", "rollback-failed", "gpu", None, "event")],
                 {"event_description": GROUP_ROLLBACK_FAILED}, id="event-group-from-text-only"),
    pytest.param(snapshot(group("Failed")), cluster_event(GROUP_ROLLBACK_FAILED, group_name="gpu"),
                 [("critical", "rollback-failed", "gpu", None, "state")],
                 {"software_update_status": "Failed"}, id="event-and-state-agree-one-finding"),
    pytest.param(snapshot(group("Succeeded")), cluster_event(INSTANCE_ROLLBACK_FAILED, group_name="gpu"),
                 [("critical", "rollback-failed", "gpu", "i-0123456789abcdef0", "event")],
                 {"event_description": INSTANCE_ROLLBACK_FAILED}, id="event-instance-rollback-failed"),
    pytest.param(snapshot(group("Failed")), cluster_event(INSTANCE_ROLLBACK_FAILED, group_name="gpu"),
                 [("critical", "rollback-failed", "gpu", None, "state"),
                  ("critical", "rollback-failed", "gpu", "i-0123456789abcdef0", "event")],
                 None, id="node-event-is-another-scope-than-group-state"),
    pytest.param(snapshot(group(None)), cluster_event(BAKE_ALARM, group_name="gpu", level="Warn"),
                 [("info", "rollback-in-progress", "gpu", None, "event")],
                 {"triggered_alarms": ["a1", "a2"], "event_description": BAKE_ALARM}, id="event-bake-alarm-state-unknown"),
    pytest.param(snapshot(group(None)), cluster_event(ROLLBACK_INITIATED, group_name="gpu"),
                 [("info", "rollback-in-progress", "gpu", None, "event")],
                 {"event_description": ROLLBACK_INITIATED}, id="event-rollback-initiated-state-unknown"),
    pytest.param(ClusterSnapshot.minimal(CLUSTER), cluster_event(ROLLBACK_INITIATED, group_name="gpu"),
                 [("info", "rollback-in-progress", "gpu", None, "event")],
                 None, id="event-rollback-initiated-no-snapshot"),
    # a fresh read that already knows the update status wins over an older "initiated" event
    *[
        pytest.param(snapshot(group(status)), cluster_event(description, group_name="gpu"), [], None,
                     id=f"state-{status}-supersedes-{label}")
        for status in ("InProgress", "Succeeded")
        for description, label in ((ROLLBACK_INITIATED, "initiated"), (BAKE_ALARM, "bake-alarm"))
    ],
    pytest.param(snapshot(group("RollbackInProgress")), cluster_event(ROLLBACK_INITIATED, group_name="gpu"),
                 [("info", "rollback-in-progress", "gpu", None, "state")],
                 {"software_update_status": "RollbackInProgress"}, id="event-initiated-state-agrees"),
    pytest.param(snapshot(group(None)), cluster_event(INSTANCE_ROLLBACK_INITIATED, group_name="gpu"), [],
                 None, id="event-instance-rollback-initiated-is-the-groups-problem"),
    pytest.param(snapshot(group("InProgress")),
                 cluster_event(f"UpdateClusterSoftware completed successfully for IG gpu in Cluster {CLUSTER}.", group_name="gpu",
                               level="Info"),
                 [], None, id="event-unrelated-description"),
    pytest.param(snapshot(group("InProgress")), cluster_event("Rollback failed, somewhere", group_name="gpu"),
                 [], None, id="event-text-not-matching-template"),
    pytest.param(snapshot(group("InProgress")),
                 parse_event({"detail-type": "SageMaker HyperPod Cluster Node Health Event", "source": "aws.sagemaker",
                              "detail": {"ClusterName": CLUSTER, "InstanceId": "i-1",
                                         "HealthSummary": {"HealthStatus": "Unhealthy"}}}),
                 [], None, id="other-event-type"),
]


@pytest.mark.parametrize("snap, event, expected, details", CASES)
def test_failed_rollback(snap, event, expected, details):
    findings = evaluate(snap, event, SETTINGS, NOW)
    got = [(f.severity.value, f.condition, f.instance_group, f.node, f.origin) for f in findings]
    assert got == expected
    for finding in findings:
        assert finding.policy == NAME
        assert finding.cluster == CLUSTER
        assert finding.summary and "\n" not in finding.summary
    if details is not None:
        assert details.items() <= findings[0].details.items(), findings[0].details
    assert len({f.fingerprint for f in findings}) == len(findings)


def test_failed_summary_and_details_exactly():
    (finding,) = evaluate(snapshot(group("Failed")), None, SETTINGS, NOW)
    assert finding.summary == "Software update of instance group gpu failed and its rollback failed too"
    assert finding.details == {"software_update_status": "Failed", **IMAGE_DETAILS, "guidance": GUIDANCE}
    assert finding.escalation is None
    assert finding.fingerprint == fingerprint(NAME, CLUSTER, "gpu", None, "rollback-failed")


def test_rolled_back_names_the_image_rolled_back_to():
    (finding,) = evaluate(snapshot(group("RollbackComplete")), None, SETTINGS, NOW)
    assert finding.summary == f"Software update of instance group gpu was rolled back to {OLD_AMI}"
    (finding,) = evaluate(snapshot(group("RollbackComplete", DesiredImageId=None)), None, SETTINGS, NOW)
    assert finding.summary == "Software update of instance group gpu was rolled back to the previous image"
    assert "desired_image_id" not in finding.details


def test_details_omit_what_the_group_does_not_say():
    bare = {"InstanceGroupName": "gpu", "SoftwareUpdateStatus": "Failed"}
    (finding,) = evaluate(snapshot(bare), None, SETTINGS, NOW)
    assert finding.details == {"software_update_status": "Failed", "guidance": GUIDANCE}


def test_alarms_from_scheduled_and_active_config_deduplicated():
    scheduled = {"ScheduleExpression": "cron(0 3 ? * SUN *)",
                 "DeploymentConfig": {"AutoRollbackConfiguration": [{"AlarmName": "nccl"}, {"AlarmName": "node-loss"}]}}
    (finding,) = evaluate(snapshot(group("Failed", ScheduledUpdateConfig=scheduled)), None, SETTINGS, NOW)
    assert finding.details["auto_rollback_alarms"] == ["gpu-xid", "nccl", "node-loss"]


@pytest.mark.parametrize("stuck_after, elapsed, expected", [
    pytest.param(timedelta(hours=1), timedelta(minutes=59), Severity.INFO, id="default-before"),
    pytest.param(timedelta(hours=1), timedelta(hours=1), Severity.CRITICAL, id="default-at"),
    pytest.param(timedelta(hours=1), timedelta(hours=5), Severity.CRITICAL, id="default-after"),
    pytest.param(timedelta(minutes=20), timedelta(minutes=19), Severity.INFO, id="custom-before"),
    pytest.param(timedelta(minutes=20), timedelta(minutes=21), Severity.CRITICAL, id="custom-after"),
])
def test_rollback_in_progress_escalates(stuck_after, elapsed, expected):
    settings = FailedRollbackSettings(rollback_stuck_after=stuck_after)
    (finding,) = evaluate(snapshot(group("RollbackInProgress")), None, settings, NOW)
    assert finding.severity is Severity.INFO
    assert finding.escalation.after == stuck_after
    assert finding.escalation.severity is Severity.CRITICAL
    first_seen = NOW - elapsed
    assert finding.severity_at(first_seen, NOW) is expected
    assert finding.to_dict()["escalation"]["severity"] == "critical"


@pytest.mark.parametrize("description", [ROLLBACK_INITIATED, BAKE_ALARM])
def test_event_in_progress_findings_escalate_too(description):
    settings = FailedRollbackSettings(rollback_stuck_after="30m")
    (finding,) = evaluate(snapshot(group(None)), cluster_event(description, group_name="gpu"), settings, NOW)
    assert finding.escalation.after == timedelta(minutes=30)
    assert finding.severity_at(NOW - timedelta(minutes=29), NOW) is Severity.INFO
    assert finding.severity_at(NOW - timedelta(minutes=30), NOW) is Severity.CRITICAL


@pytest.mark.parametrize("description", [GROUP_ROLLBACK_FAILED, INSTANCE_ROLLBACK_FAILED])
def test_event_failed_findings_do_not_escalate(description):
    (finding,) = evaluate(snapshot(group("InProgress")), cluster_event(description, group_name="gpu"), SETTINGS, NOW)
    assert finding.escalation is None
    assert finding.severity is Severity.CRITICAL


def test_event_and_state_share_the_fingerprint():
    event = cluster_event(GROUP_ROLLBACK_FAILED, group_name="gpu")
    (from_event,) = evaluate(snapshot(group("InProgress")), event, SETTINGS, NOW)
    (from_state,) = evaluate(snapshot(group("Failed")), None, SETTINGS, NOW)
    assert from_event.fingerprint == from_state.fingerprint


def test_node_event_summaries():
    (failed,) = evaluate(ClusterSnapshot.minimal(CLUSTER), cluster_event(INSTANCE_ROLLBACK_FAILED), SETTINGS, NOW)
    assert failed.summary == "Rollback of node i-0123456789abcdef0 (gpu) failed"
    assert failed.fingerprint == fingerprint(NAME, CLUSTER, None, "i-0123456789abcdef0", "rollback-failed")
    (bake,) = evaluate(ClusterSnapshot.minimal(CLUSTER), cluster_event(BAKE_ALARM), SETTINGS, NOW)
    assert bake.summary == "Alarms fired while baking the update of instance group gpu; rolling back"
    assert bake.details["triggered_alarms"] == ["a1", "a2"]
    assert "auto_rollback_alarms" not in bake.details  # group unknown to a minimal snapshot


def test_structured_fields_win_over_text():
    event = cluster_event(INSTANCE_ROLLBACK_FAILED, group_name="gpu-structured", instance="i-0fedcba9876543210")
    (finding,) = evaluate(ClusterSnapshot.minimal(CLUSTER), event, SETTINGS, NOW)
    assert (finding.instance_group, finding.node) == ("gpu-structured", "i-0fedcba9876543210")


def test_registered_and_pure():
    policy = REGISTRY[NAME]
    assert policy.evaluate is evaluate
    assert policy.resolves is None
    snap, event = snapshot(group("Failed")), cluster_event(BAKE_ALARM, group_name="gpu")
    first = [f.to_dict() for f in evaluate(snap, event, SETTINGS, NOW)]
    later = [f.to_dict() for f in evaluate(snap, event, SETTINGS, NOW + timedelta(days=3))]
    assert first == later


# --- auto-rollback alarms in the details: where they come from ------------------------------------

SCHEDULED = {"ScheduleExpression": "cron(0 3 ? * SUN *)",
             "DeploymentConfig": {"AutoRollbackConfiguration": [{"AlarmName": "nccl"}, {"AlarmName": "node-loss"}]}}


@pytest.mark.parametrize("extra, alarms", [
    pytest.param({}, ["gpu-xid", "nccl"], id="active-update-config"),
    pytest.param({"ScheduledUpdateConfig": SCHEDULED}, ["gpu-xid", "nccl", "node-loss"], id="active-then-scheduled-once-each"),
    pytest.param({"ActiveSoftwareUpdateConfig": None, "ScheduledUpdateConfig": SCHEDULED}, ["nccl", "node-loss"],
                 id="scheduled-only"),
    pytest.param({"ActiveSoftwareUpdateConfig": {"AutoRollbackConfiguration": None},
                  "ScheduledUpdateConfig": {"ScheduleExpression": "x", "DeploymentConfig": None}}, None, id="nulls-no-alarms"),
    pytest.param({"ActiveSoftwareUpdateConfig": {"WaitIntervalInSeconds": 300},
                  "ScheduledUpdateConfig": {"ScheduleExpression": "x", "DeploymentConfig": {"AutoRollbackConfiguration": []}}},
                 None, id="no-alarm-members"),
])
@pytest.mark.parametrize("status", ["Failed", "RollbackComplete", "RollbackInProgress"])
def test_auto_rollback_alarms_in_details(status, extra, alarms):
    (finding,) = evaluate(snapshot(group(status, **extra)), None, SETTINGS, NOW)
    assert finding.details.get("auto_rollback_alarms") == alarms


def test_alarms_in_event_findings_from_the_groups_config():
    event = cluster_event(GROUP_ROLLBACK_FAILED, group_name="gpu")
    (finding,) = evaluate(snapshot(group("InProgress", ScheduledUpdateConfig=SCHEDULED)), event, SETTINGS, NOW)
    assert finding.origin == "event"
    assert finding.details["auto_rollback_alarms"] == ["gpu-xid", "nccl", "node-loss"]


def test_restricted_groups_have_no_rollback_findings():
    restricted = {"InstanceGroupName": "nova", "Status": "InService", "ScheduledUpdateConfig": SCHEDULED}
    snap = ClusterSnapshot.from_describe_cluster({"ClusterName": CLUSTER, "ClusterStatus": "InService",
                                                  "InstanceGroups": [group("Succeeded")],
                                                  "RestrictedInstanceGroups": [restricted]})
    assert evaluate(snap, None, SETTINGS, NOW) == []
