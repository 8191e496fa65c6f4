"""The archive's pure parts: an alert record as an episode (archive.Episode.from_record), what resolved it,
how it cleared (pipeline.cleared, against alerting._clear_reason), its key, and the repair Cluster Events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperpod_guard.alerting import EVENT_FINDING_TTL, Scope, _clear_reason
from hyperpod_guard.archive import Cleared, Episode, RemediationFact, RepairFact, clear_words, episode_key, resolved_by
from hyperpod_guard.cluster_events import classify
from hyperpod_guard.events import parse_event
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.pipeline import cleared

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NODE = "i-0123456789abcdef0"


def record(*, node: str | None = NODE, origin: str = "state", details: dict | None = None, **fields) -> AlertRecord:
    finding = Finding(policy="unhealthy-node", severity=Severity.WARNING, cluster="ml-prod", condition="unhealthy",
                      summary="node unhealthy", instance_group="p5", node=node, origin=origin,  # type: ignore[arg-type]
                      details=details if details is not None else {"reason": "NvidiaGpuXidError"})
    return replace(AlertRecord.start(finding, T0), **fields)


def resolved(at: datetime, fired: datetime | None = T0, **fields) -> AlertRecord:
    return record(state=AlertState.RESOLVED, fired_at=fired, resolved_at=at, reason="resolved: the condition cleared",
                  **fields)


def test_an_open_record_is_an_open_episode_without_resolution():
    episode = Episode.from_record(record(state=AlertState.FIRING, fired_at=T0 + timedelta(minutes=5)),
                                  now=T0 + timedelta(hours=1), cluster="ml-prod", account="1", region="r", tags={},
                                  actions=[])
    assert episode.open and (episode.resolved_at, episode.resolved_by, episode.duration_seconds,
                             episode.resolution) == (None, None, None, None)
    assert episode.reason == "NvidiaGpuXidError"
    with pytest.raises(ValueError):
        episode_key(episode)


@pytest.mark.parametrize("fired, resolved_at, seconds", [
    (T0 + timedelta(minutes=5), T0 + timedelta(minutes=65), 3600.0),  # from fired_at
    (None, T0 + timedelta(minutes=10), 600.0),                          # never fired: from first_seen
    (T0 + timedelta(minutes=5), T0 + timedelta(minutes=4), 0.0),        # clocks of two Lambdas apart: not negative
])
def test_duration_is_from_firing_to_resolved_and_never_negative(fired, resolved_at, seconds):
    episode = Episode.from_record(resolved(resolved_at, fired), now=resolved_at, cluster="ml-prod", account=None,
                                  region=None, tags={}, actions=[])
    assert (episode.open, episode.duration_seconds, episode.resolution) == (False, seconds, "the condition cleared")


@given(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6), st.booleans())
def test_durations_are_never_negative(fired_after: int, resolved_after: int, is_open: bool):
    fired = T0 + timedelta(seconds=fired_after)
    at = T0 + timedelta(seconds=resolved_after)
    alert = record(state=AlertState.FIRING, fired_at=fired) if is_open else resolved(at, fired)
    episode = Episode.from_record(alert, now=at, cluster="ml-prod", account=None, region=None, tags={}, actions=[])
    assert episode.open is is_open
    assert (episode.duration_seconds is None) if is_open else episode.duration_seconds >= 0  # type: ignore[operator]
    assert Episode.model_validate_json(episode.model_dump_json()) == episode


def fact(outcome: str, dry_run: bool = False) -> RemediationFact:
    return RemediationFact(at=T0 + timedelta(minutes=1), action="reboot", outcome=outcome, dry_run=dry_run)


AUTO = {"node_recovery": "Automatic", "repair_action": "Replace"}
REPAIRED = RepairFact(cluster="ml-prod", event_id="e", at=T0 + timedelta(minutes=2), node=NODE, kind="replacement",
                      phase="completed")


@pytest.mark.parametrize("details, actions, how, repairs, expected", [
    ({}, [], None, [], "manual"),
    ({}, [fact(f"rebooted {NODE}")], None, [], "remediation"),
    ({}, [fact(f"would reboot {NODE} (dry run)", dry_run=True)], None, [], "manual"),
    ({}, [fact("failed: ValidationException"), fact("skipped: budget spent")], None, [], "manual"),
    (AUTO, [], None, [], "hyperpod-repair"),
    ({"node_recovery": "None", "repair_action": "Replace"}, [], None, [], "manual"),
    ({"node_recovery": "Automatic", "repair_action": "None"}, [], None, [], "manual"),
    ({}, [], None, [REPAIRED], "hyperpod-repair"),
    ({}, [], None, [REPAIRED.model_copy(update={"at": T0 + timedelta(hours=5)})], "manual"),  # after the episode
    (AUTO, [fact(f"replaced {NODE}")], None, [], "remediation"),   # we acted, and it worked
    (AUTO, [], Cleared.GONE, [], "hyperpod-repair"),                # HyperPod replaced the node
    ({}, [], Cleared.GONE, [], "gone"),
    (AUTO, [fact(f"rebooted {NODE}")], Cleared.CLUSTER_GONE, [], "gone"),
    ({}, [], Cleared.EXPIRED, [], "expired"),
])
def test_what_resolved_it(details, actions, how, repairs, expected):
    alert = resolved(T0 + timedelta(hours=1), details=details)
    assert resolved_by(alert, actions, how, repairs) == expected


@pytest.mark.parametrize("scope, alert, now", [
    (Scope("ml-prod", frozenset({"unhealthy-node"}), cluster_gone=True), record(), T0),
    (Scope("ml-prod", frozenset({"unhealthy-node"}), all_nodes=True), record(), T0),
    (Scope("ml-prod", frozenset({"unhealthy-node"}), gone_nodes=frozenset({NODE})), record(), T0),
    (Scope("ml-prod", frozenset({"unhealthy-node"}), all_nodes=True, nodes=frozenset({NODE})), record(), T0),
    (Scope("ml-prod", frozenset(), nodes=frozenset({NODE})), record(origin="event"), T0 + EVENT_FINDING_TTL),
    (Scope("ml-prod", frozenset(), nodes=frozenset({NODE})), record(origin="event"), T0 + timedelta(hours=1)),
    (Scope("ml-prod", frozenset(), launched={NODE: T0 + timedelta(hours=1)}),
     record(origin="event", reported_at=T0), T0 + EVENT_FINDING_TTL),
])
def test_how_it_cleared_follows_the_clear_reason(scope, alert, now):
    """pipeline.cleared reads the structure alerting._clear_reason decides on: they agree on every branch."""
    words = _clear_reason(alert, scope, now, {})
    how = cleared(alert, scope, now)
    expected = {"the cluster no longer exists": Cleared.CLUSTER_GONE, f"node {NODE} no longer exists": Cleared.GONE,
                "not reported again for 1d": Cleared.EXPIRED}.get(words or "")
    assert how == expected


@pytest.mark.parametrize("reason, words", [
    ("resolved: the condition cleared", "the condition cleared"),
    ("resolved: node i-1 no longer exists; not notified: it was never notified", "node i-1 no longer exists"),
    ("resolved: reported healthy again (notified before; silenced until …)", "reported healthy again"),
    ("re-sending owed resolved notification", None),
])
def test_clear_words(reason, words):
    assert clear_words(reason) == words


def test_the_key_is_the_resolved_day_the_cluster_and_the_episode():
    at = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    episode = Episode.from_record(resolved(at), now=at, cluster="ml-prod", account=None, region=None, tags={},
                                  actions=[])
    assert episode_key(episode) == f"episodes/dt=2026-11-25/ml-prod/{episode.fingerprint}-20261124T120000Z.json"


def test_a_cluster_elsewhere_in_a_fleet_is_one_folder_named_by_its_key():
    """A spoke's cluster key holds '/' (`name@account/region`): escaped, the folder stays one path segment."""
    at = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    episode = Episode.from_record(resolved(at), now=at, cluster="ml-prod@444455556666/us-east-1",
                                  account="444455556666", region="us-east-1", tags={}, actions=[])
    assert episode_key(episode) == (f"episodes/dt=2026-11-25/ml-prod@444455556666%2Fus-east-1/"
                                    f"{episode.fingerprint}-20261124T120000Z.json")


