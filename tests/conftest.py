"""Shared fixtures: moto in server mode as the AWS stand-in, reached only via AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import logging
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def load_json():
    def load(relative: str):
        return json.loads((REPO / relative).read_text())

    return load


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One ThreadedMotoServer on 127.0.0.1 for the whole run."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto account per test; code finds it through AWS_ENDPOINT_URL like any endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10)
    _clear_process_caches()
    yield moto_server
    _clear_process_caches()


def _clear_process_caches() -> None:
    """Module-level caches (boto3 clients, Powertools parameter caches) must not leak between tests."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    try:
        from hyperpod_guard import aws_clients
    except ImportError:  # before the runtime modules exist
        return
    aws_clients.reset()
