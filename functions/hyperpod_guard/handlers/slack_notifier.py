"""Slack notifier: SNS topic -> this Lambda -> a Slack incoming webhook.

Each SNS record carries one `Notification` (JSON, see notify/message.py). A record that is
not a notification is logged, counted and dropped: retrying it cannot help. Anything that
may heal (the webhook secret not filled in yet, Slack down or rate limiting) raises, so
Lambda retries and, in the end, the on-failure destination keeps the message.

Environment:
- SLACK_WEBHOOK_SECRET   name or ARN of the Secrets Manager secret holding the webhook URL
                         (the bare https URL, or JSON {"url": ...} / {"webhook_url": ...})
- SLACK_SECRET_MAX_AGE   seconds the secret stays cached in the container (default 300)
- SLACK_MAX_ATTEMPTS     POST attempts per message (default 4)
- SLACK_TIMEOUT          seconds per POST (default 15: see notify/slack.py DEFAULT_TIMEOUT)
- TABLE_NAME             the ledger table, which also keeps Powertools' idempotency records
- IDEMPOTENCY_TTL        seconds a delivered message id is remembered (default 86400)

SNS delivers at least once and Lambda retries a failed invocation: a message id that was
already posted is answered from its idempotency record instead of posting it again.

Once Slack has accepted a message, the invocation must not fail (Lambda's retry would post it
again): nothing but recording the success runs between Slack's 2xx and that record; reporting
the delivery (log line, metric) comes after it; and when the record cannot be written, that is
logged and counted (`SlackRecordFailed`) and the invocation succeeds. What is left of
at-least-once is in docs/reliability.md (Faults).
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from .. import aws_clients
from ..ledger_store import IDEMPOTENCY_PK, TTL_ATTRIBUTE
from ..notify.message import Notification
from ..notify.slack import DEFAULT_TIMEOUT, SlackError, SlackPermanentError, SlackSender, render, valid_webhook_url

logger = Logger(service="hyperpod-guard")
metrics = Metrics(namespace="HyperPodGuard", service="slack-notifier")

#: time kept back from the Lambda timeout after the last POST: recording the delivery (one
#: UpdateItem, ~10 ms, more while botocore backs off from throttling) must finish before Lambda
#: stops the invocation, or its retry posts again; then logging, metrics, the error path
SAFETY_MARGIN_S = 10.0
#: Slack answers these when the webhook was revoked or its channel is gone: maybe the secret was rotated
_STALE_WEBHOOK = {403, 404, 410}

# resolved at call time, so tests can replace it
sleep = time.sleep


def _answered_again(response: Any, _record: Any) -> Any:
    logger.info("SNS message already delivered to Slack; not posting it again")
    metrics.add_metric(name="SlackDuplicatesSkipped", unit=MetricUnit.Count, value=1)
    return response


IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="message_id", raise_on_no_idempotency_key=True, response_hook=_answered_again,
    expires_after_seconds=int(os.environ.get("IDEMPOTENCY_TTL", "86400")),
)


@dataclass
class Delivery:
    """What posting one message did, readable after Powertools raised on recording it."""

    attempts: int = 0  # 0: not posted by this invocation

    @property
    def posted(self) -> bool:
        return self.attempts > 0


class SlackNotConfiguredError(RuntimeError):
    """The webhook secret holds no usable URL (empty or still the placeholder)."""


def webhook_url(value: str | bytes | None) -> str | None:
    """The webhook URL from a secret's value, or None when there is none worth trying."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = (value or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        text = str(data.get("url") or data.get("webhook_url") or "").strip()
    return text if valid_webhook_url(text) else None


def _fetch(name: str, *, force: bool = False) -> str | None:
    # imported here: parameters pulls in boto3, which an invalid message never needs
    from aws_lambda_powertools.utilities import parameters

    max_age = int(os.environ.get("SLACK_SECRET_MAX_AGE", "300"))
    try:
        value = parameters.get_secret(name, max_age=max_age, force_fetch=force)
    except parameters.exceptions.GetParameterError as exc:
        if _no_value_yet(exc):
            return None  # created without a value: the same as empty
        logger.error(f"Slack webhook secret {name} could not be read: {exc}", extra={"secret": name})
        raise
    return webhook_url(value)


def _no_value_yet(exc: Exception) -> bool:
    """Secrets Manager's answer for a secret that exists but has no AWSCURRENT value."""
    cause = exc.__cause__ or exc.__context__  # Powertools re-raises inside `except`
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    return code == "ResourceNotFoundException" and "secret value" in str(cause)


def configured_url(name: str) -> str:
    """The webhook URL, fetched again once if the cached value is unusable (someone may just
    have filled the secret in); raises SlackNotConfiguredError when there is still none."""
    url = _fetch(name) or _fetch(name, force=True)
    if url is None:
        message = f"Slack webhook secret {name} is empty: put the webhook URL into it"
        logger.error(message, extra={"secret": name})
        metrics.add_metric(name="SlackNotConfigured", unit=MetricUnit.Count, value=1)
        raise SlackNotConfiguredError(message)
    return url


def _deadline(context: LambdaContext) -> float | None:
    try:
        remaining_ms = context.get_remaining_time_in_millis()
    except AttributeError:
        return None
    return time.monotonic() + max(remaining_ms / 1000 - SAFETY_MARGIN_S, 0.0)


def _unanswered(attempt: int, reason: str) -> None:
    # retried all the same (an alert is never dropped for this): Slack may show it twice
    logger.warning(f"Slack webhook received attempt {attempt} but did not answer ({reason}); "
                   "if Slack posted it, the retry posts it again", extra={"attempt": attempt})
    metrics.add_metric(name="SlackPossibleDuplicate", unit=MetricUnit.Count, value=1)


