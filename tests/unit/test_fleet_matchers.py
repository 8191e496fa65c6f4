"""Account and region in the rules' matchers (issue 22), as tables: overrides, routes, the rules'
silences and the ad-hoc ones match a cluster by its key (fleet.py): `cluster:` globs its NAME, so
rules written before the fleet keep working in every account; `account:` and `region:` glob where
it lives, the key's own location or the one the caller gives (a home cluster's bare key does not
say); unknown, only '*' matches."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from hyperpod_guard.alerting import muted_reason
from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.fleet import Location
from hyperpod_guard.notify.message import ATTRIBUTE_LIMIT, FindingPayload, Notification, NotificationItem
from hyperpod_guard.routing import decide, describe_match, receivers_for
from hyperpod_guard.rules import DEFAULT_RULES, ClusterMatch, RouteMatch, Rules, SilenceMatchers, load_rules
from hyperpod_guard.rules_checks import routing_warnings, silence_warnings
from hyperpod_guard.silences import AdHocSilence, new_silence

HOME = Location("111122223333", "us-west-2")
SPOKE = Location("444455556666", "us-east-1")
ELSEWHERE = Location("777788889999", "eu-west-1")
QUALIFIED = f"ml-prod@{SPOKE}"  # ml-prod of the spoke account
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def match(**fields: str) -> ClusterMatch:
    return ClusterMatch.model_validate(fields)


@pytest.mark.parametrize("fields, key, location, matches", [
    ({}, "ml-prod", None, True),                                          # every default '*': anything
    ({}, QUALIFIED, None, True),
    ({"cluster": "ml-prod"}, "ml-prod", None, True),                       # a rule from before the fleet ...
    ({"cluster": "ml-prod"}, QUALIFIED, None, True),                       # ... matches the name in every account
    ({"cluster": "ml-*"}, f"speech@{SPOKE}", None, False),                 # the glob is on the name, not the key
    ({"cluster": "*444455556666*"}, QUALIFIED, None, False),               # ... so it cannot select by account
    ({"account": "444455556666"}, QUALIFIED, None, True),                  # the key's own location
    ({"account": "444455556666"}, f"ml-prod@{ELSEWHERE}", None, False),
    ({"account": "4444*", "region": "us-*"}, QUALIFIED, None, True),        # globs
    ({"region": "eu-*"}, QUALIFIED, None, False),
    ({"account": "111122223333"}, "ml-prod", None, False),                 # a bare key says nowhere: only '*'
    ({"region": "us-west-2"}, "ml-prod", None, False),
    ({"account": "111122223333"}, "ml-prod", HOME, True),                  # ... unless the caller says home
    ({"account": "111122223333", "region": "eu-*"}, "ml-prod", HOME, False),  # both must hold
    ({"account": "111122223333"}, QUALIFIED, HOME, True),                  # an explicit location wins
    ({"cluster": "ml-prod", "account": "444455556666"}, QUALIFIED, None, True),
    ({"cluster": "other", "account": "444455556666"}, QUALIFIED, None, False),
], ids=["defaults", "defaults-qualified", "name", "name-elsewhere", "name-not-key", "glob-not-on-key",
        "account", "other-account", "globs", "other-region", "bare-account", "bare-region", "home-given",
        "home-given-both", "explicit-wins", "name-and-account", "other-name-same-account"])
def test_cluster_match(fields, key, location, matches):
    assert match(**fields).matches(key, None, location) is matches


@pytest.mark.parametrize("field, value, message", [
    ("account", "12345", "not an account id or glob: '12345'"),         # too short, no wildcard: never matches
    ("account", "1111-2222-3333", "not an account id or glob"),        # 14 characters, no wildcard
    ("account", "abc*", "not an account id or glob"),
    ("account", "", "not an account id or glob"),
    ("region", "US-EAST-1", "not a region name or glob: 'US-EAST-1'"),
    ("region", "us-east", "not a region name or glob"),                 # no digit, no wildcard: no region
    ("region", "us east*", "not a region name or glob"),
])
def test_account_and_region_are_validated_with_their_path(field, value, message):
    with pytest.raises(InvalidRulesError) as caught:
        load_rules({"version": 1, "overrides": [{"match": {field: value}, "policies": {}}]})
    path, text = caught.value.problems[0]
    assert path == f"$.overrides[0].match.{field}" and message in text and "e.g." in text


@pytest.mark.parametrize("fields", [{"account": "111122223333"}, {"account": "1111*"}, {"account": "[14]*"},
                                    {"region": "us-east-1"}, {"region": "eu-*"}, {"region": "*-gov-*"},
                                    {"account": "?" * 12}])
def test_good_globs_load(fields):
    assert load_rules({"version": 1, "routing": {"routes": [{"match": fields, "receivers": ["a"]}]}})


@cache
def fleet_rules() -> Rules:
    """Rules that select by account and region (made on first use: a load error fails the tests that use it)."""
    return load_rules({"version": 1, "overrides": [
        {"match": {"cluster": "ml-*"}, "policies": {"degraded-group": {"grace": "1m"}}},
        {"match": {"account": "444455556666"}, "policies": {"degraded-group": {"grace": "7m"}}},
        {"match": {"region": "eu-*"}, "policies": {"taint-drift": {"enabled": False}}},
    ], "silences": [
        {"matchers": {"cluster": "ml-prod", "node": "i-1"}, "until": "2026-12-01T00:00:00Z", "comment": "by name"},
        {"matchers": {"account": "111122223333", "policy": "cluster-health"}, "until": "2026-12-01T00:00:00Z",
         "comment": "home only"},
    ], "routing": {"routes": [
        {"match": {"account": "444455556666"}, "receivers": ["spoke-team"]},
        {"match": {"region": "eu-*", "severity": ["critical"]}, "receivers": ["eu-oncall"]},
    ]}})


def grace(rules, key, location=None) -> timedelta:
    return rules.resolve(key, None, (), location).policies.for_policy("degraded-group").grace


def test_overrides_by_account_and_region():
    assert grace(fleet_rules(), "ml-prod") == timedelta(minutes=1)                # the name glob
    assert grace(fleet_rules(), QUALIFIED) == timedelta(minutes=7)                # + the account's, later wins
    assert grace(fleet_rules(), "ml-prod", SPOKE) == timedelta(minutes=7)         # the location given
    assert grace(fleet_rules(), f"ml-prod@{ELSEWHERE}") == timedelta(minutes=1)
    eu = fleet_rules().resolve(f"x@{ELSEWHERE}")
    assert eu.enabled(["taint-drift", "degraded-group"]) == {"degraded-group"}
    assert (eu.location, fleet_rules().resolve("x").location, fleet_rules().resolve("x", location=HOME).location) == (
        ELSEWHERE, None, HOME)


def test_account_and_region_do_not_select_by_tags():
    """Tags cost a ListTags call per cluster: only a tag selector is worth it."""
    assert not fleet_rules().selects_by_tags
    assert fleet_rules().for_tags({"team": "x"}) is fleet_rules()


def test_rules_from_before_the_fleet_apply_alike_to_every_location():
    old = load_rules({"version": 1, "overrides": [
        {"match": {"cluster": "ml-*"}, "policies": {"unhealthy-node": {"severity": "warning"}}}]})
    policies = {key: old.resolve(key).policies for key in ("ml-prod", QUALIFIED, f"ml-prod@{ELSEWHERE}")}
    assert len({p.model_dump_json() for p in policies.values()}) == 1
    assert old.resolve("speech").policies == DEFAULT_RULES.policies


NODE = Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster="ml-prod", condition="instance-failure",
               summary="node down", instance_group="p5", node="i-1")
HEALTH = Finding(policy="cluster-health", severity=Severity.CRITICAL, cluster="ml-prod", condition="cluster-failed",
                 summary="cluster failed")


def on(finding: Finding, key: str) -> Finding:
    return replace(finding, cluster=key)


@pytest.mark.parametrize("finding, key, location, reason", [
    (NODE, "ml-prod", None, "silenced until 2026-12-01T00:00:00Z: by name"),
    (NODE, QUALIFIED, None, "silenced until 2026-12-01T00:00:00Z: by name"),   # the name, in another account too
    (HEALTH, "ml-prod", HOME, "silenced until 2026-12-01T00:00:00Z: home only"),
    (HEALTH, "ml-prod", None, None),                                            # home not given: unknown
    (HEALTH, QUALIFIED, None, None),                                            # another account
], ids=["name", "name-elsewhere", "home-account", "home-unknown", "spoke-account"])
def test_the_rules_silences_by_name_account_and_region(finding, key, location, reason):
    assert muted_reason(on(finding, key), fleet_rules().resolve(key, None, (), location), [], T0) == reason


def test_silence_matchers_alone():
    matchers = SilenceMatchers(account="4444*", region="us-*", policy="unhealthy-*")
    assert matchers.matches(on(NODE, QUALIFIED)) and not matchers.matches(on(NODE, "ml-prod"))
    assert matchers.matches(on(NODE, "ml-prod"), SPOKE) and not matchers.matches(on(HEALTH, QUALIFIED))


def test_a_silence_naming_an_account_mutes_not_every_alert():
    rules = load_rules({"version": 1, "silences": [
        {"matchers": {"account": "444455556666"}, "until": "2026-12-01T00:00:00Z"}]})
    assert not [w for w in silence_warnings(rules.silences[0], "$.silences[0]", T0) if "every matcher" in w.message]


# --- ad-hoc silences ---------------------------------------------------------------------------------


def adhoc(**matchers: str) -> AdHocSilence:
    return AdHocSilence(id="s1", until=T0 + HOUR, created_at=T0 - HOUR, author="ana", comment="c", **matchers)


@pytest.mark.parametrize("matchers, key, location, matches", [
    ({"cluster": "ml-prod"}, QUALIFIED, None, True),                 # the name glob, in every account
    ({"cluster": "ml-prod", "account": "444455556666"}, QUALIFIED, None, True),
    ({"cluster": "ml-prod", "account": "444455556666"}, f"ml-prod@{ELSEWHERE}", None, False),
    ({"region": "us-east-*"}, QUALIFIED, None, True),
    ({"region": "us-east-*"}, "ml-prod", None, False),              # a bare key, home unknown
    ({"account": "111122223333"}, "ml-prod", HOME, True),           # home given
    ({"account": "111122223333"}, QUALIFIED, None, False),
], ids=["name", "account", "other-account", "region", "bare-unknown", "home", "spoke-vs-home"])
def test_what_an_adhoc_silence_matches(matchers, key, location, matches):
    s = adhoc(**matchers)
    assert s.matches(on(NODE, key), None, T0, location) is matches
    # the evaluator's view: resolved for the cluster (bound to it), muted_reason names the silence
    resolved = DEFAULT_RULES.resolve(key, None, [s], location)
    assert muted_reason(on(NODE, key), resolved, [], T0) == (s.reason() if matches else None)
    assert resolved.adhoc == ((replace(s, account="*", region="*"),) if matches else ())


def test_an_adhoc_silence_by_account_alone_is_not_empty_and_says_so():
    made = new_silence(until=T0 + HOUR, comment="c", author="a", now=T0, cluster="*", account="444455556666",
                       region="us-*")
    assert not made.empty and made.matchers_text() == "account=444455556666 region=us-*"
    assert made.to_dict()["matchers"] == {"cluster": "*", "account": "444455556666", "region": "us-*", "policy": "*",
                                          "instance_group": "*", "node": "*", "tags": {}}


def test_an_item_round_trips_with_and_without_location_matchers():
    made = new_silence(until=T0 + HOUR, comment="c", author="a", now=T0, cluster="ml-*", account="4444*",
                       region="us-east-1")
    item = made.to_item()
    assert (item["account"], item["region"]) == ({"S": "4444*"}, {"S": "us-east-1"})
    assert AdHocSilence.from_item(item) == made
    old = {k: v for k, v in item.items() if k not in ("account", "region")}  # written before the fleet
    assert (AdHocSilence.from_item(old).account, AdHocSilence.from_item(old).region) == ("*", "*")


# --- routes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, location, severity, routes, receivers", [
    (QUALIFIED, None, "warning", (0,), ["spoke-team"]),
    ("ml-prod", SPOKE, "warning", (0,), ["spoke-team"]),                     # the location given
    ("ml-prod", None, "warning", (), ["default"]),                           # a home cluster: the default
    (f"ml-prod@{ELSEWHERE}", None, "critical", (1,), ["eu-oncall"]),
    (f"ml-prod@{ELSEWHERE}", None, "warning", (), ["default"]),
], ids=["spoke-by-key", "spoke-given", "home", "eu-critical", "eu-warning"])
def test_routes_by_account_and_region(key, location, severity, routes, receivers):
    decision = decide(fleet_rules().routing, cluster=key, policy="unhealthy-node", severity=severity,
                      instance_group=None, tags=None, location=location)
    assert decision.routes == routes and [r.name for r in decision.receivers] == receivers
    resolved = fleet_rules().resolve(key, None, (), location)  # the pipeline's way: the location resolve() kept
    assert [r.name for r in receivers_for(resolved, policy="unhealthy-node", severity=severity,
                                          instance_group=None)] == receivers


def test_describe_match_shows_account_and_region():
    assert describe_match(RouteMatch(account="4444*", region="us-east-1", cluster="ml-*")) == \
        "cluster=ml-* account=4444* region=us-east-1"


def test_a_route_by_another_account_is_not_shadowed():
    rules = load_rules({"version": 1, "routing": {"routes": [
        {"match": {"account": "444455556666"}, "receivers": ["a"]},
        {"match": {"account": "777788889999"}, "receivers": ["b"]},
        {"match": {"region": "us-east-1"}, "receivers": ["c"]},
        {"match": {"region": "us-east-1"}, "receivers": ["d"]},   # shadowed by #2
    ]}})
    assert [w.path for w in routing_warnings(rules.routing)] == ["$.routing.routes[3]"]


# --- SNS attributes ----------------------------------------------------------------------------------


def test_sns_attributes_say_account_and_region():
    finding = FindingPayload(policy="unhealthy-node", severity="critical", cluster=QUALIFIED, fingerprint="f1",
                             condition="instance-failure", summary="node down")
    message = Notification(cluster=QUALIFIED, account=SPOKE.account, region=SPOKE.region, sent_at=T0,
                           tags={"team": "llm"}, test=True, receiver="ml-oncall",
                           items=(NotificationItem(reason="first", finding=finding),))
    attributes = message.attributes()
    assert attributes["account"] == {"DataType": "String", "StringValue": "444455556666"}
    assert attributes["region"] == {"DataType": "String", "StringValue": "us-east-1"}
    assert len(attributes) == 9 <= ATTRIBUTE_LIMIT  # the most: a test notification with tags
    unknown = Notification(cluster="x", sent_at=T0, items=(NotificationItem(reason="first", finding=finding),))
    assert {"account", "region"}.isdisjoint(unknown.attributes())  # SNS refuses an empty attribute
