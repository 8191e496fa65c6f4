"""Cold path as a Lambda user pays it (issue 17): a fresh interpreter imports a handler and handles ONE
event end to end against moto running in its own process, with the code laid out as deployed.

- The asset is built as infra/bundling.py builds it: `pip install --no-compile --target` of
  LAMBDA_REQUIREMENTS (for this machine's platform and Python, so that it can run here) plus a copy of
  the `hyperpod_guard` package without cli/, local/ and caches. It is first on the path (as /var/task
  is in Lambda); boto3/botocore come from the venv with their bytecode (the Lambda runtime ships them).
- 'deployed' runs that asset as shipped: no .pyc, PYTHONDONTWRITEBYTECODE=1, so every module of the
  asset is compiled from source on every cold start. 'bytecode' is the same asset byte-compiled.
- moto (and a Slack sink) run in a child process (`python benchmarks/cold_path.py serve`), so their
  threads do not share the measured interpreter nor the GIL with it.

Figures (medians over interleaved runs, each ÷ a baseline measured in the same run and conditions):
- cold_event_ratio: evaluator import + one notifying State Change event ÷ `import boto3`;
- cold_event_floor_ratio: the same ÷ `import boto3` + one client + one DescribeCluster (the floor);
- notifier_cold_ratio: Slack notifier import + one SNS record delivered to the sink ÷ `import boto3`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # infra.bundling imports aws_cdk
#: the State Change scenario used: failed-rollback, critical, grace 0s: notifies on its first event
SCENARIO = "cluster-rolling-back"
REGION = "us-west-2"
ACCOUNT = "123456789012"

_CONTEXT = """
import json, os, sys, uuid
class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "hyperpod-guard")
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:" + function_name
    aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 30_000
"""
SNIPPETS = {
    "evaluator": _CONTEXT + """
from hyperpod_guard.handlers.evaluator import handler
event = json.loads(os.environ["BENCH_EVENT"])
name = os.environ["BENCH_CLUSTER"]
event["id"] = "cold-" + name
event["detail"]["ClusterName"] = name
result = handler(event, Context())
print("RESULT " + json.dumps(result, default=str), file=sys.stderr)
""",
    "notifier": _CONTEXT + """
from hyperpod_guard.handlers.slack_notifier import handler
event = json.loads(os.environ["BENCH_SNS_EVENT"])
event["Records"][0]["Sns"]["MessageId"] = "cold-" + os.environ["BENCH_CLUSTER"]
result = handler(event, Context())
print("RESULT " + json.dumps(result, default=str), file=sys.stderr)
""",
    "boto3": "import boto3",
    "floor": """
