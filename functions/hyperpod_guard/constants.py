"""Names the functions and infra/ share: the environment variables (name, default, how to read them)
and the metrics (namespace, names, dimensions). infra/ imports them to write the functions'
environment and to draw the dashboard; tests check that both sides agree
(tests/unit/test_settings.py, tests/unit/test_metric_names.py, tests/infra/test_dashboard_metrics.py).

Each variable is declared once below as a `Var`. An unset or blank variable means its default; a
required one (no default) that is missing raises `MissingSetting`; a malformed value raises
ValueError naming the variable and the value. `Var.read` is the only place the functions read
os.environ: settings.py builds each function's typed model from these; handlers/observability.py
reads the three Powertools ones when a handler is imported. POWERTOOLS_LOG_LEVEL is Powertools' own.

Standard library only, and nothing built at import beyond a few enums: the evaluator handler imports
this at cold start (benchmarks/: cold_import_ratio), the models (dataclasses) with its first event.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from . import naming

# -- metrics -----------------------------------------------------------------------------------------

#: every metric's namespace (the stack also sets it as POWERTOOLS_METRICS_NAMESPACE)
NAMESPACE = "HyperPodGuard"
#: the policy name of the system's own alert while the rules are invalid (silences may name it)
RULES_INVALID = "rules-invalid"


class Metric(StrEnum):
    """Metric names: counts, and the per-cluster gauges of every sweep (OpenAlerts ... MinutesSinceLastEvent)."""

    # the evaluator
    INVOCATIONS = "Invocations"
    EVENTS = "Events"  # by DetailType
    INVALID_EVENTS = "InvalidEvents"
    IGNORED_EVENTS = "IgnoredEvents"
    STALE_EVENTS = "StaleEvents"
    FINDINGS = "Findings"  # by Policy, Severity
    TAGS_UNAVAILABLE = "TagsUnavailable"
    #: a HyperPod feature read (operations, extensions, training plans, Cluster Events) that could not be
    #: made (AccessDenied, not in this region, throttled): that part of the snapshot was not read
    READS_UNAVAILABLE = "HyperPodReadsUnavailable"
    #: Cluster Events EventBridge did not deliver, read back by the sweep (ListClusterEvents) and evaluated
    BACKFILLED_EVENTS = "BackfilledClusterEvents"
    #: blast radius (workload/): node workloads read for a message, and those left unknown (by Orchestrator): the
    #: API refused or timed out, the access entry or SSM grant is missing; the alert went out without it
    WORKLOADS_READ = "WorkloadsRead"
    WORKLOADS_UNKNOWN = "WorkloadsUnknown"
    # the evaluator and the sweep
    RULES_ERRORS = "RulesErrors"
    NOTIFICATIONS = "Notifications"
    NOTIFIED_FINDINGS = "NotifiedFindings"
    SUPPRESSED_ALERTS = "SuppressedAlerts"
    # the sweep
    SWEEP_RUNS = "SweepRuns"
    SWEEP_CLUSTERS = "SweepClusters"
    SWEEP_GONE_CLUSTERS = "SweepGoneClusters"
    SWEEP_ERRORS = "SweepErrors"  # clusters whose evaluation failed (the inline sweep's, or a worker's message)
    SWEEP_EVALUATED = "SweepClustersEvaluated"  # by the inline sweep, or by the workers (fan-out)
    SWEEP_ENQUEUED = "SweepClustersEnqueued"  # handed to the workers through the work queue
    # the Slack notifier
    NOTIFICATIONS_RECEIVED = "NotificationsReceived"
    INVALID_NOTIFICATION = "InvalidNotification"
    SLACK_MESSAGES_SENT = "SlackMessagesSent"
    SLACK_DUPLICATES_SKIPPED = "SlackDuplicatesSkipped"
    SLACK_DELIVERY_FAILED = "SlackDeliveryFailed"
    SLACK_NOT_CONFIGURED = "SlackNotConfigured"
    SLACK_RECORD_FAILED = "SlackRecordFailed"
    SLACK_POSSIBLE_DUPLICATE = "SlackPossibleDuplicate"
    # Slack app mode (notify/slack_app.py)
    #: app mode: a parent message posted (an alert episode's first message to a receiver's channel)
    SLACK_PARENTS_POSTED = "SlackParentsPosted"
    #: app mode: replies in an alert's thread (repeats, escalations, remediation news, resolved)
    SLACK_THREAD_REPLIES = "SlackThreadReplies"
    #: app mode: parent messages updated to show their alerts' current state (chat.update)
    SLACK_PARENTS_UPDATED = "SlackParentsUpdated"
    #: app mode: a parent message was deleted (or cannot be updated): a new parent was posted instead
    SLACK_PARENTS_GONE = "SlackParentsGone"
    #: app mode: Slack answered 429 or `ratelimited`; the call was retried after Retry-After
    SLACK_RATE_LIMITED = "SlackRateLimited"
    # the interactivity endpoint and the actions worker (chatops/)
    #: the endpoint: interactions whose signature checked out and that were queued for the actions worker
    CHATOPS_CLICKS = "ChatOpsClicks"
    #: the endpoint: requests refused for their signature (missing, wrong, or a timestamp too old): 401
    CHATOPS_SIGNATURES_REFUSED = "ChatOpsSignaturesRefused"
    #: the endpoint: signed requests that are no interaction we know (another type, an unknown button): 400
    CHATOPS_MALFORMED = "ChatOpsMalformedRequests"
    #: the actions worker: clicks carried out (acknowledged, silenced, approved, rejected)
    CHATOPS_DONE = "ChatOpsClicksDone"
    #: the actions worker: clicks refused (not allowed, another workspace, the alert resolved, the approval expired)
    CHATOPS_REFUSED = "ChatOpsClicksRefused"
    #: the actions worker: clicks that failed (SQS delivers the message again, then its dead-letter queue keeps it)
    CHATOPS_FAILED = "ChatOpsClicksFailed"
    #: a click delivered again (SQS is at least once): answered from its record, not carried out again
    CHATOPS_DUPLICATES = "ChatOpsDuplicatesSkipped"
    # the episode archive (archive.py)
    #: alert episodes written to the archive (ARCHIVE_BUCKET): by the evaluation that resolved them, or the sweep
    EPISODES_ARCHIVED = "EpisodesArchived"
    #: an episode (or a repair fact) the archive refused (S3 down, the bucket missing, no grant): the evaluation
    #: went on; the sweep writes the episode later (a repair fact is lost)
    ARCHIVE_FAILED = "ArchiveFailed"
    # per-cluster gauges from every sweep (service.cluster_health): the fleet's dashboard
    #: gauges, not counts: the sweep's evaluation of each cluster (inline or a worker's, not an event's) reports
    #: them once per sweep interval, dimensions `Cluster` (+ `service` sweep); service._report_cluster_health
    #: the cluster's open alerts (pending or firing, as `hyperpod-guard alerts`); also by `Severity`, for the
    #: severities it has (a series per cluster and severity only while there are such alerts)
    OPEN_ALERTS = "OpenAlerts"
    #: nodes in `Failure` in the snapshot or with an open unhealthy-node alert, each counted once
    UNHEALTHY_NODES = "UnhealthyNodes"
    #: the sum over the cluster's groups of max(0, TargetCount - CurrentCount)
    CAPACITY_SHORTFALL = "CapacityShortfall"
    #: minutes since the newest event report applied to the cluster (its newest report mark in the ledger);
    #: not emitted while the ledger holds none (no event in MARK_RETENTION)
    MINUTES_SINCE_LAST_EVENT = "MinutesSinceLastEvent"
    # the weekly digest
    #: the digest function: digests published to the alerts topic (handlers/digest.py)
    DIGESTS_PUBLISHED = "DigestsPublished"
    #: the digest function: a digest not published (the archive or the ledger unreadable, the topic refusing it)
    DIGEST_FAILED = "DigestFailed"


class Dimension(StrEnum):
    DETAIL_TYPE = "DetailType"
    POLICY = "Policy"
    SEVERITY = "Severity"
    #: the sweep's per-cluster gauges (Metric.OPEN_ALERTS ...): one series per cluster
    CLUSTER = "Cluster"
    #: the workload reads (Metric.WORKLOADS_READ / WORKLOADS_UNKNOWN): eks or slurm
    ORCHESTRATOR = "Orchestrator"
    #: Powertools' default dimension: the `service` a handler's Metrics was created with
    SERVICE = "service"


class Service(StrEnum):
    """The `service` dimension of each function's metrics."""

    EVALUATOR = "evaluator"
    SWEEP = "sweep"
    SLACK_NOTIFIER = "slack-notifier"
    # the interactivity endpoint and the actions worker
    SLACK_INTERACTIVITY = "slack-interactivity"
    SLACK_ACTIONS = "slack-actions"
    # the weekly digest
    DIGEST = "digest"


