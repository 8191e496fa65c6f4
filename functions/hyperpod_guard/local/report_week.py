"""A simulated week of the fleet's alert episodes and HyperPod repairs, for the reliability report:
the golden files (tests/golden/report/), the integration test of `hyperpod-guard report` and the
demo's report.html all use it. Not shipped.

The week is 2026-11-16 (a Monday) 00:00Z to 2026-11-23 00:00Z, seen at its end. Three clusters:
- llm-train-prod: node i-0a1 of gpu-workers fails four times (a repeat offender), twice with an
  instance-failure episode overlapping its unhealthy one (the same node-hours, counted once);
  HyperPod replaces or reboots it (repair facts), and gpu-workers is below target meanwhile; its
  autoscaling fails (a cluster-level cluster-health episode, expired);
- rl-research: node i-0b7 has no automatic repair (RepairAction None), our remediation replaces it;
  group gpu-b is below its minimum for 3 hours (so below target too), fixed by hand;
- speech-prod: a node unhealthy since Sunday evening, before the week, repaired Monday 02:00 (clipped
  to the week), and a node still unhealthy at the week's end (open, counted up to now).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..archive import Episode, RemediationFact, RepairFact
from ..findings import fingerprint
from ..policies import cluster_health, degraded_group, unhealthy_node
from ..reliability import BELOW_MIN, BELOW_TARGET

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(days=7)
NOW = END
ACCOUNT, REGION = "123456789012", "us-west-2"

Resolver = Literal["hyperpod-repair", "remediation", "manual", "expired", "gone"]


def at(day: int, hour: float) -> datetime:
    """Day 0 is Monday 2026-11-16; hours may be fractional."""
    return START + timedelta(days=day, hours=hour)


def episode(cluster: str, policy: str, condition: str, *, severity: str = "critical", group: str | None = None,
            node: str | None = None, start: datetime, end: datetime | None, resolved_by: Resolver | None = None,
            reason: str | None = None, summary: str = "", actions: list[RemediationFact] | None = None,
            **details: Any) -> Episode:
    """One archived (or, with `end` None, open) episode that fired when first seen."""
    scope = node or group or "cluster"
    return Episode(
        fingerprint=fingerprint(policy, cluster, group, node, condition), cluster=cluster, account=ACCOUNT,
        region=REGION, policy=policy, condition=condition, severity=severity, instance_group=group, node=node,
        tags={"team": "ml-platform"}, first_seen=start, fired_at=start, resolved_at=end, open=end is None,
        duration_seconds=None if end is None else (end - start).total_seconds(),
        resolved_by=None if end is None else resolved_by or "manual",
        resolution=None if end is None else f"resolved by {resolved_by or 'manual'}",
        summary=summary or f"{policy} {condition} on {scope}", reason=reason, details=details,
        actions=actions or [],
    )


def repair(cluster: str, group: str, node: str, when: datetime, kind: Literal["reboot", "replacement"],
           phase: Literal["started", "completed", "failed"]) -> RepairFact:
    return RepairFact(cluster=cluster, account=ACCOUNT, region=REGION,
                      event_id=f"{cluster}-{node}-{kind}-{phase}-{when:%Y%m%dT%H%M}", at=when, instance_group=group,
                      node=node, kind=kind, phase=phase, description=f"Node {node} {kind} {phase}")


def _node(cluster: str, group: str | None, node: str, start: datetime, end: datetime | None,
          resolved_by: Resolver | None, reason: str, condition: str = unhealthy_node.UNHEALTHY,
          **extra: Any) -> Episode:
    return episode(cluster, unhealthy_node.NAME, condition, severity="warning", group=group, node=node,
                   start=start, end=end, resolved_by=resolved_by, reason=reason,
                   summary=f"Node {node}{f' ({group})' if group else ''} is Unhealthy", **extra)


def week_episodes() -> list[Episode]:
    train, rl, speech = "llm-train-prod", "rl-research", "speech-prod"
    gpu = "gpu-workers"
    replaced = RemediationFact(at=at(3, 9.25), action="replace", outcome="replaced i-0b7", dry_run=False,
                               approved_by="U024BE7LH", nodes=["i-0b7"])
    return [
        # llm-train-prod: i-0a1 four times; the group short of a node while HyperPod repairs it
        _node(train, gpu, "i-0a1", at(0, 3), at(0, 3.5), "hyperpod-repair", "NvidiaGpuXidError"),
        _node(train, gpu, "i-0a1", at(0, 3.25), at(0, 4), "hyperpod-repair", "NvidiaGpuXidError",
              condition=unhealthy_node.INSTANCE_FAILURE),
        _node(train, None, "i-0a1", at(2, 14), at(2, 15), "hyperpod-repair", "NvidiaGpuXidError"),
        _node(train, gpu, "i-0a1", at(4, 22), at(5, 1), "hyperpod-repair", "NvidiaGpuThermalViolation"),
        _node(train, gpu, "i-0a1", at(4, 23), at(5, 0), "hyperpod-repair", "NvidiaGpuThermalViolation",
              condition=unhealthy_node.INSTANCE_FAILURE),
        _node(train, gpu, "i-0a2", at(1, 10), at(1, 10.75), "hyperpod-repair", "EfaHealthCheckFailed"),
        _node(train, "controller", "i-0c0", at(5, 8), at(5, 8.2), "manual", "NeuronCoreHang"),
        episode(train, degraded_group.NAME, BELOW_TARGET, severity="warning", group=gpu,
                start=at(4, 22.5), end=at(5, 1), resolved_by="hyperpod-repair",
                reason="ReplacingUnhealthyNodes", summary="Instance group gpu-workers has 15 of 16 target nodes"),
        episode(train, cluster_health.NAME, cluster_health.AUTOSCALING_FAILED, start=at(6, 1), end=at(6, 7),
                resolved_by="expired", reason="Karpenter: InsufficientInstanceCapacity",
                summary="Autoscaling (Karpenter) of cluster llm-train-prod failed"),
        # rl-research: our remediation replaces i-0b7; gpu-b below its minimum, fixed by hand
        _node(rl, "gpu-a", "i-0b7", at(3, 9), at(3, 9.75), "remediation", "NvidiaGpuXidError", actions=[replaced]),
        episode(rl, degraded_group.NAME, BELOW_MIN, group="gpu-b", start=at(2, 6), end=at(2, 9),
                resolved_by="manual", reason="InsufficientCapacity",
                summary="Instance group gpu-b has 1 nodes, below its minimum of 2"),
        _node(rl, "gpu-b", "i-0b9", at(2, 5.5), at(2, 9.5), "gone", "InsufficientCapacity",
              condition=unhealthy_node.INSTANCE_FAILURE),
        # speech-prod: one from before the week, one still open at its end
        _node(speech, "inference", "i-0d1", at(-1, 20), at(0, 2), "hyperpod-repair", "EfaHealthCheckFailed"),
        _node(speech, "inference", "i-0d4", at(6, 18), None, None, "NvidiaGpuXidError"),
        _node(speech, "inference", "i-0d2", at(3, 12), at(3, 12.5), "hyperpod-repair", "NvidiaGpuXidError"),
    ]


def week_repairs() -> list[RepairFact]:
    train, gpu = "llm-train-prod", "gpu-workers"
    return [
        repair(train, gpu, "i-0a1", at(0, 3.1), "reboot", "started"),
        repair(train, gpu, "i-0a1", at(0, 3.45), "reboot", "completed"),
        repair(train, gpu, "i-0a1", at(2, 14.1), "reboot", "started"),
        repair(train, gpu, "i-0a1", at(2, 14.9), "reboot", "failed"),
        repair(train, gpu, "i-0a1", at(4, 22.2), "replacement", "started"),
        repair(train, gpu, "i-0a1", at(5, 0.9), "replacement", "completed"),
        repair("speech-prod", "inference", "i-0d1", at(0, 1.5), "replacement", "completed"),
    ]