import os, boto3
boto3.client("sagemaker").describe_cluster(ClusterName=os.environ["BENCH_CLUSTER"])
""",
}


def build_asset(where: Path, *, bytecode: bool, package: Path | None = None) -> Path:
    """The Lambda asset as infra/bundling.py builds it, for this interpreter's platform and Python
    (`package`: another tree of hyperpod_guard, to compare versions of it)."""
    sys.path.insert(0, str(REPO))
    from infra.bundling import LAMBDA_REQUIREMENTS, copy_package

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(  # noqa: S603 - a fixed argv
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(where), "--platform", "manylinux2014_x86_64", "--implementation", "cp",
         "--python-version", version, "--only-binary=:all:", *LAMBDA_REQUIREMENTS],
        check=True, capture_output=True, text=True)
    copy_package(where, *(() if package is None else (package,)))
    if bytecode:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(where)], check=True, capture_output=True)  # noqa: S603
    else:
        assert not list(where.rglob("*.pyc")), "the deployed asset ships no bytecode"
    return where


# --- the moto process -----------------------------------------------------------------------------


def serve(clusters: int) -> None:
    """Child process: moto + a Slack sink + the stack's resources + `clusters` failed clusters; prints
    one JSON line (environment, event, SNS event) and serves until stdin closes."""
    sys.path.insert(0, str(REPO / "functions"))
    from hyperpod_guard import aws_clients
    from hyperpod_guard.local import moto_server
    from hyperpod_guard.local.hyperpod_state import put_cluster
    from hyperpod_guard.local.lambda_context import LambdaContext
    from hyperpod_guard.local.provision import delivered, provision
    from hyperpod_guard.local.slack_sink import SlackSink

    channel, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - the handlers' logs: not the JSON line
    os.environ.pop("AWS_PROFILE", None)
    server, url = moto_server.start()
    env = moto_server.environment(url, REGION)
    os.environ.update(env)
    sink = SlackSink()
    sink.start()
    resources = provision(slack_webhook_url=sink.url, rules=json.loads((REPO / "rules" / "defaults.json").read_text()))
    env.update(resources.environment())
    os.environ.update(env)
    aws_clients.reset()
    event = _event()
    for i in range(clusters + 1):
        put_cluster(dict(event["detail"], ClusterName=f"cold-{i}"), region=REGION)
    # one event handled here gives the SNS message the notifier benchmark delivers
    from hyperpod_guard.handlers import evaluator

    first = json.loads(json.dumps(event))
    first["detail"]["ClusterName"] = f"cold-{clusters}"
    result = evaluator.handler(first, LambdaContext())
    if not result.get("notifications"):
        raise RuntimeError(f"the {SCENARIO} event notified nothing: {result}")
    sns_event = delivered(resources)[0]["sns_event"]
    print(json.dumps({"env": env, "event": event, "sns_event": sns_event}), file=channel, flush=True)
    sys.stdin.read()
    print(json.dumps({"slack_posts": len(sink.requests)}), file=channel, flush=True)
    sink.stop()
    server.stop()


def _event() -> dict[str, Any]:
    event = json.loads((REPO / "events" / SCENARIO / "event.json").read_text())
    event.update(region=REGION, account=ACCOUNT, resources=[])
    event["detail"].pop("ClusterArn", None)
    return event


@contextmanager
def moto_process(clusters: int) -> Iterator[dict[str, Any]]:
    process = subprocess.Popen([sys.executable, __file__, "serve", str(clusters)],  # noqa: S603
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    try:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the moto process did not start")
        stage = json.loads(line)
        yield stage
        process.stdin.close()
        stage.update(json.loads(process.stdout.readline() or "{}"))
    finally:
        process.wait(timeout=30) if process.stdin.closed else process.kill()


# --- measuring ------------------------------------------------------------------------------------


def _run(code: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)  # noqa: S603
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"cold-path snippet failed:\n{done.stderr[-3000:]}")
    return took, done.stderr


def _result(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"no handler result:\n{stderr[-2000:]}")


def measure(runs: int = 7, variants: tuple[str, ...] = ("deployed", "bytecode")) -> dict[str, Any]:
    """cold_event_ratio, cold_event_floor_ratio and notifier_cold_ratio for each variant (see the module)."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        assets = {v: build_asset(Path(tmp) / v, bytecode=(v == "bytecode")) for v in variants}
        medians, slack_posts = interleaved(assets, runs)
    out: dict[str, Any] = {}
    for variant in variants:
        suffix = "" if variant == "deployed" else f"_{variant}"
        m = {snippet: medians[(variant, snippet)] for snippet in SNIPPETS}
        out[f"cold_event_ratio{suffix}"] = m["evaluator"] / m["boto3"]
        out[f"cold_event_floor_ratio{suffix}"] = m["evaluator"] / m["floor"]
        out[f"notifier_cold_ratio{suffix}"] = m["notifier"] / m["boto3"]
        out[f"cold_path_seconds{suffix}"] = {k: round(v, 4) for k, v in m.items()}
    out["cold_path_slack_posts"] = slack_posts
    return out


def interleaved(assets: dict[str, Path], runs: int,
                snippets: tuple[str, ...] = tuple(SNIPPETS)) -> tuple[dict[tuple[str, str], float], int | None]:
    """Median wall time of every (asset, snippet), interleaved run by run (round 0 is a warm-up, not
    counted); each run gets a cluster (and SNS message id) of its own. Also: Slack posts the sink saw."""
    names = [(variant, snippet) for variant in assets for snippet in snippets]
    with moto_process(len(names) * (runs + 1)) as stage:
        base = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "PYTHONPATH")}
        base.update(stage["env"], PYTHONDONTWRITEBYTECODE="1", POWERTOOLS_LOG_LEVEL="INFO",
                    BENCH_EVENT=json.dumps(stage["event"]), BENCH_SNS_EVENT=json.dumps(stage["sns_event"]))
        times: dict[tuple[str, str], list[float]] = {name: [] for name in names}
        counter = 0
        for round_ in range(runs + 1):  # round 0 warms the disk cache and moto, not counted
            for variant, snippet in names:
                env = dict(base, PYTHONPATH=str(assets[variant]), BENCH_CLUSTER=f"cold-{counter}")
                counter += 1
                took, stderr = _run(SNIPPETS[snippet], env)
                if snippet in ("evaluator", "notifier"):
                    _check(snippet, _result(stderr))
                if round_:
                    times[(variant, snippet)].append(took)
    return {name: statistics.median(values) for name, values in times.items()}, stage.get("slack_posts")


def _check(snippet: str, result: dict[str, Any]) -> None:
    if snippet == "evaluator" and not result.get("notifications"):
        raise RuntimeError(f"the evaluator event notified nothing: {result}")
    if snippet == "notifier" and result.get("sent") != 1:
        raise RuntimeError(f"the notifier sent nothing: {result}")


def cold_path_figures() -> dict[str, Any]:
    return measure()


#: key -> (target as text, check), merged into bench.TARGETS
TARGETS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "cold_event_ratio": ("<= 2.5", lambda r: r["cold_event_ratio"] <= 2.5),
    "cold_event_floor_ratio": ("<= 1.3", lambda r: r["cold_event_floor_ratio"] <= 1.3),
    "notifier_cold_ratio": ("<= 2.0", lambda r: r["notifier_cold_ratio"] <= 2.0),
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
        print(json.dumps(measure(runs), indent=2))