# -- environment variables -------------------------------------------------------------------------

T = TypeVar("T")


class MissingSetting(KeyError):
    """A required environment variable is not set."""

    def __str__(self) -> str:
        return str(self.args[0])


class Var(Generic[T]):
    """One environment variable: its name, its default as the environment spells it (what infra
    writes; None: none), what a valid value is (for the error message) and how to read one.

    Without a value or a default, a `required` variable raises MissingSetting and another reads None.
    `fallback`: a second variable read when `name` is unset or blank. `blank_is_value`: a blank value
    is a value, not the default (EVENT_ACCOUNTS="" believes no account).
    """

    __slots__ = ("blank_is_value", "default", "expects", "fallback", "name", "parse", "required")

    def __init__(self, name: str, parse: Callable[[str], T], default: str | None = None, expects: str = "valid", *,
                 required: bool = False, fallback: str | None = None, blank_is_value: bool = False):
        self.name = name
        self.parse = parse
        self.default = default
        self.expects = expects
        self.required = required
        self.fallback = fallback
        self.blank_is_value = blank_is_value

    def __repr__(self) -> str:
        return f"Var({self.name!r}, default={self.default!r})"

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        environ = os.environ if environ is None else environ
        for name in (self.name, self.fallback):
            raw = environ.get(name) if name else None
            if raw is not None and (raw.strip() or self.blank_is_value):
                return self._parse(raw.strip())
        if self.default is not None:
            return self._parse(self.default)
        if self.required:
            raise MissingSetting(f"{self.name} is not set")
        return None  # type: ignore[return-value]  # an optional Var is declared as Var[X | None]

    @property
    def default_value(self) -> T:
        if self.default is None:
            raise MissingSetting(f"{self.name} has no default")
        return self._parse(self.default)

    def _parse(self, raw: str) -> T:
        try:
            return self.parse(raw)
        except ValueError:
            raise ValueError(f"{self.name} must be {self.expects}, got {raw!r}") from None


