"""Reading HyperPod state: DescribeCluster, DescribeClusterNode, ListClusterNodes, ListClusters,
the cluster's tags (ListTags), and the HyperPod features a cluster may have (issue 19): its
operations, extensions, the training plans its groups run on, and its Cluster Events.

Events are hints; this is the truth. A cluster or node that no longer exists is an answer
(None), not an error; every other AWS error propagates so that Lambda retries. Tags are the
exception: they only select rules, so a failure to read them must not stop an evaluation
(TagCache raises TagsUnavailable and the caller evaluates the cluster as untagged). So are the
feature reads (`operations`, `extensions`, `training_plan`, `cluster_events`): a role without the
grant, a region without the API, throttling or a fault after botocore's retries raise
ReadUnavailable, and the caller leaves that part of the snapshot None (not read). A request AWS
refuses as malformed (a 4xx other than those) is our bug and propagates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from .constants import TAGS_MAX_AGE
from .errors import HyperPodGuardError, InvalidSnapshotError
from .fleet import Location, name_of, qualified
from .snapshot import ClusterExtension, ClusterOperation, ClusterSnapshot, Node, TrainingPlan

DEFAULT_TAGS_MAX_AGE = 300.0
#: finished operations (Done, Superseded) this young are kept in the snapshot; InProgress ones whatever their age
RECENT_OPERATIONS = timedelta(hours=24)
#: ListClusterOperations pages (newest first) read at most: every operation of RECENT_OPERATIONS and
#: at least one page of older ones, where an InProgress one that old would be
OPERATION_PAGES = 5
#: InProgress operations described (DescribeClusterOperation: the groups a Scaling scales) at most
DESCRIBED_OPERATIONS = 10
#: the extension status that needs no DescribeClusterExtension (its health is only read for the others)
EXTENSION_ACTIVE = "Active"
#: error codes that mean "this read cannot be made here": no grant, no such API in this region, throttled
UNAVAILABLE_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                               "UnknownOperation", "UnknownOperationException", "NotImplemented",
                               "InvalidAction", "Throttling", "ThrottlingException", "TooManyRequestsException"})

T = TypeVar("T")


def is_not_found(exc: ClientError) -> bool:
    """AWS says ResourceNotFound; moto answers a ValidationException "Could not find ..."."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    return code in ("ResourceNotFound", "ResourceNotFoundException") or (
        code in ("ValidationException", "ValidationError") and "could not find" in message.lower()
    )


@dataclass(frozen=True)
class ClusterSummary:
    """One ListClusters ClusterSummary: what the listing says of a cluster without a DescribeCluster."""

    name: str
    arn: str | None = None
    status: str | None = None
    #: the cluster's patch debt (UpToDate, UpdateAvailable, SecurityUpdateRequired, EndOfLife); None: not said
    image_version_status: str | None = None
    training_plan_arns: tuple[str, ...] = ()

    @classmethod
    def of(cls, summary: dict[str, Any], elsewhere: Location | None = None) -> ClusterSummary:
        """Named by the cluster's fleet key (`elsewhere`: the ClusterReader's location, None at home)."""
        return cls(qualified(summary["ClusterName"], elsewhere), summary.get("ClusterArn"),
                   summary.get("ClusterStatus"), summary.get("ImageVersionStatus"),
                   tuple(summary.get("TrainingPlanArns") or ()))


class MisplacedCluster(InvalidSnapshotError):
    """SageMaker answered about a cluster of another account or region than the reader's (fleet.py)."""


class ReadUnavailable(HyperPodGuardError):
    """A feature read could not be made (AccessDenied, an API this region or endpoint lacks, throttling or
    a fault after botocore's retries, the cluster gone meanwhile): that part of the snapshot stays None."""

    def __init__(self, operation: str, reason: str):
        super().__init__(f"{operation} failed: {reason}")
        self.operation = operation


