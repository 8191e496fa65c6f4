"""An init no event waits for (Lambda SnapStart's, provisioned concurrency's) loads what the first event
would: the pipeline, every client, the stores and models (handlers/observability.prime_at_init), with no
AWS call (a connection would not outlive the snapshot) and, under SnapStart, an after-restore hook that
reseeds `random`. An on-demand init stays lean. Run as test_lambda_runtime.py runs the functions: the
asset as CDK packages it, the stack's environment, `python -S`, the real Lambda runtime client.

The hooks are registered with `snapshot_restore_py` (pypi snapshot-restore-py), which Lambda's Python
runtimes (>= 3.12) carry and awslambdaric runs: before the snapshot, then after each restore.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest

from hyperpod_guard.handlers.worker import EvaluateCluster
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.local.slack_sink import SlackSink
from tests.conftest import REGION
from tests.e2e.test_lambda_runtime import (  # noqa: F401 - fixtures
    PREFIX,
    Lambdas,
    asset,
    deps,
    lambdas,
    node_scenario,
    seeded,
    synthesised,
)
from tests.runtime_fixtures import scenario, serve, stack  # noqa: F401

#: nothing listens there: any AWS call made during the init fails it
NO_AWS = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def work_queue(stack: Resources) -> str:
    """The work queue, named as the stack names it: the evaluator's and the worker's WORK_QUEUE_URL
    (the template's environment, resolved against moto) is its URL."""
    return boto3.client("sqs").create_queue(QueueName=f"{PREFIX}-work")["QueueUrl"]


def _init(lambdas: Lambdas, function: str, module: str, init_type: str, report: str) -> dict:
    """Import the handler as Lambda's init of `init_type` does, AWS unreachable; then what it loaded."""
    code = "\n".join([
        "import json, os, sys",
        f"os.environ.update(AWS_LAMBDA_INITIALIZATION_TYPE={init_type!r}, AWS_ENDPOINT_URL={NO_AWS!r})",
        f"import hyperpod_guard.handlers.{module} as handler",
        "from hyperpod_guard import aws_clients",
        "from snapshot_restore_py import get_after_restore, get_before_snapshot",
        report,
        "hooks = [[f.__module__ + '.' + f.__qualname__, list(args), kwargs]",
        "         for f, args, kwargs in get_after_restore()]",
        "print(json.dumps({'clients': aws_clients.client.cache_info().currsize, 'facts': facts,",
        "                  'after_restore': hooks, 'before_snapshot': len(get_before_snapshot())}))",
    ])
    done = lambdas.probe(function, code)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


EVALUATOR_FACTS = """
from hyperpod_guard import events
from aws_lambda_powertools.utilities.parameters import base
facts = {'pipeline': 'hyperpod_guard.pipeline' in sys.modules, 'ssm_provider': 'ssm' in base.DEFAULT_PROVIDERS,
         'event_models': [m.__pydantic_complete__ for m in events._MODELS.values()]}
"""
NOTIFIER_FACTS = """
from aws_lambda_powertools.utilities.parameters import base
facts = {'idempotency': handler.slack._idempotency is not None, 'secrets_provider': 'secrets' in base.DEFAULT_PROVIDERS}
"""


RESEED = [["random.Random.seed", [], {}]]  # random.seed(): from os.urandom, in the restored environment


@pytest.mark.parametrize(("init_type", "reseeds"), [("snap-start", RESEED), ("provisioned-concurrency", [])])
def test_evaluator_init_no_event_waits_for_loads_everything_and_calls_no_aws(
        lambdas: Lambdas, init_type: str, reseeds: list) -> None:
    seen = _init(lambdas, "evaluator", "evaluator", init_type, EVALUATOR_FACTS)
    assert seen == {"clients": 4,  # sagemaker, dynamodb, sns (the runtime), ssm (the rules)
                    "facts": {"pipeline": True, "ssm_provider": True, "event_models": [True, True, True]},
                    "after_restore": reseeds, "before_snapshot": 0}


def test_evaluator_on_demand_init_stays_lean(lambdas: Lambdas) -> None:
    seen = _init(lambdas, "evaluator", "evaluator", "on-demand", EVALUATOR_FACTS)
    assert seen == {"clients": 0, "after_restore": [], "before_snapshot": 0,
                    "facts": {"pipeline": False, "ssm_provider": False, "event_models": [False, False, False]}}


@pytest.mark.parametrize(("init_type", "primed"), [("snap-start", True), ("on-demand", False)])
def test_notifier_init(lambdas: Lambdas, init_type: str, primed: bool) -> None:
    seen = _init(lambdas, "slack-notifier", "slack_notifier", init_type, NOTIFIER_FACTS)
    assert seen == {"clients": 2 if primed else 0,  # dynamodb (idempotency), secretsmanager (the webhook)
                    "facts": {"idempotency": primed, "secrets_provider": primed},
                    "after_restore": RESEED if primed else [], "before_snapshot": 0}


WORKER_FACTS = """
from aws_lambda_powertools.utilities.parameters import base
facts = {'pipeline': 'hyperpod_guard.pipeline' in sys.modules, 'ssm_provider': 'ssm' in base.DEFAULT_PROVIDERS,
         'messages_model': handler._messages.cache_info().currsize, 'batch_processor': handler.processor.cache_info().currsize}
"""


@pytest.mark.parametrize(("init_type", "primed"), [("snap-start", True), ("on-demand", False)])
def test_worker_init(lambdas: Lambdas, init_type: str, primed: bool) -> None:
    seen = _init(lambdas, "worker", "worker", init_type, WORKER_FACTS)
    assert seen == {"clients": 4 if primed else 0,  # sagemaker, dynamodb, sns (the runtime), ssm (the rules)
                    "facts": {"pipeline": primed, "ssm_provider": primed, "messages_model": int(primed),
                              "batch_processor": int(primed)},
                    "after_restore": RESEED if primed else [], "before_snapshot": 0}


def test_the_sweeps_init_does_not_prime_the_worker(lambdas: Lambdas) -> None:
    """The sweep imports handlers.worker (WorkQueue, the messages): the worker's priming belongs to the
    worker's own init (Lambda's _HANDLER), not to every init that imports the module."""
    facts = ("from hyperpod_guard.handlers import worker\n"
             "facts = {'imported': 'hyperpod_guard.handlers.worker' in sys.modules,\n"
             "         'worker_runtime': worker.runtime.cache_info().currsize,\n"
             "         'batch_processor': worker.processor.cache_info().currsize}")
    seen = _init(lambdas, "sweep", "sweep", "snap-start", facts)
    assert seen["facts"] == {"imported": True, "worker_runtime": 0, "batch_processor": 0}


def test_primed_functions_alert_and_deliver_once(lambdas: Lambdas, stack: Resources) -> None:
    """Under the Lambda runtime client: a SnapStart init (snapshot, restore, the after-restore hook),
    then events, end to end on moto."""
    snapstart = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    sink = SlackSink()
    sink.start()
    try:
        boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=sink.url)
        evaluator = lambdas.start("evaluator", **snapstart)
        node_event = node_scenario()
        expected = {"cluster": "pretrain-east", "findings": 1, "notifications": 1, "notified_findings": 1,
                    "suppressed": 0}
        assert evaluator.invoke(node_event) == ("response", expected), evaluator.diagnostics()
        assert evaluator.invoke(node_event) == ("response", dict(expected, notifications=0, notified_findings=0))
        (message,) = delivered(stack)
        assert (evaluator.api.restores, evaluator.api.restore_errors) == (1, []), evaluator.diagnostics()

        notifier = lambdas.start("slack-notifier", **snapstart)
        for _ in range(2):  # SNS redelivers: answered from its idempotency record
            assert notifier.invoke(message["sns_event"]) == ("response", {"sent": 1, "dropped": 0}), (
                notifier.diagnostics())
        assert len(sink.requests) == 1 and "pretrain-east" in json.dumps(sink.requests[0].json)
        assert (notifier.api.restores, notifier.api.restore_errors) == (1, []), notifier.diagnostics()
    finally:
        sink.stop()


