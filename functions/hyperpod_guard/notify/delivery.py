"""Slack delivery for the notifier Lambda: the webhook URL from Secrets Manager, the POST (notify/slack.py
SlackSender) with one retry on a rotated webhook, and Powertools Idempotency keyed on the SNS message id,
so that a redelivered message is answered from its record instead of being posted again.

One message goes to each of its receivers (the rules' routing, Notification.receiver_names), each with
the items routed to it and the mentions its routes add, to the webhook in that receiver's secret:
`default`'s is SLACK_WEBHOOK_SECRET, receiver X's is SLACK_RECEIVER_SECRET_PREFIX + X. Each receiver's
post is remembered on its own (the key `<message id>#<receiver>`; `default` keeps the bare message id, the
key of the records written before there were receivers), so when one receiver fails, the others are still
posted to, the invocation raises, and Lambda's retry posts only to the one that failed.

Once Slack has accepted a message, the invocation must not fail (Lambda's retry would post it
again): nothing but recording the success runs between Slack's 2xx and that record; reporting
the delivery (log line, metric) comes after it; and when the record cannot be written, that is
logged and counted (`SlackRecordFailed`) and the invocation succeeds. What is left of
at-least-once is in docs/reliability.md (Caveats: "Slack: at least once in three narrow places").

Anything that may heal (the webhook secret not filled in yet, Slack down or rate limiting) raises,
so Lambda retries and, in the end, the on-failure destination keeps the message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import aws_clients
from ..constants import Metric
from ..ledger_store import IDEMPOTENCY_PK, TTL_ATTRIBUTE
from ..naming import RECEIVER_NAME_PATTERN
from ..settings import SlackNotifierSettings
from .message import DEFAULT_RECEIVER, Notification
from .slack import SlackError, SlackPermanentError, SlackSender, render, valid_webhook_url

#: time kept back from the Lambda timeout after the last POST: recording the delivery (one
#: UpdateItem, ~10 ms, more while botocore backs off from throttling) must finish before Lambda
#: stops the invocation, or its retry posts again; then logging, metrics, the error path
SAFETY_MARGIN_S = 10.0
#: Slack answers these when the webhook was revoked or its channel is gone: maybe the secret was rotated
_STALE_WEBHOOK = {403, 404, 410}
#: the idempotency records' key, after the function's name: `<function>.<RECORD_KEY>#<hash of the
#: message id>`. Powertools would derive it from the module and name of the decorated function; it is
#: fixed here so that moving or renaming that function cannot make records already written (kept
#: IDEMPOTENCY_TTL) miss a redelivery. This is the name the function had when the records began.
RECORD_KEY = "hyperpod_guard.handlers.slack_notifier._post"
#: Powertools' function name when AWS_LAMBDA_FUNCTION_NAME is not set (tests, the demo)
_NO_FUNCTION_NAME = "test-func"

# resolved at call time, so tests can replace it
sleep = time.sleep


class SlackNotConfiguredError(RuntimeError):
    """A receiver's webhook secret holds no usable URL (empty or still the placeholder) or does not exist."""


@dataclass
class Delivery:
    """What posting one message did, readable after Powertools raised on recording it."""

    attempts: int = 0  # 0: not posted by this invocation

    @property
    def posted(self) -> bool:
        return self.attempts > 0


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


def _missing(exc: Exception) -> str | None:
    """What Secrets Manager did not find: "secret" (there is no such secret), "value" (it exists
    without an AWSCURRENT value), or None (another error: access denied, throttling, ...)."""
    cause = exc.__cause__ or exc.__context__  # Powertools re-raises inside `except`
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    if code != "ResourceNotFoundException":
        return None
    return "value" if "secret value" in str(cause) else "secret"


@dataclass(frozen=True)
class Receiver:
    """A Slack receiver as the notifier posts to it: its name and the secret holding its webhook."""

    name: str
    #: None: the name is not a receiver name (a test notification's, say), so no secret is read for it
    secret: str | None

    @classmethod
    def named(cls, name: str, settings: SlackNotifierSettings) -> Receiver:
        if name == DEFAULT_RECEIVER:
            return cls(name, settings.webhook_secret)
        valid = re.fullmatch(RECEIVER_NAME_PATTERN, name) is not None
        return cls(name, f"{settings.receiver_secret_prefix}{name}" if valid else None)

    def key(self, message_id: str) -> str:
        """What its delivery of SNS message `message_id` is remembered by. `default` keeps the bare
        message id: records written before there were receivers still answer a redelivery."""
        return message_id if self.name == DEFAULT_RECEIVER else f"{message_id}#{self.name}"


