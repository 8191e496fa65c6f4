"""Scenarios in events/: one directory each, replayable by the CLI, the demo and the tests.

    events/<name>/event.json      the EventBridge event
    events/<name>/snapshot.json   optional: the DescribeCluster response at that time
    events/<name>/rules.json      optional: rules (default: the built-in defaults)
    events/<name>/expected.json   {"description", "now", "findings": [{policy, severity,
                                   instance_group, node, condition}], "resolved": N}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..engine import Evaluation
from ..events import IgnoredEvent
from ..timeutil import parse_timestamp

#: finding fields an expectation pins (summary and details are for people, not for matching)
EXPECTED_KEYS = ("policy", "severity", "instance_group", "node", "condition")


def default_events_dir() -> Path:
    """The repository's events/ (this module is <repo>/functions/hyperpod_guard/cli/scenarios.py)."""
    return Path(__file__).resolve().parents[3] / "events"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    expected: dict[str, Any]

    @property
    def description(self) -> str:
        return self.expected.get("description", "")

    @property
    def now(self) -> datetime | None:
        return parse_timestamp(self.expected.get("now"))

    def check(self, result: Evaluation | IgnoredEvent) -> list[str]:
        """What differs from expected.json (empty when the scenario holds)."""
        if isinstance(result, IgnoredEvent):
            got: list[dict[str, Any]] = []
            resolved = 0
        else:
            got = [{k: f.to_dict()[k] for k in EXPECTED_KEYS} for f in result.findings]
            resolved = len(result.resolved)
        want = [{k: f.get(k) for k in EXPECTED_KEYS} for f in self.expected.get("findings", [])]

        def key(f: dict[str, Any]) -> str:
            return json.dumps(f, sort_keys=True)

        problems = [f"missing finding {key(f)}" for f in sorted(want, key=key) if f not in got]
        problems += [f"unexpected finding {key(f)}" for f in sorted(got, key=key) if f not in want]
        if resolved != self.expected.get("resolved", 0):
            problems.append(f"resolved {resolved} fingerprint(s), expected {self.expected.get('resolved', 0)}")
        if bool(self.expected.get("ignored", False)) != isinstance(result, IgnoredEvent):
            problems.append("expected the event to be ignored" if self.expected.get("ignored") else "event was ignored")
        return problems


def load_scenarios(root: Path | None = None) -> list[Scenario]:
    root = root or default_events_dir()
    return [
        Scenario(d.name, d, json.loads((d / "expected.json").read_text()))
        for d in sorted(root.iterdir())
        if d.is_dir() and (d / "event.json").exists() and (d / "expected.json").exists()
    ]
