"""DynamoDB least privilege from reality (issue 14, item 8).

Each function's representative workload runs through its real Lambda handler on moto, while a
botocore hook on the functions' DynamoDB client records the IAM action (and resource) every call
needs. The synthesised template must grant each role exactly those: a grant nothing calls fails the
test, and so does a call the role could not make in AWS (AccessDenied).

If this fails after a code change, the message names the role, the action and the resource. Declare
the action next to the call; infra grants what is declared there:
- evaluator and worker: `ledger_store.TABLE_ACTIONS`, `remediation.store.TABLE_ACTIONS`,
  `silences.TABLE_ACTIONS` (table);
- sweep: `infra.evaluation.SWEEP_TABLE_ACTIONS` (table: the rules-invalid alert) and
  `ledger_store.OPEN_INDEX_ACTIONS` (the `open` index); it hands every cluster to the worker;
- Slack notifier: `ledger_store.IDEMPOTENCY_ACTIONS`, on its own records (`IDEMPOTENCY_PK`) only.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatch
from typing import Any

import boto3
import pytest

from hyperpod_guard.local.hyperpod_state import delete_cluster
from hyperpod_guard.local.lambda_context import LambdaContext
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.notify.slack import SlackError
from tests.conftest import REGION
from tests.integration.test_remediation import REBOOT, FakeHyperPod
from tests.integration.test_sweep_fanout import EventSource, WorkQueueOnMoto, work_queue  # noqa: F401 (fixture)
from tests.runtime_fixtures import scenario, serve, stack  # noqa: F401
from tests.slack_sink import slack_sink  # noqa: F401

from .test_stack import PREFIX, as_list, find, function_statements

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
#: TransactWriteItems / TransactGetItems have no IAM action of their own: each item is authorised as this
ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
#: what the notifier's grant must be confined by (its idempotency records' partition key)
LEADING_KEYS = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["IDEMPOTENCY"]}}
RULES = {
    "version": 1,
    "policies": {
        "unhealthy-node": {"remediation": {"enabled": True, "dry_run": False, "action": "reboot"}},
        "degraded-group": {"grace": "0s", "remediation": {"enabled": True, "dry_run": False, "action": "reboot"}},
    },
    "remediation_budget": {"max_nodes_per_hour": 10, "max_group_percent": 100},
}

Need = tuple[str, str]  # (resource: "table" | "index/<name>", action)


def needs(operation: str, params: dict[str, Any]) -> list[tuple[Need, str | None]]:
    """What one DynamoDB call needs from IAM: ((resource, action), partition key or None) per item."""
    if operation in ("TransactWriteItems", "TransactGetItems"):
        out = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            out.append((("table", f"dynamodb:{ITEM_ACTIONS[kind]}"), _pk(body)))
        return out
    resource = f"index/{params['IndexName']}" if params.get("IndexName") else "table"
    return [((resource, f"dynamodb:{operation}"), _pk(params))]


def _pk(body: dict[str, Any]) -> str | None:
    key = body.get("Key") or body.get("Item") or {}
    return key.get("pk", {}).get("S")


class Recorder:
    """Records, per role, what the DynamoDB calls made on `client` need."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table
        self.role: str | None = None
        self.needed: dict[str, set[Need]] = defaultdict(set)
        self.partition_keys: dict[str, set[str | None]] = defaultdict(set)
        self._lock = threading.Lock()  # the inline sweep calls from a thread pool
        client.meta.events.register("provide-client-params.dynamodb", self._record)

    @contextmanager
    def acting(self, role: str) -> Iterator[None]:
        self.role = role
        try:
            yield
        finally:
            self.role = None

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        assert self.role, f"DynamoDB {model.name} outside a workload: record it under a role"
        tables = {item[kind]["TableName"] for item in params.get("TransactItems", []) for kind in item}
        assert tables | ({params["TableName"]} if "TableName" in params else set()) == {self.table}, params
        with self._lock:
            for need, pk in needs(model.name, params):
                self.needed[self.role].add(need)
                self.partition_keys[self.role].add(pk)


# --- the template side ------------------------------------------------------------------------------