def routed(notification: Notification) -> list[tuple[str, Notification]]:
    """Who gets what of one message: each receiver the items are routed to, with those items; a test
    notification that names a receiver (`test-alert --receiver`) goes, whole, to that one only."""
    if notification.test and notification.receiver:
        return [(notification.receiver, notification)]
    return [(name, part) for name in notification.receiver_names
            if (part := notification.for_receiver(name)) is not None]


def receivers(notification: Notification, settings: SlackNotifierSettings) -> list[tuple[Receiver, Notification]]:
    """`routed`, with each receiver's secret."""
    return [(Receiver.named(name, settings), part) for name, part in routed(notification)]


def _parameters() -> Any:
    """Powertools' `parameters` module, with its default secrets provider made on our shared session's
    client (not on a botocore session of its own)."""
    # imported here: parameters pulls in boto3, which an invalid message never needs
    from aws_lambda_powertools.utilities import parameters

    if "secrets" not in parameters.base.DEFAULT_PROVIDERS:
        parameters.base.DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
            boto3_client=aws_clients.client("secretsmanager"))
    return parameters


def deadline(context: LambdaContext) -> float | None:
    """When the last POST must have ended (`time.monotonic()`): the invocation's end less SAFETY_MARGIN_S."""
    try:
        remaining_ms = context.get_remaining_time_in_millis()
    except AttributeError:
        return None
    return time.monotonic() + max(remaining_ms / 1000 - SAFETY_MARGIN_S, 0.0)


