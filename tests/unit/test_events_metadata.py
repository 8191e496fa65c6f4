"""parse_event: Cluster Events' typed EventMetadata members (SlurmHealth, DatabaseConfiguration) and OperationId."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hyperpod_guard.errors import InvalidEventError
from hyperpod_guard.events import ClusterEvent, DatabaseConfiguration, SlurmHealth, parse_event
from tests.botocore_model import NewValue, model_errors
from tests.conftest import REPO


def cluster_event(metadata: Any = None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"EventId": "e1", "ClusterName": "slurm-prod", "ResourceType": "Cluster",
                               "EventTime": "2026-11-28T02:00:00Z", **extra}
    if metadata is not None:
        details["EventDetails"] = {"EventMetadata": metadata}
    return {"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
            "time": "2026-11-28T02:00:01Z", "detail": {"EventDetails": details}}


def parsed(raw: dict[str, Any]) -> ClusterEvent:
    event = parse_event(raw)
    assert isinstance(event, ClusterEvent)
    return event


@pytest.mark.parametrize("metadata, health, database", [
    ({"SlurmHealth": {"Component": "Slurmdbd", "Status": "Unhealthy", "Reason": "DaemonDown"}},
     SlurmHealth(component="Slurmdbd", status="Unhealthy", reason="DaemonDown"), None),
    ({"SlurmHealth": {"Component": "Slurmdbd", "Status": "Healthy"}},
     SlurmHealth(component="Slurmdbd", status="Healthy"), None),
    ({"SlurmHealth": {"Component": "Slurmrestd", "Status": "Wobbly", "Reason": "NewReason", "Extra": 1}},
     SlurmHealth(component="Slurmrestd", status="Wobbly", reason="NewReason"), None),  # unknown values kept
    ({"SlurmHealth": {}}, SlurmHealth(), None),  # required members missing: kept as None, the policy reports it
    ({"DatabaseConfiguration": {"RollbackStatus": "RevertFailed", "FailureMessage": "denied", "Advisory": "a"}},
     None, DatabaseConfiguration(rollback_status="RevertFailed", failure_message="denied", advisory="a")),
    ({"DatabaseConfiguration": {"RollbackStatus": "SomethingNew"}},
     None, DatabaseConfiguration(rollback_status="SomethingNew")),
    ({"DatabaseConfiguration": {"Advisory": "Restart slurmctld"}}, None,
     DatabaseConfiguration(advisory="Restart slurmctld")),
    ({"Instance": {"FailureMessage": "x"}}, None, None),
    (None, None, None),
], ids=["unhealthy", "healthy", "unknown-values", "empty", "revert-failed", "unknown-rollback", "succeeded",
        "other-member", "no-metadata"])
def test_typed_metadata(metadata, health, database):
    info = parsed(cluster_event(metadata)).info
    assert (info.slurm_health, info.database_configuration) == (health, database)
    if metadata is not None:  # the raw member stays as sent, for failure_message and other readers
        assert info.event_details.event_metadata == metadata


def test_database_failure_message_is_the_events_failure_message():
    info = parsed(cluster_event({"DatabaseConfiguration": {"RollbackStatus": "RevertFailed",
                                                           "FailureMessage": "Access denied"}})).info
    assert info.failure_message == "Access denied"


def test_typed_metadata_is_not_serialized_twice():
    info = parsed(cluster_event({"SlurmHealth": {"Component": "Slurmdbd", "Status": "Healthy"}})).info
    assert info.event_details.model_dump(by_alias=True) == {
        "EventMetadata": {"SlurmHealth": {"Component": "Slurmdbd", "Status": "Healthy"}}}


@pytest.mark.parametrize("extra, operation", [
    ({"OperationId": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"}, "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"),
    ({"OperationId": "not-a-uuid"}, "not-a-uuid"),  # tolerant: kept as sent
    ({}, None),
])
def test_operation_id(extra, operation):
    assert parsed(cluster_event(None, **extra)).info.operation_id == operation


@pytest.mark.parametrize("metadata", [
    {"SlurmHealth": {"Component": "Slurmdbd", "Status": 5}},
    {"SlurmHealth": "Unhealthy"},
    {"DatabaseConfiguration": {"RollbackStatus": ["RevertFailed"]}},
], ids=["status-number", "member-not-object", "rollback-list"])
def test_wrong_types_are_a_broken_producer(metadata):
    with pytest.raises(InvalidEventError, match="invalid 'SageMaker HyperPod Cluster Event' event"):
        parse_event(cluster_event(metadata))


# --- the scenarios of issue 19 match the API's shapes ------------------------------------------

OUR_KEYS = ("Nodes", "TrainingPlans", "Operations", "Extensions", "ImageVersionStatus")


def _api_times(value: Any, key: str = "") -> Any:
    """EventBridge writes some times as epoch milliseconds; the API model wants a timestamp."""
    if isinstance(value, dict):
        return {k: _api_times(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_api_times(v) for v in value]
    if isinstance(value, int) and key.endswith("Time"):
        return datetime.fromtimestamp(value / 1000, UTC)
    return value


def _invalid(shape: str, value: dict[str, Any], *, allow: tuple[NewValue, ...] = ()) -> str:
    """What botocore's `shape` refuses in `value` ("" when nothing)."""
    return "; ".join(model_errors(_api_times(value), shape, allow=allow))


