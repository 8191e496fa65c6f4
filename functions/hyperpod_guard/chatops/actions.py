"""What each click does, once the endpoint has believed it (signature.py) and the actions worker has it.

- Acknowledge (`rules.chatops.responders`; empty: anyone): LedgerStore.acknowledge for
  `rules.chatops.acknowledge_for` (None: until the alert resolves), every parent message of the episode
  updated (chat.update), a reply in its thread. No repeats while acknowledged (ledger.observe).
- Silence 1h / 4h / 24h (responders): an ad-hoc silence of the alert's scope (its cluster, policy, instance
  group and node, from LedgerStore.get), authored "<name> (<user id>) via Slack", its comment naming the
  Slack message; a reply.
- Approve / Reject (`rules.chatops.approvers` only: user ids, or members of user-group ids; empty: nobody):
  ApprovalStore.decide; a reply; on approve, an `evaluate-cluster` work message, so that the worker acts on
  the cluster as it is now, through the budgets and the audit (remediation/executor.py names the approver).

Every click is first checked against `rules.chatops.team_id` (when set, only that workspace's clicks count).
A refused click does nothing but tell the user why, in a message only they see (chat.postEphemeral).

`permission` is the allow-list decision, pure (a table test: tests/unit/test_slack_interaction.py);
`Actions` does the I/O. A click carried out twice (its queue message redelivered after a failure half-way)
does no harm: acknowledging again by the same user keeps the first time, the silence's id comes from the
click (a second Put is refused by its condition), and the same decision by the same user returns the
approval as it is (ApprovalStore.decide). handlers/slack_actions.py also remembers each click (Powertools
idempotency), so a redelivery after success does nothing at all.
"""

from __future__ import annotations

import glob
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from ..fleet import Location, location_of, name_of
from ..notify.buttons import SILENCE_FOR, ActionId
from ..silences import SilenceStore, new_silence
from ..timeutil import format_duration, isoformat
from .interaction import Interaction

if TYPE_CHECKING:
    from ..handlers.worker import WorkQueue
    from ..ledger_store import LedgerStore
    from ..notify.slack_app import SlackWebApi
    from ..notify.slack_threads import ThreadStore
    from ..remediation.approvals import Approval, ApprovalStore
    from ..rules import ChatOps

logger = logging.getLogger(__name__)

ACKNOWLEDGE, APPROVE, REJECT = ActionId.ACKNOWLEDGE, ActionId.APPROVE, ActionId.REJECT
#: a user-group id (Slack: S…); anything else in the lists is a user id (U…, W…)
_GROUP_PREFIX = "S"


@dataclass(frozen=True)
class Result:
    """What a click came to: `done`, or `refused` (nothing was done); `text`: what Slack was told."""

    outcome: Literal["done", "refused"]
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"outcome": self.outcome, "text": self.text}


def _in(user: str, allowed: Iterable[str], members: Callable[[str], frozenset[str]]) -> bool:
    allowed = list(allowed)
    if user in allowed:
        return True
    return any(user in members(entry) for entry in allowed if entry.startswith(_GROUP_PREFIX))


def permission(click: Interaction, chatops: ChatOps, members: Callable[[str], frozenset[str]]) -> str | None:
    """Why `click` may not be carried out (None: it may). `members(group id)`: the group's user ids."""
    if chatops.team_id and click.team_id != chatops.team_id:
        return (f"clicks from workspace {click.team_id} do not count here (rules.chatops.team_id is "
                f"{chatops.team_id})")
    if click.action in (APPROVE, REJECT):
        if not chatops.approvers:
            return "nobody may approve or reject from Slack: rules.chatops.approvers is empty"
        if not _in(click.user_id, chatops.approvers, members):
            return (f"only the approvers may {'approve' if click.action == APPROVE else 'reject'} a remediation "
                    f"(rules.chatops.approvers), and {click.user_id} is not one of them")
        return None
    if chatops.responders and not _in(click.user_id, chatops.responders, members):
        what = "acknowledge" if click.action == ACKNOWLEDGE else "silence"
        return (f"only the responders may {what} alerts (rules.chatops.responders), and {click.user_id} "
                "is not one of them")
    return None


def silence_id(click: Interaction) -> str:
    """The silence a click makes: the same id for the same click, so a redelivery cannot make two."""
    return "slack-" + hashlib.sha256(click.key.encode()).hexdigest()[:12]


