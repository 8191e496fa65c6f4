"""Schedule -> Lambda: the weekly digest (issue 21; deployed with `-c weeklyDigest=true`, infra/digest.py).

Reads the last DIGEST_DAYS days of the episode archive (archive.ArchiveReader: the episodes that resolved
in the period, HyperPod's repair facts) and the alerts still open in the ledger (each counted up to now),
builds the reliability report (reliability.build_report) and publishes ONE message of kind `digest` to the
alerts topic (notify/digest.py): the Slack notifier renders it as a digest for the rules' `routing.default`
receivers, email and Chatbot get their own texts. An empty week says so.

What cannot be read (the archive's bucket missing or denied, the ledger, SSM) fails the run with an error
that says which, counted as DigestFailed; nothing is published then (a digest from half the facts would
be wrong, not partial). Lambda retries a failed scheduled run twice.

Environment: settings.DigestSettings (ARCHIVE_BUCKET, TABLE_NAME, TOPIC_ARN, RULES_PATH, DIGEST_DAYS, DIGEST_TOP).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import aws_clients, clock
from ..constants import Metric, Service
from ..settings import DigestSettings
from .observability import capture_handler, count, make_logger, make_metrics, prime_at_init

if TYPE_CHECKING:
    from ..notify.digest import Digest

logger = make_logger()
metrics = make_metrics(Service.DIGEST)


class DigestFailed(RuntimeError):
    """The digest could not be made or published: the message says what could not be read or written."""


@functools.cache
def settings() -> DigestSettings:
    return DigestSettings.from_env()


@functools.cache
def rules_store() -> Any:
    from ..rules_store import RulesStore

    s = settings()
    return RulesStore(s.rules_path, s.rules_max_age)


aws_clients.on_reset(settings.cache_clear)
aws_clients.on_reset(rules_store.cache_clear)


def prime() -> None:
    """What the first run loads (observability.prime_at_init): the report, the archive reader, the clients."""
    from .. import archive, reliability  # noqa: F401 - into the snapshot
    from ..notify import digest  # noqa: F401

    for service in ("s3", "dynamodb", "sns"):
        aws_clients.client(service)
    rules_store().prime()


def build(now: datetime, account: str | None) -> Digest:
    """The digest of the DIGEST_DAYS days up to `now`. Raises DigestFailed naming what could not be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..archive import ArchiveReader, open_episodes, with_open
    from ..ledger_store import LedgerStore
    from ..notify.digest import Digest
    from ..reliability import build_report

    s = settings()
    if not s.archive_bucket:
        raise DigestFailed("ARCHIVE_BUCKET is not set: the digest reads the episode archive")
    start = now - timedelta(days=s.days)
    reader = ArchiveReader(aws_clients.client("s3"), s.archive_bucket)
    try:
        archived = list(reader.episodes(start.date(), now.date()))
        repairs = list(reader.repairs(start.date(), now.date()))
    except (BotoCoreError, ClientError) as exc:
        raise DigestFailed(f"the episode archive (s3://{s.archive_bucket}) could not be read: {_why(exc)}") from exc
    try:
        records = LedgerStore(s.table_name, aws_clients.client("dynamodb")).open_alerts()
        still_open = open_episodes(records, now=now, account=account, region=s.region)
        receivers = tuple(rules_store().load().rules.routing.default)
    except (BotoCoreError, ClientError) as exc:
        raise DigestFailed(f"the open alerts or the rules could not be read: {_why(exc)}") from exc
    report = build_report(with_open(archived, still_open), repairs, start=start, end=now, now=now)
    return Digest.of(report, receivers=receivers, sent_at=now, account=account, region=s.region, top=s.top)


def publish(digest: Digest) -> str:
    """One SNS message (MessageStructure json: a text per protocol); returns its MessageId."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = aws_clients.client("sns").publish(
            TopicArn=settings().topic_arn, Subject=digest.subject, Message=digest.sns_message(),
            MessageStructure="json", MessageAttributes=digest.attributes())
    except (BotoCoreError, ClientError) as exc:
        raise DigestFailed(f"the alerts topic refused the digest: {_why(exc)}") from exc
    return str(response["MessageId"])


def _why(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _account(context: LambdaContext) -> str | None:
    """This function's account, from its ARN (arn:aws:lambda:<region>:<account>:function:<name>)."""
    parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4].isdigit() else None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@capture_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = clock.now()
    try:
        digest = build(now, _account(context))
        message_id = publish(digest)
    except DigestFailed as exc:
        logger.error(f"weekly digest not published: {exc}")
        count(metrics, Metric.DIGEST_FAILED)
        raise
    count(metrics, Metric.DIGESTS_PUBLISHED)
    summary = {"message_id": message_id, "start": digest.start.isoformat(), "end": digest.end.isoformat(),
               "incidents": digest.totals.incidents, "open": digest.totals.open, "clusters": len(digest.clusters),
               "receivers": list(digest.receivers)}
    logger.info("weekly digest published", extra=summary)
    return summary


prime_at_init(prime)
