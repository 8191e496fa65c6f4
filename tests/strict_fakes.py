"""In-memory stand-ins for SageMaker, the ledger table and SNS that refuse what AWS refuses.

moto accepts inputs the real services reject (an SNS Subject with control characters, a
message over 256 KiB is the only limit it checks, any DescribeCluster name), so a fuzz test
against moto alone would miss the failures that matter in an account: an evaluation that
raises on every retry and parks the event in the DLQ. These fakes enforce the documented
limits and are fast enough for thousands of examples.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from hyperpod_guard.freshness import ReportMark
from hyperpod_guard.ledger import CLAIM_LEASE, AlertRecord, Decision
from hyperpod_guard.ledger_store import ClusterLedger, LedgerReads, mark_to_item, to_item
from hyperpod_guard.rules import DEFAULT_RULES
from hyperpod_guard.rules_store import LoadedRules

#: CreateCluster's ClusterName; DescribeCluster also takes a cluster ARN
CLUSTER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
CLUSTER_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:cluster/[a-z0-9]{12}")
#: SNS: a message with its attributes is at most 256 KiB
SNS_LIMIT = 256 * 1024
#: DynamoDB: an item is at most 400 KB; a partition key 2048 bytes, a sort key 1024
ITEM_LIMIT, PK_LIMIT, SK_LIMIT = 400 * 1024, 2048, 1024
#: characters SNS accepts in a String message attribute (XML 1.0 characters)
_XML_CHARS = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def refuse(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class SageMaker:
    """DescribeCluster / DescribeClusterNode answered from DescribeCluster documents by name."""

    def __init__(self, clusters: dict[str, dict[str, Any]]):
        self.clusters = clusters

    def _cluster(self, operation: str, name: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not (CLUSTER_NAME.fullmatch(name) or CLUSTER_ARN.fullmatch(name)):
            raise refuse(operation, "ValidationException",
                         "1 validation error detected: Value at 'clusterName' failed to satisfy constraint")
        if name not in self.clusters:
            raise refuse(operation, "ResourceNotFound", f"Cluster {name} not found")
        return self.clusters[name]

    def describe_cluster(self, *, ClusterName: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        return copy.deepcopy(self._cluster("DescribeCluster", ClusterName))

    def describe_cluster_node(self, *, ClusterName: str, NodeId: str) -> dict[str, Any]:  # noqa: N803
        cluster = self._cluster("DescribeClusterNode", ClusterName)
        if not 1 <= len(NodeId) <= 256:
            raise refuse("DescribeClusterNode", "ValidationException", "Value at 'nodeId' failed to satisfy constraint")
        for node in cluster.get("Nodes") or []:
            if isinstance(node, dict) and node.get("InstanceId") == NodeId:
                return {"NodeDetails": copy.deepcopy(node)}
        raise refuse("DescribeClusterNode", "ResourceNotFound", f"Node {NodeId} not found")

    def get_paginator(self, name: str) -> _Pages:
        """The HyperPod feature listings (operations, extensions, cluster events): none here."""
        return _Pages({"list_cluster_operations": "ClusterOperationSummaries", "list_cluster_extensions": "Extensions",
                       "list_cluster_events": "Events"}[name])

    def describe_training_plan(self, *, TrainingPlanName: str) -> dict[str, Any]:  # noqa: N803
        raise refuse("DescribeTrainingPlan", "ResourceNotFound", f"Training plan {TrainingPlanName} not found")


class _Pages:
    def __init__(self, key: str) -> None:
        self.key = key

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        yield {self.key: []}


class Ledger:
    """The ledger Store protocol in memory, refusing items DynamoDB would refuse."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], AlertRecord] = {}
        self.marks: dict[tuple[str, str], ReportMark] = {}

    @staticmethod
    def _check(record: AlertRecord) -> None:
        item = to_item(record)
        if utf8(item["pk"]["S"]) > PK_LIMIT or utf8(item["sk"]["S"]) > SK_LIMIT:
            raise refuse("TransactWriteItems", "ValidationException", "key size exceeded")
        total = sum(utf8(name) + utf8(str(next(iter(value.values())))) for name, value in item.items())
        if total > ITEM_LIMIT:
            raise refuse("TransactWriteItems", "ValidationException", "Item size has exceeded the maximum allowed size")

    def load(self, cluster: str) -> dict[str, AlertRecord]:
        if utf8(f"CLUSTER#{cluster}") > PK_LIMIT:
            raise refuse("Query", "ValidationException", "key size exceeded")
        return {fp: r for (c, fp), r in self.records.items() if c == cluster}

    def load_cluster(self, cluster: str, reads: LedgerReads | None = None) -> ClusterLedger:
        # every record, whatever `reads` names: a superset of what an evaluation needs is what it read before issue 17
        return ClusterLedger(self.load(cluster), {key: m for (c, key), m in self.marks.items() if c == cluster})

    def commit(self, decisions: list[Decision], token: str, now: datetime,
               marks: Sequence[ReportMark] = ()) -> list[AlertRecord]:
        written = [replace(d.record, version=d.record.version + 1,
                           **({"claim_token": token, "claim_until": now + CLAIM_LEASE} if d.notify else {}))
                   for d in decisions if d.changed]
        for record in written:
            self._check(record)
        for mark in marks:
            if utf8(mark_to_item(mark, now)["sk"]["S"]) > SK_LIMIT:
                raise refuse("TransactWriteItems", "ValidationException", "key size exceeded")
        self.records.update({(r.cluster, r.fingerprint): r for r in written})
        self.marks.update({(m.cluster, m.key): replace(m, version=m.version + 1) for m in marks})
        return written

    def confirm(self, records: list[AlertRecord], token: str, now: datetime,
                owners: Mapping[str, tuple[str, ...]] | None = None) -> None:
        for record in records:
            kept = tuple(sorted({*record.owners, *(owners or {}).get(record.fingerprint, ())}))
            self.records[(record.cluster, record.fingerprint)] = replace(
                record, last_notified=now, notified_severity=record.severity, owed=None, claim_token=None,
                claim_until=None, owners=kept, version=record.version + 1)

    def release(self, records: list[AlertRecord], token: str) -> None:
        for record in records:
            self.records[(record.cluster, record.fingerprint)] = replace(
                record, claim_token=None, claim_until=None, version=record.version + 1)


