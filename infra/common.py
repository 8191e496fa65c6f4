"""Small building blocks shared by the constructs: functions and queues, secure by default."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Aws, Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hyperpod_guard.events import ANY_ACCOUNT

from .bundling import function_code
from .config import Config

#: the newest Python runtime aws-cdk-lib 2.275 offers (cdk-nag L1 insists on the latest)
RUNTIME = lambda_.Runtime.PYTHON_3_14
#: the alias every trigger invokes; it follows the version each deploy publishes
LIVE = "live"
#: CDK's reminder that SnapStart applies to published versions only: python_function publishes one
SNAP_START_NEEDS_VERSIONS = "@aws-cdk/aws-lambda:snapStartRequirePublish"


def event_accounts(config: Config) -> list[str]:
    """The accounts whose HyperPod events the rules take: this deployment's own, then the spoke accounts
    (`spokeAccounts`, or its old name `eventAccounts`). In organization mode, this account's own only: the
    spokes' events come through the fleet bus, whose policy admits the organization (infra/fleet.py)."""
    return [Aws.ACCOUNT_ID, *config.spoke_accounts]


def believed_accounts(config: Config) -> str:
    """EVENT_ACCOUNTS, the accounts whose events the functions believe: event_accounts, comma-separated; `*`
    (any account) in organization mode, where the fleet bus's policy is what admits an account."""
    return ANY_ACCOUNT if config.organization_id else ",".join(event_accounts(config))


def secure_queue(scope: Construct, id: str, *, config: Config, name: str) -> sqs.Queue:
    """A dead-letter/failure queue: encrypted at rest, TLS only, messages kept 14 days."""
    return sqs.Queue(
        scope, id, queue_name=f"{config.prefix}-{name}", encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True, retention_period=Duration.days(14),
    )


def work_queue(scope: Construct, id: str, *, config: Config, name: str, visibility_timeout: Duration,
               max_receive_count: int, retention: Duration) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue of work for a function (its event source), and its dead-letter queue (`secure_queue`):
    encrypted at rest, TLS only; a message received `max_receive_count` times without being done
    moves to the dead-letter queue, which keeps it 14 days."""
    dlq = secure_queue(scope, f"{id}Dlq", config=config, name=f"{name}-dlq")
    queue = sqs.Queue(
        scope, id, queue_name=f"{config.prefix}-{name}", encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True, visibility_timeout=visibility_timeout, retention_period=retention,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
    )
    return queue, dlq


@dataclass(frozen=True)
class PythonFunction:
    """One of our functions and `live`, its alias on the version the last deploy published.

    Triggers go to `live` (the rules' targets, the SNS subscription, the SQS event source, the async
    invoke settings and their permissions): SnapStart restores published versions only, and the
    unqualified function ($LATEST) would run the whole init at every cold start. Role, environment
    and metrics stay on `function` (CloudWatch's FunctionName dimension covers every version)."""

    function: lambda_.Function
    live: lambda_.Alias


def python_function(
    scope: Construct, id: str, *, config: Config, name: str, handler: str, description: str,
    memory_mb: int, timeout: Duration, environment: dict[str, str], reserved_concurrency: int | None = None,
) -> PythonFunction:
    """`reserved_concurrency`: at most this many at once (and as many kept for it out of the account's pool)."""
    log_group = logs.LogGroup(
        scope, f"{id}Logs", log_group_name=f"/aws/lambda/{config.prefix}-{name}",
        retention=logs.RetentionDays[_retention(config.log_retention_days)], removal_policy=RemovalPolicy.DESTROY,
    )
    function = lambda_.Function(
        scope, id, function_name=f"{config.prefix}-{name}", description=description,
        runtime=RUNTIME, architecture=lambda_.Architecture.ARM_64, handler=handler, code=function_code(RUNTIME),
        memory_size=memory_mb, timeout=timeout, log_group=log_group,
        reserved_concurrent_executions=reserved_concurrency,
        environment={
            "POWERTOOLS_SERVICE_NAME": config.prefix, "POWERTOOLS_METRICS_NAMESPACE": "HyperPodGuard",
            "POWERTOOLS_LOG_LEVEL": config.log_level, **environment,
        },
        # Lambda runs the init (imports, clients, the handlers' prime_at_init) when a version is
        # published, snapshots it, and resumes every cold start of that version from the snapshot
        snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS,
        # a version per deploy that changes the function (CDK hashes its configuration and code); the
        # previous one is deleted once `live` has moved: nothing else invokes it, and each version
        # keeps a snapshot that is billed while the version is active
        current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
    )
    Annotations.of(function).acknowledge_warning(
        SNAP_START_NEEDS_VERSIONS, "current_version publishes a version at every deploy; triggers invoke its alias")
    live = function.add_alias(LIVE, description="hyperpod-guard: what every trigger invokes (SnapStart)")
    return PythonFunction(function, live)


def retention(days: int) -> logs.RetentionDays:
    """The nearest CloudWatch Logs retention at or above `days`, as CDK's enum."""
    return logs.RetentionDays[_retention(days)]


def _retention(days: int) -> str:
    """The nearest CloudWatch Logs retention at or above `days` (the API allows only some)."""
    allowed = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
               60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
               365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS"}
    return allowed[min((d for d in allowed if d >= days), default=731)]
