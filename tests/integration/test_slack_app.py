"""Slack app mode end to end: SNS event -> the notifier Lambda -> the local Web API stand-in
(local/slack_api_standin.py, a real HTTP server), with the bot token in (moto) Secrets Manager and the
threads in the (moto) ledger table. Parents, replies in their threads, updates, rate limits, deleted
parents, redeliveries and failures half way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest

from hyperpod_guard.local.slack_api_standin import TOKEN, Message, SlackApiStandIn
from hyperpod_guard.notify.buttons import ActionId, ButtonValue
from hyperpod_guard.notify.delivery import SlackNotConfiguredError
from hyperpod_guard.notify.message import Notification, NotificationItem, ReceiverRef
from hyperpod_guard.notify.slack_app import SlackAppDeliveryError, SlackWebApi, mark_acknowledged, reply_to_alert
from hyperpod_guard.notify.slack_threads import ThreadStore
from tests.integration.test_slack_notifier import (  # noqa: F401 (env, secrets, output: fixtures)
    TABLE,
    FakeContext,
    env,
    handler,
    output,
    records,
    secrets,
    sns_event,
)
from tests.message_samples import FIRST_SEEN, SENT_AT, degraded, firing, message, resolved, rollback, unhealthy_node

TOKEN_SECRET = "hyperpod-guard/slack-bot-token"  # noqa: S105 - its name
DEFAULT, ONCALL = "C0DEFAULT", "C0ONCALL"
HOUR = timedelta(hours=1)


@pytest.fixture
def slack(env, secrets, monkeypatch) -> Iterator[SlackApiStandIn]:  # noqa: F811
    with SlackApiStandIn() as standin:
        secrets.create_secret(Name=TOKEN_SECRET, SecretString=json.dumps({"token": TOKEN}))
        monkeypatch.setenv("SLACK_MODE", "app")
        monkeypatch.setenv("SLACK_BOT_TOKEN_SECRET", TOKEN_SECRET)
        monkeypatch.setenv("SLACK_CHANNELS", json.dumps({"default": DEFAULT, "ml-oncall": ONCALL}))
        monkeypatch.setenv("SLACK_API_URL", standin.url)
        monkeypatch.setenv("SLACK_MAX_ATTEMPTS", "4")
        yield standin


_ids = iter(range(10_000))


def deliver(*notifications: Notification, ids: str | None = None) -> dict[str, int]:
    """One SNS event with these messages; a new message id each call unless `ids` repeats one."""
    return handler(sns_event(*(n.body() for n in notifications), ids=ids or f"msg-{next(_ids)}-"), FakeContext())


def first_rollback(**fields: object) -> Notification:
    return message(firing("first", rollback()), **fields)


def sections(message: Message) -> list[str]:
    """The texts of a message's sections: (the mention,) then one per item."""
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section"]


def methods(slack: SlackApiStandIn) -> list[str]:
    return [c.method for c in slack.calls if c.ok]


def test_a_first_firing_is_a_parent_with_buttons(slack, output):  # noqa: F811
    assert deliver(first_rollback()) == {"sent": 1, "dropped": 0}
    (parent,) = slack.messages(DEFAULT)
    assert slack.replies(DEFAULT, parent.ts) == []
    assert parent.blocks[0]["text"]["text"] == "🔴 ml-prod: 1 firing"
    assert "🔥 *Firing*" in sections(parent)[0]
    assert parent.action_ids[:4] == [ActionId.ACKNOWLEDGE, ActionId.SILENCE_1H, ActionId.SILENCE_4H,
                                     ActionId.SILENCE_24H]
    values = {ButtonValue.decode(e["value"]) for b in parent.blocks if b["type"] == "actions"
              for e in b["elements"] if "value" in e}
    assert values == {ButtonValue(cluster="ml-prod", fingerprint=rollback().fingerprint, node=None,
                                  first_seen=FIRST_SEEN)}
    out, err = output.readouterr()
    _, metrics = records(out)
    assert metrics == {"NotificationsReceived": 1, "SlackParentsPosted": 1, "SlackMessagesSent": 1}
    assert TOKEN not in out + err
    # the parent's pointer and content are in the ledger table, the token is not
    items = boto3.client("dynamodb", region_name="us-west-2").scan(TableName=TABLE)["Items"]
    assert sorted(i["sk"]["S"].split("#")[0] for i in items if i["pk"]["S"] == "CLUSTER#ml-prod") == [
        "SLACKALERT", "SLACKALERT", "SLACKMSG"]  # the alert's pointer, its episode's pointer, the parent
    assert TOKEN not in str(items)


