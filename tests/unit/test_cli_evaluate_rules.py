"""Offline `evaluate` tries two rules features before they are deployed (issue 16): overrides
that select clusters by tag (`--tags`), and silences (silenced findings are listed as silenced,
with the silence, not as plain findings). Run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EVENTS

SCENARIO = EVENTS / "degraded-group-failed"  # cluster ml-prod, two degraded-group findings on gpu-workers
NOW = "2026-11-20T10:00:05Z"
MAINTENANCE = {"matchers": {"cluster": "ml-prod", "policy": "degraded-group"}, "until": "2026-11-21T00:00:00Z",
               "comment": "planned maintenance"}
SILENCED = "silenced until 2026-11-21T00:00:00Z: planned maintenance"
BY_TAG = {"match": {"cluster": "*", "tags": {"team": "llm"}}, "policies": {"degraded-group": {"enabled": False}}}


def evaluate(tmp_path: Path, rules: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"version": 1, **rules}))
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "evaluate", "--event", str(SCENARIO),
                           "--rules", str(path), *args], capture_output=True, text=True, timeout=60)


def findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["findings"]


@pytest.mark.parametrize(("tags", "count"), [
    pytest.param([], 2, id="untagged"),
    pytest.param(["--tags", "team=llm"], 0, id="selected-by-tag"),
    pytest.param(["--tags", "team=vision"], 2, id="other-tag-value"),
    pytest.param(["--tags", "env=prod", "--tags", "team=llm"], 0, id="repeated"),
    pytest.param(["--tags", "env=prod", "team=llm"], 0, id="several-after-one-flag"),
])
def test_tags_select_overrides(tmp_path, tags, count):
    assert len(findings(evaluate(tmp_path, {"overrides": [BY_TAG]}, "--format", "json", "--now", NOW, *tags))) \
        == count


def test_a_tag_without_a_value_sign_is_bad_input(tmp_path):
    result = evaluate(tmp_path, {}, "--tags", "team")
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr and "Traceback" not in result.stderr


def test_silenced_findings_carry_the_silence_in_json(tmp_path):
    got = findings(evaluate(tmp_path, {"silences": [MAINTENANCE]}, "--format", "json", "--now", NOW))
    assert [f["silenced"] for f in got] == [SILENCED, SILENCED]


def test_findings_no_silence_matches_are_not_silenced(tmp_path):
    other = {**MAINTENANCE, "matchers": {"instance_group": "cpu-workers"}}
    got = findings(evaluate(tmp_path, {"silences": [other]}, "--format", "json", "--now", NOW))
    assert [f["silenced"] for f in got] == [None, None]


def test_a_silence_ends_at_its_until(tmp_path):
    got = findings(evaluate(tmp_path, {"silences": [MAINTENANCE]}, "--format", "json", "--now", "2026-11-21T00:00:01Z"))
    assert [f["silenced"] for f in got] == [None, None]


def test_silenced_findings_are_listed_apart_in_text(tmp_path):
    result = evaluate(tmp_path, {"silences": [MAINTENANCE]}, "--now", NOW)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "cluster ml-prod: 2 finding(s), 2 silenced"
    assert lines[1] == "silenced:"
    assert lines[2].split() == ["SEVERITY", "POLICY", "SCOPE", "SUMMARY", "SILENCED"]
    assert lines[4].startswith("critical  degraded-group  gpu-workers") and lines[4].endswith(SILENCED)
    assert lines[5].startswith("warning   degraded-group  gpu-workers") and lines[5].endswith(SILENCED)


def test_a_tag_selected_override_and_a_silence_together(tmp_path):
    """The override is resolved with the tags; what is left and silenced shows as silenced."""
    rules = {"overrides": [{**BY_TAG, "policies": {"degraded-group": {"severity": "info"}}}],
             "silences": [MAINTENANCE]}
    got = findings(evaluate(tmp_path, rules, "--format", "json", "--now", NOW, "--tags", "team=llm"))
    assert [(f["severity"], f["silenced"]) for f in got] == [("info", SILENCED), ("info", SILENCED)]
