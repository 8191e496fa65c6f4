"""handlers/observability.py: a count with its own dimensions is the function's, like its other metrics."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from hyperpod_guard.constants import Metric, Service
from hyperpod_guard.handlers.observability import count, make_metrics


def test_a_count_with_dimensions_carries_the_functions_service_not_the_stacks_prefix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # as deployed: POWERTOOLS_SERVICE_NAME is the prefix (the logs' `service`); metrics are per function
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "hyperpod-guard")
    metrics = make_metrics(Service.EVALUATOR)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        count(metrics, Metric.EVENTS, dimensions={"DetailType": "SageMaker HyperPod Cluster Event"})
    (document,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert document["service"] == Service.EVALUATOR
    assert document["DetailType"] == "SageMaker HyperPod Cluster Event" and document[Metric.EVENTS] == [1.0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "DetailType"]]