def test_a_repeat_is_a_reply_in_the_thread_and_updates_the_parent(slack):
    deliver(first_rollback())
    deliver(message(firing("repeat", rollback()), sent_at=SENT_AT + 4 * HOUR))
    (parent,) = slack.messages(DEFAULT)
    (reply,) = slack.replies(DEFAULT, parent.ts)
    assert reply.block_texts[0].startswith("🔁 *Still firing* · `failed-rollback`")
    assert "Firing for 6h14m" in reply.block_texts[0]
    assert len(parent.edits) == 1  # the update: still firing, for longer
    assert "Firing for 6h14m" in sections(parent)[0]
    assert methods(slack) == ["chat.postMessage", "chat.update", "chat.postMessage"]


def test_the_resolved_is_a_reply_and_the_parent_shows_it_resolved(slack, output):  # noqa: F811
    deliver(first_rollback())
    deliver(message(resolved(rollback(), "Instance group p5-train is InService"), sent_at=SENT_AT + HOUR))
    (parent,) = slack.messages(DEFAULT)
    (reply,) = slack.replies(DEFAULT, parent.ts)
    assert reply.block_texts[0].startswith("✅ *Resolved* · `failed-rollback`")
    assert parent.blocks[0]["text"]["text"] == "✅ ml-prod: resolved"
    assert "✅ *Resolved* <!date^" in sections(parent)[0].splitlines()[-1]
    assert not [a for a in parent.action_ids if a.startswith("hpg.")]  # no buttons on a resolved alert
    _, metrics = records(output.readouterr().out)
    assert metrics["SlackParentsUpdated"] == 1 and metrics["SlackThreadReplies"] == 1


def test_a_grouped_message_is_one_parent_and_later_news_goes_to_each_alerts_thread(slack):
    deliver(message(firing("first", rollback()), firing("first", unhealthy_node())))
    deliver(message(firing("first", degraded())))
    first, second = slack.messages(DEFAULT)
    assert len(first.action_ids) == 2 * 4 + 1  # two alerts' buttons, and the console link
    deliver(message(firing("escalated", unhealthy_node()), firing("repeat", degraded()), sent_at=SENT_AT + HOUR))
    assert len(slack.messages(DEFAULT)) == 2  # no new parent
    (news_1,) = slack.replies(DEFAULT, first.ts)
    (news_2,) = slack.replies(DEFAULT, second.ts)
    assert "unhealthy-node" in news_1.block_texts[0] and "⏫ *Escalated to WARNING*" in news_1.block_texts[0]
    assert "degraded-group" in news_2.block_texts[0]
    assert len(first.edits) == len(second.edits) == 1


def test_a_new_episode_gets_a_new_parent(slack):
    deliver(first_rollback())
    later = rollback()
    deliver(Notification(**{**first_rollback().model_dump(), "items": [
        firing("first", later).model_copy(update={"first_seen": FIRST_SEEN + 5 * HOUR})]}))
    assert len(slack.messages(DEFAULT)) == 2
    assert all(slack.replies(DEFAULT, m.ts) == [] for m in slack.messages(DEFAULT))


def episode_2(item: NotificationItem) -> NotificationItem:
    """`item` of the alert's next episode (first seen 4h after the first one, after its resolved)."""
    later = FIRST_SEEN + 4 * HOUR
    return item.model_copy(update={"first_seen": later, "fired_at": later})


def late_resolved_of_episode_1() -> Notification:
    """Episode 1's resolved, decided before episode 2 began (delivered after it: Lambda's retries)."""
    item = resolved(rollback(), "Instance group p5-train is InService").model_copy(
        update={"resolved_at": SENT_AT + HOUR})
    return message(item, sent_at=SENT_AT + HOUR)


