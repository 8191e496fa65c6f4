"""Carry out planned remediation: backoff, dry run, budgets, the API calls, the audit trail.

Returns, per alert fingerprint, an ActionReport: the lines the alert message shows ("would
replace i-…", "replaced i-…", "skipped: budget spent") and whether they are news of their own.

An action is never repeated on the strength of one report: each action (or dry run) uses up
the observation it acted on (`Decision.observed_at`: the report's time for an event's text,
the read's for state), and the next needs a newer one. News of actions follows the alert's
repeat interval: the first is sent at once, later ones at most once per `repeat_interval`.

Approval (a policy's remediation `approval: required`; approvals.py): a real action (never a dry
run, which stays a dry run) first asks for approval ("awaiting approval: would reboot i-…", news like
an action, the report carrying the ApprovalRef that Slack renders buttons from) and is skipped quietly
while it waits or after a rejection. Once approved, the next evaluation that observes the alert acts:
the budget is taken, the approval used (at most once), the calls made and audited with the approver.
An approved action acts only on what was approved (the nodes, or the exact request); more is asked for anew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..ledger import AlertRecord, Decision
from ..notify.message import ApprovalRef
from ..policy_settings import Remediation, remediation_of
from ..rules import ClusterRules
from ..snapshot import ClusterSnapshot
from ..timeutil import format_duration, isoformat
from .actions import DONE
from .approvals import Approval, ApprovalStore
from .plan import Action, Skip, plan
from .store import Attempt, RemediationStore, group_limit

logger = logging.getLogger(__name__)

AFTER_SUCCESS = timedelta(hours=1)   # give an action time to take effect before acting again
AFTER_DRY_RUN = timedelta(hours=1)   # report the same dry run at most hourly
AFTER_CONFLICT = timedelta(minutes=5)  # the cluster is busy: try again soon, not now
FIRST_BACKOFF, MAX_BACKOFF = timedelta(minutes=15), timedelta(hours=6)


def backoff(failures: int) -> timedelta:
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class ActionReport:
    """What remediation did for one alert, as its message shows it."""

    lines: tuple[str, ...]
    #: worth a message of its own (the alert's first action, then at most once per repeat interval)
    news: bool = False
    #: the action awaits (or got) approval: the message shows it (Slack: Approve / Reject buttons)
    approval: ApprovalRef | None = None


@dataclass(frozen=True)
class _Done:
    line: str
    next_attempt: datetime
    failures: int
    #: the action (or dry run) happened: its observation is used up
    acted: bool
    #: said in a message already due only (a skip)
    quiet: bool = False
    #: an approved action was carried out (news at once), and its approval as the message shows it
    approved: bool = False
    approval: ApprovalRef | None = None


class Remediator:
    def __init__(self, sagemaker: Any, store: RemediationStore, actor: str = "hyperpod-guard",
                 approvals: ApprovalStore | None = None):
        self.sagemaker = sagemaker
        self.store = store
        self.actor = actor
        self.approvals = approvals or ApprovalStore(store.dynamodb, store.table_name)

    def run(self, snapshot: ClusterSnapshot, firing: list[Decision], rules: ClusterRules,
            now: datetime) -> dict[str, ActionReport]:
        """Act on the firing alerts this evaluation observed (`firing`: decisions with `observed_at`)."""
        policies = rules.policies
        observed = {d.record.fingerprint: d for d in firing if d.observed_at}
        reports: dict[str, ActionReport] = {}
        planned_all = plan(snapshot, [d.record for d in observed.values()], policies, now)
        # a node acted on since the observation (through this alert or another) is not acted on again for it
        node_plans = any(isinstance(p, Action) and p.nodes for p in planned_all)
        acted = self.store.node_actions(snapshot.name) if node_plans else {}
        for planned in planned_all:
            if isinstance(planned, Skip):  # nothing done: mentioned only in a message already due
                reports[planned.fingerprint] = ActionReport((f"skipped: {planned.reason}",))
                continue
            decision = observed[planned.fingerprint]
            seen = decision.observed_at
            fresh = planned.without([n for n in planned.nodes if seen and acted.get(n) and acted[n] >= seen])
            if fresh is None:
                continue  # every node was acted on after this observation
            planned = fresh
            attempt = self.store.claim(snapshot.name, planned.fingerprint, now, decision.observed_at)  # type: ignore[arg-type]
            if attempt is None:
                continue  # in backoff, another invocation is acting on it, or this observation was acted on
            settings = remediation_of(policies.for_policy(planned.policy))
            approval: Approval | None = None
            waiting: _Done | None = None
            if not planned.dry_run and settings is not None and settings.approval == "required":
                approval, approved, waiting = self._approval(snapshot.name, planned, decision.record, settings,
                                                             now, attempt.failures)
                planned = approved or planned
            done = waiting or self._act(snapshot, planned, rules, now, attempt.failures, approval)
            repeat = policies.for_policy(planned.policy).repeat_interval
            # an approved action is news at once: the people who approved it wait for its outcome
            news = not done.quiet and (done.approved or _due(attempt, decision, repeat, now))
            self.store.settle(snapshot.name, planned.fingerprint, done.next_attempt, done.failures,
                              acted_on=decision.observed_at if done.acted else None, reported_at=now if news else None)
            reports[planned.fingerprint] = ActionReport(
                (done.line,), news, done.approval or (approval.ref(now) if approval else None))
        return reports

    def _approval(self, cluster: str, action: Action, record: AlertRecord, settings: Remediation, now: datetime,
                  failures: int) -> tuple[Approval, Action | None, _Done | None]:
        """The alert's approval for `action` and what it allows: (approval, the approved part of the
        action, None) when approved; (approval, None, what to report) when it waits, was rejected, or
        is asked for now (none yet, expired, used, another episode's, or for less than the plan)."""
        current = self.approvals.get(cluster, action.fingerprint)
        for _ in range(2):  # a request that lost to a concurrent change reads once more
            status = current.status_at(now) if current and current.first_seen == record.first_seen else None
            if current is not None and status == "approved":
                approved = _approved_part(action, current)
                if approved is not None:
                    return current, approved, None
            elif current is not None and status == "pending":
                return current, None, _Done(f"awaiting approval until {isoformat(current.expires_at)}", now,
                                            failures, acted=False, quiet=True)
            elif current is not None and status == "rejected":
                # a rejection stands for the episode: nothing is asked for again until the alert starts anew
                return current, None, _Done(f"rejected by {current.decided_by}", now, failures, acted=False,
                                            quiet=True)
            requested = self.approvals.request(
                cluster, action.fingerprint, action=action.describe(), requests=action.requests, nodes=action.nodes,
                first_seen=record.first_seen, now=now, expires_in=settings.approval_expires,
                replaces=current.id if current else None)
            if requested is not None:
                logger.info("remediation awaits approval %s: would %s", requested.id, action.describe())
                return requested, None, _Done(
                    f"awaiting approval: would {action.describe()} (expires {isoformat(requested.expires_at)})", now,
                    failures, acted=False)
            current = self.approvals.get(cluster, action.fingerprint)
        assert current is not None, "a request refused on its condition means an approval exists"
        return current, None, _Done("skipped: its approval is changing, retried later", now + AFTER_CONFLICT,
                                    failures, acted=False, quiet=True)

    def _act(self, snapshot: ClusterSnapshot, action: Action, rules: ClusterRules, now: datetime,
             failures: int, approval: Approval | None = None) -> _Done:
        """Carry out `action` (`approval`: approved for it; used here, after the budget, before any call)."""
        audit = {"fingerprint": action.fingerprint, "policy": action.policy, "action": action.kind,
                 "operation": action.operation, "actor": self.actor, "instance_group": action.instance_group,
                 "approved_by": approval.decided_by if approval else None,
                 "approval": approval.id if approval else None}
        if action.dry_run:
            for request in action.requests:
                self.store.audit(snapshot.name, now, **audit, dry_run="true", request=request)
            logger.info("remediation dry run: would call %s %s", action.operation, action.requests)
            return _Done(f"would {action.describe()} (dry run)", now + AFTER_DRY_RUN, failures, acted=True)
        budgeted = bool(action.nodes)
        if budgeted:
            budget = rules.remediation_budget
            group = snapshot.group(action.instance_group)
            limit = group_limit(group.target_count if group else None, budget.max_group_percent)
            taken = self.store.take_budget(snapshot.name, action.instance_group, len(action.nodes),
                                           per_hour=budget.max_nodes_per_hour, group_limit=limit, now=now)
            if not taken:
                assert taken.retry_at is not None, "a refused take says when it may fit"
                self.store.audit(snapshot.name, now, **audit, dry_run="false", outcome="skipped: budget spent",
                                 request=list(action.requests))
                # retried when enough counted nodes leave the 60-minute window for this action to fit
                return _Done(f"skipped: budget spent (at most {budget.max_nodes_per_hour} nodes per cluster and "
                             f"{limit} in {action.instance_group} per 60 minutes)", taken.retry_at, failures,
                             acted=False, quiet=True)
        # the approval is used after the budget (a spent budget keeps it for the retry) and before any call:
        # whoever uses it acts, once
        if approval is not None and not self.approvals.use(snapshot.name, action.fingerprint, approval.id, now):
            if budgeted:
                self.store.refund(snapshot.name, action.instance_group, len(action.nodes), taken, now=now)
            return _Done("skipped: its approval was used or expired meanwhile", now, failures, acted=False,
                         quiet=True)
        done: list[str] = []
        for index, request in enumerate(action.requests):
            try:
                response = getattr(self.sagemaker, _method(action.operation))(**request)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                self.store.audit(snapshot.name, now, **audit, dry_run="false", request=request, error=f"{code}: {exc}")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
                if budgeted and status < 500:  # refused: this and the later requests touched no node
                    untouched = sum(len(r.get("NodeIds", [])) for r in action.requests[index:])
                    self.store.refund(snapshot.name, action.instance_group, untouched, taken, now=now)
                if code == "ConflictException":
                    return _Done("skipped: cluster busy (ConflictException), retried later", now + AFTER_CONFLICT,
                                 failures, acted=False, quiet=True)
                failures += 1
                return _Done(f"failed: {action.operation} {code} (attempt {failures}, next in "
                             f"{format_duration(backoff(failures))})", now + backoff(failures), failures, acted=False)
            response.pop("ResponseMetadata", None)
            self.store.audit(snapshot.name, now, **audit, dry_run="false", request=request, response=response)
            successful = response.get("Successful", request.get("NodeIds", []))
            if action.nodes:  # at once: a later batch of this action may fail
                self.store.acted_on_nodes(snapshot.name, successful, now)
            done.extend(successful)
            failed = response.get("Failed", [])
            if failed:
                logger.warning("remediation: %s failed for %s", action.operation, failed)
        line = f"{DONE[action.kind]} {', '.join(done)}" if action.nodes else action.outcome
        if approval is None:
            return _Done(line, now + AFTER_SUCCESS, 0, acted=True)
        used = replace(approval, status="used")
        return _Done(f"{line} (approved by {approval.decided_by})", now + AFTER_SUCCESS, 0, acted=True,
                     approved=True, approval=used.ref(now))


def _due(attempt: Attempt, decision: Decision, repeat: timedelta, now: datetime) -> bool:
    """An action is news at once the first time in an alert's episode, then once per repeat interval."""
    last = attempt.reported_at
    return last is None or last < decision.record.first_seen or now - last >= repeat


def _approved_part(action: Action, approval: Approval) -> Action | None:
    """What of `action` the approval allows: a node action on the approved nodes only; a cluster-level
    action when its requests are exactly the approved ones. None: nothing (ask anew)."""
    if action.nodes:
        return action.without([n for n in action.nodes if n not in approval.nodes])
    return action if list(action.requests) == list(approval.requests) else None


def _method(operation: str) -> str:
    """UpdateCluster -> update_cluster."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
