"""Cold path as a Lambda user pays it (issue 17): a fresh interpreter imports a handler and handles ONE
event end to end against moto running in its own process, with the code laid out as deployed.

Each variant is a Lambda runtime and an asset:
- the interpreter is an empty venv of that runtime's Python (no dev packages on sys.path, as in
  Lambda), with the asset first on the path (as /var/task is) and then the packages the Lambda runtime
  ships (boto3, botocore and their dependencies, pinned to this venv's versions, byte-compiled);
- the asset is built as infra/bundling.py builds it: `pip install --no-compile --target` of
  LAMBDA_REQUIREMENTS (for this machine's platform and the runtime's Python, so that it can run here)
  plus a copy of the `hyperpod_guard` package without cli/, local/ and caches.
  'deployed' runs it as shipped today: no .pyc, PYTHONDONTWRITEBYTECODE=1, so every module of the asset
  is compiled from source on every cold start. The functions run python3.14, which is not on this
  machine: its asset is measured on this interpreter (3.11), also without bytecode. '_bytecode'
  variants ship the asset byte-compiled by the runtime's Python (infra.bundling.compile_bytecode).
- moto, a Slack sink (webhook mode) and the Slack Web API stand-in (app mode,
  hyperpod_guard.local.slack_api_standin) run in a child process (`python benchmarks/cold_path.py serve`),
  so their threads do not share the measured interpreter nor the GIL with it. The measured interpreter
  never imports hyperpod_guard.local (it is not in the asset): the events it handles are built here, in
  the parent, and passed as JSON.

A run is timed from the parent's spawn of the interpreter to the snippet's end (the handler has
returned): the interpreter's teardown after that (~0.1 s once botocore's service models are loaded) is
no user's wait, since Lambda freezes the environment after the response. `cold_path_wall_seconds`
keeps the process wall times (teardown included) of the deployed variant for comparison.

SnapStart (Python >= 3.12): Lambda runs the init phase (imports, and what `prime()` loads) once when a
version is published, snapshots the VM, and resumes cold starts from the snapshot. What a user then
waits for is the restore (NOT measurable here: AWS's figure, see the README) plus the first event in
the restored process. `_snapstart` variants time exactly that first event, in a process that did the
init before the clock starts: importing the handler only, or also `prime()` (`_snapstart_primed`: the
handlers' init when AWS_LAMBDA_INITIALIZATION_TYPE is snap-start). They run on the 3.13 layout without
bytecode, and their ratios divide by the same `import boto3` of that layout.

Figures (medians over interleaved runs, each ÷ a baseline measured in the same run and layout; the
baselines run as a function without our asset would: the runtime's boto3 alone on the path):
- cold_event_ratio: evaluator import + one notifying State Change event ÷ `import boto3`;
- cold_event_floor_ratio: the same ÷ `import boto3` + one client + one DescribeCluster (the floor);
- notifier_cold_ratio: Slack notifier import + one SNS record delivered to the sink ÷ `import boto3`;
- cold_event_dependencies_ratio: the evaluator's dependencies alone (boto3, Powertools, pydantic, the
  four clients, the event's seven calls) ÷ `import boto3`: the evaluator if our own code cost nothing;
- endpoint_cold_ratio (issue 20): the Slack interactivity endpoint's import + one click, as Slack POSTs it
  to the Function URL (a `block_actions` body signed with the signing secret `serve` put in Secrets
  Manager, timestamped at the run's spawn), checked (GetSecretValue), parsed and sent to the actions queue,
  answered 200 ÷ `import boto3`; every click's message is then read back from the queue;
  endpoint_cold_seconds: its median in seconds, the figure to hold against Slack's 3-second limit (this
  machine's core, not Lambda's 256 MB share of a vCPU: see the README);
- notifier_app_cold_ratio (issue 20): the Slack notifier in app mode (SLACK_MODE=app: slack_sdk's
  WebClient, the bot token from Secrets Manager, the alert's thread in the ledger table) delivering one SNS
  record, the first alert of its cluster: one chat.postMessage to the stand-in ÷ `import boto3`; every
  run's post is then checked among the stand-in's calls;
- cold_event_spoke_ratio (issue 22, 'deployed' only): the evaluator of a hub (the fleet environment the stack
  sets: HOME_ACCOUNT, FLEET_REGIONS, EVENT_ACCOUNTS, SPOKE_ROLE_NAME, SPOKE_EXTERNAL_ID) importing and handling
  the same State Change event, from a spoke account in another region ÷ `import boto3`: on top of the home
  event, a second botocore session (sharing the process's data loader), an STS client and one AssumeRole of
  the spoke role, and a SageMaker client of the spoke's region. Its cluster exists only in the spoke's
  account and region on moto (moto's AssumeRole credentials map to the role's account), so an event read in
  the wrong place notifies nothing and fails the run; moto's STS is then asked for the AssumeRole calls it
  answered (one per spoke run, the role, session name and external id the stack's trust expects);
  spoke_over_home_ratio: that run's median ÷ the cold_event run's (same runs, same layout): what a spoke's
  event costs over a home one;
each without suffix for 'deployed', and with the variant's suffix for the others. `cold_path_seconds*`
are the medians, `cold_path_cpu_seconds*` the processes' CPU time over the same span (steadier on a
busy machine, and without the wait on moto).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # infra.bundling imports aws_cdk
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "functions"))  # this tree's hyperpod_guard: serve's, and the events built here
from infra.bundling import LAMBDA_REQUIREMENTS, compile_bytecode, copy_package, find_python  # noqa: E402

#: the State Change scenario used: failed-rollback, critical, grace 0s: notifies on its first event
SCENARIO = "cluster-rolling-back"
REGION = "us-west-2"
ACCOUNT = "123456789012"
#: issue 22: a spoke of the fleet in another region, its role (the spoke stack's) and the hub's external id
SPOKE, SPOKE_REGION = "444455556666", "us-east-1"
SPOKE_ROLE, EXTERNAL_ID = "hyperpod-guard-spoke", "hyperpod-guard"
#: what the Lambda Python runtime carries besides the asset (on /var/runtime): at this venv's versions
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
#: the runtime SnapStart and the second bytecode option are measured on (SnapStart needs >= 3.12)
SNAPSTART_PYTHON = "3.13"
#: app mode (issue 20): the Slack app's signing secret `serve` puts in Secrets Manager (the clicks are signed
#: with it), the channel of the `default` receiver, and who clicks
SIGNING_SECRET = "bench0signing0secret0of0the0app0"  # noqa: S105 - the benchmark's own
CHANNEL = "C0BENCH"
TEAM, USER = "T0BENCH", "U0BENCH"

_CONTEXT = """
import json, os, sys, time, uuid
class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "hyperpod-guard")
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:" + function_name
    aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 30_000
