"""The sweep fans out through SQS (issue 17), on moto (server mode): the sweep handler lists the
clusters and sends one message per cluster to the work queue; the worker handler evaluates them,
fed as Lambda's SQS event source mapping feeds it (`EventSource`: batches of 5, failed messages back
after their visibility timeout, moto's redrive to the dead-letter queue past maxReceiveCount).

Counts, never times: SendMessageBatch calls, messages, DescribeCluster calls, SNS messages.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest

from hyperpod_guard import aws_clients
from hyperpod_guard.alerting import SYSTEM_CLUSTER
from hyperpod_guard.ledger_store import LedgerStore
from hyperpod_guard.local.hyperpod_state import delete_cluster
from hyperpod_guard.local.provision import Resources, delivered
from tests.conftest import REGION
from tests.integration.test_faults import Faults, attempts, backoff  # noqa: F401 (fixture)
from tests.runtime_fixtures import LambdaContext, scenario, serve, stack  # noqa: F401

#: as the event source mapping (infra/evaluation.py: WORK_BATCH_SIZE, WORK_MAX_RECEIVES; tests/infra checks them)
BATCH_SIZE = 5
MAX_RECEIVES = 3


# --- the work queue and Lambda's event source mapping, on moto -------------------------------------

@dataclass
class WorkQueueOnMoto:
    url: str
    arn: str
    dlq_url: str

    def messages(self, *, url: str | None = None) -> list[dict[str, Any]]:
        """Every visible message (received, then made visible again: the queue is left as it was)."""
        sqs, out = boto3.client("sqs"), []
        while batch := sqs.receive_message(QueueUrl=url or self.url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=30).get("Messages", []):
            out += batch
        for message in out:
            sqs.change_message_visibility(QueueUrl=url or self.url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
        return out

    def bodies(self, *, url: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.messages(url=url)]


@pytest.fixture
def work_queue(stack: Resources, monkeypatch: pytest.MonkeyPatch) -> WorkQueueOnMoto:  # noqa: F811
    """The stack's work queue and its dead-letter queue (maxReceiveCount as deployed); WORK_QUEUE_URL set."""
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="hyperpod-guard-work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="hyperpod-guard-work", Attributes={
        "VisibilityTimeout": "360",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("WORK_QUEUE_URL", url)
    monkeypatch.setenv("RULES_MAX_AGE", "0")  # tests change rules between steps
    # these tests count what each evaluation sends: grouping (which the queue enables) is tested on its own
    boto3.client("ssm").put_parameter(Name=f"{stack.rules_path}/00", Type="String", Overwrite=True,
                                      Value=json.dumps({"version": 1, "grouping": {"group_wait": "0s"}}))
    return WorkQueueOnMoto(url, arn, dlq)


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Received messages as Lambda's SQS event source hands them to a function."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}


