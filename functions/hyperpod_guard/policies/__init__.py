"""Policy registry: one module per policy, each a pure function

    evaluate(snapshot, event, settings, now) -> list[Finding]

with no I/O, clock or environment. A policy may also say which findings an event
explicitly clears (`resolves`), e.g. a node reported healthy again.
A policy module owns its settings model (a PolicySettings): rules.py assembles the
rules' `policies` from this registry. Adding a policy = a module here (registered in `_load`) + its
table of tests + a scenario in events/.
"""

from __future__ import annotations

from .base import Evaluate, Policy, Resolves

__all__ = ["Evaluate", "Policy", "Resolves", "REGISTRY", "POLICY_NAMES"]


def _load() -> dict[str, Policy]:
    from . import cluster_health, degraded_group, failed_rollback, taint_drift, unhealthy_node

    modules = (taint_drift, degraded_group, failed_rollback, unhealthy_node, cluster_health)
    return {m.POLICY.name: m.POLICY for m in modules}


REGISTRY: dict[str, Policy] = _load()
POLICY_NAMES = tuple(REGISTRY)
