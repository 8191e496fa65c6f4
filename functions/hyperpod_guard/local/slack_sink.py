"""A local stand-in for a Slack incoming webhook: records requests, answers from a script
(the demo scripts an outage with it; the tests script 429s, 5xx and timeouts)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/services/T000/B000/XXXX"
_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (longer than the client's timeout = a timeout)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: what the sink answered
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class SlackSink:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._script: deque[Response] = deque()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                response = sink._record(Request("POST", self.path, dict(self.headers), body))
                if response.delay:
                    time.sleep(response.delay)
                payload = response.body.encode()
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name; quiet tests
                pass

        self._server = ThreadingHTTPServer((_HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="slack-sink", daemon=True)

    def _record(self, request: Request) -> Response:
        with self._lock:
            response = self._script.popleft() if self._script else Response()
            self.requests.append(replace(request, status=response.status))
            return response

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self._server.server_port}{WEBHOOK_PATH}"

    def respond(self, status: int = 200, body: str = "ok", *, headers: dict[str, str] | None = None,
                delay: float = 0.0, times: int = 1) -> SlackSink:
        """Queue `times` answers; once the queue is empty the sink answers 200 "ok"."""
        with self._lock:
            self._script.extend(Response(status, body, dict(headers or {}), delay) for _ in range(times))
        return self

    @property
    def payloads(self) -> list[Any]:
        return [r.json for r in self.requests]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
