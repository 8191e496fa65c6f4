"""`hyperpod-guard demo`: the whole pipeline on this machine, no AWS account.

moto in server mode on 127.0.0.1 stands in for DynamoDB, SNS, SQS, SSM and Secrets Manager
(HyperPod state is injected into it, see hyperpod_state.py; the HyperPod APIs moto lacks are answered by
sagemaker_standin.py); local HTTP servers stand in for the Slack webhooks and, for the ChatOps scenario
(Slack app mode), for Slack's Web API (slack_api_standin.py), whose button clicks are signed as Slack
signs them and sent to the interactivity endpoint's handler. For the unhealthy-node scenario a local
Kubernetes API (kube_standin.py, over TLS with its own CA) is the EKS control plane that moto's
eks:DescribeCluster names, so the alert says what runs on the node (issue 23). The resources are created
with the stack's names (provision.py). Scenario timelines replay events from events/ through the real Lambda
handlers (evaluator, sweep, worker, Slack notifier, and in app mode the interactivity endpoint and the
actions worker) on a simulated clock, and each scenario's expected outcome is checked. For the last
scenario the functions get a fleet hub's environment (fleet.py): clusters in a second moto account and
region are read through the spoke role (moto's STS AssumeRole).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from .. import aws_clients, clock, naming
from ..archive import ArchiveReader, open_episodes, with_open
from ..cli.common import EXIT_OK, EXIT_PROBLEMS, table
from ..cli.evaluate import evaluate_files
from ..cli.scenarios import default_events_dir, load_scenarios
from ..constants import ARCHIVE_BUCKET, WORK_QUEUE_URL
from ..errors import HyperPodGuardError
from ..events import IgnoredEvent
from ..fleet import (
    DEFAULT_SPOKE_ROLE,
    EVENT_ACCOUNTS,
    FLEET_REGIONS,
    HOME_ACCOUNT,
    SPOKE_EXTERNAL_ID,
    SPOKE_ROLE_NAME,
    Location,
    cluster_key,
    location_of,
)
from ..grouping import FlushGroup, GroupStore
from ..notify.buttons import ActionId
from ..reliability import ReliabilityReport, build_report, render_csv, render_html, render_json
from ..timeutil import isoformat
from . import moto_server, sagemaker_standin, slack_html
from .hyperpod_state import put_cluster
from .kube_standin import EKS_TOKEN, KubeStandin, self_signed, serve_as_eks
from .lambda_context import LambdaContext
from .provision import PREFIX, Resources, delivered, provision
from .slack_api_standin import TOKEN, Message, SlackApiStandIn
from .slack_clicks import block_actions, function_url_event
from .slack_sink import SlackSink

REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
#: the second Slack receiver (issue 18): critical alerts also page its on-call user group
ONCALL = "ml-oncall"
#: the third (issue 23): the team whose job runs on a sick node, paged by owner (the job's namespace)
TEAM_LLM = "team-llm"
#: every Slack receiver of the demo, each its own webhook, in the order their messages are shown
RECEIVERS = ("default", ONCALL, TEAM_LLM)
#: the unhealthy-node scenario's cluster is EKS-orchestrated: its EKS cluster, and what its Kubernetes API
#: answers (local/kube/: the sick node runs 6 of llama-70b-pretrain's 64 pods, auto-resume off, and 2 of
#: reward-model-eval's 4, auto-resume on)
NODE_CLUSTER = "demo-node"
NODE_EKS_CLUSTER = "demo-node-eks"
NODE_KUBE_FIXTURE = "demo-node.json"
#: the demo's rules: the defaults, plus a runbook and routing, so every receiver's view can be shown
DEMO_RULES: dict[str, Any] = {
    "version": 1,
    "policies": {"failed-rollback": {"runbook_url": "https://wiki.example.com/runbooks/hyperpod/failed-rollback"}},
    # a job in the namespace team-llm on the alert's node (routing by owner): the team-llm channel, and
    # (`continue`) the routes below;
    # critical: the on-call channel with its user group mentioned, and (`continue`) the team's channel too;
    # the rest: the team's channel (the default route)
    "routing": {"routes": [{"match": {"namespace": "team-llm"}, "receivers": [TEAM_LLM], "continue": True},
                           {"match": {"severity": ["critical"]}, "receivers": [ONCALL], "mention": "subteam^S0DEMO123",
                            "continue": True},
                           {"match": {"severity": ["critical"]}, "receivers": ["default"]}],
                "default": ["default"]},
    # the unhealthy-node scenario's node alerts say what runs on the node, or "workload unknown: why" (the first
    # read, with DescribeCluster, the TLS handshake and the imports, took 0.9s on a busy 2-core machine: 5s leaves
    # room, where 3s, the default, is plenty against a real API server)
    "workload": [{"match": {"cluster": NODE_CLUSTER}, "timeout": "5s"}],
    # the ChatOps scenario's cluster: replacing a failed node needs a person's approval from Slack
    # (and repeats every 30m, so that the scenario shows an acknowledged alert not repeating)
    "overrides": [{"match": {"cluster": "demo-chatops"}, "policies": {"unhealthy-node": {
        "repeat_interval": "30m",
        "remediation": {"enabled": True, "dry_run": False, "action": "replace", "approval": "required"}}}}],
    "chatops": {"approvers": ["U0DEMOLEAD"], "acknowledge_for": None},
}
# the week before (the reliability report): the batch cluster reboots a failed node by itself
DEMO_RULES["overrides"].append({"match": {"cluster": "fleet-batch"}, "policies": {"unhealthy-node": {
    "remediation": {"enabled": True, "dry_run": False, "action": "reboot"}}}})
#: Slack app mode (the ChatOps scenario): each receiver's channel, the app's signing secret, the people
APP_CHANNELS = {"default": "C0DEMOALERTS", ONCALL: "C0DEMOONCALL"}
SIGNING_SECRET = "demo-signing-secret-0123456789abcdef"  # noqa: S105 - the demo's own, on this machine only
TEAM = "T0DEMO"
PEOPLE = {"U0DEMOONCALL": "maya", "U0DEMOLEAD": "sam", "U0DEMOINTERN": "lee"}
#: the fleet (the "Many accounts" scenario): the hub is moto's account in REGION; a spoke account in another
#: region, and an account the hub does not list
HOME = Location(ACCOUNT, REGION)
SPOKE = Location("444455556666", "us-east-1")
UNLISTED = Location("999988887777", "us-east-1")
#: what a hub's stack sets on the functions (`-c spokeAccounts=444455556666 -c fleetRegions=us-west-2,us-east-1`)
HUB_ENVIRONMENT = {HOME_ACCOUNT: HOME.account, FLEET_REGIONS: f"{HOME.region},{SPOKE.region}",
                   EVENT_ACCOUNTS: f"{HOME.account},{SPOKE.account}", SPOKE_ROLE_NAME: DEFAULT_SPOKE_ROLE,
                   SPOKE_EXTERNAL_ID: PREFIX}


# --- the stage: moto, the Slack sink, the resources, the handlers --------------------------


class Stage:
    """Everything the scenarios run against, plus the record of what happened."""

    def __init__(self, output: Path) -> None:
        self.server, url = moto_server.start()
        os.environ.update({**moto_server.environment(url, REGION),
                           "POWERTOOLS_LOG_LEVEL": "INFO", "SLACK_MAX_ATTEMPTS": "2"})
        os.environ.pop("AWS_PROFILE", None)
        self.sinks = {receiver: SlackSink() for receiver in RECEIVERS}  # each receiver's webhook
        for sink in self.sinks.values():
            sink.start()
        self.sink = self.sinks["default"]  # the outage scenario scripts it
        self.resources: Resources = provision(slack_webhook_url=self.sink.url, rules=DEMO_RULES,
                                              receivers={r: sink.url for r, sink in self.sinks.items()
                                                         if r != "default"})
        # the unhealthy-node cluster's EKS control plane: its Kubernetes API (https, its own CA; it refuses a
        # token not made as `aws eks get-token` makes one), the endpoint moto's eks:DescribeCluster gives
        tls, ca_data = self_signed()
        self.kube = KubeStandin(NODE_KUBE_FIXTURE, token=EKS_TOKEN, tls=tls)
        self.kube.start()
        self.eks_arn = serve_as_eks(self.kube.url, ca_data, name=NODE_EKS_CLUSTER, account=ACCOUNT, region=REGION)
        # the work queue, as deployed: the sweep fans out to the worker, and messages are grouped (grouping.py)
        sqs = aws_clients.client("sqs")
        self.work_url = sqs.create_queue(QueueName=f"{PREFIX}-work")["QueueUrl"]
        self.work_arn = sqs.get_queue_attributes(QueueUrl=self.work_url,
                                                 AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # the episode archive, as deployed (archive.py): every episode that resolves is kept in S3
        self.archive_bucket = naming.archive_bucket_name(PREFIX, ACCOUNT, REGION)
        aws_clients.client("s3").create_bucket(Bucket=self.archive_bucket,
                                               CreateBucketConfiguration={"LocationConstraint": REGION})
        os.environ[ARCHIVE_BUCKET.name] = self.archive_bucket
        # Slack app mode (the ChatOps scenario): the Web API stand-in, the app's secrets, the actions queue
        self.app_slack = SlackApiStandIn().start()
        secrets = aws_clients.client("secretsmanager")
        secrets.create_secret(Name=naming.slack_bot_token_secret_name(PREFIX), SecretString=TOKEN)
        secrets.create_secret(Name=naming.slack_signing_secret_name(PREFIX), SecretString=SIGNING_SECRET)
        self.actions_url = sqs.create_queue(QueueName=f"{PREFIX}-slack-actions")["QueueUrl"]
        self.clicks = 0
        os.environ.update({**self.resources.environment(), WORK_QUEUE_URL.name: self.work_url})
        aws_clients.reset()
        self.now = START
        clock.use(lambda: self.now)
        # after the environment is set
        from ..handlers import evaluator, slack_actions, slack_interactivity, slack_notifier, sweep, worker

        self.evaluator, self.sweep, self.notifier, self.worker = evaluator, sweep, slack_notifier, worker
        self.interactivity, self.actions = slack_interactivity, slack_actions
        # what each Publish asked SNS to deliver per protocol: email subscribers get "email", Chatbot "https"
        self.published: list[dict[str, Any]] = []
        aws_clients.client("sns").meta.events.register("before-call.sns.Publish", self._publishing)
        # what the functions log (JSON lines) and their EMF metrics go to a file, as CloudWatch would keep them
        output.mkdir(parents=True, exist_ok=True)
        self.lambda_log = (output / "lambda-logs.jsonl").open("w")
        for module in (evaluator, sweep, slack_notifier, worker, slack_interactivity, slack_actions):
            module.logger.registered_handler.setStream(self.lambda_log)
        # and what the modules log with the standard library (the workload reader's "workload unknown for ..."),
        # which Lambda's own handler would keep: there too, as JSON, not on the terminal
        self.library_log = logging.StreamHandler(self.lambda_log)
        self.library_log.setFormatter(LambdaPowertoolsFormatter(service=PREFIX))
        logging.getLogger("hyperpod_guard").addHandler(self.library_log)
        self.lines: list[str] = []
        self.muted = False  # log() records nothing while set
        self.sns: list[dict[str, Any]] = []     # every SNS message, in order
        self.slack: list[dict[str, Any]] = []   # every Slack payload delivered (HTTP 200), in order, per receiver
        self.retry_queue: list[dict[str, Any]] = []  # notifier invocations that failed (Lambda retries them)
        self.clusters: set[str] = set()  # whose grouped messages may come due (_next_flush)
        self.swept: list[str] = []  # the cluster keys the last sweep handed to the worker

    def close(self) -> None:
        logging.getLogger("hyperpod_guard").removeHandler(self.library_log)
        self.lambda_log.close()
        clock.use(None)
        for sink in self.sinks.values():
            sink.stop()
        self.kube.stop()
        self.app_slack.stop()
        self.server.stop()

    def _publishing(self, params: dict[str, Any], **_: Any) -> None:
        body = params["body"]  # the query protocol's parameters, before botocore encodes them
        structured = json.loads(body["Message"]) if body.get("MessageStructure") == "json" else {}
        default = json.loads(structured.get("default") or body["Message"])
        self.published.append({"at": isoformat(self.now), "cluster": default.get("cluster"),
                               "subject": body.get("Subject"), "email": structured.get("email"),
                               "chatbot": json.loads(structured["https"]) if "https" in structured else None})

    def at(self, minutes: float) -> None:
        """The clock moves on; every grouped message that comes due meanwhile goes out at its time."""
        until = START + timedelta(minutes=minutes)
        while (due := self._next_flush()) is not None and due[0] <= until:
            self.now = max(self.now, due[0])
            self._work(FlushGroup(cluster=due[1], flush_id=due[2]), f"flush  grouped message of {due[1]}")
        self.now = until

    def settle(self) -> None:
        """A scenario is over: its grouped messages still due (within group_wait + group_interval) go out."""
        limit = self.now + timedelta(minutes=6)
        while (due := self._next_flush()) is not None and due[0] <= limit:
            self.now = max(self.now, due[0])
            self._work(FlushGroup(cluster=due[1], flush_id=due[2]), f"flush  grouped message of {due[1]}")

    def _next_flush(self) -> tuple[datetime, str, str] | None:
        """The soonest flush due (the clusters' GROUP items, grouping.py): its time, cluster and id. The
        work queue holds its message back for real seconds; the demo's clock is its own."""
        groups = GroupStore(self.resources.table_name, aws_clients.client("dynamodb"))
        due = [(state.flush_at, cluster, state.flush_id) for cluster in sorted(self.clusters)
               if (state := groups.get(cluster)).flush_at and state.flush_id]
        return min(((at, cluster, flush_id) for at, cluster, flush_id in due if at and flush_id), default=None)

    def _work(self, message: FlushGroup | None, label: str) -> None:
        """The worker, as its SQS event source invokes it: `message`, or whatever the work queue holds now
        (the sweep's clusters)."""
        sqs = aws_clients.client("sqs")
        while True:
            if message is not None:
                batch = [{"MessageId": f"demo-{time.monotonic_ns()}", "ReceiptHandle": "demo",
                          "Body": message.model_dump_json(), "MD5OfBody": ""}]
            else:
                batch = sqs.receive_message(QueueUrl=self.work_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return
            records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                        "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs", "eventSourceARN": self.work_arn, "awsRegion": REGION}
                       for m in batch]
            with contextlib.redirect_stdout(self.lambda_log):
                self.worker.handler({"Records": records}, LambdaContext(function_name="hyperpod-guard-worker"))
            if message is not None:
                cluster = message.cluster
                self.log(cluster, label, self.explain(cluster))
                self.deliver()
                return
            for m in batch:
                self.swept.append(json.loads(m["Body"]).get("cluster", "?"))
                sqs.delete_message(QueueUrl=self.work_url, ReceiptHandle=m["ReceiptHandle"])

    def log(self, cluster: str, what: str, detail: str = "") -> None:
        if self.muted:
            return
        elapsed = (self.now - START).total_seconds()
        stamp = f"T+{int(elapsed // 3600):02d}:{int(elapsed % 3600 // 60):02d}"
        self.lines.append(f"{stamp}  {cluster:<16} {what}" + (f"\n{'':24}{detail}" if detail else ""))
        print(self.lines[-1])

    # the three functions, invoked as Lambda would

    def event(self, raw: dict[str, Any], label: str) -> dict[str, Any]:
        raw = {**raw, "id": f"demo-{time.monotonic_ns()}", "time": isoformat(self.now)}
        with contextlib.redirect_stdout(self.lambda_log):
            result = self.evaluator.handler(raw, LambdaContext())
        detail = raw.get("detail", {})
        name = detail.get("ClusterName") or detail.get("EventDetails", {}).get("ClusterName", "?")
        cluster = result.get("cluster") or name  # its key: qualified when a hub evaluates a spoke's cluster
        self.clusters.add(cluster)
        if not self.muted:
            self.log(cluster, f"event  {label}",
                     f"ignored: {result['ignored']}" if "ignored" in result else self.explain(cluster))
        self.deliver()
        return result

    def run_sweep(self, cluster_filter: str) -> None:
        self.clusters.add(cluster_filter)
        self.swept = []
        with contextlib.redirect_stdout(self.lambda_log):
            self.sweep.handler({}, LambdaContext(function_name="hyperpod-guard-sweep"))
        self._work(None, "worker")  # one message per cluster: the worker evaluates each
        self.log(cluster_filter, "sweep  (every cluster re-read)", self.explain(cluster_filter))
        self.deliver()

    def explain(self, cluster: str) -> str:
        """The ledger's decisions for the cluster, in words."""
        from ..ledger_store import LedgerStore

        store = LedgerStore(self.resources.table_name, aws_clients.client("dynamodb"))
        records = sorted(store.load(cluster).values(), key=lambda r: (r.policy, r.condition))
        return "\n".join(f"{'':24}{r.policy}/{r.condition} {r.instance_group or r.node or ''}: "
                         f"{r.state.value} — {r.reason}" for r in records).strip()

    def reliability(self, days: int = 7, cluster_glob: str = "*") -> ReliabilityReport:
        """The reliability report of the last `days` days, as `hyperpod-guard report --cluster GLOB` makes it:
        the archive and the ledger's firing alerts."""
        from ..ledger_store import LedgerStore

        start = self.now - timedelta(days=days)
        reader = ArchiveReader(aws_clients.client("s3"), self.archive_bucket)
        archived = list(reader.episodes(start.date(), self.now.date(), cluster_glob=cluster_glob))
        repairs = list(reader.repairs(start.date(), self.now.date(), cluster_glob=cluster_glob))
        records = LedgerStore(self.resources.table_name, aws_clients.client("dynamodb")).open_alerts(cluster_glob)
        still_open = open_episodes(records, now=self.now, account=ACCOUNT, region=REGION)
        return build_report(with_open(archived, still_open), repairs, start=start, end=self.now, now=self.now)

    # a hub (the "Many accounts" scenario)

    @contextlib.contextmanager
    def hub(self, environment: Mapping[str, str] = HUB_ENVIRONMENT) -> Iterator[None]:
        """Meanwhile the functions run as a fleet's hub: the environment its stack sets, and the runtime each
        handler builds rebuilt from it; afterwards the single-account environment and runtimes again."""
        before = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        self._rebuild_runtimes()
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._rebuild_runtimes()

    def _rebuild_runtimes(self) -> None:
        """The handlers that read clusters build their Runtime (and its FleetSettings) once per container: a
        new deployment's environment is a new container."""
        for module in (self.evaluator, self.sweep, self.worker):
            module.runtime.cache_clear()

    # Slack app mode (the ChatOps scenario)

    def app_mode(self) -> None:
        """The notifier posts as a Slack app from now on (`-c slackMode=app`), and the endpoint takes clicks."""
        os.environ.update({
            "SLACK_MODE": "app", "SLACK_BOT_TOKEN_SECRET": naming.slack_bot_token_secret_name(PREFIX),
            "SLACK_CHANNELS": json.dumps(APP_CHANNELS), "SLACK_API_URL": self.app_slack.url,
            "SLACK_SIGNING_SECRET_SECRET": naming.slack_signing_secret_name(PREFIX),
            "SLACK_ACTIONS_QUEUE_URL": self.actions_url,
        })

    def webhook_mode(self) -> None:
        """The notifier posts to the receivers' webhooks again (the default `slackMode`)."""
        for name in ("SLACK_MODE", "SLACK_BOT_TOKEN_SECRET", "SLACK_CHANNELS", "SLACK_API_URL",
                     "SLACK_SIGNING_SECRET_SECRET", "SLACK_ACTIONS_QUEUE_URL"):
            os.environ.pop(name, None)

    def click(self, cluster: str, action: ActionId, user: str, message: Message, channel: str) -> None:
        """`user` clicks a button of `message`: Slack's signed POST to the interactivity endpoint, then the
        actions worker (its queue), then the worker (an approval re-evaluates the cluster) and the notifier."""
        self.clicks += 1
        (value,) = [e["value"] for block in message.blocks if block.get("type") == "actions"
                    for e in block.get("elements", ()) if e.get("action_id") == action]
        body = block_actions(action_id=action, value=value, user=user, user_name=PEOPLE[user], team=TEAM,
                             channel=channel, message_ts=message.ts, message_text=message.text,
                             action_ts=f"{self.now.timestamp():.0f}.{self.clicks:06d}",
                             trigger_id=f"{self.clicks}.1.demo")
        event = function_url_event(body, signing_secret=SIGNING_SECRET, timestamp=int(self.now.timestamp()))
        with contextlib.redirect_stdout(self.lambda_log):
            answer = self.interactivity.handler(event,
                                                LambdaContext(function_name="hyperpod-guard-slack-interactivity"))
        self.log(cluster, f"click  {PEOPLE[user]} ({user}) clicks {action.value} in {channel}: "
                          f"the endpoint answers {answer['statusCode']}")
        sqs = aws_clients.client("sqs")
        while batch := sqs.receive_message(QueueUrl=self.actions_url, MaxNumberOfMessages=10).get("Messages", []):
            records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                        "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:"
                        f"{PREFIX}-slack-actions", "awsRegion": REGION} for m in batch]
            with contextlib.redirect_stdout(self.lambda_log):
                self.actions.handler({"Records": records}, LambdaContext(function_name="hyperpod-guard-slack-actions"))
            for m in batch:
                sqs.delete_message(QueueUrl=self.actions_url, ReceiptHandle=m["ReceiptHandle"])
        self._work(None, "worker")  # an approval's evaluate-cluster
        self.log(cluster, "Slack  the actions worker carried the click out", self.explain(cluster))
        self.deliver()

    def deliver(self) -> None:
        """SNS -> the Slack notifier (and its Lambda retries of earlier failures)."""
        pending, self.retry_queue = self.retry_queue, []
        for message in delivered(self.resources):
            body = message["message"]
            self.sns.append({"at": isoformat(self.now), **message})
            self.log(body["cluster"], f"SNS    {message['subject']}",
                     f"attributes {json.dumps(message['attributes'])}")
            pending.append(message)
        for message in pending:
            self._notify(message)

    def _notify(self, message: dict[str, Any]) -> None:
        before = {receiver: len(sink.requests) for receiver, sink in self.sinks.items()}
        failed: Exception | None = None
        try:
            with contextlib.redirect_stdout(self.lambda_log):
                self.notifier.handler(message["sns_event"],
                                      LambdaContext(function_name="hyperpod-guard-slack-notifier"))
        except Exception as exc:  # noqa: BLE001 - what Lambda does: retry later, then the DLQ
            failed = exc
        for receiver, sink in self.sinks.items():
            for request in sink.requests[before[receiver]:]:
                if 200 <= request.status < 300:  # posted (a receiver that failed is retried with the message)
                    self.slack.append({"at": isoformat(self.now), "cluster": message["message"]["cluster"],
                                       "receiver": receiver,
                                       "sns_message_id": message["sns_event"]["Records"][0]["Sns"]["MessageId"],
                                       "payload": request.json})
        if failed is not None:
            self.retry_queue.append(message)
            self.log(message["message"]["cluster"], "Slack  delivery failed: Lambda will retry",
                     f"{type(failed).__name__}: {str(failed)[:120]}")
            return
        self.log(message["message"]["cluster"], "Slack  delivered")


# --- scenarios ------------------------------------------------------------------------------------


def load(scenario: str, cluster: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scenario's event and snapshot from events/, moved to a cluster of its own."""
    folder = default_events_dir() / scenario
    event = json.loads((folder / "event.json").read_text())
    snapshot_path = folder / "snapshot.json"
    snapshot = json.loads(snapshot_path.read_text()) if snapshot_path.exists() else copy.deepcopy(event["detail"])
    old = snapshot["ClusterName"]

    def retarget(doc: Any) -> Any:
        return json.loads(json.dumps(doc).replace(old, cluster))

    return retarget(event), retarget(snapshot)


def serve(snapshot: dict[str, Any], where: Location = HOME) -> None:
    put_cluster(snapshot, region=where.region, account=where.account, nodes=snapshot.get("Nodes"))


_CLUSTER_ARN = re.compile(r"arn:aws:sagemaker:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9-]+")


def placed(event: dict[str, Any], snapshot: dict[str, Any], where: Location) -> tuple[dict[str, Any], dict[str, Any]]:
    """load()'s event and snapshot about a cluster at `where`: the event from that account and region, naming
    the ARN hyperpod_state gives the cluster there (the snapshot leaves its ARN to it)."""
    arn = f"arn:aws:sagemaker:{where.region}:{where.account}:cluster/{snapshot['ClusterName']}"
    moved = json.loads(_CLUSTER_ARN.sub(arn, json.dumps(event)))
    moved.update(account=where.account, region=where.region, resources=[arn])
    return moved, {k: v for k, v in snapshot.items() if k != "ClusterArn"}


@dataclass
class Scenario:
    name: str
    cluster: str
    story: str
    run: Callable[[Stage, Scenario], None]
    check: Callable[[Stage, Scenario], list[str]]
    problems: list[str] = field(default_factory=list)

    def sns(self, stage: Stage) -> list[dict[str, Any]]:
        return [m for m in stage.sns if fnmatchcase(m["message"]["cluster"], self.cluster)]

    def slack(self, stage: Stage, receiver: str = "default") -> list[dict[str, Any]]:
        return [m for m in stage.slack if fnmatchcase(m["cluster"], self.cluster) and m["receiver"] == receiver]


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message"]["status"] for m in messages]


def expect(condition: bool, problem: str) -> list[str]:
    return [] if condition else [problem]


def degraded_recovers(stage: Stage, s: Scenario) -> None:
    event, snapshot = load("degraded-group-capacity-event", s.cluster)
    serve(snapshot)
    stage.at(0)
    stage.event(event, "Cluster Event: instance group Degraded (capacity)")
    stage.at(6)
    stage.run_sweep(s.cluster)
    stage.at(45)
    for group in snapshot["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group.get("TargetCount", group.get("CurrentCount")))
    serve(snapshot)
    stage.run_sweep(s.cluster)


def check_degraded(stage: Stage, s: Scenario) -> list[str]:
    now = [(i.get("resolved_evidence") or {}).get("summary", "") for m in s.sns(stage) for i in m["message"]["items"]
           if i["reason"] == "resolved"]
    return expect(statuses(s.sns(stage)) == ["firing", "resolved"],
                  f"SNS statuses {statuses(s.sns(stage))}, expected firing then resolved") + \
        expect(len(s.slack(stage)) == 2, f"{len(s.slack(stage))} Slack messages, expected 2") + \
        expect(len(now) == 1 and "back to InService" in now[0],
               f"the resolved message should say what is true now (back to InService), said {now}")


def drift_persists(stage: Stage, s: Scenario) -> None:
    _, snapshot = load("taint-drift-current-vs-desired", s.cluster)
    serve(snapshot)
    stage.at(60)
    stage.run_sweep(s.cluster)
    stage.at(70)
    stage.run_sweep(s.cluster)
    stage.at(76)
    stage.run_sweep(s.cluster)


def check_drift(stage: Stage, s: Scenario) -> list[str]:
    sent = s.sns(stage)
    due = START + timedelta(minutes=76, seconds=30)  # the sweep at T+01:16 fires it; grouped, it waits group_wait
    return expect(len(sent) == 1 and sent[0]["at"] == isoformat(due),
                  f"expected one message at T+01:16:30 (the 15m grace, then group_wait 30s), got "
                  f"{[m['at'] for m in sent]}")


def failed_rollback(stage: Stage, s: Scenario) -> None:
    event, snapshot = load("rollback-failed-cluster-event", s.cluster)
    serve(snapshot)
    stage.at(90)
    stage.event(event, "Cluster Event: Rollback failed for IG ...")


def check_rollback(stage: Stage, s: Scenario) -> list[str]:
    sent = s.sns(stage)
    paged = [json.dumps(m["payload"]) for m in s.slack(stage, ONCALL)]
    return expect(len(sent) == 1 and sent[0]["attributes"]["severity"] == "critical",
                  f"expected one critical message, got {[m['attributes'] for m in sent]}") + \
        expect(len(paged) == 1 and "<!subteam^S0DEMO123>" in paged[0] and DEMO_RULES["policies"]["failed-rollback"]
               ["runbook_url"] in paged[0], f"expected the {ONCALL} receiver paged once, with its user group "
               f"mentioned and the runbook linked; got {len(paged)} message(s)")


def running_nodes(*instance_ids: str) -> list[dict[str, Any]]:
    """Nodes of the group p5-train, running (DescribeClusterNode finds them)."""
    return [{"InstanceId": node, "InstanceGroupName": "p5-train", "InstanceType": "ml.p5.48xlarge",
             "InstanceStatus": {"Status": "Running"}} for node in instance_ids]


def load_node_event(scenario: str, cluster: str) -> dict[str, Any]:
    """A Node Health scenario, served with its node running."""
    event, snapshot = load(scenario, cluster)
    snapshot["Nodes"] = running_nodes(event["detail"]["InstanceId"])
    serve(snapshot)
    return event


#: the unhealthy-node scenario's sick node (events/unhealthy-node-no-repair), `hyperpod-<it>` in Kubernetes
#: (local/kube/demo-node.json), and the job of team-llm that runs on it
SICK_NODE = "i-0f1e2d3c4b5a69788"
LLAMA = "llama-70b-pretrain"
#: a second node of the cluster that goes Unhealthy while the Kubernetes API refuses
SECOND_NODE = "i-0f1e2d3c4b5a6979b"


def unhealthy_node(stage: Stage, s: Scenario) -> None:
    """The cluster is EKS-orchestrated (its Orchestrator.Eks.ClusterArn: the stand-in's EKS cluster): the alert
    says what runs on the node and, routed by owner, pages team-llm too. Then the Kubernetes API refuses (403,
    as when the view access entry is removed): the next node's alert goes out all the same, saying why its
    workload is unknown, to the receivers that do not depend on it."""
    event, snapshot = load("unhealthy-node-no-repair", s.cluster)
    snapshot["Orchestrator"] = {"Eks": {"ClusterArn": stage.eks_arn}}
    snapshot["Nodes"] = running_nodes(SICK_NODE, SECOND_NODE)
    serve(snapshot)
    stage.at(120)
    stage.event(event, "Node Health Event: Unhealthy, RepairAction None (EKS: the workload is read)")
    stage.at(125)
    stage.kube.status = 403
    stage.log(s.cluster, "EKS    the Kubernetes API answers 403 from now on (the view access entry is removed)")
    try:
        stage.event(node_report(event, SECOND_NODE), f"Node Health Event: {SECOND_NODE} Unhealthy too")
        stage.settle()  # its message (grouped or not) goes out while the API refuses
    finally:
        stage.kube.status = None


def check_node(stage: Stage, s: Scenario) -> list[str]:
    sent = s.sns(stage)
    items = [i for m in sent for i in m["message"]["items"]]
    by_node = {i["finding"]["node"]: i for i in items}
    read, refused = ((by_node.get(node) or {}).get("workload") or {} for node in (SICK_NODE, SECOND_NODE))
    llama: dict[str, Any] = next((j for j in read.get("jobs", ()) if j["name"] == LLAMA), {})
    receivers = {node: [r["name"] for r in item.get("receivers", ())] for node, item in by_node.items()}
    paged = [json.dumps(m["payload"], ensure_ascii=False) for m in s.slack(stage, TEAM_LLM)]
    refused_401 = [r.target for r in stage.kube.requests if r.status == 401]
    return (expect(len(sent) == 2 and [i["finding"]["severity"] for i in items] == ["critical", "critical"],
                   f"expected two critical unhealthy-node messages, got {len(sent)} with {len(items)} items")
            + expect(read.get("unknown") is None and read.get("node") == f"hyperpod-{SICK_NODE}"
                     and [llama.get(k) for k in ("kind", "namespace", "on_node", "total", "auto_resume")]
                     == ["PyTorchJob", "team-llm", 6, 64, False],
                     f"expected the first alert to say 6 of {LLAMA}'s 64 pods run on the node, auto-resume off; "
                     f"its workload: {read}")
            + expect(receivers.get(SICK_NODE) == [TEAM_LLM, ONCALL, "default"],
                     f"expected the first alert routed by owner to {TEAM_LLM}, then {ONCALL} and default; got "
                     f"{receivers.get(SICK_NODE)}")
            + expect(len(paged) == 1 and "Workload" in paged[0] and LLAMA in paged[0]
                     and "auto-resume is off" in paged[0],
                     f"expected one message to {TEAM_LLM} with the Workload section naming {LLAMA} and saying "
                     f"auto-resume is off; got {len(paged)}")
            + expect(str(refused.get("unknown", "")).startswith("forbidden")
                     and receivers.get(SECOND_NODE) == [ONCALL, "default"],
                     f"expected the alert during the 403 sent to {ONCALL} and default, its workload unknown: "
                     f"forbidden; got {receivers.get(SECOND_NODE)}, {refused}")
            + expect(bool(stage.kube.requests) and not refused_401,
                     f"the Kubernetes API was not read, or refused the EKS token: {refused_401}"))


STORM = 500


def duplicate_storm(stage: Stage, s: Scenario) -> None:
    event = load_node_event("unhealthy-node-auto-replace", s.cluster)
    stage.at(150)
    stage.muted = True
    try:
        for _ in range(STORM):
            stage.event(event, "duplicate")
    finally:
        stage.muted = False
    stage.log(s.cluster, f"event  the same Node Health Event delivered {STORM} times (each with its own id)",
              stage.explain(s.cluster))


def check_storm(stage: Stage, s: Scenario) -> list[str]:
    return expect(len(s.sns(stage)) == 1 and len(s.slack(stage)) == 1,
                  f"{STORM} duplicates gave {len(s.sns(stage))} SNS / {len(s.slack(stage))} Slack messages, expected 1")


#: enough to show grouping (`make bench` storms 500 nodes: storm_messages); each event is a real evaluation
NODE_STORM = 200


def node_storm(stage: Stage, s: Scenario) -> None:
    """500 different nodes of one cluster reported unhealthy within 2 minutes (a rack's power, a bad
    driver rollout): grouped, the on-call gets a couple of messages naming every node, not 500 pages."""
    event, snapshot = load("unhealthy-node-no-repair", s.cluster)
    template = snapshot["Nodes"][0]
    snapshot["Nodes"] = [{**template, "InstanceId": f"i-0{index:016x}", "KubernetesConfig": {}}
                         for index in range(NODE_STORM)]
    serve(snapshot)
    stage.at(220)
    stage.muted = True
    try:
        for index, node in enumerate(snapshot["Nodes"]):
            stage.at(220 + 2 * index / NODE_STORM)
            stage.event({**event, "detail": {**event["detail"], "InstanceId": node["InstanceId"]}}, "node storm")
    finally:
        stage.muted = False
    stage.log(s.cluster, f"event  {NODE_STORM} Node Health Events (Unhealthy), each about another node, within 2 "
              "minutes", f"{'':24}grouped: group_wait 30s, then at most one message per group_interval 5m")
    stage.at(230)


def check_node_storm(stage: Stage, s: Scenario) -> list[str]:
    sent = s.sns(stage)
    named = {i["finding"]["node"] for m in sent for i in m["message"]["items"]}
    return expect(1 <= len(sent) <= 3 and len(named) == NODE_STORM,
                  f"{NODE_STORM} unhealthy nodes gave {len(sent)} messages naming {len(named)} nodes; "
                  "expected at most 3 naming every node")


def slack_outage(stage: Stage, s: Scenario) -> None:
    event, snapshot = load("degraded-group-failed", s.cluster)
    serve(snapshot)
    stage.at(180)
    stage.sink.respond(503, "service unavailable", times=1000)
    stage.log(s.cluster, "Slack  OUTAGE begins (the webhook answers 503)")
    stage.event(event, "State Change: instance group Failed")
    stage.at(186)
    stage.run_sweep(s.cluster)  # fires: the notifier fails, Lambda keeps the message for a retry
    stage.at(190)
    stage.deliver()  # Lambda's retry, still during the outage
    with stage.sink._lock:  # noqa: SLF001 - the demo scripts the sink
        stage.sink._script.clear()  # noqa: SLF001
    stage.at(200)
    stage.log(s.cluster, "Slack  outage over")
    stage.deliver()  # the next retry gets through


def check_outage(stage: Stage, s: Scenario) -> list[str]:
    ids = [m["sns_message_id"] for m in s.slack(stage)]
    after_recovery = isoformat(START + timedelta(minutes=200))
    return expect(len(s.sns(stage)) == 1 and len(ids) == 1 and s.slack(stage)[0]["at"] >= after_recovery,
                  f"expected the one alert delivered once after recovery, got {len(ids)} deliveries")


#: the week before the other scenarios (minutes from START): the reliability report's history
WEEK = -6 * 24 * 60 - 12 * 60
DAY = 24 * 60


def node_report(event: dict[str, Any], node: str, *, healthy: bool = False) -> dict[str, Any]:
    """`event` (a Node Health Event) about `node`, Unhealthy as it is or Healthy."""
    detail = {**event["detail"], "InstanceId": node}
    if healthy:
        detail["HealthSummary"] = {"HealthStatus": "Healthy", "RepairAction": "None", "Recommendation": "",
                                   "HealthStatusReason": "HyperPod Health Monitoring Agent (HMA) has not detected "
                                                         "any fault on this node."}
    return {**event, "detail": detail}


def fleet_week(stage: Stage, s: Scenario) -> None:
    """A week of three clusters before the other scenarios, through the real handlers: what the archive
    keeps and the reliability report (report.html) sums up. fleet-train: node i-…a1 unhealthy three times
    (a repeat offender, each time a person fixed it), node i-…b2 replaced by HyperPod's own repair;
    fleet-infer: a group short of capacity for five hours; fleet-batch: a failed node rebooted by our
    remediation."""
    unhealthy, train = load("unhealthy-node-no-repair", "fleet-train")
    replaced, _ = load("unhealthy-node-auto-replace", "fleet-train")
    a1, b2 = "i-0a1a1a1a1a1a1a1a1", "i-0b2b2b2b2b2b2b2b2"
    train["Nodes"] = [{"InstanceId": n, "InstanceGroupName": "p5-train", "InstanceType": "ml.p5.48xlarge",
                       "InstanceStatus": {"Status": "Running"}} for n in (a1, b2)]
    serve(train)
    for day, hours in ((0, 1.0), (2, 3.0), (4, 1.5)):  # a1: three incidents, each fixed by a person
        stage.at(WEEK + day * DAY + 120)
        stage.event(node_report(unhealthy, a1), f"Node Health Event: {a1} Unhealthy (day {day})")
        stage.at(WEEK + day * DAY + 120 + hours * 60)
        stage.event(node_report(unhealthy, a1, healthy=True), f"Node Health Event: {a1} Healthy again")
    stage.at(WEEK + DAY + 300)  # b2: HyperPod replaces it by itself (NodeRecovery Automatic)
    stage.event(node_report(replaced, b2), f"Node Health Event: {b2} Unhealthy, RepairAction Replace")
    stage.at(WEEK + DAY + 340)
    stage.event(node_report(replaced, b2, healthy=True), f"Node Health Event: {b2} Healthy (replaced)")

    capacity, infer = load("degraded-group-capacity-event", "fleet-infer")
    (gpu, *_) = infer["InstanceGroups"]  # a quarter of its nodes missing: short of its target
    gpu["CurrentCount"] = gpu["TargetCount"] * 3 // 4
    serve(infer)
    stage.at(WEEK + 3 * DAY)
    stage.event(capacity, "Cluster Event: instance group Degraded (capacity)")
    stage.at(WEEK + 3 * DAY + 6)
    stage.run_sweep("fleet-infer")
    for group in infer["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group.get("TargetCount", group.get("CurrentCount")))
    stage.at(WEEK + 3 * DAY + 300)
    serve(infer)
    stage.run_sweep("fleet-infer")

    _, batch = load("node-failure-recovery-none", "fleet-batch")
    serve(batch)
    stage.at(WEEK + 5 * DAY)
    stage.run_sweep("fleet-batch")  # a node in Failure: our remediation reboots it
    for node in batch["Nodes"]:
        node["InstanceStatus"] = {"Status": "Running"}
    stage.at(WEEK + 5 * DAY + 60)
    serve(batch)
    stage.run_sweep("fleet-batch")


def check_week(stage: Stage, s: Scenario) -> list[str]:
    report = stage.reliability(cluster_glob=s.cluster)
    train = next((c for c in report.clusters if c.name == "fleet-train"), None)
    causes = {cause for c in report.clusters for cause, m in c.figures.mttr.items() if m.count and cause != "all"}
    return (expect(report.fleet.incidents >= 6, f"expected at least 6 incidents, got {report.fleet.incidents}")
            + expect(train is not None and [o.node for o in report.repeat_offenders] == ["i-0a1a1a1a1a1a1a1a1"],
                     f"expected i-…a1 the one repeat offender, got {[o.node for o in report.repeat_offenders]}")
            + expect(causes == {"hyperpod-repair", "remediation", "other"},
                     f"expected MTTR for HyperPod's repair, our remediation and a person, got {sorted(causes)}")
            + expect(report.fleet.group_hours_below_target >= 4.9,
                     f"expected ~5 group-hours below target, got {report.fleet.group_hours_below_target}"))


def parent_in(stage: Stage, channel: str, cluster: str) -> Message | None:
    """The alert's parent message in `channel` (app mode): the first top-level message about `cluster`."""
    return next((m for m in stage.app_slack.messages(channel, deleted=True) if cluster in json.dumps(m.blocks)), None)


def chatops(stage: Stage, s: Scenario) -> None:
    """Slack app mode: a threaded alert acknowledged from Slack, and a node replacement approved there."""
    stage.app_mode()
    stage.log(s.cluster, "Slack  app mode from here on: a bot token, threads, buttons (-c slackMode=app)")
    _, snapshot = load("node-failure-recovery-none", s.cluster)
    serve(snapshot)
    stage.at(240)
    stage.run_sweep(s.cluster)  # the node in Failure: critical, and its replacement awaits approval
    channel = APP_CHANNELS[ONCALL]
    parent = parent_in(stage, channel, s.cluster)
    if parent is None:
        stage.log(s.cluster, "Slack  no parent message in the on-call channel: nothing to click")
        return
    stage.at(242)
    stage.click(s.cluster, ActionId.ACKNOWLEDGE, "U0DEMOONCALL", parent, channel)
    stage.at(244)
    stage.click(s.cluster, ActionId.APPROVE, "U0DEMOINTERN", parent, channel)  # not an approver: refused
    stage.at(246)
    stage.click(s.cluster, ActionId.APPROVE, "U0DEMOLEAD", parent, channel)
    stage.at(280)
    stage.run_sweep(s.cluster)  # past the 30m repeat interval: acknowledged, so no repeat
    stage.at(290)
    for node in snapshot["Nodes"]:  # the replacement is in service
        node["InstanceStatus"] = {"Status": "Running"}
    serve(snapshot)
    stage.run_sweep(s.cluster)


def check_chatops(stage: Stage, s: Scenario) -> list[str]:
    channel = APP_CHANNELS[ONCALL]
    parent = parent_in(stage, channel, s.cluster)
    if parent is None:
        return ["no parent message was posted in the on-call channel"]
    replies = [m.text for m in stage.app_slack.replies(channel, parent.ts)]
    final = " ".join(parent.block_texts)
    actions = [a for a in sagemaker_standin.node_actions(region=REGION) if a[0] == "BatchReplaceClusterNodes"]
    refused = [c.args.get("user") for c in stage.app_slack.calls_of("chat.postEphemeral") if c.ok]
    reasons = [i["reason"] for m in s.sns(stage) for i in m["message"]["items"]]
    acknowledged = [r for r in replies if "maya" in r and "cknowledged" in r]
    return (expect(len([m for m in stage.app_slack.messages(channel) if s.cluster in json.dumps(m.blocks)]) == 1,
                   "expected one parent message for the alert in the on-call channel")
            + expect("*Resolved*" in final and len(parent.edits) >= 2,
                     f"expected the parent updated, in the end to resolved; it shows: {final[:200]!r}")
            + expect(len(acknowledged) == 1, f"expected one reply saying maya acknowledged it: {replies}")
            + expect(len(actions) == 1, f"expected exactly one BatchReplaceClusterNodes, got {actions}")
            + expect(any("approved by" in r.lower() for r in replies), f"no reply names the approver: {replies}")
            + expect(refused == ["U0DEMOINTERN"], f"expected one refusal, for lee; got {refused}")
            + expect("repeat" not in reasons, f"an acknowledged alert repeated: {reasons}"))


#: the "Many accounts" scenario's cluster: one of that name at home, one in the spoke, one in an unlisted account
FLEET_CLUSTER = "llm-train"


def key_at(where: Location, name: str = FLEET_CLUSTER) -> str:
    """The key the hub gives the cluster `name` at `where` (fleet.py)."""
    return cluster_key(name, where, HOME)


def many_accounts(stage: Stage, s: Scenario) -> None:
    """The stage is a hub (HUB_ENVIRONMENT): llm-train at home has a degraded group, llm-train in the spoke
    account an unhealthy node, and an account the hub does not list reports a node of its own llm-train."""
    stage.webhook_mode()
    stage.log(s.cluster, "Slack  webhook mode again (the default slackMode)")
    with stage.hub():
        stage.log(s.cluster, f"hub    the functions get a hub's environment: {json.dumps(HUB_ENVIRONMENT)}")
        unhealthy, spoke = load("unhealthy-node-no-repair", FLEET_CLUSTER)
        node = unhealthy["detail"]["InstanceId"]
        spoke["Nodes"] = [{"InstanceId": node, "InstanceGroupName": "p5-train", "InstanceType": "ml.p5.48xlarge",
                           "InstanceStatus": {"Status": "Running"}}]
        from_spoke, spoke = placed(unhealthy, spoke, SPOKE)
        from_unlisted, _ = placed(unhealthy, spoke, UNLISTED)
        capacity, home = placed(*load("degraded-group-capacity-event", FLEET_CLUSTER), HOME)
        for snapshot, where in ((home, HOME), (spoke, SPOKE), (spoke, UNLISTED)):
            serve(snapshot, where)
        stage.at(300)
        stage.event(from_spoke, f"Node Health Event from {SPOKE}: {node} Unhealthy, RepairAction None")
        stage.at(301)
        stage.event(capacity, f"Cluster Event from {HOME} (home): instance group Degraded (capacity)")
        stage.at(302)
        stage.event(from_unlisted, f"Node Health Event from {UNLISTED}: an account the hub does not list")
        stage.at(307)
        stage.run_sweep(key_at(HOME))  # past the 5m grace: the home cluster's degraded group fires
        stage.at(310)
        stage.event(node_report(from_spoke, node, healthy=True), f"Node Health Event from {SPOKE}: {node} Healthy")
        stage.at(312)
        stage.run_sweep(key_at(HOME))
        listed = [str(where) for where in stage.sweep.runtime().locations()]
        found = sorted({str(location_of(key, HOME)) for key in stage.swept})
        stage.log(key_at(SPOKE), f"sweep  ListClusters in {len(listed)} locations ({', '.join(listed)}): "
                  f"{len(stage.swept)} clusters, in {', '.join(found)}", stage.explain(key_at(SPOKE)))
        stage.settle()  # the grouped messages still due go out as the hub's


def check_many_accounts(stage: Stage, s: Scenario) -> list[str]:
    from moto.sts.models import sts_backends

    from ..ledger_store import LedgerStore

    home, spoke = key_at(HOME), key_at(SPOKE)
    sent = [(m["message"]["cluster"], m["message"]["status"], m["attributes"].get("account"),
             m["attributes"].get("region")) for m in s.sns(stage)]
    paged = [json.dumps(m["payload"]) for m in s.slack(stage) if m["cluster"] == spoke]
    ledger = LedgerStore(stage.resources.table_name, aws_clients.client("dynamodb"))
    states = {key: sorted({r.state.value for r in ledger.load(key).values()}) for key in (home, spoke)}
    fingerprints = [set(ledger.load(key)) for key in (home, spoke)]
    assumed = [(r.role_arn, r.session_name, r.external_id) for r in sts_backends[SPOKE.account]["aws"].assumed_roles]
    role = (f"arn:aws:iam::{SPOKE.account}:role/{DEFAULT_SPOKE_ROLE}", aws_clients.ROLE_SESSION_NAME, PREFIX)
    ignored = [line for line in stage.lines if f"from {UNLISTED}" in line]
    return (expect(sent == [(spoke, "firing", SPOKE.account, SPOKE.region), (home, "firing", HOME.account, HOME.region),
                            (spoke, "resolved", SPOKE.account, SPOKE.region)],
                   f"expected the spoke's page, the home cluster's, then the spoke's resolved; got {sent}")
            + expect(len(paged) == 2 and all(spoke in p and SPOKE.account in p and SPOKE.region in p for p in paged),
                     f"expected the spoke's two Slack messages naming {spoke}, its account and region")
            + expect(states == {home: ["firing"], spoke: ["resolved"]},
                     f"expected the home alert firing and the spoke's resolved, got {states}")
            + expect(all(fingerprints) and not fingerprints[0] & fingerprints[1],
                     "the two clusters named llm-train share an alert")
            + expect(len(ignored) == 1 and f"ignored: event from account '{UNLISTED.account}'" in ignored[0],
                     f"expected the unlisted account's event ignored with its reason, the log says {ignored}")
            + expect(not sts_backends[UNLISTED.account]["aws"].assumed_roles,
                     "a role of the unlisted account was assumed")
            + expect(bool(assumed) and set(assumed) == {role}, f"expected the spoke role {role} assumed, got {assumed}")
            + expect({home, spoke} <= set(stage.swept), f"the last sweep covered {sorted(set(stage.swept))}"))


SCENARIOS = [
    # first: the week before the others (the clock runs from START - 6d12h), for the reliability report
    Scenario("A week of the fleet (the reliability report)", "fleet-*", "Three clusters over the week before: a "
             "node unhealthy three times (a repeat offender, fixed by a person each time), a node HyperPod replaced "
             "by itself, a group short of capacity for five hours, a failed node our remediation rebooted. Every "
             "episode is archived as it resolves; report.html sums up the last 7 days.", fleet_week, check_week),
    Scenario("Degraded group that recovers", "demo-degraded", "A capacity shortfall: pending for the 5m grace, "
             "firing at the next sweep, resolved when the group is back to target.", degraded_recovers, check_degraded),
    Scenario("Taint drift that persists past its grace", "demo-drift", "Nodes lack a declared taint: pending at "
             "T+01:00 and T+01:10, firing at T+01:16 once the 15m grace has passed.", drift_persists, check_drift),
    Scenario("Failed rollback", "demo-rollback", "A software update whose rollback failed: critical at once "
             "(the Cluster Event and DescribeCluster agree on one fingerprint), to the default channel and, routed "
             f"by severity, to {ONCALL} with its user group mentioned and the policy's runbook linked. Its group is "
             "also Degraded: that warning waits for its 5m grace and goes out with a later sweep.",
             failed_rollback, check_rollback),
    Scenario("Unhealthy node with no automatic repair", NODE_CLUSTER, "HyperPod's health agent reports a GPU "
             "fault and RepairAction None: critical. The cluster is EKS-orchestrated and its rules turn on the "
             f"workload read: the alert says what runs on the node, read from the cluster's Kubernetes API ({LLAMA}, "
             "6 of its 64 pods, auto-resume off; a HyperPodPyTorchJob that resumes by itself), and a route by "
             f"namespace pages {TEAM_LLM}, the team whose job it hits. Then the API answers 403: the next node's "
             "alert goes out all the same, saying 'workload unknown: forbidden…', to the on-call and the default "
             "channel.", unhealthy_node, check_node),
    Scenario("Duplicate storm", "demo-storm", f"The same Node Health Event {STORM} times: one message.",
             duplicate_storm, check_storm),
    Scenario("Slack outage and recovery", "demo-outage", "The webhook answers 503 while an alert fires; "
             "Lambda retries; after recovery the alert is delivered exactly once.", slack_outage, check_outage),
    Scenario("Storm of unhealthy nodes, grouped", "demo-node-storm", f"{NODE_STORM} different nodes reported "
             "unhealthy within 2 minutes: one message after group_wait (30s), the rest in the next one "
             "(group_interval 5m), every node named.", node_storm, check_node_storm),
    # from here on the notifier is in Slack app mode (until the next scenario goes back to webhooks)
    Scenario("ChatOps in Slack: a threaded alert, acknowledged, remediation approved", "demo-chatops",
             "Slack app mode. A node in Failure pages the on-call channel (and the team's): one parent message "
             "each, with Acknowledge, Silence and Approve/Reject (replacing the node needs approval). maya "
             "acknowledges (no repeat past the 30m repeat interval); lee, not an approver, is refused (a message "
             "only lee sees); sam approves: the cluster is re-read and the node replaced once, through the budget "
             "and the audit; when it is back the parent shows resolved. Each channel's final view: the parent "
             "as last updated, its thread below.", chatops, check_chatops),
    # last: the stage runs as a fleet's hub (issue 22)
    Scenario("Many accounts: one hub", f"{FLEET_CLUSTER}*", f"The functions run as a hub watching account "
             f"{HOME.account} ({HOME.region}, home) and the spoke account {SPOKE.account} ({SPOKE.region}), both with "
             f"a cluster named {FLEET_CLUSTER}. The spoke's node goes Unhealthy: the hub assumes the spoke's role, "
             f"reads the cluster there and pages {key_at(SPOKE)}, naming its account and region. The home cluster's "
             f"group is Degraded: its own alert, fired at the sweep after its 5m grace. A {FLEET_CLUSTER} event from "
             f"{UNLISTED.account}, an account the hub does not list, is ignored with a reason (timeline.txt). The "
             "spoke's node recovers: its alert resolves, the home one stays firing. Each sweep lists both accounts in "
             "both regions.", many_accounts, check_many_accounts),
]


# --- the run ----------------------------------------------------------------------------------


def run(output: Path) -> int:
    started = time.monotonic()
    print("hyperpod-guard demo: moto server + a local Slack webhook, the real handlers, a simulated clock\n")
    stage = Stage(output)
    try:
        for scenario in SCENARIOS:
            print(f"\n== {scenario.name} ({scenario.cluster})")
            scenario.run(stage, scenario)
            stage.settle()
            scenario.problems = scenario.check(stage, scenario)
        ledger = _ledger_dump(stage)
        # the week's clusters over the last 7 days (`hyperpod-guard report --cluster 'fleet-*'`)
        report = stage.reliability(cluster_glob=SCENARIOS[0].cluster)
    finally:
        stage.close()
    _write(output, stage, ledger)
    (output / "report.html").write_text(render_html(report), encoding="utf-8")
    (output / "report.json").write_text(render_json(report), encoding="utf-8")
    (output / "report.csv").write_text(render_csv(report), encoding="utf-8")
    print("\n" + "=" * 78)
    failed = [s for s in SCENARIOS if s.problems]
    for scenario in SCENARIOS:
        mark = "ok  " if not scenario.problems else "FAIL"
        app = sum(1 for shown in app_threads(stage, scenario.cluster) if isinstance(shown, slack_html.Thread))
        slack = f"{len(scenario.slack(stage))} Slack" + (f" + {app} Slack app threads" if app else "")
        print(f"{mark} {scenario.name}: {len(scenario.sns(stage))} SNS, {slack}"
              + "".join(f"\n     - {p}" for p in scenario.problems))
    print(f"\nwrote {output}/sns/, {output}/slack/<receiver>/, {output}/slack-app/, {output}/chatbot/, "
          f"{output}/email/, {output}/ledger.json, {output}/timeline.txt, {output}/lambda-logs.jsonl")
    print(f"Slack messages as a person sees them: {(output / 'index.html').resolve()}")
    print(f"The reliability report of the last 7 days: {(output / 'report.html').resolve()} (and .json, .csv)")
    print(f"{len(SCENARIOS) - len(failed)}/{len(SCENARIOS)} scenarios met their expected outcome "
          f"in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


def _ledger_dump(stage: Stage) -> list[dict[str, Any]]:
    items = aws_clients.client("dynamodb").scan(TableName=stage.resources.table_name)["Items"]
    rows = [{k: next(iter(v.values())) for k, v in item.items()} for item in items  # alerts, not report marks
            if item["pk"]["S"].startswith("CLUSTER#") and item["sk"]["S"].startswith("ALERT#")
            and "fingerprint" in item]  # nor the layout marker (ledger_store.py)
    return sorted(rows, key=lambda r: (r["cluster"], r["policy"], r["condition"]))


def app_threads(stage: Stage, cluster: str) -> list[slack_html.Shown]:
    """App mode: each channel's parent messages about `cluster` as last updated, with their threads (in the
    on-call channel, where the clicks were, each earlier version of the parent first), and the messages only
    one person saw (a refused click: it names no cluster, so it goes with the scenario that has threads, not
    with every scenario)."""
    shown: list[slack_html.Shown] = []
    for receiver, channel in APP_CHANNELS.items():
        for parent in stage.app_slack.messages(channel):
            if cluster not in json.dumps(parent.blocks):
                continue
            if receiver == ONCALL:
                shown.extend((f"receiver {receiver} ({channel}) · the parent, version {n} of {len(parent.edits) + 1}",
                              {"text": text, "blocks": blocks}) for n, (text, blocks) in enumerate(parent.edits, 1))
            replies = tuple((f"reply · {receiver} ({channel})", {"text": r.text, "blocks": r.blocks})
                            for r in stage.app_slack.replies(channel, parent.ts))
            shown.append(slack_html.Thread(f"receiver {receiver} ({channel}) · as last updated",
                                           {"text": parent.text, "blocks": parent.blocks}, replies,
                                           edited=bool(parent.edits)))
    for call in stage.app_slack.calls_of("chat.postEphemeral") if shown else ():
        if call.ok:
            who = PEOPLE.get(str(call.args.get("user")), call.args.get("user"))
            shown.append((f"only visible to {who} · {call.args.get('channel')}", {"text": str(call.args["text"])}))
    return shown


#: what each receiver got, one file per message: `slack/<receiver>/`, and per SNS protocol (`chatbot/`: the
#: "https" message Chatbot's subscription gets; `email/`: the Subject and the "email" text)
OUTPUT_FOLDERS = ("sns", *(f"slack/{receiver}" for receiver in RECEIVERS), "chatbot", "email")


def _file(index: int, cluster: str) -> str:
    """An output file's name (without suffix): its number and the cluster's key, whose '/' (account/region)
    becomes '_'."""
    return f"{index:03d}-{cluster.replace('/', '_')}"


def _write(output: Path, stage: Stage, ledger: list[dict[str, Any]]) -> None:
    for folder in OUTPUT_FOLDERS:
        (output / folder).mkdir(parents=True, exist_ok=True)
        for old in [*(output / folder).glob("*.json"), *(output / folder).glob("*.txt")]:
            old.unlink()
    for stale in (output / "slack").glob("*.json"):  # where earlier versions wrote every Slack message
        stale.unlink()
    for index, message in enumerate(stage.sns, 1):
        record = {k: v for k, v in message.items() if k != "sns_event"}
        name = _file(index, message["message"]["cluster"])
        (output / "sns" / f"{name}.json").write_text(json.dumps(record, indent=2))
    for receiver in RECEIVERS:
        received = [m for m in stage.slack if m["receiver"] == receiver]
        for index, message in enumerate(received, 1):
            (output / "slack" / receiver / f"{_file(index, message['cluster'])}.json").write_text(
                json.dumps(message, indent=2))
    for index, published in enumerate(stage.published, 1):
        name = _file(index, str(published["cluster"]))
        if published["chatbot"] is not None:
            (output / "chatbot" / f"{name}.json").write_text(json.dumps(published["chatbot"], indent=2,
                                                                         ensure_ascii=False))
        if published["email"] is not None:
            (output / "email" / f"{name}.txt").write_text(f"Subject: {published['subject']}\n\n{published['email']}\n")
    (output / "ledger.json").write_text(json.dumps(ledger, indent=2))
    (output / "timeline.txt").write_text("\n".join(stage.lines) + "\n")
    sections: list[tuple[str, str, bool, list[slack_html.Shown]]] = []
    for s in SCENARIOS:  # each scenario's Slack messages, per receiver (channel); app mode: its channels' threads
        shown: list[slack_html.Shown] = [(f"T+{_clock(m['at'])} · receiver {receiver}", m["payload"])
                                         for receiver in RECEIVERS for m in s.slack(stage, receiver)]
        sections.append((s.name, s.story, not s.problems, shown + app_threads(stage, s.cluster)))
    (output / "slack-app").mkdir(exist_ok=True)
    for receiver, channel in APP_CHANNELS.items():  # app mode: each channel as Slack holds it at the end
        threads = [{"ts": m.ts, "text": m.text, "blocks": m.blocks, "edits": len(m.edits),
                    "replies": [{"ts": r.ts, "text": r.text, "blocks": r.blocks}
                                for r in stage.app_slack.replies(channel, m.ts)]}
                   for m in stage.app_slack.messages(channel)]
        (output / "slack-app" / f"{receiver}.json").write_text(json.dumps(threads, indent=2, ensure_ascii=False))
    (output / "index.html").write_text(slack_html.page(
        "hyperpod-guard demo", f"{len(stage.slack)} Slack messages from {len(SCENARIOS)} scenarios, simulated from "
        f"{isoformat(START)}", sections))


def _clock(at: str) -> str:
    delta = datetime.fromisoformat(at.replace("Z", "+00:00")) - START
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- offline: the pure pipeline only -------------------------------------------------------


def run_offline(events_dir: Path | None = None) -> int:
    """Evaluate every scenario in events/ (event -> snapshot -> policies -> findings), no AWS stand-ins."""
    scenarios = load_scenarios(events_dir)
    if not scenarios:
        raise HyperPodGuardError(f"no scenarios found in {events_dir or 'events/'}")
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    for scenario in scenarios:
        now = scenario.now or datetime.now(UTC)
        result = evaluate_files(str(scenario.path), None, None, now)
        failures += [f"{scenario.name}: {p}" for p in scenario.check(result)]
        if isinstance(result, IgnoredEvent):
            rows.append((scenario.name, "-", "-", "-", f"(ignored: {result.reason})"))
        elif not result.findings:
            rows.append((scenario.name, "-", "-", "-", "(no findings)"))
        for finding in getattr(result, "findings", []):
            scope = "/".join(p for p in (finding.instance_group, finding.node) if p) or "(cluster)"
            rows.append((scenario.name, finding.severity.value, finding.policy, scope, finding.summary))
    print(table(("SCENARIO", "SEVERITY", "POLICY", "SCOPE", "SUMMARY"), rows))
    print()
    if failures:
        print(f"{len(failures)} expectation(s) not met:")
        print("\n".join(f"  {f}" for f in failures))
        return EXIT_PROBLEMS
    print(f"{len(scenarios)} scenarios evaluated, every expected finding matched.")
    return EXIT_OK