def granted(template: dict[str, Any], function: str) -> dict[Need, list[Any]]:
    """The (resource, action) pairs the function's role is allowed on the ledger, with their conditions."""
    table, _ = find(template, "AWS::DynamoDB::Table", TableName=f"{PREFIX}-ledger")
    arn = {"Fn::GetAtt": [table, "Arn"]}
    out: dict[Need, list[Any]] = defaultdict(list)
    for statement in function_statements(template, function):
        actions = [a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")]
        if not actions:
            continue
        assert statement["Effect"] == "Allow", statement
        for resource in as_list(statement["Resource"]):
            if resource == arn:
                label = "table"
            else:
                parts = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
                assert len(parts) == 2 and parts[0] == arn and parts[1].startswith("/index/"), (
                    f"{function}: DynamoDB granted on {resource}, not the ledger table or one of its indexes")
                label = parts[1].removeprefix("/")
            for action in actions:
                out[(label, action)].append(statement.get("Condition"))
    return out


def compare(role: str, needed: set[Need], grants: dict[Need, list[Any]]) -> list[str]:
    """Problems: grants no call uses, calls no grant allows (a grant `index/*` covers `index/open`)."""
    def covers(grant: Need, need: Need) -> bool:
        return grant[1] == need[1] and fnmatch(need[0], grant[0])

    unused = sorted(g for g in grants if not any(covers(g, n) for n in needed))
    missing = sorted(n for n in needed if not any(covers(g, n) for g in grants))
    wild = sorted(g for g in grants if "*" in g[0] and g not in unused)  # used, but wider than the call
    return ([f"{role}: granted {a} on {r}, which its code never calls: remove it" for r, a in unused]
            + [f"{role}: calls {a} on {r}, which is not granted (AccessDenied in AWS): declare it" for r, a in missing]
            + [f"{role}: {a} granted on {r}: name the index" for r, a in wild])


# --- the workloads --------------------------------------------------------------------------------


@pytest.fixture
def recorder(stack: Resources) -> Recorder:  # noqa: F811
    from hyperpod_guard import aws_clients

    return Recorder(aws_clients.client("dynamodb"), stack.table_name)  # the client every handler uses


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """The handlers' clock, advanced by the test: now[0]."""
    from hyperpod_guard import clock as clock_module

    now = [T0]
    clock_module.use(lambda: now[0])
    try:
        yield now
    finally:
        clock_module.use(None)


def put_rules(rules: dict[str, Any] | str) -> None:
    value = rules if isinstance(rules, str) else json.dumps(rules)
    boto3.client("ssm").put_parameter(Name=f"/{PREFIX}/rules/00", Type="String", Value=value, Overwrite=True)


def node_event(status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """unhealthy-node-no-repair's Node Health event with `status`, its cluster without automatic repair."""
    event, snapshot = scenario("unhealthy-node-no-repair")
    event["detail"]["HealthSummary"]["HealthStatus"] = status
    snapshot["NodeRecovery"] = "None"
    return event, snapshot


def node(instance_id: str, group: str, status: str) -> dict[str, Any]:
    return {"InstanceId": instance_id, "InstanceGroupName": group, "InstanceType": "ml.p5.48xlarge",
            "InstanceStatus": {"Status": status}}


def old_layout_alert(table: str, cluster: str) -> None:
    """An open alert as the code before issue 17 kept it (`ALERT#<fingerprint>`, not by the recorded
    client): the first evaluation of its cluster moves it (TransactWriteItems: Put and Delete)."""
    from hyperpod_guard.findings import Finding, Severity
    from hyperpod_guard.ledger import AlertRecord
    from hyperpod_guard.ledger_store import to_item

    record = AlertRecord.start(Finding(policy="degraded-group", severity=Severity.WARNING, cluster=cluster,
                                       condition="below-target", summary="from before", instance_group="old"),
                               T0 - timedelta(days=1))
    item = to_item(replace(record, version=1))  # as committed once
    boto3.client("dynamodb").put_item(TableName=table, Item={**item, "sk": {"S": f"ALERT#{record.fingerprint}"}})


def evaluator_and_sweep_workload(recorder: Recorder, clock: list[datetime], hyperpod: FakeHyperPod,
                                 queue: WorkQueueOnMoto) -> None:
    """Node Health and State Change events with live remediation (notify, claim, budget, act, audit,
    back off, refund), an invalid-rules alert, a resolve; then sweeps (open index, deleted cluster, the
    rules-invalid alert resolving), each cluster evaluated by the worker from the work queue."""
    from hyperpod_guard.handlers import evaluator, sweep, worker

    def evaluate(event: dict[str, Any], minutes: float) -> dict[str, Any]:
        clock[0] = T0 + timedelta(minutes=minutes)
        with recorder.acting("evaluator"):
            return evaluator.handler(copy.deepcopy(event), LambdaContext())

    put_rules(RULES)
    unhealthy, snapshot = node_event("Unhealthy")
    failing = unhealthy["detail"]["InstanceId"]
    serve(snapshot, nodes=[node(failing, "p5-train", "Failure"), node("i-0aaaaaaaaaaaaaaa1", "p5-train", "Failure")])
    old_layout_alert(recorder.table, unhealthy["detail"]["ClusterName"])  # moved by the evaluator
    old_layout_alert(recorder.table, "deleted-before-the-upgrade")  # moved when the sweep finds it gone
    assert evaluate(unhealthy, 0)["notifications"] >= 1  # pages and reboots
    assert REBOOT in [op for op, _ in hyperpod.take()]

    refused = copy.deepcopy(unhealthy)
    refused["detail"]["InstanceId"] = "i-0aaaaaaaaaaaaaaa1"
    hyperpod.fail(REBOOT, "ValidationException")  # refused: the budget is given back, the action backs off
    evaluate(refused, 1)
    assert REBOOT in [op for op, _ in hyperpod.take()]

    state_change, degraded = scenario("degraded-group-failed")
    degraded["NodeRecovery"] = "None"
    serve(degraded, nodes=[node("i-0bbbbbbbbbbbbbbb1", "gpu-workers", "Failure")])
    assert evaluate(state_change, 2)["findings"] >= 1

    put_rules('{"version": 1, "policies": {"degraded-group": {"grace": "soon"}}}')  # rules-invalid alert
    evaluate(state_change, 3)
    healthy, _ = node_event("Healthy")
    evaluate(healthy, 4)  # resolves the first node's alert

    delete_cluster(unhealthy["detail"]["ClusterName"], region=REGION)  # its open alerts resolve at the sweep
    workers = EventSource(queue, worker)
    for minutes in (10, 70):  # the second one after the budget window, the back-off and the action's hour
        clock[0] = T0 + timedelta(minutes=minutes)
        with recorder.acting("sweep"):  # the first still with invalid rules, the second resolves their alert
            assert sweep.handler({}, LambdaContext(function_name=f"{PREFIX}-sweep"))["enqueued"] >= 1
        with recorder.acting("worker"):
            workers.drain()
        put_rules(RULES)
    assert [failed for _, failed in workers.invocations] == [[]] * len(workers.invocations)
    hyperpod.take()
    assert (evaluator.runtime().ledger.dynamodb is recorder.client is sweep.runtime().ledger.dynamodb
            is worker.runtime().ledger.dynamodb)


def notifier_workload(recorder: Recorder, stack: Resources, sink: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """What SNS delivered above, through the Slack notifier: post, a redelivery (answered from its record,
    also as Powertools does it when a refused put returns no record: GetItem), and a Slack outage (the
    record is deleted so that Lambda's retry posts)."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from hyperpod_guard.handlers import slack_notifier
    from hyperpod_guard.notify import delivery

    boto3.client("secretsmanager").put_secret_value(SecretId=stack.slack_secret, SecretString=sink.url)
    monkeypatch.setattr(delivery, "sleep", lambda seconds: None)
    monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "1")
    messages = delivered(stack)
    assert len(messages) >= 3, "the evaluator workload should have notified"

    def notify(message: dict[str, Any]) -> None:
        with recorder.acting("slack-notifier"):
            slack_notifier.handler(message["sns_event"], LambdaContext(function_name=f"{PREFIX}-slack-notifier"))

    notify(messages[0])
    notify(messages[0])  # redelivered: PutItem refused, the record comes back with the refusal
    with pytest.MonkeyPatch.context() as old_boto3:  # ... and when the refusal does not carry it (GetItem)
        old_boto3.setattr(DynamoDBPersistenceLayer, "boto3_supports_condition_check_failure", staticmethod(lambda _: False))
        slack_notifier.slack.reset()
        notify(messages[0])
    slack_notifier.slack.reset()
    sink.respond(500, "internal_error", times=1)
    with pytest.raises(SlackError):
        notify(messages[1])  # Slack down: Powertools deletes the in-progress record
    notify(messages[1])  # Lambda's retry
    for message in messages[2:]:
        notify(message)
    assert len(sink.requests) == len(messages) + 1  # each once, plus the failed attempt


def test_each_role_is_granted_exactly_the_dynamodb_actions_its_code_calls(
    template, stack, recorder, clock, slack_sink, monkeypatch, work_queue,  # noqa: F811
):
    from hyperpod_guard import aws_clients

    # the episode archive on (as deployed): every sweep looks for resolved episodes not archived yet (archive.py;
    # those whose put failed), reading the `resolved` index, and marks what it archives
    bucket = "hyperpod-guard-archive-grants"
    boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("ARCHIVE_BUCKET", bucket)
    evaluator_and_sweep_workload(recorder, clock, FakeHyperPod(aws_clients.client("sagemaker")), work_queue)
    notifier_workload(recorder, stack, slack_sink, monkeypatch)

    problems = []
    for role in ("evaluator", "sweep", "worker", "slack-notifier"):
        assert recorder.needed[role], f"{role}: the workload made no DynamoDB call"
        grants = granted(template, role)
        problems += compare(role, recorder.needed[role], grants)
        if role == "slack-notifier":  # confined to its own records, and its calls stay inside them
            problems += [f"slack-notifier: {a} on {r} is not confined to the IDEMPOTENCY records (LeadingKeys)"
                         for (r, a), conditions in sorted(grants.items()) if conditions != [LEADING_KEYS]]
            assert recorder.partition_keys[role] == {"IDEMPOTENCY"}
        else:
            problems += [f"{role}: {a} on {r} has a condition" for (r, a), c in sorted(grants.items()) if c != [None]]
    print("recorded:", {role: sorted(needed) for role, needed in recorder.needed.items()})
    assert problems == [], "\n".join(problems)
