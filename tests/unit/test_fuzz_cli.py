"""Fuzz `hyperpod-guard evaluate --event FILE [--snapshot FILE]` through cli.main(argv).

The CLI's promise: exit 0 with the findings, or exit 2 with one `error: ...` line on stderr;
never a traceback and never exit 70 (an internal error). In-process (cli.main) rather than a
subprocess per example, so hundreds of examples take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from hyperpod_guard.cli import main
from hyperpod_guard.cli.common import EXIT_BAD_INPUT, EXIT_OK
from tests.fuzzing import SCENARIOS, any_event, json_values, mutated_event, paths

NOW = "2026-11-26T12:00:00Z"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evaluate", *args, "--format", "json", "--now", NOW])
    out, err = capsys.readouterr()
    return code, out, err


def check(code: int, out: str, err: str) -> dict[str, Any] | None:
    assert code in (EXIT_OK, EXIT_BAD_INPUT), (code, err)
    if currently_in_test_context():
        note(f"exit {code}")  # --hypothesis-show-statistics
    if code == EXIT_BAD_INPUT:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and out == "", err
        return None
    assert err == ""
    result = json.loads(out)
    assert set(result) >= {"cluster", "findings"} and isinstance(result["findings"], list)
    return result


def write(path: Path, value: Any) -> str:
    # ensure_ascii: a lone surrogate (valid in a JSON escape, not in UTF-8) still reaches the parser
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


@FUZZ
@given(any_event)
def test_mutated_event_files(tmp_path, capsys, event):
    check(*evaluate(capsys, "--event", write(tmp_path / "event.json", event)))


SNAPSHOTS = sorted(name for name, (_, snapshot) in SCENARIOS.items() if snapshot is not None)


@st.composite
def mutated_snapshot(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    """A scenario's event with its DescribeCluster snapshot mutated (dropped, retyped, grown)."""
    event, snapshot = SCENARIOS[draw(st.sampled_from(SNAPSHOTS))]
    snapshot = json.loads(json.dumps(snapshot))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        found = list(paths(snapshot))
        if not found:
            break
        path = draw(st.sampled_from(found))
        parent = snapshot
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return event, snapshot


@FUZZ
@given(mutated_snapshot())
def test_mutated_snapshot_files(tmp_path, capsys, case):
    event, snapshot = case
    check(*evaluate(capsys, "--event", write(tmp_path / "event.json", event),
                    "--snapshot", write(tmp_path / "snapshot.json", snapshot)))


@settings(FUZZ, max_examples=150)
@given(st.one_of(
    st.binary(max_size=64),
    mutated_event().map(lambda e: json.dumps(e).encode()[: len(json.dumps(e)) // 2]),  # cut short
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),  # nested deep
    st.sampled_from([b"", b"\xff\xfe\x00", "{\"detail-type\": \"\u00e9\"}".encode("latin-1"), b"NaN", b"1e999999"]),
))
def test_files_that_are_not_json(tmp_path, capsys, content):
    path = tmp_path / "event.json"
    path.write_bytes(content)
    check(*evaluate(capsys, "--event", str(path)))


def test_a_scenario_still_evaluates(tmp_path, capsys):
    """Not vacuous: an unmutated scenario gives findings through the same path."""
    event, _ = SCENARIOS["degraded-group-failed"]
    result = check(*evaluate(capsys, "--event", write(tmp_path / "event.json", event)))
    assert result is not None and result["cluster"] == "ml-prod" and len(result["findings"]) == 2


@pytest.mark.parametrize("count", [-(10**400), -1, 10**400])
def test_an_impossible_count_is_bad_input_not_an_internal_error(tmp_path, capsys, count):
    event, _ = SCENARIOS["degraded-group-failed"]
    event = json.loads(json.dumps(event))
    event["detail"]["InstanceGroups"][0]["CurrentCount"] = count
    code, out, err = evaluate(capsys, "--event", write(tmp_path / "event.json", event))
    assert code == EXIT_BAD_INPUT, err