def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    return raw.lower() == "true"


def _whole(raw: str) -> int:
    return int(raw)


def _seconds(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _number(raw: str) -> float:
    return float(raw)


def _float_seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses NaN
        raise ValueError
    return value


# Powertools and tracing (every function)
SERVICE_NAME: Var[str] = Var("POWERTOOLS_SERVICE_NAME", _text, naming.DEFAULT_PREFIX)
METRICS_NAMESPACE: Var[str] = Var("POWERTOOLS_METRICS_NAMESPACE", _text, NAMESPACE)
#: Tracer imports aws_xray_sdk and patches botocore at init: off unless "true" (handlers/observability.py)
TRACING: Var[bool] = Var("HYPERPOD_GUARD_TRACING", _flag, "false")

# the evaluator and the sweep
TABLE_NAME: Var[str] = Var("TABLE_NAME", _text, required=True)
TOPIC_ARN: Var[str] = Var("TOPIC_ARN", _text, required=True)
RULES_PATH: Var[str] = Var("RULES_PATH", _text, naming.rules_path())
#: seconds the rules stay cached in the container
RULES_MAX_AGE: Var[int] = Var("RULES_MAX_AGE", _seconds, "60", "a whole number of seconds >= 0")
#: "true": no parameters under RULES_PATH is an error (the stack seeded them), not the defaults
RULES_REQUIRED: Var[bool] = Var("RULES_REQUIRED", _flag, "false")
#: seconds a cluster's tags stay cached (read only when the rules select clusters by tag)
TAGS_MAX_AGE: Var[float] = Var("TAGS_MAX_AGE", _float_seconds, "300", "a number of seconds >= 0")
#: seconds the ad-hoc silences (silences.py) stay cached in the container: `silence expire` takes effect within it
SILENCES_MAX_AGE: Var[float] = Var("SILENCES_MAX_AGE", _float_seconds, "30", "a number of seconds >= 0")
#: comma-separated accounts whose events are believed (events.event_accounts parses it); unset: no check
EVENT_ACCOUNTS: Var[str | None] = Var("EVENT_ACCOUNTS", _text, blank_is_value=True)
#: set by Lambda
REGION: Var[str | None] = Var("AWS_REGION", _text, fallback="AWS_DEFAULT_REGION")
#: clusters the sweep evaluates at once (when it evaluates them itself: WORK_QUEUE_URL unset)
SWEEP_CONCURRENCY: Var[int] = Var("SWEEP_CONCURRENCY", _whole, "8", "a whole number")
#: the SQS queue the worker (handlers/worker.py) consumes; the sweep sends one message per cluster to it.
#: Unset: the sweep evaluates every cluster itself, in SWEEP_CONCURRENCY threads (local runs)
WORK_QUEUE_URL: Var[str | None] = Var("WORK_QUEUE_URL", _text)

# the Slack notifier
#: name or ARN of the Secrets Manager secret holding the webhook URL
SLACK_WEBHOOK_SECRET: Var[str] = Var("SLACK_WEBHOOK_SECRET", _text, required=True)
#: what the other receivers' secret names start with: receiver X's is this + X (naming.slack_receiver_secret_name)
SLACK_RECEIVER_SECRET_PREFIX: Var[str] = Var("SLACK_RECEIVER_SECRET_PREFIX", _text,
                                             naming.slack_receiver_secret_prefix())
#: seconds the secret stays cached in the container
SLACK_SECRET_MAX_AGE: Var[int] = Var("SLACK_SECRET_MAX_AGE", _whole, "300", "a whole number of seconds")
#: seconds per POST (why 15: notify/slack.py DEFAULT_TIMEOUT)
SLACK_TIMEOUT: Var[float] = Var("SLACK_TIMEOUT", _number, "15", "a number of seconds")
#: POST attempts per message
SLACK_MAX_ATTEMPTS: Var[int] = Var("SLACK_MAX_ATTEMPTS", _whole, "4", "a whole number")
#: seconds a delivered SNS message id is remembered (its idempotency record)
IDEMPOTENCY_TTL: Var[int] = Var("IDEMPOTENCY_TTL", _whole, "86400", "a whole number of seconds")
#: set by Lambda; the idempotency records' keys start with it (notify/delivery.py)
FUNCTION_NAME: Var[str | None] = Var("AWS_LAMBDA_FUNCTION_NAME", _text)
# Slack app mode (notify/slack_app.py)


def _slack_mode(raw: str) -> str:
    if raw.lower() not in ("webhook", "app"):
        raise ValueError
    return raw.lower()


def _channels(raw: str) -> dict[str, str]:
    import json  # only when the variable is set

    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()):
        raise ValueError
    return data


