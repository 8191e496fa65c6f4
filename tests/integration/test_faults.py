"""Faults on the moto server: what the functions do when AWS or Slack fail, and what they leave behind.

Faults are injected into the very boto3 clients the handlers use (hyperpod_guard.aws_clients),
at botocore's `before-send`: the request never leaves, and botocore receives the AWS error as
if the service had answered it, so its retry logic (standard mode, aws_clients.RETRY) acts
exactly as it would in an account. botocore's backoff sleeps are recorded instead of slept.
"Lambda retries" is the test invoking the handler again with the same event.
"""

from __future__ import annotations

import copy
import json
import threading
import types
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from hyperpod_guard import aws_clients
from hyperpod_guard.ledger import AlertState, Reason
from hyperpod_guard.ledger_store import LedgerStore
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import Runtime, handle_event, new_token
from tests.integration.test_ledger_store import atomic_moto  # noqa: F401 (fixture)
from tests.runtime_fixtures import LambdaContext, runtime, scenario, serve, stack  # noqa: F401
from tests.slack_sink import slack_sink  # noqa: F401

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
NODE_CLUSTER = "pretrain-east"


# --- injecting faults -----------------------------------------------------------------------------

class _Body:
    def __init__(self, content: bytes):
        self.content = content

    def stream(self, **_: Any):
        yield self.content


def aws_error(client: Any, code: str, status: int) -> AWSResponse:
    """An AWS error answer in the client's protocol (query XML for SNS, JSON for the others)."""
    if client.meta.service_model.protocol == "query":
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected</Message>"
                "</Error><RequestId>fault</RequestId></ErrorResponse>").encode()
        headers = {"Content-Type": "text/xml"}
    else:
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault"}
    return AWSResponse("https://fault.invalid/", status, headers, _Body(body))


class Faults:
    """Fail the next calls of an operation on one of the functions' clients; count every call."""

    def __init__(self, service: str):
        self.client = aws_clients.client(service)
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._plans: dict[str, list[tuple[str, int, str]]] = {}
        self.client.meta.events.register(f"before-send.{self.client.meta.service_model.service_id.hyphenize()}",
                                         self._before_send)

    def fail(self, operation: str, code: str, *, status: int = 400, times: int = 1, about: str = "") -> Faults:
        """The next `times` calls of `operation` (whose request mentions `about`) answer `code`."""
        self._plans.setdefault(operation, []).extend([(code, status, about)] * times)
        return self

    def heal(self) -> None:
        self._plans.clear()

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = _operation(self.client, request)
        self.calls[operation] += 1
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        plan = self._plans.get(operation, [])
        due = next((step for step in plan if step[2] in body), None)
        if due is None:
            return None
        plan.remove(due)
        self.failed[operation] += 1
        return aws_error(self.client, due[0], due[1])


#: what only the confirm's transactions (ledger_store.LedgerStore.confirm) say
CONFIRM = "SET last_notified"


def attempts(service: str) -> int:
    """Attempts botocore makes per call (aws_clients.RETRY's max_attempts are the retries)."""
    return aws_clients.client(service).meta.config.retries["total_max_attempts"]


