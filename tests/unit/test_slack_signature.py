"""Slack's request signature (chatops/signature.py) with fixed vectors: Slack's own published example
(https://api.slack.com/authentication/verifying-requests-from-slack) and a button click of ours, each
with the signature written out here, not computed by the code under test. Cross-checked against
slack_sdk's SignatureVerifier, the reference implementation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.signature import SignatureVerifier

from hyperpod_guard.chatops.signature import MAX_SKEW, SignatureRefused, sign, verify

#: Slack's documentation example
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
AT = datetime.fromtimestamp(int(TIMESTAMP), UTC)

#: a click on an Acknowledge button (form-encoded `payload=`), signed with another secret
CLICK_SECRET = "0123456789abcdef0123456789abcdef"
CLICK_TIMESTAMP = "1795000000"
CLICK_BODY = (b"payload=%7B%22type%22%3A%22block_actions%22%2C%22team%22%3A%7B%22id%22%3A%22T0001%22%7D%2C%22user"
              b"%22%3A%7B%22id%22%3A%22U0001%22%7D%7D")
CLICK_SIGNATURE = "v0=4853eedff4ab6ea5377e1072894cfca6e1e257b958e182c15162b34cfa58a8ab"  # openssl dgst -sha256 -hmac


def test_slacks_published_example_is_valid() -> None:
    assert sign(SECRET, TIMESTAMP, BODY) == SIGNATURE
    verify(SECRET, TIMESTAMP, BODY, SIGNATURE, AT)
    verify(SECRET, TIMESTAMP, BODY.encode(), SIGNATURE, AT + timedelta(minutes=4, seconds=59))  # bytes, late but in time


def test_a_click_of_ours_is_valid() -> None:
    assert sign(CLICK_SECRET, CLICK_TIMESTAMP, CLICK_BODY) == CLICK_SIGNATURE
    verify(CLICK_SECRET, CLICK_TIMESTAMP, CLICK_BODY, CLICK_SIGNATURE, datetime.fromtimestamp(1795000000, UTC))


@pytest.mark.parametrize(("secret", "timestamp", "body", "signature", "at", "reason"), [
    pytest.param(SECRET, TIMESTAMP, BODY.replace("roadrunner", "coyote"), SIGNATURE, AT, "does not match",
                 id="tampered-body"),
    pytest.param(SECRET, TIMESTAMP, BODY + "&extra=1", SIGNATURE, AT, "does not match", id="appended-body"),
    pytest.param("8f742231b10e8888abcd99yyyzzz85a6", TIMESTAMP, BODY, SIGNATURE, AT, "does not match",
                 id="wrong-secret"),
    pytest.param(SECRET, "1531420619", BODY, SIGNATURE, AT, "does not match", id="other-timestamp"),
    pytest.param(SECRET, TIMESTAMP, BODY, SIGNATURE, AT + timedelta(minutes=5, seconds=1), "301 s from now",
                 id="older-than-5-minutes"),
    pytest.param(SECRET, TIMESTAMP, BODY, SIGNATURE, AT - timedelta(minutes=6), "360 s from now", id="from-the-future"),
    pytest.param(SECRET, None, BODY, SIGNATURE, AT, "no X-Slack-Request-Timestamp", id="no-timestamp-header"),
    pytest.param(SECRET, TIMESTAMP, BODY, None, AT, "no X-Slack-Signature", id="no-signature-header"),
    pytest.param(SECRET, "", BODY, "", AT, "no X-Slack-Request-Timestamp", id="empty-headers"),
    pytest.param(SECRET, "1531420618.5", BODY, SIGNATURE, AT, "not a number", id="timestamp-not-whole"),
    pytest.param(SECRET, TIMESTAMP, BODY, SIGNATURE.replace("v0=", "v1="), AT, "not a v0", id="other-version"),
    pytest.param(SECRET, TIMESTAMP, BODY, SIGNATURE[:-1], AT, "does not match", id="truncated-signature"),
    pytest.param(SECRET, TIMESTAMP, BODY, "v0=ü" + SIGNATURE[4:], AT, "does not match", id="non-ascii-signature"),
    pytest.param("", TIMESTAMP, BODY, SIGNATURE, AT, "not configured", id="no-signing-secret"),
])
def test_refused(secret: str, timestamp: str | None, body: str, signature: str | None, at: datetime,
                 reason: str) -> None:
    with pytest.raises(SignatureRefused) as refused:
        verify(secret, timestamp, body, signature, at)
    assert reason in refused.value.reason
    assert SECRET not in refused.value.reason and SIGNATURE[3:] not in refused.value.reason  # safe to log


def test_the_window_is_five_minutes() -> None:
    assert MAX_SKEW == timedelta(minutes=5)
    verify(SECRET, TIMESTAMP, BODY, SIGNATURE, AT + MAX_SKEW)  # exactly 300 s: still accepted, as slack_sdk does
    with pytest.raises(SignatureRefused):
        verify(SECRET, TIMESTAMP, BODY, SIGNATURE, AT + MAX_SKEW + timedelta(seconds=1))


class _Clock:
    def __init__(self, now: datetime):
        self._now = now

    def now(self) -> float:
        return self._now.timestamp()


@pytest.mark.parametrize(("secret", "timestamp", "body", "signature", "at"), [
    (SECRET, TIMESTAMP, BODY, SIGNATURE, AT),
    (SECRET, TIMESTAMP, BODY.replace("roadrunner", "coyote"), SIGNATURE, AT),
    ("8f742231b10e8888abcd99yyyzzz85a6", TIMESTAMP, BODY, SIGNATURE, AT),
    (SECRET, TIMESTAMP, BODY, SIGNATURE, AT + timedelta(minutes=5)),
    (SECRET, TIMESTAMP, BODY, SIGNATURE, AT + timedelta(minutes=5, seconds=1)),
    (SECRET, TIMESTAMP, BODY, SIGNATURE, AT - timedelta(minutes=6)),
    (CLICK_SECRET, CLICK_TIMESTAMP, CLICK_BODY.decode(), CLICK_SIGNATURE, datetime.fromtimestamp(1795000000, UTC)),
    (CLICK_SECRET, CLICK_TIMESTAMP, CLICK_BODY.decode(), SIGNATURE, datetime.fromtimestamp(1795000000, UTC)),
])
def test_agrees_with_slack_sdk(secret: str, timestamp: str, body: str, signature: str, at: datetime) -> None:
    reference = SignatureVerifier(secret, clock=_Clock(at))  # type: ignore[arg-type]
    assert reference.generate_signature(timestamp=timestamp, body=body) == sign(secret, timestamp, body)
    expected = reference.is_valid(body=body, timestamp=timestamp, signature=signature)
    try:
        verify(secret, timestamp, body, signature, at)
        ours = True
    except SignatureRefused:
        ours = False
    assert ours is expected
