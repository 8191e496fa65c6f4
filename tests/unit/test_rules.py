"""Rules: defaults, validation with JSON paths, per-cluster overrides, and the exported schema."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest

from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.findings import Severity
from hyperpod_guard.policies import POLICY_NAMES
from hyperpod_guard.rules import (
    DEFAULT_RULES,
    MANAGED_KEY_PREFIXES,
    GroupSelector,
    load_rules,
    load_rules_text,
    rules_schema,
)
from tests.conftest import REPO


def test_empty_document_gives_sensible_defaults():
    rules = load_rules({"version": 1})
    policies = rules.for_cluster("any")
    assert rules == DEFAULT_RULES
    assert {"taint-drift", "degraded-group", "failed-rollback", "unhealthy-node", "cluster-health"} <= set(POLICY_NAMES)
    assert [policies.for_policy(n).enabled for n in POLICY_NAMES] == [True] * len(POLICY_NAMES)
    assert policies.taint_drift.grace == timedelta(minutes=15)
    assert policies.taint_drift.ignore_key_prefixes == MANAGED_KEY_PREFIXES
    assert policies.degraded_group.target_shortfall_ratio == 0.1
    assert policies.failed_rollback.rollback_stuck_after == timedelta(hours=1)
    assert policies.unhealthy_node.repeat_interval == timedelta(hours=4)
    assert policies.cluster_health.grace == timedelta(0)
    assert (policies.cluster_health.check_autoscaling, policies.cluster_health.check_failure_message) == (True, True)
    assert rules.selects_by_tags is False


def test_defaults_file_matches_the_code():
    """After adding a policy or a setting, regenerate it (README: Adding a policy):
    .venv/bin/python -c 'import json; from hyperpod_guard.rules import DEFAULT_RULES as d; \
        print(json.dumps(d.model_dump(mode="json", by_alias=True), indent=2))' > rules/defaults.json"""
    on_disk = json.loads((REPO / "rules/defaults.json").read_text())
    assert on_disk == DEFAULT_RULES.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize("name", ["defaults.json", "example.json"])
def test_shipped_rules_files_are_valid_for_model_and_schema(name):
    document = json.loads((REPO / "rules" / name).read_text())
    load_rules(document)
    jsonschema.Draft202012Validator(rules_schema()).validate(document)


def test_schema_is_a_valid_json_schema_and_describes_the_policies():
    schema = rules_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["$defs"]["Policies"]["properties"]) == set(POLICY_NAMES) >= {
        "taint-drift", "degraded-group", "failed-rollback", "unhealthy-node", "cluster-health"}
    assert schema["$defs"]["TaintDriftSettings"]["properties"]["grace"]["pattern"]


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        pytest.param({}, "$.version", "Field required", id="no-version"),
        pytest.param({"version": 2}, "$.version", "Input should be 1", id="unknown-version"),
        pytest.param({"version": 1, "polices": {}}, "$.polices", "Extra inputs", id="misspelt-top-level-key"),
        pytest.param({"version": 1, "policies": {"taint-drift": {"grace": "soon"}}},
                     '$.policies["taint-drift"].grace', "not a duration", id="bad-duration"),
        pytest.param({"version": 1, "policies": {"degraded-group": {"target_shortfall_ratio": 1.5}}},
                     '$.policies["degraded-group"].target_shortfall_ratio', "less than or equal to 1", id="ratio-above-1"),
        pytest.param({"version": 1, "policies": {"unhealthy-node": {"severity": "loud"}}},
                     '$.policies["unhealthy-node"].severity', "critical", id="unknown-severity"),
        pytest.param({"version": 1, "policies": {"taint-drift": {"required": [{"taints": [{"key": "a", "effect": "Sometimes"}]}]}}},
                     '$.policies["taint-drift"].required[0].taints[0].effect', "NoSchedule", id="bad-taint-effect"),
        pytest.param({"version": 1, "policies": {"taint-drift": {"required": [{"labels": {"sagemaker.amazonaws.com/x": "y"}}]}}},
                     '$.policies["taint-drift"].required[0]', "managed prefix", id="required-managed-key"),
        pytest.param({"version": 1, "policies": {"taint-drift": {"required": [{"taints": [{"key": "node.kubernetes.io/x", "effect": "NoSchedule"}]}]}}},
                     '$.policies["taint-drift"].required[0]', "node.kubernetes.io/x", id="required-managed-subdomain-key"),
        pytest.param({"version": 1, "overrides": [{"policies": {}}]}, "$.overrides[0].match", "Field required", id="override-without-match"),
        pytest.param({"version": 1, "silences": [{"matchers": {"cluster": "c"}}]}, "$.silences[0].until", "Field required", id="silence-without-until"),
        pytest.param({"version": 1, "silences": [{"matchers": {}, "until": "whenever"}]}, "$.silences[0].until", "ISO-8601", id="silence-bad-until"),
        pytest.param({"version": 1, "policies": {"taint-drift": {"enabled": "maybe"}}},
                     '$.policies["taint-drift"].enabled', "boolean", id="enabled-not-bool"),
        pytest.param({"version": 1, "policies": {"cluster-health": {"check_autoscaling": "yes please"}}},
                     '$.policies["cluster-health"].check_autoscaling', "boolean", id="cluster-health-check-not-bool"),
        pytest.param({"version": 1, "overrides": [{"match": {"tags": {"team": 7}}}]},
                     "$.overrides[0].match.tags.team", "valid string", id="tag-value-not-a-string"),
        pytest.param({"version": 1, "overrides": [{"match": {"tags": ["team=llm"]}}]},
                     "$.overrides[0].match.tags", "valid dictionary", id="tags-not-an-object"),
        pytest.param({"version": 1, "overrides": [{"match": {"tags": {"team": "x" * 257}}}]},
                     "$.overrides[0].match.tags.team", "at most 256", id="tag-value-too-long"),
        pytest.param({"version": 1, "overrides": [{"match": {"labels": {"team": "llm"}}}]},
                     "$.overrides[0].match.labels", "Extra inputs", id="unknown-selector"),
    ],
)
def test_invalid_rules_name_the_json_path(document, path, fragment):
    with pytest.raises(InvalidRulesError) as caught:
        load_rules(document)
    problems = dict(caught.value.problems)
    assert path in problems, problems
    assert fragment in problems[path]
    assert "\n" not in str(caught.value)


def test_every_problem_is_reported_not_just_the_first():
    with pytest.raises(InvalidRulesError) as caught:
        load_rules({"version": 3, "policies": {"taint-drift": {"grace": "x"}, "degraded-group": {"enabled": "x"}}})
    assert [p for p, _ in caught.value.problems] == [
        "$.version", '$.policies["taint-drift"].grace', '$.policies["degraded-group"].enabled']


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '"rules"', "null"])
def test_non_json_or_non_object_text_is_an_invalid_rules_error(text):
    with pytest.raises(InvalidRulesError) as caught:
        load_rules_text(text)
    assert caught.value.problems[0][0] == "$"


OVERRIDES = {
    "version": 1,
    "policies": {"taint-drift": {"grace": "20m", "required": [{"labels": {"team": "a"}}]}},
    "overrides": [
        {"match": {"cluster": "dev-*"}, "policies": {"taint-drift": {"enabled": False}, "degraded-group": {"severity": "info"}}},
        {"match": {"cluster": "dev-special"}, "policies": {"taint-drift": {"enabled": True, "required": []}}},
        {"match": {"cluster": "prod-?"}, "policies": {"degraded-group": {"target_shortfall_ratio": 0.5}}},
    ],
}


@pytest.mark.parametrize(
    ("cluster", "taint_enabled", "taint_grace", "required", "degraded_severity", "ratio"),
    [
        pytest.param("ml-prod", True, timedelta(minutes=20), 1, None, 0.1, id="no-override"),
        pytest.param("dev-a", False, timedelta(minutes=20), 1, Severity.INFO, 0.1, id="one-override-keeps-unset-keys"),
        pytest.param("dev-special", True, timedelta(minutes=20), 0, Severity.INFO, 0.1, id="later-override-wins-lists-replaced"),
        pytest.param("prod-1", True, timedelta(minutes=20), 1, None, 0.5, id="question-mark-glob"),
        pytest.param("prod-12", True, timedelta(minutes=20), 1, None, 0.1, id="glob-is-anchored"),
    ],
)
def test_per_cluster_overrides(cluster, taint_enabled, taint_grace, required, degraded_severity, ratio):
    policies = load_rules(OVERRIDES).for_cluster(cluster)
    assert policies.taint_drift.enabled is taint_enabled
    assert policies.taint_drift.grace == taint_grace
    assert len(policies.taint_drift.required) == required
    assert policies.degraded_group.severity == degraded_severity
    assert policies.degraded_group.target_shortfall_ratio == ratio


@pytest.mark.parametrize(
    ("selector", "group", "instance_type", "matches"),
    [
        ({}, "any", None, True),
        ({"instance_type": "ml.p5.*"}, "gpu", "ml.p5.48xlarge", True),
        ({"instance_type": "ml.p5.*"}, "gpu", "ml.p4d.24xlarge", False),
        ({"instance_type": "ml.p5.*"}, "gpu", None, False),
        ({"instance_group": "gpu-*", "instance_type": "ml.p5.*"}, "cpu-1", "ml.p5.48xlarge", False),
        ({"instance_group": "GPU-*"}, "gpu-1", None, False),
    ],
)
def test_group_selector_globs(selector, group, instance_type, matches):
    assert GroupSelector.model_validate(selector).matches(group, instance_type) is matches


# --- selecting clusters by tag ---------------------------------------------------------------------

TAGGED = {
    "version": 1,
    "overrides": [
        {"match": {"tags": {"team": "llm"}}, "policies": {"degraded-group": {"severity": "info"}}},
        {"match": {"cluster": "prod-*", "tags": {"team": "llm", "tier": "gold"}},
         "policies": {"degraded-group": {"grace": "1m"}, "cluster-health": {"enabled": False}}},
        {"match": {"cluster": "prod-*"}, "policies": {"degraded-group": {"target_shortfall_ratio": 0.5}}},
    ],
}


@pytest.mark.parametrize(
    ("cluster", "tags", "severity", "grace", "cluster_health", "ratio"),
    [
        pytest.param("dev-1", {"team": "llm"}, Severity.INFO, timedelta(minutes=5), True, 0.1, id="tag-only-selector"),
        pytest.param("dev-1", {"team": "llm", "cost": "x"}, Severity.INFO, timedelta(minutes=5), True, 0.1, id="other-tags-do-not-matter"),
        pytest.param("dev-1", {"team": "LLM"}, None, timedelta(minutes=5), True, 0.1, id="values-are-case-sensitive"),
        pytest.param("dev-1", {"Team": "llm"}, None, timedelta(minutes=5), True, 0.1, id="keys-are-case-sensitive"),
        pytest.param("dev-1", {}, None, timedelta(minutes=5), True, 0.1, id="untagged"),
        pytest.param("dev-1", None, None, timedelta(minutes=5), True, 0.1, id="tags-unknown-as-untagged"),
        pytest.param("prod-1", {"team": "llm"}, Severity.INFO, timedelta(minutes=5), True, 0.5, id="not-every-tag"),
        pytest.param("prod-1", {"team": "llm", "tier": "gold"}, Severity.INFO, timedelta(minutes=1), False, 0.5,
                     id="every-tag-and-the-name-glob"),
        pytest.param("dev-1", {"team": "llm", "tier": "gold"}, Severity.INFO, timedelta(minutes=5), True, 0.1,
                     id="every-tag-but-not-the-name-glob"),
        pytest.param("prod-1", None, None, timedelta(minutes=5), True, 0.5, id="name-glob-form-still-works"),
    ],
)
def test_overrides_select_clusters_by_tag(cluster, tags, severity, grace, cluster_health, ratio):
    rules = load_rules(TAGGED)
    assert rules.selects_by_tags is True
    for policies in (rules.for_cluster(cluster, tags), rules.for_tags(tags).for_cluster(cluster)):
        assert policies.degraded_group.severity == severity
        assert policies.degraded_group.grace == grace
        assert policies.cluster_health.enabled is cluster_health
        assert policies.degraded_group.target_shortfall_ratio == ratio


def test_for_tags_resolves_tag_selectors_and_keeps_name_globs():
    rules = load_rules(TAGGED)
    bound = rules.for_tags({"team": "llm", "tier": "gold"})
    assert [(o.match.cluster, o.match.tags) for o in bound.overrides] == [("*", {}), ("prod-*", {}), ("prod-*", {})]
    assert bound.selects_by_tags is False
    assert [o.match.cluster for o in rules.for_tags(None).overrides] == ["prod-*"]
    assert [o.match.cluster for o in rules.for_tags({"team": "llm"}).overrides] == ["*", "prod-*"]
    # the rules themselves are unchanged, and rules without tag selectors are returned as they are
    assert rules == load_rules(TAGGED)
    assert DEFAULT_RULES.for_tags({"team": "llm"}) is DEFAULT_RULES
    # an override's settings keep only what it set (lists replaced, other keys inherited)
    assert bound.for_cluster("prod-1").degraded_group.remediation == DEFAULT_RULES.policies.degraded_group.remediation


def test_schema_shows_the_tag_selector():
    schema = rules_schema()
    match = schema["$defs"]["ClusterMatch"]["properties"]
    assert set(match) == {"cluster", "account", "region", "tags"}
    assert match["tags"]["type"] == "object"
    assert match["tags"]["additionalProperties"] == {"type": "string", "maxLength": 256}
    assert "exactly this value" in match["tags"]["description"]
    jsonschema.Draft202012Validator(schema).validate(TAGGED)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"version": 1, "overrides": [{"match": {"tags": {"team": 1}}}]})


# --- workload (issue 23): which clusters' node alerts say what runs on the node ------------------------


def test_workload_is_off_by_default():
    rules = load_rules({"version": 1})
    assert rules.workload == ()
    assert rules.resolve("ml-prod", {}).workload is None


@pytest.mark.parametrize("timeout, seconds", [("1s", 1), ("3s", 3), ("10s", 10)])
def test_workload_timeout_within_bounds(timeout, seconds):
    (entry,) = load_rules({"version": 1, "workload": [{"timeout": timeout}]}).workload
    assert entry.timeout == timedelta(seconds=seconds)


def test_workload_defaults():
    (entry,) = load_rules({"version": 1, "workload": [{}]}).workload
    assert (entry.timeout, entry.controller_group, entry.match.cluster) == (timedelta(seconds=3), None, "*")


@pytest.mark.parametrize("entry, path, fragment", [
    pytest.param({"timeout": "0s"}, "$.workload[0].timeout", "greater than or equal to 1 second", id="timeout-0"),
    pytest.param({"timeout": "500ms"}, "$.workload[0].timeout", "", id="timeout-under-1s"),
    pytest.param({"timeout": "11s"}, "$.workload[0].timeout", "less than or equal to 10 seconds", id="timeout-11s"),
    pytest.param({"timeout": "1m"}, "$.workload[0].timeout", "less than or equal to 10 seconds", id="timeout-1m"),
    pytest.param({"controller_group": ""}, "$.workload[0].controller_group", "at least 1 character",
                 id="controller-group-empty"),
    pytest.param({"controller_group": "c" * 64}, "$.workload[0].controller_group", "at most 63 characters",
                 id="controller-group-too-long"),
    pytest.param({"timeout": "3s", "namespace": "team-a"}, "$.workload[0].namespace", "Extra inputs",
                 id="unknown-key"),
    pytest.param({"match": {"instance_group": "p5"}}, "$.workload[0].match.instance_group", "Extra inputs",
                 id="unknown-match-key"),
])
def test_invalid_workload_entries_name_the_json_path(entry, path, fragment):
    with pytest.raises(InvalidRulesError) as caught:
        load_rules({"version": 1, "workload": [entry]})
    problems = dict(caught.value.problems)
    assert path in problems, problems
    assert fragment in problems[path]


def test_a_controller_group_of_63_characters_is_taken():
    (entry,) = load_rules({"version": 1, "workload": [{"controller_group": "c" * 63}]}).workload
    assert entry.controller_group == "c" * 63


WORKLOAD_ENTRIES = {"version": 1, "workload": [
    {"match": {"cluster": "ml-prod*"}, "timeout": "2s"},
    {"match": {"tags": {"team": "llm"}}, "timeout": "5s", "controller_group": "head"},
    {"match": {"cluster": "ml-*"}, "timeout": "9s"},
]}


@pytest.mark.parametrize("cluster, tags, timeout", [
    ("ml-prod-1", {"team": "llm"}, 2),  # the first entry that matches wins, even when a later one matches too
    ("ml-dev", {"team": "llm"}, 5),
    ("ml-dev", {}, 9),
    ("ml-dev", None, 9),  # tags unknown: entries that select by tag do not match
    ("speech", {"team": "llm"}, 5),
    ("speech", {}, None),
])
def test_the_first_matching_workload_entry_wins(cluster, tags, timeout):
    rules = load_rules(WORKLOAD_ENTRIES)
    found = rules.workload_for(cluster, tags)
    assert (found.timeout.total_seconds() if found is not None else None) == timeout
    resolved = rules.resolve(cluster, tags).workload
    assert resolved == found


def test_workload_entries_selecting_by_tag_make_tags_worth_reading():
    assert not load_rules({"version": 1, "workload": [{"match": {"cluster": "ml-*"}}]}).selects_by_tags
    assert load_rules(WORKLOAD_ENTRIES).selects_by_tags
    assert load_rules({"version": 1, "workload": [{"match": {"tags": {"team": "llm"}}}]}).selects_by_tags