def test_a_late_resolved_of_an_older_episode_updates_its_own_parent_and_posts_nothing(slack):
    deliver(first_rollback())
    deliver(message(episode_2(firing("first", rollback())), sent_at=SENT_AT + 2 * HOUR))
    first, second = slack.messages(DEFAULT)
    # episode 1's resolved, held back by a Slack outage until episode 2 had its parent: the update fails,
    # Lambda's retry makes it
    slack.fail("internal_error", times=4, status=500, method="chat.update")
    with pytest.raises(SlackAppDeliveryError, match="internal_error"):
        deliver(late_resolved_of_episode_1(), ids="late-")
    deliver(late_resolved_of_episode_1(), ids="late-")
    assert [m.ts for m in slack.messages(DEFAULT)] == [first.ts, second.ts]  # no new parent
    assert first.blocks[0]["text"]["text"] == "✅ ml-prod: resolved" and len(first.edits) == 1
    assert second.blocks[0]["text"]["text"] == "🔴 ml-prod: 1 firing" and second.edits == []
    # stale news: no reply in either thread (the lifecycle model's I11)
    assert slack.replies(DEFAULT, first.ts) == slack.replies(DEFAULT, second.ts) == []
    deliver(late_resolved_of_episode_1(), ids="late-")  # SNS again: nothing
    assert methods(slack) == ["chat.postMessage", "chat.postMessage", "chat.update"]
    # episode 2's news still goes to its own thread
    deliver(message(episode_2(resolved(rollback(), "fixed")).model_copy(update={"resolved_at": SENT_AT + 3 * HOUR}),
                    sent_at=SENT_AT + 3 * HOUR))
    (reply,) = slack.replies(DEFAULT, second.ts)
    assert reply.block_texts[0].startswith("✅ *Resolved*")
    assert second.blocks[0]["text"]["text"] == "✅ ml-prod: resolved"
    assert slack.replies(DEFAULT, first.ts) == [] and len(first.edits) == 1
    # a click finds each episode's parent: one per episode
    threads = ThreadStore(boto3.client("dynamodb", region_name="us-west-2"), TABLE)
    assert sorted((t.first_seen, t.ts) for t in threads.alert_threads("ml-prod", rollback().fingerprint)) == [
        (FIRST_SEEN, first.ts), (FIRST_SEEN + 4 * HOUR, second.ts)]


def test_a_pointer_stored_before_episode_pointers_is_found_for_its_episode(slack):
    """Tables written before the episode pointers hold the alert's pointer only: it is its episode's until a
    newer episode takes it; a late message of that episode then posts nothing (no stray parent)."""
    deliver(first_rollback())
    boto = boto3.client("dynamodb", region_name="us-west-2")
    episode_key = f"SLACKALERT#{rollback().fingerprint}#default#"
    for item in boto.scan(TableName=TABLE)["Items"]:
        if item["sk"]["S"].startswith(episode_key):  # as the code before them left it
            boto.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    deliver(message(firing("repeat", rollback()), sent_at=SENT_AT + HOUR / 2))
    (first,) = slack.messages(DEFAULT)
    assert len(slack.replies(DEFAULT, first.ts)) == 1 and len(first.edits) == 1
    deliver(message(episode_2(firing("first", rollback())), sent_at=SENT_AT + 2 * HOUR))
    deliver(late_resolved_of_episode_1())
    assert len(slack.messages(DEFAULT)) == 2 and len(slack.replies(DEFAULT, first.ts)) == 1


@pytest.mark.parametrize("how", ["429", "ratelimited"])
def test_rate_limits_are_waited_out(slack, env, output, how):  # noqa: F811
    slack.rate_limit(2, retry_after=3, how=how)
    deliver(first_rollback())
    assert len(slack.messages(DEFAULT)) == 1
    assert [c.status for c in slack.calls] == ([429, 429, 200] if how == "429" else [200, 200, 200])
    assert env == [3.0, 3.0]  # Retry-After, not a backoff of our own
    _, metrics = records(output.readouterr().out)
    assert metrics["SlackRateLimited"] == 2 and metrics["SlackParentsPosted"] == 1