class Actions:
    """Carries clicks out: the ledger, the approvals, the silences, Slack's Web API and the alerts' threads,
    and the work queue the worker evaluates from (None: an approved action runs at the next sweep). `home`: a
    hub's own account and region (fleet.py; None: one account), where a cluster's bare key lives."""

    def __init__(self, *, ledger: LedgerStore, approvals: ApprovalStore, silences: SilenceStore, api: SlackWebApi,
                 threads: ThreadStore, work: WorkQueue | None, home: Location | None = None):
        self.ledger, self.approvals, self.silences = ledger, approvals, silences
        self.api, self.threads, self.work, self.home = api, threads, work, home

    def carry_out(self, click: Interaction, chatops: ChatOps, now: datetime) -> Result:
        groups: dict[str, frozenset[str]] = {}

        def members(group: str) -> frozenset[str]:
            if group not in groups:  # one usergroups.users.list per group and click
                try:
                    groups[group] = self.api.user_group_members(group)
                except Exception as exc:  # noqa: BLE001 - an unreadable group admits nobody; the refusal says so
                    logger.warning("user group %s could not be read: %s", group, exc)
                    groups[group] = frozenset()
            return groups[group]

        refused = permission(click, chatops, members)
        if refused:
            return self._refuse(click, refused)
        if click.action == ACKNOWLEDGE:
            return self.acknowledge(click, chatops, now)
        if click.action in (APPROVE, REJECT):
            return self.decide(click, now)
        return self.silence(click, now)

    def _refuse(self, click: Interaction, reason: str) -> Result:
        text = f"Not done: {reason}."
        self.api.ephemeral(click.channel_id, click.user_id, text)
        return Result("refused", text)

    def _reply(self, click: Interaction, text: str) -> None:
        value = click.value
        from ..notify.slack_app import reply_to_alert

        replied = reply_to_alert(self.api, self.threads, value.cluster, value.fingerprint, value.first_seen, text)
        if not replied:  # the alert's thread is not known (the parent was posted elsewhere): answer in place
            self.api.reply(click.channel_id, click.message_ts, text)

    def acknowledge(self, click: Interaction, chatops: ChatOps, now: datetime) -> Result:
        from ..notify.slack_app import mark_acknowledged

        value, first_seen = click.value, click.value.first_seen
        until = now + chatops.acknowledge_for if chatops.acknowledge_for else None
        acknowledged = self.ledger.acknowledge(value.cluster, value.fingerprint, value.node, first_seen, click.who,
                                               now, until)
        if acknowledged.refused or acknowledged.record is None:
            return self._refuse(click, f"cannot acknowledge: {acknowledged.refused or 'no such alert'}")
        record = acknowledged.record
        # the first acknowledgement stands (the same user clicking again, or this click delivered again)
        by, since, until = record.acknowledged_by or click.who, record.acknowledged_at or now, record.acknowledged_until
        mark_acknowledged(self.api, self.threads, value.cluster, value.fingerprint, first_seen, by, since, until)
        text = (f"Acknowledged by {by}: no repeats "
                f"{f'until {isoformat(until)}' if until else 'until it resolves'}.")
        self._reply(click, text)
        return Result("done", text)

    def silence(self, click: Interaction, now: datetime) -> Result:
        from botocore.exceptions import ClientError

        value, duration = click.value, SILENCE_FOR[click.action]
        record = self.ledger.get(value.cluster, value.fingerprint, value.node)
        if record is None:
            return self._refuse(click, "cannot silence: no such alert (it may have been resolved and removed)")
        where = location_of(record.cluster, self.home)  # a hub's: never its spokes' clusters of the same name
        silence = new_silence(
            until=now + duration, now=now, author=f"{click.user_name} ({click.user_id}) via Slack",
            comment=f"silenced from {click.message}: {record.policy} {record.scope}",
            # the cluster by its name, and, in a fleet, by its account and region (fleet.py)
            cluster=glob.escape(name_of(record.cluster)), account=where.account if where else "*",
            region=where.region if where else "*", policy=glob.escape(record.policy),
            instance_group=glob.escape(record.instance_group) if record.instance_group else "*",
            node=glob.escape(record.node) if record.node else "*", silence_id=silence_id(click),
        )
        try:
            self.silences.add(silence)
        except ClientError as exc:  # the same click delivered again: its silence is there already
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        text = (f"Silenced for {format_duration(duration)} by {click.who}, until {isoformat(silence.until)}: "
                f"{silence.matchers_text()} ({silence.id}).")
        self._reply(click, text)
        return Result("done", text)

    def decide(self, click: Interaction, now: datetime) -> Result:
        from ..remediation.approvals import ApprovalRefused

        value, approve = click.value, click.action == APPROVE
        assert value.approval is not None  # interaction.parse refuses an approval button without one
        try:  # the same decision by the same user again (this click, delivered again) returns it as it is
            approval: Approval = self.approvals.decide(value.cluster, value.fingerprint, value.approval, approve,
                                                       click.who, now)
        except ApprovalRefused as exc:
            return self._refuse(click, f"cannot {'approve' if approve else 'reject'}: {exc.reason}")
        if approve:
            text = (f"Approved by {click.who}: {approval.action}. It runs now, at the cluster's next evaluation, "
                    "through the remediation budgets.")
        else:
            text = f"Rejected by {click.who}: {approval.action} will not run."
        self._reply(click, text)
        if approve:
            self._evaluate_now(click, now)
        return Result("done", text)

    def _evaluate_now(self, click: Interaction, now: datetime) -> None:
        """Hand the cluster to the worker: it evaluates the cluster as it is now, and the remediation
        finds the approval (remediation/executor.py)."""
        if self.work is None:
            logger.warning("no work queue: the approved action runs at the next sweep",
                           extra={"cluster": click.value.cluster})
            return
        from ..handlers.worker import EvaluateCluster

        self.work.send([EvaluateCluster(cluster=click.value.cluster, run=f"slack:{click.key}", at=now)])
