"""Lambda Function URL <- Slack: the interactivity endpoint, where Slack POSTs every click on our buttons.

Thin, and in this order:
1. Slack's signature is checked before anything else is read (chatops/signature.py; the signing secret
   from Secrets Manager, cached SECRET_MAX_AGE): missing, wrong, or older than 5 minutes -> 401, nothing
   else done;
2. the click is parsed (chatops/interaction.py): no click of ours -> 400;
3. it is handed to the actions queue, and Slack gets 200 with an empty body: within its 3-second limit,
   the work itself is the actions worker's (handlers/slack_actions.py).
A queue that refuses the message raises: Lambda answers 502, Slack tells the user the click failed.

The event is a Function URL's (payload format 2.0): headers in lower case, the body base64-encoded when
Lambda says so (`isBase64Encoded`). Logged: the outcome, the reason of a refusal, and the click's user,
action and alert; never the body (it carries Slack's verification token), the signature or the secret.
Counted (service `slack-interactivity`): ChatOpsClicks, ChatOpsSignaturesRefused, ChatOpsMalformedRequests.

Environment: settings.SlackInteractivitySettings (SLACK_SIGNING_SECRET_SECRET, SLACK_ACTIONS_QUEUE_URL,
SLACK_SECRET_MAX_AGE).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import TYPE_CHECKING, Any

from .. import aws_clients, clock
from ..chatops.interaction import MalformedInteraction, parse
from ..chatops.signature import SignatureRefused, verify
from ..constants import Metric, Service
from ..settings import SlackInteractivitySettings
from .observability import capture_handler, count, make_logger, make_metrics, prime_at_init

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = make_logger()
metrics = make_metrics(Service.SLACK_INTERACTIVITY)

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"


def _answer(status: int) -> dict[str, Any]:
    """An empty answer: Slack reads only the status (an empty 200 leaves the message as it is)."""
    return {"statusCode": status, "headers": {"Content-Type": "text/plain"}, "body": ""}


@functools.cache
def settings() -> SlackInteractivitySettings:
    return SlackInteractivitySettings.from_env()


@functools.cache
def secrets() -> SecretsProvider:
    """A secrets provider on the shared session's client (its cache is this container's)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=aws_clients.client("secretsmanager"))


aws_clients.on_reset(secrets.cache_clear)  # tests point the clients elsewhere
aws_clients.on_reset(settings.cache_clear)


def signing_secret(config: SlackInteractivitySettings) -> str:
    """The signing secret: the secret's value, or its `signing_secret` field when it holds JSON."""
    value = secrets().get(config.signing_secret_secret, max_age=config.secret_max_age)
    text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")).strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("signing_secret") or "").strip()
        except (ValueError, AttributeError):
            return ""
    return text


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return b"\x00not base64"  # signs as nothing Slack sent: refused below
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def prime() -> None:
    """What the first click loads (observability.prime_at_init): the settings, the SQS client, the secrets
    provider and its client. No AWS call: a connection would not outlive a snapshot."""
    settings()
    aws_clients.client("sqs")
    secrets()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    source = (event.get("requestContext") or {}).get("http", {}).get("sourceIp")
    body = _body(event)
    try:
        verify(signing_secret(config), headers.get(TIMESTAMP_HEADER), body, headers.get(SIGNATURE_HEADER),
               clock.now())
    except SignatureRefused as exc:
        logger.warning("request refused: Slack's signature does not check out", extra={
            "reason": exc.reason, "source_ip": source, "body_bytes": len(body)})
        count(metrics, Metric.CHATOPS_SIGNATURES_REFUSED)
        return _answer(401)
    try:
        click = parse(body)
    except MalformedInteraction as exc:
        logger.warning("signed request refused: not a click of ours", extra={"reason": exc.reason, "source_ip": source})
        count(metrics, Metric.CHATOPS_MALFORMED)
        return _answer(400)
    aws_clients.client("sqs").send_message(QueueUrl=config.actions_queue_url, MessageBody=click.model_dump_json())
    count(metrics, Metric.CHATOPS_CLICKS)
    logger.info("click queued", extra={"user": click.user_id, "team": click.team_id, "action": click.action,
                                       "cluster": click.value.cluster, "fingerprint": click.value.fingerprint,
                                       "action_ts": click.action_ts})
    return _answer(200)


prime_at_init(prime)