class SlackDelivery:
    """Posts notifications to the webhook in a Secrets Manager secret, once per SNS message id.

    One per Lambda container (the handler's module level), logging and counting through the
    handler's Powertools Logger and Metrics. Its idempotency store is built on first use, from that
    invocation's TABLE_NAME and IDEMPOTENCY_TTL; `reset()` drops it (aws_clients.reset does).
    """

    def __init__(self, logger: Logger, metrics: Metrics):
        self.logger = logger
        self.metrics = metrics
        self._idempotency: tuple[IdempotencyConfig, Callable[..., Any]] | None = None

    def reset(self) -> None:
        from aws_lambda_powertools.utilities.parameters import base

        self._idempotency = None
        base.DEFAULT_PROVIDERS.pop("secrets", None)  # it holds a client of the session being dropped

    def prime(self, settings: SlackNotifierSettings) -> None:
        """Make what the first delivery would make, without calling AWS or Slack: the idempotency
        store with its DynamoDB client, and the secrets provider with its client."""
        self._post_once(settings)
        _parameters()

    def deliver(self, message_id: str, notification: Notification, settings: SlackNotifierSettings,
                context: LambdaContext, until: float | None) -> None:
        """Post one SNS message to each of its receivers, to each once per message id; `until`:
        `deadline(context)`. Every receiver is tried; then, if any failed, its error is raised (all of
        them in an ExceptionGroup when several failed), so that Lambda's retry posts to those: the
        others answer it from their idempotency records. A receiver's error raises only while nothing
        was posted to it."""
        config, _ = self._post_once(settings)
        config.register_lambda_context(context)  # the in-progress lock lasts until the invocation's timeout
        targets = receivers(notification, settings)
        failed: list[tuple[Receiver, Exception]] = []
        for receiver, part in targets:
            try:
                self._deliver_to(receiver, message_id, part, settings, until)
            except Exception as exc:  # noqa: BLE001 - the other receivers still get theirs; raised below
                failed.append((receiver, exc))
        if not failed:
            return
        if len(targets) > 1:
            names = ", ".join(r.name for r, _ in failed)
            self.logger.error(f"Slack delivery failed for {len(failed)} of {len(targets)} receivers ({names}); "
                              "raising so that Lambda retries them (the others are not posted again)",
                              extra={"message_id": message_id, "receivers": [r.name for r, _ in failed]})
        if len(failed) == 1:
            raise failed[0][1]
        raise ExceptionGroup(f"Slack delivery failed for receivers {', '.join(r.name for r, _ in failed)}",
                             [exc for _, exc in failed])

    def _deliver_to(self, receiver: Receiver, message_id: str, notification: Notification,
                    settings: SlackNotifierSettings, until: float | None) -> None:
        _, post_once = self._post_once(settings)
        delivery = Delivery()
        try:
            post_once(message={"message_id": receiver.key(message_id)}, notification=notification,
                      settings=settings, until=until, delivery=delivery, receiver=receiver)
        except IdempotencyPersistenceLayerError as exc:
            if not delivery.posted:  # nothing posted: raise, so the retry does
                raise
            self._record_failed(message_id, receiver, exc)  # save_success failed after Slack's 2xx
        if delivery.posted:
            self._sent(message_id, receiver, notification, delivery)

    # -- the idempotent post ----------------------------------------------------------------------

    def _post_once(self, settings: SlackNotifierSettings) -> tuple[IdempotencyConfig, Callable[..., Any]]:
        # Built on first use, not at import: the table comes from the environment.
        if self._idempotency is None:
            config = IdempotencyConfig(
                event_key_jmespath="message_id", raise_on_no_idempotency_key=True, response_hook=self._answered_again,
                expires_after_seconds=settings.idempotency_ttl,
            )
            persistence = DynamoDBPersistenceLayer(
                table_name=settings.table_name, key_attr="pk", sort_key_attr="sk", static_pk_value=IDEMPOTENCY_PK,
                expiry_attr=TTL_ATTRIBUTE, boto3_client=aws_clients.client("dynamodb"),
            )
            post = idempotent_function(
                data_keyword_argument="message", persistence_store=persistence, config=config,
                key_prefix=f"{settings.function_name or _NO_FUNCTION_NAME}.{RECORD_KEY}",
            )
            self._idempotency = config, post(self._post)
        return self._idempotency

    def _post(self, message: dict[str, str], notification: Notification, settings: SlackNotifierSettings,
              until: float | None, delivery: Delivery, receiver: Receiver) -> dict[str, Any]:
        """Post one SNS message to one receiver (keyed by `message["message_id"]`, Receiver.key); the
        result is what its idempotency record keeps, so never the webhook URL. Raises only before Slack
        accepted it: an exception from here makes Powertools delete the record, and Lambda's retry post again."""
        url = self.configured_url(settings, receiver)  # cached by Powertools Parameters; a rotation refreshes it
        try:
            attempts = self._send(notification, settings, receiver, url, until)
        except SlackError as exc:
            self.metrics.add_metric(name=Metric.SLACK_DELIVERY_FAILED, unit=MetricUnit.Count, value=1)
            self.logger.error(f"Slack delivery failed: {exc}", extra={
                "message_id": message["message_id"], "receiver": receiver.name, "cluster": notification.cluster,
                "status": exc.status, "attempts": exc.attempts,
            })
            raise
        # Slack accepted it: nothing else may run before Powertools records the success
        delivery.attempts = attempts
        return {"attempts": attempts, "receiver": receiver.name}

    def _send(self, notification: Notification, settings: SlackNotifierSettings, receiver: Receiver, url: str,
              until: float | None) -> int:
        """Send (returns the attempts); when Slack says the webhook is gone, try once more if the
        secret now holds another one."""
        payload = render(notification, receiver.name)
        sender = self._sender(url, settings, receiver, until)
        try:
            sender.send(payload)
            return sender.attempts
        except SlackPermanentError as exc:
            if exc.status not in _STALE_WEBHOOK:
                raise
            fresh = self._fetch(settings, receiver, force=True)
            if fresh is None or fresh == url:
                raise
            self.logger.info("Slack webhook refused the message; the secret holds a new webhook, retrying with it",
                             extra={"status": exc.status, "receiver": receiver.name})
            sender = self._sender(fresh, settings, receiver, until)
            sender.send(payload)
            return sender.attempts + exc.attempts

    def _sender(self, url: str, settings: SlackNotifierSettings, receiver: Receiver,
                until: float | None) -> SlackSender:
        return SlackSender(
            url, timeout=settings.timeout, max_attempts=settings.max_attempts,
            sleep=lambda seconds: sleep(seconds), deadline=until,
            on_unanswered=lambda attempt, reason: self._unanswered(receiver, attempt, reason),
        )

    # -- the webhook secret -----------------------------------------------------------------------

    def configured_url(self, settings: SlackNotifierSettings, receiver: Receiver) -> str:
        """The receiver's webhook URL, fetched again once if the cached value is unusable (someone may
        just have filled the secret in); raises SlackNotConfiguredError when there is still none."""
        if receiver.secret is None:
            raise self._not_configured(receiver, f"Slack receiver {receiver.name!r} is not a receiver name "
                                                 f"({RECEIVER_NAME_PATTERN}): no secret to read")
        url = self._fetch(settings, receiver) or self._fetch(settings, receiver, force=True)
        if url is None:
            raise self._not_configured(receiver, f"Slack webhook secret {receiver.secret} is empty: "
                                                 "put the webhook URL into it")
        return url

    def _fetch(self, settings: SlackNotifierSettings, receiver: Receiver, *, force: bool = False) -> str | None:
        parameters = _parameters()
        name = receiver.secret
        if name is None:  # configured_url said so already
            return None
        try:
            value = parameters.get_secret(name, max_age=settings.secret_max_age, force_fetch=force)
        except parameters.exceptions.GetParameterError as exc:
            missing = _missing(exc)
            if missing == "value":
                return None  # created without a value: the same as empty
            if missing == "secret":
                raise self._not_configured(receiver, f"Slack webhook secret {name} does not exist: create it "
                                                     "holding the webhook URL") from exc
            self.logger.error(f"Slack webhook secret {name} could not be read: {exc}",
                              extra={"secret": name, "receiver": receiver.name})
            raise
        return webhook_url(value)

    def _not_configured(self, receiver: Receiver, message: str) -> SlackNotConfiguredError:
        self.logger.error(message, extra={"secret": receiver.secret, "receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_NOT_CONFIGURED, unit=MetricUnit.Count, value=1)
        return SlackNotConfiguredError(message)

    # -- reporting --------------------------------------------------------------------------------

    def _answered_again(self, response: Any, idempotent_data: DataRecord) -> Any:  # IdempotentHookFunction
        # records written before there were receivers are the default receiver's, and do not say so
        receiver = response.get("receiver", DEFAULT_RECEIVER) if isinstance(response, dict) else DEFAULT_RECEIVER
        self.logger.info("SNS message already delivered to Slack; not posting it again", extra={"receiver": receiver})
        self.metrics.add_metric(name=Metric.SLACK_DUPLICATES_SKIPPED, unit=MetricUnit.Count, value=1)
        return response

    def _unanswered(self, receiver: Receiver, attempt: int, reason: str) -> None:
        # retried all the same (an alert is never dropped for this): Slack may show it twice
        self.logger.warning(f"Slack webhook received attempt {attempt} but did not answer ({reason}); "
                            "if Slack posted it, the retry posts it again",
                            extra={"attempt": attempt, "receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_POSSIBLE_DUPLICATE, unit=MetricUnit.Count, value=1)

    def _sent(self, message_id: str, receiver: Receiver, notification: Notification, delivery: Delivery) -> None:
        self.metrics.add_metric(name=Metric.SLACK_MESSAGES_SENT, unit=MetricUnit.Count, value=1)
        self.logger.info("Sent to Slack", extra={
            "message_id": message_id, "receiver": receiver.name, "cluster": notification.cluster,
            "items": len(notification.items), "status": notification.status, "attempts": delivery.attempts,
        })

    def _record_failed(self, message_id: str, receiver: Receiver, exc: IdempotencyPersistenceLayerError) -> None:
        # Not raised: Lambda's retry would post again. The record stays INPROGRESS until this
        # invocation's timeout; a redelivery of the message after that posts it a second time.
        self.logger.error(f"Posted to Slack, but recording SNS message {message_id} as delivered failed: {exc}",
                          extra={"message_id": message_id, "receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_RECORD_FAILED, unit=MetricUnit.Count, value=1)
