"""Routing (rules.Routing, routing.py): which receivers an alert goes to, as a table of cases; the
rules' validation of routes (with JSON paths and messages that say what is accepted); tags read
when a route selects by tag; the warnings `validate` gives about routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import jsonschema
import pytest

from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.findings import Severity
from hyperpod_guard.notify.message import ReceiverRef
from hyperpod_guard.routing import decide, describe_routes, mention_syntax, receivers_for, route
from hyperpod_guard.rules import DEFAULT_RULES, Routing, load_rules, rules_schema
from hyperpod_guard.rules_checks import routing_notes, routing_warnings, rules_warnings

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)

ROUTES: list[dict[str, Any]] = [
    # 0: every critical alert pages the on-call group, and goes on to the team's route
    {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"], "mention": "subteam^S0123ABCD",
     "continue": True},
    # 1: the llm team's clusters (by tag) to the team's channel
    {"match": {"tags": {"team": "llm"}}, "receivers": ["llm-team", "ml-oncall"]},
    # 2: taint drift on the GPU groups of the prod clusters to the platform team, mentioning a user
    {"match": {"cluster": "prod-*", "instance_group": "p5-*", "policy": ["taint-drift", "unhealthy-node"]},
     "receivers": ["platform"], "mention": "@U0ABC123", "continue": True},
    # 3: warnings and infos of prod clusters, also to the platform team, mentioning nobody
    {"match": {"cluster": "prod-*", "severity": ["warning", "info"]}, "receivers": ["platform", "prod-feed"]},
]
ROUTING = Routing.model_validate({"routes": ROUTES, "default": ["default"]})


class Case(NamedTuple):
    cluster: str
    policy: str
    severity: Severity
    instance_group: str | None
    tags: dict[str, str] | None
    routes: tuple[int, ...]
    receivers: tuple[tuple[str, str | None, int | None], ...]  # (name, mention, route)


CRIT, WARN, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO
PAGE = "<!subteam^S0123ABCD>"


@pytest.mark.parametrize("case", [
    pytest.param(Case("dev-1", "degraded-group", WARN, None, None, (), (("default", None, None),)),
                 id="no-match-default"),
    pytest.param(Case("dev-1", "degraded-group", CRIT, None, None, (0,), (("ml-oncall", PAGE, 0),)),
                 id="first-match-continue-then-nothing-more"),
    pytest.param(Case("dev-1", "degraded-group", WARN, None, {"team": "llm"}, (1,),
                      (("llm-team", None, 1), ("ml-oncall", None, 1))), id="tags"),
    pytest.param(Case("dev-1", "degraded-group", WARN, None, {"team": "speech"}, (), (("default", None, None),)),
                 id="other-tag-value"),
    pytest.param(Case("dev-1", "degraded-group", WARN, None, {}, (), (("default", None, None),)),
                 id="untagged"),
    pytest.param(Case("dev-1", "degraded-group", CRIT, None, {"team": "llm", "env": "dev"}, (0, 1),
                      (("ml-oncall", PAGE, 0), ("llm-team", None, 1))),
                 id="continue-then-first-match-dedup-keeps-the-mention"),
    pytest.param(Case("prod-1", "taint-drift", WARN, "p5-train", None, (2, 3),
                      (("platform", "<@U0ABC123>", 2), ("prod-feed", None, 3))),
                 id="instance-group-glob-policy-list-continue-dedup"),
    pytest.param(Case("prod-1", "taint-drift", WARN, "cpu-a", None, (3,),
                      (("platform", None, 3), ("prod-feed", None, 3))), id="instance-group-glob-no-match"),
    pytest.param(Case("prod-1", "taint-drift", WARN, None, None, (3,),
                      (("platform", None, 3), ("prod-feed", None, 3))), id="cluster-alert-has-no-instance-group"),
    pytest.param(Case("prod-1", "degraded-group", WARN, "p5-train", None, (3,),
                      (("platform", None, 3), ("prod-feed", None, 3))), id="policy-not-in-list"),
    pytest.param(Case("prod-1", "unhealthy-node", CRIT, "p5-a", {"team": "llm"}, (0, 1),
                      (("ml-oncall", PAGE, 0), ("llm-team", None, 1))), id="first-match-without-continue-stops"),
    pytest.param(Case("prod-1", "unhealthy-node", CRIT, "p5-a", None, (0, 2),
                      (("ml-oncall", PAGE, 0), ("platform", "<@U0ABC123>", 2))), id="severity-list-excludes"),
    pytest.param(Case("prod-1", "cluster-health", INFO, None, None, (3,),
                      (("platform", None, 3), ("prod-feed", None, 3))), id="severity-list-includes"),
    pytest.param(Case("staging", "rules-invalid", CRIT, None, None, (0,), (("ml-oncall", PAGE, 0),)),
                 id="the-systems-own-alert"),
])
def test_route_table(case: Case):
    decision = decide(ROUTING, cluster=case.cluster, policy=case.policy, severity=case.severity,
                      instance_group=case.instance_group, tags=case.tags)
    assert decision.routes == case.routes
    assert [(r.name, r.mention, r.route) for r in decision.receivers] == list(case.receivers)
    assert route(ROUTING, cluster=case.cluster, policy=case.policy, severity=case.severity.value,
                 instance_group=case.instance_group, tags=case.tags) == decision.receivers


def test_a_later_routes_mention_is_kept_for_a_receiver_an_earlier_route_named_without_one():
    routing = Routing.model_validate({"routes": [
        {"receivers": ["platform"], "continue": True},
        {"match": {"severity": ["critical"]}, "receivers": ["platform"], "mention": "here", "continue": True},
        {"match": {"severity": ["critical"]}, "receivers": ["platform"], "mention": "channel"},
    ]})
    (ref,) = route(routing, cluster="c", policy="taint-drift", severity=CRIT, instance_group=None, tags=None)
    assert ref == ReceiverRef(name="platform", mention="<!here>", route=0)


def test_default_receivers_in_order_each_once_and_no_routes_means_default():
    routing = Routing.model_validate({"default": ["catch-all", "default", "catch-all"]})
    refs = route(routing, cluster="c", policy="taint-drift", severity=INFO, instance_group=None, tags=None)
    assert refs == (ReceiverRef(name="catch-all"), ReceiverRef(name="default"))
    assert route(DEFAULT_RULES.routing, cluster="c", policy="taint-drift", severity=INFO, instance_group="g",
                 tags={"a": "b"}) == (ReceiverRef(name="default"),)


def test_an_empty_match_takes_every_alert():
    routing = Routing.model_validate({"routes": [{"receivers": ["all"]}, {"receivers": ["never"]}]})
    assert route(routing, cluster="x", policy="cluster-health", severity=INFO, instance_group=None,
                 tags=None) == (ReceiverRef(name="all", route=0),)


@pytest.mark.parametrize(("written", "slack"), [
    ("subteam^S0123ABCD", "<!subteam^S0123ABCD>"), ("@U0ABC123", "<@U0ABC123>"), ("@W0ABC123", "<@W0ABC123>"),
    ("here", "<!here>"), ("channel", "<!channel>"),
])
def test_mention_syntax(written, slack):
    assert mention_syntax(written) == slack
    load_rules({"version": 1, "routing": {"routes": [{"receivers": ["a"], "mention": written}]}})


def test_the_cluster_rules_carry_the_routing_and_the_tags():
    rules = load_rules({"version": 1, "routing": {"routes": ROUTES}})
    resolved = rules.resolve("prod-1", {"team": "llm"})
    assert resolved.routing == rules.routing
    assert receivers_for(resolved, policy="degraded-group", severity=WARN, instance_group=None) == (
        ReceiverRef(name="llm-team", route=1), ReceiverRef(name="ml-oncall", route=1))
    assert DEFAULT_RULES.resolve("x").routing == Routing()


# --- tags: read only when something selects by them -------------------------------------------------


def test_a_route_matching_on_tags_makes_the_rules_select_by_tags():
    assert DEFAULT_RULES.selects_by_tags is False
    assert load_rules({"version": 1, "routing": {"routes": [{"match": {"cluster": "prod-*", "severity": ["critical"]},
                                                             "receivers": ["a"]}]}}).selects_by_tags is False
    tagged = load_rules({"version": 1, "routing": {"routes": [{"match": {"tags": {"team": "llm"}},
                                                               "receivers": ["llm-team"]}]}})
    assert tagged.selects_by_tags is True
    # binding to tags (for the overrides) leaves the routing as it is: route() gets the tags
    assert tagged.for_tags({"team": "llm"}).routing == tagged.routing


# --- validation ---------------------------------------------------------------------------------


def routing_doc(**routing: Any) -> dict[str, Any]:
    return {"version": 1, "routing": routing}


@pytest.mark.parametrize(("routing", "path", "fragment"), [
    pytest.param({"routes": [{"receivers": ["ML_oncall"]}]}, "$.routing.routes[0].receivers[0]",
                 "not a receiver name: 'ML_oncall'; use 1 to 63 lowercase letters", id="bad-receiver-name"),
    pytest.param({"routes": [{"receivers": ["a" * 64]}]}, "$.routing.routes[0].receivers[0]",
                 "not a receiver name", id="receiver-name-too-long"),
    pytest.param({"default": ["-x", "ok"]}, "$.routing.default[0]", "not a receiver name", id="bad-default-name"),
    pytest.param({"routes": [{"receivers": []}]}, "$.routing.routes[0].receivers", "at least 1", id="no-receivers"),
    pytest.param({"routes": [{"receivers": [f"r{i}" for i in range(11)]}]}, "$.routing.routes[0].receivers",
                 "at most 10", id="too-many-receivers"),
    pytest.param({"routes": [{"match": {}}]}, "$.routing.routes[0].receivers", "Field required",
                 id="receivers-required"),
    pytest.param({"default": []}, "$.routing.default", "at least 1", id="empty-default"),
    pytest.param({"routes": [{"receivers": ["a"], "mention": "@oncall"}]}, "$.routing.routes[0].mention",
                 "not a Slack mention: '@oncall'; use 'subteam^S0123ABCD' (a user group), '@U0123ABCD' or "
                 "'@W0123ABCD' (a user), 'here', 'channel'", id="bad-mention"),
    pytest.param({"routes": [{"receivers": ["a"], "mention": "<!subteam^S0123ABCD>"}]}, "$.routing.routes[0].mention",
                 "not a Slack mention", id="mention-in-slack-syntax"),
    pytest.param({"routes": [{"receivers": ["a"], "match": {"policy": ["taint-drift", "taint-drfit"]}}]},
                 "$.routing.routes[0].match.policy[1]", "unknown policy 'taint-drfit'; policies are taint-drift, "
                 "degraded-group, failed-rollback, unhealthy-node, cluster-health, image-hygiene", id="unknown-policy"),
    pytest.param({"routes": [{"receivers": ["a"], "match": {"severity": ["page"]}}]},
                 "$.routing.routes[0].match.severity[0]", "'critical', 'warning' or 'info'", id="unknown-severity"),
    pytest.param({"routes": [{"receivers": ["a"], "match": {"sevrity": ["critical"]}}]},
                 "$.routing.routes[0].match.sevrity", "Extra inputs", id="unknown-match-key"),
    pytest.param({"routes": [{"receivers": ["a"], "contine": True}]}, "$.routing.routes[0].contine", "Extra inputs",
                 id="unknown-route-key"),
    pytest.param({"rutes": []}, "$.routing.rutes", "Extra inputs", id="unknown-routing-key"),
])
def test_invalid_routing_is_refused_with_its_path(routing, path, fragment):
    with pytest.raises(InvalidRulesError) as raised:
        load_rules(routing_doc(**routing))
    problems = dict(raised.value.problems)
    assert path in problems, raised.value.problems
    assert fragment in problems[path]


def test_continue_is_written_continue():
    rules = load_rules(routing_doc(routes=[{"receivers": ["a"], "continue": True}]))
    assert rules.routing.routes[0].continue_ is True
    assert rules.model_dump(mode="json", by_alias=True)["routing"]["routes"][0]["continue"] is True


def test_the_schema_describes_routing_and_agrees_with_the_model():
    schema = rules_schema()
    validator = jsonschema.Draft202012Validator(schema)
    route_ = schema["$defs"]["Route"]["properties"]
    assert set(route_) == {"match", "receivers", "mention", "continue"}
    assert all(route_[key].get("description") for key in route_)
    assert set(schema["$defs"]["RouteMatch"]["properties"]) == {"cluster", "account", "region", "tags", "severity",
                                                                "policy", "instance_group", "namespace", "slurm_account",
                                                                    "workload_labels"}
    validator.validate(routing_doc(routes=ROUTES, default=["default"]))
    for bad in ({"receivers": ["ML"]}, {"receivers": ["a"], "mention": "@oncall"},
                {"receivers": ["a"], "match": {"policy": ["nope"]}}, {"receivers": ["a"], "match": {"x": 1}}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(routing_doc(routes=[bad]))
        with pytest.raises(InvalidRulesError):
            load_rules(routing_doc(routes=[bad]))


def test_describe_routes_for_people():
    assert describe_routes(ROUTING) == [
        "#0 severity=critical -> ml-oncall mention <!subteam^S0123ABCD>, continue",
        "#1 tag:team=llm -> llm-team, ml-oncall",
        "#2 policy=taint-drift,unhealthy-node cluster=prod-* instance_group=p5-* -> platform mention <@U0ABC123>, "
        "continue",
        "#3 severity=warning,info cluster=prod-* -> platform, prod-feed",
        "default -> default",
    ]


# --- warnings (validate) -------------------------------------------------------------------------


@pytest.mark.parametrize(("routes", "shadowed"), [
    pytest.param(ROUTES, [], id="the-example-has-none"),
    pytest.param([{"receivers": ["a"]}, {"match": {"severity": ["critical"]}, "receivers": ["b"]},
                  {"receivers": ["c"]}], [(1, 0), (2, 0)], id="empty-match-shadows-everything-after"),
    pytest.param([{"receivers": ["a"], "continue": True}, {"receivers": ["b"]}], [], id="continue-does-not-shadow"),
    pytest.param([{"match": {"cluster": "**"}, "receivers": ["a"]}, {"match": {"cluster": "x"}, "receivers": ["b"]}],
                 [(1, 0)], id="star-star-cluster"),
    pytest.param([{"match": {"severity": ["critical", "warning"]}, "receivers": ["a"]},
                  {"match": {"severity": ["critical"], "cluster": "p-*", "tags": {"t": "1"}}, "receivers": ["b"]},
                  {"match": {"severity": ["critical", "info"]}, "receivers": ["c"]},
                  {"match": {"policy": ["taint-drift"]}, "receivers": ["d"]}],
                 [(1, 0)], id="narrower-after-wider"),
    pytest.param([{"match": {"tags": {"team": "llm"}}, "receivers": ["a"]},
                  {"match": {"tags": {"team": "llm", "env": "prod"}}, "receivers": ["b"]},
                  {"match": {"tags": {"team": "speech"}}, "receivers": ["c"]}], [(1, 0)], id="tags-subset"),
    pytest.param([{"match": {"instance_group": "p5-*"}, "receivers": ["a"]},
                  {"match": {"instance_group": "p5-*", "policy": ["taint-drift"]}, "receivers": ["b"]},
                  {"match": {"instance_group": "p5-train"}, "receivers": ["c"]},
                  {"match": {"instance_group": "**"}, "receivers": ["d"]},
                  {"receivers": ["e"]}], [(1, 0)], id="instance-group-glob-covers-only-itself"),
])
def test_routes_that_never_match_are_warned_of(routes, shadowed):
    rules = load_rules(routing_doc(routes=routes))
    warnings = routing_warnings(rules.routing)
    assert [w.path for w in warnings] == [f"$.routing.routes[{later}]" for later, _ in shadowed]
    for warning, (_, earlier) in zip(warnings, shadowed, strict=True):
        assert f"never matches: route #{earlier} (without `continue`)" in warning.message
    assert [w for w in rules_warnings(rules, NOW) if w.path.startswith("$.routing")] == warnings


def test_an_owner_route_shadows_only_routes_of_the_same_owner():
    """Routes by owner: another namespace (or account) is not shadowed; the same owner, or a narrower one (more
    labels), is; a route without owner matchers is shadowed by none of them."""
    routes = [{"match": {"namespace": "team-a"}, "receivers": ["a"]},
              {"match": {"namespace": "team-b"}, "receivers": ["b"]},
              {"match": {"slurm_account": "research"}, "receivers": ["c"]},
              {"match": {"namespace": "team-a", "workload_labels": {"app": "x"}}, "receivers": ["d"]},
              {"match": {"workload_labels": {"app": "x"}}, "receivers": ["e"]},
              {"match": {"namespace": "team-b", "workload_labels": {"app": "x"}}, "receivers": ["f"]},
              {"match": {"severity": ["critical"]}, "receivers": ["g"]}]
    rules = load_rules(routing_doc(routes=routes))
    assert [(w.path, w.message.split(" (")[0]) for w in routing_warnings(rules.routing)] == [
        ("$.routing.routes[3]", "never matches: route #0"), ("$.routing.routes[5]", "never matches: route #1")]


def test_each_named_receiver_gets_a_note_about_its_secret_once():
    rules = load_rules(routing_doc(routes=ROUTES, default=["default", "catch-all"]))
    notes = routing_notes(rules.routing)
    assert [(n.path, n.message.split("'")[1]) for n in notes] == [
        ("$.routing.routes[0].receivers", "ml-oncall"), ("$.routing.routes[1].receivers", "llm-team"),
        ("$.routing.routes[2].receivers", "platform"), ("$.routing.routes[3].receivers", "prod-feed"),
        ("$.routing.default", "catch-all")]
    assert "make sure the secret hyperpod-guard/slack/ml-oncall exists" in notes[0].message
    assert "secret team-b/slack/ml-oncall exists" in routing_notes(rules.routing, prefix="team-b")[0].message
    assert routing_notes(DEFAULT_RULES.routing) == []
    # notes are not warnings: `validate --strict` does not fail on a receiver it cannot check
    assert rules_warnings(rules, NOW) == []
