"""The Slack webhook sink as a pytest fixture (the sink itself lives in hyperpod_guard.local).

Use it in a test module with `from tests.slack_sink import slack_sink  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hyperpod_guard.local.slack_sink import WEBHOOK_PATH, Request, Response, SlackSink  # noqa: F401


def running_sink() -> Iterator[SlackSink]:
    sink = SlackSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


#: a webhook; a test with two receivers (two webhooks) makes a second fixture with `running_sink`
slack_sink = pytest.fixture(running_sink, name="slack_sink")
