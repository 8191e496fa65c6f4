"""evaluation_cpu_ratio's input and verdict (not its timing: the benchmark is the measurement)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import evaluation_cpu

from hyperpod_guard.engine import evaluate
from hyperpod_guard.rules import DEFAULT_RULES
from hyperpod_guard.snapshot import ClusterSnapshot


def test_the_response_is_what_botocore_returns_and_gives_the_bench_findings() -> None:
    text = evaluation_cpu.describe_cluster_text()
    response = evaluation_cpu.botocore_parsed(text)
    assert isinstance(response["CreationTime"], datetime) and response["CreationTime"].tzinfo is not None
    assert "ResponseMetadata" in response
    assert len(response["InstanceGroups"]) == len(json.loads(text)["InstanceGroups"]) == 256
    snapshot = ClusterSnapshot.from_describe_cluster(response)
    assert snapshot.creation_time == datetime.fromtimestamp(evaluation_cpu.CREATION_TIME, tz=UTC)
    assert len(evaluate(snapshot, None, DEFAULT_RULES, datetime.now(UTC)).findings) == 271


def test_verdict() -> None:
    _, holds = evaluation_cpu.TARGETS["evaluation_cpu_ratio"]
    assert holds({"evaluation_cpu_ratio": 1.5}) and not holds({"evaluation_cpu_ratio": 1.51})