def _sender(url: str, deadline: float | None) -> SlackSender:
    return SlackSender(
        url,
        timeout=float(os.environ.get("SLACK_TIMEOUT", DEFAULT_TIMEOUT)),
        max_attempts=int(os.environ.get("SLACK_MAX_ATTEMPTS", "4")),
        sleep=lambda seconds: sleep(seconds),
        deadline=deadline,
        on_unanswered=_unanswered,
    )


def _drop(message_id: str, why: str) -> None:
    logger.error(f"Dropping SNS message {message_id}: {why}", extra={"message_id": message_id})
    metrics.add_metric(name="InvalidNotification", unit=MetricUnit.Count, value=1)


def _parse(record: Any) -> tuple[str, Notification | None]:
    """(message id, the notification or None when the record is dropped)."""
    try:
        message_id, body = str(record.sns.message_id), record.sns.message
    except (KeyError, TypeError, AttributeError):
        _drop("unknown", "not an SNS record")
        return "unknown", None
    try:
        return message_id, Notification.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.error_count() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        _drop(message_id, f"not a notification ({exc.error_count()} errors, first at {where}: "
                          f"{first.get('msg', 'invalid')})")
    except (TypeError, ValueError) as exc:
        _drop(message_id, f"not a notification ({type(exc).__name__})")
    return message_id, None


def _deliver(notification: Notification, secret: str, url: str, deadline: float | None) -> int:
    """Send (returns the attempts); when Slack says the webhook is gone, try once more if the
    secret now holds another one."""
    sender = _sender(url, deadline)
    try:
        sender.send(render(notification))
        return sender.attempts
    except SlackPermanentError as exc:
        if exc.status not in _STALE_WEBHOOK:
            raise
        fresh = _fetch(secret, force=True)
        if fresh is None or fresh == url:
            raise
        logger.info("Slack webhook refused the message; the secret holds a new webhook, retrying with it",
                    extra={"status": exc.status})
        sender = _sender(fresh, deadline)
        sender.send(render(notification))
        return sender.attempts + exc.attempts


def _post(message: dict[str, str], notification: Notification, secret: str, deadline: float | None,
          delivery: Delivery) -> dict[str, int]:
    """Post one SNS message (keyed by `message["message_id"]`); the result is what its
    idempotency record keeps, so never the webhook URL. Raises only before Slack accepted it:
    an exception from here makes Powertools delete the record, and Lambda's retry post again."""
    url = configured_url(secret)  # cached by Powertools Parameters; a rotation refreshes it
    try:
        attempts = _deliver(notification, secret, url, deadline)
    except SlackError as exc:
        metrics.add_metric(name="SlackDeliveryFailed", unit=MetricUnit.Count, value=1)
        logger.error(f"Slack delivery failed: {exc}", extra={
            "message_id": message["message_id"], "cluster": notification.cluster, "status": exc.status,
            "attempts": exc.attempts,
        })
        raise
    # Slack accepted it: nothing else may run before Powertools records the success
    delivery.attempts = attempts
    return {"attempts": attempts}


def _sent(message_id: str, notification: Notification, delivery: Delivery) -> None:
    metrics.add_metric(name="SlackMessagesSent", unit=MetricUnit.Count, value=1)
    logger.info("Sent to Slack", extra={
        "message_id": message_id, "cluster": notification.cluster, "items": len(notification.items),
        "status": notification.status, "attempts": delivery.attempts,
    })


def _record_failed(message_id: str, exc: IdempotencyPersistenceLayerError) -> None:
    # Not raised: Lambda's retry would post again. The record stays INPROGRESS until this
    # invocation's timeout; a redelivery of the message after that posts it a second time.
    logger.error(f"Posted to Slack, but recording SNS message {message_id} as delivered failed: {exc}",
                 extra={"message_id": message_id})
    metrics.add_metric(name="SlackRecordFailed", unit=MetricUnit.Count, value=1)


@functools.cache
def _post_once() -> Any:
    # Built on first use, not at import: the table and endpoint come from the environment.
    persistence = DynamoDBPersistenceLayer(
        table_name=os.environ["TABLE_NAME"], key_attr="pk", sort_key_attr="sk", static_pk_value=IDEMPOTENCY_PK,
        expiry_attr=TTL_ATTRIBUTE, boto3_client=aws_clients.client("dynamodb"),
    )
    return idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=IDEMPOTENCY)(_post)


aws_clients.on_reset(_post_once.cache_clear)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    secret = os.environ["SLACK_WEBHOOK_SECRET"]
    deadline = _deadline(context)
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        records = list(SNSEvent(event).records)
    else:
        records = []
        _drop("unknown", "the event has no SNS Records")
    metrics.add_metric(name="NotificationsReceived", unit=MetricUnit.Count, value=len(records))
    IDEMPOTENCY.register_lambda_context(context)
    sent = dropped = 0
    for record in records:
        message_id, notification = _parse(record)
        if notification is None:
            dropped += 1
            continue
        delivery = Delivery()
        try:
            _post_once()(message={"message_id": message_id}, notification=notification, secret=secret,
                         deadline=deadline, delivery=delivery)
        except IdempotencyPersistenceLayerError as exc:
            if not delivery.posted:  # nothing posted: raise, so the retry does
                raise
            _record_failed(message_id, exc)  # save_success failed after Slack's 2xx
        if delivery.posted:
            _sent(message_id, notification, delivery)
        sent += 1
    return {"sent": sent, "dropped": dropped}