"""
_EVALUATOR_EVENT = """
event = json.loads(os.environ["BENCH_EVENT"])
name = os.environ["BENCH_CLUSTER"]
event["id"] = "cold-" + name
event["detail"]["ClusterName"] = name
"""
_NOTIFIER_EVENT = """
event = json.loads(os.environ["BENCH_SNS_EVENT"])
event["Records"][0]["Sns"]["MessageId"] = "cold-" + os.environ["BENCH_CLUSTER"]
"""
#: the run's event, built by the parent (a signed click, an app-mode SNS record: _run_event)
_RUN_EVENT = """
event = json.loads(os.environ["BENCH_RUN_EVENT"])
"""
#: the snippet's end (after the handler returned): where the clock stops (and the process's CPU time)
_END = "\nimport time as _t, sys as _s\nprint('COLD_END', _t.monotonic(), _t.process_time(), file=_s.stderr)\n"
#: a SnapStart snippet's end of init: where its clock starts
_START = "print('COLD_START', time.monotonic(), time.process_time(), file=sys.stderr)\n"
_RESULT = 'print("RESULT " + json.dumps(result, default=str), file=sys.stderr)\n'


def _handler(module: str, event: str, init: str | None = None) -> str:
    """Import the handler, then (SnapStart: `init`, and the clock starts) handle one event."""
    return (_CONTEXT + f"from hyperpod_guard.handlers.{module} import handler\n" + (init or "") + event
            + ("" if init is None else _START) + "result = handler(event, Context())\n" + _RESULT)


_PRIME = "from hyperpod_guard.handlers.{module} import prime\nprime()\n"
SNIPPETS = {
    "evaluator": _handler("evaluator", _EVALUATOR_EVENT),
    # issue 22: the same code; its run gets the fleet's environment and the spoke's event (interleaved)
    "evaluator_spoke": _handler("evaluator", _EVALUATOR_EVENT),
    "notifier": _handler("slack_notifier", _NOTIFIER_EVENT),
    "boto3": "import boto3",
    "floor": """
