"""The sweep's fan-out as synthesised (issue 17): the work queue and its dead-letter queue, the worker and
its SQS event source (ReportBatchItemFailures, batch size, maximum concurrency), who may send and who may
consume, the alarms and the dashboard. The behaviour itself: tests/integration/test_sweep_fanout.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from hyperpod_guard.constants import NAMESPACE, Metric, Service
from hyperpod_guard.archive import EPISODES_PREFIX, REPAIRS_PREFIX, S3_ACTIONS_WRITE
from hyperpod_guard.ledger_store import OPEN_INDEX, OPEN_INDEX_ACTIONS, RESOLVED_INDEX, RESOLVED_INDEX_ACTIONS
from infra.evaluation import (
    SAGEMAKER_READ,
    SAGEMAKER_REMEDIATE,
    SWEEP_TABLE_ACTIONS,
    WORK_BATCH_SIZE,
    WORK_MAX_CONCURRENCY,
    WORK_MAX_RECEIVES,
    WORK_RETENTION_S,
    WORK_VISIBILITY_S,
    WORKER_TIMEOUT_S,
)
from tests.integration.test_sweep_fanout import BATCH_SIZE, MAX_RECEIVES

from .test_dashboard_metrics import _text
from .test_stack import (
    ALL_OPTIONS,
    DENY_INSECURE,
    RULES_ARNS,
    alarms,
    as_list,
    find,
    function,
    function_statements,
    iam_statements,
    key,
    live,
    queue,
    resources,
    topic,
)

CONSUME = {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
           "sqs:ReceiveMessage"}


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def test_the_numbers_agree() -> None:
    # AWS: a source queue's visibility timeout at least six times the function's timeout
    assert WORK_VISIBILITY_S >= 6 * WORKER_TIMEOUT_S
    # a message that keeps failing reaches the dead-letter queue before it expires
    assert WORK_RETENTION_S > WORK_MAX_RECEIVES * WORK_VISIBILITY_S
    # the integration tests feed the worker as deployed
    assert (WORK_BATCH_SIZE, WORK_MAX_RECEIVES) == (BATCH_SIZE, MAX_RECEIVES)
    assert 2 <= WORK_MAX_CONCURRENCY <= 1000 and 1 <= WORK_BATCH_SIZE <= 10  # what SQS event sources accept


def test_the_work_queue_redrives_to_its_dead_letter_queue(template: dict[str, Any]) -> None:
    work_id, work = queue(template, "work")
    dlq_id, dlq = queue(template, "work-dlq")
    worker_id, worker = function(template, "worker")
    assert work["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert work["VisibilityTimeout"] == 6 * worker["Timeout"] == WORK_VISIBILITY_S
    assert work["RedrivePolicy"] == {"deadLetterTargetArn": _arn(dlq_id), "maxReceiveCount": 3}
    assert work["MessageRetentionPeriod"] == WORK_RETENTION_S < dlq["MessageRetentionPeriod"] == 14 * 86400
    _, policy = find(template, "AWS::SQS::QueuePolicy", Queues=[{"Ref": work_id}])
    assert any(s["Effect"] == "Deny" and s["Condition"] == DENY_INSECURE and s["Action"] == "sqs:*"
               for s in policy["PolicyDocument"]["Statement"])


def test_the_worker_consumes_the_work_queue_with_partial_batch_failures(template: dict[str, Any]) -> None:
    work_id, _ = queue(template, "work")
    alias, _ = live(template, "worker")
    ((_, mapping),) = resources(template, "AWS::Lambda::EventSourceMapping").items()
    properties = mapping["Properties"]
    # the worker's `live` alias: <function name>:live, the name taken from the alias's ARN
    assert properties["FunctionName"] == {"Fn::Join": ["", [
        {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": alias}]}]}, ":live"]]}
    assert properties["EventSourceArn"] == _arn(work_id)
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (properties["BatchSize"], properties["ScalingConfig"]) == (5, {"MaximumConcurrency": 20})
    assert "MaximumBatchingWindowInSeconds" not in properties  # a sweep's messages arrive at once


def test_the_worker_evaluates_as_the_evaluator_does(template: dict[str, Any]) -> None:
    work_id, _ = queue(template, "work")
    worker = function_statements(template, "worker")
    sqs = [s for s in worker if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    # it consumes the queue, and sends grouping's flushes to it (CDK merges the two statements)
    assert {(a, key(s["Resource"])) for s in sqs for a in as_list(s["Action"])} == {
        (a, key(_arn(work_id))) for a in CONSUME | {"sqs:SendMessage"}}
    # the evaluator's grants besides its failure destination: the same environment, the same code path
    evaluator = [s for s in function_statements(template, "evaluator")
                 if not any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    assert sorted(map(key, evaluator)) == sorted(map(key, [s for s in worker if s not in sqs]))
    env = {name: function(template, name)[1]["Environment"]["Variables"] for name in ("evaluator", "worker")}
    assert env["worker"] == env["evaluator"]


@pytest.mark.parametrize("context", [{}, ALL_OPTIONS], ids=["default", "all-options"])
def test_the_sweep_lists_and_sends_and_evaluates_nothing_itself(synth: Callable[..., dict[str, Any]],
                                                                 context: dict[str, Any]) -> None:
    template = synth(**context)
    table_id, _ = find(template, "AWS::DynamoDB::Table", TableName="hyperpod-guard-ledger")
    work_id, _ = queue(template, "work")
    alerts, _ = topic(template, "alerts")
    (key_id,) = resources(template, "AWS::KMS::Key")
    granted = {(action, key(resource)) for s in function_statements(template, "sweep") if s["Effect"] == "Allow"
               for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}
    index = {"Fn::Join": ["", [_arn(table_id), f"/index/{OPEN_INDEX}"]]}
    expected = {(a, key(_arn(table_id))) for a in SWEEP_TABLE_ACTIONS}
    expected |= {(a, key(index)) for a in OPEN_INDEX_ACTIONS}
    resolved = {"Fn::Join": ["", [_arn(table_id), f"/index/{RESOLVED_INDEX}"]]}
    expected |= {(a, key(resolved)) for a in RESOLVED_INDEX_ACTIONS}  # the episodes still to archive
    (bucket_id, _) = find(template, "AWS::S3::Bucket")
    expected |= {(a, key({"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{prefix}*"]]}))
                 for a in S3_ACTIONS_WRITE for prefix in (EPISODES_PREFIX, REPAIRS_PREFIX)}
    expected |= {("sns:Publish", key({"Ref": alerts})), ("sqs:SendMessage", key(_arn(work_id))),
                 ("sagemaker:ListClusters", key("*"))}
    expected |= {(a, key(_arn(key_id))) for a in ("kms:Decrypt", "kms:GenerateDataKey")}
    expected |= {("ssm:GetParametersByPath", key(arn)) for arn in RULES_ARNS}
    assert granted == expected
    assert not {a for a, _ in granted} & {*SAGEMAKER_READ, *SAGEMAKER_REMEDIATE}


def test_the_sweep_and_the_evaluating_functions_send_to_the_work_queue(template: dict[str, Any]) -> None:
    """The sweep its clusters; the evaluator and the worker grouping's flushes (a flush that comes early is
    sent again). No other role."""
    work_id, _ = queue(template, "work")
    roles = {function(template, name)[1]["Role"]["Fn::GetAtt"][0] for name in ("sweep", "evaluator", "worker")}
    senders = {policy for policy, s in iam_statements(template)
               if "sqs:SendMessage" in as_list(s["Action"]) and _arn(work_id) in as_list(s["Resource"])}
    granted = {role["Ref"] for policy in senders for role in template["Resources"][policy]["Properties"]["Roles"]}
    assert granted == roles


def test_the_fan_out_is_alarmed(template: dict[str, Any]) -> None:
    found = alarms(template)
    dlq = found["hyperpod-guard-work-dlq-depth"]
    assert (dlq["MetricName"], dlq["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 1)
    assert found["hyperpod-guard-worker-errors"]["MetricName"] == "Errors"
    errors = found["hyperpod-guard-sweep-cluster-errors"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (NAMESPACE, Metric.SWEEP_ERRORS, "Sum")
    assert errors["Dimensions"] == [{"Name": "service", "Value": Service.SWEEP}]
    assert (errors["ComparisonOperator"], errors["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert "hyperpod-guard-work-depth" not in found  # a busy work queue is its normal state


def test_the_dashboard_shows_the_fan_out(template: dict[str, Any]) -> None:
    ((_, dashboard),) = resources(template, "AWS::CloudWatch::Dashboard").items()
    body = json.loads(_text(dashboard["Properties"]["DashboardBody"]))
    lines = [line for w in body["widgets"] for line in w.get("properties", {}).get("metrics", [])]
    names = {part for line in lines for part in line if isinstance(part, str)}
    assert {Metric.SWEEP_ENQUEUED, Metric.SWEEP_EVALUATED, Metric.SWEEP_ERRORS} <= names
    assert {"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible"} <= names
    durations = next(w for w in body["widgets"] if w["properties"].get("title") == "Durations (p95)")
    assert "worker" in json.dumps(durations)


def test_the_projection_reads_what_the_stack_deploys(template: dict[str, Any]) -> None:
    """benchmarks/sweep_projection.py projects with infra's numbers: they are the template's."""
    import sys

    from .conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import sweep_projection

    numbers = sweep_projection.stack_numbers()
    ((_, mapping),) = resources(template, "AWS::Lambda::EventSourceMapping").items()
    _, schedule = find(template, "AWS::Events::Rule", Name="hyperpod-guard-sweep")
    assert numbers == {
        "worker_memory_mb": function(template, "worker")[1]["MemorySize"],
        "batch_size": mapping["Properties"]["BatchSize"],
        "max_concurrency": mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"],
        "sweep_interval_s": 60 * int(schedule["ScheduleExpression"].removeprefix("rate(").split()[0]),
    }