def test_rate_limited_past_the_attempts_fails_and_the_retry_posts_once(slack):
    slack.rate_limit(4)
    with pytest.raises(SlackAppDeliveryError, match="ratelimited"):
        deliver(first_rollback(), ids="limited-")
    assert slack.messages(DEFAULT) == []
    deliver(first_rollback(), ids="limited-")  # Lambda's retry
    assert len(slack.messages(DEFAULT)) == 1


def test_a_deleted_parent_is_replaced_by_a_new_one(slack, output):  # noqa: F811
    deliver(first_rollback())
    (old,) = slack.messages(DEFAULT)
    slack.delete(DEFAULT, old.ts)
    deliver(message(firing("repeat", rollback()), sent_at=SENT_AT + 4 * HOUR))
    (new,) = slack.messages(DEFAULT)
    assert new.ts != old.ts and "Firing for 6h14m" in sections(new)[0]
    assert slack.replies(DEFAULT, old.ts) == [] and slack.replies(DEFAULT, new.ts) == []
    # the next news goes to the new parent's thread
    deliver(message(resolved(rollback(), "fixed"), sent_at=SENT_AT + 5 * HOUR))
    assert len(slack.replies(DEFAULT, new.ts)) == 1 and len(new.edits) == 1
    _, metrics = records(output.readouterr().out)
    assert metrics["SlackParentsGone"] == 1 and metrics["SlackParentsPosted"] == 2


def test_a_redelivered_sns_message_posts_nothing(slack):
    deliver(first_rollback())
    repeat = message(firing("repeat", rollback()), sent_at=SENT_AT + 4 * HOUR)
    deliver(repeat, ids="again-")
    calls = len(slack.calls)
    deliver(repeat, ids="again-")  # SNS at least once: answered from its idempotency record
    assert len(slack.calls) == calls
    deliver(repeat, ids="again-")
    assert len(slack.calls) == calls


def test_a_failure_half_way_is_retried_for_what_was_not_done(slack):
    deliver(first_rollback())
    news = message(firing("repeat", rollback()), firing("first", degraded()), sent_at=SENT_AT + 4 * HOUR)
    # the update and the reply go through; the new parent for `degraded` fails (500, on all 4 attempts)
    slack.fail("internal_error", status=500, method="chat.postMessage", after=1)
    slack.fail("internal_error", times=3, status=500, method="chat.postMessage")
    with pytest.raises(SlackAppDeliveryError, match="internal_error"):
        deliver(news, ids="half-")
    assert methods(slack) == ["chat.postMessage", "chat.update", "chat.postMessage"]
    deliver(news, ids="half-")  # Lambda's retry: only the new parent
    assert methods(slack) == ["chat.postMessage", "chat.update", "chat.postMessage", "chat.postMessage"]
    first, second = slack.messages(DEFAULT)
    assert len(slack.replies(DEFAULT, first.ts)) == 1 and "degraded-group" in sections(second)[0]


def test_a_crash_after_the_parent_is_recorded_posts_nothing_again(slack, monkeypatch):
    """The idempotency record is lost (the invocation timed out): the thread store still knows."""
    deliver(first_rollback(), ids="crash-")
    boto = boto3.client("dynamodb", region_name="us-west-2")
    for item in boto.scan(TableName=TABLE)["Items"]:
        if item["pk"]["S"] == "IDEMPOTENCY":
            boto.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    deliver(first_rollback(), ids="crash-")
    assert methods(slack) == ["chat.postMessage"]


def test_an_older_state_never_overwrites_a_newer_one(slack):
    deliver(first_rollback())
    deliver(message(resolved(rollback(), "fixed"), sent_at=SENT_AT + 2 * HOUR))
    # a repeat decided before the resolved, delivered after it (a Lambda retry)
    deliver(message(firing("repeat", rollback()), sent_at=SENT_AT + HOUR))
    (parent,) = slack.messages(DEFAULT)
    assert parent.blocks[0]["text"]["text"] == "✅ ml-prod: resolved"
    assert len(parent.edits) == 1  # the resolved's update only
    (reply,) = slack.replies(DEFAULT, parent.ts)
    assert reply.block_texts[0].startswith("✅ *Resolved*")


