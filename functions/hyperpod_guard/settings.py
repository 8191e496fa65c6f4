"""Each function's environment as one typed model, built from os.environ with `from_env()` (the
variables, their names and defaults are declared once, in constants.py). infra/ writes a function's
environment with `environment()`, so a default changed there changes the stack too.

| function       | model                                                  | read                                     |
|----------------|--------------------------------------------------------|------------------------------------------|
| evaluator      | `EvaluatorSettings`                                    | with the first event (`Runtime.from_env`)|
| sweep          | `SweepSettings`: the evaluator's + `SWEEP_CONCURRENCY` | with the first run                       |
|                | and `WorkQueueSettings` (`WORK_QUEUE_URL`)             | with the first run                       |
| worker         | `EvaluatorSettings`                                    | with the first batch                     |
| Slack notifier | `SlackNotifierSettings` (app mode: its `app`, `SlackAppSettings`) | per invocation (a few lookups) |
| Slack endpoint | `SlackInteractivitySettings` (app mode only)           | per request                              |
| Slack actions  | `SlackActionsSettings` (app mode only)                 | per batch                                |
| all of them    | the Powertools variables (`constants.SERVICE_NAME`, ...) | at import (handlers/observability.py)  |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar, Self

from .constants import (
    ARCHIVE_BUCKET,
    DIGEST_DAYS,
    DIGEST_TOP,
    EVENT_ACCOUNTS,
    FUNCTION_NAME,
    IDEMPOTENCY_TTL,
    REGION,
    RULES_MAX_AGE,
    RULES_PATH,
    RULES_REQUIRED,
    SILENCES_MAX_AGE,
    SLACK_ACTIONS_QUEUE_URL,
    SLACK_API_URL,
    SLACK_BOT_TOKEN_SECRET,
    SLACK_CHANNELS,
    SLACK_MAX_ATTEMPTS,
    SLACK_MODE,
    SLACK_RECEIVER_SECRET_PREFIX,
    SLACK_SECRET_MAX_AGE,
    SLACK_SIGNING_SECRET_SECRET,
    SLACK_TIMEOUT,
    SLACK_WEBHOOK_SECRET,
    SWEEP_CONCURRENCY,
    TABLE_NAME,
    TAGS_MAX_AGE,
    TOPIC_ARN,
    WORK_QUEUE_URL,
    Var,
)


def _env(var: Var[Any]) -> Any:
    """A model field read from `var`."""
    return field(metadata={"var": var})


class _Settings:
    # what @dataclass gives every subclass: it makes them dataclasses to fields() (and mypy)
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def variables(cls) -> dict[str, Var[Any]]:
        """Field name -> its variable, in declaration order."""
        return {f.name: f.metadata["var"] for f in fields(cls)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The model from `environ` (default: os.environ)."""
        return cls(**{name: var.read(environ) for name, var in cls.variables().items()})

    @classmethod
    def environment(cls, **values: str | bool) -> dict[str, str]:
        """What infra sets on the function: `values` by field name (a bool as "true"/"false") and
        every default, under the variables' names. A variable with neither is left out."""
        variables = cls.variables()
        unknown = values.keys() - variables.keys()
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
        environment = {}
        for name, var in variables.items():
            if name in values:
                value = values[name]
                environment[var.name] = ("true" if value else "false") if isinstance(value, bool) else value
            elif var.default is not None:
                environment[var.name] = var.default
        return environment


@dataclass(frozen=True)
class EvaluatorSettings(_Settings):
    table_name: str = _env(TABLE_NAME)
    topic_arn: str = _env(TOPIC_ARN)
    rules_path: str = _env(RULES_PATH)
    rules_max_age: int = _env(RULES_MAX_AGE)
    rules_required: bool = _env(RULES_REQUIRED)
    tags_max_age: float = _env(TAGS_MAX_AGE)
    silences_max_age: float = _env(SILENCES_MAX_AGE)
    event_accounts: str | None = _env(EVENT_ACCOUNTS)
    region: str | None = _env(REGION)
    #: the episode archive's bucket (archive.py); None: nothing is archived. With a default, so that a model
    #: built by hand need not name it
    archive_bucket: str | None = field(default=None, kw_only=True, metadata={"var": ARCHIVE_BUCKET})


@dataclass(frozen=True)
class SweepSettings(EvaluatorSettings):
    sweep_concurrency: int = _env(SWEEP_CONCURRENCY)


@dataclass(frozen=True)
class WorkQueueSettings(_Settings):
    """The queue a function hands work to (the sweep: one message per cluster, for handlers/worker.py).
    A model of its own, not a field of SweepSettings: whoever sends work adds it beside its settings."""

    #: None: no queue, the work is done in place (the sweep evaluates every cluster itself)
    work_queue_url: str | None = _env(WORK_QUEUE_URL)


