"""What email subscribers read (the SNS message's "email" key, Notification.text()): plain text for a
phone, for every message kind, golden-filed; no JSON, no markup, short lines, bounded."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

from hyperpod_guard.notify import email
from hyperpod_guard.notify.message import FindingPayload, Notification, NotificationItem
from tests.golden import check_golden
from tests.message_samples import RUNBOOK, SAMPLES
from tests.unit.test_chatbot import hostile_notifications

_MARKUP = re.compile(r"\*\w|\w\*|\]\(|^#|^\s*[{\[]|<[^>]*>|&[a-z]+;", re.MULTILINE)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_reads_as_email_and_matches_its_golden_file(kind: str) -> None:
    text = SAMPLES[kind].text()
    assert text == email.render(SAMPLES[kind])
    check_golden("email", kind, text)
    assert not _MARKUP.search(text.replace("`hyperpod-guard test-alert`", "")), text
    assert all(len(line) <= email.WIDTH or line.startswith("https://") or line == SAMPLES[kind].preview
               for line in text.splitlines())


def test_firing_says_what_where_since_evidence_next_runbook_and_console() -> None:
    lines = SAMPLES["firing"].text().splitlines()
    assert lines[0] == SAMPLES["firing"].preview  # what a phone shows under the subject
    assert {"Cluster: ml-prod", "Account: 123456789012", "Region: us-west-2"} <= set(lines)
    assert "Since: 2026-11-30 07:16 UTC (2h14m ago)" in lines
    assert "- software update status RollbackFailed" in lines
    assert "Next: Nothing automatic: a person must act" in lines
    assert lines[lines.index("Runbook:") + 1] == RUNBOOK
    assert lines[lines.index("Open the cluster in the SageMaker console:") + 1].endswith("#/cluster-management/ml-prod")


def test_resolved_says_what_is_true_now_when_it_cleared_and_how_long_it_lasted() -> None:
    lines = SAMPLES["resolved"].text().splitlines()
    assert lines[0] == "RESOLVED ml-prod: Instance group p5-train is back to InService, 16/16 nodes"
    assert "Now: Instance group p5-train is back to InService, 16/16 nodes" in lines
    assert "Cleared: 2026-11-30 09:29 UTC (40s ago)" in lines and "Lasted: 2h13m20s" in lines
    assert "- group status InService" in lines[lines.index("Evidence now:"):]


def test_a_repeat_says_so_and_for_how_long() -> None:
    assert "Repeat: still firing after 2h14m; a reminder, not a new problem" in SAMPLES["repeat"].text().splitlines()
    assert "Escalated to critical after 2h14m" in SAMPLES["escalated"].text().splitlines()


def test_a_test_notification_says_test_first() -> None:
    lines = SAMPLES["test"].text().splitlines()
    assert lines[:3] == ["TEST notification (sent by `hyperpod-guard test-alert`)", "Not an alert, nothing to do.",
                         "For receiver ml-oncall"]
    assert lines[3].startswith("TEST WARNING ml-prod:")


def test_hundreds_of_findings_are_bounded_and_counted() -> None:
    items = tuple(NotificationItem(reason="first", finding=FindingPayload(
        policy="taint-drift", severity="warning", cluster="big", instance_group=f"group-{i}", fingerprint=f"{i:020d}",
        condition="x", summary=f"Nodes of instance group group-{i} drift " + "x" * 400,
        details={"failure_message": "y" * 2000})) for i in range(300))
    text = Notification(cluster="big", region="us-west-2", items=items).text()
    assert len(text) <= email.EMAIL_LIMIT + 2000
    assert re.search(r"^\.\.\.and \d+ more findings \(\d+ firing, 0 resolved\): see the console or Slack\.$", text,
                     re.MULTILINE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_notifications())
def test_hostile_strings_make_no_lines_of_their_own_and_the_text_stays_bounded(notification: Notification) -> None:
    text = notification.text()
    assert len(text) <= email.EMAIL_LIMIT + 2000
    assert not any(c in text for c in "\r\x00\u202e\u2028")  # a value cannot add or reorder lines