import os, boto3
boto3.client("sagemaker").describe_cluster(ClusterName=os.environ["BENCH_CLUSTER"])
""",
    # the evaluator's dependencies doing its event's work (imports, clients, the same 7 calls) without
    # any of our code: what the evaluator would cost if hyperpod_guard's own code cost nothing
    "dependencies": """
import os, uuid, boto3
from botocore.config import Config
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities import parameters
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
logger, metrics = Logger(service="bench"), Metrics(namespace="bench", service="evaluator")
session = boto3.session.Session()
config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
sagemaker, dynamodb, sns, ssm = (session.client(n, config=config) for n in ("sagemaker", "dynamodb", "sns", "ssm"))
parameters.SSMProvider(boto3_client=ssm).get_multiple(os.environ["RULES_PATH"], recursive=True, decrypt=True)
table = os.environ["TABLE_NAME"]
def query(pk):
    dynamodb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}})
def write():
    item = {"pk": {"S": "bench"}, "sk": {"S": str(uuid.uuid4())}}
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": item}}])
query("SILENCES")
sagemaker.describe_cluster(ClusterName=os.environ["BENCH_CLUSTER"])
query("CLUSTER#bench")
write()
sns.publish(TopicArn=os.environ["TOPIC_ARN"], Message="{}")
write()
""",
    # SnapStart: the init (import, or import + prime) before the clock starts, then the first event
    "evaluator_snapstart": _handler("evaluator", _EVALUATOR_EVENT, ""),
    "notifier_snapstart": _handler("slack_notifier", _NOTIFIER_EVENT, ""),
    "evaluator_snapstart_primed": _handler("evaluator", _EVALUATOR_EVENT, _PRIME.format(module="evaluator")),
    "notifier_snapstart_primed": _handler("slack_notifier", _NOTIFIER_EVENT, _PRIME.format(module="slack_notifier")),
    # issue 20: the interactivity endpoint (one signed click) and the notifier in app mode (one chat.postMessage)
    "endpoint": _handler("slack_interactivity", _RUN_EVENT),
    "notifier_app": _handler("slack_notifier", _RUN_EVENT),
    "endpoint_snapstart": _handler("slack_interactivity", _RUN_EVENT, ""),
    "notifier_app_snapstart": _handler("slack_notifier", _RUN_EVENT, ""),
    "endpoint_snapstart_primed": _handler("slack_interactivity", _RUN_EVENT,
                                          _PRIME.format(module="slack_interactivity")),
    "notifier_app_snapstart_primed": _handler("slack_notifier", _RUN_EVENT, _PRIME.format(module="slack_notifier")),
}
COLD = ("boto3", "floor", "evaluator", "notifier", "dependencies", "endpoint", "notifier_app")
#: the baselines are what a function without our asset runs: the runtime's boto3 alone on the path
BASELINES = ("boto3", "floor")


@dataclass(frozen=True)
class Variant:
    """A Lambda runtime (its Python) and how the asset ships; `snippets` are measured on it."""

    python: str
    bytecode: bool
    snippets: tuple[str, ...] = COLD
    #: the variant whose boto3 and floor runs are this one's baselines (SnapStart: its layout's)
    baseline: str | None = None


VARIANTS: dict[str, Variant] = {
    "deployed": Variant(THIS_PYTHON, bytecode=False, snippets=(*COLD, "evaluator_spoke")),
    "bytecode": Variant(THIS_PYTHON, bytecode=True),
    "py313": Variant(SNAPSTART_PYTHON, bytecode=False),
    "py313_bytecode": Variant(SNAPSTART_PYTHON, bytecode=True),
    "snapstart": Variant(SNAPSTART_PYTHON, bytecode=False, baseline="py313",
                         snippets=("evaluator_snapstart", "notifier_snapstart", "endpoint_snapstart",
                                   "notifier_app_snapstart")),
    "snapstart_primed": Variant(SNAPSTART_PYTHON, bytecode=False, baseline="py313",
                                snippets=("evaluator_snapstart_primed", "notifier_snapstart_primed",
                                          "endpoint_snapstart_primed", "notifier_app_snapstart_primed")),
}


@dataclass(frozen=True)
class Layout:
    """What a variant's runs execute: the interpreter, and on its path the asset (first, as /var/task
    is) then the runtime's packages; the baselines run with the runtime's alone."""

    python: str
    asset: Path
    runtime: Path

    def path(self, snippet: str) -> str:
        return str(self.runtime) if snippet in BASELINES else f"{self.asset}{os.pathsep}{self.runtime}"


def build_asset(where: Path, *, python_version: str = THIS_PYTHON, package: Path | None = None) -> Path:
    """The Lambda asset as infra/bundling.py builds it, for this machine's platform and `python_version`
    (`package`: another tree of hyperpod_guard, to compare versions of it). No bytecode."""
    _pip_target(where, python_version, LAMBDA_REQUIREMENTS)
    copy_package(where, *(() if package is None else (package,)))
    assert not list(where.rglob("*.pyc")), "the deployed asset ships no bytecode"
    return where


def _pip_target(where: Path, python_version: str, requirements: tuple[str, ...]) -> None:
    subprocess.run(  # noqa: S603 - a fixed argv
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(where), "--platform", "manylinux2014_x86_64", "--implementation", "cp",
         "--python-version", python_version, "--only-binary=:all:", *requirements],
        check=True, capture_output=True, text=True)


def build_layouts(tmp: Path, variants: dict[str, Variant],
                  package: Path | None = None) -> tuple[dict[str, Layout], dict[str, str]]:
    """Each variant's layout, and the variants skipped (no interpreter of their Python here) and why."""
    pinned = tuple(f"{name}=={metadata.version(name)}" for name in RUNTIME_PACKAGES)
    interpreters: dict[str, str] = {}
    layouts: dict[str, Layout] = {}
    skipped: dict[str, str] = {}
    for name, variant in variants.items():
        version = variant.python
        if version not in interpreters:
            found = find_python(version)
            if found is None:
                skipped[name] = f"no Python {version} on this machine"
                continue
            venv = tmp / f"venv-{version}"
            subprocess.run([found, "-m", "venv", "--without-pip", str(venv)], check=True)  # noqa: S603
            runtime = tmp / f"runtime-{version}"
            _pip_target(runtime, version, pinned)
            interpreters[version] = str(venv / "bin" / "python")
            compile_bytecode(runtime, interpreters[version])  # the Lambda runtime ships boto3 compiled
        asset = tmp / f"asset-{version}{'-bytecode' if variant.bytecode else ''}"
        if not asset.exists():
            plain = tmp / f"asset-{version}"
            if not plain.exists():
                build_asset(plain, python_version=version, package=package)
            if variant.bytecode:
                shutil.copytree(plain, asset)
                compile_bytecode(asset, interpreters[version])
        layouts[name] = Layout(interpreters[version], asset, tmp / f"runtime-{version}")
    return layouts, skipped


