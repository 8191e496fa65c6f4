"""What a policy is: a name, a description, its settings model and a pure function

    evaluate(snapshot, event, settings, now) -> list[Finding]

with no I/O, clock or environment; optionally which findings an event explicitly clears
(`resolves`) and what remediation would do for one of its firing alerts (`remediate`, pure too;
it runs only when the rules enable the settings' `remediation`). Each policy module builds its
`POLICY` from this; the registry (`policies/__init__.py`) imports the policy modules, so they
must not import it back.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from ..events import HyperPodEvent
from ..findings import Finding, FindingFields
from ..ledger import AlertRecord
from ..policy_settings import PolicySettings
from ..remediation.actions import Planned
from ..snapshot import ClusterSnapshot

S = TypeVar("S", bound=PolicySettings)

Evaluate = Callable[[ClusterSnapshot, HyperPodEvent | None, S, datetime], list[Finding]]
Resolves = Callable[[ClusterSnapshot, HyperPodEvent | None], list[str]]
#: (alert, snapshot read now, settings, now, nodes an earlier alert's action in this plan takes)
#: -> an Action, a Skip saying why not, or None when the alert is not this remediation's business
Remediate = Callable[[AlertRecord, ClusterSnapshot, S, datetime, Set[str]], Planned | None]
#: (one of its findings seen now, another alert, now) -> why that alert sends nothing because of it, or None
Inhibits = Callable[[Finding, FindingFields, datetime], str | None]


@dataclass(frozen=True)
class Policy(Generic[S]):
    name: str
    description: str
    #: its settings model: the rules' `policies.<name>` (rules.py assembles them from the registry)
    settings: type[S]
    evaluate: Evaluate[S]
    #: fingerprints that the event explicitly reports as fixed
    resolves: Resolves | None = None
    #: what to do about one of its firing alerts (settings with a `remediation` field)
    remediate: Remediate[S] | None = None
    #: its conditions, causes before their effects: of two equally severe findings of one scope
    #: and problem, the earlier leads the alert (alerting.fold), e.g. a Failed group before its shortfall
    precedence: tuple[str, ...] = ()
    #: the snapshot fields it reads that an evaluation may not have read (None: the sweep reads extensions,
    #: an event does not): while one is None the policy is out of the evaluation's scope, so its alerts are
    #: carried, not resolved by their absence (service._read_policies)
    reads: tuple[str, ...] = ()
    #: the same, for its cluster-level findings only (image-hygiene: the cluster's ImageVersionStatus comes from
    #: the sweep's ListClusters; its group and node findings from what every evaluation reads)
    cluster_reads: tuple[str, ...] = ()
    #: its findings may mute other alerts (Alertmanager's inhibit rules), e.g. an open auto-patch window
    #: what the window causes by design in its group (alerting.muted_reason asks it)
    inhibits: Inhibits | None = None
