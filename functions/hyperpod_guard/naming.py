"""Resource names, shared by the CDK stack (infra/) and the local stand-ins (local/provision.py),
so that the demo and the tests run against the names `cdk deploy` creates."""

from __future__ import annotations

DEFAULT_PREFIX = "hyperpod-guard"
#: a Slack receiver's name (the rules' routing names receivers; each but `default` is a secret of its own)
RECEIVER_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
#: the receiver whose secret is the stack's own webhook secret (slack_secret_name)
DEFAULT_RECEIVER = "default"


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


def rules_path(prefix: str = DEFAULT_PREFIX) -> str:
    return f"/{prefix}/rules"
