"""Policy registry: one module per policy, each a pure function

    evaluate(snapshot, event, settings, now) -> list[Finding]

with no I/O, clock or environment. A policy may also say which findings an event
explicitly clears (`resolves`), e.g. a node reported healthy again.
A policy module owns its settings model (a PolicySettings) and, optionally, its remediation
(`remediate`): rules.py assembles the rules' `policies` from this registry, remediation/plan.py
asks the registry. Adding a policy = a module here (registered in `_load`) + its table of tests +
a scenario in events/ (README: "Adding a policy").
"""

from __future__ import annotations

from typing import Any

from .base import Evaluate, Policy, Remediate, Resolves

__all__ = ["POLICY_NAMES", "REGISTRY", "Evaluate", "Policy", "Remediate", "Resolves"]


def _load() -> dict[str, Policy[Any]]:
    from . import (
        auto_patch,
        cluster_extensions,
        cluster_health,
        cluster_operations,
        degraded_group,
        failed_rollback,
        image_hygiene,
        slurm_health,
        taint_drift,
        training_plans,
        unhealthy_node,
        unknown_status,
    )

    modules = (taint_drift, degraded_group, failed_rollback, unhealthy_node, cluster_health, image_hygiene,
               auto_patch, cluster_operations, cluster_extensions, slurm_health, training_plans, unknown_status)
    return {m.POLICY.name: m.POLICY for m in modules}


REGISTRY: dict[str, Policy[Any]] = _load()
POLICY_NAMES = tuple(REGISTRY)
