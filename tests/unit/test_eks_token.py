"""The EKS bearer token (issue 23, workload/eks_token.py) against aws-cli's own.

VECTOR was made by aws-cli 1.46.3's `awscli.customizations.eks.get_token.TokenGenerator` (botocore 1.43.62)
with the credentials, region, cluster name and signing time below (botocore.auth.get_current_datetime
frozen), the way `aws eks get-token --cluster-name ml-eks --region us-west-2` makes it.
"""

from __future__ import annotations

import base64
import urllib.parse
from datetime import datetime
from typing import Any

import botocore.auth
import botocore.session
import pytest

from hyperpod_guard.workload.eks_token import TOKEN_PREFIX, eks_token

SIGNED_AT = datetime(2026, 11, 30, 12, 0, 0)
VECTOR = (
    "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEt"
    "MDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjYxMTMwJTJGdXMt"
    "d2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjExMzBUMTIwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25l"
    "ZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9MzU2ZTI1OWZlMjgxNDEyYjc0MWMwZTFlZjgwMzM2NzBkZThmMDM0"
    "NTE4MTU4NDliNGZkNWRhNDhhMmE4NzRhNw"
)


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An STS client of us-west-2 with fixed credentials, on AWS's endpoint, signing at SIGNED_AT."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: SIGNED_AT)
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    return session.create_client("sts", region_name="us-west-2")


def url_of(token: str) -> urllib.parse.ParseResult:
    assert token.startswith(TOKEN_PREFIX)
    encoded = token.removeprefix(TOKEN_PREFIX)
    return urllib.parse.urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())


def test_the_token_is_the_one_aws_cli_makes(sts: Any) -> None:
    assert eks_token(sts, "ml-eks") == VECTOR


def test_the_cluster_name_is_signed_not_sent_and_the_url_lives_60_seconds(sts: Any) -> None:
    url = url_of(eks_token(sts, "ml-eks"))
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (url.scheme, url.netloc) == ("https", "sts.us-west-2.amazonaws.com")
    assert query["Action"] == "GetCallerIdentity" and query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert "ml-eks" not in url.query  # EKS compares the signed header with its own name
    assert not eks_token(sts, "ml-eks").endswith("=")  # unpadded, as EKS expects


def test_another_cluster_gets_another_token_from_the_same_client(sts: Any) -> None:
    first, other = eks_token(sts, "ml-eks"), eks_token(sts, "ml-eks-2")
    assert first != other and eks_token(sts, "ml-eks") == first == VECTOR
    assert sts.get_caller_identity.__name__ == "get_caller_identity"  # the client's own calls are untouched
