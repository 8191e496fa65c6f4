"""Publish notifications to the SNS topic."""

from __future__ import annotations

from typing import Any

from .message import Notification


class SnsPublisher:
    def __init__(self, topic_arn: str, sns: Any):
        self.topic_arn = topic_arn
        self.sns = sns

    def publish(self, notification: Notification) -> str:
        """Returns the SNS MessageId. Raises on failure (the caller releases its claims)."""
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=notification.subject,
            Message=notification.body(),
            MessageAttributes=notification.attributes(),
        )
        return response["MessageId"]
