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
def _botocore() -> Any:
    """The process's botocore session (its loader and credentials are shared with located sessions)."""
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def session() -> Any:
    """The one boto3 session of the process: every client (ours and Powertools') is made from it, so
    botocore loads its data files and registers its handlers once per cold start, not once per client."""
    # boto3 is imported here, not at module level: a handler imports this module at cold
    # start, and an event that never reaches AWS (malformed, ignored) should not pay for boto3.
    import boto3

    return boto3.session.Session(botocore_session=_botocore())


_lock = threading.Lock()  # a boto3 session is not thread-safe; the sweep's threads share this one


@functools.cache
def client(service: str) -> Any:
    from botocore.config import Config

    with _lock:
        return session().client(service, config=Config(**RETRY))


#: the session name a hub's AssumeRole into a spoke carries (CloudTrail in the spoke shows it)
ROLE_SESSION_NAME = "hyperpod-guard"


@functools.cache
def role_credentials(role_arn: str, external_id: str | None = None, *, base: Any = None) -> Any:
    """The credentials of the role `role_arn` (a spoke of the fleet, fleet.py), one set per role for the
    process's life, shared by every region's session: botocore's own AssumeRole fetcher and refreshable
    credentials (as for a profile with role_arn), refreshed before they expire. AssumeRole happens when the
    first client call needs them, not here. `base`: the botocore session whose credentials assume the role
    (default: the process's; the CLI passes its `--profile`'s)."""
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    base = base or _botocore()
    extra = {"RoleSessionName": ROLE_SESSION_NAME, **({"ExternalId": external_id} if external_id else {})}
    fetcher = AssumeRoleCredentialFetcher(base.create_client, base.get_credentials(), role_arn, extra_args=extra)
    return DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")


@functools.cache
def located_session(region: str, role_arn: str | None = None, external_id: str | None = None, *,
                    base: Any = None) -> Any:
    """A boto3 session for `region`, as the process itself (`role_arn` None) or as the role `role_arn`
    (role_credentials), one per account and region for the process's life."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialProvider, CredentialResolver

    with _lock:
        base = base or _botocore()
        credentials = base.get_credentials() if role_arn is None else role_credentials(role_arn, external_id,
                                                                                        base=base)

        class Given(CredentialProvider):
            METHOD = "hyperpod-guard"

            def load(self) -> Any:
                return credentials

        core = botocore.session.Session()
        # the process's loader: botocore's data files (service models) are read once per cold start
        core.register_component("data_loader", base.get_component("data_loader"))
        core.register_component("credential_provider", CredentialResolver([Given()]))
        located = boto3.session.Session(botocore_session=core, region_name=region)
        # boto3 appends its data path to the loader it is given: once is enough for the shared one
        loader = base.get_component("data_loader")
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
        return located


@functools.cache
def located_client(service: str, region: str, role_arn: str | None = None, external_id: str | None = None) -> Any:
    """A client of `service` in `region`, as the process or as the spoke role `role_arn` (cached per account,
    region and service)."""
    from botocore.config import Config

    located = located_session(region, role_arn, external_id)
    with _lock:
        return located.client(service, config=Config(**RETRY))


#: clients for reads that must not hold a notification long (workload/reader.py): fail fast, retry once
QUICK = {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 2, "read_timeout": 3}


@functools.cache
def quick_client(service: str, region: str | None = None, role_arn: str | None = None,
                 external_id: str | None = None) -> Any:
    """A client of `service` with QUICK timeouts, as the process (in `region`, default its own) or as the spoke
    role `role_arn`."""
    from botocore.config import Config

    located = session() if region is None and role_arn is None else located_session(
        region or session().region_name, role_arn, external_id)
    with _lock:
        return located.client(service, config=Config(**QUICK))


def forget_located() -> None:
    """Forget the located sessions, their clients and the role credentials (tests: moto's reset forgets the
    roles it handed out), keeping the process's own clients."""
    quick_client.cache_clear()
    located_client.cache_clear()
    located_session.cache_clear()
    role_credentials.cache_clear()


_reset_hooks: list[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> None:
    """Register a cache that holds clients (e.g. a handler's runtime) to be dropped by reset()."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Forget cached clients (tests change the endpoint and credentials between cases)."""
    client.cache_clear()
    forget_located()
    session.cache_clear()
    _botocore.cache_clear()
    for hook in _reset_hooks:
        hook()
