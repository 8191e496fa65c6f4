"""The benchmark's inputs and verdicts (not its timings: the benchmark is the measurement)."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench  # noqa: E402

from hyperpod_guard.engine import evaluate  # noqa: E402
from hyperpod_guard.rules import DEFAULT_RULES  # noqa: E402
from hyperpod_guard.snapshot import ClusterSnapshot  # noqa: E402


def test_synthetic_cluster_has_the_mixed_drift_the_readme_describes() -> None:
    snapshot = ClusterSnapshot.from_describe_cluster(bench.synthetic_describe_cluster())
    assert len(snapshot.instance_groups) == 256
    group = snapshot.instance_groups[1]
    assert len(group.kubernetes_config.desired_labels) == 20 and len(group.kubernetes_config.desired_taints) == 10
    findings = evaluate(snapshot, None, DEFAULT_RULES, datetime.now(timezone.utc)).findings
    by_condition = Counter((f.policy, f.condition) for f in findings)
    drifted = sum(1 for g in range(256) if g % 4 == 0 or g % 8 == 1 or g % 3 == 0 or g % 10 == 2)
    assert by_condition[("taint-drift", "current-vs-desired")] == drifted
    assert by_condition[("degraded-group", "status-degraded")] == len(range(0, 256, 7))
    assert by_condition[("failed-rollback", "rolled-back")] == len(range(0, 256, 11))
    kinds = Counter()
    for f in findings:
        if f.policy == "taint-drift":
            for part in ("taints", "labels"):
                kinds.update(f"{part}.{kind}" for kind in f.details[part])
    assert set(kinds) == {"taints.changed", "taints.missing", "labels.changed", "labels.unexpected"}


@pytest.mark.parametrize(("calls", "ok"), [
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1}, True),
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1, "dynamodb:PutItem": 1, "sns:Publish": 1}, True),
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1, "dynamodb:PutItem": 1, "dynamodb:UpdateItem": 1}, False),
    ({"sagemaker:DescribeCluster": 2, "dynamodb:Query": 1}, False),
    ({"sagemaker:DescribeCluster": 1, "ssm:GetParametersByPath": 1}, False),
])
def test_call_count_verdict(calls: dict[str, int], ok: bool) -> None:
    assert bench._calls_ok(calls) is ok
