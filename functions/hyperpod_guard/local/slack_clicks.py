"""A click on one of our Slack buttons as Slack sends it to the interactivity endpoint: the `block_actions`
payload (form-encoded, as Slack posts it), signed with the app's signing secret, in the Lambda Function URL
event (payload format 2.0) that invokes handlers/slack_interactivity.py. The demo's simulated clicks and
the tests' are made here."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from ..chatops.signature import sign


def block_actions(*, action_id: str, value: str, user: str, user_name: str, team: str, channel: str,
                  message_ts: str, message_text: str, action_ts: str, trigger_id: str) -> bytes:
    """The request body of a click on a button of message `message_ts` in `channel`."""
    data = {
        "type": "block_actions", "token": "legacy-verification-token", "api_app_id": "A0HPG",
        "team": {"id": team, "domain": "acme"}, "user": {"id": user, "username": user_name, "team_id": team},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": "ml-alerts"}, "message": {"ts": message_ts, "text": message_text},
        "trigger_id": trigger_id, "response_url": f"https://hooks.slack.com/actions/{team}/1/x",
        "actions": [{"action_id": action_id, "block_id": "hpg", "type": "button", "value": value,
                     "action_ts": action_ts}],
    }
    return urlencode({"payload": json.dumps(data)}).encode()


def function_url_event(body: bytes, *, signing_secret: str, timestamp: int,
                       signature: str | None = None) -> dict[str, Any]:
    """The Function URL event of Slack's POST of `body` at `timestamp` (`signature`: instead of the right one)."""
    headers = {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": str(timestamp),
               "x-slack-signature": signature or sign(signing_secret, timestamp, body), "user-agent": "Slackbot 1.0"}
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": headers,
            "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "54.1.2.3"}},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
