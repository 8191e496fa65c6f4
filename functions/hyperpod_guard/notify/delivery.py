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

App mode (SLACK_MODE=app, `AppDelivery`): the same receivers, idempotency records and failure semantics,
but each receiver's part goes to its channel (SLACK_CHANNELS) through the Web API with the bot token:
items without a parent message for their episode get one new parent (chat.postMessage, with buttons);
items with one get a reply in its thread and the parent updated (chat.update) to show their state; a
parent deleted in Slack is replaced by a new one. A delivery is several Slack calls: each one's success
is recorded in the ledger table right after it (notify/slack_threads.py), so the invocation may fail
half way (and Lambda's retry does only what was not done).

The weekly digest (notify/digest.py) travels the same topic as a message of its own kind (`"kind": "digest"`
in the body; `parse_message` tells them apart): it goes to its `receivers` (the rules' routing.default), once
per message id and receiver like an alert, rendered by slack.render_digest; in app mode as a plain message
(no thread, no buttons, nothing remembered but the idempotency record).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from .message import DEFAULT_RECEIVER, Notification, NotificationItem
from .slack import (
    SlackError,
    SlackPermanentError,
    SlackSender,
    render,
    render_digest,
    render_parent,
    render_reply,
    secret_text,
    valid_webhook_url,
)
from .slack import secrets_parameters as _parameters

if TYPE_CHECKING:
    from .digest import Digest
    from .slack_app import SlackWebApi
    from .slack_threads import ThreadStore

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
    """The webhook URL from a secret's value (the URL, or JSON {"url": …}), or None when there is none
    worth trying."""
    text = secret_text(value, "url", "webhook_url")
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


def receivers(notification: Notification | Digest,
              settings: SlackNotifierSettings) -> list[tuple[Receiver, Notification | Digest]]:
    """`routed`, with each receiver's secret; a digest goes whole to each of its receivers."""
    if not isinstance(notification, Notification):
        return [(Receiver.named(name, settings), notification) for name in dict.fromkeys(notification.receivers)]
    return [(Receiver.named(name, settings), part) for name, part in routed(notification)]


#: the message kinds on the alerts topic, by the body's `kind` (an alert's body has none); a digest's model is
#: imported with the first digest (once a week), not at every cold start of the notifier
DIGEST_KIND = "digest"
MESSAGE_KINDS = ("alert", DIGEST_KIND)


class UnknownKindError(ValueError):
    """A body whose `kind` is none of MESSAGE_KINDS (a newer publisher's, say)."""


def message_kind(body: Any) -> str:
    """The body's top-level `kind` ("alert" when it has none). Alerts carry no `kind` key, so the body is
    parsed a second time only when the word appears in it (a finding's details may hold one, too)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    if not isinstance(text, str) or '"kind"' not in text:
        return "alert"
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return "alert"  # the model's own parse says what is wrong with it
    kind = data.get("kind", "alert") if isinstance(data, dict) else "alert"
    return kind if isinstance(kind, str) else repr(kind)


def parse_message(body: Any) -> Notification | Digest:
    """The model of an SNS body, discriminated on its `kind`: raises pydantic's ValidationError (or
    UnknownKindError) for anything else."""
    kind = message_kind(body)
    if kind not in MESSAGE_KINDS:
        raise UnknownKindError(f"unknown message kind {kind[:40]!r}")
    if kind == DIGEST_KIND:
        from .digest import Digest

        return Digest.model_validate_json(body)
    return Notification.model_validate_json(body)


def _about(message: Notification | Digest) -> dict[str, Any]:
    """What a log line says of the message it is about."""
    if not isinstance(message, Notification):
        return {"kind": DIGEST_KIND, "clusters": len(message.clusters), "incidents": message.totals.incidents}
    return {"cluster": message.cluster}


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
        if settings.mode == "app":
            import slack_sdk  # noqa: F401 - into the snapshot (SnapStart), not into the first delivery

    def deliver(self, message_id: str, notification: Notification | Digest, settings: SlackNotifierSettings,
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

    def _deliver_to(self, receiver: Receiver, message_id: str, notification: Notification | Digest,
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

    def _post(self, message: dict[str, str], notification: Notification | Digest, settings: SlackNotifierSettings,
              until: float | None, delivery: Delivery, receiver: Receiver) -> dict[str, Any]:
        """Post one SNS message to one receiver (keyed by `message["message_id"]`, Receiver.key); the
        result is what its idempotency record keeps, so never the webhook URL. Raises only before Slack
        accepted it: an exception from here makes Powertools delete the record, and Lambda's retry post again."""
        if settings.mode == "app":
            return self._post_app(message["message_id"], notification, settings, until, delivery, receiver)
        url = self.configured_url(settings, receiver)  # cached by Powertools Parameters; a rotation refreshes it
        try:
            attempts = self._send(notification, settings, receiver, url, until)
        except SlackError as exc:
            self.metrics.add_metric(name=Metric.SLACK_DELIVERY_FAILED, unit=MetricUnit.Count, value=1)
            self.logger.error(f"Slack delivery failed: {exc}", extra={
                "message_id": message["message_id"], "receiver": receiver.name, **_about(notification),
                "status": exc.status, "attempts": exc.attempts,
            })
            raise
        # Slack accepted it: nothing else may run before Powertools records the success
        delivery.attempts = attempts
        return {"attempts": attempts, "receiver": receiver.name}

    def _send(self, notification: Notification | Digest, settings: SlackNotifierSettings, receiver: Receiver,
              url: str, until: float | None) -> int:
        """Send (returns the attempts); when Slack says the webhook is gone, try once more if the
        secret now holds another one."""
        payload = render_digest(notification) if not isinstance(notification, Notification) else render(notification,
                                                                                                   receiver.name)
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

    # -- app mode ---------------------------------------------------------------------------------

    def _post_app(self, key: str, notification: Notification | Digest, settings: SlackNotifierSettings,
                  until: float | None, delivery: Delivery, receiver: Receiver) -> dict[str, Any]:
        """App mode's `_post`: raises (Powertools deletes the record, Lambda retries) on any failure;
        what was done before it is recorded step by step, so the retry skips it."""
        channel = settings.channels.get(receiver.name)
        if not channel:
            raise self._not_configured(receiver, f"Slack receiver {receiver.name!r} has no channel in SLACK_CHANNELS "
                                                 "(app mode): add it, e.g. {\"" + receiver.name + "\": \"C0123ABCD\"}")
        from .slack_app import SlackAppNotConfiguredError, app_api
        from .slack_threads import ThreadStore

        try:
            api = app_api(settings.app, deadline=until, sleep=lambda seconds: sleep(seconds),
                          on_rate_limited=lambda method, delay: self._rate_limited(receiver, method, delay))
        except SlackAppNotConfiguredError as exc:
            raise self._not_configured(receiver, str(exc)) from None
        app = AppDelivery(api, ThreadStore(aws_clients.client("dynamodb"), settings.table_name), self, receiver)
        try:
            app.deliver(key, notification, channel, datetime.now(UTC))
        except SlackError as exc:
            self.metrics.add_metric(name=Metric.SLACK_DELIVERY_FAILED, unit=MetricUnit.Count, value=1)
            self.logger.error(f"Slack delivery failed: {exc}", extra={
                "message_id": key, "receiver": receiver.name, **_about(notification), "channel": channel,
                "status": exc.status, "attempts": exc.attempts, "error": getattr(exc, "error", None),
                "done": app.done(),
            })
            raise
        delivery.attempts = max(app.calls, 1)
        return {"attempts": delivery.attempts, "receiver": receiver.name, **app.done()}

    def _rate_limited(self, receiver: Receiver, method: str, delay: float) -> None:
        self.logger.info(f"Slack rate limited {method}; retrying in {delay:g}s", extra={"receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_RATE_LIMITED, unit=MetricUnit.Count, value=1)

    def app_record_failed(self, key: str, receiver: Receiver, what: str, exc: Exception) -> None:
        # not raised: Slack did it, and the retry would do it again; the next message may repeat it
        self.logger.error(f"Slack {what} done, but recording it failed: {exc}",
                          extra={"message_id": key, "receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_RECORD_FAILED, unit=MetricUnit.Count, value=1)

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
        provider = _parameters()
        name = receiver.secret
        if name is None:  # configured_url said so already
            return None
        try:
            value = provider.get_secret(name, max_age=settings.secret_max_age, force_fetch=force)
        except provider.exceptions.GetParameterError as exc:
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

    def _sent(self, message_id: str, receiver: Receiver, notification: Notification | Digest,
              delivery: Delivery) -> None:
        self.metrics.add_metric(name=Metric.SLACK_MESSAGES_SENT, unit=MetricUnit.Count, value=1)
        if not isinstance(notification, Notification):
            about: dict[str, Any] = _about(notification)
        else:
            about = {"cluster": notification.cluster, "items": len(notification.items), "status": notification.status}
        self.logger.info("Sent to Slack", extra={
            "message_id": message_id, "receiver": receiver.name, **about, "attempts": delivery.attempts,
        })

    def _record_failed(self, message_id: str, receiver: Receiver, exc: IdempotencyPersistenceLayerError) -> None:
        # Not raised: Lambda's retry would post again. The record stays INPROGRESS until this
        # invocation's timeout; a redelivery of the message after that posts it a second time.
        self.logger.error(f"Posted to Slack, but recording SNS message {message_id} as delivered failed: {exc}",
                          extra={"message_id": message_id, "receiver": receiver.name})
        self.metrics.add_metric(name=Metric.SLACK_RECORD_FAILED, unit=MetricUnit.Count, value=1)


class AppDelivery:
    """One receiver's part of one SNS message in app mode (see the module's docstring): the threads
    first (update the parent, then reply), then one new parent for the items that have none."""

    def __init__(self, api: SlackWebApi, threads: ThreadStore, owner: SlackDelivery, receiver: Receiver):
        self.api = api
        self.threads = threads
        self.owner = owner
        self.receiver = receiver
        #: Slack calls that succeeded, and what they were
        self.calls = self.posted = self.replies = self.updates = self.gone = 0

    def done(self) -> dict[str, int]:
        return {"parents": self.posted, "replies": self.replies, "updates": self.updates, "gone": self.gone}

    def deliver(self, key: str, notification: Notification | Digest, channel: str, now: datetime) -> None:
        if not isinstance(notification, Notification):  # not an alert: a plain message, no thread, no buttons
            self.api.post(channel, render_digest(notification))
            self.calls += 1
            return
        if notification.test:  # no alert behind it: no thread, no buttons, nothing to remember
            self.api.post(channel, render(notification, self.receiver.name))
            self._did(Metric.SLACK_PARENTS_POSTED)
            return
        as_of = notification.sent_at or now
        by_thread: dict[str, list[NotificationItem]] = {}
        new: list[NotificationItem] = []
        #: news of an episode a newer one superseded: it updates its own parent, and posts nothing
        stale: set[str] = set()
        for item in notification.items:
            episode = self.threads.episode(notification.cluster, item.finding.fingerprint, self.receiver.name,
                                           item.first_seen)
            if episode.superseded:
                stale.add(item.finding.fingerprint)
            if episode.thread is not None and episode.thread.channel == channel:
                by_thread.setdefault(episode.thread.ts, []).append(item)
            elif not episode.superseded:
                new.append(item)
        for ts, items in by_thread.items():
            if not self._in_thread(key, notification, channel, ts, items, as_of, now, stale):
                new.extend(item for item in items if item.finding.fingerprint not in stale)
        if new:
            self._new_parent(key, notification.model_copy(update={"items": tuple(new)}), channel, as_of, now)

    def _in_thread(self, key: str, notification: Notification, channel: str, ts: str, items: list[NotificationItem],
                   as_of: datetime, now: datetime, stale: set[str]) -> bool:
        """Update the parent and reply in its thread (with the items not `stale`); False when the parent is
        gone (a new one is due)."""
        from .slack_app import MessageGone

        cluster, receiver = notification.cluster, self.receiver.name
        parent, fresh = self.threads.apply(cluster, channel, ts, items, as_of, now)
        fresh = [item for item in fresh if item.finding.fingerprint not in stale]
        if parent is None or parent.gone:
            return False
        if parent.shown < parent.version:
            try:
                self.api.update(channel, ts, render_parent(parent.notification, receiver, parent.states))
            except MessageGone:
                self._did(Metric.SLACK_PARENTS_GONE, call=False)
                self.owner.logger.warning("Slack parent message is gone; posting a new one",
                                          extra={"receiver": receiver, "channel": channel, "ts": ts})
                self._record(key, "marking a parent gone", lambda: self.threads.mark_gone(cluster, channel, ts))
                return False
            self._did(Metric.SLACK_PARENTS_UPDATED)
            self._record(key, "an update", lambda: self.threads.mark_shown(cluster, channel, ts, parent.version))
        if fresh and key not in parent.posted:
            reply = notification.model_copy(update={"items": tuple(fresh)})
            self.api.post(channel, render_reply(reply, receiver), thread_ts=ts)
            self._did(Metric.SLACK_THREAD_REPLIES)
            self._record(key, "a reply", lambda: self.threads.mark_posted(cluster, channel, ts, key))
        return True

    def _new_parent(self, key: str, notification: Notification, channel: str, as_of: datetime, now: datetime) -> None:
        from .slack_threads import Parent, merge

        receiver = self.receiver.name
        shown, states, _ = merge(notification.model_copy(update={"items": ()}), {}, notification.items, as_of)
        ts = self.api.post(channel, render_parent(shown, receiver, states))
        self._did(Metric.SLACK_PARENTS_POSTED)
        parent = Parent(notification.cluster, receiver, channel, ts, shown, states, posted=frozenset({key}))
        self._record(key, "a parent", lambda: self.threads.create(parent, now))

    def _did(self, metric: Metric, *, call: bool = True) -> None:
        self.calls += call
        metrics = self.owner.metrics
        if metric is Metric.SLACK_PARENTS_POSTED:
            self.posted += 1
            metrics.add_metric(name=Metric.SLACK_PARENTS_POSTED, unit=MetricUnit.Count, value=1)
        elif metric is Metric.SLACK_THREAD_REPLIES:
            self.replies += 1
            metrics.add_metric(name=Metric.SLACK_THREAD_REPLIES, unit=MetricUnit.Count, value=1)
        elif metric is Metric.SLACK_PARENTS_UPDATED:
            self.updates += 1
            metrics.add_metric(name=Metric.SLACK_PARENTS_UPDATED, unit=MetricUnit.Count, value=1)
        else:
            self.gone += 1
            metrics.add_metric(name=Metric.SLACK_PARENTS_GONE, unit=MetricUnit.Count, value=1)

    def _record(self, key: str, what: str, write: Callable[[], None]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            write()
        except (BotoCoreError, ClientError) as exc:
            self.owner.app_record_failed(key, self.receiver, what, exc)
