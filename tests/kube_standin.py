"""A local stand-in for a Kubernetes API server (issue 23's EKS workload reader): a real HTTP server on
127.0.0.1 that answers GETs from recorded JSON, checks the bearer token, and can be told to refuse (403),
to hang, or be down (a closed port).

A fixture file in tests/fixtures/kube/ maps request targets to answers, e.g.
`{"/api/v1/nodes/n1": {...Node...}, "/api/v1/pods?fieldSelector=spec.nodeName=n1": {...PodList...}}`;
queries match whatever their order and encoding. An unknown target is a 404 with a kube `Status` body.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "kube"
TOKEN = "k8s-aws-v1.stand-in-token"  # noqa: S105 (a test value)
_HOST = "127.0.0.1"


def _key(target: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    path, _, query = target.partition("?")
    return urllib.parse.unquote(path), tuple(sorted(urllib.parse.parse_qsl(query)))


@dataclass(frozen=True)
class Request:
    target: str
    authorization: str | None
    status: int


class KubeStandin:
    def __init__(self, *fixtures: str, token: str = TOKEN, tls: ssl.SSLContext | None = None) -> None:
        self.answers: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for name in fixtures:
            self.load(name)
        self.token = token
        self.requests: list[Request] = []
        #: None: answer from the fixtures; an HTTP status (403, 500): answer that to everything
        self.status: int | None = None
        #: an answer's raw body instead of the fixture's JSON (bad JSON)
        self.raw: bytes | None = None
        self._hang = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, body = standin._answer(self.path, self.headers.get("Authorization"))
                if standin._hang.is_set():  # hold the connection open, say nothing, until the test ends
                    standin._released.wait(timeout=30)
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer((_HOST, 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:  # https, as the EKS endpoint (a server-side context with the stand-in's certificate)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="kube-standin", daemon=True)

    def load(self, name: str) -> None:
        for target, answer in json.loads((FIXTURES / name).read_text()).items():
            self.answers[_key(target)] = answer

    def _answer(self, target: str, authorization: str | None) -> tuple[int, bytes]:
        answer = self.answers.get(_key(target))
        if authorization != f"Bearer {self.token}":
            status, answer = 401, _status(401, "Unauthorized", "Unauthorized")
        elif self.status is not None:
            status, answer = self.status, _status(self.status, "Forbidden", f"GET {target} is forbidden")
        elif answer is None:
            status, answer = 404, _status(404, "NotFound", f"{target} not found")
        else:
            status = 200
        with self._lock:
            self.requests.append(Request(target, authorization, status))
        body = self.raw if status == 200 and self.raw is not None else json.dumps(answer).encode()
        return status, body

    def hang(self) -> None:
        self._hang.set()

    @property
    def url(self) -> str:
        return f"{self._scheme}://{_HOST}:{self._server.server_port}"

    @property
    def paths(self) -> list[str]:
        return [urllib.parse.unquote(r.target) for r in self.requests]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def down_url() -> str:
    """The URL of a port nothing listens on (bound, then closed): connection refused."""
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{_HOST}:{port}"


def _running() -> Iterator[KubeStandin]:
    standin = KubeStandin("cluster.json")
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


#: the stand-in loaded with tests/fixtures/kube/cluster.json; use with `from tests.kube_standin import kube`
kube = pytest.fixture(_running, name="kube")
