"""boto3 clients, created once per process (Lambda container) and reused across invocations.

No endpoint is configured here: botocore honours AWS_ENDPOINT_URL, which is how tests and
the demo point the very same code at moto.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

#: standard mode retries throttling and transient errors with backoff and jitter
RETRY = {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 20}


@functools.cache
def session() -> Any:
    """The one boto3 session of the process: every client (ours and Powertools') is made from it, so
    botocore loads its data files and registers its handlers once per cold start, not once per client."""
    # boto3 is imported here, not at module level: a handler imports this module at cold
    # start, and an event that never reaches AWS (malformed, ignored) should not pay for boto3.
    import boto3

    return boto3.session.Session()


_lock = threading.Lock()  # a boto3 session is not thread-safe; the sweep's threads share this one


@functools.cache
def client(service: str) -> Any:
    from botocore.config import Config

    with _lock:
        return session().client(service, config=Config(**RETRY))


_reset_hooks: list[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> None:
    """Register a cache that holds clients (e.g. a handler's runtime) to be dropped by reset()."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Forget cached clients (tests change the endpoint and credentials between cases)."""
    client.cache_clear()
    session.cache_clear()
    for hook in _reset_hooks:
        hook()
