"""Slack app mode: the Web API as the notifier and the actions worker call it (a bot token, not a webhook).

`SlackWebApi` wraps `slack_sdk.WebClient` (imported on first use: webhook mode never pays for it) with
one retry handler of our own: Slack's rate limits (HTTP 429 with Retry-After, or a 200 answering
`{"ok": false, "error": "ratelimited"}`), 5xx answers, and connections that failed before the request
was sent, are retried within `max_attempts` and before the invocation's `deadline` (as notify/slack.py
SlackSender does for a webhook). An answer Slack gave for good raises `SlackAppPermanentError` carrying
Slack's error code (`invalid_auth`, `not_in_channel`, `channel_not_found`, ...); `MessageGone`, a kind of
it, when a message to update is no longer there. Neither the token nor a request's body is ever in an
exception's message or a log line.

`mark_acknowledged` and `reply_to_alert` are what a click changes in Slack (chatops/actions.py): every
parent message of an alert episode (one per receiver, notify/slack_threads.py) updated or replied to.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .slack import (
    MIN_ATTEMPT_TIME,
    SlackDeliveryError,
    SlackPermanentError,
    failure_reason,
    retry_after_seconds,
    retry_delay,
    secret_text,
    secrets_parameters,
)

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from ..settings import SlackAppSettings
    from .slack_threads import ThreadStore

#: what chat.update answers when the message to update is gone (deleted, or in a channel that is)
GONE = frozenset({"message_not_found", "cant_update_message", "channel_not_found"})
#: errors Slack answers for a while and then not (its own incidents)
_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
#: the SDK logs requests and answers (blocks included) at DEBUG: never below INFO, whatever the root says
_SDK_LOGGER = logging.getLogger("hyperpod_guard.slack_sdk")
_SDK_LOGGER.setLevel(logging.INFO)


class SlackAppPermanentError(SlackPermanentError):
    """Slack refused the call for good: `error` is its code (invalid_auth, not_in_channel, ...)."""

    def __init__(self, message: str, *, error: str, status: int | None = None, attempts: int = 0):
        super().__init__(message, status=status, attempts=attempts)
        self.error = error


class MessageGone(SlackAppPermanentError):
    """The message to update is no longer there (deleted, or its channel is gone or archived)."""


class SlackAppDeliveryError(SlackDeliveryError):
    """Rate limited, 5xx or unreachable until the attempts or the time ran out."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None, attempts: int = 0):
        super().__init__(message, status=status, attempts=attempts)
        self.error = error


def bot_token(value: str | bytes | None) -> str | None:
    """The bot token from a secret's value (`xoxb-…`, or JSON {"token": …}); None when there is none
    worth trying (empty, the placeholder)."""
    text = secret_text(value, "token", "bot_token")
    return text if text.startswith("xox") and not any(c.isspace() for c in text) else None


