"""`sweep_projection` (issue 17, sweep fan-out): how long the deployed sweep takes for 1,000 clusters,
projected from what one worker batch costs here, with the numbers the stack deploys.

Measured (moto in its own process, `python benchmarks/sweep_projection.py serve`, so that its threads do
not count in this process's CPU; the handlers in this process, as Lambda runs them, logs and metrics on):
- the sweep handler listing 1,000 clusters (plus the open index) and sending one message per cluster
  (100 SendMessageBatch calls) to an empty work queue: its wall time on moto (an upper bound: moto's
  SendMessage costs O(messages queued), ~14 ms a message by the thousandth), its process CPU, its AWS calls;
- the worker handler on SQS events of WORK_BATCH_SIZE evaluate-cluster messages, warm: process CPU per
  cluster and AWS calls per cluster, for a small cluster (the degraded-group-failed scenario) and a
  256-group cluster (bench.synthetic_describe_cluster, served by local/hyperpod_state.put_cluster), each
  on its first evaluation (every alert new: written) and a later one (nothing changed), the worse taken;
- the worker's import CPU in a fresh interpreter (a cold start; venv bytecode, so a lower bound).

Projected, for 1,000 clusters of each size, with infra/evaluation.py's numbers (not copies); the sweep's
time is the larger of its wall time on moto and its own projection (CPU scaled + calls * IO_S):
- `projected_s` (the issue's formula): the sweep's time + ceil(1000 / (max_concurrency * batch_size))
  rounds * a batch's CPU scaled to the worker's vCPU share;
- `projected_with_io_s`: the same with every AWS call of the workers costing IO_S of waiting (moto on the
  loopback answers in ~1 ms; AWS in the region in ~10-30 ms), and one cold start (the import CPU, scaled).
Assumptions: Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB (512 MB ~ 0.29
vCPU); this machine's core equals a Lambda vCPU; the rounds run back to back (the event source mapping
keeps max_concurrency workers busy while messages wait). Target: both projections, for both sizes, within
half the sweep interval (infra/config.py DEFAULTS["sweepRate"] minutes): the next sweep finds the last done.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from math import ceil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # infra.evaluation imports aws_cdk
REGION = "us-west-2"
#: clusters the sweep lists and sends
CLUSTERS = 1000
#: Lambda's CPU share: one vCPU per 1,769 MB of memory (AWS Lambda documentation, memory and computing power)
MB_PER_VCPU = 1769
#: seconds of waiting per AWS call in the region (assumed; moto here answers in about a millisecond)
IO_S = 0.02
#: clusters of each size measured through the worker (whole batches), and the ones the sweep lists besides
MEASURED = {"small": 20, "large": 10}
SCENARIO = "degraded-group-failed"


# --- the moto process -----------------------------------------------------------------------------


def _one_backup_per_transaction() -> None:
    """moto 5.2's TransactWriteItems backs the table up (deepcopy) once per item, not once per call: 100
    copies of a table of thousands of alerts per transaction, past botocore's read timeout once a few
    256-group clusters are in it. Here: one copy per table per call, the same rollback. Only moto's
    speed changes (in this child process, not measured); the calls and answers are the same."""
    import copy
    import types

    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, Any] = {}

        def deepcopy(value: Any, memo: Any = None) -> Any:
            if id(value) not in copies:
                copies[id(value)] = copy.deepcopy(value)
            return copies[id(value)]

        models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serve() -> None:
    """Child process: moto + the stack's resources + CLUSTERS clusters (MEASURED["large"] of them with 256
    groups); prints one JSON line (the functions' environment) and serves until stdin closes."""
    sys.path.insert(0, str(REPO / "functions"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench import synthetic_describe_cluster

    from hyperpod_guard.local import moto_server
    from hyperpod_guard.local.hyperpod_state import put_cluster
    from hyperpod_guard.local.provision import provision

    channel, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - only the JSON line goes out
    os.environ.pop("AWS_PROFILE", None)
    _one_backup_per_transaction()
    server, url = moto_server.start()
    env = moto_server.environment(url, REGION)
    os.environ.update(env)
    resources = provision(rules=json.loads((REPO / "rules" / "defaults.json").read_text()))
    env.update(resources.environment())
    small = json.loads((REPO / "events" / SCENARIO / "event.json").read_text())["detail"]
    large = synthetic_describe_cluster(256)
    for i in range(CLUSTERS - MEASURED["large"]):
        put_cluster(dict(small, ClusterName=f"small-{i:04d}"), region=REGION)
    for i in range(MEASURED["large"]):
        put_cluster(dict(large, ClusterName=f"large-{i:02d}"), region=REGION)
    print(json.dumps({"env": env}), file=channel, flush=True)
    sys.stdin.read()
    server.stop()


# --- measuring ------------------------------------------------------------------------------------


class Calls:
    """AWS calls made by every botocore client of this process, while counting."""

    def __init__(self) -> None:
        self.count = 0
        self.by_operation: dict[str, int] = {}

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        import botocore.client

        original = botocore.client.BaseClient._make_api_call  # noqa: SLF001 - every client: ours and Powertools'

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            self.count += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted  # noqa: SLF001
        try:
            yield
        finally:
            botocore.client.BaseClient._make_api_call = original  # noqa: SLF001


def _measured(run: Callable[[], Any], calls: Calls | None = None) -> tuple[float, float, int]:
    """(wall s, process CPU s, AWS calls) of one run. Its logs are formatted as in Lambda and written to
    /dev/null (Powertools' handler holds the stdout it was created with), its EMF metrics too."""
    import logging

    calls = calls or Calls()
    handlers = [h for h in logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "hyperpod-guard")).handlers
                if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), calls.counting():
        streams = [h.setStream(sink) for h in handlers]
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            return time.perf_counter() - wall, time.process_time() - cpu, calls.count
        finally:
            for handler, stream in zip(handlers, streams, strict=True):
                handler.setStream(stream)


def _sqs_event(clusters: list[str], run: str) -> dict[str, Any]:
    """evaluate-cluster messages as Lambda's SQS event source hands them to the worker."""
    from datetime import UTC, datetime

    from hyperpod_guard.handlers.worker import EvaluateCluster

    at = datetime.now(UTC)
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "bench", "body": EvaluateCluster(
            cluster=cluster, run=run, at=at).model_dump_json(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:hyperpod-guard-work",
        "awsRegion": REGION} for cluster in clusters]}


