"""End to end under the real Lambda runtime client: `python -m awslambdaric <handler>` in a
subprocess, polling a fake Runtime API (tests/e2e/runtime_api.py), running the code from the
asset directory that CDK packages (infra.bundling.copy_package), with the handler string and
the environment variables of the synthesised stack, against moto (server mode, in this
process) through AWS_ENDPOINT_URL.

What this proves that the in-process tests cannot: the asset carries everything the handlers
import (and nothing from hyperpod_guard/local), the entry points in the template resolve, the
environment the stack sets is enough, cold start vs warm invocations, and how each outcome
reaches Lambda (a response, or an error post so that Lambda retries).

Isolation from the repository (the venv has an editable install of hyperpod_guard: a .pth that
puts /work/main/functions on sys.path, processed by `site`):
- the runtime runs `python -S`: no `site`, so no site-packages and no .pth file at all;
- sys.path is then the asset dir (cwd of `-m`, and first on PYTHONPATH), then a "deps" dir of
  symlinks to exactly the installed distributions the asset would carry (the closure of
  infra.bundling.LAMBDA_REQUIREMENTS) plus what the Lambda runtime itself provides (boto3 and
  awslambdaric with their dependencies), then the stdlib. moto, pytest, hyperpod_guard's
  editable finder etc. are not importable, so a missing runtime dependency fails here too;
- `-v` makes Python log the file of every module it loads: the tests assert that every
  hyperpod_guard module the runtime process loaded came from the asset dir.
The real asset carries arm64/cp314 wheels, which cannot run here; the deps dir uses the venv's
copies of the same distributions (versions checked against LAMBDA_REQUIREMENTS).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.requirements import Requirement

from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.rules_store import push_rules
from hyperpod_guard.local.slack_sink import SlackSink
from infra.bundling import CACHES, LAMBDA_REQUIREMENTS, NOT_SHIPPED, copy_package
from tests.conftest import ACCOUNT, REGION
from tests.e2e.runtime_api import RuntimeAPI, RuntimeProcessGone
from tests.runtime_fixtures import scenario, serve, stack  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "functions"
PREFIX = "hyperpod-guard"
#: what a Lambda Python runtime brings besides the asset (on /var/runtime, after /var/task)
RUNTIME_PROVIDED = ("boto3", "awslambdaric")
#: bounds for every wait: a hang fails fast with the runtime's logs
INVOKE_TIMEOUT = 20.0
PROCESS_TIMEOUT = 20.0
_FILE_LOG = re.compile(r"(?:code object from|matches) '?(\S+?\.py)'?$")


# --- the asset, the runtime's dependencies, the template ----------------------------------------

@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hyperpod_guard package exactly as the Lambda asset carries it."""
    root = tmp_path_factory.mktemp("asset")
    package = copy_package(root)
    assert package == root / "hyperpod_guard"
    files = [p.relative_to(root) for p in root.rglob("*")]
    assert not (package / "local").exists(), "the moto-based stand-ins must not ship"
    assert not (package / "cli").exists(), "the command line must not ship"
    assert not [f for f in files if "__pycache__" in f.parts or f.suffix == ".pyc" or f.name.endswith(".egg-info")]
    assert (package / "handlers" / "evaluator.py").is_file() and (package / "handlers" / "slack_notifier.py").is_file()
    assert (package / "py.typed").is_file()
    assert set(NOT_SHIPPED) >= {"local", "cli"} and "__pycache__" in CACHES
    return root