def _operation(client: Any, request: Any) -> str:
    target = request.headers.get("X-Amz-Target")
    if target:  # JSON protocol: "DynamoDB_20120810.Query"
        return (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[1]
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    return dict(pair.split("=", 1) for pair in body.split("&") if "=" in pair).get("Action", "?")


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry delays, recorded instead of slept (only botocore's endpoint is affected)."""
    import botocore.endpoint

    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


# --- scenarios ------------------------------------------------------------------------------------

def unhealthy_node() -> dict[str, Any]:
    """A Node Health event about a node nothing will repair: critical at once (no grace)."""
    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot)  # the snapshot carries the node (DescribeClusterNode answers it)
    return event


def evaluator():
    from hyperpod_guard.handlers import evaluator as module

    return module


def ledger(stack) -> LedgerStore:
    return LedgerStore(stack.table_name, boto3.client("dynamodb"))


def only_record(stack, cluster: str = NODE_CLUSTER):
    (record,) = ledger(stack).load(cluster).values()
    return record


def reasons(messages: list[dict[str, Any]]) -> list[list[str]]:
    return [[item["reason"] for item in m["message"]["items"]] for m in messages]


# --- SNS ------------------------------------------------------------------------------------------

def test_sns_publish_fails_then_the_retry_sends_exactly_one(stack, backoff):
    event = unhealthy_node()
    sns = Faults("sns").fail("Publish", "KMSDisabled")  # the topic's key was disabled: not retryable
    with pytest.raises(ClientError, match="KMSDisabled"):
        evaluator().handler(event, LambdaContext())
    assert sns.calls["Publish"] == 1 and delivered(stack) == []
    record = only_record(stack)
    # never recorded as sent: still owed, and the claim released so that the retry may send it
    assert (record.state, record.owed, record.last_notified, record.claim_token) == (
        AlertState.FIRING, Reason.FIRST, None, None)

    result = evaluator().handler(event, LambdaContext())  # Lambda's retry
    assert result["notifications"] == 1
    assert reasons(delivered(stack)) == [["first"]]
    record = only_record(stack)
    assert (record.owed, record.claim_token) == (None, None) and record.last_notified is not None

    assert evaluator().handler(event, LambdaContext())["notifications"] == 0  # EventBridge's duplicate
    assert delivered(stack) == []


def test_sns_throttled_is_retried_by_botocore_and_sends_once(stack, backoff):
    event = unhealthy_node()
    sns = Faults("sns").fail("Publish", "Throttling", status=400, times=2)
    assert evaluator().handler(event, LambdaContext())["notifications"] == 1
    assert (sns.calls["Publish"], sns.failed["Publish"]) == (3, 2)
    assert len(backoff) == 2 and all(delay >= 0 for delay in backoff)
    assert reasons(delivered(stack)) == [["first"]]


# --- DynamoDB -------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_dynamodb_throttling_is_retried_with_backoff_and_notifies_once(stack, backoff, code):
    event = unhealthy_node()
    dynamodb = Faults("dynamodb")
    dynamodb.fail("Query", code, times=2)  # load
    dynamodb.fail("TransactWriteItems", code, times=2)  # commit (the first transactions)
    dynamodb.fail("TransactWriteItems", code, times=2, about=CONFIRM)  # confirm, after SNS accepted
    assert evaluator().handler(event, LambdaContext())["notifications"] == 1
    assert dynamodb.failed == Counter({"Query": 2, "TransactWriteItems": 4})
    assert dynamodb.calls["TransactWriteItems"] == 6  # commit and confirm: each two refused, then written once
    assert len(backoff) >= 6
    assert reasons(delivered(stack)) == [["first"]]
    assert evaluator().handler(event, LambdaContext())["notifications"] == 0
    assert delivered(stack) == []


def test_dynamodb_throttled_past_botocores_retries_raises_and_the_retry_sends_once(stack, backoff):
    event = unhealthy_node()
    dynamodb = Faults("dynamodb").fail("TransactWriteItems", "ThrottlingException", times=attempts("dynamodb"))
    with pytest.raises(ClientError, match="ThrottlingException"):
        evaluator().handler(event, LambdaContext())
    assert dynamodb.calls["TransactWriteItems"] == attempts("dynamodb") == 6  # 5 retries with backoff
    assert delivered(stack) == [] and ledger(stack).load(NODE_CLUSTER) == {}  # nothing decided, nothing sent
    assert evaluator().handler(event, LambdaContext())["notifications"] == 1  # Lambda's retry
    assert reasons(delivered(stack)) == [["first"]]


def test_confirm_lost_after_publish_is_at_least_once(stack, runtime, backoff):
    """The one window for a duplicate: SNS accepted the message but recording it failed. The
    claim (2 minutes) keeps a retry from sending it again at once; after the claim lapses the
    owed message is sent again. Publishing and recording cannot be one transaction."""
    event = unhealthy_node()
    Faults("dynamodb").fail("TransactWriteItems", "ThrottlingException", times=attempts("dynamodb"), about=CONFIRM)
    with pytest.raises(ClientError):
        handle_event(copy.deepcopy(event), runtime, T0, new_token())
    assert reasons(delivered(stack)) == [["first"]]
    retry = handle_event(copy.deepcopy(event), runtime, T0 + timedelta(seconds=30), new_token())
    assert retry.outcomes[-1].notification is None and delivered(stack) == []  # the claim holds
    later = handle_event(copy.deepcopy(event), runtime, T0 + timedelta(minutes=3), new_token())
    assert [d.notify for d in later.outcomes[-1].decisions] == [Reason.FIRST]
    assert reasons(delivered(stack)) == [["first"]]  # the second copy of the first


# --- concurrency ----------------------------------------------------------------------------------

def test_twenty_concurrent_evaluations_of_one_event_send_one_message(stack, atomic_moto):  # noqa: F811
    """The whole evaluation (re-read, rules, ledger, SNS) on 20 threads at once, each with its
    own runtime as 20 Lambda containers would have. tests/integration/test_ledger_store.py::
    test_twenty_concurrent_evaluations_notify_exactly_once pins the ledger's conditional writes alone."""
    event = unhealthy_node()
    barrier = threading.Barrier(20, timeout=60)
    results, errors = [], []

    def evaluate(mine: Runtime) -> None:
        try:
            barrier.wait()
            results.append(handle_event(copy.deepcopy(event), mine, T0, new_token()))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    # built here, not on the threads: boto3 client creation (ours and Powertools' SSM provider's)
    # is slow and not what is raced
    runtimes = [Runtime.from_env() for _ in range(20)]
    runtimes[0].rules.load()
    threads = [threading.Thread(target=evaluate, args=(mine,), daemon=True) for mine in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 20
    assert sum(1 for r in results if r.outcomes[-1].notification) == 1
    assert reasons(delivered(stack)) == [["first"]]


# --- SageMaker ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalFailure", 500)])
def test_describe_cluster_failing_raises_and_resolves_nothing(stack, backoff, code, status):
    event = unhealthy_node()
    assert evaluator().handler(event, LambdaContext())["notifications"] == 1
    delivered(stack)
    firing = only_record(stack)
    sagemaker = Faults("sagemaker").fail("DescribeCluster", code, status=status, times=attempts("sagemaker"))
    with pytest.raises(ClientError, match=code):
        evaluator().handler(event, LambdaContext())
    assert sagemaker.failed["DescribeCluster"] == attempts("sagemaker")  # botocore retried first
    # a failed read is not "the cluster is gone": nothing resolved, nothing sent
    assert only_record(stack) == firing and delivered(stack) == []
    assert NODE_CLUSTER in ledger(stack).open_clusters()
    # the healed retry finds the alert still firing and sends nothing new
    assert evaluator().handler(event, LambdaContext())["notifications"] == 0
    assert only_record(stack).state is AlertState.FIRING and delivered(stack) == []


def test_sweep_with_one_cluster_failing_evaluates_the_others_then_raises(stack, backoff):
    event = unhealthy_node()
    evaluator().handler(event, LambdaContext())
    other, other_snapshot = scenario("degraded-group-failed")
    serve(other_snapshot)
    delivered(stack)
    firing = only_record(stack)
    # every attempt to read the cluster with the open alert fails; the other cluster reads fine
    Faults("sagemaker").fail("DescribeCluster", "InternalFailure", status=500, times=attempts("sagemaker"),
                             about=f'"{NODE_CLUSTER}"')
    from hyperpod_guard.handlers import sweep

    with pytest.raises(sweep.SweepFailed, match=f"1 cluster.*{NODE_CLUSTER}"):
        sweep.handler({}, LambdaContext(function_name="hyperpod-guard-sweep"))
    assert only_record(stack) == firing  # the unreadable cluster's alert is untouched
    assert {r.policy for r in ledger(stack).load("ml-prod").values()} == {"degraded-group"}  # the other was evaluated


# --- Slack ----------------------------------------------------------------------------------------

CLUSTERS = ("train-a", "train-b", "train-c")


def three_alerts(stack, runtime) -> list[dict[str, Any]]:
    """Three clusters with a Failed group each, past the 5m grace: three SNS messages."""
    event, snapshot = scenario("degraded-group-failed")
    for name in CLUSTERS:
        served = dict(copy.deepcopy(snapshot), ClusterName=name)
        serve(served)
        mine = copy.deepcopy(event)
        mine["detail"]["ClusterName"] = name
        handle_event(copy.deepcopy(mine), runtime, T0, new_token())
        handle_event(copy.deepcopy(mine), runtime, T0 + timedelta(minutes=6), new_token())
    messages = delivered(stack)
    assert sorted(m["message"]["cluster"] for m in messages) == list(CLUSTERS)
    return messages


def test_slack_down_for_a_while_then_every_alert_delivered_exactly_once(stack, runtime, slack_sink, monkeypatch):  # noqa: F811
    from hyperpod_guard.handlers import slack_notifier
    from hyperpod_guard.notify import delivery

    boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=slack_sink.url)
    monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(delivery, "sleep", lambda seconds: None)
    messages = three_alerts(stack, runtime)
    outage = 8  # answers: 503 for the first 8 POSTs (two attempts per invocation)
    slack_sink.respond(503, "service unavailable", times=outage)

    pending, invocations = list(messages), 0
    for _ in range(3):  # the first invocation and Lambda's two retries of each failed one
        failed = []
        for message in pending:
            invocations += 1
            try:
                slack_notifier.handler(message["sns_event"], LambdaContext(function_name="hyperpod-guard-slack-notifier"))
            except Exception:  # noqa: BLE001 - Lambda retries it
                failed.append(message)
        pending = failed
    assert pending == []  # the outage ended within Lambda's retries
    for message in messages:  # and SNS delivers at least once: a duplicate is not posted again
        slack_notifier.handler(message["sns_event"], LambdaContext(function_name="hyperpod-guard-slack-notifier"))

    answered_ok = slack_sink.requests[outage:]
    clusters = [json.dumps(r.json) for r in answered_ok]
    assert sorted(next(c for c in CLUSTERS if c in text) for text in clusters) == list(CLUSTERS)
    assert len(slack_sink.requests) == outage + len(CLUSTERS)


# --- rules ----------------------------------------------------------------------------------------

FAST = {"version": 1, "policies": {"degraded-group": {"grace": "0s"}}}
BROKEN = {
    "not-json": '{"version": 1, "policies": ',
    "schema-invalid": '{"version": 1, "policies": {"degraded-group": {"grace": "soon"}}}',
}


def degraded(name: str) -> dict[str, Any]:
    event, snapshot = scenario("degraded-group-failed")
    serve(dict(snapshot, ClusterName=name))
    event["detail"]["ClusterName"] = name
    return event


def put_rules(value: str) -> None:
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=value, Overwrite=True)


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_broken_rules_keep_the_last_good_and_raise_one_rules_invalid_alert(stack, runtime, breakage):
    put_rules(json.dumps(FAST))
    first = handle_event(degraded("rules-a"), runtime, T0, new_token())
    assert first.outcomes[-1].notification is not None  # grace 0s (the rules') fired at once
    delivered(stack)
    put_rules(BROKEN[breakage])
    for minute, name in enumerate(("rules-b", "rules-c", "rules-d"), start=1):
        result = handle_event(degraded(name), runtime, T0 + timedelta(minutes=minute), new_token())
        assert result.rules_error and result.outcomes[-1].notification is not None  # still grace 0s: last good
    by_cluster = Counter(m["message"]["cluster"] for m in delivered(stack))
    assert by_cluster == {"_hyperpod-guard": 1, "rules-b": 1, "rules-c": 1, "rules-d": 1}