@dataclass
class EventSource:
    """Lambda's SQS event source mapping with ReportBatchItemFailures: receive up to `batch_size`,
    invoke the worker, delete what it did not report failed. A failed message is visible again once
    its visibility timeout is over (made so at once here); moto moves it to the dead-letter queue
    when it is received more than maxReceiveCount times."""

    queue: WorkQueueOnMoto
    worker: ModuleType
    batch_size: int = BATCH_SIZE
    #: per invocation: (message ids, the ids reported failed, or None when the invocation raised)
    invocations: list[tuple[list[str], list[str] | None]] = field(default_factory=list)

    def poll(self) -> bool:
        sqs = boto3.client("sqs")
        batch = sqs.receive_message(QueueUrl=self.queue.url, MaxNumberOfMessages=self.batch_size,
                                    AttributeNames=["All"]).get("Messages", [])
        if not batch:
            return False
        ids = [m["MessageId"] for m in batch]
        try:
            response = self.worker.handler(sqs_event(batch, self.queue.arn),
                                           LambdaContext(function_name="hyperpod-guard-worker"))
            failed: list[str] | None = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        except Exception:  # noqa: BLE001 - the function failed: the whole batch comes back, as in Lambda
            failed = None
        self.invocations.append((ids, failed))
        for message in batch:
            if failed is not None and message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
            else:  # its visibility timeout is over
                sqs.change_message_visibility(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        return True

    def drain(self, limit: int = 100) -> None:
        for _ in range(limit):
            if not self.poll():
                return
        raise AssertionError("the work queue did not drain")


@pytest.fixture
def worker(work_queue: WorkQueueOnMoto) -> ModuleType:
    # imported here, so that the sweep's tests show what the code before the worker did (no module)
    from hyperpod_guard.handlers import worker as module

    return module


@pytest.fixture
def mapping(work_queue: WorkQueueOnMoto, worker: ModuleType) -> EventSource:
    return EventSource(work_queue, worker)


def run_sweep(context: LambdaContext | None = None) -> dict[str, Any]:
    from hyperpod_guard.handlers import sweep

    return sweep.handler({}, context or LambdaContext(function_name="hyperpod-guard-sweep"))


# --- clusters --------------------------------------------------------------------------------------

def failing_node_cluster(name: str) -> None:
    """node-failure-recovery-none under another name: a node in Failure, nothing repairs it (the
    sweep lists the nodes: critical at once)."""
    _, snapshot = scenario("node-failure-recovery-none")
    snapshot = json.loads(json.dumps(snapshot).replace(snapshot["ClusterName"], name))
    serve(snapshot)


def degraded_cluster(name: str) -> dict[str, Any]:
    """degraded-group-failed under another name (5m grace: pending at first); its State Change event."""
    event, snapshot = scenario("degraded-group-failed")
    serve(dict(snapshot, ClusterName=name))
    event = copy.deepcopy(event)
    event["detail"]["ClusterName"] = name
    return event


def remembered(name: str) -> None:
    """A cluster the ledger remembers with an open (pending) alert, which ListClusters no longer lists."""
    from hyperpod_guard.handlers import evaluator

    evaluator.handler(degraded_cluster(name), LambdaContext())
    delete_cluster(name, region=REGION)


def open_clusters(stack: Resources) -> set[str]:  # noqa: F811
    return LedgerStore(stack.table_name, boto3.client("dynamodb")).open_clusters()


def clusters_named(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(m["message"]["cluster"] for m in messages)


@pytest.fixture
def fleet(stack: Resources) -> Iterator[tuple[list[str], list[str]]]:  # noqa: F811
    """23 listed clusters (3 with a failing node, 20 degraded) and 2 remembered ones that are gone."""
    listed = [f"node-{i}" for i in range(3)] + [f"fleet-{i:02d}" for i in range(20)]
    gone = ["gone-a", "gone-b"]
    for name in gone:
        remembered(name)
    for name in listed[:3]:
        failing_node_cluster(name)
    for name in listed[3:]:
        degraded_cluster(name)
    delivered(stack)
    assert open_clusters(stack) == set(gone)
    yield listed, gone


# --- the sweep ------------------------------------------------------------------------------------

def test_the_sweep_sends_one_message_per_listed_and_remembered_cluster_ten_per_call(
    stack, work_queue, fleet,  # noqa: F811
):
    listed, gone = fleet
    sqs, sagemaker = Faults("sqs"), Faults("sagemaker")  # counting every call
    context = LambdaContext(function_name="hyperpod-guard-sweep")
    summary = run_sweep(context)

    assert (sqs.calls["SendMessageBatch"], sqs.calls["SendMessage"]) == (3, 0)  # ceil(25 / 10)
    bodies = work_queue.bodies()
    assert sorted(b["cluster"] for b in bodies) == sorted(listed + gone)  # each exactly once
    assert sagemaker.calls["ListClusters"] >= 1 and sagemaker.calls["DescribeCluster"] == 0  # evaluates nothing
    assert (summary["clusters"], summary["gone"], summary["enqueued"], summary["evaluated"]) == (23, 2, 25, 0)
    assert {b["kind"] for b in bodies} == {"evaluate-cluster"}
    (run,) = {b["run"] for b in bodies}
    assert run.startswith(context.aws_request_id + ":")
    assert delivered(stack) == []  # the sweep itself notified nothing: no cluster was evaluated


def test_without_a_queue_the_sweep_evaluates_inline(stack, fleet, monkeypatch):  # noqa: F811
    monkeypatch.setenv("RULES_MAX_AGE", "0")
    monkeypatch.setenv("SWEEP_CONCURRENCY", "1")  # moto's DynamoDB transactions are not thread-safe
    sagemaker = Faults("sagemaker")
    summary = run_sweep()
    assert sagemaker.calls["DescribeCluster"] == 25
    assert clusters_named(delivered(stack)) == ["node-0", "node-1", "node-2"]
    assert (summary["enqueued"], summary["evaluated"], summary["gone"]) == (0, 25, 2)


# --- the worker -----------------------------------------------------------------------------------

def test_the_worker_evaluates_every_cluster_in_batches(stack, work_queue, fleet, mapping):  # noqa: F811
    listed, gone = fleet
    run_sweep()
    sagemaker = Faults("sagemaker")
    mapping.drain()

    assert [len(ids) for ids, _ in mapping.invocations] == [5] * 5
    assert [failed for _, failed in mapping.invocations] == [[]] * 5
    assert sagemaker.calls["DescribeCluster"] == 25  # each cluster once, the gone ones included
    assert sagemaker.calls["ListClusterNodes"] == 23  # every node of each listed cluster, as the sweep did
    assert clusters_named(delivered(stack)) == ["node-0", "node-1", "node-2"]  # the failing nodes, at once
    assert work_queue.messages() == [] and work_queue.messages(url=work_queue.dlq_url) == []
    # the gone clusters' alerts are over; the degraded ones are pending (5m grace)
    assert open_clusters(stack) == set(listed)


def test_a_failing_cluster_fails_only_its_own_message_then_lands_in_the_dlq(
    stack, work_queue, fleet, mapping, backoff,  # noqa: F811
):
    listed, gone = fleet
    run_sweep()
    sagemaker = Faults("sagemaker").fail("DescribeCluster", "InternalFailure", status=500,
                                         times=attempts("sagemaker") * MAX_RECEIVES, about='"fleet-07"')
    mapping.drain()

    failures = [failed for _, failed in mapping.invocations if failed]
    assert len(failures) == MAX_RECEIVES and all(len(failed) == 1 for failed in failures)  # only it, each time
    assert all(failed is not None for _, failed in mapping.invocations)  # partial failures, never the batch
    assert sagemaker.failed["DescribeCluster"] == attempts("sagemaker") * MAX_RECEIVES
    assert [b["cluster"] for b in work_queue.bodies(url=work_queue.dlq_url)] == ["fleet-07"]
    assert sum(len(ids) for ids, _ in mapping.invocations) == 25 + MAX_RECEIVES - 1  # the others once each
    assert clusters_named(delivered(stack)) == ["node-0", "node-1", "node-2"]
    assert open_clusters(stack) == set(listed) - {"fleet-07"}  # everything else was evaluated


def test_a_gone_clusters_alerts_resolve_through_the_worker(stack, work_queue, mapping):  # noqa: F811
    from hyperpod_guard.handlers import evaluator

    event, snapshot = scenario("unhealthy-node-no-repair")
    serve(snapshot)
    assert evaluator.handler(event, LambdaContext())["notifications"] == 1  # critical at once
    delivered(stack)
    delete_cluster(snapshot["ClusterName"], region=REGION)

    assert run_sweep()["gone"] == 1
    assert delivered(stack) == []  # the sweep hands it over; it does not evaluate it
    mapping.drain()
    (message,) = delivered(stack)
    assert message["message"]["cluster"] == snapshot["ClusterName"]
    assert message["attributes"]["status"] == "resolved"
    assert [i["reason"] for i in message["message"]["items"]] == ["resolved"]
    assert open_clusters(stack) == set()


def test_the_rules_invalid_alert_fires_and_resolves_from_the_sweep(stack, work_queue, fleet, mapping):  # noqa: F811
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{stack.rules_path}/00", Type="String", Overwrite=True,
                      Value='{"version": 1, "policies": {"degraded-group": {"grace": "soon"}}}')
    run_sweep()
    fired = [m for m in delivered(stack) if m["message"]["cluster"] == SYSTEM_CLUSTER]
    assert [(m["attributes"]["status"], [i["finding"]["policy"] for i in m["message"]["items"]]) for m in fired] == [
        ("firing", ["rules-invalid"])]
    assert SYSTEM_CLUSTER not in {b["cluster"] for b in work_queue.bodies()}  # not a cluster to evaluate
    mapping.drain()  # the workers evaluate with the fallback rules; the alert is already sent
    assert [m for m in delivered(stack) if m["message"]["cluster"] == SYSTEM_CLUSTER] == []

    ssm.put_parameter(Name=f"{stack.rules_path}/00", Type="String", Value='{"version": 1}', Overwrite=True)
    run_sweep()
    resolved = [m for m in delivered(stack) if m["message"]["cluster"] == SYSTEM_CLUSTER]
    assert [m["attributes"]["status"] for m in resolved] == ["resolved"]
    mapping.drain()
    assert [m for m in delivered(stack) if m["message"]["cluster"] == SYSTEM_CLUSTER] == []


def test_a_message_delivered_twice_notifies_once(stack, work_queue, worker):  # noqa: F811
    failing_node_cluster("node-dup")
    run_sweep()
    (message,) = work_queue.messages()
    event = sqs_event([message], work_queue.arn)
    context = LambdaContext(function_name="hyperpod-guard-worker")

    assert worker.handler(copy.deepcopy(event), context) == {"batchItemFailures": []}
    assert clusters_named(delivered(stack)) == ["node-dup"]
    # SQS delivers it again (at least once), and the next sweep's message comes late: nothing more is sent
    assert worker.handler(copy.deepcopy(event), context) == {"batchItemFailures": []}
    boto3.client("sqs").delete_message(QueueUrl=work_queue.url, ReceiptHandle=message["ReceiptHandle"])
    run_sweep()
    (late,) = work_queue.messages()
    assert worker.handler(sqs_event([late], work_queue.arn), context) == {"batchItemFailures": []}
    assert delivered(stack) == []


# --- the messages -----------------------------------------------------------------------------------

def test_every_kind_has_a_handler_and_a_bad_message_fails_alone(stack, work_queue, worker):  # noqa: F811
    from typing import get_args

    (union, _) = get_args(worker.WorkMessage)
    kinds = {get_args(model.model_fields["kind"].annotation)[0] for model in (get_args(union) or (union,))}
    assert kinds == set(worker.HANDLERS) == {"evaluate-cluster", "flush-group"}

    degraded_cluster("fine")
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=work_queue.url, MessageBody=json.dumps({"kind": "shred-cluster", "cluster": "fine"}))
    sqs.send_message(QueueUrl=work_queue.url, MessageBody="not json")
    run_sweep()  # "fine"'s evaluate-cluster message
    messages = work_queue.messages()
    response = worker.handler(sqs_event(messages, work_queue.arn), LambdaContext(function_name="hyperpod-guard-worker"))
    bad = sorted(m["MessageId"] for m in messages if "evaluate-cluster" not in m["Body"])
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == bad
    assert open_clusters(stack) == {"fine"}  # the good one was evaluated (degraded: pending)
    # alone in its batch, it is answered the same way (not raised: the batch is not retried whole)
    alone = [m for m in messages if m["MessageId"] == bad[0]]
    assert worker.handler(sqs_event(alone, work_queue.arn), LambdaContext(function_name="hyperpod-guard-worker")) == {
        "batchItemFailures": [{"itemIdentifier": bad[0]}]}


