"""evaluation_cpu_ratio: the CPU one evaluation costs on a 256-group cluster, from the response
botocore hands us to the findings, over `json.loads` of the same response's JSON text.

The numerator is what the evaluator pays per event after its DescribeCluster call returns:
`ClusterSnapshot.from_describe_cluster` (validation included) + `engine.evaluate` with the default
rules. Its input is the response *as botocore returns it*: the synthetic DescribeCluster JSON
(bench.synthetic_describe_cluster, plus a CreationTime as the wire carries it, epoch seconds)
parsed by botocore's own JSON-protocol parser against sagemaker's DescribeCluster output shape, so
timestamps are `datetime`s and ResponseMetadata is there, as in production.

Both sides are process CPU time (time.process_time), each sample a batch of calls, the two sides
interleaved sample by sample (a noisy neighbour slows both alike); the figure is the ratio of the
medians. Run alone: `python benchmarks/evaluation_cpu.py` (also `--profile` for a cProfile of the
numerator).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GROUPS = 256
#: when the synthetic cluster was created, as the JSON protocol carries timestamps (epoch seconds)
CREATION_TIME = 1_764_400_000.125


def describe_cluster_text(groups: int = GROUPS) -> str:
    """The DescribeCluster response body as the wire carries it."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench import synthetic_describe_cluster

    return json.dumps({**synthetic_describe_cluster(groups), "CreationTime": CREATION_TIME})


def botocore_parsed(text: str) -> dict[str, Any]:
    """`text` parsed as botocore parses a sagemaker DescribeCluster response (datetimes, ResponseMetadata)."""
    import botocore.session
    from botocore.parsers import create_parser

    service = botocore.session.get_session().get_service_model("sagemaker")
    shape = service.operation_model("DescribeCluster").output_shape
    parsed = create_parser(service.protocol).parse(
        {"body": text.encode(), "headers": {"x-amzn-requestid": "bench"}, "status_code": 200}, shape)
    if not isinstance(parsed["CreationTime"], datetime):
        raise AssertionError("botocore did not parse CreationTime into a datetime")
    return parsed


def _cpu(fn: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls


def evaluation_cpu_ratio(repeats: int = 21, calls: int = 5) -> dict[str, float | int]:
    """Median CPU of snapshot + policies over median CPU of json.loads, interleaved."""
    sys.path.insert(0, str(REPO / "functions"))
    from hyperpod_guard.engine import evaluate
    from hyperpod_guard.rules import DEFAULT_RULES
    from hyperpod_guard.snapshot import ClusterSnapshot

    text = describe_cluster_text()
    response = botocore_parsed(text)
    now = datetime.now(UTC)

    def findings() -> int:
        snapshot = ClusterSnapshot.from_describe_cluster(response)
        return len(evaluate(snapshot, None, DEFAULT_RULES, now).findings)

    def loads() -> object:
        return json.loads(text)

    count = findings()  # warm: imports, pydantic's lazily built validators, caches
    loads()
    load_times, eval_times = [], []
    for i in range(repeats):
        # alternate which side goes first, so that neither always runs on a warmer cache
        order = ((loads, load_times), (findings, eval_times))
        for fn, times in order if i % 2 == 0 else reversed(order):
            times.append(_cpu(fn, calls))
    evaluation, loading = statistics.median(eval_times), statistics.median(load_times)
    return {"evaluation_cpu_ratio": evaluation / loading, "evaluation_cpu_s": evaluation,
            "evaluation_json_loads_cpu_s": loading, "evaluation_findings": count}


#: key -> (target as text, check), merged into bench.TARGETS
TARGETS = {
    "evaluation_cpu_ratio": ("<= 1.5 (snapshot + policies, 256 groups, / json.loads)",
                             lambda r: r["evaluation_cpu_ratio"] <= 1.5),
}


def profile(calls: int = 50, top: int = 25) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(REPO / "functions"))
    from hyperpod_guard.engine import evaluate
    from hyperpod_guard.rules import DEFAULT_RULES
    from hyperpod_guard.snapshot import ClusterSnapshot

    response = botocore_parsed(describe_cluster_text())
    now = datetime.now(UTC)
    evaluate(ClusterSnapshot.from_describe_cluster(response), None, DEFAULT_RULES, now)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(calls):
        evaluate(ClusterSnapshot.from_describe_cluster(response), None, DEFAULT_RULES, now)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    if "--profile" in sys.argv:
        profile()
    else:
        for key, value in evaluation_cpu_ratio().items():
            print(f"{key:<28} {value:.6f}" if isinstance(value, float) else f"{key:<28} {value}")
