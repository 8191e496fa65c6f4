"""slurm-health: Cluster Events' SlurmHealth / DatabaseConfiguration metadata, one row per case; their reports'
order (freshness) and a timeline through alerting.plan: Unhealthy pages, Healthy resolves, a late Unhealthy is stale."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.alerting import Scope, plan
from hyperpod_guard.engine import Evaluation
from hyperpod_guard.events import ClusterEvent, parse_event
from hyperpod_guard.findings import fingerprint
from hyperpod_guard.freshness import report_of
from hyperpod_guard.ledger import AlertState, Reason
from hyperpod_guard.ledger_store import ClusterLedger
from hyperpod_guard.policies import POLICY_NAMES
from hyperpod_guard.policies import slurm_health as policy
from hyperpod_guard.policies.slurm_health import (
    ACCOUNTING,
    DB_REVERT_FAILED,
    NAME,
    SlurmHealthSettings,
    evaluate,
    resolves,
)
from hyperpod_guard.rules import Rules
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import enum

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
CLUSTER = "slurm-prod"
SNAPSHOT = ClusterSnapshot.from_describe_cluster({"ClusterName": CLUSTER, "ClusterStatus": "InService"})
SETTINGS = SlurmHealthSettings()
DBD = "slurmdbd-unhealthy"


def cluster_event(metadata: dict[str, Any] | None, *, at: datetime = T0, level: str = "Error",
                  instance: str | None = "i-0c0ntr0113r000001", event_id: str = "e1") -> ClusterEvent:
    details: dict[str, Any] = {
        "EventId": event_id, "ClusterArn": f"arn:aws:sagemaker:us-west-2:111122223333:cluster/{CLUSTER}",
        "ClusterName": CLUSTER, "ResourceType": "Instance" if instance else "Cluster",
        "EventTime": at.isoformat(), "EventLevel": level, "Description": "free text, never matched",
        "OperationId": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"}
    if instance:
        details.update(InstanceGroupName="controller", InstanceId=instance)
    if metadata is not None:
        details["EventDetails"] = {"EventMetadata": metadata}
    event = parse_event({"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker", "id": event_id,
                         "time": at.isoformat(), "detail": {"EventDetails": details}})
    assert isinstance(event, ClusterEvent)
    return event


def slurm(status: str | None = "Unhealthy", reason: str | None = "DaemonDown",
          component: str | None = "Slurmdbd") -> dict[str, Any]:
    health = {k: v for k, v in {"Component": component, "Status": status, "Reason": reason}.items() if v is not None}
    return {"SlurmHealth": health}


def database(rollback: str | None, message: str | None = "Access denied for user 'slurm'",
             advisory: str | None = None) -> dict[str, Any]:
    change = {"RollbackStatus": rollback, "FailureMessage": message, "Advisory": advisory}
    return {"DatabaseConfiguration": {k: v for k, v in change.items() if v is not None}}


# (event, expected [(severity, condition, unknown?)])
CASES = [
    pytest.param(cluster_event(slurm("Unhealthy", "DaemonDown")), [("critical", DBD, False)], id="daemon-down"),
    pytest.param(cluster_event(slurm("Unhealthy", "DbUnreachable")), [("critical", DBD, False)], id="db-unreachable"),
    pytest.param(cluster_event(slurm("Unhealthy", "DaemonDisabled"), level="Warn"), [("warning", DBD, False)],
                 id="daemon-disabled"),
    pytest.param(cluster_event(slurm("Healthy", None), level="Info"), [], id="healthy-no-finding"),
    pytest.param(cluster_event(slurm("Unhealthy", "OutOfDisk")), [("warning", DBD, True)], id="unknown-reason"),
    pytest.param(cluster_event(slurm("Unhealthy", None)), [("warning", DBD, True)], id="no-reason"),
    pytest.param(cluster_event(slurm("Degraded", "DaemonDown")), [("warning", DBD, True)], id="unknown-status"),
    pytest.param(cluster_event(slurm("Unhealthy", "DaemonDown", "Slurmctld")),
                 [("warning", "slurmctld-unhealthy", True)], id="unknown-component"),
    pytest.param(cluster_event(slurm("Unhealthy", "DaemonDown", None)), [("warning", "slurm-unhealthy", True)],
                 id="no-component"),
    pytest.param(cluster_event(database("RevertFailed")), [("critical", DB_REVERT_FAILED, False)], id="revert-failed"),
    pytest.param(cluster_event(database("Reverted")), [], id="reverted"),
    pytest.param(cluster_event(database("NotApplicable")), [], id="not-applicable"),
    pytest.param(cluster_event(database(None, None, "Restart slurmctld"), level="Info"), [], id="db-change-succeeded"),
    pytest.param(cluster_event({"Instance": {"FailureMessage": "slurmdbd down"}}), [], id="text-is-not-matched"),
    pytest.param(cluster_event(None), [], id="no-metadata"),
    pytest.param(None, [], id="no-event"),
]


@pytest.mark.parametrize("event, expected", CASES)
def test_slurm_health(event, expected):
    findings = evaluate(SNAPSHOT, event, SETTINGS, NOW)
    assert [(f.severity.value, f.condition, bool(f.details.get("unknown"))) for f in findings] == expected
    for finding in findings:
        assert (finding.policy, finding.origin, finding.problem) == (NAME, "event", ACCOUNTING)
        assert (finding.instance_group, finding.node) == (None, None)  # the cluster's, whichever controller sent it
        assert finding.details["instance_id"] == "i-0c0ntr0113r000001"
        assert finding.details["operation_id"] == "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def test_unknown_values_are_in_the_evidence_as_sent():
    (finding,) = evaluate(SNAPSHOT, cluster_event(slurm("Unhealthy", "OutOfDisk", "Slurmctld")), SETTINGS, NOW)
    assert {k: finding.details[k] for k in ("component", "status", "reason")} == {
        "component": "Slurmctld", "status": "Unhealthy", "reason": "OutOfDisk"}
    assert "OutOfDisk" in finding.summary and "Slurmctld" in finding.summary


def test_revert_failed_carries_failure_message_and_advisory():
    event = cluster_event(database("RevertFailed", "Access denied for user 'slurm'", "Check the secret"))
    (finding,) = evaluate(SNAPSHOT, event, SETTINGS, NOW)
    assert finding.details["failure_message"] == "Access denied for user 'slurm'"
    assert finding.details["advisory"] == "Check the secret"
    assert finding.summary.endswith("Access denied for user 'slurm'")


@pytest.mark.parametrize("event, cleared", [
    (cluster_event(slurm("Healthy", None)), [DBD]),
    (cluster_event(slurm("Healthy", None, "Slurmctld")), ["slurmctld-unhealthy"]),
    (cluster_event(slurm("Unhealthy", "DaemonDown")), []),
    (cluster_event(database(None, None, "Restart slurmctld")), [DB_REVERT_FAILED]),  # a later change succeeded
    (cluster_event(database("Reverted")), []),
    (cluster_event(database(None, "Timed out")), []),  # failed, however it says so: not a success
    (None, []),
], ids=["healthy", "healthy-unknown-component", "unhealthy", "db-success", "db-reverted", "db-failed-no-status",
        "no-event"])
def test_resolves(event, cleared):
    assert resolves(SNAPSHOT, event) == [fingerprint(NAME, CLUSTER, None, None, c) for c in cleared]


def test_reports_have_a_key_of_their_own():
    """A Healthy report is newer than the Unhealthy one even when another controller sends it, and an
    unrelated Cluster Event about the cluster (or the controller node) does not make it stale."""
    unhealthy = report_of(cluster_event(slurm(), at=T0), NOW)
    healthy = report_of(cluster_event(slurm("Healthy", None), at=T0 + timedelta(seconds=30),
                                      instance="i-0new0c0ntr011er02", event_id="e2"), NOW)
    other = report_of(cluster_event({"Instance": {"FailureMessage": "x"}}, at=T0 + timedelta(seconds=40)), NOW)
    database_change = report_of(cluster_event(database("RevertFailed")), NOW)
    assert unhealthy and healthy and other and database_change
    assert unhealthy.key == healthy.key == "slurm-health/cluster/Slurmdbd"
    assert healthy.time > unhealthy.time
    assert other.key == "cluster-event/node/i-0c0ntr0113r000001"
    assert database_change.key == "database-configuration/cluster"


RULES = Rules.model_validate({"version": 1}).resolve(CLUSTER)
ALL = frozenset({*POLICY_NAMES, NAME})


def test_timeline_unhealthy_pages_healthy_resolves_late_unhealthy_is_stale():
    """Through alerting.plan as the pipeline runs it: each event's findings and resolutions with its report."""
    ledger = ClusterLedger()

    def step(event: ClusterEvent, now: datetime):
        nonlocal ledger
        evaluation = Evaluation(CLUSTER, evaluate(SNAPSHOT, event, SETTINGS, now), resolves(SNAPSHOT, event))
        planned = plan(evaluation, Scope(CLUSTER, ALL), ledger, RULES, now, "t", report_of(event, now))
        # what pipeline.deliver + LedgerStore.confirm record once SNS took the message
        sent = [replace(d.record, last_notified=now, notified_severity=d.record.severity, owed=None)
                if d.notify else d.record for d in planned.decisions]
        records = {**ledger.records, **{r.fingerprint: r for r in sent}}
        ledger = ClusterLedger(records, {**ledger.marks, **{m.key: m for m in planned.marks}})
        return planned

    down = cluster_event(slurm(), at=T0)
    first = step(down, T0 + timedelta(minutes=1))
    assert [(d.record.condition, d.record.state, d.notify) for d in first.decisions] == [
        (DBD, AlertState.FIRING, Reason.FIRST)]
    healthy = cluster_event(slurm("Healthy", None), at=T0 + timedelta(minutes=20), event_id="e2")
    second = step(healthy, T0 + timedelta(minutes=21))
    assert [(d.record.state, d.notify, d.why) for d in second.decisions] == [
        (AlertState.RESOLVED, Reason.RESOLVED, "resolved: reported healthy again")]
    # the Unhealthy report redelivered (a DLQ redrive) after the Healthy one: changes nothing
    late = step(down, T0 + timedelta(minutes=30))
    assert late.stale and "slurm-health/cluster/Slurmdbd" in late.stale
    assert [d.notify for d in late.decisions if d.notify] == []


def test_known_values_are_botocores():
    assert set(policy.KNOWN_COMPONENTS) == enum("SlurmHealthComponent")
    assert {policy.HEALTHY, policy.UNHEALTHY} == enum("SlurmHealthStatus")
    assert set(policy.REASON_SEVERITY) == set(policy.REASON_TEXT) == enum("SlurmHealthReason")
    assert {policy.NOT_APPLICABLE, policy.REVERTED, policy.REVERT_FAILED} == enum(
        "DatabaseConfigurationRollbackStatus")