def _closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions `requirements` need, with extras and environment markers."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        dist = metadata.distribution(requirement.name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"the venv has {requirement.name} {dist.version}, the asset would carry {requirement}")
        key = f"{dist.metadata['Name'].lower()}[{','.join(sorted(requirement.extras))}]"
        if key in found:
            continue
        found[key] = dist
        for line in dist.requires or []:
            dependency = Requirement(line)
            if dependency.marker and not any(dependency.marker.evaluate({"extra": extra})
                                             for extra in (requirement.extras or {""})):
                continue
            todo.append(dependency)
    return found


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Symlinks to the top-level modules, packages and .dist-info of the runtime's dependencies."""
    root = tmp_path_factory.mktemp("deps")
    for dist in _closure([*LAMBDA_REQUIREMENTS, *RUNTIME_PROVIDED]).values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if top.endswith(".pth"):
                continue
            link = root / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    names = {p.name for p in root.iterdir()}
    assert {"aws_lambda_powertools", "pydantic", "pydantic_core", "boto3", "botocore", "awslambdaric"} <= names
    assert not names & {"hyperpod_guard", "moto", "pytest"}, names
    return root


@dataclass(frozen=True)
class FunctionSpec:
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]  # CloudFormation values (Ref, Fn::Join, ...)


@dataclass(frozen=True)
class Synthesised:
    template: dict[str, Any]
    functions: dict[str, FunctionSpec]  # by name without the prefix: "evaluator", "slack-notifier", ...


@pytest.fixture(scope="module")
def synthesised() -> Synthesised:
    """The stack as `cdk synth` builds it (asset bundling skipped): each function's handler,
    timeout, memory and environment."""
    return synthesise()


def synthesise(**context: Any) -> Synthesised:
    """The stack synthesised with `context` over cdk.json's (e.g. slackMode="app"): see `synthesised`."""
    import tempfile

    from tests.infra.conftest import make_stack  # jsii: ~4 s, once per module

    with tempfile.TemporaryDirectory() as outdir:
        app, built = make_stack(Path(outdir), **context)
        template = app.synth().get_stack_by_name(built.stack_name).template
    out = {}
    for resource in template["Resources"].values():
        # (the rules seed's provider, an AwsCustomResource, has a generated name and is not ours)
        if resource["Type"] == "AWS::Lambda::Function" and "FunctionName" in resource["Properties"]:
            p = resource["Properties"]
            out[p["FunctionName"].removeprefix(f"{PREFIX}-")] = FunctionSpec(
                p["Handler"], p["Timeout"], p["MemorySize"], p["Environment"]["Variables"])
    return Synthesised(template, out)


def _evaluate(value: Any, refs: dict[str, str]) -> Any:
    """Just enough CloudFormation for environment values: Ref / Fn::Join / Fn::Select / Fn::Split."""
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list):
        return [_evaluate(v, refs) for v in value]
    ((function, argument),) = value.items()
    if function == "Ref":
        return refs[argument]
    if function == "Fn::Join":
        return argument[0].join(_evaluate(argument[1], refs))
    if function == "Fn::Select":
        return _evaluate(argument[1], refs)[int(argument[0])]
    if function == "Fn::Split":
        return _evaluate(argument[1], refs).split(argument[0])
    raise AssertionError(f"cannot evaluate {value}")


def _refs(template: dict[str, Any]) -> dict[str, str]:
    """What `Ref` returns for the stack's table, topics, secrets and queues, here: the moto resources
    provision() (or a test) made under the stack's names."""
    sns, secrets, sqs = boto3.client("sns"), boto3.client("secretsmanager"), boto3.client("sqs")
    topics = {arn.rsplit(":", 1)[1]: arn for arn in (t["TopicArn"] for t in sns.list_topics()["Topics"])}
    queues = {url.rsplit("/", 1)[1]: url for url in sqs.list_queues().get("QueueUrls", [])}
    refs = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}  # moto's account
    for logical_id, resource in template["Resources"].items():
        p = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            refs[logical_id] = p["TableName"]
        elif resource["Type"] == "AWS::SNS::Topic" and p.get("TopicName") in topics:
            refs[logical_id] = topics[p["TopicName"]]
        elif resource["Type"] == "AWS::SecretsManager::Secret":
            refs[logical_id] = secrets.describe_secret(SecretId=p["Name"])["ARN"]
        elif resource["Type"] == "AWS::SQS::Queue" and p.get("QueueName") in queues:
            refs[logical_id] = queues[p["QueueName"]]
        elif resource["Type"] == "AWS::S3::Bucket":
            refs[logical_id] = _evaluate(p["BucketName"], refs)
    return refs


