"""Resource names, shared by the CDK stack (infra/) and the local stand-ins (local/provision.py),
so that the demo and the tests run against the names `cdk deploy` creates."""

from __future__ import annotations

import re

DEFAULT_PREFIX = "hyperpod-guard"
#: a Slack receiver's name (the rules' routing names receivers; each but `default` is a secret of its own)
RECEIVER_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
#: the receiver whose secret is the stack's own webhook secret (slack_secret_name)
DEFAULT_RECEIVER = "default"
#: an S3 bucket name: 3-63 lowercase letters, digits, '-' and '.', a letter or digit at each end
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def table_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-ledger"


def alerts_topic_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-alerts"


def slack_secret_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/slack-webhook"


def slack_receiver_secret_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    """Where the secrets of the named Slack receivers (rules' routing) live: one per receiver."""
    return f"{prefix}/slack/"


def slack_receiver_secret_name(prefix: str, receiver: str) -> str:
    """The secret holding receiver `receiver`'s incoming-webhook URL (DEFAULT_RECEIVER's is slack_secret_name)."""
    return f"{slack_receiver_secret_prefix(prefix)}{receiver}"


def slack_bot_token_secret_name(prefix: str) -> str:
    """Slack app mode: the secret holding the app's bot token (`xoxb-…`)."""
    return f"{prefix}/slack-bot-token"


def slack_signing_secret_name(prefix: str) -> str:
    """Slack app mode: the secret holding the app's signing secret (the interactivity endpoint checks with it)."""
    return f"{prefix}/slack-signing-secret"


def archive_bucket_name(prefix: str, account: str, region: str) -> str:
    """The episode archive's bucket (archive.py): `<prefix>-archive-<account>-<region>`, lower case.
    Bucket names are global: the account and region make it unique. Checked against S3's rules when
    the account and region are known values (a CDK deploy-time token is passed through as is)."""
    name = f"{prefix.lower()}-archive-{account}-{region}"
    if account.isdigit() and re.fullmatch(r"[a-z0-9-]+", region) and (
            not _BUCKET_NAME.fullmatch(name) or ".." in name):
        raise ValueError(f"{name!r} is not a valid S3 bucket name (3-63 characters): use a shorter prefix")
    return name


def rules_path(prefix: str = DEFAULT_PREFIX) -> str:
    return f"/{prefix}/rules"
