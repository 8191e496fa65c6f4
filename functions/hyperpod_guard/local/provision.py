"""Create, on moto, the resources the stack creates in AWS, and the environment the functions get.

Names and shapes come from the same places the runtime uses (ledger_store.TABLE_DEFINITION,
rules_store.DEFAULT_RULES_PATH), so a test or the demo runs against what `cdk deploy` makes.
An SQS queue subscribed to the topic lets tests and the demo read back what SNS delivered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    #: where the Slack receivers' webhook secrets live: `<prefix>/slack/<receiver>`
    receiver_secret_prefix: str = naming.slack_receiver_secret_prefix(PREFIX)

    def environment(self) -> dict[str, str]:
        """What the stack sets on the functions (here one environment serves all three)."""
        return {
            "TABLE_NAME": self.table_name,
            "TOPIC_ARN": self.topic_arn,
            "RULES_PATH": self.rules_path,
            "RULES_MAX_AGE": "60",
            "SLACK_WEBHOOK_SECRET": self.slack_secret,
            "SLACK_RECEIVER_SECRET_PREFIX": self.receiver_secret_prefix,
            "POWERTOOLS_SERVICE_NAME": PREFIX,
            "POWERTOOLS_METRICS_NAMESPACE": "HyperPodGuard",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }


def provision(*, slack_webhook_url: str = "", rules: dict[str, Any] | None = None, prefix: str = PREFIX,
              receivers: Mapping[str, str] | None = None) -> Resources:
    """`receivers`: Slack receivers' webhook URLs by name, each in its secret (as `cdk deploy -c
    slackReceivers=...` creates them and people fill them in)."""
    dynamodb, sns, sqs = boto3.client("dynamodb"), boto3.client("sns"), boto3.client("sqs")
    table = naming.table_name(prefix)
    create_table(dynamodb, table)
    topic_arn = sns.create_topic(Name=naming.alerts_topic_name(prefix))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{prefix}-alerts-copy")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    secret = naming.slack_secret_name(prefix)
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=secret, SecretString=slack_webhook_url or " ")
    for receiver, url in (receivers or {}).items():
        secrets.create_secret(Name=naming.slack_receiver_secret_name(prefix, receiver), SecretString=url or " ")
    rules_path = naming.rules_path(prefix)
    if rules is not None:
        push_rules(rules, rules_path, ssm=boto3.client("ssm"))
    return Resources(table, topic_arn, queue_url, secret, rules_path, naming.slack_receiver_secret_prefix(prefix))


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