#: the status cluster-status-unknown is about: not in the pinned botocore's enum (news)
NEW_CLUSTER_STATUS: NewValue = ("ClusterStatus", "ClusterMaintenanceRollbackFailed")


@pytest.mark.parametrize("scenario, allow", [
    ("slurm-dbd-down", ()), ("training-plan-ending", ()), ("cluster-status-unknown", (NEW_CLUSTER_STATUS,))])
def test_scenario_matches_the_botocore_model(scenario, allow):
    """Validated with the stand-in's validator (ParamValidator's types, required members and lengths, then
    enums, max lengths and patterns; a status AWS may add is accepted only where the scenario names it):
    the event's detail as ClusterEventDetail or DescribeClusterResponse, the snapshot's DescribeCluster
    part, its training plans as DescribeTrainingPlan answers and its nodes as ClusterNodeDetails."""
    folder = REPO / "events" / scenario
    event = json.loads((folder / "event.json").read_text())
    snapshot = json.loads((folder / "snapshot.json").read_text())
    if event["detail-type"] == "SageMaker HyperPod Cluster Event":
        assert _invalid("ClusterEventDetail", event["detail"]["EventDetails"], allow=allow) == ""
    else:
        assert _invalid("DescribeClusterResponse", event["detail"], allow=allow) == ""
    assert _invalid("DescribeClusterResponse", {k: v for k, v in snapshot.items() if k not in OUR_KEYS},
                    allow=allow) == ""
    for plan in snapshot.get("TrainingPlans") or []:
        assert _invalid("DescribeTrainingPlanResponse", plan, allow=allow) == ""
    for node in snapshot.get("Nodes") or []:
        assert _invalid("ClusterNodeDetails", node, allow=allow) == ""


def test_the_validator_rejects_what_the_model_does_not_allow():
    detail = json.loads((REPO / "events" / "slurm-dbd-down" / "event.json").read_text())["detail"]["EventDetails"]
    del detail["EventId"]
    detail["EventDetails"]["EventMetadata"]["SlurmHealth"]["Status"] = 5
    report = _invalid("ClusterEventDetail", detail)
    assert "Missing required parameter" in report and "EventId" in report
    assert "EventDetails.EventMetadata.SlurmHealth.Status" in report
    # and a status the pinned botocore does not know is refused unless named as news
    detail = json.loads((REPO / "events" / "cluster-status-unknown" / "event.json").read_text())["detail"]
    assert "'ClusterMaintenanceRollbackFailed' is not one of ClusterStatus's values" in _invalid(
        "DescribeClusterResponse", detail)
