"""ClusterSnapshot: what one DescribeCluster (plus optional DescribeClusterNode) says.

Built from a DescribeCluster response (boto3 `datetime`s or ISO strings) or from a State
Change event's detail, which has the same shape. Pydantic models, frozen, with the API's
PascalCase names as aliases. Tolerant on purpose: every field but the cluster name is
optional (Slurm clusters have no `Orchestrator`, the event carries fewer fields than the
API), unknown fields are ignored, and enum-like fields are plain strings so that a status
AWS adds tomorrow is kept, not rejected. The constants below are the values we act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_pascal
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from .errors import InvalidSnapshotError
from .timeutil import Timestamp


class ClusterStatus:
    CREATING, UPDATING, SYSTEM_UPDATING = "Creating", "Updating", "SystemUpdating"
    IN_SERVICE, FAILED, ROLLING_BACK, DELETING = "InService", "Failed", "RollingBack", "Deleting"
    #: botocore's ClusterStatus enum (tests/unit/test_policy_unknown_status.py keeps it equal): a value
    #: outside it is news (policies/unknown_status.py). Constants, not the model read at import: loading
    #: the sagemaker service model costs ~35 ms and ~15 MB of a cold start
    KNOWN = frozenset({CREATING, UPDATING, SYSTEM_UPDATING, IN_SERVICE, FAILED, ROLLING_BACK, DELETING})


class GroupStatus:
    CREATING, UPDATING, SYSTEM_UPDATING = "Creating", "Updating", "SystemUpdating"
    IN_SERVICE, DEGRADED, FAILED, DELETING = "InService", "Degraded", "Failed", "Deleting"
    #: botocore's InstanceGroupStatus enum (restricted instance groups share it)
    KNOWN = frozenset({CREATING, UPDATING, SYSTEM_UPDATING, IN_SERVICE, DEGRADED, FAILED, DELETING})


class NodeStatus:
    """A node's `InstanceStatus.Status` (botocore's ClusterInstanceStatus)."""

    RUNNING, FAILURE, PENDING, SHUTTING_DOWN = "Running", "Failure", "Pending", "ShuttingDown"
    SYSTEM_UPDATING, NOT_FOUND = "SystemUpdating", "NotFound"
    DEEP_HEALTH_CHECK_IN_PROGRESS = "DeepHealthCheckInProgress"
    KNOWN = frozenset({RUNNING, FAILURE, PENDING, SHUTTING_DOWN, SYSTEM_UPDATING, DEEP_HEALTH_CHECK_IN_PROGRESS,
                       NOT_FOUND})


class TrainingPlanStatus:
    """DescribeTrainingPlan's `Status` (botocore's TrainingPlanStatus; ReservedCapacityStatus has the same values)."""

    PENDING, ACTIVE, SCHEDULED, EXPIRED, FAILED = "Pending", "Active", "Scheduled", "Expired", "Failed"
    KNOWN = frozenset({PENDING, ACTIVE, SCHEDULED, EXPIRED, FAILED})


class SoftwareUpdateStatus:
    PENDING, IN_PROGRESS, SUCCEEDED = "Pending", "InProgress", "Succeeded"
    #: reached from RollbackInProgress: the rollback itself failed
    FAILED = "Failed"
    ROLLBACK_IN_PROGRESS, ROLLBACK_COMPLETE = "RollbackInProgress", "RollbackComplete"


#: statuses in which HyperPod is still reconciling, so current != desired is expected
RECONCILING = frozenset({"Creating", "Updating", "SystemUpdating", "Deleting", "RollingBack"})


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


class Taint(ApiModel):
    key: str
    value: str | None = None
    effect: str

    @field_validator("value")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None  # Kubernetes treats "" and no value alike

    def __str__(self) -> str:
        return f"{self.key}={self.value or ''}:{self.effect}"

    # Taint drift compares thousands of taints per cluster: pydantic's generic __eq__/__hash__
    # cost ~4x these (a taint is its three fields, nothing else).
    def __eq__(self, other: object) -> bool:
        if type(other) is not Taint:
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((self.key, self.value, self.effect))


class TaintItem(TypedDict):
    """A taint as DescribeCluster spells it: what `KubernetesConfig` validates and keeps."""

    Key: str
    Value: NotRequired[str | None]
    Effect: str


_TAINTS: TypeAdapter[tuple[Taint, ...]] = TypeAdapter(tuple[Taint, ...])


class KubernetesConfig(ApiModel):
    """A group's (or node's) labels and taints, current (on the nodes) and desired (declared).

    The taints are validated as DescribeCluster spells them (`*_taint_items`, checked in C: a large
    cluster has thousands) and become `Taint`s when first read: taint drift compares the items and
    needs no Taint unless something differs."""

    current_labels: dict[str, str] = Field(default_factory=dict)
    desired_labels: dict[str, str] = Field(default_factory=dict)
    current_taint_items: tuple[TaintItem, ...] = Field(default=(), alias="CurrentTaints")
    desired_taint_items: tuple[TaintItem, ...] = Field(default=(), alias="DesiredTaints")

    @field_validator("current_labels", "desired_labels", mode="before")
    @classmethod
    def _no_labels(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("current_taint_items", "desired_taint_items", mode="before")
    @classmethod
    def _no_taints(cls, value: Any) -> Any:
        return () if value is None else value

    @cached_property
    def current_taints(self) -> tuple[Taint, ...]:
        return _TAINTS.validate_python(self.current_taint_items)

    @cached_property
    def desired_taints(self) -> tuple[Taint, ...]:
        return _TAINTS.validate_python(self.desired_taint_items)


class AutoScalingStatus:
    IN_SERVICE, CREATING, DELETING, FAILED = "InService", "Creating", "Deleting", "Failed"


class AlarmRef(ApiModel):
    alarm_name: str


class DeploymentConfig(ApiModel):
    """A DeploymentConfiguration: the CloudWatch alarms that roll an AMI update back."""

    auto_rollback_configuration: tuple[AlarmRef, ...] = ()
    wait_interval_in_seconds: int | None = None

    @field_validator("auto_rollback_configuration", mode="before")
    @classmethod
    def _no_alarms(cls, value: Any) -> Any:
        return () if value is None else value


class ScheduledUpdateConfig(ApiModel):
    schedule_expression: str | None = None
    deployment_config: DeploymentConfig | None = None


class PatchSchedule(ApiModel):
    """ClusterPatchScheduleDetails."""

    next_patch_date: Timestamp = None


class AutoPatchConfig(ApiModel):
    """An instance group's `AutoPatchConfig` (ClusterAutoPatchConfigDetails): when HyperPod patches
    its nodes' images, and how (WhenIdle, WhenAllIdle, DrainFirst)."""

    patching_strategy: str | None = None
    current_patch_schedule: PatchSchedule | None = None
    desired_patch_schedule: PatchSchedule | None = None
    idle_wait_window_in_seconds: int | None = None
    drain_policy: Any = None


