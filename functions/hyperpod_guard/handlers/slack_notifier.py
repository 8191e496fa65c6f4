"""Slack notifier: SNS topic -> this Lambda -> the Slack incoming webhooks of the message's receivers.
Thin: Powertools around notify/delivery.py, which posts each message to each receiver its items are
routed to (only those items), once per SNS message id and receiver (and says what is left of
at-least-once).

Each SNS record carries one `Notification` (JSON, see notify/message.py), or the weekly `Digest`
(notify/digest.py, `"kind": "digest"`; delivery.parse_message tells them apart). A record that is
neither is logged, counted and dropped: retrying it cannot help. Anything that
may heal (a receiver's webhook secret not filled in yet, Slack down or rate limiting) raises, after
every other receiver got its part, so Lambda retries (posting only to the receivers that failed) and,
in the end, the on-failure destination keeps the message.

Environment: settings.SlackNotifierSettings (SLACK_WEBHOOK_SECRET, SLACK_RECEIVER_SECRET_PREFIX,
SLACK_SECRET_MAX_AGE, SLACK_TIMEOUT, SLACK_MAX_ATTEMPTS, TABLE_NAME, IDEMPOTENCY_TTL; for app mode
SLACK_MODE=app, SLACK_BOT_TOKEN_SECRET, SLACK_CHANNELS, SLACK_API_URL), read per invocation. App mode posts
through the Slack Web API as the app: threads, parent updates and buttons (notify/delivery.py AppDelivery).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from .. import aws_clients
from ..constants import Metric, Service
from ..notify.delivery import SlackDelivery, UnknownKindError, deadline, parse_message
from ..notify.message import Notification
from ..settings import SlackNotifierSettings
from .observability import count, make_logger, make_metrics, prime_at_init

if TYPE_CHECKING:
    from ..notify.digest import Digest

logger = make_logger()
metrics = make_metrics(Service.SLACK_NOTIFIER)
slack = SlackDelivery(logger, metrics)

aws_clients.on_reset(slack.reset)  # tests point the clients elsewhere


def prime() -> None:
    """Make what the first delivery would (observability.prime_at_init): its clients and stores."""
    slack.prime(SlackNotifierSettings.from_env())


def _drop(message_id: str, why: str) -> None:
    logger.error(f"Dropping SNS message {message_id}: {why}", extra={"message_id": message_id})
    count(metrics, Metric.INVALID_NOTIFICATION)


def _parse(record: Any) -> tuple[str, Notification | Digest | None]:
    """(message id, the notification (or digest) or None when the record is dropped)."""
    # the two fields Powertools' SNSEvent would read: its data_classes package imports ~40 event
    # classes (compiled from source at every cold start as deployed: benchmarks/cold_path.py)
    try:
        message_id, body = str(record["Sns"]["MessageId"]), record["Sns"]["Message"]
    except (KeyError, TypeError, AttributeError):
        _drop("unknown", "not an SNS record")
        return "unknown", None
    try:
        return message_id, parse_message(body)
    except UnknownKindError as exc:
        _drop(message_id, f"not a notification ({exc})")
    except ValidationError as exc:
        first: Mapping[str, Any] = exc.errors()[0] if exc.error_count() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        _drop(message_id, f"not a notification ({exc.error_count()} errors, first at {where}: "
                          f"{first.get('msg', 'invalid')})")
    except (TypeError, ValueError) as exc:
        _drop(message_id, f"not a notification ({type(exc).__name__})")
    return message_id, None


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    settings = SlackNotifierSettings.from_env()
    until = deadline(context)
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        records = list(event["Records"])
    else:
        records = []
        _drop("unknown", "the event has no SNS Records")
    count(metrics, Metric.NOTIFICATIONS_RECEIVED, len(records))
    sent = dropped = 0
    for record in records:
        message_id, notification = _parse(record)
        if notification is None:
            dropped += 1
            continue
        slack.deliver(message_id, notification, settings, context, until)
        sent += 1
    return {"sent": sent, "dropped": dropped}


prime_at_init(prime)
