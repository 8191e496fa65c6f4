"""Fuzz the evaluator Lambda itself: mutated real events through `handler(event, context)` on moto.

What a caller of the Lambda sees: the handler never raises for a bad event (a raise would be
a retry, then the DLQ); it answers, counts the event in the `InvalidEvents` metric (EMF) and
logs exactly one line for it. Fewer examples than the in-memory fuzz (tests/unit/
test_fuzz_events.py): each one is a real invocation with its DynamoDB and SNS calls.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event as note, given, settings

from tests.fuzzing import SCENARIOS, any_event
from tests.lambda_output import lambda_output, split
from tests.runtime_fixtures import LambdaContext, serve, stack  # noqa: F401

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture
def evaluator(stack):  # noqa: F811
    """The evaluator with every scenario's cluster served by (moto's) SageMaker."""
    for event, snapshot in SCENARIOS.values():
        document = snapshot if snapshot is not None else event.get("detail")
        if isinstance(document, dict) and "ClusterStatus" in document:
            serve(document)
    from hyperpod_guard.handlers import evaluator

    return evaluator


def invoke(evaluator, event: Any) -> tuple[Any, list[dict[str, Any]], dict[str, float]]:
    with lambda_output() as output:
        result = evaluator.handler(event, LambdaContext())
    logs, metrics = split(output.getvalue())
    return result, logs, metrics


def test_a_bad_event_is_counted_and_dropped_with_one_log_line(evaluator):
    result, logs, metrics = invoke(evaluator, {"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
                                              "id": "bad-1", "detail": {"EventDetails": {"ClusterName": 7}}})
    assert "ClusterName" in result["invalid"]
    assert metrics["InvalidEvents"] == 1
    assert [(r["level"], r["correlation_id"]) for r in logs] == [("WARNING", "bad-1")]


@FUZZ
@given(any_event)
def test_mutated_events_through_the_handler(evaluator, event):
    result, logs, metrics = invoke(evaluator, event)  # raising here would be a Lambda retry
    assert isinstance(result, dict)
    note("invalid" if "invalid" in result else "ignored" if "ignored" in result else
         "notified" if result.get("notifications") else "evaluated")  # --hypothesis-show-statistics
    if "invalid" in result:
        assert metrics.get("InvalidEvents") == 1
        assert len(logs) == 1 and logs[0]["level"] == "WARNING", logs
        assert not [v for v in logs[0].values() if isinstance(v, str) and "\n" in v], logs  # one line, also inside
    elif "ignored" in result:
        assert metrics.get("IgnoredEvents") == 1 and not metrics.get("InvalidEvents")
        assert len(logs) == 1, logs
    else:
        assert not metrics.get("InvalidEvents") and not metrics.get("IgnoredEvents")
        assert isinstance(result["cluster"], str) and result["findings"] >= 0