#: "webhook" (incoming webhooks, the default) or "app" (a Slack app's bot token: threads, updates, buttons)
SLACK_MODE: Var[str] = Var("SLACK_MODE", _slack_mode, "webhook", '"webhook" or "app"')
#: app mode: name or ARN of the Secrets Manager secret holding the bot token (`xoxb-…`, or JSON {"token": …})
SLACK_BOT_TOKEN_SECRET: Var[str | None] = Var("SLACK_BOT_TOKEN_SECRET", _text)
#: app mode: receiver name -> channel id, a JSON object ({"default": "C0123", "ml-oncall": "C0456"})
SLACK_CHANNELS: Var[dict[str, str]] = Var("SLACK_CHANNELS", _channels, "{}",
                                          'a JSON object of receiver name -> channel id')
#: app mode: the Web API's base URL (tests and the demo: the local stand-in, local/slack_api_standin.py)
SLACK_API_URL: Var[str] = Var("SLACK_API_URL", _text, "https://slack.com/api/")
# the interactivity endpoint and the actions worker (chatops/)
#: name or ARN of the Secrets Manager secret holding the Slack app's signing secret (the endpoint's)
SLACK_SIGNING_SECRET_SECRET: Var[str] = Var("SLACK_SIGNING_SECRET_SECRET", _text, required=True)
#: the SQS queue the endpoint hands each interaction to, for the actions worker (handlers/slack_actions.py)
SLACK_ACTIONS_QUEUE_URL: Var[str] = Var("SLACK_ACTIONS_QUEUE_URL", _text, required=True)
# the episode archive (archive.py)
#: the S3 bucket of the episode archive (archive.py); unset: nothing is archived (local runs)
ARCHIVE_BUCKET: Var[str | None] = Var("ARCHIVE_BUCKET", _text)
# the weekly digest (handlers/digest.py)
#: the weekly digest (handlers/digest.py): the days it summarises, ending when it runs
DIGEST_DAYS: Var[int] = Var("DIGEST_DAYS", _whole, "7", "a whole number of days")
#: ... and the top findings (failure reasons) it lists
DIGEST_TOP: Var[int] = Var("DIGEST_TOP", _whole, "5", "a whole number")