@dataclass(frozen=True)
class SlackNotifierSettings(_Settings):
    webhook_secret: str = _env(SLACK_WEBHOOK_SECRET)
    #: receiver X (other than `default`, whose secret is webhook_secret) reads secret receiver_secret_prefix + X
    receiver_secret_prefix: str = _env(SLACK_RECEIVER_SECRET_PREFIX)
    secret_max_age: int = _env(SLACK_SECRET_MAX_AGE)
    timeout: float = _env(SLACK_TIMEOUT)
    max_attempts: int = _env(SLACK_MAX_ATTEMPTS)
    #: the ledger table, which also keeps Powertools' idempotency records
    table_name: str = _env(TABLE_NAME)
    idempotency_ttl: int = _env(IDEMPOTENCY_TTL)
    function_name: str | None = _env(FUNCTION_NAME)
    #: "webhook" (the default) or "app": then the fields below, as `app` gives them. With their
    #: variables' defaults, so that a model built by hand (webhook mode) need not name them
    mode: str = field(default=SLACK_MODE.default_value, metadata={"var": SLACK_MODE})
    bot_token_secret: str | None = field(default=None, metadata={"var": SLACK_BOT_TOKEN_SECRET})
    channels: dict[str, str] = field(default_factory=lambda: SLACK_CHANNELS.default_value,
                                     metadata={"var": SLACK_CHANNELS})
    api_url: str = field(default=SLACK_API_URL.default_value, metadata={"var": SLACK_API_URL})

    @property
    def app(self) -> SlackAppSettings:
        """What app mode needs of these (notify/slack_app.py)."""
        return SlackAppSettings(self.mode, self.bot_token_secret, self.channels, self.api_url, self.timeout,
                                self.max_attempts, self.table_name, self.secret_max_age)


@dataclass(frozen=True)
class SlackAppSettings(_Settings):
    """Slack app mode (a bot token and the Web API: threads, updates, buttons): the notifier's
    (SlackNotifierSettings.app), and whatever else posts as the app (the actions worker)."""

    mode: str = _env(SLACK_MODE)
    #: the Secrets Manager secret holding the bot token; None: not configured
    bot_token_secret: str | None = _env(SLACK_BOT_TOKEN_SECRET)
    #: receiver name -> channel id
    channels: dict[str, str] = _env(SLACK_CHANNELS)  # noqa: RUF009 - a field() carrying its Var, no default
    api_url: str = _env(SLACK_API_URL)
    timeout: float = _env(SLACK_TIMEOUT)
    max_attempts: int = _env(SLACK_MAX_ATTEMPTS)
    #: the ledger table, which also keeps where each alert's thread is (notify/slack_threads.py)
    table_name: str = _env(TABLE_NAME)
    secret_max_age: int = _env(SLACK_SECRET_MAX_AGE)


# -- ChatOps (chatops/): the interactivity endpoint and the actions worker ---------------------------------



@dataclass(frozen=True)
class SlackInteractivitySettings(_Settings):
    """The interactivity endpoint (handlers/slack_interactivity.py): read at its first request."""

    #: the Secrets Manager secret holding the Slack app's signing secret
    signing_secret_secret: str = _env(SLACK_SIGNING_SECRET_SECRET)
    #: where each believed click goes, for the actions worker
    actions_queue_url: str = _env(SLACK_ACTIONS_QUEUE_URL)
    #: seconds the signing secret stays cached in the container
    secret_max_age: int = _env(SLACK_SECRET_MAX_AGE)


@dataclass(frozen=True)
class SlackActionsSettings(_Settings):
    """The actions worker (handlers/slack_actions.py), beside SlackAppSettings (the Web API it answers with)."""

    #: the ledger table: alerts, approvals, silences, the alerts' threads, and the clicks already carried out
    table_name: str = _env(TABLE_NAME)
    #: the rules (their `chatops` section: who may click what)
    rules_path: str = _env(RULES_PATH)
    rules_max_age: int = _env(RULES_MAX_AGE)
    #: an approved remediation: the cluster is handed to the worker here (None: it runs at the next sweep)
    work_queue_url: str | None = _env(WORK_QUEUE_URL)
    idempotency_ttl: int = _env(IDEMPOTENCY_TTL)
    function_name: str | None = _env(FUNCTION_NAME)


# -- the weekly digest (issue 21, handlers/digest.py) ------------------------------------------------------



@dataclass(frozen=True)
class DigestSettings(_Settings):
    """The weekly digest (handlers/digest.py): read at its first run."""

    #: the ledger table: the open alerts, counted up to now
    table_name: str = _env(TABLE_NAME)
    #: the alerts topic it publishes the digest to
    topic_arn: str = _env(TOPIC_ARN)
    #: the rules: `routing.default` names the receivers the digest goes to
    rules_path: str = _env(RULES_PATH)
    rules_max_age: int = _env(RULES_MAX_AGE)
    #: the episode archive (None: not configured, which the digest reports as its error)
    archive_bucket: str | None = _env(ARCHIVE_BUCKET)
    #: the period, in days, ending when it runs; and how many top findings it lists
    days: int = _env(DIGEST_DAYS)
    top: int = _env(DIGEST_TOP)
    region: str | None = _env(REGION)