# --- the moto process -----------------------------------------------------------------------------


def serve(clusters: int) -> None:
    """Child process: moto + a Slack sink (webhook mode) + the Slack Web API stand-in (app mode) + the
    stack's resources (app mode's too: its two secrets, the actions queue) + `clusters` failed clusters at
    home (`cold-<i>`) and as many in the spoke's account and region only (`spoke-<i>`); prints one JSON line
    (environment, event, SNS event, the app-mode functions' environment, the button a click presses, the
    fleet's environment and the spoke's event) and serves until stdin closes; then one JSON line: what
    reached Slack and the queue, and the AssumeRole calls moto's STS answered for the spoke account."""
    sys.path.insert(0, str(REPO / "functions"))
    from hyperpod_guard import aws_clients
    from hyperpod_guard.local import moto_server
    from hyperpod_guard.local.hyperpod_state import put_cluster
    from hyperpod_guard.local.lambda_context import LambdaContext
    from hyperpod_guard.local.provision import delivered, provision
    from hyperpod_guard.local.slack_api_standin import SlackApiStandIn
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
        put_cluster(dict(event["detail"], ClusterName=f"spoke-{i}"), region=SPOKE_REGION, account=SPOKE)
    # one event handled here gives the SNS message the notifier benchmark delivers
    from hyperpod_guard.handlers import evaluator

    first = json.loads(json.dumps(event))
    first["detail"]["ClusterName"] = f"cold-{clusters}"
    result = evaluator.handler(first, LambdaContext())
    if not result.get("notifications"):
        raise RuntimeError(f"the {SCENARIO} event notified nothing: {result}")
    sns_event = delivered(resources)[0]["sns_event"]
    slack_api = SlackApiStandIn().start()
    app_env, actions_queue = _app_mode(slack_api.url)
    print(json.dumps({"env": env, "event": event, "sns_event": sns_event, "app_env": app_env,
                      "button": _acknowledge_button(sns_event), "fleet_env": _fleet_environment(),
                      "spoke_event": dict(event, account=SPOKE, region=SPOKE_REGION)}), file=channel, flush=True)
    sys.stdin.read()
    posts = [c.args for c in slack_api.calls_of("chat.postMessage") if c.ok]
    print(json.dumps({"slack_posts": len(sink.requests),
                      "slack_api_posts": [{"channel": a.get("channel"), "text": a.get("text")} for a in posts],
                      "clicks_queued": _drain(actions_queue), "assumed_roles": _assumed_roles()}),
          file=channel, flush=True)
    slack_api.stop()
    sink.stop()
    server.stop()


