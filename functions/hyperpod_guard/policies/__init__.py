"""Policy registry: one module per policy, each a pure function

    evaluate(snapshot, event, settings, now) -> list[Finding]

with no I/O, clock or environment. A policy may also say which findings an event
explicitly clears (`resolves`), e.g. a node reported healthy again.
Adding a policy = a module here + its settings class in rules.py + a table of tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import HyperPodEvent
from ..findings import Finding
from ..snapshot import ClusterSnapshot

Evaluate = Callable[[ClusterSnapshot, HyperPodEvent | None, Any, datetime], list[Finding]]
Resolves = Callable[[ClusterSnapshot, HyperPodEvent | None], list[str]]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    evaluate: Evaluate
    #: fingerprints that the event explicitly reports as fixed
    resolves: Resolves | None = None
    #: its conditions, causes before their effects: of two equally severe findings of one scope
    #: and problem, the earlier leads the alert (alerting.fold), e.g. a Failed group before its shortfall
    precedence: tuple[str, ...] = ()


def _load() -> dict[str, Policy]:
    from . import cluster_health, degraded_group, failed_rollback, taint_drift, unhealthy_node

    modules = (taint_drift, degraded_group, failed_rollback, unhealthy_node, cluster_health)
    return {m.POLICY.name: m.POLICY for m in modules}


REGISTRY: dict[str, Policy] = _load()
POLICY_NAMES = tuple(REGISTRY)