# --- one runtime process ("container") per function -----------------------------------------------

@dataclass
class LambdaProcess:
    name: str
    api: RuntimeAPI
    process: subprocess.Popen
    stdout: Path
    stderr: Path
    request_ids: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: Any, *, timeout: float = INVOKE_TIMEOUT) -> tuple[str, Any]:
        request_id = self.api.submit(event)
        self.request_ids.append(request_id)
        try:
            return self.api.result(request_id, timeout, alive=self.alive)
        except (TimeoutError, RuntimeProcessGone) as exc:
            raise AssertionError(f"{self.name}: {exc}\n{self.diagnostics()}") from None

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines (Powertools, EMF) the function wrote to stdout."""
        out = []
        for line in self.stdout.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def loaded_files(self) -> list[str]:
        """The .py file of every module the process loaded (from `python -v` on stderr)."""
        return [m.group(1) for line in self.stderr.read_text(errors="replace").splitlines()
                if (m := _FILE_LOG.search(line))]

    def diagnostics(self, tail: int = 6000) -> str:
        stderr = "\n".join(line for line in self.stderr.read_text(errors="replace").splitlines()
                           if not line.startswith(("#", "import ")))  # drop `python -v`'s import log
        return (f"--- {self.name} exit code: {self.process.poll()}; posts: {self.api.posts}; "
                f"init errors: {self.api.init_errors}\n--- stdout ({self.stdout}):\n"
                f"{self.stdout.read_text(errors='replace')[-tail:]}\n--- stderr ({self.stderr}, "
                f"`python -v` lines dropped):\n{stderr[-tail:]}")

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=PROCESS_TIMEOUT)
        finally:
            self.api.stop()


@dataclass
class Lambdas:
    asset: Path
    deps: Path
    stack: Synthesised
    moto: str
    logs: Path
    started: list[LambdaProcess] = field(default_factory=list)

    def environment(self, name: str, runtime_api: str, handler: str) -> dict[str, str]:
        """The function's environment in the template, resolved against moto, plus Lambda's own."""
        spec = self.stack.functions[name]
        refs = _refs(self.stack.template)
        env = {key: _evaluate(value, refs) for key, value in spec.environment.items()}
        home = self.logs / "home"
        home.mkdir(exist_ok=True)
        env.update({
            # what Lambda sets in the sandbox
            "AWS_LAMBDA_RUNTIME_API": runtime_api, "_HANDLER": handler, "LAMBDA_TASK_ROOT": str(self.asset),
            "LAMBDA_RUNTIME_DIR": str(self.deps), "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
            "AWS_LAMBDA_FUNCTION_NAME": f"{PREFIX}-{name}", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory), "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{PREFIX}-{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/26/[$LATEST]0123456789abcdef",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing", "TZ": ":UTC",
            "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
            # the code path the asset is on: /var/task (here the asset dir), then the runtime's modules
            "PYTHONPATH": f"{self.asset}{os.pathsep}{self.deps}", "PYTHONDONTWRITEBYTECODE": "1",
            # AWS is moto; no shared config or credentials from the developer's machine
            "AWS_ENDPOINT_URL": self.moto, "HOME": str(home), "AWS_CONFIG_FILE": str(home / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        })
        return env

    def start(self, name: str, *, handler: str | None = None, **overrides: str) -> LambdaProcess:
        spec = self.stack.functions[name]
        handler = handler or spec.handler
        api = RuntimeAPI(function_name=f"{PREFIX}-{name}", timeout_s=spec.timeout, region=REGION,
                         account=ACCOUNT).start()
        env = {**self.environment(name, api.address, handler), **overrides}
        n = len(self.started)
        stdout, stderr = self.logs / f"{n:02d}-{name}.stdout", self.logs / f"{n:02d}-{name}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            # -S: no site (no site-packages, no editable-install .pth); -v: log every module's file
            process = subprocess.Popen([sys.executable, "-S", "-v", "-m", "awslambdaric", handler],
                                       cwd=self.asset, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        started = LambdaProcess(name, api, process, stdout, stderr)
        self.started.append(started)
        return started

    def probe(self, name: str, code: str) -> subprocess.CompletedProcess:
        """`python -S -c code` with a runtime's environment and working directory."""
        env = self.environment(name, "127.0.0.1:9", self.stack.functions[name].handler)
        return subprocess.run([sys.executable, "-S", "-c", code], cwd=self.asset, env=env,
                              capture_output=True, text=True, timeout=PROCESS_TIMEOUT)


