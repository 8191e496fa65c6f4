"""A bearer token for an EKS cluster's Kubernetes API, made exactly as `aws eks get-token` makes it (no
kubeconfig, no kubectl, no aws CLI in the Lambda).

The token is `k8s-aws-v1.` + the unpadded URL-safe base64 of a presigned STS GetCallerIdentity URL whose
signature covers the header `x-k8s-aws-id: <EKS cluster name>`. EKS's authenticator calls that URL to learn
who the caller is (the IAM role, which an EKS access entry maps to Kubernetes permissions), and checks the
signed header against its own name, so a token made for one cluster is refused by another. The URL is valid
60 seconds (X-Amz-Expires), the lifetime aws-cli gives it; EKS accepts a token up to 15 minutes after it was
signed, so one token serves one evaluation.

`tests/unit/test_eks_token.py` checks the token against one made by aws-cli's own `TokenGenerator` (the
same credentials, region, cluster and signing time).
"""

from __future__ import annotations

import base64
from typing import Any

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 (the token format's version prefix, not a secret)
#: the header the signature covers; EKS compares its value with the cluster's name
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: seconds the presigned URL is valid, as aws-cli makes it
URL_TIMEOUT = 60


def eks_token(sts: Any, cluster_name: str) -> str:
    """The bearer token for `cluster_name` (the EKS cluster's name, not the HyperPod cluster's), signed with
    `sts`'s credentials in its region (the EKS cluster's region: the STS regional endpoint)."""
    _sign_cluster_header(sts)
    url = sts.generate_presigned_url("get_caller_identity", Params={CLUSTER_ID_HEADER: cluster_name},
                                     ExpiresIn=URL_TIMEOUT, HttpMethod="GET")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _sign_cluster_header(sts: Any) -> None:
    """Let GetCallerIdentity take the cluster's name as a parameter (it has none) and sign it as the header,
    as aws-cli does: the parameter is moved into the request's context before botocore validates the
    parameters, and into the headers before it signs. Registered once per client (unique ids)."""
    events = sts.meta.events
    events.register("provide-client-params.sts.GetCallerIdentity", _take_cluster_name,
                    unique_id="hyperpod-guard-eks-token-params")
    events.register("before-sign.sts.GetCallerIdentity", _add_cluster_header,
                    unique_id="hyperpod-guard-eks-token-header")


def _take_cluster_name(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _add_cluster_header(request: Any, **_: Any) -> None:
    if CLUSTER_ID_HEADER in request.context:
        request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]
