"""The local Kubernetes API stand-in (hyperpod_guard/local/kube_standin.py) as pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hyperpod_guard.local.kube_standin import (  # noqa: F401 (re-exported for the tests)
    EKS_TOKEN,
    TOKEN,
    KubeStandin,
    down_url,
    eks_token_problem,
    running,
    self_signed,
    serve_as_eks,
)


@pytest.fixture
def kube() -> Iterator[KubeStandin]:
    """The stand-in loaded with local/kube/cluster.json, over plain http, expecting TOKEN."""
    yield from running()
