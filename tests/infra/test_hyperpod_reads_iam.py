"""IAM for the HyperPod feature reads (issue 19): the functions that evaluate clusters (the evaluator; the worker,
which evaluates what the sweep hands over) may call exactly the new reads, on the cluster ARNs, and
DescribeTrainingPlan on the training-plan ARNs; the sweep (it only lists and fans out) and the notifier none."""

from __future__ import annotations

from typing import Any

import pytest

from infra.evaluation import SAGEMAKER_FEATURE_READ, SAGEMAKER_PLAN_READ

from .test_stack import (
    ACCOUNT,
    ALL_OPTIONS,
    CLUSTERS_ARN,
    EVALUATING,
    PARTITION,
    REGION,
    _join,
    as_list,
    function_statements,
)

PLANS_ARN = _join("arn:", PARTITION, ":sagemaker:", REGION, ":", ACCOUNT, ":training-plan/*")
#: what cluster_reader.py calls for the features (the API operations, as IAM actions)
CALLED = {"sagemaker:ListClusterOperations", "sagemaker:DescribeClusterOperation", "sagemaker:ListClusterExtensions",
          "sagemaker:DescribeClusterExtension", "sagemaker:ListClusterEvents", "sagemaker:DescribeClusterEvent"}


def _granted(template: dict[str, Any], name: str) -> dict[str, list[Any]]:
    return {action: as_list(s["Resource"]) for s in function_statements(template, name) if s["Effect"] == "Allow"
            for action in as_list(s["Action"]) if action in CALLED | set(SAGEMAKER_PLAN_READ)}


def test_the_declared_reads_are_the_called_ones() -> None:
    assert set(SAGEMAKER_FEATURE_READ) == CALLED
    assert SAGEMAKER_PLAN_READ == ("sagemaker:DescribeTrainingPlan",)


@pytest.mark.parametrize("context", [{}, ALL_OPTIONS], ids=["default", "all-options"])
@pytest.mark.parametrize("name", EVALUATING)
def test_evaluating_functions_read_the_features_of_clusters_and_plans_only(synth, context, name) -> None:
    granted = _granted(synth(**context), name)
    assert granted == {**{action: [CLUSTERS_ARN] for action in CALLED},
                       "sagemaker:DescribeTrainingPlan": [PLANS_ARN]}


@pytest.mark.parametrize("name", ["sweep", "slack-notifier"])
def test_the_sweep_and_the_notifier_read_no_feature(template, name) -> None:
    assert _granted(template, name) == {}