class SlackWebApi:
    """The Web API calls hyperpod-guard makes, with retries (see the module's docstring).

    `deadline`: a `time.monotonic()` value no attempt may run past (the invocation's end less a margin);
    `on_rate_limited(method, delay)`: called before each wait for a rate limit (the notifier counts them).
    `attempts`: what the last call took.
    """

    def __init__(self, token: str, base_url: str, *, timeout: float = 15.0, max_attempts: int = 4,
                 deadline: float | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 on_rate_limited: Callable[[str, float], None] | None = None):
        self._token = token
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.deadline = deadline
        self.sleep = sleep
        self._clock = clock
        self.on_rate_limited = on_rate_limited
        self.attempts = 0
        self._client: WebClient | None = None
        self._method = ""

    def __repr__(self) -> str:  # never the token
        return f"SlackWebApi({self.base_url!r}, timeout={self.timeout}, max_attempts={self.max_attempts})"

    # -- the calls ---------------------------------------------------------------------------

    def post(self, channel: str, payload: Mapping[str, Any], thread_ts: str | None = None) -> str:
        """chat.postMessage of a Block Kit payload (notify/slack.py), in a thread when `thread_ts`; its ts."""
        args = {**payload, "channel": channel}
        if thread_ts:
            args["thread_ts"] = thread_ts
        return str(self._call("chat.postMessage", args)["ts"])

    def update(self, channel: str, ts: str, payload: Mapping[str, Any]) -> None:
        """chat.update of message `ts`; MessageGone when it is not there any more."""
        args = {key: value for key, value in payload.items() if key in ("text", "blocks")}
        self._call("chat.update", {**args, "channel": channel, "ts": ts})

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """chat.postEphemeral: `text` only `user` sees (a refused click)."""
        self._call("chat.postEphemeral", {"channel": channel, "user": user, "text": text})

    def reply(self, channel: str, thread_ts: str, text: str) -> str:
        """A plain-text reply in a thread (mrkdwn; the caller escapes what it did not write); its ts."""
        return str(self._call("chat.postMessage", {"channel": channel, "thread_ts": thread_ts, "text": text,
                                                   "unfurl_links": False, "unfurl_media": False})["ts"])

    def user_group_members(self, group_id: str) -> frozenset[str]:
        """The user ids in a user group (usergroups.users.list)."""
        answer = self._call("usergroups.users.list", {"usergroup": group_id})
        return frozenset(str(user) for user in answer.get("users") or ())

    # -- the retries -------------------------------------------------------------------------

    def client(self) -> WebClient:
        if self._client is None:
            from slack_sdk import WebClient  # here: webhook mode never imports it

            self._client = WebClient(token=self._token, base_url=self.base_url, timeout=int(self.timeout),
                                     logger=_SDK_LOGGER, retry_handlers=[_RetryHandler(self)])  # type: ignore[list-item]  # duck-typed
        return self._client

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def _call(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError

        client = self.client()
        self._method, self.attempts = method, 1
        remaining = self._remaining()
        if remaining is not None and remaining < MIN_ATTEMPT_TIME:
            raise SlackAppDeliveryError(f"Slack {method}: no time left before the deadline", attempts=0)
        # whole seconds (the SDK's type), at least one
        client.timeout = max(1, int(self.timeout if remaining is None else min(self.timeout, remaining)))
        try:
            return dict(client.api_call(method, json=args).data)  # type: ignore[arg-type]
        except SlackApiError as exc:
            raise self._refused(method, exc) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets: never the request itself
            why = failure_reason(exc)
            raise SlackAppDeliveryError(f"Slack {method} failed after {self.attempts} attempt(s): {why}",
                                        attempts=self.attempts) from None

    def _refused(self, method: str, exc: Any) -> SlackAppPermanentError | SlackAppDeliveryError:
        response = exc.response
        status = getattr(response, "status_code", None)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        error = str(data.get("error") or (f"HTTP {status}" if status else "unknown"))
        message = f"Slack {method} failed after {self.attempts} attempt(s): {error}"
        if status == 429 or (status is not None and status >= 500) or error in _TRANSIENT:
            return SlackAppDeliveryError(message, error=error, status=status, attempts=self.attempts)
        kind = MessageGone if method == "chat.update" and error in GONE else SlackAppPermanentError
        return kind(message, error=error, status=status, attempts=self.attempts)

    def next_delay(self, status: int | None, error: str | None, retry_after: float | None,
                    attempt: int) -> float | None:
        """How long to wait before attempt `attempt + 1`, or None: do not retry."""
        limited = status == 429 or error == "ratelimited"
        if attempt >= self.max_attempts or not (limited or (status or 0) >= 500 or error in _TRANSIENT
                                                 or error == "unsent"):
            return None
        delay = retry_delay(attempt, retry_after if limited else None, random.random())  # noqa: S311
        remaining = self._remaining()
        if remaining is not None and remaining - delay < MIN_ATTEMPT_TIME:
            return None
        if limited and self.on_rate_limited is not None:
            self.on_rate_limited(self._method, delay)
        return delay


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return retry_after_seconds(value[0] if isinstance(value, list) and value else value)
    return None


class _RetryHandler:
    """slack_sdk's RetryHandler protocol (can_retry / prepare_for_next_attempt), deciding through
    SlackWebApi._next_delay. Not a subclass: that would import slack_sdk with this module."""

    def __init__(self, api: SlackWebApi):
        self.api = api
        self._delay = 0.0

    def can_retry(self, *, state: Any, request: Any, response: Any = None, error: Exception | None = None) -> bool:
        attempt = state.current_attempt + 1
        if response is not None:
            body = response.body if isinstance(response.body, dict) else _json(response.data)
            error_code = body.get("error") if isinstance(body, dict) and body.get("ok") is False else None
            delay = self.api.next_delay(response.status_code, error_code, _retry_after(response.headers), attempt)
        elif isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError) \
                and not isinstance(error.reason, TimeoutError):
            # the connection failed before the request went out: retrying cannot post twice
            delay = self.api.next_delay(None, "unsent", None, attempt)
        else:
            delay = None  # a timeout or a reset after sending: Slack may have posted it; raise
        if delay is None:
            return False
        self._delay = delay
        return True

    def prepare_for_next_attempt(self, *, state: Any, request: Any, response: Any = None,
                                 error: Exception | None = None) -> None:
        state.next_attempt_requested = True
        self.api.sleep(self._delay)
        state.increment_current_attempt()
        self.api.attempts = state.current_attempt + 1