def test_each_receiver_gets_its_own_thread_and_one_without_a_channel_fails_alone(slack, monkeypatch, output):  # noqa: F811
    oncall = (ReceiverRef(name="ml-oncall", mention="<!subteam^S0123ABCD>"), ReceiverRef())
    two = message(firing("first", rollback(), receivers=oncall))
    deliver(two)
    assert len(slack.messages(DEFAULT)) == len(slack.messages(ONCALL)) == 1
    assert sections(slack.messages(ONCALL)[0])[0].startswith("<!subteam^S0123ABCD> 1 critical alert")
    monkeypatch.setenv("SLACK_CHANNELS", json.dumps({"default": DEFAULT}))
    with pytest.raises(SlackNotConfiguredError, match="ml-oncall"):
        deliver(message(firing("repeat", rollback(), receivers=oncall), sent_at=SENT_AT + HOUR))
    assert len(slack.replies(DEFAULT, slack.messages(DEFAULT)[0].ts)) == 1  # default still got its reply
    _, metrics = records(output.readouterr().out)
    assert metrics["SlackNotConfigured"] == 1


def test_a_wrong_token_is_a_clear_error_without_the_token(slack, secrets, output):  # noqa: F811
    secrets.put_secret_value(SecretId=TOKEN_SECRET, SecretString="xoxb-revoked-0000")
    with pytest.raises(Exception, match="invalid_auth"):
        deliver(first_rollback())
    out, err = output.readouterr()
    assert "invalid_auth" in out and "xoxb-revoked" not in out + err
    _, metrics = records(out)
    assert metrics["SlackDeliveryFailed"] == 1


def test_acknowledge_updates_every_parent_of_the_episode_and_replies(slack):
    oncall = (ReceiverRef(name="ml-oncall"), ReceiverRef())
    deliver(message(firing("first", rollback(), receivers=oncall)))
    api = SlackWebApi(TOKEN, slack.url)
    threads = ThreadStore(boto3.client("dynamodb", region_name="us-west-2"), TABLE)
    fingerprint = rollback().fingerprint
    at = SENT_AT + HOUR
    assert mark_acknowledged(api, threads, "ml-prod", fingerprint, FIRST_SEEN, "U0ALICE", at, None) == 2
    assert mark_acknowledged(api, threads, "ml-prod", fingerprint, FIRST_SEEN, "U0ALICE", at, None) == 0  # again
    assert mark_acknowledged(api, threads, "ml-prod", fingerprint, FIRST_SEEN - HOUR, "U0BOB", at, None) == 0
    for channel in (DEFAULT, ONCALL):
        (parent,) = slack.messages(channel)
        assert "👀 *Acknowledged* by <@U0ALICE>" in sections(parent)[0]
        assert ActionId.ACKNOWLEDGE not in parent.action_ids and ActionId.SILENCE_4H in parent.action_ids
    assert reply_to_alert(api, threads, "ml-prod", fingerprint, FIRST_SEEN, "acknowledged by <@U0ALICE>") == 2
    # an escalation after the acknowledgement keeps it on the parent
    deliver(message(firing("escalated", rollback(), receivers=oncall), sent_at=SENT_AT + 2 * HOUR))
    (parent,) = slack.messages(DEFAULT)
    assert "👀 *Acknowledged* by <@U0ALICE>" in sections(parent)[0]
    assert len(slack.replies(DEFAULT, parent.ts)) == 2


def test_webhook_mode_does_not_import_the_slack_sdk(tmp_path):
    """slack_sdk is imported by app mode only (notify/slack_app.py imports it on first use)."""
    import subprocess
    import sys
    from pathlib import Path

    import hyperpod_guard

    functions = Path(hyperpod_guard.__file__).parent.parent
    code = ("import sys; import hyperpod_guard.notify.delivery, hyperpod_guard.notify.slack_app; "
            "print('slack_sdk' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: S603
                            env={"PYTHONPATH": str(functions), "PATH": ""}, cwd=tmp_path)
    assert result.stdout.strip() == "False"
