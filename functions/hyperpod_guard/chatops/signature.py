"""Slack's request signature, checked before anything else is read from a request
(https://api.slack.com/authentication/verifying-requests-from-slack).

Slack sends `X-Slack-Request-Timestamp` (Unix seconds) and `X-Slack-Signature`: `v0=` and the hex
HMAC-SHA256, keyed with the app's signing secret, of `v0:<timestamp>:<raw body>`. A request is believed when
the signature is that one (compared in constant time) and its timestamp is within MAX_SKEW of now, so that a
captured request cannot be replayed later. The same rules as slack_sdk.signature.SignatureVerifier
(tests/unit/test_slack_signature.py checks both agree), written out here to give each refusal its reason,
and because `import slack_sdk.signature` imports slack_sdk's whole Web client with it (~70 ms measured with
`python -X importtime`) on the endpoint that must answer Slack within 3 seconds.

Nothing here logs: the caller logs the reason, never the signature, the secret or the body.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from ..errors import HyperPodGuardError

VERSION = "v0"
#: how far a request's timestamp may be from now (Slack's own advice: 5 minutes)
MAX_SKEW = timedelta(minutes=5)


class SignatureRefused(HyperPodGuardError):
    """The request is not believed to come from Slack; `reason` says why (safe to log)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(signing_secret: str, timestamp: str | int, body: str | bytes) -> str:
    """The `X-Slack-Signature` Slack sends for `body` at `timestamp` (tests and the demo sign with it)."""
    base = b":".join((VERSION.encode(), str(timestamp).encode(), _bytes(body)))
    return f"{VERSION}=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify(signing_secret: str, timestamp: str | None, body: str | bytes, signature: str | None,
           now: datetime) -> None:
    """Return when Slack signed `body` at `timestamp` with `signing_secret` within MAX_SKEW of `now`;
    else raise SignatureRefused."""
    if not signing_secret or not signing_secret.strip():
        raise SignatureRefused("the signing secret is not configured (empty)")
    if not timestamp:
        raise SignatureRefused("no X-Slack-Request-Timestamp header")
    if not signature:
        raise SignatureRefused("no X-Slack-Signature header")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureRefused("X-Slack-Request-Timestamp is not a number of seconds")
    skew = abs(now.timestamp() - int(timestamp))
    if skew > MAX_SKEW.total_seconds():
        raise SignatureRefused(f"the request's timestamp is {skew:.0f} s from now "
                               f"(more than {MAX_SKEW.total_seconds():.0f} s): a replay or a clock off")
    if not signature.startswith(f"{VERSION}="):
        raise SignatureRefused(f"the signature is not a {VERSION} signature")
    expected = sign(signing_secret.strip(), timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureRefused("the signature does not match the body (tampered, or another signing secret)")
