"""moto lacks these HyperPod APIs; this stand-in answers them and validates against botocore's model.

The operations (none of them in moto 5.2.5; its server answers 500 "has not been implemented"):
ListClusterOperations, DescribeClusterOperation, ListClusterExtensions, DescribeClusterExtension,
DescribeTrainingPlan, ListClusterEvents and DescribeClusterEvent; the node actions remediation calls,
BatchRebootClusterNodes and BatchReplaceClusterNodes (Successful: the cluster's nodes among those asked
for, the others Failed; each call kept in `node_actions()`; nothing about the node changes); and it
completes moto's ListClusters summaries with `ImageVersionStatus` and `TrainingPlanArns` (moto leaves them out).

How it is reached: `serve()` adds these actions to moto's SageMaker responses in this process (its
server runs here, as hyperpod_state.py's injected clusters do), so the code under test reaches them
through AWS_ENDPOINT_URL with its own client (aws_clients.client("sagemaker")): botocore serializes
the request and parses the answer exactly as with AWS. Tests, the demo and the benchmarks put the
state with `put_operations`, `put_extensions`, `put_training_plans` and `put_cluster_events`; a cluster
nobody put anything for has no operations, extensions or events (what AWS answers for such a cluster).

What is validated, against the botocore model of the pinned botocore (service-2.json):
- every request (the JSON body as sent) against the operation's input shape, and every answer against
  its output shape, with botocore's own `ParamValidator` (as botocore.stub.Stubber does): required
  members, unknown members, types (timestamps included), `min` lengths and values, tagged unions;
- and, since ParamValidator checks none of them, here: enum values, `max` lengths and values, and
  `pattern`s (as full matches; a pattern Python's `re` cannot compile is not checked).
- Deviation, on purpose: a cluster ARN may also be the `cluster/<name>` form hyperpod_state.py gives
  injected clusters (AWS's is `cluster/<12 lowercase letters or digits>`).
- Not checked: error shapes, and header/query members (these operations have none).
A mismatch is refused loudly: what is put raises `ModelMismatch` at once; a request or an answer that
does not match comes back as the error `StandInModelMismatch` (HTTP 400), which no reader treats as
"not available" (cluster_reader.py), so the evaluation fails with the mismatch in its message; every
refusal is also kept in `rejections()`.

Values AWS may add to an enum tomorrow ("unknown statuses are news") are refused too, unless a test
declares them with `allow_new_value(shape, value)`: then the answer carries the value, like AWS would.
`deny(operation)` makes an operation answer AccessDeniedException (a role without the grant).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..timeutil import parse_timestamp

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-west-2"
#: the operations this stand-in answers (moto has none of them)
OPERATIONS = ("ListClusterOperations", "DescribeClusterOperation", "ListClusterExtensions",
              "DescribeClusterExtension", "DescribeTrainingPlan", "ListClusterEvents", "DescribeClusterEvent",
              "BatchRebootClusterNodes", "BatchReplaceClusterNodes")
#: the node actions among OPERATIONS: answered, and recorded in `node_actions()`
NODE_ACTIONS = ("BatchRebootClusterNodes", "BatchReplaceClusterNodes")
#: the error a request or answer that does not match the model comes back as
MISMATCH = "StandInModelMismatch"
#: the local cluster ARN form of hyperpod_state.py (accepted besides AWS's cluster/<id>)
_LOCAL_CLUSTER_ARN = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:cluster/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_CLUSTER_ARN_SHAPES = frozenset({"ClusterArn", "ClusterNameOrArn"})


class ModelMismatch(AssertionError):
    """What was put, asked or answered does not match botocore's model (an AssertionError: no AWS error
    handler may take it for an unavailable API)."""


# -- validation ----------------------------------------------------------------------------------------


@functools.cache
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def shape(name: str) -> Any:
    return _model().shape_for(name)


@functools.cache
def _pattern(source: str) -> re.Pattern[str] | None:
    try:
        return re.compile(source)
    except re.error:  # Java syntax Python lacks (\p{...}): not checked
        return None


def problems(value: Any, model_shape: Any, allowed: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """Everything about `value` that does not match `model_shape`: botocore's ParamValidator's report,
    then enums, max and patterns (which it does not check). `allowed`: (shape, value) enum values a test
    declared new."""
    from botocore.validate import ParamValidator

    found: list[str] = []
    report = ParamValidator().validate(value, model_shape)
    if report.has_errors():
        found.append(report.generate_report())
    _constraints(value, model_shape, "", found, allowed)
    return found


def _constraints(value: Any, model_shape: Any, path: str, found: list[str],
                 allowed: frozenset[tuple[str, str]]) -> None:
    kind, meta = model_shape.type_name, model_shape.metadata
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in model_shape.members.items():
            if name in value and value[name] is not None:
                _constraints(value[name], member, f"{path}.{name}", found, allowed)
    elif kind == "list" and isinstance(value, list | tuple):
        _bound(len(value), meta, path, "length", found)
        for index, item in enumerate(value):
            _constraints(item, model_shape.member, f"{path}[{index}]", found, allowed)
    elif kind == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            _constraints(key, model_shape.key, f"{path} (key {key})", found, allowed)
            _constraints(item, model_shape.value, f"{path}.{key}", found, allowed)
    elif kind == "string" and isinstance(value, str):
        enum = model_shape.enum
        if enum and value not in enum and (model_shape.name, value) not in allowed:
            found.append(f"{path or '(root)'}: {value!r} is not one of {model_shape.name}'s values {list(enum)}")
        _bound(len(value), meta, path, "length", found)
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value) and not (
                model_shape.name in _CLUSTER_ARN_SHAPES and _LOCAL_CLUSTER_ARN.fullmatch(value)):
            found.append(f"{path or '(root)'}: {value[:80]!r} does not match {model_shape.name}'s pattern "
                         f"{meta['pattern']}")
    elif kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        _bound(value, meta, path, "value", found)


def _bound(measure: int, meta: Mapping[str, Any], path: str, what: str, found: list[str]) -> None:
    if "max" in meta and measure > meta["max"]:
        found.append(f"{path or '(root)'}: {what} {measure} is over the model's max {meta['max']}")


def check(value: Any, shape_name: str, what: str, allowed: frozenset[tuple[str, str]] = frozenset()) -> None:
    """Raise ModelMismatch naming every problem of `value` against the model's `shape_name`."""
    found = problems(value, shape(shape_name), allowed)
    if found:
        raise ModelMismatch(f"{what} does not match botocore's {shape_name}: " + "; ".join(found))


