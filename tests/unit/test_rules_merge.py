"""Rules spread over SSM parameters: merge semantics, and splitting a document to fit 4 KB parts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.rules import load_rules
from hyperpod_guard.rules_store import (
    merge_documents,
    normalise_path,
    parse_parameters,
    plan_parts,
    rules_from_parameters,
    serialise,
    split_for_ssm,
)

P = "/hyperpod-guard/rules"


def size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def requirement(i: int) -> dict[str, Any]:
    return {
        "match": {"instance_group": f"group-{i:03d}-*", "instance_type": "ml.p5.*"},
        "taints": [{"key": f"example.com/team-{i:03d}", "value": "reserved", "effect": "NoSchedule"}],
        "labels": {"cost-center": f"cc-{i:05d}", "workload-class": "gpu-training"},
    }


def override(i: int) -> dict[str, Any]:
    return {
        "match": {"cluster": f"prod-{i:02d}-*"},
        "policies": {"degraded-group": {"grace": f"{i + 1}m", "target_shortfall_ratio": 0.25},
                     "taint-drift": {"enabled": i % 2 == 0}},
    }


def silence(i: int) -> dict[str, Any]:
    return {
        "matchers": {"cluster": f"staging-{i:02d}", "policy": "unhealthy-node", "instance_group": "*", "node": "*"},
        "until": "2026-12-01T00:00:00Z",
        "comment": f"silence {i}: " + "maintenance window agreed with the training team, see ticket OPS-1234. " * 4,
    }


def big_document() -> dict[str, Any]:
    """120 required entries + 60 overrides + 40 silences: 52 KB, 14 parameters."""
    return {
        "version": 1,
        "policies": {
            "taint-drift": {"grace": "20m", "required": [requirement(i) for i in range(120)]},
            "degraded-group": {"target_shortfall_ratio": 0.2, "severity": "critical"},
            "unhealthy-node": {"enabled": False},
        },
        "overrides": [override(i) for i in range(60)],
        "silences": [silence(i) for i in range(40)],
    }


SMALL = {
    "version": 1,
    "policies": {"taint-drift": {"grace": "5m", "required": [requirement(0)]}},
    "overrides": [override(0)],
    "silences": [silence(0)],
}


# --- merge -------------------------------------------------------------------------------

MERGE_CASES = [
    pytest.param([("00", {"version": 1})], {"version": 1}, id="one-document"),
    pytest.param([], {}, id="no-documents"),
    pytest.param(
        [("00", {"version": 1, "policies": {"taint-drift": {"grace": "5m"}}}),
         ("01", {"policies": {"taint-drift": {"enabled": False}, "degraded-group": {"severity": "info"}}})],
        {"version": 1, "policies": {"taint-drift": {"grace": "5m", "enabled": False}, "degraded-group": {"severity": "info"}}},
        id="objects-merge-key-by-key-recursively",
    ),
    pytest.param(
        [("00", {"overrides": [{"match": {"cluster": "a"}}]}),
         ("01", {"overrides": [{"match": {"cluster": "b"}}, {"match": {"cluster": "c"}}]}),
         ("02", {"silences": [{"comment": "s"}]})],
        {"overrides": [{"match": {"cluster": "a"}}, {"match": {"cluster": "b"}}, {"match": {"cluster": "c"}}],
         "silences": [{"comment": "s"}]},
        id="lists-concatenate",
    ),
    pytest.param(
        [("00", {"policies": {"taint-drift": {"required": [{"labels": {"a": "1"}}]}}}),
         ("01", {"policies": {"taint-drift": {"grace": "1m"}}}),
         ("02", {"policies": {"taint-drift": {"required": [{"labels": {"b": "2"}}]}}})],
        {"policies": {"taint-drift": {"grace": "1m", "required": [{"labels": {"a": "1"}}, {"labels": {"b": "2"}}]}}},
        id="nested-required-concatenates",
    ),
    pytest.param(
        [("00", {"version": 1, "policies": {"degraded-group": {"grace": "5m", "enabled": True}}}),
         ("01", {"version": 2, "policies": {"degraded-group": {"grace": "9m"}}})],
        {"version": 2, "policies": {"degraded-group": {"grace": "9m", "enabled": True}}},
        id="scalars-later-wins",
    ),
    pytest.param(
        [("/r/team-a/x", {"policies": {"degraded-group": {"grace": "3m"}}, "silences": [{"comment": "team"}]}),
         ("/r/10", {"policies": {"degraded-group": {"grace": "2m"}}, "silences": [{"comment": "ten"}]}),
         ("/r/00", {"policies": {"degraded-group": {"grace": "1m"}}, "silences": [{"comment": "zero"}]})],
        {"policies": {"degraded-group": {"grace": "3m"}},
         "silences": [{"comment": "zero"}, {"comment": "ten"}, {"comment": "team"}]},
        id="name-order-not-argument-order",
    ),
    pytest.param(
        [("00", {"policies": {"x": {"a": 1}}, "overrides": [1], "k": None}),
         ("01", {"policies": {"x": 5}, "overrides": {"not": "a list"}, "k": {"now": "object"}})],
        {"policies": {"x": 5}, "overrides": {"not": "a list"}, "k": {"now": "object"}},
        id="different-types-later-replaces",
    ),
]


@pytest.mark.parametrize(("documents", "expected"), MERGE_CASES)
def test_merge_documents(documents, expected):
    before = copy.deepcopy(documents)
    assert merge_documents(documents) == expected
    assert documents == before  # inputs untouched


@pytest.mark.parametrize(
    ("document", "kind"),
    [([], "array"), ([{"version": 1}], "array"), ("rules", "string"), (3, "number"), (1.5, "number"),
     (True, "boolean"), (None, "null")],
)
def test_a_document_that_is_not_an_object_names_its_parameter(document, kind):
    with pytest.raises(InvalidRulesError) as caught:
        merge_documents([(f"{P}/00", {"version": 1}), (f"{P}/10", document)])
    assert str(caught.value) == f"parameter {P}/10 is not a JSON object (got {kind})"
    assert caught.value.problems == [(f"{P}/10", f"not a JSON object (got {kind})")]


def test_every_non_object_is_listed():
    with pytest.raises(InvalidRulesError) as caught:
        merge_documents([(f"{P}/20", 1), (f"{P}/00", {"version": 1}), (f"{P}/10", [])])
    assert str(caught.value) == f"parameter {P}/10 is not a JSON object (got array) (and 1 more)"
    assert caught.value.problems == [(f"{P}/10", "not a JSON object (got array)"), (f"{P}/20", "not a JSON object (got number)")]


def test_parse_parameters_sorts_by_name_and_names_what_is_not_json():
    assert parse_parameters({f"{P}/b": '{"x":1}', f"{P}/a": "[]"}) == [(f"{P}/a", []), (f"{P}/b", {"x": 1})]
    with pytest.raises(InvalidRulesError) as caught:
        parse_parameters({f"{P}/00": '{"version":1}', f"{P}/10": "version: 1", f"{P}/20": "{"})
    assert str(caught.value) == f"parameter {P}/10 is not JSON: Expecting value: line 1 column 1 (char 0) (and 1 more)"
    assert caught.value.problems == [
        (f"{P}/10", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (f"{P}/20", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ]


def test_rules_from_parameters_keeps_json_paths_of_the_merged_document():
    values = {f"{P}/00": '{"version":1,"policies":{"taint-drift":{"grace":"soon"}}}',
              f"{P}/01": '{"policies":{"taint-drift":{"enabled":"maybe"}}}'}
    with pytest.raises(InvalidRulesError) as caught:
        rules_from_parameters(values, P)
    assert str(caught.value) == (
        f'rules under {P} are invalid: $.policies["taint-drift"].enabled: '
        "Input should be a valid boolean, unable to interpret input (and 1 more)"
    )
    assert [path for path, _ in caught.value.problems] == ['$.policies["taint-drift"].enabled', '$.policies["taint-drift"].grace']


@pytest.mark.parametrize(("given", "expected"), [(P, P), (P + "/", P), ("//a//b//", "/a//b"), ("/", "/")])
def test_normalise_path(given, expected):
    assert normalise_path(given) == expected


def test_a_path_must_start_with_a_slash():
    with pytest.raises(ValueError, match="starts with '/'"):
        normalise_path("hyperpod-guard/rules")


# --- split ---------------------------------------------------------------------------------


def assert_round_trips(document: dict[str, Any], parts: list[dict[str, Any]], limit: int = 4096) -> None:
    for part in parts:
        assert size(part) <= limit
        assert part["version"] == 1  # every part is a valid partial document by itself
        load_rules(part)
    merged = merge_documents([(f"{i:04d}", part) for i, part in enumerate(parts)])
    assert merged == document
    assert load_rules(merged) == load_rules(document)


@pytest.mark.parametrize(
    "document",
    [pytest.param({"version": 1}, id="empty"), pytest.param(SMALL, id="small"),
     pytest.param({"version": 1, "policies": {"degraded-group": {}}}, id="empty-policy")],
)
def test_a_small_document_is_one_part_equal_to_it(document):
    assert split_for_ssm(document) == [document]


def test_empty_lists_are_dropped_but_the_rules_are_the_same():
    document = {"version": 1, "policies": {"taint-drift": {"required": []}}, "overrides": [], "silences": []}
    parts = split_for_ssm(document)
    assert parts == [{"version": 1, "policies": {"taint-drift": {}}}]
    assert load_rules(merge_documents([("00", parts[0])])) == load_rules(document)


def test_a_big_document_splits_into_parts_of_at_most_4096_bytes_that_merge_back():
    document = big_document()
    assert size(document) == 52_512
    parts = split_for_ssm(document)
    assert len(parts) == 14
    assert_round_trips(document, parts)
    # greedy: no two neighbours would have fitted together
    assert all(size(merge_documents([("a", a), ("b", b)])) > 4096 for a, b in zip(parts, parts[1:]))


@pytest.mark.parametrize("limit", [700, 1500, 10_000])
def test_split_honours_the_limit(limit):
    parts = split_for_ssm(big_document(), limit=limit)
    assert_round_trips(big_document(), parts, limit)


def test_size_is_counted_in_utf8_bytes():
    document = {"version": 1, "silences": [{**silence(i), "comment": "ü" * 1500} for i in range(2)]}
    assert len(serialise(document)) < 4096 < size(document)  # fits by characters, not by bytes
    parts = split_for_ssm(document)
    assert len(parts) == 2
    assert_round_trips(document, parts)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"version": 1, "silences": [silence(0), {**silence(1), "comment": "x" * 5000}]}, "$.silences[1]"),
        ({"version": 1, "policies": {"taint-drift": {"required": [requirement(0)] * 3 + [
            {**requirement(3), "labels": {f"k{i}": "v" * 60 for i in range(60)}}]}}},
         '$.policies["taint-drift"].required[3]'),
        ({"version": 1, "policies": {"taint-drift": {"ignore_key_prefixes": [f"p{i:04d}.example.com/" for i in range(300)]}}},
         '$.policies["taint-drift"]'),
    ],
    ids=["silence", "required-entry", "policy-settings"],
)
def test_a_fragment_above_the_limit_is_an_error_naming_it(document, where):
    with pytest.raises(InvalidRulesError) as caught:
        split_for_ssm(document)
    [(path, message)] = caught.value.problems
    assert path == where
    assert message.startswith("is ") and message.endswith(" bytes as a parameter; one SSM parameter holds at most 4096")
    assert int(message.split()[1]) > 4096
    assert str(caught.value) == f"rules cannot be split to fit SSM: {where}: {message}"


def test_oversized_silence_size_is_exact():
    big = {**silence(0), "comment": "x" * 5000}
    with pytest.raises(InvalidRulesError) as caught:
        split_for_ssm({"version": 1, "silences": [big]})
    expected = len('{"version":1,"silences":[]}') + len(json.dumps(big, separators=(",", ":")))
    assert caught.value.problems == [("$.silences[0]", f"is {expected} bytes as a parameter; one SSM parameter holds at most 4096")]


def test_plan_parts_names_parts_with_two_digits_and_validates_first():
    planned = plan_parts(big_document(), P + "/")
    assert [name for name, _ in planned] == [f"{P}/{i:02d}" for i in range(14)]
    assert all(len(value.encode()) <= 4096 and value == serialise(json.loads(value)) for _, value in planned)
    with pytest.raises(InvalidRulesError) as caught:
        plan_parts({"version": 1, "policies": {"taint-drift": {"grace": "soon"}}}, P)
    assert caught.value.problems[0][0] == '$.policies["taint-drift"].grace'


def test_plan_parts_refuses_more_than_100_parts():
    with pytest.raises(InvalidRulesError) as caught:
        plan_parts(big_document(), P, limit=500)
    [(path, message)] = caught.value.problems
    assert path == "$"
    assert message.startswith("needs ") and message.endswith(" parameters of 500 bytes; at most 100 are supported")