def unavailable(exc: Exception) -> bool:
    """Whether a feature read's error means "not available here" rather than a request we got wrong."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return code in UNAVAILABLE_CODES or status >= 500 or is_not_found(exc)
    # a request botocore refuses to send is our bug; an endpoint down or a timeout is not
    return isinstance(exc, BotoCoreError) and not isinstance(exc, ParamValidationError)


def _feature_read(operation: str, read: Callable[[], T]) -> T:
    try:
        return read()
    except (ClientError, BotoCoreError) as exc:
        if unavailable(exc):
            raise ReadUnavailable(operation, " ".join(str(exc).split())) from exc
        raise


class ClusterReader:
    """The SageMaker reads of one account and region. Clusters are named by their fleet key (fleet.py): the
    API is called with the key's cluster name, and what comes back is named by the key again (a snapshot, a
    listing), so that everything downstream keeps same-named clusters of two accounts apart.
    `elsewhere`: the account and region this reader reads when it is not the hub's own (None: home)."""

    def __init__(self, sagemaker: Any, elsewhere: Location | None = None):
        self.sagemaker = sagemaker
        self.elsewhere = elsewhere

    def describe(self, cluster: str) -> ClusterSnapshot | None:
        try:
            response = self.sagemaker.describe_cluster(ClusterName=name_of(cluster))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        response.pop("ResponseMetadata", None)
        snapshot = ClusterSnapshot.from_describe_cluster(response)
        self._in_place(snapshot.arn, "DescribeCluster")
        return snapshot if snapshot.name == cluster else snapshot.model_copy(update={"name": cluster})

    def _in_place(self, arn: str | None, operation: str) -> None:
        """A reader of another account and region must be answered about that account and region: credentials
        of some other account (a role not what it should be) would put another cluster under this key."""
        found = Location.of_arn(arn)
        if self.elsewhere is not None and found is not None and found != self.elsewhere:
            raise MisplacedCluster(f"{operation} for {self.elsewhere} answered about {arn} ({found}): the "
                                   "credentials used are not that account's; nothing of it is evaluated")

    def describe_node(self, cluster: str, instance_id: str) -> Node | None:
        try:
            details = self.sagemaker.describe_cluster_node(ClusterName=name_of(cluster),
                                                           NodeId=instance_id)["NodeDetails"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        node = Node.model_validate(details)
        return None if node.status == "NotFound" else node

    def list_nodes(self, cluster: str) -> list[Node] | None:
        """Every node of the cluster (summaries: group, id, status), or None if the cluster is gone."""
        nodes: list[Node] = []
        try:
            for page in self.sagemaker.get_paginator("list_cluster_nodes").paginate(ClusterName=name_of(cluster)):
                nodes.extend(Node.model_validate(summary) for summary in page.get("ClusterNodeSummaries", []))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return nodes

    def list_clusters(self) -> list[str]:
        return [summary.name for summary in self.list_cluster_summaries()]

    def list_cluster_summaries(self) -> list[ClusterSummary]:
        """Every cluster's ListClusters summary (every page): names and patch debt in one listing."""
        summaries: list[ClusterSummary] = []
        for page in self.sagemaker.get_paginator("list_clusters").paginate():
            for summary in page.get("ClusterSummaries", []):
                self._in_place(summary.get("ClusterArn"), "ListClusters")
            summaries.extend(ClusterSummary.of(summary, self.elsewhere) for summary in page.get("ClusterSummaries", []))
        return summaries

    # -- the HyperPod features (ReadUnavailable when a read cannot be made) ------------------------------

    def operations(self, cluster: str, now: datetime) -> tuple[ClusterOperation, ...]:
        """The cluster's InProgress operations (described: their ScalingDetails) and those it finished in
        the last RECENT_OPERATIONS (summaries), newest first: ListClusterOperations, newest first, until a
        page ends before RECENT_OPERATIONS (at most OPERATION_PAGES pages)."""
        def read() -> tuple[ClusterOperation, ...]:
            recent = now - RECENT_OPERATIONS
            kept: list[ClusterOperation] = []
            pages = self.sagemaker.get_paginator("list_cluster_operations").paginate(
                ClusterName=name_of(cluster), SortBy="CreationTime", SortOrder="Descending")
            for number, page in enumerate(pages, start=1):
                summaries = [ClusterOperation.model_validate(s) for s in page.get("ClusterOperationSummaries", [])]
                kept += [o for o in summaries if o.status == "InProgress" or (o.creation_time or now) >= recent]
                if number >= OPERATION_PAGES or not summaries or (summaries[-1].creation_time or now) < recent:
                    break
            running = [o for o in kept if o.status == "InProgress"][:DESCRIBED_OPERATIONS]
            described = {o.operation_id: self._describe_operation(cluster, o.operation_id) for o in running}
            return tuple(described.get(o.operation_id) or o for o in kept)

        return _feature_read("ListClusterOperations", read)

    def _describe_operation(self, cluster: str, operation_id: str) -> ClusterOperation | None:
        try:
            answer = self.sagemaker.describe_cluster_operation(ClusterName=name_of(cluster), OperationId=operation_id)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        answer.pop("ResponseMetadata", None)
        return ClusterOperation.model_validate(answer)

    def extensions(self, cluster_arn: str) -> tuple[ClusterExtension, ...]:
        """Every extension of the cluster (ListClusterExtensions, every page); those not Active described
        (DescribeClusterExtension), with their NodeSummary and Health.Issues as `HealthIssues`."""
        def read() -> tuple[ClusterExtension, ...]:
            extensions: list[ClusterExtension] = []
            for page in self.sagemaker.get_paginator("list_cluster_extensions").paginate(ClusterArn=cluster_arn):
                for summary in page.get("Extensions", []):
                    if summary.get("Status") != EXTENSION_ACTIVE:
                        summary = self._describe_extension(cluster_arn, summary)
                    extensions.append(ClusterExtension.model_validate(summary))
            return tuple(extensions)

        return _feature_read("ListClusterExtensions", read)

    def _describe_extension(self, cluster_arn: str, summary: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.sagemaker.describe_cluster_extension(ClusterArn=cluster_arn,
                                                               ExtensionArn=summary["ExtensionArn"])
        except ClientError as exc:
            if is_not_found(exc):  # deleted since it was listed: the summary is what there was
                return summary
            raise
        issues = (answer.get("Health") or {}).get("Issues") or []
        return {**summary, **answer.get("ExtensionDetails", {}), "NodeSummary": answer.get("NodeSummary"),
                "HealthIssues": issues}

    def training_plan(self, arn: str) -> TrainingPlan | None:
        """DescribeTrainingPlan; None when the plan does not exist (any more)."""
        def read() -> TrainingPlan | None:
            try:
                answer = self.sagemaker.describe_training_plan(TrainingPlanName=arn)
            except ClientError as exc:
                if is_not_found(exc):
                    return None
                raise
            answer.pop("ResponseMetadata", None)
            return TrainingPlan.model_validate(answer)

        return _feature_read("DescribeTrainingPlan", read)

    def cluster_events(self, cluster: str, after: datetime, before: datetime, limit: int) -> list[dict[str, Any]]:
        """The cluster's Cluster Event summaries from `after` to `before`, oldest first, at most `limit`
        (ListClusterEvents, as many pages as that takes)."""
        def read() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            for page in self._event_pages(cluster, after, before, limit):
                events += page
                if len(events) >= limit:
                    break
            return events[:limit]

        return _feature_read("ListClusterEvents", read)

    def _event_pages(self, cluster: str, after: datetime, before: datetime,
                     limit: int) -> Iterator[list[dict[str, Any]]]:
        pages = self.sagemaker.get_paginator("list_cluster_events").paginate(
            ClusterName=name_of(cluster), EventTimeAfter=after, EventTimeBefore=before, SortBy="EventTime",
            SortOrder="Ascending", PaginationConfig={"PageSize": min(100, max(1, limit))})
        for page in pages:
            yield list(page.get("Events", []))

    def cluster_event(self, cluster: str, event_id: str) -> dict[str, Any] | None:
        """DescribeClusterEvent's EventDetails (with EventDetails.EventMetadata), or None if it is gone."""
        def read() -> dict[str, Any] | None:
            try:
                return dict(self.sagemaker.describe_cluster_event(ClusterName=name_of(cluster), EventId=event_id)
                            .get("EventDetails") or {}) or None
            except ClientError as exc:
                if is_not_found(exc):
                    return None
                raise

        return _feature_read("DescribeClusterEvent", read)

    def list_tags(self, arn: str) -> dict[str, str]:
        """The cluster's tags, {key: value}, from ListTags on its ARN (every page)."""
        tags: dict[str, str] = {}
        for page in self.sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
            tags.update((tag["Key"], tag.get("Value", "")) for tag in page.get("Tags", []))
        return tags


class TagsUnavailable(HyperPodGuardError):
    """ListTags failed (AccessDenied, throttling, an endpoint down): the cluster's tags are unknown."""


class TagCache:
    """Cluster tags by ARN, kept `max_age` seconds in the container: tags change rarely, and
    the sweep would otherwise call ListTags for every cluster every few minutes. A failed
    read is not kept, so the next evaluation tries again."""

    def __init__(self, reader: ClusterReader, max_age: float = DEFAULT_TAGS_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()  # the sweep evaluates clusters on several threads

    @classmethod
    def from_env(cls, reader: ClusterReader) -> TagCache:
        """TAGS_MAX_AGE: seconds to keep a cluster's tags (default 300)."""
        return cls(reader, TAGS_MAX_AGE.read())

    def get(self, arn: str) -> dict[str, str]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(arn)
        if entry and now - entry[0] < self.max_age:
            return dict(entry[1])
        try:
            tags = self.reader.list_tags(arn)
        except (ClientError, BotoCoreError) as exc:
            raise TagsUnavailable(f"ListTags on {arn} failed: {' '.join(str(exc).split())}") from exc
        with self._lock:
            self._entries[arn] = (now, tags)
        return dict(tags)


class TrainingPlanCache:
    """DescribeTrainingPlan answers by ARN, kept `max_age` seconds in the container: a plan's reserved
    capacity is bought ahead and changes rarely, while every event of a cluster on a plan would otherwise
    describe it again. A failed read is not kept (the next evaluation tries again); a plan that does not
    exist is (None)."""

    def __init__(self, reader: ClusterReader, max_age: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[float, TrainingPlan | None]] = {}
        self._lock = threading.Lock()

    def get(self, arn: str) -> TrainingPlan | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(arn)
        if entry and now - entry[0] < self.max_age:
            return entry[1]
        plan = self.reader.training_plan(arn)  # ReadUnavailable propagates, not kept
        with self._lock:
            self._entries[arn] = (now, plan)
        return plan