@pytest.fixture
def seeded(stack: Resources) -> Resources:
    """The rules the stack seeds (its default rulesFile), as it seeds them: the template tells
    the functions RULES_REQUIRED=true, so an empty rules path would be a rules-invalid alert."""
    document = json.loads((REPO / "rules" / "defaults.json").read_text())
    # these tests follow each invocation's own message; grouping holds messages for a flush (issue 17,
    # tests/integration/test_grouping.py and the model's grouped case)
    document["grouping"]["group_wait"] = "0s"
    push_rules(document, stack.rules_path, ssm=boto3.client("ssm"))
    # the work queue the template's WORK_QUEUE_URL names (the sweep's fan-out, grouping's flushes)
    boto3.client("sqs").create_queue(QueueName=f"{PREFIX}-work")
    return stack


@pytest.fixture
def lambdas(asset: Path, deps: Path, synthesised: Synthesised, seeded: Resources,
            tmp_path: Path) -> Iterator[Lambdas]:
    runtimes = Lambdas(asset, deps, synthesised, os.environ["AWS_ENDPOINT_URL"], tmp_path)
    try:
        yield runtimes
    finally:
        for started in runtimes.started:
            started.stop()
        assert not list(asset.rglob("__pycache__")), "the runtime wrote into the (read-only in Lambda) asset"


def delivered_here(event: dict[str, Any]) -> dict[str, Any]:
    """The sample event as EventBridge delivers it to this deployment: from its account and region
    (the evaluator ignores others: EVENT_ACCOUNTS, AWS_REGION)."""
    return {**event, "account": ACCOUNT, "region": REGION}


def node_scenario() -> dict[str, Any]:
    """unhealthy-node-no-repair (grace 0: fires on the first evaluation), its node served."""
    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot, nodes=[{"InstanceId": event["detail"]["InstanceId"], "InstanceGroupName": "p5-train",
                            "InstanceType": "ml.p5.48xlarge", "InstanceStatus": {"Status": "Running"}}])
    return delivered_here(event)


# --- the tests ------------------------------------------------------------------------------------

