"""A local stand-in for Slack's Web API (app mode): a real HTTP server on 127.0.0.1 that speaks the
methods hyperpod-guard calls (`chat.postMessage`, `chat.update`, `chat.postEphemeral`,
`usergroups.users.list`, `auth.test`) the way Slack answers them: HTTP 200 with `{"ok": true, ...}` or
`{"ok": false, "error": "..."}`, the bot token checked on every call (`Authorization: Bearer`).

It keeps channels, messages and threads for tests and the demo to read (`messages`, `replies`,
`calls`), and scripts what Slack does on a bad day: the next calls answered 429 with Retry-After or
`ratelimited` (`rate_limit`), any error (`fail`), a message deleted by someone (`delete`: chat.update
answers message_not_found afterwards). Point SLACK_API_URL at `url`.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOST = "127.0.0.1"
TOKEN = "xoxb-0000000000-0000000000000-standintoken0000"  # noqa: S105 - the stand-in's, not a secret
TEAM = "T0STANDIN"
BOT_USER = "U0HPGBOT"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    #: every earlier version (text, blocks) chat.update replaced
    edits: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    deleted: bool = False

    @property
    def block_texts(self) -> list[str]:
        """The text of every section and context block, in order (what a reader sees)."""
        texts = []
        for block in self.blocks:
            if isinstance(block.get("text"), dict):
                texts.append(str(block["text"].get("text", "")))
            texts.extend(str(e.get("text", "")) for e in block.get("elements", ()) if e.get("type") == "mrkdwn")
        return texts

    @property
    def action_ids(self) -> list[str]:
        return [e.get("action_id", "") for block in self.blocks if block.get("type") == "actions"
                for e in block.get("elements", ())]


@dataclass(frozen=True)
class Call:
    """One request as the stand-in received and answered it."""

    method: str
    args: dict[str, Any]
    status: int
    answer: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.answer.get("ok"))


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    method: str | None
    #: matching calls still answered normally before this one
    after: int = 0


class SlackApiStandIn:
    """The server; `start()` / `stop()`, or use it as a context manager."""

    def __init__(self, token: str = TOKEN, *, user_groups: dict[str, list[str]] | None = None,
                 channels: set[str] | None = None):
        self.token = token
        #: None: every channel exists and the bot is in it; else these only (others: channel_not_found)
        self.channels = channels
        self.user_groups = dict(user_groups or {})
        self.calls: list[Call] = []
        self._messages: dict[str, list[Message]] = {}
        self._faults: deque[_Fault] = deque()
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                method = self.path.rstrip("/").rsplit("/", 1)[-1]
                status, answer, headers = standin._answer(method, self.headers.get("Authorization"),
                                                          self.headers.get("Content-Type", ""), body)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name; quiet
                pass

        self._server = ThreadingHTTPServer((_HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="slack-api-standin", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Web API base URL (SLACK_API_URL)."""
        return f"http://{_HOST}:{self._server.server_port}/api/"

    def start(self) -> SlackApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SlackApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, *, retry_after: int = 1, how: str = "429", method: str | None = None) -> None:
        """Answer the next `times` calls (of `method`, or any) rate limited: `how` "429" (HTTP 429 with
        Retry-After) or "ratelimited" (HTTP 200, `{"ok": false, "error": "ratelimited"}`, Retry-After too)."""
        status = 429 if how == "429" else 200
        with self._lock:
            self._faults.extend(_Fault(status, "ratelimited", retry_after, method) for _ in range(times))

    def fail(self, error: str, times: int = 1, *, status: int = 200, method: str | None = None,
             after: int = 0) -> None:
        """Answer `times` calls (of `method`, or any), after `after` more of them went through,
        `{"ok": false, "error": error}` with `status`."""
        with self._lock:
            self._faults.extend(_Fault(status, error, None, method, after) for _ in range(times))

    def clear_faults(self) -> None:
        """Answer every call normally again (the outage is over)."""
        with self._lock:
            self._faults.clear()

    def delete(self, channel: str, ts: str) -> None:
        """Someone deleted the message: chat.update answers message_not_found from now on."""
        with self._lock:
            self._find(channel, ts).deleted = True  # type: ignore[union-attr]

    # -- reading -----------------------------------------------------------------------------

    def messages(self, channel: str, *, deleted: bool = False) -> list[Message]:
        """The channel's top-level messages (not replies), oldest first."""
        with self._lock:
            return [m for m in self._messages.get(channel, []) if m.thread_ts is None and (deleted or not m.deleted)]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        with self._lock:
            return [m for m in self._messages.get(channel, []) if m.thread_ts == thread_ts]

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            return self._find(channel, ts)

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # -- answering ---------------------------------------------------------------------------

    def _find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self._messages.get(channel, []) if m.ts == ts), None)

    def _answer(self, method: str, authorization: str | None, content_type: str,
                body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        args = _args(content_type, body)
        with self._lock:
            status, answer, headers = self._dispatch(method, authorization, args)
            self.calls.append(Call(method, args, status, answer))
        return status, answer, headers

    def _dispatch(self, method: str, authorization: str | None,
                  args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not authorization:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if authorization != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        fault = next((f for f in self._faults if f.method in (None, method)), None)
        if fault is not None and fault.after:
            fault.after -= 1
            fault = None
        if fault is not None:
            self._faults.remove(fault)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, {"ok": False, "error": fault.error}, headers
        handler = {"chat.postMessage": self._post, "chat.update": self._update, "chat.postEphemeral": self._ephemeral,
                   "usergroups.users.list": self._group, "auth.test": self._auth}.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    def _channel(self, args: dict[str, Any]) -> str | None:
        channel = str(args.get("channel") or "")
        return channel if channel and (self.channels is None or channel in self.channels) else None

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        n = next(self._ts)
        ts = f"{1_700_000_000 + n}.{n:06d}"
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        message = Message(channel, ts, str(args.get("text") or ""), _blocks(args.get("blocks")), thread_ts)
        self._messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"text": message.text, "ts": ts, "thread_ts": thread_ts, "user": BOT_USER}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        message = self._find(channel, str(args.get("ts") or ""))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        message.edits.append((message.text, message.blocks))
        message.text, message.blocks = str(args.get("text") or ""), _blocks(args.get("blocks"))
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}

    def _ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        n = next(self._ts)
        return {"ok": True, "message_ts": f"{1_700_000_000 + n}.{n:06d}"}

    def _group(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self.user_groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.user_groups[group])}

    def _auth(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://standin.slack.com/", "team": "stand-in", "user": "hyperpod-guard",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0HPGBOT"}


def _args(content_type: str, body: bytes) -> dict[str, Any]:
    """A call's arguments: a JSON body, or a form (Slack takes both)."""
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {key: values[-1] for key, values in urllib.parse.parse_qs(text).items()}


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):  # a form sends blocks as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []
