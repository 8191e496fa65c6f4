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
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
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


class _Stage:
    """moto server + the stack's resources, in this process (as the demo does)."""

    def __enter__(self):
        sys.path.insert(0, str(REPO / "functions"))
        from hyperpod_guard.local import moto_server

        self.server, url = moto_server.start()
        os.environ.update({**moto_server.environment(url), "POWERTOOLS_LOG_LEVEL": "ERROR",
                           "POWERTOOLS_METRICS_DISABLED": "true"})
        from hyperpod_guard import aws_clients
        from hyperpod_guard.local.provision import provision

        self.resources = provision()
        os.environ.update(self.resources.environment())
        aws_clients.reset()
        return self

    def __exit__(self, *exc):
        self.server.stop()


def _state_change(cluster: str, event_id: str) -> dict:
    snapshot = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())
    snapshot["id"] = event_id
    snapshot["detail"]["ClusterName"] = cluster
    return snapshot


def runtime_figures() -> dict[str, object]:
    """AWS calls for one State Change event on a warm container, a duplicate storm, a 100-cluster sweep."""
    import contextlib
    import io

    import botocore.client

    with _Stage() as stage:
        from hyperpod_guard import clock
        from hyperpod_guard.handlers import evaluator
        from hyperpod_guard.local.hyperpod_state import put_cluster
        from hyperpod_guard.local.lambda_context import LambdaContext
        from hyperpod_guard.local.provision import delivered
        from hyperpod_guard.service import Runtime, new_token, sweep

        calls: dict[str, int] = {}
        original = botocore.client.BaseClient._make_api_call

        def counting(self, operation, params):  # every client: ours and Powertools'
            key = f"{self.meta.service_model.service_name}:{operation}"
            calls[key] = calls.get(key, 0) + 1
            return original(self, operation, params)

        botocore.client.BaseClient._make_api_call = counting
        try:
            base = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())["detail"]
            put_cluster(dict(base, ClusterName="bench-0"), region="us-west-2")
            quiet = io.StringIO()
            with contextlib.redirect_stdout(quiet):
                evaluator.handler(_state_change("bench-0", "warm-up"), LambdaContext())  # cold start
                calls.clear()
                evaluator.handler(_state_change("bench-0", "measured"), LambdaContext())
                per_event = dict(sorted(calls.items()))
                delivered(stage.resources)
                later = clock.now() + timedelta(minutes=6)  # past degraded-group's 5m grace: it fires
                clock.use(lambda: later)
                for i in range(1000):  # duplicates of one condition, each with its own id
                    evaluator.handler(_state_change("bench-0", f"dup-{i}"), LambdaContext())
                clock.use(None)
                storm = len(delivered(stage.resources))
            for i in range(1, 100):
                put_cluster(dict(base, ClusterName=f"bench-{i}"), region="us-west-2")
            # one worker: moto's DynamoDB transactions are not thread-safe (deepcopy races under load)
            os.environ["SWEEP_CONCURRENCY"] = "1"
            runtime = Runtime.from_env()
            started = time.perf_counter()
            sweep(runtime, clock.now(), new_token())
            sweep_seconds = time.perf_counter() - started
        finally:
            botocore.client.BaseClient._make_api_call = original
    return {"aws_calls_per_state_event": per_event, "storm_notifications": storm,
            "sweep_seconds_100_clusters": sweep_seconds}


def asset_kb() -> float:
    """The evaluator's deployment asset as CDK bundles it (pip for arm64/cp314: needs PyPI)."""
    import tempfile

    sys.path.insert(0, str(REPO))
    from infra.bundling import PipLocalBundling

    with tempfile.TemporaryDirectory() as out:
        PipLocalBundling("3.14").try_bundle(out, image=None)
        return sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) / 1024


def main() -> int:
    results: dict[str, object] = {}
    results.update(cold_import_ratio())
    results.update(eval_ratio())
    results.update(runtime_figures())
    results["asset_kb"] = asset_kb()
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