def _app_mode(api_url: str) -> tuple[dict[str, dict[str, str]], str]:
    """Child process: what `cdk deploy -c slackMode=app` adds, on moto: the bot token and the signing
    secret in their secrets (filled in, as the operator does after deploying) and the actions queue.
    Returns the environment of each app-mode snippet (the endpoint's, the notifier's in app mode; the
    stack's names, as infra/chatops.py sets them, SLACK_API_URL pointing at the stand-in) and the queue."""
    import boto3

    from hyperpod_guard import naming
    from hyperpod_guard.constants import SLACK_API_URL, SLACK_BOT_TOKEN_SECRET, SLACK_CHANNELS, SLACK_MODE
    from hyperpod_guard.local.provision import PREFIX
    from hyperpod_guard.local.slack_api_standin import TOKEN
    from hyperpod_guard.settings import SlackInteractivitySettings

    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=naming.slack_bot_token_secret_name(PREFIX), SecretString=TOKEN)
    secrets.create_secret(Name=naming.slack_signing_secret_name(PREFIX), SecretString=SIGNING_SECRET)
    queue = boto3.client("sqs").create_queue(QueueName=f"{PREFIX}-slack-actions")["QueueUrl"]
    endpoint = SlackInteractivitySettings.environment(signing_secret_secret=naming.slack_signing_secret_name(PREFIX),
                                                      actions_queue_url=queue)
    notifier = {SLACK_MODE.name: "app", SLACK_BOT_TOKEN_SECRET.name: naming.slack_bot_token_secret_name(PREFIX),
                SLACK_CHANNELS.name: json.dumps({"default": CHANNEL}), SLACK_API_URL.name: api_url}
    return {"endpoint": endpoint, "notifier_app": notifier}, queue


def _fleet_environment() -> dict[str, str]:
    """What a hub's stack adds to the evaluator's environment (infra/fleet.py), for this hub (moto's account,
    REGION) and its one spoke: events from both accounts and both regions are believed."""
    from hyperpod_guard import fleet

    return {fleet.HOME_ACCOUNT: ACCOUNT, fleet.FLEET_REGIONS: f"{REGION},{SPOKE_REGION}",
            fleet.EVENT_ACCOUNTS: f"{ACCOUNT},{SPOKE}", fleet.SPOKE_ROLE_NAME: SPOKE_ROLE,
            fleet.SPOKE_EXTERNAL_ID: EXTERNAL_ID}


def _assumed_roles() -> list[list[str | None]]:
    """Child process: (role ARN, session name, external id) of each AssumeRole moto's STS answered for the
    spoke account (moto's server runs in this process: its backends are this process's)."""
    from moto.sts.models import sts_backends

    return [[r.role_arn, r.session_name, r.external_id] for r in sts_backends[SPOKE]["aws"].assumed_roles]


def _acknowledge_button(sns_event: dict[str, Any]) -> dict[str, str]:
    """Child process: the Acknowledge button (action_id, value) of the alert's app-mode message, rendered
    as notify/slack.py renders it: what a click sends back."""
    from hyperpod_guard.notify.message import Notification
    from hyperpod_guard.notify.slack import item_buttons

    notification = Notification.model_validate_json(sns_event["Records"][0]["Sns"]["Message"])
    button = item_buttons(notification.items[0], None, None)[0]
    return {"action_id": button["action_id"], "value": button["value"]}


def _drain(queue: str) -> list[str]:
    """Child process: the `action_ts` of every click on the actions queue (its message: the Interaction)."""
    import boto3

    sqs = boto3.client("sqs")
    out: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        out.extend(json.loads(m["Body"])["action_ts"] for m in batch)
    return out


def _event() -> dict[str, Any]:
    event = json.loads((REPO / "events" / SCENARIO / "event.json").read_text())
    event.update(region=REGION, account=ACCOUNT, resources=[])
    event["detail"].pop("ClusterArn", None)
    return event


