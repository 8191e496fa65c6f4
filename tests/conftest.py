"""Shared fixtures: moto in server mode as the AWS stand-in, reached only via AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from hyperpod_guard.local import moto_server as moto_server_module

# `make test` draws the same property-test examples on every run, so CI cannot fail on a draw nobody saw
# before; HYPOTHESIS_RANDOM=1 searches new ones (what failed is then printed with its reproduction)
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("random", derandomize=False)
settings.load_profile("random" if os.environ.get("HYPOTHESIS_RANDOM") else "repeatable")

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def load_json():
    def load(relative: str):
        return json.loads((REPO / relative).read_text())

    return load


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One ThreadedMotoServer on 127.0.0.1 for the whole run."""
    server, url = moto_server_module.start()
    yield url
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto account per test; code finds it through AWS_ENDPOINT_URL like any endpoint."""
    for key, value in moto_server_module.environment(moto_server, REGION).items():
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
