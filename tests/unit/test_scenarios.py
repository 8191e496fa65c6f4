"""The scenarios in events/ hold: each one's expected findings are what the engine finds,
in process and through the `hyperpod-guard evaluate` command, and each event is a complete
EventBridge envelope. A new scenario directory is picked up without touching this file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hyperpod_guard.cli.evaluate import evaluate_files
from hyperpod_guard.cli.scenarios import EXPECTED_KEYS, Scenario, load_scenarios
from hyperpod_guard.policies import POLICY_NAMES
from hyperpod_guard.timeutil import isoformat
from tests.conftest import REPO as REPO_ROOT

SCENARIOS = load_scenarios()
ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


def by_name(scenarios: list[Scenario]):
    return pytest.mark.parametrize("scenario", scenarios, ids=[s.name for s in scenarios])


def event_of(scenario: Scenario) -> dict:
    return json.loads((scenario.path / "event.json").read_text())


def cluster_of(scenario: Scenario) -> str | None:
    """The cluster the CLI must report: the event's ClusterName (None for an ignored event)."""
    if scenario.expected.get("ignored"):
        return None
    detail = event_of(scenario)["detail"]
    return (detail.get("EventDetails") or detail)["ClusterName"]


def as_tuples(findings: list[dict]) -> list[tuple]:
    return sorted(tuple(f.get(k) or "" for k in EXPECTED_KEYS) for f in findings)


@by_name(SCENARIOS)
def test_scenario_holds(scenario):
    assert scenario.now is not None, "expected.json needs a 'now'"
    result = evaluate_files(str(scenario.path), None, None, scenario.now)
    assert scenario.check(result) == []


def test_scenarios_cover_every_policy():
    assert len(SCENARIOS) >= 12
    seen = {f["policy"] for s in SCENARIOS for f in s.expected.get("findings", [])}
    assert set(POLICY_NAMES) <= seen, f"no scenario expects a finding of {sorted(set(POLICY_NAMES) - seen)}"


@by_name(SCENARIOS)
def test_cli_evaluate_json(scenario):
    proc = subprocess.run(
        [sys.executable, "-m", "hyperpod_guard.cli", "evaluate", "--event", str(scenario.path),
         "--format", "json", "--now", isoformat(scenario.now)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    output = json.loads(proc.stdout)
    assert output["cluster"] == cluster_of(scenario)
    assert as_tuples(output["findings"]) == as_tuples(scenario.expected.get("findings", []))


@by_name(SCENARIOS)
def test_event_is_a_complete_envelope(scenario):
    event = event_of(scenario)
    assert [k for k in ENVELOPE_KEYS if k not in event] == []
    assert event["source"] == "aws.sagemaker"
    assert isinstance(event["resources"], list) and event["resources"]
    assert isinstance(event["detail"], dict) and event["detail"]


def test_readme_lists_every_scenario_with_its_command():
    readme = (REPO_ROOT / "README.md").read_text()
    for scenario in load_scenarios():
        assert f"hyperpod-guard evaluate --event events/{scenario.name} --format json" in readme, scenario.name
