"""Harness for the alert-lifecycle model test (tests/integration/test_lifecycle_model.py).

`Pipeline` is what one Lambda container holds (a `Runtime` built from the environment) plus the
stand-ins around it, all on the moto server the suite already runs:

- HyperPod state: `ClusterState` is served with `put_cluster`, so DescribeCluster,
  DescribeClusterNode and ListClusterNodes answer from it;
- remediation: BatchReboot/ReplaceClusterNodes are answered (success) and recorded by a botocore
  `before-call` hook on the runtime's own SageMaker client (moto lacks them);
- SNS refusing a message: a `before-call` hook on the runtime's SNS client answers the next
  Publish with an AWS error (nothing reaches the topic), as a disabled KMS key would;
- what SNS accepted: every Publish of the runtime's SNS client that SNS answered with success (a
  botocore `after-call` hook; cheaper per step than reading the SQS subscription, which `drain()`
  reads at the end of a timeline to check that the two agree);
- rules (silences included) pushed to SSM (`RULES_MAX_AGE=0`: every evaluation reads them);
- ad-hoc silences added to and expired in the ledger table (`SILENCES_MAX_AGE=0`: every
  evaluation reads them), through silences.SilenceStore as `hyperpod-guard silence` does;
- acknowledgements (issue 20) written through LedgerStore.acknowledge, as the Slack actions worker
  does when someone clicks Acknowledge (in app mode it then updates the alert's Slack messages too,
  notify/slack_app.mark_acknowledged, as the worker does);
- Slack app mode (the `app` case, issue 20): every message SNS accepted is delivered, in order, to the Slack
  notifier's handler in app mode (handlers/slack_notifier.py), which talks to local/slack_api_standin.py (a
  real HTTP server speaking Slack's Web API); a delivery that raises is retried before the next step's, as
  Lambda retries an SNS invocation; `SlackPost`s are the messages each delivery posted (top level or in a thread).
- grouping (the `grouped` case): flushes are sent to a work queue on moto (SendMessage with its
  DelaySeconds) and kept, with the time each is due, in a local/work_queue.LocalFlushQueue: SQS
  delays in real time, the model moves its own clock and delivers each flush when it is due.
- the fleet (the `fleet` case, issue 22): the functions run as a hub (HUB_ENVIRONMENT) and the model's cluster
  lives in the SPOKE account and region, read through the spoke role (moto's AssumeRole maps the role's
  credentials to that account); its key is `batch-infer@444455556666/us-east-1` (`Pipeline.key`). The remediation
  calls are not intercepted: local/sagemaker_standin.py answers them where they land and `node_actions()` of the
  spoke's account and region is what the model sees. A decoy of the same name lives at home (`put_decoy`).
- the blast radius (issue 23; the `no-remediation` and `grouped` cases): the cluster's EKS orchestrator is served
  by moto's eks:DescribeCluster pointing at a Kubernetes API stand-in over TLS (tests/lifecycle_kube.py:
  `KubeCluster`, what each node runs and whether the API answers, refuses (403) or is down); `Sent` carries each
  item's workload and receivers.

Nothing here decides what is right: the model and its invariants live in the test.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.awsrequest import AWSResponse

from hyperpod_guard import aws_clients
from hyperpod_guard.fleet import Location
from hyperpod_guard.ledger import AlertRecord
from hyperpod_guard.local import sagemaker_standin
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.lambda_context import LambdaContext
from hyperpod_guard.local.slack_api_standin import TOKEN, SlackApiStandIn
from hyperpod_guard.local.provision import Resources, provision
from hyperpod_guard.alerting import Outcome
from hyperpod_guard.grouping import FlushGroup, Grouper, GroupStore, SqsFlushQueue
from hyperpod_guard.local.work_queue import LocalFlushQueue
from hyperpod_guard.service import EventResult, Runtime, SweepResult, flush_group, handle_event, new_token, sweep
from hyperpod_guard.silences import SilenceStore, new_silence
from hyperpod_guard.timeutil import isoformat, parse_timestamp
from tests.conftest import ACCOUNT, REGION
from tests.lifecycle_kube import eks_arn
from tests.runtime_fixtures import scenario

if TYPE_CHECKING:
    from hyperpod_guard.ledger_store import Acknowledgement
    from tests.lifecycle_kube import KubeCluster

CLUSTER, GROUP, TARGET = "batch-infer", "g5-batch", 4
#: the model's names for the two nodes it follows, and their instance ids
NODES: dict[str, str] = {"n1": "i-0e4d3c2b1a0f9e8d7", "n2": "i-0d3c2b1a0f9e8d7c6"}
NODE_NAMES: dict[str, str] = {instance: name for name, instance in NODES.items()}
#: the deployment's own account and region (a hub's home)
HOME = Location(ACCOUNT, REGION)
#: the `fleet` case (issue 22): where the model's cluster lives, its key (written out as fleet.py's docstring
#: defines it, not computed by fleet.cluster_key: the model must not take the key from the code it checks), and
#: the environment a hub's stack sets on the functions
SPOKE = Location("444455556666", "us-east-1")
SPOKE_KEY = f"{CLUSTER}@{SPOKE.account}/{SPOKE.region}"
HUB_ENVIRONMENT = {"HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": f"{HOME.region},{SPOKE.region}",
                   "EVENT_ACCOUNTS": f"{HOME.account},{SPOKE.account}", "SPOKE_ROLE_NAME": "hyperpod-guard-spoke",
                   "SPOKE_EXTERNAL_ID": "hyperpod-guard-model"}
#: the `fleet` case's decoy: a cluster of the same name at home (key: the bare name), its group of the same name
#: short of nodes for good (2 of 4: degraded-group, no remediation), with nodes of its own
DECOY_KEY, DECOY_CURRENT = CLUSTER, 2
DECOY_NODES = ("i-0a1b2c3d4e5f60718", "i-0a1b2c3d4e5f60729")


def cluster_arn(where: Location) -> str:
    return f"arn:aws:sagemaker:{where.region}:{where.account}:cluster/{CLUSTER}"
REBOOT, REPLACE = "BatchRebootClusterNodes", "BatchReplaceClusterNodes"
NODE_HEALTH = "SageMaker HyperPod Cluster Node Health Event"
STATE_CHANGE = "SageMaker HyperPod Cluster State Change"
CLUSTER_EVENT = "SageMaker HyperPod Cluster Event"


def short(text: str) -> str:
    """Instance ids replaced by the model's node names (n1, n2), for timelines a person reads."""
    for instance, name in NODE_NAMES.items():
        text = text.replace(instance, name)
    return text


