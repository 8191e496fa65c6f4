"""training-plans: the reserved capacity that instance groups run on (`TrainingPlanArn`), before it goes away.

From the plans read (`snapshot.training_plans`, DescribeTrainingPlan; None = not read) and each group's
`TrainingPlanArn`/`TrainingPlanStatus` (DescribeCluster), per instance group on a plan:
- a countdown before the group's next reserved capacity ends (`EndTime` of its plan's
  ReservedCapacitySummaries, else the plan's): one finding per step of `notice_before` (default 24h,
  2h, 45m), condition `capacity-ends-<step>`, from the moment that step is reached until the capacity
  ends. Each step is its own alert: it fires once (the steps passed are one problem, the latest leads:
  alerting.fold) and resolves when the capacity ends. HyperPod terminates the instances 30 minutes
  before the end, so the summaries say: checkpoint now. Severity by how much time the step leaves:
  <= 1h -> critical (<= 30 min before the terminations start), <= 6h -> warning (within a shift),
  earlier -> info (a heads-up). Only for a group that still wants or has nodes;
- the plan `Failed` or `Expired` while the group still has `TargetCount > 0` -> critical: the group asks
  for capacity that no longer exists (the plan's status when read, else the group's TrainingPlanStatus);
- `UnhealthyInstanceCount > 0` -> warning;
- no spares left (`AvailableSpareInstanceCount == 0`) -> warning, only with `warn_no_spares`: the
  API gives no baseline (a plan without spares answers 0 as well, DescribeTrainingPlan has no
  configured-spares count), so by default an ordinary plan would warn forever;
- a plan status outside the API's enum -> warning with the raw value.
Findings are the group's (a plan shared by two groups speaks for each), problem "capacity".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from ..events import HyperPodEvent
from ..findings import Finding, Severity
from ..policy_settings import PolicySettings
from ..snapshot import ClusterSnapshot, InstanceGroup, TrainingPlan, TrainingPlanStatus
from ..timeutil import Duration, format_duration, isoformat
from .base import Policy
from .degraded_group import RESTRICTED
from .unknown_status import slug

NAME = "training-plans"
CAPACITY = "capacity"
#: HyperPod terminates a reserved capacity's instances this long before its EndTime
TERMINATION_LEAD = timedelta(minutes=30)
COUNTDOWN, UNHEALTHY, NO_SPARES, PLAN_STATUS = "capacity-ends-", "plan-unhealthy-instances", "plan-no-spares", "plan-"
_ENDED = frozenset({TrainingPlanStatus.FAILED, TrainingPlanStatus.EXPIRED})
#: what a group's TrainingPlanStatus may say besides the plan statuses (a group on no plan says NotApplicable)
_GROUP_KNOWN = TrainingPlanStatus.KNOWN | {"NotApplicable"}


class TrainingPlansSettings(PolicySettings):
    notice_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(hours=24), timedelta(hours=2), timedelta(minutes=45)], max_length=10,
        description="Countdown notices before a reserved capacity ends, one alert each (HyperPod terminates the "
        "instances 30 minutes before the end). <= 1h: critical, <= 6h: warning, earlier: info.",
    )
    warn_no_spares: bool = Field(
        default=False, description="Warn when a plan has no available spare instance left (AvailableSpareInstanceCount "
        "0). Off by default: the API gives no baseline, so a plan that never had spares answers 0 too.",
    )
    repeat_interval: Duration = Field(
        default=timedelta(hours=24),
        description="Re-notify a still-firing alert this often. At least the longest gap between two countdown "
        "steps (22h by default), so that each countdown notice is sent once.",
    )

    @field_validator("notice_before")
    @classmethod
    def _positive(cls, steps: list[timedelta]) -> list[timedelta]:
        if any(step <= timedelta(0) for step in steps):
            raise ValueError("every notice_before must be longer than 0s")
        return steps


@dataclass(frozen=True)
class _Part:
    """One finding of a group, before the group's scope and plan facts are added."""

    severity: Severity
    condition: str
    summary: str
    details: dict[str, Any]