@contextmanager
def moto_process(script: str, *args: str, timeout: float = 30) -> Iterator[dict[str, Any]]:
    """`python script serve *args`: a moto server in a process of its own (its CPU is not the measured
    one). Yields the JSON line it prints first (its environment); once the block is done, closes its
    stdin (the server stops) and adds the JSON line it prints last, if any (its counts)."""
    process = subprocess.Popen([sys.executable, script, "serve", *args],  # noqa: S603 - our own scripts
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
        process.wait(timeout=timeout) if process.stdin.closed else process.kill()


# --- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    took: float  # from the spawn (or a SnapStart snippet's end of init) to the snippet's end
    wall: float  # the process, teardown included
    cpu: float  # the process's CPU time over `took` (less sensitive to a busy machine; no wait on moto)
    stderr: str


def _run(layout: Layout, snippet: str, env: dict[str, str]) -> Run:
    spawned = time.monotonic()
    done = subprocess.run([layout.python, "-c", SNIPPETS[snippet] + _END],  # noqa: S603
                          env=dict(env, PYTHONPATH=layout.path(snippet)), capture_output=True, text=True)
    wall = time.monotonic() - spawned
    if done.returncode != 0:
        raise RuntimeError(f"cold-path snippet failed:\n{done.stderr[-3000:]}")
    marks = {line.split()[0]: (float(line.split()[1]), float(line.split()[2])) for line in done.stderr.splitlines()
             if line.startswith(("COLD_START ", "COLD_END "))}
    # time.monotonic is CLOCK_MONOTONIC on Linux: one clock for every process of the machine
    start, cpu_start = marks.get("COLD_START", (spawned, 0.0))
    return Run(marks["COLD_END"][0] - start, wall, marks["COLD_END"][1] - cpu_start, done.stderr)


def _result(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"no handler result:\n{stderr[-2000:]}")


def measure(runs: int = 7, variants: tuple[str, ...] = tuple(VARIANTS), package: Path | None = None) -> dict[str, Any]:
    """The cold-path ratios of each variant (see the module); `package`: another tree of hyperpod_guard."""
    chosen = {name: VARIANTS[name] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        layouts, skipped = build_layouts(Path(tmp), chosen, package)
        names = [(variant, snippet) for variant in chosen if variant in layouts for snippet in chosen[variant].snippets]
        medians, walls, cpus, counts = interleaved(layouts, names, runs)
    out: dict[str, Any] = {}
    for variant in (name for name in chosen if name in layouts):
        suffix = "" if variant == "deployed" else f"_{variant}"
        base = chosen[variant].baseline or variant
        m = {_kind(snippet): medians[(variant, snippet)] for snippet in chosen[variant].snippets}
        boto3, floor = medians.get((base, "boto3")), medians.get((base, "floor"))
        if boto3 is None or floor is None:
            continue
        out[f"cold_event_ratio{suffix}"] = m["evaluator"] / boto3
        out[f"cold_event_floor_ratio{suffix}"] = m["evaluator"] / floor
        out[f"notifier_cold_ratio{suffix}"] = m["notifier"] / boto3
        if "dependencies" in m:
            out[f"cold_event_dependencies_ratio{suffix}"] = m["dependencies"] / boto3
        if "endpoint" in m:
            out[f"endpoint_cold_ratio{suffix}"] = m["endpoint"] / boto3
            out[f"endpoint_cold_seconds{suffix}"] = round(m["endpoint"], 4)
        if "notifier_app" in m:
            out[f"notifier_app_cold_ratio{suffix}"] = m["notifier_app"] / boto3
        if "evaluator_spoke" in m:
            out[f"cold_event_spoke_ratio{suffix}"] = m["evaluator_spoke"] / boto3
            out[f"spoke_over_home_ratio{suffix}"] = m["evaluator_spoke"] / m["evaluator"]
        out[f"cold_path_seconds{suffix}"] = {k: round(v, 4) for k, v in m.items()}
        out[f"cold_path_cpu_seconds{suffix}"] = {_kind(snippet): round(cpus[(variant, snippet)], 4)
                                                 for snippet in chosen[variant].snippets}
    if "deployed" in layouts:
        out["cold_path_wall_seconds"] = {s: round(walls[("deployed", s)], 4) for s in chosen["deployed"].snippets}
    out["cold_path_pythons"] = {name: chosen[name].python for name in layouts}
    if skipped:
        out["cold_path_skipped"] = skipped
    out["cold_path_slack_posts"] = counts["slack_posts"]
    out["cold_path_slack_api_posts"] = counts["slack_api_posts"]
    out["cold_path_clicks_queued"] = counts["clicks_queued"]
    out["cold_path_spoke_roles_assumed"] = counts["spoke_roles_assumed"]
    return out


Medians = dict[tuple[str, str], float]


def _kind(snippet: str) -> str:
    """What a snippet measures, whatever the variant: "endpoint" for "endpoint_snapstart_primed"."""
    return snippet.removesuffix("_snapstart_primed").removesuffix("_snapstart")


def interleaved(layouts: dict[str, Layout], names: list[tuple[str, str]],
                runs: int) -> tuple[Medians, Medians, Medians, dict[str, int | None]]:
    """Median time (process wall time, CPU time) of every (variant, snippet), interleaved run by run
    (round 0 is a warm-up, not counted); each run gets a cluster (and SNS message id) of its own, and an
    app-mode snippet its own event (_run_event) and environment, a spoke's evaluator run the fleet's
    environment and the spoke's event (a cluster `spoke-<n>`, which only the spoke's account and region
    hold). Also: Slack posts the sink saw, and (checked against what the runs sent: _check_app_mode,
    _check_spoke) those of the Web API stand-in, the clicks queued and the spoke roles assumed."""
    with moto_process(__file__, str(len(names) * (runs + 1))) as stage:
        base = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "PYTHONPATH", "VIRTUAL_ENV")}
        base.update(stage["env"], PYTHONDONTWRITEBYTECODE="1", POWERTOOLS_LOG_LEVEL="INFO",
                    BENCH_EVENT=json.dumps(stage["event"]), BENCH_SNS_EVENT=json.dumps(stage["sns_event"]))
        times: dict[tuple[str, str], list[float]] = {name: [] for name in names}
        walls: dict[tuple[str, str], list[float]] = {name: [] for name in names}
        cpus: dict[tuple[str, str], list[float]] = {name: [] for name in names}
        sent: dict[str, list[str]] = {kind: [] for kind in (*stage["app_env"], "evaluator_spoke")}
        counter = 0
        for round_ in range(runs + 1):  # round 0 warms the disk cache and moto, not counted
            for variant, snippet in names:
                kind = _kind(snippet)
                cluster = f"{'spoke' if kind == 'evaluator_spoke' else 'cold'}-{counter}"
                counter += 1
                env = dict(base, BENCH_CLUSTER=cluster)
                if kind in stage["app_env"]:
                    event, what = _run_event(kind, stage, cluster)
                    env.update(stage["app_env"][kind], BENCH_RUN_EVENT=json.dumps(event))
                    sent[kind].append(what)
                if kind == "evaluator_spoke":
                    env.update(stage["fleet_env"], BENCH_EVENT=json.dumps(stage["spoke_event"]))
                    sent[kind].append(cluster)
                run = _run(layouts[variant], snippet, env)
                if kind in ("evaluator", "evaluator_spoke", "notifier", "endpoint", "notifier_app"):
                    _check(kind, _result(run.stderr))
                if round_:
                    times[(variant, snippet)].append(run.took)
                    walls[(variant, snippet)].append(run.wall)
                    cpus[(variant, snippet)].append(run.cpu)
    _check_app_mode(sent, stage)
    _check_spoke(sent["evaluator_spoke"], stage)

    def median(values: dict[tuple[str, str], list[float]]) -> Medians:
        return {name: statistics.median(v) for name, v in values.items()}

    counts = {"slack_posts": stage.get("slack_posts"), "slack_api_posts": len(stage["slack_api_posts"]),
              "clicks_queued": len(stage["clicks_queued"]), "spoke_roles_assumed": len(stage["assumed_roles"])}
    return median(times), median(walls), median(cpus), counts


