"""Publish notifications to the SNS topic, one text per subscription protocol.

Each message goes with MessageStructure "json" (Notification.sns_message): SNS delivers the
"email" key to email subscribers, the "https" key to https subscribers (the Chatbot subscription,
endpoint https://global.sns-api.chatbot.amazonaws.com) and "default", the JSON body, to every other
protocol: the Slack notifier's Lambda subscription reads it from record["Sns"]["Message"] as before
(there is no "lambda" key), and so do SQS and email-json subscribers. One topic stays the single
fan-out point: one publish, one set of attributes for every subscription's filter policy.
"""

from __future__ import annotations

from typing import Any

from .message import Notification

#: SNS: send a different message to each protocol (the Message is then a JSON object of them)
MESSAGE_STRUCTURE = "json"


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
                Message=part.sns_message(),
                MessageStructure=MESSAGE_STRUCTURE,
                MessageAttributes=part.attributes(),
            )
            message_ids.append(response["MessageId"])
        return message_ids[0]