# --- HyperPod state ---------------------------------------------------------------------------------


@dataclass
class ClusterState:
    """What HyperPod reports now: the cluster of scenario node-failure-recovery-none (NodeRecovery
    None, one instance group of TargetCount 4, orchestrated by the EKS cluster batch-infer-eks of its account and
    region) with two nodes the model follows."""

    node_status: dict[str, str] = field(default_factory=lambda: {name: "Running" for name in NODES})
    group_status: str = "InService"
    group_current: int = TARGET
    #: the cluster's account and region (the `fleet` case: a spoke's)
    where: Location = HOME

    def describe_cluster(self) -> dict[str, Any]:
        """The DescribeCluster document (also a State Change event's detail)."""
        _, snapshot = scenario("node-failure-recovery-none")
        assert snapshot is not None
        snapshot.pop("Nodes", None)
        snapshot["ClusterArn"] = cluster_arn(self.where)
        snapshot["Orchestrator"] = {"Eks": {"ClusterArn": eks_arn(self.where)}}
        (group,) = snapshot["InstanceGroups"]
        group.update(Status=self.group_status, CurrentCount=self.group_current, TargetCount=TARGET)
        return snapshot

    def node_documents(self) -> list[dict[str, Any]]:
        return [{"InstanceId": NODES[name], "InstanceGroupName": GROUP, "InstanceType": "ml.g5.12xlarge",
                 "LaunchTime": "2026-10-02T11:04:51Z", "InstanceStatus": {"Status": status}}
                for name, status in sorted(self.node_status.items())]