def _run_event(kind: str, stage: dict[str, Any], cluster: str) -> tuple[dict[str, Any], str]:
    """The event of one app-mode run, built here (the measured interpreter has no hyperpod_guard.local),
    and what it must leave behind (the click's action_ts on the actions queue; the cluster named by the
    chat.postMessage):
    - "endpoint": a click on the alert's Acknowledge button as Slack POSTs it to the Function URL now,
      signed with the signing secret (a fresh timestamp: the endpoint refuses one 5 minutes off);
    - "notifier_app": the alert's SNS record as the first alert of `cluster` (a new thread: one
      chat.postMessage, no update nor reply), with a message id of its own."""
    if kind == "endpoint":
        from hyperpod_guard.local.slack_clicks import block_actions, function_url_event

        now = time.time()
        action_ts = f"{now:.6f}"  # as Slack spells it; the runs are microseconds apart at least
        body = block_actions(action_id=stage["button"]["action_id"], value=stage["button"]["value"], user=USER,
                             user_name="bench", team=TEAM, channel=CHANNEL, message_ts="1700000001.000001",
                             message_text="hyperpod-guard alert", action_ts=action_ts, trigger_id=f"{cluster}.bench")
        return function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=int(now)), action_ts
    event = json.loads(json.dumps(stage["sns_event"]))
    sns = event["Records"][0]["Sns"]
    alerted = json.loads(sns["Message"])["cluster"]  # the one serve's evaluator alerted on
    sns["MessageId"] = "cold-app-" + cluster
    sns["Message"] = sns["Message"].replace(alerted, cluster)  # its name, ARN, subject, text, console link
    return event, cluster


