"""ClusterSnapshot from DescribeCluster responses (boto3 datetimes, ISO strings) and its helpers."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from hyperpod_guard.errors import InvalidSnapshotError
from hyperpod_guard.snapshot import ClusterSnapshot, Node, Taint

ARN = "arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdef123456"
CREATED = datetime(2025, 4, 28, 16, 40, 47, 412000, tzinfo=timezone.utc)


def deployment(*alarms: str, wait: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}},
        "AutoRollbackConfiguration": [{"AlarmName": a} for a in alarms],
    }
    if wait is not None:
        config["WaitIntervalInSeconds"] = wait
    return config


def boto3_response() -> dict[str, Any]:
    """What `boto3.client('sagemaker').describe_cluster()` returns for an EKS cluster."""
    return {
        "ClusterArn": ARN,
        "ClusterName": "training",
        "ClusterStatus": "InService",
        # boto3 parses timestamps into aware datetimes in the caller's zone
        "CreationTime": CREATED.astimezone(timezone(timedelta(hours=2))),
        "FailureMessage": "",
        "InstanceGroups": [
            {
                "CurrentCount": 4,
                "TargetCount": 4,
                "MinCount": 2,
                "InstanceGroupName": "gpu-workers",
                "InstanceType": "ml.p5.48xlarge",
                "ExecutionRole": "arn:aws:iam::111122223333:role/HyperPodExec",
                "ThreadsPerCore": 1,
                "Status": "InService",
                "CurrentImageId": "ami-0aaaaaaaaaaaaaaaa",
                "DesiredImageId": "ami-0bbbbbbbbbbbbbbbb",
                "ImageVersionStatus": "UpdateAvailable",
                "TargetStateCount": 3,
                "SoftwareUpdateStatus": "InProgress",
                "ActiveOperations": {"Scaling": 1},
                "ActiveSoftwareUpdateConfig": deployment("gpu-errors", "nccl-timeouts", wait=300),
                "ScheduledUpdateConfig": {
                    "ScheduleExpression": "cron(0 3 ? * SUN *)",
                    "DeploymentConfig": deployment("nccl-timeouts", "node-loss"),
                },
                "KubernetesConfig": {
                    "CurrentLabels": {"team": "ml", "env": "prod"},
                    "DesiredLabels": {"team": "ml", "env": "prod", "tier": "gpu"},
                    "CurrentTaints": [{"Key": "nvidia.com/gpu", "Value": "true", "Effect": "NoSchedule"}],
                    "DesiredTaints": [
                        {"Key": "nvidia.com/gpu", "Value": "true", "Effect": "NoSchedule"},
                        {"Key": "dedicated", "Value": "", "Effect": "NoExecute"},
                        {"Key": "spot", "Effect": "PreferNoSchedule"},
                    ],
                },
                "LifeCycleConfig": {"SourceS3Uri": "s3://sagemaker-lcs/", "OnCreate": "on_create.sh"},
            },
            {
                "CurrentCount": 1,
                "TargetCount": 1,
                "InstanceGroupName": "controller",
                "InstanceType": "ml.m5.xlarge",
                "Status": "InService",
            },
        ],
        "VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]},
        "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:111122223333:cluster/eks"}},
        "NodeRecovery": "Automatic",
        "NodeProvisioningMode": "Continuous",
        "ResponseMetadata": {
            "RequestId": "5b5c7a0e-0000-0000-0000-000000000000",
            "HTTPStatusCode": 200,
            "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"},
            "RetryAttempts": 0,
        },
    }


def slurm_response() -> dict[str, Any]:
    """A DescribeCluster response saved as JSON: ISO strings, no Orchestrator (Slurm)."""
    return {
        "ClusterArn": ARN,
        "ClusterName": "slurm-cluster",
        "ClusterStatus": "Updating",
        "CreationTime": "2025-04-28T16:40:47.412000+00:00",
        "InstanceGroups": [{"InstanceGroupName": "compute", "CurrentCount": 8, "TargetCount": 8, "Status": "Updating"}],
        "NodeRecovery": "None",
    }


NODE_DETAILS = [
    {
        "InstanceGroupName": "gpu-workers",
        "InstanceId": "i-0123456789abcdef0",
        "InstanceStatus": {"Status": "Failure", "Message": "EC2 instance status check failed"},
        "InstanceType": "ml.p5.48xlarge",
        "LaunchTime": datetime(2025, 5, 1, tzinfo=timezone.utc),
        "KubernetesConfig": {"CurrentLabels": {"team": "ml"}, "DesiredLabels": {"team": "ml"}},
        "Placement": {"AvailabilityZone": "us-west-2a"},
    },
    {"InstanceId": "i-0fedcba9876543210"},
]


def test_boto3_response_with_datetimes_and_response_metadata():
    snapshot = ClusterSnapshot.from_describe_cluster(boto3_response())
    assert snapshot.name == "training"
    assert snapshot.arn == ARN
    assert snapshot.status == "InService"
    assert snapshot.creation_time == CREATED
    assert snapshot.creation_time.utcoffset() == timedelta(0)
    assert snapshot.failure_message == ""
    assert snapshot.node_recovery == "Automatic"
    assert snapshot.node_provisioning_mode == "Continuous"
    assert snapshot.orchestration == "eks"
    assert snapshot.partial is False
    assert snapshot.nodes == ()
    assert [g.name for g in snapshot.instance_groups] == ["gpu-workers", "controller"]
    group = snapshot.group("gpu-workers")
    assert (group.current_count, group.target_count, group.min_count) == (4, 4, 2)
    assert (group.status, group.software_update_status) == ("InService", "InProgress")
    assert (group.current_image_id, group.desired_image_id) == ("ami-0aaaaaaaaaaaaaaaa", "ami-0bbbbbbbbbbbbbbbb")
    assert group.image_version_status == "UpdateAvailable"
    assert group.target_state_count == 3
    assert group.instance_type == "ml.p5.48xlarge"
    assert group.execution_role == "arn:aws:iam::111122223333:role/HyperPodExec"
    assert group.scaling is True
    assert group.active_software_update_config.wait_interval_in_seconds == 300
    assert group.scheduled_update_config.schedule_expression == "cron(0 3 ? * SUN *)"


def test_naive_datetime_is_taken_as_utc():
    response = boto3_response()
    response["CreationTime"] = datetime(2025, 4, 28, 16, 40, 47)
    assert ClusterSnapshot.from_describe_cluster(response).creation_time == datetime(2025, 4, 28, 16, 40, 47, tzinfo=timezone.utc)


def test_iso_strings_and_slurm_orchestration():
    snapshot = ClusterSnapshot.from_describe_cluster(slurm_response())
    assert snapshot.creation_time == CREATED
    assert snapshot.orchestrator is None
    assert snapshot.orchestration == "slurm"
    assert snapshot.status == "Updating"
    assert snapshot.node_recovery == "None"
    assert snapshot.group("compute").current_count == 8
    assert snapshot.group("compute").kubernetes_config is None
    assert snapshot.group("compute").auto_rollback_alarms == []
    assert snapshot.group("compute").scaling is False


def test_slurm_orchestrator_key_is_still_slurm():
    response = slurm_response()
    response["Orchestrator"] = {"Slurm": {"SlurmConfigStrategy": "Managed"}}
    assert ClusterSnapshot.from_describe_cluster(response).orchestration == "slurm"


@pytest.mark.parametrize("name, arn", [("c1", None), ("c2", ARN)])
def test_minimal_is_partial_with_unknown_orchestration(name, arn):
    snapshot = ClusterSnapshot.minimal(name, arn)
    assert (snapshot.name, snapshot.arn) == (name, arn)
    assert snapshot.partial is True
    assert snapshot.orchestration == "unknown"
    assert snapshot.instance_groups == () and snapshot.nodes == ()
    assert snapshot.status is None


def test_kubernetes_config_labels_and_taints():
    config = ClusterSnapshot.from_describe_cluster(boto3_response()).group("gpu-workers").kubernetes_config
    assert config.current_labels == {"team": "ml", "env": "prod"}
    assert config.desired_labels == {"team": "ml", "env": "prod", "tier": "gpu"}
    assert config.current_taints == (Taint(key="nvidia.com/gpu", value="true", effect="NoSchedule"),)
    assert config.desired_taints == (
        Taint(key="nvidia.com/gpu", value="true", effect="NoSchedule"),
        Taint(key="dedicated", value=None, effect="NoExecute"),  # "" and no value are the same taint
        Taint(key="spot", value=None, effect="PreferNoSchedule"),
    )
    assert [str(t) for t in config.desired_taints] == ["nvidia.com/gpu=true:NoSchedule", "dedicated=:NoExecute", "spot=:PreferNoSchedule"]


def test_kubernetes_config_nulls_are_empty():
    response = slurm_response()
    response["InstanceGroups"][0]["KubernetesConfig"] = {
        "CurrentLabels": None, "DesiredLabels": None, "CurrentTaints": None, "DesiredTaints": None,
    }
    config = ClusterSnapshot.from_describe_cluster(response).group("compute").kubernetes_config
    assert (config.current_labels, config.desired_labels, config.current_taints, config.desired_taints) == ({}, {}, (), ())


@pytest.mark.parametrize("active, scheduled, expected", [
    pytest.param(deployment("a", "b"), None, ["a", "b"], id="active-only"),
    pytest.param(None, {"ScheduleExpression": "cron(0 3 * * ? *)", "DeploymentConfig": deployment("c")}, ["c"], id="scheduled-only"),
    pytest.param(deployment("gpu-errors", "nccl-timeouts"), {"ScheduleExpression": "x", "DeploymentConfig": deployment("nccl-timeouts", "node-loss")},
                 ["gpu-errors", "nccl-timeouts", "node-loss"], id="both-deduplicated-in-order"),
    pytest.param(deployment("a", "a"), None, ["a"], id="duplicate-within-one"),
    pytest.param(None, {"ScheduleExpression": "x"}, [], id="scheduled-without-deployment"),
    pytest.param(None, None, [], id="none"),
])
def test_auto_rollback_alarms(active, scheduled, expected):
    group: dict[str, Any] = {"InstanceGroupName": "g"}
    if active is not None:
        group["ActiveSoftwareUpdateConfig"] = active
    if scheduled is not None:
        group["ScheduledUpdateConfig"] = scheduled
    snapshot = ClusterSnapshot.from_describe_cluster({"ClusterName": "c", "InstanceGroups": [group]})
    assert snapshot.group("g").auto_rollback_alarms == expected


def test_boto3_response_alarms_deduplicated():
    group = ClusterSnapshot.from_describe_cluster(boto3_response()).group("gpu-workers")
    assert group.auto_rollback_alarms == ["gpu-errors", "nccl-timeouts", "node-loss"]


def test_nodes_list():
    snapshot = ClusterSnapshot.from_describe_cluster(boto3_response(), nodes=copy.deepcopy(NODE_DETAILS))
    assert [n.instance_id for n in snapshot.nodes] == ["i-0123456789abcdef0", "i-0fedcba9876543210"]
    failed = snapshot.node("i-0123456789abcdef0")
    assert isinstance(failed, Node)
    assert failed.instance_group_name == "gpu-workers"
    assert failed.status == "Failure"
    assert failed.instance_status.message == "EC2 instance status check failed"
    assert failed.kubernetes_config.current_labels == {"team": "ml"}
    bare = snapshot.node("i-0fedcba9876543210")
    assert (bare.instance_group_name, bare.status, bare.instance_status) == (None, None, None)
    assert snapshot.node("i-00000000000000000") is None
    assert snapshot.node(None) is None
    assert snapshot.group("no-such-group") is None
    assert snapshot.group(None) is None


def test_nodes_argument_wins_and_none_nodes_are_empty():
    response = {"ClusterName": "c", "Nodes": [{"InstanceId": "i-1"}]}
    assert [n.instance_id for n in ClusterSnapshot.from_describe_cluster(response).nodes] == ["i-1"]
    assert [n.instance_id for n in ClusterSnapshot.from_describe_cluster(response, nodes=[{"InstanceId": "i-2"}]).nodes] == ["i-2"]
    assert ClusterSnapshot.from_describe_cluster({"ClusterName": "c", "Nodes": None, "InstanceGroups": None}).nodes == ()


def test_unknown_fields_and_enum_values_are_kept_or_ignored():
    response = slurm_response()
    response["ClusterStatus"] = "Hibernating"
    response["BrandNewMember"] = {"x": 1}
    response["InstanceGroups"][0]["Status"] = "Napping"
    response["InstanceGroups"][0]["SoftwareUpdateStatus"] = "Rewinding"
    snapshot = ClusterSnapshot.from_describe_cluster(response)
    assert snapshot.status == "Hibernating"
    assert snapshot.group("compute").status == "Napping"
    assert snapshot.group("compute").software_update_status == "Rewinding"


def test_input_is_not_mutated():
    response = boto3_response()
    before = copy.deepcopy(response)
    ClusterSnapshot.from_describe_cluster(response, nodes=copy.deepcopy(NODE_DETAILS))
    assert response == before


def test_garbage_creation_time_is_none_not_an_error():
    response = slurm_response()
    response["CreationTime"] = "yesterday-ish"
    assert ClusterSnapshot.from_describe_cluster(response).creation_time is None


@pytest.mark.parametrize("response, nodes, fragment", [
    pytest.param(None, None, "got NoneType", id="none"),
    pytest.param([], None, "got list", id="list"),
    pytest.param("{}", None, "got str", id="json-text"),
    pytest.param({}, None, "ClusterName: Field required", id="empty"),
    pytest.param({"ClusterName": ""}, None, "ClusterName: String should have at least 1 character", id="empty-name"),
    pytest.param({"ClusterName": 7}, None, "ClusterName: Input should be a valid string", id="int-name"),
    pytest.param({"ClusterName": "c", "InstanceGroups": "g"}, None, "InstanceGroups:", id="groups-string"),
    pytest.param({"ClusterName": "c", "InstanceGroups": [{}]}, None, "InstanceGroups.0.InstanceGroupName: Field required", id="group-no-name"),
    pytest.param({"ClusterName": "c", "InstanceGroups": [{"InstanceGroupName": "g", "CurrentCount": "many"}]}, None,
                 "InstanceGroups.0.CurrentCount:", id="count-many"),
    pytest.param({"ClusterName": "c", "InstanceGroups": [{"InstanceGroupName": "g", "KubernetesConfig": {"DesiredTaints": [{"Key": "k"}]}}]},
                 None, "InstanceGroups.0.KubernetesConfig.DesiredTaints.0.Effect: Field required", id="taint-no-effect"),
    pytest.param({"ClusterName": "c"}, [{"InstanceGroupName": "g"}], "Nodes.0.InstanceId: Field required", id="node-no-id"),
    pytest.param({"ClusterName": "c"}, "i-1", "Nodes:", id="nodes-string"),
    pytest.param({"ClusterName": "c", "InstanceGroups": [{"InstanceGroupName": "g", "KubernetesConfig": {"CurrentLabels": {"a\nb": 1}}}]},
                 None, "InstanceGroups.0.KubernetesConfig.CurrentLabels.'a\\nb':", id="newline-in-key"),
])
def test_invalid_inputs_raise_one_line_error(response, nodes, fragment):
    with pytest.raises(InvalidSnapshotError) as caught:
        ClusterSnapshot.from_describe_cluster(response, nodes=nodes)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert fragment in message


def test_many_problems_report_the_first_and_a_count():
    with pytest.raises(InvalidSnapshotError) as caught:
        ClusterSnapshot.from_describe_cluster({"ClusterName": 1, "ClusterStatus": 2, "NodeRecovery": 3})
    assert str(caught.value) == "invalid DescribeCluster snapshot: ClusterName: Input should be a valid string (and 2 more)"


def test_snapshot_is_frozen():
    snapshot = ClusterSnapshot.from_describe_cluster(slurm_response())
    with pytest.raises(ValidationError, match="frozen"):
        snapshot.name = "other"  # type: ignore[misc]


# --- restricted instance groups and AutoScaling -------------------------------------------------


def eks_with_rig_and_autoscaling() -> dict[str, Any]:
    response = boto3_response()
    response["RestrictedInstanceGroups"] = [{
        "CurrentCount": 6, "TargetCount": 8, "InstanceGroupName": "nova-p5", "InstanceType": "ml.p5.48xlarge",
        "ExecutionRole": "arn:aws:iam::111122223333:role/HyperPodExec", "ThreadsPerCore": 1, "Status": "Degraded",
        "TrainingPlanStatus": "NotApplicable", "OnStartDeepHealthChecks": ["InstanceStress"],
        "ScheduledUpdateConfig": {"ScheduleExpression": "cron(0 4 ? * SAT *)", "DeploymentConfig": deployment("rig-health")},
        "EnvironmentConfig": {"FSxLustreConfig": {"SizeInGiB": 1200, "PerUnitStorageThroughput": 250},
                              "S3OutputPath": "s3://bucket/out/"},
    }]
    response["RestrictedInstanceGroupsConfig"] = {"SharedEnvironmentConfig": {"CurrentFSxLustreConfig": {"SizeInGiB": 1200}}}
    response["AutoScaling"] = {"Mode": "Enable", "AutoScalerType": "Karpenter", "Status": "Failed",
                               "FailureMessage": "CRD installation failed"}
    return response


def test_restricted_instance_groups_are_parsed_apart_from_instance_groups():
    snapshot = ClusterSnapshot.from_describe_cluster(eks_with_rig_and_autoscaling())
    assert [g.name for g in snapshot.instance_groups] == ["gpu-workers", "controller"]
    [rig] = snapshot.restricted_instance_groups
    assert (rig.name, rig.status, rig.current_count, rig.target_count, rig.min_count) == ("nova-p5", "Degraded", 6, 8, None)
    assert (rig.instance_type, rig.restricted, rig.kubernetes_config, rig.software_update_status) == (
        "ml.p5.48xlarge", True, None, None)
    assert rig.auto_rollback_alarms == ["rig-health"]
    assert [(g.name, g.restricted) for g in snapshot.all_groups] == [
        ("gpu-workers", False), ("controller", False), ("nova-p5", True)]
    assert snapshot.group("nova-p5") is None  # group() finds instance groups: the ones the other policies judge


def test_autoscaling_is_parsed():
    scaling = ClusterSnapshot.from_describe_cluster(eks_with_rig_and_autoscaling()).auto_scaling
    assert (scaling.mode, scaling.auto_scaler_type, scaling.status, scaling.failure_message) == (
        "Enable", "Karpenter", "Failed", "CRD installation failed")


@pytest.mark.parametrize("members, restricted, autoscaling", [
    pytest.param({}, (), None, id="absent"),
    pytest.param({"RestrictedInstanceGroups": None, "AutoScaling": None}, (), None, id="null"),
    pytest.param({"RestrictedInstanceGroups": [], "AutoScaling": {}}, (), (None, None, None, None), id="empty"),
    pytest.param({"AutoScaling": {"Status": "Rebalancing", "Brand": "new"}}, (), (None, None, "Rebalancing", None),
                 id="unknown-status-kept-unknown-member-ignored"),
    pytest.param({"RestrictedInstanceGroups": [{"InstanceGroupName": "r", "ActiveOperations": None,
                                                "ScheduledUpdateConfig": {"ScheduleExpression": "x", "DeploymentConfig": None}}]},
                 ("r",), None, id="restricted-group-with-nulls"),
])
def test_new_members_are_tolerant(members, restricted, autoscaling):
    snapshot = ClusterSnapshot.from_describe_cluster({**slurm_response(), **members})
    assert tuple(g.name for g in snapshot.restricted_instance_groups) == restricted
    scaling = snapshot.auto_scaling
    assert (None if scaling is None else (scaling.mode, scaling.auto_scaler_type, scaling.status, scaling.failure_message)) == autoscaling
    for group in snapshot.restricted_instance_groups:
        assert (group.auto_rollback_alarms, group.scaling, group.active_operations) == ([], False, {})


@pytest.mark.parametrize("config, expected", [
    pytest.param({"AutoRollbackConfiguration": None}, [], id="alarms-null"),
    pytest.param({"AutoRollbackConfiguration": [], "RollingUpdatePolicy": None}, [], id="alarms-empty"),
    pytest.param({"AutoRollbackConfiguration": [{"AlarmName": "a", "Extra": 1}]}, ["a"], id="unknown-alarm-member"),
])
def test_deployment_config_tolerates_nulls(config, expected):
    group = {"InstanceGroupName": "g", "ActiveSoftwareUpdateConfig": config, "ActiveOperations": None}
    snapshot = ClusterSnapshot.from_describe_cluster({"ClusterName": "c", "InstanceGroups": [group]})
    assert snapshot.group("g").auto_rollback_alarms == expected
    assert snapshot.group("g").active_operations == {}


def test_a_restricted_group_without_a_name_is_an_error_with_its_path():
    with pytest.raises(InvalidSnapshotError, match=r"RestrictedInstanceGroups\.0\.InstanceGroupName: Field required"):
        ClusterSnapshot.from_describe_cluster({"ClusterName": "c", "RestrictedInstanceGroups": [{"Status": "Failed"}]})
