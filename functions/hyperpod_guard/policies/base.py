"""What a policy is: a name, a description, its settings model and a pure function

    evaluate(snapshot, event, settings, now) -> list[Finding]

with no I/O, clock or environment; optionally which findings an event explicitly clears
(`resolves`). Each policy module builds its `POLICY` from this; the registry
(`policies/__init__.py`) imports the policy modules, so they must not import it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import HyperPodEvent
from ..findings import Finding
from ..policy_settings import PolicySettings
from ..snapshot import ClusterSnapshot

Evaluate = Callable[[ClusterSnapshot, HyperPodEvent | None, Any, datetime], list[Finding]]
Resolves = Callable[[ClusterSnapshot, HyperPodEvent | None], list[str]]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    #: its settings model: the rules' `policies.<name>` (rules.py assembles them from the registry)
    settings: type[PolicySettings]
    evaluate: Evaluate
    #: fingerprints that the event explicitly reports as fixed
    resolves: Resolves | None = None
    #: its conditions, causes before their effects: of two equally severe findings of one scope
    #: and problem, the earlier leads the alert (alerting.fold), e.g. a Failed group before its shortfall
    precedence: tuple[str, ...] = ()