def put_decoy() -> None:
    """The `fleet` case's decoy at home: batch-infer, its group g5-batch InService with 2 of 4 nodes (Running)."""
    decoy = ClusterState(group_current=DECOY_CURRENT)
    nodes = [{**document, "InstanceId": instance}
             for document, instance in zip(decoy.node_documents(), DECOY_NODES, strict=True)]
    put_cluster(decoy.describe_cluster(), region=HOME.region, account=HOME.account, nodes=nodes)


# --- EventBridge events -----------------------------------------------------------------------------


def _envelope(detail_type: str, detail: dict[str, Any], event_id: str, time: datetime,
              where: Location) -> dict[str, Any]:
    """From the cluster's account and region (the deployment's own, or a spoke of the hub's fleet)."""
    return {"version": "0", "id": event_id, "detail-type": detail_type, "source": "aws.sagemaker",
            "account": where.account, "time": isoformat(time), "region": where.region,
            "resources": [cluster_arn(where)], "detail": detail}


def node_health_event(node: str, healthy: bool, event_id: str, time: datetime,
                      where: Location = HOME) -> dict[str, Any]:
    """HyperPod's health agent about `node` (a model name); nothing repairs it automatically."""
    summary = ({"HealthStatus": "Healthy", "HealthStatusReason": "Node passed health checks"} if healthy else
               {"HealthStatus": "Unhealthy", "RepairAction": "None", "Recommendation": "Please Replace the Faulty Node.",
                "HealthStatusReason": "HyperPod Health Monitoring Agent detected fault type NvidiaErrorTerminate."})
    return _envelope(NODE_HEALTH, {"ClusterName": CLUSTER, "ClusterArn": cluster_arn(where), "InstanceId": NODES[node],
                                   "HealthSummary": summary}, event_id, time, where)


def state_change_event(state: ClusterState, event_id: str, time: datetime) -> dict[str, Any]:
    return _envelope(STATE_CHANGE, state.describe_cluster(), event_id, time, state.where)


def cluster_event(event_id: str, time: datetime, where: Location = HOME) -> dict[str, Any]:
    """An Error-level Cluster Event about the group (capacity): evidence, not a finding of its own."""
    details = {"EventId": event_id, "ClusterArn": cluster_arn(where), "ClusterName": CLUSTER,
               "InstanceGroupName": GROUP,
               "ResourceType": "InstanceGroup", "EventTime": int(time.timestamp() * 1000), "EventLevel": "Error",
               "Description": f"Failed to provision EC2 Instance in Cluster {CLUSTER} and IG {GROUP}",
               "EventDetails": {"EventMetadata": {"InstanceGroup": {
                   "FailureMessage": "We currently do not have sufficient capacity to launch new ml.g5.12xlarge instances."}}}}
    return _envelope(CLUSTER_EVENT, {"EventDetails": details}, event_id, time, where)


# --- what came out ------------------------------------------------------------------------------------


def message_body(message: str) -> dict[str, Any]:
    """The notification in a published Message: itself, or its `default` when published per protocol
    (MessageStructure json: {"default": body, "email": ..., "https": ...})."""
    data = json.loads(message)
    return json.loads(data["default"]) if isinstance(data.get("default"), str) else data


@dataclass(frozen=True)
class Sent:
    """One item of a message SNS accepted."""

    at: datetime
    reason: str
    fingerprint: str
    policy: str
    condition: str
    instance_group: str | None
    node: str | None
    actions: tuple[str, ...]
    severity: str = ""
    #: the item's times and, resolved, what it says is true now (issue 18)
    first_seen: datetime | None = None
    resolved_at: datetime | None = None
    resolved_evidence: dict[str, Any] | None = None
    #: the message's `sent_at`
    sent_at: datetime | None = None
    #: who acknowledged the alert's episode, as the item says (issue 20)
    acknowledged_by: str | None = None
    #: what runs on the item's node, as the item says (issue 23: NotificationItem.workload), and its receivers
    workload: dict[str, Any] | None = None
    receivers: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        if self.node:
            return NODE_NAMES.get(self.node, self.node)
        return self.instance_group or "cluster"

    @property
    def alert(self) -> str:
        return f"{self.policy}/{self.condition} {self.scope}"

    @property
    def reports_action(self) -> bool:
        """It tells of an action taken (or tried), not of one skipped."""
        return any(not line.startswith("skipped") for line in self.actions)

    def __str__(self) -> str:
        actions = f"  [{short('; '.join(self.actions))}]" if self.actions else ""
        work, to = "", ""
        if self.workload is not None:  # issue 23: what runs on the node (or why unknown), and where it went
            unknown = self.workload.get("unknown")
            jobs = ", ".join(str(job.get("name")) for job in self.workload.get("jobs") or ()) or "no job"
            work = f"  workload: {'unknown: ' + str(unknown)[:60] if unknown else jobs}"
        if self.workload is not None or self.receivers not in ((), ("default",)):
            to = f"  -> {', '.join(self.receivers)}"
        return f"{self.reason:<10} {self.alert}{actions}{work}{to}"


