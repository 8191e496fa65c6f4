"""One boto3 session per process for every client, Powertools' providers included (issue 17, cold path)."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base

from hyperpod_guard import aws_clients
from hyperpod_guard.rules_store import _default_provider


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    made: list[object] = []
    original = boto3.session.Session

    def counting(*args: object, **kwargs: object) -> object:
        session = original(*args, **kwargs)
        made.append(session)
        return session

    monkeypatch.setattr(boto3.session, "Session", counting)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    aws_clients.reset()
    yield made
    aws_clients.reset()


def test_every_client_comes_from_one_session(sessions: list[object]) -> None:
    clients = [aws_clients.client(service) for service in ("sagemaker", "dynamodb", "sns", "ssm")]
    assert len(sessions) == 1
    assert aws_clients.client("sns") is clients[2]  # cached


def test_powertools_default_ssm_provider_uses_our_client_and_reset_drops_it(sessions: list[object]) -> None:
    _default_provider()
    assert base.DEFAULT_PROVIDERS["ssm"].client is aws_clients.client("ssm")
    assert len(sessions) == 1
    aws_clients.reset()
    assert "ssm" not in base.DEFAULT_PROVIDERS


def test_located_sessions_share_the_process_loader_without_growing_it(sessions: list[object]) -> None:
    """A spoke's session (fleet.py) reads botocore's service models through the process's loader (loaded once
    per cold start), and making one per account and region does not add to the loader's search paths."""
    aws_clients.client("sagemaker")
    loader = aws_clients.session()._session.get_component("data_loader")
    paths = list(loader.search_paths)
    located = [aws_clients.located_session(region) for region in ("us-east-1", "eu-west-1", "ap-south-1")]
    assert all(s._session.get_component("data_loader") is loader for s in located)
    assert loader.search_paths == paths
    assert aws_clients.located_session("us-east-1") is located[0]  # one per account and region
