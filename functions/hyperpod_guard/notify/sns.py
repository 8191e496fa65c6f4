"""Publish notifications to the SNS topic."""

from __future__ import annotations

from typing import Any

from .message import Notification


class SnsPublisher:
    def __init__(self, topic_arn: str, sns: Any):
        self.topic_arn = topic_arn
        self.sns = sns

    def publish(self, notification: Notification) -> str:
        """Returns the SNS MessageId (of the first part, when the notification is too large for
        one message and goes as several). Raises on failure (the caller releases its claims, so
        a retry sends every part again: parts sent before the failure arrive twice)."""
        message_ids = []
        for part in notification.split():
            response = self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=part.subject,
                Message=part.body(),
                MessageAttributes=part.attributes(),
            )
            message_ids.append(response["MessageId"])
        return message_ids[0]