def sent_items(bodies: list[dict[str, Any]], now: datetime) -> list[Sent]:
    """The items of these messages, in order."""
    return [Sent(now, item["reason"], item["finding"]["fingerprint"], item["finding"]["policy"],
                 item["finding"].get("condition", ""), item["finding"].get("instance_group"),
                 item["finding"].get("node"), tuple(item.get("actions", ())), item["finding"].get("severity", ""),
                 parse_timestamp(item.get("first_seen")), parse_timestamp(item.get("resolved_at")),
                 item.get("resolved_evidence"), parse_timestamp(body.get("sent_at")), item.get("acknowledged_by"),
                 item.get("workload"), tuple(receiver["name"] for receiver in item.get("receivers") or ()))
            for body in bodies for item in body["items"]]


@dataclass(frozen=True)
class SlackPost:
    """A message the Slack notifier posted (chat.postMessage answered ok): top level, or a reply in a thread."""

    ts: str
    thread_ts: str | None


@dataclass
class SlackDelivery:
    """One invocation of the Slack notifier (app mode) for one SNS message, and what it posted."""

    message_id: str
    body: dict[str, Any]
    posts: list[SlackPost]
    #: the invocation raised (Lambda retries it): why
    failed: str | None = None
    #: a retry of a delivery that failed, or SNS delivering the same message again
    again: bool = False

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.body["items"])


@dataclass(frozen=True)
class Call:
    """One remediation request the HyperPod API received."""

    operation: str
    nodes: tuple[str, ...]  # model names

    def __str__(self) -> str:
        return f"{self.operation} {', '.join(self.nodes)}"


# --- the pipeline ---------------------------------------------------------------------------------------


