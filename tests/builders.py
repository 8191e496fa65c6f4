"""Builders for raw EventBridge events, shared by the table-driven tests."""

from __future__ import annotations

from typing import Any

ACCOUNT = "111122223333"


def envelope(detail_type: str, detail: dict[str, Any], *, arn: str, time: str = "2026-06-01T17:20:25Z") -> dict[str, Any]:
    """A complete EventBridge envelope from aws.sagemaker around `detail`."""
    return {
        "version": "0",
        "id": "0bd4a141-0a02-9d8a-f977-3924c3fb259c",
        "detail-type": detail_type,
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": time,
        "region": "us-west-2",
        "resources": [arn],
        "detail": detail,
    }


def cluster_event(details: dict[str, Any], *, arn: str, time: str = "2026-06-01T17:20:25Z") -> dict[str, Any]:
    """A `SageMaker HyperPod Cluster Event` carrying `details` as detail.EventDetails."""
    return envelope("SageMaker HyperPod Cluster Event", {"EventDetails": details}, arn=arn, time=time)
