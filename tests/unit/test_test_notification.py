"""A test notification (`hyperpod-guard test-alert`) says TEST in every rendering and carries a
`test` attribute; a real notification carries neither."""

from __future__ import annotations

from datetime import UTC, datetime

from hyperpod_guard.cli.test_alert import test_notification as make_test_notification
from hyperpod_guard.findings import Severity
from hyperpod_guard.notify.message import Notification
from hyperpod_guard.notify.slack import header_text, render

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_subject_text_attributes_and_slack_say_test():
    notification = make_test_notification(Severity.INFO, "oncall", "us-west-2", NOW, "alice")
    assert notification.subject.startswith("[TEST] [INFO] ")
    assert notification.text().splitlines()[0].startswith("TEST notification (sent by `hyperpod-guard test-alert`")
    assert "receiver oncall" in notification.text()
    attributes = notification.attributes()
    assert attributes["test"] == {"DataType": "String", "StringValue": "true"}
    assert attributes["receiver"]["StringValue"] == "oncall"
    assert header_text(notification).startswith("🧪 TEST ")
    context = render(notification)["blocks"][1]["elements"][0]["text"]
    assert context.startswith("*TEST notification* for receiver `oncall`")
    assert "alice" in notification.items[0].finding.summary


def test_the_body_round_trips_as_the_notifier_reads_it():
    notification = make_test_notification(Severity.WARNING, None, None, NOW)
    again = Notification.model_validate_json(notification.body())
    assert again.test and again.receiver is None and again.subject == notification.subject


def test_a_real_notification_is_not_marked():
    notification = make_test_notification(Severity.WARNING, "x", None, NOW).model_copy(
        update={"test": False, "receiver": None})
    assert not notification.subject.startswith("[TEST]")
    assert {"test", "receiver"}.isdisjoint(notification.attributes())
    assert "TEST" not in header_text(notification)
