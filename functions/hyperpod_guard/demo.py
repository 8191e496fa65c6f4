"""`hyperpod-guard demo` (offline for now): evaluate every scenario in events/ and show the findings.

Until the Lambda runtime lands this runs the pure pipeline only: event -> snapshot ->
policies -> findings, and checks each scenario's expected findings.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .cli import EXIT_OK, EXIT_PROBLEMS, evaluate_files, table
from .errors import HyperPodGuardError
from .events import IgnoredEvent
from .scenarios import load_scenarios


def run_offline_demo(events_dir: Path | None = None) -> int:
    scenarios = load_scenarios(events_dir)
    if not scenarios:
        raise HyperPodGuardError(f"no scenarios found in {events_dir or 'events/'}")
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    for scenario in scenarios:
        now = scenario.now or datetime.now(timezone.utc)
        result = evaluate_files(str(scenario.path), None, None, now)
        failures += [f"{scenario.name}: {p}" for p in scenario.check(result)]
        if isinstance(result, IgnoredEvent):
            rows.append((scenario.name, "-", "-", "-", f"(ignored: {result.reason})"))
        elif not result.findings:
            rows.append((scenario.name, "-", "-", "-", "(no findings)"))
        for finding in getattr(result, "findings", []):
            scope = "/".join(p for p in (finding.instance_group, finding.node) if p) or "(cluster)"
            rows.append((scenario.name, finding.severity.value, finding.policy, scope, finding.summary))
    print(table(("SCENARIO", "SEVERITY", "POLICY", "SCOPE", "SUMMARY"), rows))
    print()
    if failures:
        print(f"{len(failures)} expectation(s) not met:")
        print("\n".join(f"  {f}" for f in failures))
        return EXIT_PROBLEMS
    print(f"{len(scenarios)} scenarios evaluated, every expected finding matched.")
    return EXIT_OK