# -- state ---------------------------------------------------------------------------------------------


@dataclass
class ClusterFeatures:
    """One cluster's operations (DescribeClusterOperation answers), extensions (ExtensionDetails with
    `NodeSummary` and `Health`), and Cluster Events (ClusterEventDetail documents)."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StandInState:
    """What the stand-in answers in one moto account and region (kept on moto's SageMaker backend, so
    that moto's reset, between tests, forgets it as it forgets the clusters)."""

    clusters: dict[str, ClusterFeatures] = field(default_factory=dict)
    #: DescribeTrainingPlan answers, by ARN
    training_plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: operations that answer AccessDeniedException
    denied: set[str] = field(default_factory=set)
    #: (shape, value): enum values a test declared AWS may add
    new_values: set[tuple[str, str]] = field(default_factory=set)
    #: requests answered, by operation (with the refused ones)
    calls: Counter[str] = field(default_factory=Counter)
    #: every refusal's message
    rejected: list[str] = field(default_factory=list)
    #: the node actions asked for, in order: (operation, node ids)
    node_actions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cluster(self, name: str) -> ClusterFeatures:
        return self.clusters.setdefault(name, ClusterFeatures())

    @property
    def allowed(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.new_values)


_ATTRIBUTE = "_hyperpod_guard_standin"


def _backend(account: str, region: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[account][region]


def state(*, region: str = REGION, account: str = ACCOUNT) -> StandInState:
    backend = _backend(account, region)
    found = getattr(backend, _ATTRIBUTE, None)
    if found is None:
        found = StandInState()
        setattr(backend, _ATTRIBUTE, found)
    return found


def _arns(cluster: Any) -> set[str]:
    """The ARNs a cluster answers to: moto's, and the one DescribeCluster says (an injected snapshot's own)."""
    return {arn for arn in (getattr(cluster, "arn", None), (getattr(cluster, "snapshot", None) or {}).get("ClusterArn"))
            if arn}


def _cluster_arn(backend: Any, name: str) -> str:
    """The cluster's ARN as DescribeCluster gives it."""
    cluster = backend.clusters.get(name)
    if cluster is not None:
        return str((getattr(cluster, "snapshot", None) or {}).get("ClusterArn") or cluster.arn)
    return f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:cluster/{name}"


def _cluster_name(backend: Any, name_or_arn: str) -> str:
    """A ClusterName or a ClusterArn as the cluster's name (ARNs of injected clusters carry the name)."""
    if not name_or_arn.startswith("arn:"):
        return name_or_arn
    for name, cluster in backend.clusters.items():
        if name_or_arn in _arns(cluster):
            return str(name)
    return name_or_arn.rsplit("/", 1)[-1]


def _datetimes(value: Any, timestamps: frozenset[str]) -> Any:
    """ISO strings of timestamp members -> aware datetimes (put helpers take either)."""
    if isinstance(value, Mapping):
        return {k: (parse_timestamp(v) if k in timestamps and isinstance(v, str) else _datetimes(v, timestamps))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_datetimes(v, timestamps) for v in value]
    return value


_TIMES = frozenset({"CreationTime", "LastModifiedTime", "EventTime", "StartTime", "EndTime"})


# -- put helpers (tests, the demo) ---------------------------------------------------------------------


def put_operations(cluster: str, operations: Iterable[Mapping[str, Any]], *, region: str = REGION,
                   account: str = ACCOUNT) -> None:
    """The cluster's operations, as DescribeClusterOperation answers them (OperationId, Type, Status,
    CreationTime, ScalingDetails...; ClusterArn is the cluster's). Replaces what was put before."""
    backend, standin = _backend(account, region), state(region=region, account=account)
    documents = []
    for operation in operations:
        document = {"ClusterArn": _cluster_arn(backend, cluster), **_datetimes(operation, _TIMES)}
        check(document, "DescribeClusterOperationResponse", f"operation of {cluster}", standin.allowed)
        documents.append(document)
    with standin.lock:
        standin.cluster(cluster).operations = documents


def put_extensions(cluster: str, extensions: Iterable[Mapping[str, Any]], *, region: str = REGION,
                   account: str = ACCOUNT) -> None:
    """The cluster's extensions: each ExtensionDetails (ExtensionArn, ExtensionName, ExtensionVersion,
    Status, CreationTime...), with optional `NodeSummary` {TotalCount, ActiveCount} and `Health`
    {Issues: [{Code, Message, NodeCount}]} as DescribeClusterExtension answers them."""
    backend, standin = _backend(account, region), state(region=region, account=account)
    documents = []
    for extension in extensions:
        details = {"ClusterArn": _cluster_arn(backend, cluster),
                   **{k: v for k, v in _datetimes(extension, _TIMES).items() if k not in ("NodeSummary", "Health")}}
        answer = {"ExtensionDetails": details,
                  **{k: extension[k] for k in ("NodeSummary", "Health") if extension.get(k) is not None}}
        check(answer, "DescribeClusterExtensionResponse", f"extension of {cluster}", standin.allowed)
        documents.append(answer)
    with standin.lock:
        standin.cluster(cluster).extensions = documents


def put_training_plans(plans: Iterable[Mapping[str, Any]], *, region: str = REGION, account: str = ACCOUNT) -> None:
    """Training plans as DescribeTrainingPlan answers them (TrainingPlanArn, TrainingPlanName, Status,
    counts, ReservedCapacitySummaries...), added to those put before."""
    standin = state(region=region, account=account)
    for plan in plans:
        document = _datetimes(dict(plan), _TIMES)
        check(document, "DescribeTrainingPlanResponse", f"training plan {plan.get('TrainingPlanArn')}",
              standin.allowed)
        with standin.lock:
            standin.training_plans[document["TrainingPlanArn"]] = document


def put_cluster_events(cluster: str, events: Iterable[Mapping[str, Any]], *, region: str = REGION,
                       account: str = ACCOUNT) -> None:
    """Cluster Events of the cluster, as DescribeClusterEvent's `EventDetails` (EventId, ResourceType,
    EventTime, Description, EventLevel, EventDetails.EventMetadata...; ClusterArn and ClusterName are the
    cluster's), added to those put before."""
    backend, standin = _backend(account, region), state(region=region, account=account)
    documents = []
    for event in events:
        document = {"ClusterArn": _cluster_arn(backend, cluster), "ClusterName": cluster,
                    **_datetimes(event, _TIMES)}
        check({"EventDetails": document}, "DescribeClusterEventResponse", f"Cluster Event of {cluster}",
              standin.allowed)
        documents.append(document)
    with standin.lock:
        standin.cluster(cluster).events += documents


def deny(*operations: str, region: str = REGION, account: str = ACCOUNT) -> None:
    """These operations answer AccessDeniedException from now on (a role without the grant)."""
    standin = state(region=region, account=account)
    with standin.lock:
        standin.denied.update(operations)


def allow_new_value(shape_name: str, value: str, *, region: str = REGION, account: str = ACCOUNT) -> None:
    """Declare `value` a value AWS may add to the enum `shape_name` (e.g. ("ExtensionStatus", "Paused")):
    put and answered like a modelled one. Every other value outside the model is refused."""
    if not shape(shape_name).enum:
        raise ModelMismatch(f"{shape_name} is not an enum of botocore's SageMaker model")
    standin = state(region=region, account=account)
    with standin.lock:
        standin.new_values.add((shape_name, value))


def calls(*, region: str = REGION, account: str = ACCOUNT) -> Counter[str]:
    """Requests the stand-in answered, by operation."""
    return Counter(state(region=region, account=account).calls)


def node_actions(*, region: str = REGION, account: str = ACCOUNT) -> list[tuple[str, tuple[str, ...]]]:
    """The BatchReboot/ReplaceClusterNodes calls answered: (operation, node ids), in order."""
    return list(state(region=region, account=account).node_actions)


def rejections(*, region: str = REGION, account: str = ACCOUNT) -> list[str]:
    return list(state(region=region, account=account).rejected)


# -- the answers ---------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _page(items: list[dict[str, Any]], params: Mapping[str, Any], key: str) -> dict[str, Any]:
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    page: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        page["NextToken"] = str(start + size)
    return page


def _time(params: Mapping[str, Any], key: str) -> datetime | None:
    value = params.get(key)
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else parse_timestamp(value)


def _between(when: datetime, params: Mapping[str, Any], after: str, before: str) -> bool:
    low, high = _time(params, after), _time(params, before)
    return (low is None or when > low) and (high is None or when < high)


def _sorted(items: list[dict[str, Any]], key: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item[key], reverse=params.get("SortOrder") == "Descending")


def _subset(document: Mapping[str, Any], shape_name: str) -> dict[str, Any]:
    members = shape(shape_name).members
    return {k: copy.deepcopy(v) for k, v in document.items() if k in members}


def _answer(backend: Any, standin: StandInState, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if operation == "DescribeTrainingPlan":
        wanted = params["TrainingPlanName"]
        plan = next((p for arn, p in standin.training_plans.items()
                     if wanted in (arn, p.get("TrainingPlanName"))), None)
        if plan is None:
            raise _Refused("ResourceNotFound", f"Training plan {wanted} not found")
        return copy.deepcopy(plan)
    name = _cluster_name(backend, params.get("ClusterName") or params["ClusterArn"])
    if name not in backend.clusters:
        raise _Refused("ResourceNotFound", f"Cluster {name} not found")
    features = standin.clusters.get(name, ClusterFeatures())
    if operation == "ListClusterOperations":
        found = [_subset(o, "ClusterOperationSummary") for o in features.operations
                 if params.get("Status") in (None, o.get("Status")) and params.get("Type") in (None, o.get("Type"))
                 and _between(o["CreationTime"], params, "CreationTimeAfter", "CreationTimeBefore")]
        return _page(_sorted(found, "CreationTime", params), params, "ClusterOperationSummaries")
    if operation == "DescribeClusterOperation":
        operation_doc = next((o for o in features.operations if o["OperationId"] == params["OperationId"]), None)
        if operation_doc is None:
            raise _Refused("ResourceNotFound", f"Operation {params['OperationId']} not found")
        return copy.deepcopy(operation_doc)
    if operation == "ListClusterExtensions":
        found = [_subset(e["ExtensionDetails"], "ExtensionSummary") for e in features.extensions]
        return _page(found, params, "Extensions")
    if operation == "DescribeClusterExtension":
        extension = next((e for e in features.extensions
                          if e["ExtensionDetails"]["ExtensionArn"] == params["ExtensionArn"]), None)
        if extension is None:
            raise _Refused("ResourceNotFound", f"Extension {params['ExtensionArn']} not found")
        return copy.deepcopy(extension)
    if operation == "ListClusterEvents":
        found = [_subset(e, "ClusterEventSummary") for e in features.events
                 if _between(e["EventTime"], params, "EventTimeAfter", "EventTimeBefore")
                 and all(params.get(k) in (None, e.get(k))
                         for k in ("ResourceType", "InstanceGroupName", "OperationId"))
                 and params.get("NodeId") in (None, e.get("InstanceId"))]
        return _page(_sorted(found, "EventTime", params), params, "Events")
    if operation in NODE_ACTIONS:
        known = getattr(backend.clusters[name], "nodes", {})
        asked = list(params["NodeIds"])
        standin.node_actions.append((operation, tuple(asked)))
        return {"Successful": [n for n in asked if n in known],
                "Failed": [{"NodeId": n, "ErrorCode": "InstanceIdNotFound", "Message": f"Node {n} not found"}
                           for n in asked if n not in known]}
    if operation == "DescribeClusterEvent":
        event = next((e for e in features.events if e["EventId"] == params["EventId"]), None)
        if event is None:
            raise _Refused("ResourceNotFound", f"Event {params['EventId']} not found")
        return {"EventDetails": copy.deepcopy(event)}
    raise AssertionError(operation)


def _respond(response: Any, operation: str) -> Any:
    """One request to moto's SageMaker for `operation`: validated, answered, the answer validated."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.responses import ActionResult

    backend = _backend(response.current_account, response.region)
    standin = state(region=response.region, account=response.current_account)
    model = _model().operation_model(operation)
    with standin.lock:
        standin.calls[operation] += 1
        try:
            if operation in standin.denied:
                raise _Refused("AccessDeniedException", f"not authorized to perform: sagemaker:{operation}")
            params = json.loads(response.body or "{}")
            found = problems(params, model.input_shape, standin.allowed)
            if found:
                raise _Refused(MISMATCH, f"{operation} request does not match botocore's model: {'; '.join(found)}")
            answer = _answer(backend, standin, operation, params)
            found = problems(answer, model.output_shape, standin.allowed)
            if found:
                raise _Refused(MISMATCH, f"{operation} answer does not match botocore's model: {'; '.join(found)}")
        except _Refused as refused:
            if refused.code == MISMATCH:
                standin.rejected.append(refused.message)
            error = JsonRESTError(refused.code, refused.message)
            error.code = refused.status
            raise error from None
    return ActionResult(answer)


def _list_clusters(original: Any) -> Any:
    """moto's ListClusters, with each injected cluster's `ImageVersionStatus` (a top-level key of what was
    put) and `TrainingPlanArns` (its groups'), as AWS's ClusterSummary carries them; validated."""
    def list_clusters(self: Any) -> Any:
        result = original(self)
        backend = _backend(self.current_account, self.region)
        by_arn = {getattr(c, "arn", None): c for c in backend.clusters.values()}
        summaries = result.result.get("ClusterSummaries") or []
        for summary in summaries:
            document = getattr(by_arn.get(summary.get("ClusterArn")), "snapshot", None) or {}
            if document.get("ImageVersionStatus"):
                summary["ImageVersionStatus"] = document["ImageVersionStatus"]
            plans = [g["TrainingPlanArn"] for g in document.get("InstanceGroups") or [] if g.get("TrainingPlanArn")]
            if plans:
                summary["TrainingPlanArns"] = list(dict.fromkeys(plans))
        found = problems({"ClusterSummaries": summaries}, shape("ListClustersResponse"),
                         state(region=self.region, account=self.current_account).allowed)
        if found:
            raise ModelMismatch("ListClusters answer does not match botocore's model: " + "; ".join(found))
        return result

    list_clusters.standin = True  # type: ignore[attr-defined]
    return list_clusters


_served = threading.Lock()


def serve() -> None:
    """Answer OPERATIONS in this process's moto server (idempotent). Call once before the code under
    test reaches moto (a test fixture, the demo)."""
    from botocore import xform_name
    from moto.sagemaker.responses import SageMakerResponse

    with _served:
        for operation in OPERATIONS:
            method = xform_name(operation)
            if not getattr(getattr(SageMakerResponse, method, None), "standin", False):
                def respond(self: Any, _operation: str = operation) -> Any:
                    return _respond(self, _operation)

                respond.standin = True  # type: ignore[attr-defined]
                setattr(SageMakerResponse, method, respond)
        if not getattr(SageMakerResponse.list_clusters, "standin", False):
            SageMakerResponse.list_clusters = _list_clusters(SageMakerResponse.list_clusters)  # type: ignore[method-assign]