def _worker_passes(names: list[str], batch_size: int) -> dict[str, Any]:
    """Two passes of the worker over `names` in batches: CPU and calls per cluster, each pass's median batch."""
    from hyperpod_guard.handlers import worker
    from hyperpod_guard.local.lambda_context import LambdaContext

    batches = [names[i:i + batch_size] for i in range(0, len(names), batch_size)]
    out: dict[str, Any] = {}
    for label in ("first", "later"):
        cpu, calls = [], []
        for batch in batches:
            event = _sqs_event(batch, f"bench-{label}")
            response: dict[str, Any] = {}

            def invoke(event: dict[str, Any] = event, response: dict[str, Any] = response) -> None:
                response.update(worker.handler(event, LambdaContext(function_name="hyperpod-guard-worker")))

            _, batch_cpu, batch_calls = _measured(invoke)
            if response.get("batchItemFailures"):
                raise RuntimeError(f"the worker failed {response['batchItemFailures']}")
            cpu.append(batch_cpu / len(batch))
            calls.append(batch_calls / len(batch))
        out[label] = {"cpu_per_cluster_s": statistics.median(cpu), "calls_per_cluster": statistics.median(calls)}
    return out


def _import_cpu() -> float:
    """Process CPU to import the worker and what its first message loads, in a fresh interpreter (median of 5)."""
    code = ("import time; t = time.process_time(); import hyperpod_guard.handlers.worker, hyperpod_guard.service, "
            "aws_lambda_powertools.utilities.batch; print(time.process_time() - t)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "functions")}
    runs = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,  # noqa: S603
                                 check=True).stdout) for _ in range(5)]
    return statistics.median(runs)


def stack_numbers() -> dict[str, Any]:
    """What the stack deploys (infra/evaluation.py, infra/config.py), read, not copied."""
    sys.path.insert(0, str(REPO))
    from infra import evaluation
    from infra.config import DEFAULTS

    return {"worker_memory_mb": evaluation.WORKER_MEMORY_MB, "batch_size": evaluation.WORK_BATCH_SIZE,
            "max_concurrency": evaluation.WORK_MAX_CONCURRENCY, "sweep_interval_s": int(DEFAULTS["sweepRate"]) * 60}


