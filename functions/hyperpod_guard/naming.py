"""Resource names, shared by the CDK stack (infra/) and the local stand-ins (local/provision.py),
so that the demo and the tests run against the names `cdk deploy` creates."""

from __future__ import annotations

DEFAULT_PREFIX = "hyperpod-guard"


def table_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-ledger"


def alerts_topic_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-alerts"


def slack_secret_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/slack-webhook"


def rules_path(prefix: str = DEFAULT_PREFIX) -> str:
    return f"/{prefix}/rules"