#: a node count as DescribeCluster gives it (the API allows 0..6758 per group; generous bound):
#: anything else is a malformed document, not arithmetic for the policies to overflow on
NodeCount = Annotated[int, Field(ge=0, le=1_000_000)]


class InstanceGroup(ApiModel):
    #: restricted instance groups (RestrictedInstanceGroups) are the subclass below
    restricted: ClassVar[bool] = False

    name: str = Field(alias="InstanceGroupName")
    instance_type: str | None = None
    status: str | None = None
    current_count: NodeCount | None = None
    target_count: NodeCount | None = None
    min_count: NodeCount | None = None
    execution_role: str | None = None
    kubernetes_config: KubernetesConfig | None = None
    software_update_status: str | None = None
    current_image_id: str | None = None
    desired_image_id: str | None = None
    image_version_status: str | None = None
    current_image_release_version: str | None = None
    desired_image_release_version: str | None = None
    auto_patch_config: AutoPatchConfig | None = None
    #: the training plan whose reserved capacity the group runs on (its status as DescribeCluster says)
    training_plan_arn: str | None = None
    training_plan_status: str | None = None
    target_state_count: NodeCount | None = None
    #: e.g. {"Scaling": 1} while a scaling operation runs
    active_operations: dict[str, int] = Field(default_factory=dict)
    active_software_update_config: DeploymentConfig | None = None
    scheduled_update_config: ScheduledUpdateConfig | None = None

    @field_validator("active_operations", mode="before")
    @classmethod
    def _no_operations(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def scaling(self) -> bool:
        return self.active_operations.get("Scaling", 0) > 0

    @property
    def auto_rollback_alarms(self) -> list[str]:
        """Alarm names of the running update's and the scheduled update's auto-rollback, in order, once each."""
        configs = [self.active_software_update_config]
        if self.scheduled_update_config:
            configs.append(self.scheduled_update_config.deployment_config)
        names = [a.alarm_name for c in configs if c for a in c.auto_rollback_configuration]
        return list(dict.fromkeys(names))


class RestrictedInstanceGroup(InstanceGroup):
    """One of DescribeCluster's `RestrictedInstanceGroups` (RIGs: SageMaker-managed groups for
    training models such as Amazon Nova). Same Status and counts as an instance group; the
    API gives it no MinCount, KubernetesConfig or software-update status (those stay None)."""

    restricted: ClassVar[bool] = True


class AutoScaling(ApiModel):
    """DescribeCluster's `AutoScaling` (EKS clusters with Karpenter-based autoscaling)."""

    mode: str | None = None
    auto_scaler_type: str | None = None
    status: str | None = None
    failure_message: str | None = None


class InstanceStatus(ApiModel):
    status: str | None = None
    message: str | None = None


class Node(ApiModel):
    """One DescribeClusterNode `NodeDetails` (ListClusterNodes summaries fit too)."""

    instance_id: str
    instance_group_name: str | None = None
    instance_type: str | None = None
    instance_status: InstanceStatus | None = None
    #: when this instance was launched: a report older than that is about its predecessor
    launch_time: Timestamp = None
    kubernetes_config: KubernetesConfig | None = None
    current_image_id: str | None = None
    desired_image_id: str | None = None
    current_image_release_version: str | None = None
    desired_image_release_version: str | None = None
    image_version_status: str | None = None
    last_software_update_time: Timestamp = None
    #: ip-10-1-2-3.us-west-2.compute.internal: its first label is the node's Slurm name (workload/slurm.py)
    private_dns_hostname: str | None = None

    @property
    def status(self) -> str | None:
        return self.instance_status.status if self.instance_status else None


class OperationType:
    SCALING, DEEP_HEALTH_CHECK = "Scaling", "DeepHealthCheck"


class OperationStatus:
    IN_PROGRESS, SUPERSEDED, DONE = "InProgress", "Superseded", "Done"


class ExtensionStatus:
    CREATING, ACTIVE, UPDATING, DELETING = "Creating", "Active", "Updating", "Deleting"
    CREATE_FAILED, UPDATE_FAILED, DELETE_FAILED, DEGRADED = "CreateFailed", "UpdateFailed", "DeleteFailed", "Degraded"


class ClusterOperation(ApiModel):
    """A ListClusterOperations summary (ClusterOperationSummary) or a DescribeClusterOperation answer:
    Scaling or DeepHealthCheck, InProgress / Superseded / Done."""

    operation_id: str
    type: str | None = None
    status: str | None = None
    creation_time: Timestamp = None
    #: DescribeClusterOperation only: per group {InstanceGroupName, Status, Original, Desired}
    scaling_details: tuple[dict[str, Any], ...] = ()


class ExtensionNodeSummary(ApiModel):
    total_count: int | None = None
    active_count: int | None = None


class ExtensionHealthIssue(ApiModel):
    code: str | None = None
    message: str | None = None
    node_count: int | None = None


class ClusterExtension(ApiModel):
    """One cluster extension: its ExtensionSummary (ListClusterExtensions), with DescribeClusterExtension's
    `NodeSummary` and `Health` (only when a node has a problem) when it was described."""

    extension_arn: str
    extension_name: str | None = None
    extension_version: str | None = None
    status: str | None = None
    creation_time: Timestamp = None
    node_summary: ExtensionNodeSummary | None = None
    health_issues: tuple[ExtensionHealthIssue, ...] = ()


class ReservedCapacity(ApiModel):
    """A training plan's ReservedCapacitySummary: a block of instances from StartTime to EndTime."""

    reserved_capacity_arn: str | None = None
    instance_type: str | None = None
    total_instance_count: int | None = None
    status: str | None = None
    start_time: Timestamp = None
    end_time: Timestamp = None


class TrainingPlan(ApiModel):
    """A DescribeTrainingPlan answer, for a plan an instance group runs on (`TrainingPlanArn`)."""

    training_plan_arn: str
    training_plan_name: str | None = None
    status: str | None = None
    status_message: str | None = None
    start_time: Timestamp = None
    end_time: Timestamp = None
    total_instance_count: int | None = None
    available_instance_count: int | None = None
    in_use_instance_count: int | None = None
    unhealthy_instance_count: int | None = None
    available_spare_instance_count: int | None = None
    reserved_capacity_summaries: tuple[ReservedCapacity, ...] = ()


class Orchestrator(ApiModel):
    eks: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None


Orchestration = Literal["eks", "slurm", "unknown"]


class ClusterSnapshot(ApiModel):
    name: str = Field(alias="ClusterName", min_length=1)
    arn: str | None = Field(default=None, alias="ClusterArn")
    status: str | None = Field(default=None, alias="ClusterStatus")
    creation_time: Timestamp = None
    failure_message: str | None = None
    instance_groups: tuple[InstanceGroup, ...] = ()
    restricted_instance_groups: tuple[RestrictedInstanceGroup, ...] = ()
    auto_scaling: AutoScaling | None = None
    node_recovery: str | None = None
    node_provisioning_mode: str | None = None
    orchestrator: Orchestrator | None = None
    #: our extension: DescribeClusterNode `NodeDetails` for nodes we looked at, if any
    nodes: tuple[Node, ...] = ()
    #: our extensions, read only for a cluster that has the feature (cluster_reader.py): ListClusters'
    #: `ImageVersionStatus` of the cluster, its operations (ListClusterOperations), its extensions
    #: (ListClusterExtensions + DescribeClusterExtension), the training plans its groups run on
    #: (DescribeTrainingPlan); None: not read (a policy then says nothing about it)
    image_version_status: str | None = None
    operations: tuple[ClusterOperation, ...] | None = None
    extensions: tuple[ClusterExtension, ...] | None = None
    training_plans: tuple[TrainingPlan, ...] | None = None
    #: True when built from an event alone, without a DescribeCluster read
    partial: bool = Field(default=False, exclude=True)

    @field_validator("instance_groups", "restricted_instance_groups", "nodes", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @property
    def all_groups(self) -> tuple[InstanceGroup, ...]:
        """Instance groups, then restricted instance groups (tell them apart by `.restricted`)."""
        return self.instance_groups + self.restricted_instance_groups

    @property
    def orchestration(self) -> Orchestration:
        """EKS when DescribeCluster names it; Slurm clusters carry no `Orchestrator` key."""
        if self.orchestrator and self.orchestrator.eks is not None:
            return "eks"
        return "unknown" if self.partial else "slurm"

    def group(self, name: str | None) -> InstanceGroup | None:
        return next((g for g in self.instance_groups if g.name == name), None)

    def node(self, instance_id: str | None) -> Node | None:
        return next((n for n in self.nodes if n.instance_id == instance_id), None)

    @classmethod
    def from_describe_cluster(cls, response: Any, nodes: list[Any] | None = None) -> ClusterSnapshot:
        """DescribeCluster response (+ optional NodeDetails list) -> snapshot, or InvalidSnapshotError."""
        if not isinstance(response, Mapping):
            raise InvalidSnapshotError(
                f"snapshot must be a JSON object (DescribeCluster response), got {type(response).__name__}")
        data = dict(response)
        if nodes is not None:
            data["Nodes"] = nodes
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidSnapshotError(f"invalid DescribeCluster snapshot: {one_line(exc)}") from None

    @classmethod
    def minimal(cls, name: str, arn: str | None = None) -> ClusterSnapshot:
        """What we know of a cluster from an event alone (no DescribeCluster read)."""
        return cls(name=name, arn=arn, partial=True)


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line: the first problem, its path, and how many more."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    # a path part can be a key from the input (a label name, say): escape what is not printable
    path = ".".join(str(p) if str(p).isprintable() else repr(p) for p in first["loc"]) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{path}: {first['msg']}{more}".splitlines())