class Pipeline:
    """The evaluator and the sweep (service.handle_event / service.sweep) on moto, reset per example.

    The runtime's boto3 clients are the process-wide ones (hyperpod_guard.aws_clients), as in a
    warm Lambda container; the hooks are registered on them once."""

    def __init__(self, moto_url: str, setenv: Callable[[str, str], None], *, grouped: bool = False,
                 slack: SlackApiStandIn | None = None, fleet: bool = False, kube: KubeCluster | None = None):
        self.moto_url = moto_url
        #: the fleet case: the functions are a hub, the model's cluster lives in SPOKE, a decoy at home
        self.fleet = fleet
        self.where = SPOKE if fleet else HOME
        #: the model's cluster's key: what the ledger, threads and acknowledgements know it by
        self.key = SPOKE_KEY if fleet else CLUSTER
        self._actions_seen = 0  # fleet: the spoke's node actions already taken (take_calls)
        #: app mode: the Slack Web API stand-in the notifier posts to (None: no Slack delivery)
        self.slack = slack
        #: the blast radius: the cluster's Kubernetes API (None: the rules leave `workload` off)
        self.kube = kube
        self.channel = ""
        self._resets = 0
        #: app mode: SNS messages accepted and not yet delivered to Slack, and deliveries to retry
        self.to_slack: list[tuple[str, dict[str, Any]]] = []
        self.slack_retries: list[tuple[str, dict[str, Any]]] = []
        self.slack_delivered: list[tuple[str, dict[str, Any]]] = []
        #: grouping on: flushes go to a work queue on moto and are kept in `flushes` with the time they are due
        self.grouped = grouped
        self.flushes = LocalFlushQueue()
        self.setenv = setenv  # monkeypatch.setenv: the functions' environment, restored after the test
        self.calls: list[Call] = []
        self.accepted: list[dict[str, Any]] = []  # message bodies SNS accepted, not yet taken
        self.published = 0  # ... and how many in this timeline
        #: the sweep evaluates clusters (the fleet case: two) in threads: a Publish's before- and after-call
        #: run on its thread; the refusal and what was accepted are shared
        self._publishing = threading.local()
        self._lock = threading.Lock()
        self._refuse_publish = 0
        self.sqs = boto3.client("sqs")
        self.ssm = boto3.client("ssm")
        self._hook_clients()
        self.resources: Resources | None = None
        self.runtime: Runtime | None = None

    def _hook_clients(self) -> None:
        """The hooks on the process-wide clients the runtime uses (unique ids: registering again is a no-op).
        The fleet case leaves the remediation calls to the SageMaker stand-in, in the account they reach."""
        if not self.fleet:
            sagemaker = aws_clients.client("sagemaker")
            for operation in (REBOOT, REPLACE):
                sagemaker.meta.events.register(f"before-call.sagemaker.{operation}", self._remediation_call,
                                               unique_id=f"lifecycle-model-{operation}")
        sns = aws_clients.client("sns")
        sns.meta.events.register("before-call.sns.Publish", self._publish, unique_id="lifecycle-model-publish")
        sns.meta.events.register("after-call.sns.Publish", self._published, unique_id="lifecycle-model-published")

    # per example ----------------------------------------------------------------------------------------

    def reset(self, state: ClusterState, rules: dict[str, Any]) -> None:
        """A clean account (moto reset), the stack's resources, a new container's Runtime."""
        request = urllib.request.Request(f"{self.moto_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        self.resources = provision()
        for key, value in self.resources.environment().items():
            self.setenv(key, value)
        self.setenv("RULES_MAX_AGE", "0")  # rules change between steps
        self.setenv("SILENCES_MAX_AGE", "0")  # ... and so do the ad-hoc silences
        if self.fleet:
            for key, value in HUB_ENVIRONMENT.items():
                self.setenv(key, value)
            # moto's reset forgot the spoke role's session: its cached credentials would now map to moto's
            # default account (the home one). The spoke's sessions are made afresh (they assume the role again);
            # the process's own clients stay, with their hooks
            aws_clients.forget_located()
            self._actions_seen = 0
            put_decoy()
        self.runtime = Runtime.from_env()
        assert self.runtime.fleet.enabled == self.fleet, "harness: the hub's environment is not the runtime's"
        if self.grouped:
            work = self.sqs.create_queue(QueueName="hyperpod-guard-work")["QueueUrl"]
            self.flushes = LocalFlushQueue(SqsFlushQueue(work, aws_clients.client("sqs")))
            self.runtime.grouper = Grouper(GroupStore(self.runtime.ledger.table_name, self.runtime.ledger.dynamodb),
                                           self.flushes)
        assert self.runtime.publisher.sns is aws_clients.client("sns"), "the hooks must be on the runtime's clients"
        assert self.runtime.reader.sagemaker is aws_clients.client("sagemaker"), "the hooks must be on the runtime's clients"
        if self.slack is not None:
            self._slack_app_mode()
        if self.kube is not None:  # moto's reset forgot the EKS cluster
            self.kube.reset(self.where)
        self.calls.clear()
        self.accepted.clear()
        self.published = 0
        self._refuse_publish = 0
        self.serve(state)
        self.push_rules(rules)

    def _slack_app_mode(self) -> None:
        """The notifier in app mode, posting to a channel of its own for this timeline."""
        assert self.slack is not None
        self._resets += 1
        self.channel = f"C0MODEL{self._resets}"
        boto3.client("secretsmanager").create_secret(Name="hyperpod-guard/slack-bot-token", SecretString=TOKEN)
        for key, value in {"SLACK_MODE": "app", "SLACK_BOT_TOKEN_SECRET": "hyperpod-guard/slack-bot-token",
                           "SLACK_CHANNELS": json.dumps({"default": self.channel}), "SLACK_API_URL": self.slack.url,
                           "SLACK_MAX_ATTEMPTS": "4"}.items():
            self.setenv(key, value)
        self.slack.clear_faults()
        self.to_slack.clear()
        self.slack_retries.clear()
        self.slack_delivered.clear()

    def serve(self, state: ClusterState) -> None:
        put_cluster(state.describe_cluster(), region=state.where.region, account=state.where.account,
                    nodes=state.node_documents())

    def push_rules(self, rules: dict[str, Any]) -> None:
        assert self.resources is not None
        self.ssm.put_parameter(Name=f"{self.resources.rules_path}/00", Type="String", Value=json.dumps(rules),
                               Overwrite=True)

    def add_silence(self, matchers: dict[str, str], now: datetime, until: datetime, comment: str) -> str:
        """An ad-hoc silence, as `hyperpod-guard silence add` writes it; its id."""
        assert self.runtime is not None
        silence = new_silence(until=until, comment=comment, author="model", now=now, **matchers)
        SilenceStore(self.runtime.ledger.table_name, self.runtime.ledger.dynamodb).add(silence)
        return silence.id

    def acknowledge(self, fingerprint: str, node: str | None, first_seen: datetime, by: str, now: datetime,
                    until: datetime | None) -> Acknowledgement:
        """Someone clicks Acknowledge on the alert's message: what the Slack actions worker does in the ledger
        (and, in app mode, on the alert's Slack messages: see show_acknowledged)."""
        assert self.runtime is not None
        return self.runtime.ledger.acknowledge(self.key, fingerprint, node, first_seen, by, now, until)

    def show_acknowledged(self, fingerprint: str, first_seen: datetime, by: str, now: datetime,
                          until: datetime | None) -> str | None:
        """App mode: the actions worker updates the episode's parent messages; None, or why it could not."""
        from hyperpod_guard.notify.slack_app import SlackAppDeliveryError, app_api, mark_acknowledged
        from hyperpod_guard.notify.slack_threads import ThreadStore
        from hyperpod_guard.settings import SlackNotifierSettings

        assert self.runtime is not None
        threads = ThreadStore(self.runtime.ledger.dynamodb, self.runtime.ledger.table_name)
        try:
            api = app_api(SlackNotifierSettings.from_env().app, sleep=lambda _: None)
            mark_acknowledged(api, threads, self.key, fingerprint, first_seen, by, now, until)
        except SlackAppDeliveryError as exc:
            return f"the Slack update failed ({exc})"
        return None

    def parent_of(self, fingerprint: str) -> tuple[str, datetime | None] | None:
        """App mode: the ts of the parent message the alert's thread pointer names, and its episode's first seen."""
        from hyperpod_guard.notify.slack_threads import ThreadStore

        assert self.runtime is not None
        threads = ThreadStore(self.runtime.ledger.dynamodb, self.runtime.ledger.table_name)
        thread = threads.thread(self.key, fingerprint, "default")
        return (thread.ts, thread.first_seen) if thread else None

    def deliver_to_slack(self, *, again: tuple[str, dict[str, Any]] | None = None) -> list[SlackDelivery]:
        """App mode: the notifier's invocations since the last call: first the retries of those that raised,
        then each message SNS accepted, in order (`again`: SNS delivers this one once more)."""
        from hyperpod_guard.handlers import slack_notifier

        assert self.slack is not None
        retries, self.slack_retries = self.slack_retries, []
        fresh, self.to_slack = self.to_slack, []
        work = [(m, True) for m in retries] + [(m, False) for m in fresh] + ([(again, True)] if again else [])
        out: list[SlackDelivery] = []
        for (message_id, body), repeated in work:
            before = len(self.slack.calls)
            event = {"Records": [{"Sns": {"MessageId": message_id, "Message": json.dumps(body)}}]}
            failed: str | None = None
            try:
                slack_notifier.handler(event, LambdaContext(function_name="hyperpod-guard-slack-notifier"))
            except Exception as exc:  # noqa: BLE001 - what Lambda does: the invocation is retried
                failed = f"{type(exc).__name__}: {str(exc)[:100]}"
                self.slack_retries.append((message_id, body))
            else:
                self.slack_delivered.append((message_id, body))
            posts = [SlackPost(str(call.answer["ts"]), call.args.get("thread_ts") or None)
                     for call in self.slack.calls[before:] if call.method == "chat.postMessage" and call.ok]
            out.append(SlackDelivery(message_id, body, posts, failed, repeated))
        return out

    def expire_silence(self, silence_id: str, now: datetime) -> None:
        assert self.runtime is not None
        SilenceStore(self.runtime.ledger.table_name, self.runtime.ledger.dynamodb).expire(silence_id, now)

    # invocations ------------------------------------------------------------------------------------------

    def handle(self, raw: dict[str, Any], now: datetime) -> EventResult:
        assert self.runtime is not None
        return handle_event(copy.deepcopy(raw), self.runtime, now, new_token())

    def sweep(self, now: datetime) -> SweepResult:
        assert self.runtime is not None
        return sweep(self.runtime, now, new_token())

    def flush(self, message: FlushGroup, now: datetime) -> Outcome | None:
        """The worker handling one flush message of the work queue (grouping)."""
        assert self.runtime is not None
        return flush_group(self.runtime, message, now, new_token())

    def refuse_next_publish(self) -> None:
        with self._lock:
            self._refuse_publish = 1

    def heal(self) -> bool:
        """Stop refusing; True if a Publish was refused since refuse_next_publish()."""
        with self._lock:
            refused, self._refuse_publish = self._refuse_publish == 0, 0
        return refused

    # observations -----------------------------------------------------------------------------------------

    def take_messages(self) -> list[dict[str, Any]]:
        """Every message SNS accepted since the last call (its body), whichever cluster it is about."""
        with self._lock:
            bodies, self.accepted = self.accepted, []
        return bodies

    def take_sent(self, now: datetime) -> list[Sent]:
        """Items of every message SNS accepted since the last call."""
        return sent_items(self.take_messages(), now)

    def drain(self) -> list[dict[str, Any]]:
        """The message bodies the topic's SQS subscription received (removed from the queue)."""
        assert self.resources is not None
        bodies: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.resources.queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", []):
            for message in batch:
                bodies.append(message_body(json.loads(message["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def take_calls(self) -> list[Call]:
        """The remediation requests since the last call: those the hook answered, or (the fleet case) those the
        SageMaker stand-in answered in the spoke's account and region."""
        if self.fleet:
            actions = sagemaker_standin.node_actions(region=self.where.region, account=self.where.account)
            fresh, self._actions_seen = actions[self._actions_seen:], len(actions)
            return [Call(operation, tuple(NODE_NAMES.get(n, n) for n in nodes)) for operation, nodes in fresh]
        calls, self.calls = self.calls, []
        return calls

    def decoy_actions(self) -> list[tuple[str, tuple[str, ...]]]:
        """The fleet case: the node actions the stand-in answered at home, where the decoy lives."""
        return sagemaker_standin.node_actions(region=HOME.region, account=HOME.account)

    def ledger(self, key: str | None = None) -> dict[str, AlertRecord]:
        """The ledger's records of the model's cluster (or of the cluster of `key`)."""
        assert self.runtime is not None
        return self.runtime.ledger.load(key or self.key)

    # hooks --------------------------------------------------------------------------------------------------

    def _remediation_call(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params["body"])
        self.calls.append(Call(model.name, tuple(NODE_NAMES.get(n, n) for n in body["NodeIds"])))
        return AWSResponse(params["url"], 200, {}, None), {"Successful": body["NodeIds"], "Failed": [],
                                                           "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _publish(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params["body"]  # the query protocol's parameters (a dict until botocore url-encodes them)
        message = body["Message"] if isinstance(body, dict) else urllib.parse.parse_qs(body)["Message"][0]
        self._publishing.message = message_body(message)
        with self._lock:
            if not self._refuse_publish:
                return None
            self._refuse_publish -= 1
        error = {"Error": {"Code": "KMSDisabled", "Message": "the topic's key is disabled (injected)"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse(params["url"], 400, {}, None), error

    def _published(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        message, self._publishing.message = getattr(self._publishing, "message", None), None
        if message is not None and http_response.status_code < 300:
            with self._lock:
                self.accepted.append(message)
                self.published += 1
                if self.slack is not None:
                    self.to_slack.append((str(parsed["MessageId"]), message))
