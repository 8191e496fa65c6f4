"""rules_checks: silences that validate but are probably mistakes, as a table; and `validate`
printing them (exit 0) or failing on them with --strict (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from hyperpod_guard.rules import load_rules
from hyperpod_guard.rules_checks import RulesWarning, rules_warnings

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FUTURE, PAST = "2026-12-01T00:00:00Z", "2026-11-30T11:59:59Z"


def silence(until: str = FUTURE, **matchers: str) -> dict:
    return {"matchers": matchers, "until": until}


@pytest.mark.parametrize(("silence_", "expected"), [
    pytest.param(silence(cluster="ml-prod"), [], id="one-cluster"),
    pytest.param(silence(policy="taint-*"), [], id="policy-glob-matching-one"),
    pytest.param(silence(policy="degraded-group", node="i-1"), [], id="policy-and-node"),
    pytest.param(silence(), [("$.silences[0].matchers", "mutes every alert")], id="empty-matchers"),
    pytest.param(silence(cluster="*", policy="*", instance_group="*", node="*"),
                 [("$.silences[0].matchers", "mutes every alert")], id="every-matcher-star"),
    pytest.param(silence(cluster="**"), [("$.silences[0].matchers", "mutes every alert")], id="double-star"),
    pytest.param(silence(PAST, cluster="ml-prod"), [("$.silences[0].until", "has passed")], id="expired"),
    pytest.param(silence("2026-11-30T12:00:00Z", cluster="ml-prod"), [("$.silences[0].until", "has passed")],
                 id="ends-now"),
    pytest.param(silence(policy="taint-drfit"), [("$.silences[0].matchers.policy", "'taint-drfit' matches no policy")],
                 id="misspelt-policy"),
    pytest.param(silence(policy="rollback-*"), [("$.silences[0].matchers.policy", "matches no policy")],
                 id="glob-matching-none"),
    pytest.param(silence(PAST, policy="nope"), [("$.silences[0].until", "has passed"),
                                                ("$.silences[0].matchers.policy", "matches no policy")],
                 id="expired-and-unknown"),
])
def test_silence_warnings(silence_, expected):
    warnings = rules_warnings(load_rules({"version": 1, "silences": [silence_]}), NOW)
    assert [w.path for w in warnings] == [path for path, _ in expected]
    for warning, (_, fragment) in zip(warnings, expected, strict=True):
        assert fragment in warning.message


def test_each_silence_is_named_by_its_index():
    rules = load_rules({"version": 1, "silences": [silence(cluster="a"), silence(PAST, cluster="b")]})
    assert [w.path for w in rules_warnings(rules, NOW)] == ["$.silences[1].until"]


def test_the_systems_own_rules_invalid_alert_may_be_silenced():
    rules = load_rules({"version": 1, "silences": [silence(policy="rules-invalid")]})
    assert rules_warnings(rules, NOW) == []


def test_the_known_policy_names_can_be_given():
    rules = load_rules({"version": 1, "silences": [silence(policy="unhealthy-node")]})
    assert rules_warnings(rules, NOW) == []
    (warning,) = rules_warnings(rules, NOW, policy_names=("rules-invalid",))
    assert isinstance(warning, RulesWarning) and warning.path == "$.silences[0].matchers.policy"


def validate(tmp_path, document: dict, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "validate", str(path), *args],
                          capture_output=True, text=True, timeout=60)


DANGEROUS = {"version": 1, "silences": [
    {"matchers": {}, "until": "2099-01-01T00:00:00Z", "comment": "mutes everything"},
    {"matchers": {"cluster": "ml-prod"}, "until": "2020-01-01T00:00:00Z"},
    {"matchers": {"policy": "taint-drfit"}, "until": "2099-01-01T00:00:00Z"},
]}


def test_validate_prints_warnings_and_exits_0(tmp_path):
    result = validate(tmp_path, DANGEROUS)
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].endswith("valid (version 1, 0 override(s), 3 silence(s))")
    assert lines[1].endswith(": 3 warning(s)")
    assert [line.split(": ")[0].strip() for line in lines[2:]] == [
        "$.silences[0].matchers", "$.silences[1].until", "$.silences[2].matchers.policy"]


def test_validate_strict_fails_on_warnings(tmp_path):
    result = validate(tmp_path, DANGEROUS, "--strict")
    assert result.returncode == 1
    assert "3 warning(s) (--strict: treated as problems)" in result.stdout


def test_validate_strict_passes_clean_rules(tmp_path):
    clean = {"version": 1, "silences": [{"matchers": {"cluster": "ml-prod"}, "until": "2099-01-01T00:00:00Z"}]}
    result = validate(tmp_path, clean, "--strict")
    assert result.returncode == 0, result
    assert "warning" not in result.stdout


# --- routes by owner need a workload entry -------------------------------------------------------------


OWNER_ROUTES = [
    {"match": {"namespace": "team-a"}, "receivers": ["team-a"]},
    {"match": {"cluster": "slurm-*", "slurm_account": "research"}, "receivers": ["research"]},
    {"match": {"workload_labels": {"team": "llm"}, "tags": {"env": "prod"}}, "receivers": ["llm"]},
    {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"]},
]


def owner_warnings(workload: list[dict]) -> list[str]:
    from hyperpod_guard.rules_checks import owner_route_warnings

    rules = load_rules({"version": 1, "routing": {"routes": OWNER_ROUTES}, "workload": workload})
    return [w.path for w in owner_route_warnings(rules)]


def test_owner_routes_without_any_workload_entry_never_match():
    rules = load_rules({"version": 1, "routing": {"routes": OWNER_ROUTES}})
    warnings = [w for w in rules_warnings(rules, NOW) if w.path.endswith(".match")]
    assert [w.path for w in warnings] == ["$.routing.routes[0].match", "$.routing.routes[1].match",
                                          "$.routing.routes[2].match"]
    assert warnings[0].message.startswith("selects by owner (namespace, slurm_account, workload_labels) but there "
                                          "is no `workload` entry: the workload of these clusters is never read, so "
                                          "this route never matches")


@pytest.mark.parametrize("workload, warned", [
    ([{}], []),  # every cluster
    ([{"match": {"cluster": "ml-*"}}], ["$.routing.routes[1].match"]),  # slurm-* clusters: never read
    ([{"match": {"cluster": "slurm-prod"}}], []),  # a slurm-* cluster is read
    ([{"match": {"cluster": "ml-*"}}, {"match": {"cluster": "slurm-*"}}], []),
    ([{"match": {"tags": {"env": "dev"}}}], ["$.routing.routes[2].match"]),  # env=prod clusters: never read
    ([{"match": {"tags": {"env": "prod"}}}], []),
    ([{"match": {"cluster": "ml-*", "region": "us-east-1"}}, {"match": {"cluster": "slurm-*"}}], []),
    ([{"match": {"cluster": "slurm-prod-*"}}], []),  # globs that may meet
], ids=["all", "other-names", "a-name-the-glob-takes", "both", "other-tag-value", "same-tag", "region", "globs"])
def test_owner_routes_need_a_workload_entry_that_may_select_their_clusters(workload, warned):
    assert owner_warnings(workload) == warned


def test_validate_warns_of_owner_routes_without_workload(tmp_path):
    result = validate(tmp_path, {"version": 1, "routing": {"routes": OWNER_ROUTES[:1]}}, "--strict")
    assert result.returncode == 1
    assert "  $.routing.routes[0].match: selects by owner" in result.stdout
    clean = validate(tmp_path, {"version": 1, "routing": {"routes": OWNER_ROUTES[:1]}, "workload": [{}]}, "--strict")
    assert clean.returncode == 0, clean
    assert "warning" not in clean.stdout