def _json(data: Any) -> Any:
    try:
        return json.loads(data) if data else {}
    except (TypeError, ValueError):
        return {}


# -- the app as the notifier and the actions worker make it -----------------------------------


class SlackAppNotConfiguredError(RuntimeError):
    """App mode without a usable bot token (no secret named, empty, or the placeholder)."""


def app_api(settings: SlackAppSettings, *, deadline: float | None = None, force: bool = False,
            sleep: Callable[[float], None] = time.sleep,
            on_rate_limited: Callable[[str, float], None] | None = None) -> SlackWebApi:
    """The Web API with the bot token of SLACK_BOT_TOKEN_SECRET (Powertools Parameters, cached
    `secret_max_age`; `force`: read it again). Raises SlackAppNotConfiguredError without a token."""
    if not settings.bot_token_secret:
        raise SlackAppNotConfiguredError("SLACK_MODE is app but SLACK_BOT_TOKEN_SECRET is not set")
    value = secrets_parameters().get_secret(settings.bot_token_secret, max_age=settings.secret_max_age,
                                            force_fetch=force)
    token = bot_token(value)
    if token is None:
        raise SlackAppNotConfiguredError(f"Slack bot token secret {settings.bot_token_secret} holds no token: "
                                         "put the app's xoxb- token into it")
    return SlackWebApi(token, settings.api_url, timeout=settings.timeout, max_attempts=settings.max_attempts,
                       deadline=deadline, sleep=sleep, on_rate_limited=on_rate_limited)


def mark_acknowledged(api: SlackWebApi, threads: ThreadStore, cluster: str, fingerprint: str, first_seen: datetime,
                      by: str, at: datetime, until: datetime | None) -> int:
    """Show the episode acknowledged by `by` on every parent message that shows it (one per receiver);
    how many were updated. A parent deleted meanwhile is skipped (its next notification posts a new one)."""
    from .slack import render_parent

    updated = 0
    for thread in threads.alert_threads(cluster, fingerprint):
        if thread.first_seen != first_seen:
            continue  # another episode's message
        parent = threads.acknowledge(cluster, thread.channel, thread.ts, fingerprint, by, at, until)
        if parent is None or parent.gone or parent.shown >= parent.version:
            continue
        try:
            api.update(thread.channel, thread.ts, render_parent(parent.notification, parent.receiver, parent.states))
        except MessageGone:
            threads.mark_gone(cluster, thread.channel, thread.ts)
            continue
        threads.mark_shown(cluster, thread.channel, thread.ts, parent.version)
        updated += 1
    return updated


def reply_to_alert(api: SlackWebApi, threads: ThreadStore, cluster: str, fingerprint: str, first_seen: datetime,
                   text: str) -> int:
    """`text` (mrkdwn the caller escaped) as a reply in every thread of the episode; how many."""
    replied = 0
    for thread in threads.alert_threads(cluster, fingerprint):
        if thread.first_seen == first_seen:
            api.reply(thread.channel, thread.ts, text)
            replied += 1
    return replied
