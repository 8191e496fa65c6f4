"""hyperpod-guard benchmarks: each figure a ratio or a count taken in one run (see README: Performance).

Run with `make bench`; writes benchmarks/results.json and prints a table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.json"
HANDLER_MODULE = "hyperpod_guard.handlers.evaluator"


def _wall(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def cold_import_ratio(runs: int = 11) -> dict[str, float]:
    """Median fresh-process import of the evaluator handler over that of boto3, interleaved."""
    env = {**os.environ, "TABLE_NAME": "bench", "TOPIC_ARN": "arn:aws:sns:us-west-2:123456789012:bench",
           "AWS_DEFAULT_REGION": "us-west-2"}
    handler, boto = [], []
    for _ in range(runs):
        handler.append(_wall(f"import {HANDLER_MODULE}", env))
        boto.append(_wall("import boto3", env))
    return {"cold_import_ratio": statistics.median(handler) / statistics.median(boto),
            "handler_import_s": statistics.median(handler), "boto3_import_s": statistics.median(boto)}


def synthetic_describe_cluster(groups: int = 256) -> dict:
    """256 EKS groups, 20 labels and 10 taints each, mixed drift, some degraded, some rolled back."""
    def taints(n: int, variant: int) -> list[dict]:
        return [{"Key": f"example.com/t{i}", "Value": f"v{i + variant}", "Effect": "NoSchedule"} for i in range(n)]

    out = []
    for g in range(groups):
        labels = {f"example.com/l{i}": f"v{i}" for i in range(20)}
        current_labels = dict(labels, **({"example.com/l0": "drifted"} if g % 3 == 0 else {}))
        out.append({
            "InstanceGroupName": f"group-{g}", "InstanceType": "ml.p5.48xlarge",
            "Status": "Degraded" if g % 7 == 0 else "InService", "CurrentCount": 7 if g % 5 == 0 else 8, "TargetCount": 8,
            "ExecutionRole": "arn:aws:iam::123456789012:role/exec",
            "KubernetesConfig": {"CurrentLabels": current_labels, "DesiredLabels": labels,
                                 "CurrentTaints": taints(10, g % 4 == 0), "DesiredTaints": taints(10, 0)},
            "SoftwareUpdateStatus": "RollbackComplete" if g % 11 == 0 else "Succeeded",
            "CurrentImageId": "ami-0123456789abcdef0", "DesiredImageId": "ami-0fedcba9876543210",
        })
    return {"ClusterName": "bench", "ClusterArn": "arn:aws:sagemaker:us-west-2:123456789012:cluster/abcdefabcdef",
            "ClusterStatus": "InService", "NodeRecovery": "Automatic", "InstanceGroups": out,
            "Orchestrator": {"Eks": {"ClusterArn": "arn:aws:eks:us-west-2:123456789012:cluster/bench"}}}


def eval_ratio(repeats: int = 15) -> dict[str, float]:
    """Evaluating every policy on the snapshot over json.loads of its DescribeCluster JSON."""
    sys.path.insert(0, str(REPO / "functions"))
    from hyperpod_guard.engine import evaluate
    from hyperpod_guard.rules import DEFAULT_RULES
    from hyperpod_guard.snapshot import ClusterSnapshot

    text = json.dumps(synthetic_describe_cluster())
    snapshot = ClusterSnapshot.from_describe_cluster(json.loads(text))
    now = datetime.now(timezone.utc)
    evaluate(snapshot, None, DEFAULT_RULES, now)  # warm
    loads, evals = [], []
    for _ in range(repeats):
        t = time.perf_counter(); json.loads(text); loads.append(time.perf_counter() - t)
        t = time.perf_counter(); findings = evaluate(snapshot, None, DEFAULT_RULES, now).findings; evals.append(time.perf_counter() - t)
    return {"eval_ratio": statistics.median(evals) / statistics.median(loads), "eval_findings": len(findings)}


def main() -> int:
    results: dict[str, object] = {}
    results.update(cold_import_ratio())
    results.update(eval_ratio())
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
