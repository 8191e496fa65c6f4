"""A fake Lambda Runtime API (stdlib only): what `awslambdaric` talks to inside a Lambda sandbox.

The Runtime Interface Emulator is not available here (shared/reference/toolchain.md §6), and
the RIC needs only four routes of the Runtime API (2018-06-01):

    GET  /runtime/invocation/next            long poll: the next event + Lambda-Runtime-* headers
    POST /runtime/invocation/<id>/response   the handler's return value
    POST /runtime/invocation/<id>/error      the handler raised (Lambda would retry the event)
    POST /runtime/init/error                 the handler could not be loaded (import error, ...)

and, for a SnapStart init (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start), two more: the RIC runs the
before-snapshot hooks, waits on GET /runtime/restore/next (answered at once here: snapshot taken and
restored), then runs the after-restore hooks, reporting a failing one to POST /runtime/restore/error.

One server serves one runtime process ("container") for any number of invocations, one at a
time like Lambda: `invoke()` queues an event and waits for its response or error, so the same
process handles the second invocation warm.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


class RuntimeProcessGone(RuntimeError):
    """The runtime stopped polling: it exited, or posted an init error."""


@dataclass(frozen=True)
class Invocation:
    request_id: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RuntimeAPI:
    function_name: str = "hyperpod-guard-evaluator"
    #: the function's timeout: Lambda-Runtime-Deadline-Ms = now + this
    timeout_s: float = 60.0
    region: str = "us-west-2"
    account: str = "123456789012"
    #: (request id, kind, payload) in the order the runtime posted them
    posts: list[tuple[str, str, Any]] = field(default_factory=list)
    init_errors: list[Any] = field(default_factory=list)
    #: request ids the runtime fetched with GET /next (a request counts as delivered once)
    delivered: list[str] = field(default_factory=list)
    #: GET /restore/next calls (a SnapStart init asks once) and POST /restore/error payloads
    restores: int = 0
    restore_errors: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._events: queue.Queue[Invocation] = queue.Queue()
        self._results: dict[str, tuple[str, Any]] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the RIC's libcurl client expects

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the runtime was killed mid-poll
                    pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == f"{PREFIX}/restore/next":
                    with api._changed:
                        api.restores += 1
                    return self._reply(200, b"")
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound"}')
                while not api._stopping.is_set():  # long poll, like the real API, until an event comes
                    try:
                        invocation = api._events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    with api._changed:
                        api.delivered.append(invocation.request_id)
                    return self._reply(200, invocation.body, invocation.headers)
                self._reply(500, b'{"errorType":"Shutdown"}')

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload: Any = json.loads(body) if body else None
                except ValueError:
                    payload = body.decode("utf-8", "replace")
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    with api._changed:
                        api.init_errors.append(payload)
                        api._changed.notify_all()
                elif parts == ["restore", "error"]:
                    with api._changed:
                        api.restore_errors.append(payload)
                        api._changed.notify_all()
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    if parts[2] == "error" and isinstance(payload, dict):
                        payload["headers"] = {k: v for k, v in self.headers.items() if k.lower().startswith("lambda-")}
                    with api._changed:
                        api.posts.append((parts[1], parts[2], payload))
                        api._results[parts[1]] = (parts[2], payload)
                        api._changed.notify_all()
                else:
                    return self._reply(404, b'{"errorType":"NotFound"}')
                self._reply(202, b'{"status":"OK"}')

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-runtime-api", daemon=True)

    @property
    def address(self) -> str:
        """host:port, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    def start(self) -> RuntimeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def submit(self, event: Any, *, request_id: str | None = None) -> str:
        """Queue one event for the runtime's next GET /next; returns its request id."""
        request_id = request_id or str(uuid.uuid4())
        trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
        self._events.put(Invocation(request_id, json.dumps(event).encode(), {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + self.timeout_s) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": trace,
        }))
        return request_id

    def result(self, request_id: str, timeout: float = 30, *,
               alive: Callable[[], bool] | None = None) -> tuple[str, Any]:
        """("response" | "error", payload) for a submitted event. Raises TimeoutError after
        `timeout` seconds and RuntimeProcessGone as soon as the runtime posts an init error or
        `alive()` turns false, so that a broken runtime fails a test at once instead of hanging it."""
        end = time.monotonic() + timeout
        with self._changed:
            while request_id not in self._results:
                if self.init_errors:
                    raise RuntimeProcessGone(f"init error: {self.init_errors[-1]}")
                if alive is not None and not alive():
                    raise RuntimeProcessGone("the runtime process exited")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no response to invocation {request_id} within {timeout} s")
                self._changed.wait(min(remaining, 0.1))
            return self._results[request_id]

    def invoke(self, event: Any, timeout: float = 30, *, request_id: str | None = None,
               alive: Callable[[], bool] | None = None) -> tuple[str, Any]:
        """Queue one event and wait for its response or error: (kind, payload)."""
        return self.result(self.submit(event, request_id=request_id), timeout, alive=alive)

    def wait_init_error(self, timeout: float = 30, *, alive: Callable[[], bool] | None = None) -> Any:
        end = time.monotonic() + timeout
        with self._changed:
            while not self.init_errors:
                if alive is not None and not alive():
                    break
                if time.monotonic() >= end:
                    raise TimeoutError(f"no init error within {timeout} s")
                self._changed.wait(0.1)
            return self.init_errors[-1] if self.init_errors else None
