"""Fuzz service.handle_event with mutated real events: nothing escapes but AWS's own refusals.

The evaluator's whole pipeline (parse, re-read, policies, ledger decisions, the SNS message)
runs against strict in-memory stand-ins (tests/strict_fakes.py) that refuse what DynamoDB and
SNS refuse. The property: a bad event comes back `invalid` with a one-line reason (the handler
counts and drops it); any other event is evaluated, and whatever it leads to can be stored and
published. An exception here would be a Lambda retry in an account, then a message in the DLQ.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperpod_guard.cluster_reader import ClusterReader
from hyperpod_guard.ledger import TEXT_LIMIT
from hyperpod_guard.notify.sns import SnsPublisher
from hyperpod_guard.service import EventResult, Runtime, handle_event
from tests import strict_fakes
from tests.fuzzing import SCENARIOS, any_event, near_limit_event
from tests.lifecycle_model import message_body

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TOPIC = "arn:aws:sns:us-west-2:123456789012:hyperpod-guard-alerts"
#: a drop reason goes into one log line: it must not echo a 256 KiB field
REASON_LIMIT = 1000

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def clusters() -> dict[str, dict[str, Any]]:
    """What DescribeCluster answers: every scenario's cluster. The event is a hint; the answer
    is AWS's, whose shape the API guarantees (odd DescribeCluster documents are fuzzed through
    the CLI's --snapshot, in tests/unit/test_fuzz_cli.py)."""
    found = {}
    for scenario_event, snapshot in SCENARIOS.values():
        document = snapshot if snapshot is not None else scenario_event.get("detail")
        if isinstance(document, dict) and isinstance(document.get("ClusterName"), str):
            found[document["ClusterName"]] = document
    return found


CLUSTERS = clusters()


def run(event: Any) -> tuple[EventResult, strict_fakes.Sns]:
    sns = strict_fakes.Sns()
    runtime = Runtime(
        reader=ClusterReader(strict_fakes.SageMaker(CLUSTERS)), ledger=strict_fakes.Ledger(),  # type: ignore[arg-type]
        publisher=SnsPublisher(TOPIC, sns), rules=strict_fakes.Rules(), region="us-west-2",  # type: ignore[arg-type]
    )
    return handle_event(event, runtime, NOW, "fuzz-token"), sns


def check(result: EventResult, sns: strict_fakes.Sns) -> None:
    assert isinstance(result, EventResult)
    if result.invalid is not None:
        assert result.invalid and "\n" not in result.invalid and len(result.invalid) <= REASON_LIMIT, result.invalid
        assert sns.published == []
        return
    if result.ignored is not None:
        assert result.outcomes == [] and sns.published == []
        return
    assert isinstance(result.cluster, str) and result.cluster
    for message in sns.published:  # what the Slack notifier and email subscribers will read
        body = message_body(message["Message"])
        assert body["cluster"] == result.cluster and body["items"]


@FUZZ
@given(any_event)
def test_mutated_events_are_evaluated_or_dropped(event):
    result, sns = run(event)
    check(result, sns)


@settings(FUZZ, max_examples=150)
@given(near_limit_event())
def test_events_near_eventbridge_size_limit_can_be_stored_and_published(event):
    result, sns = run(event)
    check(result, sns)


def test_the_strategies_reach_every_outcome():
    """Not vacuous: the mutations produce valid, ignored and invalid events, and alerts."""
    outcomes: set[str] = set()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.one_of(any_event))
    def collect(event):
        result, sns = run(event)
        outcomes.add("invalid" if result.invalid else "ignored" if result.ignored else "evaluated")
        if sns.published:
            outcomes.add("published")

    collect()
    assert outcomes == {"invalid", "ignored", "evaluated", "published"}


# --- what the fuzzing found, pinned -----------------------------------------------------------

def node_event(**health: str) -> dict[str, Any]:
    event = json.loads(json.dumps(SCENARIOS["unhealthy-node-no-repair"][0]))
    event["detail"]["HealthSummary"].update(health)
    return event


def test_control_characters_in_event_text_keep_the_sns_subject_valid():
    """SNS refuses a Subject with a control character: the publish failed on every retry."""
    result, sns = run(node_event(HealthStatus="Unhealthy\x01\x02\x7f"))
    (message,) = sns.published
    assert message["Subject"] == ("[CRITICAL] pretrain-east: Node i-0f1e2d3c4b5a69788 (p5-train) is Unhealthy???: "
                                  "no automatic repair")


@pytest.mark.parametrize("field", ["HealthStatus", "HealthStatusReason", "Recommendation"])
def test_event_text_as_long_as_an_event_is_cut_so_the_alert_can_be_stored_and_sent(field):
    """An event's text ends up in the alert's summary and details: uncut, a 250 KiB text made a
    ledger item over DynamoDB's 400 KB or an SNS message over 256 KiB, refused on every retry."""
    text = "Unhealthy " + "x" * 250_000
    result, sns = run(node_event(**{field: text}))
    (message,) = sns.published
    finding = message_body(message["Message"])["items"][0]["finding"]
    assert len(finding["summary"]) <= TEXT_LIMIT
    assert all(len(value) <= TEXT_LIMIT for value in finding["details"].values() if isinstance(value, str))
    texts = [finding["summary"], *(v for v in finding["details"].values() if isinstance(v, str))]
    assert any(text.endswith("…") for text in texts)


@pytest.mark.parametrize(("name", "valid"), [
    ("ml-prod", True), ("a", True), ("A1--b2", True), ("c" * 63, True),
    ("c" * 64, False), ("ml_prod", False), ("ml prod", False), ("-ml", False), ("ml-", False), ("mł-prod", False),
    ("ml-prod\n", False), ("arn:aws:sagemaker:us-west-2:111122223333:cluster/abcdefghijkl", False),
])
def test_a_cluster_name_describe_cluster_would_refuse_makes_the_event_invalid(name, valid):
    """DescribeCluster answers such a name with ValidationException: evaluating it raised on
    every retry and parked the event in the DLQ; now it is counted and dropped."""
    event = node_event()
    event["detail"]["ClusterName"] = name
    result, _ = run(event)
    assert (result.invalid is None) is valid, result.invalid
    if not valid:
        assert "is not a HyperPod cluster name" in result.invalid or "ClusterName" in result.invalid


def test_a_node_id_describe_cluster_node_would_refuse_makes_the_event_invalid():
    event = node_event()
    event["detail"]["InstanceId"] = "i-" + "0" * 255
    result, _ = run(event)
    assert "InstanceId" in result.invalid


def test_an_event_with_a_lone_surrogate_is_invalid():
    """JSON can escape half a UTF-16 pair ("\\ud800"); such a string cannot be encoded, so its
    alert could never be stored or published: the event is dropped instead of retried."""
    result, sns = run(node_event(HealthStatus="Unhealthy\ud800"))
    assert "lone surrogate" in result.invalid and sns.published == []
    result, sns = run(node_event(HealthStatus=json.loads('"Unhealthy \\ud83d\\udd25"')))  # a whole pair: fine
    assert result.invalid is None and len(sns.published) == 1