def test_broken_rules_without_a_last_good_use_the_defaults(stack, runtime):
    put_rules(BROKEN["not-json"])
    result = handle_event(degraded("rules-e"), runtime, T0, new_token())
    assert result.rules_error and result.outcomes[-1].notification is None  # default grace: pending
    assert [m["message"]["cluster"] for m in delivered(stack)] == ["_hyperpod-guard"]


def test_missing_rules_mean_the_defaults_and_no_alert(stack, runtime):
    put_rules(json.dumps(FAST))
    handle_event(degraded("rules-f"), runtime, T0, new_token())
    boto3.client("ssm").delete_parameter(Name="/hyperpod-guard/rules/00")
    delivered(stack)
    # no parameter under the path is a valid configuration (the built-in defaults), not an error
    result = handle_event(degraded("rules-g"), runtime, T0 + timedelta(minutes=1), new_token())
    assert result.rules_error is None and result.outcomes[-1].notification is None  # default 5m grace
    assert delivered(stack) == []


def test_seeded_rules_deleted_keep_the_last_good_and_raise_one_rules_invalid_alert(stack, runtime):
    """The stack seeds the rules and sets RULES_REQUIRED=true: an empty path then means the
    parameters were deleted, which is an alert, not a quiet switch to the defaults."""
    runtime.rules.required = True
    put_rules(json.dumps(FAST))
    handle_event(degraded("rules-h"), runtime, T0, new_token())
    boto3.client("ssm").delete_parameter(Name="/hyperpod-guard/rules/00")
    delivered(stack)
    for minute, name in enumerate(("rules-i", "rules-j"), start=1):
        result = handle_event(degraded(name), runtime, T0 + timedelta(minutes=minute), new_token())
        assert result.rules_error and "no rules parameters under /hyperpod-guard/rules" in result.rules_error
        assert result.outcomes[-1].notification is not None  # the last good rules' 0s grace still applies
    assert Counter(m["message"]["cluster"] for m in delivered(stack)) == {"_hyperpod-guard": 1, "rules-i": 1,
                                                                           "rules-j": 1}


def test_rules_required_comes_from_the_environment(monkeypatch):
    from hyperpod_guard.rules_store import RulesStore

    monkeypatch.setenv("RULES_REQUIRED", "true")
    assert RulesStore.from_env().required is True
    monkeypatch.setenv("RULES_REQUIRED", "false")
    assert RulesStore.from_env().required is False
    monkeypatch.delenv("RULES_REQUIRED")
    assert RulesStore.from_env().required is False