def test_primed_worker_evaluates_a_cluster(lambdas: Lambdas, work_queue: str) -> None:
    """The worker under the Lambda runtime client after a SnapStart init (snapshot, restore, the
    after-restore hook): one evaluate-cluster message, as the SQS event source delivers it."""
    _, failing = scenario("node-failure-recovery-none")
    serve(failing)  # batch-infer: a node in Failure, nothing repairs it: critical at once
    arn = boto3.client("sqs").get_queue_attributes(QueueUrl=work_queue, AttributeNames=["QueueArn"])
    body = EvaluateCluster(cluster="batch-infer", run="sweep-run", at=datetime.now(UTC)).model_dump_json()
    event = {"Records": [{
        "messageId": "message-1", "receiptHandle": "handle-1", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - what SQS computes
        "eventSource": "aws:sqs", "eventSourceARN": arn["Attributes"]["QueueArn"], "awsRegion": REGION}]}

    worker = lambdas.start("worker", AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    for _ in range(2):  # SQS delivers at least once: the second is one more evaluation of the same state
        assert worker.invoke(event) == ("response", {"batchItemFailures": []}), worker.diagnostics()
    assert (worker.api.restores, worker.api.restore_errors) == (1, []), worker.diagnostics()
    evaluated = [line for line in worker.logs() if line.get("message") == "cluster evaluated"]
    assert [(line["cluster"], line["findings"], line["cold_start"]) for line in evaluated] == [
        ("batch-infer", 1, True), ("batch-infer", 1, False)], worker.diagnostics()