def step_label(step: timedelta) -> str:
    """24h, 2h, 45m (hours up to days: "capacity-ends-24h" reads better than "1d")."""
    seconds = int(step.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return format_duration(step)


def step_severity(step: timedelta) -> Severity:
    if step <= timedelta(hours=1):
        return Severity.CRITICAL
    return Severity.WARNING if step <= timedelta(hours=6) else Severity.INFO


def _plan_facts(plan: TrainingPlan | None, group: InstanceGroup) -> dict[str, Any]:
    facts = {"training_plan_arn": group.training_plan_arn, "training_plan": plan.training_plan_name if plan else None,
             "target_count": group.target_count, "current_count": group.current_count}
    return {k: v for k, v in facts.items() if v is not None}


def _next_end(plan: TrainingPlan, now: datetime) -> tuple[datetime, dict[str, Any]] | None:
    """When the group's capacity next ends, with that reserved capacity's facts."""
    ends = [(c.end_time, {"reserved_capacity_arn": c.reserved_capacity_arn, "instance_type": c.instance_type,
                          "total_instance_count": c.total_instance_count})
            for c in plan.reserved_capacity_summaries
            if c.end_time and c.end_time > now and c.status not in _ENDED]
    if not ends and not plan.reserved_capacity_summaries and plan.end_time and plan.end_time > now:
        ends = [(plan.end_time, {"total_instance_count": plan.total_instance_count})]
    if not ends:
        return None
    end, facts = min(ends, key=lambda pair: pair[0])
    return end, {k: v for k, v in facts.items() if v is not None}


def _countdown(name: str, group: InstanceGroup, plan: TrainingPlan, settings: TrainingPlansSettings,
               now: datetime) -> list[_Part]:
    if not (group.target_count or group.current_count):
        return []  # nothing runs or is wanted on it: its end takes nothing away
    found = _next_end(plan, now)
    if found is None:
        return []
    end, capacity = found
    terminates = end - TERMINATION_LEAD
    label = plan.training_plan_name or plan.training_plan_arn
    out = []
    for step in sorted(set(settings.notice_before), reverse=True):
        if end - now > step:
            continue
        when = ("its instances are being terminated" if now >= terminates
                else f"HyperPod terminates its instances 30 minutes before, at {isoformat(terminates)}")
        out.append(_Part(
            step_severity(step), COUNTDOWN + step_label(step),
            f"Reserved capacity of training plan {label} for {name} ends within {step_label(step)}, "
            f"at {isoformat(end)}; {when}: checkpoint now",
            {**capacity, "end_time": isoformat(end), "terminates_at": isoformat(terminates),
             "notice_before": format_duration(step)},
        ))
    return out


def _status(name: str, group: InstanceGroup, plan: TrainingPlan | None) -> _Part | None:
    status, source = (plan.status, "DescribeTrainingPlan") if plan and plan.status else (
        group.training_plan_status, "DescribeCluster")
    if status is None:
        return None
    label = (plan.training_plan_name if plan else None) or group.training_plan_arn
    details = {"status": status, "source": source,
               "status_message": plan.status_message if plan else None}
    details = {k: v for k, v in details.items() if v is not None}
    if status in _ENDED:
        if not group.target_count:
            return None  # nothing wanted on it any more
        return _Part(Severity.CRITICAL, PLAN_STATUS + status.lower(),
                     f"Training plan {label} is {status} while {name} still targets {group.target_count} "
                     "nodes: its reserved capacity is gone, HyperPod cannot launch them"
                     + (f" ({details['status_message']})" if "status_message" in details else ""), details)
    if status in (TrainingPlanStatus.KNOWN if plan and plan.status else _GROUP_KNOWN):
        return None
    return _Part(Severity.WARNING, f"{PLAN_STATUS}status-{slug(status)}",
                 f"Training plan {label} of {name} reports status {status!r}, which hyperpod-guard does not know",
                 {**details, "known_statuses": sorted(TrainingPlanStatus.KNOWN)})


def _plan_counts(name: str, plan: TrainingPlan, settings: TrainingPlansSettings) -> list[_Part]:
    label = plan.training_plan_name or plan.training_plan_arn
    out = []
    counts = {"unhealthy_instance_count": plan.unhealthy_instance_count,
              "available_spare_instance_count": plan.available_spare_instance_count,
              "available_instance_count": plan.available_instance_count,
              "in_use_instance_count": plan.in_use_instance_count, "total_instance_count": plan.total_instance_count}
    counts = {k: v for k, v in counts.items() if v is not None}
    if plan.unhealthy_instance_count:
        out.append(_Part(Severity.WARNING, UNHEALTHY,
                         f"Training plan {label} of {name} has {plan.unhealthy_instance_count} unhealthy instance(s)",
                         counts))
    if settings.warn_no_spares and plan.available_spare_instance_count == 0:
        out.append(_Part(Severity.WARNING, NO_SPARES,
                         f"Training plan {label} of {name} has no spare instance left: the next failed instance "
                         "is not replaced from the reservation's spares", counts))
    return out


def evaluate(
    snapshot: ClusterSnapshot, event: HyperPodEvent | None, settings: TrainingPlansSettings, now: datetime
) -> list[Finding]:
    plans = {plan.training_plan_arn: plan for plan in snapshot.training_plans or ()}
    findings: list[Finding] = []
    for group in snapshot.all_groups:
        if not group.training_plan_arn:
            continue
        plan = plans.get(group.training_plan_arn)
        name = f"{'restricted instance' if group.restricted else 'instance'} group {group.name}"
        status = _status(name, group, plan)
        parts = [status] if status else []
        if plan is not None:
            parts += _plan_counts(name, plan, settings)
            if not (status and status.severity is Severity.CRITICAL):  # a plan that ended counts down no more
                parts += _countdown(name, group, plan, settings, now)
        facts = _plan_facts(plan, group)
        findings.extend(
            Finding(policy=NAME, severity=part.severity, cluster=snapshot.name, instance_group=group.name,
                    condition=(RESTRICTED if group.restricted else "") + part.condition, problem=CAPACITY,
                    summary=part.summary, details={**facts, **part.details})
            for part in parts
        )
    return findings


POLICY = Policy(NAME, "Training plans' reserved capacity: countdown notices before it ends (instances are terminated "
                "30 minutes before), a Failed/Expired plan a group still wants, unhealthy instances, no spares left.",
                TrainingPlansSettings, evaluate,
                precedence=(PLAN_STATUS + "failed", PLAN_STATUS + "expired", COUNTDOWN + "45m", COUNTDOWN + "2h",
                            COUNTDOWN + "24h", UNHEALTHY, NO_SPARES),
                reads=("training_plans",))