def _check(kind: str, result: dict[str, Any]) -> None:
    if kind in ("evaluator", "evaluator_spoke") and not result.get("notifications"):
        raise RuntimeError(f"the evaluator event notified nothing: {result}")
    if kind == "evaluator_spoke" and not str(result.get("cluster")).endswith(f"@{SPOKE}/{SPOKE_REGION}"):
        raise RuntimeError(f"the spoke's event was not keyed as a cluster of {SPOKE}/{SPOKE_REGION}: {result}")
    if kind in ("notifier", "notifier_app") and result.get("sent") != 1:
        raise RuntimeError(f"the notifier sent nothing: {result}")
    if kind == "endpoint" and (result.get("statusCode"), result.get("body")) != (200, ""):
        raise RuntimeError(f"the endpoint did not answer 200: {result}")


def _check_app_mode(sent: dict[str, list[str]], stage: dict[str, Any]) -> None:
    """Every click is on the actions queue once, and every app-mode run posted its cluster's alert once to
    the channel (the stand-in's chat.postMessage calls), and nothing else was."""
    if "clicks_queued" not in stage:
        raise RuntimeError("the moto process did not say what reached Slack and the actions queue")
    if sorted(stage["clicks_queued"]) != sorted(sent["endpoint"]):
        raise RuntimeError(f"{len(sent['endpoint'])} clicks answered 200, the actions queue holds "
                           f"{len(stage['clicks_queued'])} (or others)")
    posted = [(post["channel"], sorted(set(re.findall(r"\bcold-\d+\b", post["text"] or ""))))
              for post in stage["slack_api_posts"]]
    expected = [(CHANNEL, [cluster]) for cluster in sent["notifier_app"]]
    if sorted(posted, key=str) != sorted(expected, key=str):
        raise RuntimeError(f"{len(expected)} app-mode alerts delivered, the Slack stand-in got {len(posted)} "
                           f"chat.postMessage (or for other clusters or channels)")


def _check_spoke(clusters: list[str], stage: dict[str, Any]) -> None:
    """Every spoke run (a fresh process: a session of its own) assumed the spoke role once, as the stack's
    trust expects it (the role's ARN, the hub's session name, the external id), and nothing else did."""
    role = [f"arn:aws:iam::{SPOKE}:role/{SPOKE_ROLE}", "hyperpod-guard", EXTERNAL_ID]
    if "assumed_roles" not in stage:
        raise RuntimeError("the moto process did not say which roles were assumed")
    if stage["assumed_roles"] != [role] * len(clusters):
        raise RuntimeError(f"{len(clusters)} spoke events notified, moto's STS answered "
                           f"{len(stage['assumed_roles'])} AssumeRole (or for another role): {stage['assumed_roles']}")


def cold_path_figures() -> dict[str, Any]:
    return measure()


#: key -> (target as text, check), merged into bench.TARGETS
TARGETS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "cold_event_ratio": ("<= 2.5", lambda r: r["cold_event_ratio"] <= 2.5),
    "cold_event_floor_ratio": ("<= 1.3", lambda r: r["cold_event_floor_ratio"] <= 1.3),
    "notifier_cold_ratio": ("<= 2.0", lambda r: r["notifier_cold_ratio"] <= 2.0),
    # issue 20: Slack shows the user an error when the endpoint has not answered within 3 seconds, cold start
    # included. Seconds of this machine's core: Lambda's 256 MB is a seventh of a vCPU (see the README)
    "endpoint_cold_seconds": ("< 3 s (Slack's limit), on this machine", lambda r: r["endpoint_cold_seconds"] < 3.0),
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
        chosen = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else tuple(VARIANTS)
        tree = Path(sys.argv[3]) if len(sys.argv) > 3 else None
        print(json.dumps(measure(runs, chosen, tree), indent=2))
