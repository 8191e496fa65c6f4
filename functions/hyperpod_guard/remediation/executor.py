"""Carry out planned remediation: backoff, dry run, budgets, the API calls, the audit trail.

Returns, per alert fingerprint, an ActionReport: the lines the alert message shows ("would
replace i-…", "replaced i-…", "skipped: budget spent") and whether they are news of their own.

An action is never repeated on the strength of one report: each action (or dry run) uses up
the observation it acted on (`Decision.observed_at`: the report's time for an event's text,
the read's for state), and the next needs a newer one. News of actions follows the alert's
repeat interval: the first is sent at once, later ones at most once per `repeat_interval`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..ledger import Decision
from ..rules import ClusterRules
from ..snapshot import ClusterSnapshot
from ..timeutil import format_duration
from .actions import DONE
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


@dataclass(frozen=True)
class _Done:
    line: str
    next_attempt: datetime
    failures: int
    #: the action (or dry run) happened: its observation is used up
    acted: bool
    #: said in a message already due only (a skip)
    quiet: bool = False


class Remediator:
    def __init__(self, sagemaker: Any, store: RemediationStore, actor: str = "hyperpod-guard"):
        self.sagemaker = sagemaker
        self.store = store
        self.actor = actor

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
            done = self._act(snapshot, planned, rules, now, attempt.failures)
            repeat = policies.for_policy(planned.policy).repeat_interval
            news = not done.quiet and _due(attempt, decision, repeat, now)
            self.store.settle(snapshot.name, planned.fingerprint, done.next_attempt, done.failures,
                              acted_on=decision.observed_at if done.acted else None, reported_at=now if news else None)
            reports[planned.fingerprint] = ActionReport((done.line,), news)
        return reports

    def _act(self, snapshot: ClusterSnapshot, action: Action, rules: ClusterRules, now: datetime,
             failures: int) -> _Done:
        audit = {"fingerprint": action.fingerprint, "policy": action.policy, "action": action.kind,
                 "operation": action.operation, "actor": self.actor, "instance_group": action.instance_group}
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
        return _Done(line, now + AFTER_SUCCESS, 0, acted=True)


def _due(attempt: Attempt, decision: Decision, repeat: timedelta, now: datetime) -> bool:
    """An action is news at once the first time in an alert's episode, then once per repeat interval."""
    last = attempt.reported_at
    return last is None or last < decision.record.first_seen or now - last >= repeat


def _method(operation: str) -> str:
    """UpdateCluster -> update_cluster."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