def test_entry_points_and_environment_come_from_the_stack(synthesised: Synthesised, seeded: Resources) -> None:
    stack = seeded  # with the work queue the template names
    functions = synthesised.functions
    assert functions["evaluator"].handler == "hyperpod_guard.handlers.evaluator.handler"
    assert functions["slack-notifier"].handler == "hyperpod_guard.handlers.slack_notifier.handler"
    assert functions["worker"].handler == "hyperpod_guard.handlers.worker.handler"
    refs = _refs(synthesised.template)
    evaluator = {k: _evaluate(v, refs) for k, v in functions["evaluator"].environment.items()}
    notifier = {k: _evaluate(v, refs) for k, v in functions["slack-notifier"].environment.items()}
    local = stack.environment()  # what the in-process tests and the demo use
    for key in ("TABLE_NAME", "TOPIC_ARN", "RULES_PATH", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        assert evaluator[key] == local[key], key
    assert notifier["SLACK_WEBHOOK_SECRET"] == local["SLACK_WEBHOOK_SECRET"]
    assert evaluator["RULES_MAX_AGE"] == "60" and evaluator["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_runtime_imports_only_the_asset(lambdas: Lambdas, asset: Path, deps: Path) -> None:
    result = lambdas.probe("evaluator", "\n".join([
        "import json, sys, hyperpod_guard, hyperpod_guard.handlers.evaluator as e, aws_lambda_powertools, boto3",
        "found = {}",
        "for name in ('hyperpod_guard.local', 'moto', 'pytest'):",
        "    try:",
        "        __import__(name); found[name] = True",
        "    except ImportError:",
        "        found[name] = False",
        "print(json.dumps({'package': hyperpod_guard.__file__, 'handler': e.__file__, 'path': sys.path,",
        "                  'powertools': aws_lambda_powertools.__file__, 'found': found}))",
    ]))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert Path(seen["package"]).is_relative_to(asset) and Path(seen["handler"]).is_relative_to(asset), seen
    assert Path(seen["powertools"]).is_relative_to(deps), seen
    assert seen["found"] == {"hyperpod_guard.local": False, "moto": False, "pytest": False}, seen
    assert str(FUNCTIONS) not in seen["path"] and not any("site-packages" in p for p in seen["path"]), seen["path"]


def test_evaluator_cold_then_warm_redelivery_alerts_once(lambdas: Lambdas, stack: Resources, asset: Path) -> None:
    started = time.monotonic()
    evaluator = lambdas.start("evaluator")
    event, snapshot = scenario("degraded-group-failed")
    event = delivered_here(event)
    serve(snapshot)
    first = evaluator.invoke(event)
    cold = time.monotonic() - started
    again = evaluator.invoke(event)  # same event again: evaluated again, the ledger already knows it
    context = evaluator.diagnostics()
    assert first == ("response", {"cluster": "ml-prod", "findings": 2, "notifications": 0, "notified_findings": 0,
                                  "suppressed": 0}), context
    assert again == first, context
    assert delivered(stack) == [], "degraded-group has a 5-minute grace: pending, nothing sent"

    node_event = node_scenario()
    fired = evaluator.invoke(node_event)
    duplicate = evaluator.invoke(node_event)
    expected = {"cluster": "pretrain-east", "findings": 1, "notifications": 1, "notified_findings": 1, "suppressed": 0}
    assert fired == ("response", expected), evaluator.diagnostics()
    assert duplicate == ("response", dict(expected, notifications=0, notified_findings=0)), evaluator.diagnostics()
    (message,) = delivered(stack)
    assert message["attributes"]["severity"] == "critical" and message["attributes"]["status"] == "firing"
    assert [i["finding"]["node"] for i in message["message"]["items"]] == [node_event["detail"]["InstanceId"]]

    # one container served all four invocations; Powertools saw the cold start only on the first
    assert evaluator.alive() and evaluator.api.delivered == evaluator.request_ids, evaluator.diagnostics()
    lines = [line for line in evaluator.logs() if "cold_start" in line]
    by_request = {}
    for line in lines:
        by_request.setdefault(line["function_request_id"], set()).add(line["cold_start"])
    first_id, *later_ids = evaluator.request_ids
    assert by_request.get(first_id) == {True}, evaluator.diagnostics()
    assert by_request.get(evaluator.request_ids[2]) == {False}, evaluator.diagnostics()  # the node alert's decision
    assert all(by_request.get(i, {False}) == {False} for i in later_ids), by_request
    assert {line["function_name"] for line in lines} == {f"{PREFIX}-evaluator"}
    assert {line["correlation_id"] for line in lines} >= {event["id"], node_event["id"]}
    assert any("Notifications" in line for line in evaluator.logs() if "_aws" in line), "EMF metrics on stdout"

    # the handler and every hyperpod_guard module came from the asset
    ours = [f for f in evaluator.loaded_files() if "/hyperpod_guard/" in f]
    assert str(asset / "hyperpod_guard" / "handlers" / "evaluator.py") in ours, evaluator.diagnostics()
    assert ours and all(Path(f).is_relative_to(asset) for f in ours), [f for f in ours if not Path(f).is_relative_to(asset)]
    print(f"evaluator: cold start to first response {cold:.2f} s")


def test_malformed_events_are_answered_not_retried(lambdas: Lambdas, stack: Resources) -> None:
    evaluator = lambdas.start("evaluator")
    kind, payload = evaluator.invoke({"detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
                                      "id": "x-1", "detail": {"EventDetails": {}}})
    assert kind == "response" and payload.get("invalid"), evaluator.diagnostics()
    assert evaluator.invoke(["not", "an", "event"]) == ("response", {"invalid": "not an object"})
    assert not [post for post in evaluator.api.posts if post[1] == "error"]
    warnings = [line for line in evaluator.logs() if line.get("message") == "dropping invalid event"]
    assert len(warnings) == 2 and warnings[0]["cold_start"] is True and warnings[1]["cold_start"] is False, warnings
    assert delivered(stack) == []


def test_aws_failure_is_an_error_post_so_lambda_retries(lambdas: Lambdas, stack: Resources) -> None:
    evaluator = lambdas.start("evaluator", TABLE_NAME="no-such-table")
    event, snapshot = scenario("degraded-group-failed")
    event = delivered_here(event)
    serve(snapshot)
    kind, payload = evaluator.invoke(event)
    assert kind == "error", evaluator.diagnostics()
    assert "ResourceNotFound" in payload["errorType"] + payload["errorMessage"], payload
    assert payload["errorType"] == "ResourceNotFoundException", payload  # the ledger read
    assert any("/hyperpod_guard/handlers/evaluator.py" in frame for frame in payload["stackTrace"]), payload
    assert payload["stackTrace"], payload
    # the container survives the failed invocation, and Lambda's retry fails the same way
    assert evaluator.invoke(event)[0] == "error" and evaluator.alive(), evaluator.diagnostics()
    assert [kind for _, kind, _ in evaluator.api.posts] == ["error", "error"]
    assert delivered(stack) == []


def test_slack_notifier_delivers_once_and_reports_slack_outage_as_error(lambdas: Lambdas, stack: Resources) -> None:
    sink = SlackSink()
    sink.start()
    try:
        boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=sink.url)
        evaluator = lambdas.start("evaluator")
        assert evaluator.invoke(node_scenario())[0] == "response", evaluator.diagnostics()
        (message,) = delivered(stack)
        notifier = lambdas.start("slack-notifier", SLACK_MAX_ATTEMPTS="2")

        assert notifier.invoke(message["sns_event"]) == ("response", {"sent": 1, "dropped": 0}), notifier.diagnostics()
        assert len(sink.requests) == 1
        assert sink.requests[0].path.startswith("/services/") and "pretrain-east" in json.dumps(sink.requests[0].json)

        # SNS redelivers the same message: answered from its idempotency record, not posted again
        assert notifier.invoke(message["sns_event"]) == ("response", {"sent": 1, "dropped": 0}), notifier.diagnostics()
        assert len(sink.requests) == 1
        assert [line for line in notifier.logs() if "SlackDuplicatesSkipped" in line]

        sink.respond(500, "internal_error", times=2)  # Slack down for both attempts
        another = copy.deepcopy(message["sns_event"])
        another["Records"][0]["Sns"]["MessageId"] = "another-message"
        kind, payload = notifier.invoke(another)
        assert kind == "error", notifier.diagnostics()
        assert payload["errorType"] == "SlackDeliveryError" and "HTTP 500" in payload["errorMessage"], payload
        assert sink.url not in json.dumps(payload), "the webhook URL is a secret"
        assert len(sink.requests) == 3
        sent = [line for line in notifier.logs() if line.get("message") == "Sent to Slack"]
        assert len(sent) == 1 and sent[0]["cold_start"] is True
        failed = [line for line in notifier.logs() if str(line.get("message", "")).startswith("Slack delivery failed")]
        assert len(failed) == 1 and failed[0]["cold_start"] is False and failed[0]["attempts"] == 2, failed
    finally:
        sink.stop()


def test_the_sweep_fans_out_and_the_worker_evaluates(lambdas: Lambdas, stack: Resources, asset: Path) -> None:
    """The sweep with the stack's WORK_QUEUE_URL sends one message per cluster; the worker, fed them as
    Lambda's SQS event source feeds it, evaluates each and reports a bad message as its own failure."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{PREFIX}-work")["QueueUrl"]  # named as the stack names it
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    _, failing = scenario("node-failure-recovery-none")
    serve(failing)  # batch-infer: a node in Failure, nothing repairs it; the sweep lists it: critical at once
    (failed_node,) = [n["InstanceId"] for n in failing["Nodes"] if n["InstanceStatus"]["Status"] == "Failure"]
    _, degraded = scenario("degraded-group-failed")
    serve(degraded)  # ml-prod: pending (5m grace)

    sweep = lambdas.start("sweep")
    kind, summary = sweep.invoke({})
    assert (kind, summary["clusters"], summary["enqueued"], summary["evaluated"]) == ("response", 2, 2, 0), (
        sweep.diagnostics())
    assert delivered(stack) == []  # the sweep evaluated nothing itself
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(json.loads(m["Body"])["cluster"] for m in received) == ["batch-infer", "ml-prod"]
    bad = sqs.send_message(QueueUrl=url, MessageBody='{"kind": "no-such-kind"}')["MessageId"]
    received += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    event = {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION} for m in received]}

    worker = lambdas.start("worker")
    assert worker.invoke(event) == ("response", {"batchItemFailures": [{"itemIdentifier": bad}]}), (
        worker.diagnostics())
    (message,) = delivered(stack)
    assert message["message"]["cluster"] == "batch-infer"
    assert [i["finding"]["node"] for i in message["message"]["items"]] == [failed_node]
    # delivered again (SQS is at least once): evaluated again, nothing sent again
    assert worker.invoke(event) == ("response", {"batchItemFailures": [{"itemIdentifier": bad}]})
    assert delivered(stack) == []
    assert any("SweepClustersEvaluated" in line for line in worker.logs() if "_aws" in line), "EMF metrics"
    for process in (sweep, worker):
        ours = [f for f in process.loaded_files() if "/hyperpod_guard/" in f]
        assert ours and all(Path(f).is_relative_to(asset) for f in ours), process.diagnostics()
    assert str(asset / "hyperpod_guard" / "handlers" / "worker.py") in worker.loaded_files()


def test_the_command_line_is_not_in_the_asset(lambdas: Lambdas) -> None:
    """A handler string into hyperpod_guard.cli fails at init, as it would in Lambda."""
    broken = lambdas.start("evaluator", handler="hyperpod_guard.cli.main")
    error = broken.api.wait_init_error(timeout=PROCESS_TIMEOUT, alive=broken.alive)
    assert error and error["errorType"] == "Runtime.ImportModuleError", broken.diagnostics()
    assert "hyperpod_guard.cli" in error["errorMessage"]
    broken.process.wait(timeout=PROCESS_TIMEOUT)
    assert broken.process.returncode != 0


def test_the_local_stand_ins_are_not_in_the_asset(lambdas: Lambdas) -> None:
    """A handler string into hyperpod_guard.local fails at init, as it would in Lambda."""
    broken = lambdas.start("evaluator", handler="hyperpod_guard.local.provision.provision")
    error = broken.api.wait_init_error(timeout=PROCESS_TIMEOUT, alive=broken.alive)
    assert error and error["errorType"] == "Runtime.ImportModuleError", broken.diagnostics()
    assert "hyperpod_guard.local" in error["errorMessage"]
    broken.process.wait(timeout=PROCESS_TIMEOUT)
    assert broken.process.returncode != 0