class Sns:
    """sns.publish as SNS validates it (Subject, size, attribute characters)."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, *, TopicArn: str, Message: str, Subject: str | None = None,  # noqa: N803
                MessageAttributes: dict[str, dict[str, str]] | None = None,
                MessageStructure: str | None = None) -> dict[str, str]:
        # "ASCII text that begins with a letter, number, or punctuation mark; must not include
        # line breaks or control characters; and must be less than 100 characters long"
        if Subject is not None and not (
            0 < len(Subject) < 100 and all(" " <= c <= "~" for c in Subject) and not Subject[0].isspace()
        ):
            raise refuse("Publish", "InvalidParameter", "Invalid parameter: Subject")
        if MessageStructure is not None:  # "json": one message per protocol, a string "default" required
            try:
                structured = json.loads(Message) if MessageStructure == "json" else None
            except ValueError:
                structured = None
            if not isinstance(structured, dict) or not isinstance(structured.get("default"), str):
                raise refuse("Publish", "InvalidParameter",
                             "Invalid parameter: Message Structure - No default entry in JSON message body")
        attributes = MessageAttributes or {}
        Message.encode("utf-8")  # botocore's serializer raises UnicodeEncodeError on a lone surrogate
        total = utf8(Message) + sum(utf8(k) + utf8(v["DataType"]) + utf8(v.get("StringValue", ""))
                                    for k, v in attributes.items())
        if not Message or total > SNS_LIMIT:
            raise refuse("Publish", "InvalidParameter", "Invalid parameter: Message too long")
        for name, value in attributes.items():
            text = value.get("StringValue", "")
            if not text or not _XML_CHARS.fullmatch(text):
                raise refuse("Publish", "InvalidParameterValue", f"The message attribute '{name}' has an invalid value")
        self.published.append({"Subject": Subject, "Message": Message, "MessageAttributes": attributes,
                               "MessageStructure": MessageStructure})
        return {"MessageId": f"m-{len(self.published)}"}


class Rules:
    """The rules store, answering the built-in defaults."""

    def load(self, *, force_fetch: bool = False) -> LoadedRules:
        return LoadedRules(rules=DEFAULT_RULES, source="defaults")
