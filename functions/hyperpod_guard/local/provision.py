"""Create, on moto, the resources the stack creates in AWS, and the environment the functions get.

Names and shapes come from the same places the runtime uses (ledger_store.TABLE_DEFINITION,
rules_store.DEFAULT_RULES_PATH), so a test or the demo runs against what `cdk deploy` makes.
An SQS queue subscribed to the topic lets tests and the demo read back what SNS delivered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from .. import naming
from ..ledger_store import create_table
from ..rules_store import push_rules

PREFIX = naming.DEFAULT_PREFIX


@dataclass(frozen=True)
class Resources:
    table_name: str
    topic_arn: str
    queue_url: str
    slack_secret: str
    rules_path: str

    def environment(self) -> dict[str, str]:
        """What the stack sets on the functions (here one environment serves all three)."""
        return {
            "TABLE_NAME": self.table_name,
            "TOPIC_ARN": self.topic_arn,
            "RULES_PATH": self.rules_path,
            "RULES_MAX_AGE": "60",
            "SLACK_WEBHOOK_SECRET": self.slack_secret,
            "POWERTOOLS_SERVICE_NAME": PREFIX,
            "POWERTOOLS_METRICS_NAMESPACE": "HyperPodGuard",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }


def provision(*, slack_webhook_url: str = "", rules: dict[str, Any] | None = None, prefix: str = PREFIX) -> Resources:
    dynamodb, sns, sqs = boto3.client("dynamodb"), boto3.client("sns"), boto3.client("sqs")
    table = naming.table_name(prefix)
    create_table(dynamodb, table)
    topic_arn = sns.create_topic(Name=naming.alerts_topic_name(prefix))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{prefix}-alerts-copy")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    secret = naming.slack_secret_name(prefix)
    boto3.client("secretsmanager").create_secret(Name=secret, SecretString=slack_webhook_url or " ")
    rules_path = naming.rules_path(prefix)
    if rules is not None:
        push_rules(rules, rules_path, ssm=boto3.client("ssm"))
    return Resources(table, topic_arn, queue_url, secret, rules_path)


def delivered(resources: Resources, *, max_batches: int = 10) -> list[dict[str, Any]]:
    """SNS messages that reached the topic's SQS subscription since the last call, as
    {"subject", "message" (parsed JSON), "attributes"}; deleted from the queue once read."""
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    for _ in range(max_batches):
        batch = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for message in batch:
            envelope = json.loads(message["Body"])
            out.append({
                "subject": envelope.get("Subject"),
                "message": json.loads(envelope["Message"]),
                "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                "sns_event": {"Records": [{"EventSource": "aws:sns", "Sns": envelope}]},
            })
            sqs.delete_message(QueueUrl=resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out
