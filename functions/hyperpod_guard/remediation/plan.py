"""What remediation would do for firing alerts: pure, from a fresh snapshot and the rules.

Each policy owns its remediation (`Policy.remediate`, built from remediation/actions.py):
- taint-drift `required` findings: UpdateCluster re-declaring the required taints/labels;
  current-vs-desired drift is HyperPod's to reconcile, never "fixed" (policies/taint_drift.py);
- degraded-group and unhealthy-node: reboot or replace the group's nodes in `Failure` or the
  node reported unhealthy, after HyperPod's own repair had its time (policies/degraded_group.py,
  policies/unhealthy_node.py);
- the others: nothing automatic (their alerts carry guidance).
This module asks the policy of each alert whose remediation the rules enable, in order, and
keeps a node acted on once per plan.
"""

from __future__ import annotations

from datetime import datetime

from ..ledger import AlertRecord
from ..policies import REGISTRY
from ..policy_settings import remediation_of
from ..rules import Policies
from ..snapshot import ClusterSnapshot
from .actions import Action, Planned, Skip, chunks

__all__ = ["Action", "Planned", "Skip", "chunks", "plan"]


def plan(snapshot: ClusterSnapshot, firing: list[AlertRecord], policies: Policies, now: datetime) -> list[Planned]:
    planned: list[Planned] = []
    taken: set[str] = set()
    for record in firing:
        policy = REGISTRY.get(record.policy)
        if policy is None or policy.remediate is None:
            continue
        settings = policies.settings(policy)
        remediation = remediation_of(settings)
        if remediation is None or not remediation.enabled:
            continue
        action = policy.remediate(record, snapshot, settings, now, taken)
        if action:
            planned.append(action)
            if isinstance(action, Action):
                taken.update(action.nodes)
    return planned
