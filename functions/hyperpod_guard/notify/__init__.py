"""Notifications: the message model (one per cluster per change), SNS publishing, Slack delivery."""
