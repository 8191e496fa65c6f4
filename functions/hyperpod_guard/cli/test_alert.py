"""`hyperpod-guard test-alert`: prove the wiring after a deploy, like `amtool alert add`.

Publishes ONE notification, marked as a test, to the deployed alerts topic, through the same
path real alerts take after the ledger (notify/sns.py): so the Slack notifier, AWS Chatbot and
email subscribers each get it, rendered the way they render alerts, with TEST in the Subject,
in the text and in Slack, and a `test` message attribute for subscription filter policies.
Nothing is read from or written to the ledger: there is no alert behind a test.

The topic is `--topic-arn`, or the one named after the stack's prefix (naming.alerts_topic_name),
looked up with ListTopics in the region. `--receiver NAME` sends it to that Slack receiver only
(its webhook secret `<prefix>/slack/NAME`, or the stack's own for `default`), whatever the rules'
routing says, and sets the `receiver` message attribute; without it, the `default` receiver gets it.
"""

from __future__ import annotations

import argparse
import getpass
import re
from datetime import UTC, datetime
from typing import Any

from .. import naming
from ..alerting import SYSTEM_CLUSTER
from ..findings import Finding, Severity, shape_of
from ..ledger import Reason
from ..notify.message import TEST_NOTE, FindingPayload, Notification, NotificationItem
from ..notify.sns import SnsPublisher
from .common import EXIT_OK, BadInput, add_aws_options, add_prefix_option, aws_client, aws_errors, exit_codes

#: the policy name a test notification's one item carries (no registered policy has it)
TEST_POLICY = "test-alert"


def test_notification(severity: Severity, receiver: str | None, region: str | None, now: datetime,
                      sender: str | None = None) -> Notification:
    """The one test notification: a firing item of `severity` about hyperpod-guard itself."""
    by = f" by {sender}" if sender else ""
    finding = Finding(
        policy=TEST_POLICY, severity=severity, cluster=SYSTEM_CLUSTER, condition="test",
        summary=f"Test notification{by}: if you can read this, alerts reach you",
        details={"note": TEST_NOTE, **({"receiver": receiver} if receiver else {})},
    )
    payload = FindingPayload(**shape_of(finding), fingerprint=finding.fingerprint)
    item = NotificationItem(reason=Reason.FIRST, finding=payload, first_seen=now)
    return Notification(cluster=SYSTEM_CLUSTER, region=region, sent_at=now, items=(item,), test=True,
                        receiver=receiver)


def find_topic(sns: Any, name: str) -> str:
    """The ARN of the topic called `name` in the client's region (ListTopics, every page)."""
    with aws_errors("SNS"):
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                    return str(topic["TopicArn"])
    raise BadInput(f"no SNS topic named {name} in {sns.meta.region_name}: pass the deployed stack's --prefix, "
                   "or --topic-arn")


def _sender() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return None


def cmd_test_alert(args: argparse.Namespace) -> int:
    if args.receiver is not None and re.fullmatch(naming.RECEIVER_NAME_PATTERN, args.receiver) is None:
        # the notifier reads the secret <prefix>/slack/NAME: only a name the rules' routing could use
        raise BadInput(f"--receiver {args.receiver!r} is not a receiver name: 1 to 63 lowercase letters, digits "
                       "and '-', starting with a letter or digit")
    sns = aws_client(args, "sns", "SNS")
    topic_arn = args.topic_arn or find_topic(sns, naming.alerts_topic_name(args.prefix))
    notification = test_notification(Severity(args.severity), args.receiver, sns.meta.region_name,
                                     datetime.now(UTC), _sender())
    with aws_errors("SNS"):
        message_id = SnsPublisher(topic_arn, sns).publish(notification)
    print(f"published test notification {message_id} to {topic_arn}")
    print(f"  subject: {notification.subject}")
    return EXIT_OK


def add_test_alert_command(commands: Any) -> None:
    """Add `test-alert` to the top-level subparsers."""
    command = commands.add_parser(
        "test-alert", help="publish one test notification through the deployed alerts topic",
        description="Publish one notification, clearly marked as a test, to the deployed alerts topic, so that "
        "every subscriber (the Slack notifier, AWS Chatbot, email) shows it the way it shows alerts: TEST in the "
        "Subject, the text and Slack, and a `test` message attribute subscription filter policies can match. "
        "The ledger of real alerts is not touched.",
        epilog=exit_codes("published", bad_input="bad input, the topic not found, or SNS unreachable or refusing"),
    )
    command.add_argument("--severity", choices=[s.value for s in Severity], default=Severity.WARNING.value,
                         help="the severity the test carries, for filter policies on `severity` (default: warning)")
    command.add_argument("--receiver", metavar="NAME",
                         help="send it to this Slack receiver only (the rules' routing names receivers; `default` is "
                         "the stack's webhook), and set the `receiver` message attribute, for subscriptions that "
                         "filter on it (default: the `default` receiver)")
    target = command.add_mutually_exclusive_group()
    target.add_argument("--topic-arn", metavar="ARN", help="publish to this topic (default: the stack's alerts topic)")
    add_prefix_option(target)
    add_aws_options(command)
    command.set_defaults(run=cmd_test_alert)