def sweep_projection_figures(sweep_runs: int = 3) -> dict[str, object]:
    stack = stack_numbers()
    vcpu = stack["worker_memory_mb"] / MB_PER_VCPU
    batch_size, rounds = stack["batch_size"], ceil(CLUSTERS / (stack["max_concurrency"] * stack["batch_size"]))
    from cold_path import moto_process  # its module imports the CDK bundling: only when measuring

    with moto_process(__file__, timeout=60) as child:
        sys.path.insert(0, str(REPO / "functions"))
        saved = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)
        # as deployed: INFO logs and EMF metrics on (bench.py's other stages may have turned them down)
        os.environ.update(child["env"], POWERTOOLS_LOG_LEVEL="INFO", POWERTOOLS_METRICS_DISABLED="false")
        try:
            import boto3

            from hyperpod_guard import aws_clients
            from hyperpod_guard.handlers import sweep, worker
            from hyperpod_guard.local.lambda_context import LambdaContext

            for handler_logger in (sweep.logger, worker.logger):
                handler_logger.setLevel("INFO")
            aws_clients.reset()
            sqs = boto3.client("sqs")
            summaries: list[dict[str, Any]] = []
            sweeps, calls = [], Calls()
            for run in range(sweep_runs + 1):  # the first warms the container (imports, clients, rules)
                # each run sends to an empty queue, as a sweep does once the workers drained the last one
                # (moto's SendMessage costs O(messages queued): a full queue would slow moto, not the sweep)
                queue = sqs.create_queue(QueueName=f"hyperpod-guard-work-{run}")["QueueUrl"]
                os.environ["WORK_QUEUE_URL"] = queue
                sweep.work_queue.cache_clear()
                calls = Calls()
                sweeps.append(_measured(lambda: summaries.append(
                    sweep.handler({}, LambdaContext(function_name="hyperpod-guard-sweep"))), calls))
                queued = int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"]["ApproximateNumberOfMessages"])
                if (summaries[-1]["enqueued"], queued) != (CLUSTERS, CLUSTERS):
                    raise RuntimeError(f"the sweep sent {summaries[-1]['enqueued']} messages ({queued} queued), "
                                       f"not {CLUSTERS}")
            sweep_wall = statistics.median(s[0] for s in sweeps[1:])
            sweep_cpu = statistics.median(s[1] for s in sweeps[1:])
            sweep_calls = sweeps[-1][2]
            # warm the worker's container on a cluster not measured
            _measured(lambda: worker.handler(_sqs_event([f"small-{CLUSTERS - MEASURED['large'] - 1:04d}"], "warm"),
                                             LambdaContext(function_name="hyperpod-guard-worker")))
            per_size = {
                "small": _worker_passes([f"small-{i:04d}" for i in range(MEASURED["small"])], batch_size),
                "large": _worker_passes([f"large-{i:02d}" for i in range(MEASURED["large"])], batch_size),
            }
        finally:
            os.environ.clear()
            os.environ.update(saved)
    import_cpu = _import_cpu()
    sweep_scaled = sweep_cpu / vcpu + sweep_calls * IO_S
    # the sweep's time: what it took on moto (moto's SQS is slow: an upper bound), or as projected for Lambda
    sweep_s = max(sweep_wall, sweep_scaled)
    figures: dict[str, Any] = {
        "assumptions": {"vcpu": round(vcpu, 3), "mb_per_vcpu": MB_PER_VCPU, "io_s_per_call": IO_S,
                        "rounds": rounds, **stack, "budget_s": stack["sweep_interval_s"] / 2},
        "sweep": {"clusters": CLUSTERS, "wall_s_on_moto": round(sweep_wall, 3), "cpu_s": round(sweep_cpu, 3),
                  "aws_calls": sweep_calls, "calls": dict(sorted(calls.by_operation.items())),
                  "projected_s": round(sweep_scaled, 2)},
        "worker_import_cpu_s": round(import_cpu, 3),
    }
    for size, passes in per_size.items():
        worst = max(passes.values(), key=lambda p: p["cpu_per_cluster_s"])
        cpu, calls = worst["cpu_per_cluster_s"], max(p["calls_per_cluster"] for p in passes.values())
        batch_cpu_scaled = batch_size * cpu / vcpu
        figures[size] = {
            **{f"{label}_cpu_per_cluster_s": round(p["cpu_per_cluster_s"], 4) for label, p in passes.items()},
            **{f"{label}_calls_per_cluster": round(p["calls_per_cluster"], 1) for label, p in passes.items()},
            "projected_s": round(sweep_s + rounds * batch_cpu_scaled, 2),
            "projected_with_io_s": round(sweep_s + import_cpu / vcpu
                                         + rounds * (batch_cpu_scaled + batch_size * calls * IO_S), 2),
        }
    return {"sweep_projection": figures}


def _within_budget(results: dict[str, Any]) -> bool:
    figures = results["sweep_projection"]
    budget = figures["assumptions"]["budget_s"]
    return all(figures[size][key] <= budget for size in ("small", "large")
               for key in ("projected_s", "projected_with_io_s"))


#: key -> (target as text, check), merged into bench.TARGETS
TARGETS = {
    "sweep_projection": (("1,000 small and 1,000 256-group clusters within half the sweep interval "
                          "(with and without the I/O allowance)"), _within_budget),
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    else:
        results = sweep_projection_figures()
        text, holds = TARGETS["sweep_projection"]
        print(json.dumps(results, indent=2))
        print(f"sweep_projection   target {text}: {'met' if holds(results) else 'NOT MET'}")
