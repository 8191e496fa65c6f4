"""Carry out planned remediation: backoff, dry run, budgets, the API calls, the audit trail.

Returns, per alert fingerprint, the lines the alert message shows ("would replace i-…",
"replaced i-…", "skipped: budget spent").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ..ledger import AlertRecord
from ..rules import Rules
from ..snapshot import ClusterSnapshot
from ..timeutil import format_duration
from .plan import Action, Skip, plan
from .store import RemediationStore, group_limit

logger = logging.getLogger(__name__)

AFTER_SUCCESS = timedelta(hours=1)   # give an action time to take effect before acting again
AFTER_DRY_RUN = timedelta(hours=1)   # report the same dry run at most hourly
AFTER_CONFLICT = timedelta(minutes=5)  # the cluster is busy: try again soon, not now
FIRST_BACKOFF, MAX_BACKOFF = timedelta(minutes=15), timedelta(hours=6)


def backoff(failures: int) -> timedelta:
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, failures - 1))


class Remediator:
    def __init__(self, sagemaker: Any, store: RemediationStore, actor: str = "hyperpod-guard"):
        self.sagemaker = sagemaker
        self.store = store
        self.actor = actor

    def run(self, snapshot: ClusterSnapshot, firing: list[AlertRecord], rules: Rules, now: datetime) -> dict[str, list[str]]:
        reports: dict[str, list[str]] = {}
        for planned in plan(snapshot, firing, rules.for_cluster(snapshot.name), now):
            failures = self.store.claim(snapshot.name, planned.fingerprint, now)
            if failures is None:
                continue  # in backoff, or another invocation is acting on it
            if isinstance(planned, Skip):
                self.store.settle(snapshot.name, planned.fingerprint, now + AFTER_CONFLICT, failures)
                reports.setdefault(planned.fingerprint, []).append(f"skipped: {planned.reason}")
                continue
            line, next_attempt, failures = self._act(snapshot, planned, rules, now, failures)
            self.store.settle(snapshot.name, planned.fingerprint, next_attempt, failures)
            reports.setdefault(planned.fingerprint, []).append(line)
        return reports

    def _act(self, snapshot: ClusterSnapshot, action: Action, rules: Rules, now: datetime, failures: int):
        audit = {"fingerprint": action.fingerprint, "policy": action.policy, "action": action.kind,
                 "operation": action.operation, "actor": self.actor, "instance_group": action.instance_group}
        if action.dry_run:
            for request in action.requests:
                self.store.audit(snapshot.name, now, **audit, dry_run="true", request=request)
            logger.info("remediation dry run: would call %s %s", action.operation, action.requests)
            return f"would {action.describe()} (dry run)", now + AFTER_DRY_RUN, failures
        budgeted = bool(action.nodes)
        if budgeted:
            budget = rules.remediation_budget
            group = snapshot.group(action.instance_group)
            limit = group_limit(group.target_count if group else None, budget.max_group_percent)
            if not self.store.take_budget(snapshot.name, action.instance_group, len(action.nodes),
                                          per_hour=budget.max_nodes_per_hour, group_limit=limit, now=now):
                self.store.audit(snapshot.name, now, **audit, dry_run="false", outcome="skipped: budget spent",
                                 request=list(action.requests))
                next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
                return (f"skipped: budget spent (at most {budget.max_nodes_per_hour} nodes per cluster and "
                        f"{limit} in {action.instance_group} per hour)"), next_hour, failures
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
                    self.store.refund(snapshot.name, action.instance_group, untouched, now=now)
                if code == "ConflictException":
                    return "skipped: cluster busy (ConflictException), retried later", now + AFTER_CONFLICT, failures
                failures += 1
                return f"failed: {action.operation} {code} (attempt {failures}, next in {format_duration(backoff(failures))})", \
                    now + backoff(failures), failures
            response.pop("ResponseMetadata", None)
            self.store.audit(snapshot.name, now, **audit, dry_run="false", request=request, response=response)
            done.extend(response.get("Successful", request.get("NodeIds", [])))
            failed = response.get("Failed", [])
            if failed:
                logger.warning("remediation: %s failed for %s", action.operation, failed)
        verb = {"reboot": "rebooted", "replace": "replaced", "update-cluster": "re-declared"}[action.kind]
        what = ", ".join(done) if action.nodes else f"the required taints/labels of {action.instance_group}"
        return f"{verb} {what}", now + AFTER_SUCCESS, 0


def _method(operation: str) -> str:
    """UpdateCluster -> update_cluster."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