def cluster_event(description: str) -> object:
    return parse_event({"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker", "detail": {
        "EventDetails": {"EventId": "e", "ClusterName": "ml-prod", "Description": description}}})


@pytest.mark.parametrize("description, repair", [
    ("Reboot of EC2 Instance i-0a1 is currently in progress on Cluster ml-prod and IG p5", ("reboot", "started")),
    ("Failed to submit reboot request for EC2 Instance i-0a1 in Cluster ml-prod and IG p5", ("reboot", "failed")),
    ("Instance reboot i-0a1 in Cluster ml-prod and IG p5 completed successfully", ("reboot", "completed")),
    ("Instance reboot i-0a1 in Cluster ml-prod and IG p5 failed", ("reboot", "failed")),
    ("Instance i-0a1 is starting as part of instance replacement in Cluster ml-prod and IG p5",
     ("replacement", "started")),
    ("Instance i-0a1 failed to start as part of instance replacement in Cluster ml-prod and IG p5",
     ("replacement", "failed")),
    ("Instance i-0a1 replace completed successfully as part of instance replacement in Cluster ml-prod and IG p5",
     ("replacement", "completed")),
    ("Instance i-0a1 terminate failed as part of instance replacement in Cluster ml-prod and IG p5",
     ("replacement", "failed")),
    ("Instance create i-0a1 in Cluster ml-prod and IG p5 completed successfully", None),  # not a repair
    ("Successfully updated Kubernetes config for instance i-0a1 in Cluster ml-prod and IG p5", None),
])
def test_node_repair_cluster_events(description, repair):
    classified = classify(cluster_event(description))
    assert (classified.repair if classified else None) == repair
    if repair:
        assert (classified.instance_id, classified.instance_group) == ("i-0a1", "p5")  # type: ignore[union-attr]