@pytest.mark.parametrize(("sender_fault", "calls", "queued"), [(False, 4, 25), (True, 3, 24)],
                         ids=["sqs-fault-retried", "sender-fault-raises"])
def test_entries_sqs_refuses(stack, work_queue, fleet, sender_fault, calls, queued):  # noqa: F811
    """SendMessageBatch answers 200 with some entries Failed: SQS's own faults are sent again, a
    sender's fault fails the sweep (WorkNotQueued: the next run sends it again)."""
    client = aws_clients.client("sqs")
    sqs = Faults("sqs")
    refused: list[str] = []

    def refuse_one(parsed: dict[str, Any], **_: Any) -> None:
        if refused or not parsed.get("Successful"):
            return
        entry = parsed["Successful"].pop()  # SQS answers it as failed: here it was not queued
        refused.append(entry["MessageId"])
        parsed["Failed"] = [{"Id": entry["Id"], "SenderFault": sender_fault, "Code": "InternalError",
                             "Message": "injected"}]

    client.meta.events.register("after-call.sqs.SendMessageBatch", refuse_one)
    try:
        if sender_fault:
            from hyperpod_guard.handlers.worker import WorkNotQueued

            with pytest.raises(WorkNotQueued, match="1 of 25 message"):
                run_sweep()
        else:
            run_sweep()
    finally:
        client.meta.events.unregister("after-call.sqs.SendMessageBatch", refuse_one)
    assert sqs.calls["SendMessageBatch"] == calls
    # the refused entry reached moto all the same (the answer was altered, not the request): drop it
    messages = [m for m in work_queue.messages() if m["MessageId"] not in refused]
    assert len(messages) == queued
