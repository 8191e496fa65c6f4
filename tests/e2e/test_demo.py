"""`hyperpod-guard demo` as a user runs it, and its expectation checks."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from hyperpod_guard.local import demo


def test_demo_runs_every_scenario_and_writes_the_html(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hyperpod_guard.cli", "demo", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(demo.SCENARIOS)}/{len(demo.SCENARIOS)} scenarios met their expected outcome" in result.stdout
    assert f"Slack messages as a person sees them: {(tmp_path / 'index.html').resolve()}" in result.stdout
    page = (tmp_path / "index.html").read_text()
    for scenario in demo.SCENARIOS:
        assert scenario.name in page
    assert "NOT met" not in page
    slack = sorted((tmp_path / "slack").glob("*.json"))
    sns = sorted((tmp_path / "sns").glob("*.json"))
    # every SNS message reached Slack exactly once (the outage one after recovery); the rolled-back group's
    # Degraded status is part of the rollback's alert, not a message of its own (one problem, one alert);
    # the grouped storm of 200 nodes is 2 messages (grouping, issue 17)
    assert len(slack) == len(sns) == 9
    assert len({json.loads(p.read_text())["sns_message_id"] for p in slack}) == 9  # no SNS message twice
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    assert {row["cluster"] for row in ledger} >= {s.cluster for s in demo.SCENARIOS}
    logs = (tmp_path / "lambda-logs.jsonl").read_text().splitlines()
    assert any('"alert decision"' in line for line in logs)


def _stage(sns_statuses: list[str], slack: int) -> SimpleNamespace:
    cluster = "demo-degraded"
    return SimpleNamespace(
        sns=[{"message": {"cluster": cluster, "status": s}, "at": "x", "attributes": {}} for s in sns_statuses],
        slack=[{"cluster": cluster, "at": "x", "sns_message_id": str(i)} for i in range(slack)],
    )


def test_a_scenario_whose_outcome_differs_is_reported():
    scenario = next(s for s in demo.SCENARIOS if s.cluster == "demo-degraded")
    assert scenario.check(_stage(["firing", "resolved"], 2), scenario) == []
    assert scenario.check(_stage(["firing", "firing", "resolved"], 3), scenario) != []  # a repeat too many
    assert scenario.check(_stage(["firing"], 1), scenario) != []  # never resolved
