"""Small building blocks shared by the constructs: functions and queues, secure by default."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .bundling import function_code
from .config import Config

#: the newest Python runtime aws-cdk-lib 2.275 offers (cdk-nag L1 insists on the latest)
RUNTIME = lambda_.Runtime.PYTHON_3_14


def event_accounts(config: Config) -> list[str]:
    """The accounts whose HyperPod events are believed (the rule's pattern, the functions' EVENT_ACCOUNTS):
    this deployment's own, then the `eventAccounts` allow-list."""
    return [Aws.ACCOUNT_ID, *config.event_accounts]


def secure_queue(scope: Construct, id: str, *, config: Config, name: str) -> sqs.Queue:
    """A dead-letter/failure queue: encrypted at rest, TLS only, messages kept 14 days."""
    return sqs.Queue(
        scope, id, queue_name=f"{config.prefix}-{name}", encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True, retention_period=Duration.days(14),
    )


def python_function(
    scope: Construct, id: str, *, config: Config, name: str, handler: str, description: str,
    memory_mb: int, timeout: Duration, environment: dict[str, str],
) -> lambda_.Function:
    log_group = logs.LogGroup(
        scope, f"{id}Logs", log_group_name=f"/aws/lambda/{config.prefix}-{name}",
        retention=logs.RetentionDays[_retention(config.log_retention_days)], removal_policy=RemovalPolicy.DESTROY,
    )
    return lambda_.Function(
        scope, id, function_name=f"{config.prefix}-{name}", description=description,
        runtime=RUNTIME, architecture=lambda_.Architecture.ARM_64, handler=handler, code=function_code(RUNTIME),
        memory_size=memory_mb, timeout=timeout, log_group=log_group,
        environment={
            "POWERTOOLS_SERVICE_NAME": config.prefix, "POWERTOOLS_METRICS_NAMESPACE": "HyperPodGuard",
            "POWERTOOLS_LOG_LEVEL": config.log_level, **environment,
        },
    )


def retention(days: int) -> logs.RetentionDays:
    """The nearest CloudWatch Logs retention at or above `days`, as CDK's enum."""
    return logs.RetentionDays[_retention(days)]


def _retention(days: int) -> str:
    """The nearest CloudWatch Logs retention at or above `days` (the API allows only some)."""
    allowed = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
               60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
               365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS"}
    return allowed[min((d for d in allowed if d >= days), default=731)]
