"""RulesStore and push_rules against SSM (moto server): merging, fallbacks, caching, round trip."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from hyperpod_guard import aws_clients
from hyperpod_guard.errors import InvalidRulesError
from hyperpod_guard.rules import DEFAULT_RULES, load_rules
from hyperpod_guard.rules_store import LoadedRules, PushResult, RulesStore, digest, push_rules
from tests.unit.test_rules_merge import SMALL, big_document, override, silence

P = "/hyperpod-guard/rules"


@pytest.fixture
def ssm(aws):
    return boto3.client("ssm")


def put(ssm, name: str, value: Any, type_: str = "String") -> None:
    ssm.put_parameter(Name=name, Value=value if isinstance(value, str) else json.dumps(value), Type=type_, Overwrite=True)


def stored(ssm, path: str = P) -> dict[str, str]:
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


class CountingProvider:
    """A Powertools SSMProvider on our own client, counting the SSM calls it makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        client = aws_clients.client("ssm")
        client.meta.events.register("before-call.ssm.*", lambda model, **_: self.calls.append(model.name))
        self.provider = SSMProvider(boto3_client=client)


# --- what load returns -------------------------------------------------------------------------


def test_no_parameters_means_the_defaults_without_an_error(ssm):
    put(ssm, "/hyperpod-guard/other", {"version": 1, "silences": "not even valid"})
    assert RulesStore().load() == LoadedRules(rules=DEFAULT_RULES, source="defaults", error=None, parameters=())


def test_one_parameter(ssm):
    put(ssm, f"{P}/00", SMALL)
    loaded = RulesStore().load()
    assert loaded == LoadedRules(rules=load_rules(SMALL), source="ssm", parameters=(f"{P}/00",))
    assert loaded.valid and loaded.rules.policies.taint_drift.required[0].labels["cost-center"] == "cc-00000"


def test_parameters_merge_in_name_order_recursively(ssm):
    # written out of order; team-a/x is nested (recursive read) and sorts last
    put(ssm, f"{P}/team-a/x", {"policies": {"degraded-group": {"grace": "30m"}}, "overrides": [override(2)]})
    put(ssm, f"{P}/10", {"version": 1, "overrides": [override(1)], "silences": [silence(1)]})
    put(ssm, f"{P}/00", {"version": 1, "policies": {"degraded-group": {"grace": "1m", "severity": "critical"}},
                         "overrides": [override(0)]})
    put(ssm, "/hyperpod-guard/rules-old/00", {"version": 1, "policies": {"taint-drift": {"enabled": False}}})  # not under the path

    loaded = RulesStore(P + "/").load()

    assert loaded.source == "ssm" and loaded.error is None
    assert loaded.parameters == (f"{P}/00", f"{P}/10", f"{P}/team-a/x")
    assert loaded.rules == load_rules({
        "version": 1,
        "policies": {"degraded-group": {"grace": "30m", "severity": "critical"}},
        "overrides": [override(0), override(1), override(2)],
        "silences": [silence(1)],
    })
    assert loaded.rules.policies.taint_drift.enabled is True


def test_secure_string_parameters_are_decrypted(ssm):
    put(ssm, f"{P}/00", {"version": 1, "policies": {"unhealthy-node": {"enabled": False}}}, type_="SecureString")
    loaded = RulesStore().load()
    assert loaded.source == "ssm"
    assert loaded.rules.policies.unhealthy_node.enabled is False


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"00": {"version": 1}, "10": "version: 1"},
         f"parameter {P}/10 is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ({"00": {"version": 1}, "10": ["version", 1], "20": "5"},
         f"parameter {P}/10 is not a JSON object (got array) (and 1 more)"),
        ({"00": {"version": 1, "policies": {"taint-drift": {"grace": "soon"}}}, "10": {"silences": [{"matchers": {}}]}},
         f"rules under {P} are invalid: $.policies[\"taint-drift\"].grace: Value error, not a duration: 'soon' "
         "(use e.g. '90s', '15m', '4h', '1d', '1h30m') (and 1 more)"),
        ({"00": {"policies": {}}},
         f"rules under {P} are invalid: $.version: Field required"),
    ],
    ids=["not-json", "not-an-object", "schema", "no-version"],
)
def test_invalid_rules_without_a_last_good_fall_back_to_the_defaults(ssm, values, error):
    for name, value in values.items():
        put(ssm, f"{P}/{name}", value)
    assert RulesStore().load() == LoadedRules(rules=DEFAULT_RULES, source="defaults", error=error, parameters=())


@pytest.mark.parametrize("refresh", ["force_fetch", "max_age=0"])
def test_invalid_rules_after_good_ones_keep_the_last_good(ssm, refresh):
    store = RulesStore(max_age=0 if refresh == "max_age=0" else 60)
    load = (lambda: store.load(force_fetch=True)) if refresh == "force_fetch" else store.load
    put(ssm, f"{P}/00", SMALL)
    good = load()
    assert good.source == "ssm"

    put(ssm, f"{P}/00", '{"version": 1,')
    bad = load()
    assert bad == LoadedRules(
        rules=load_rules(SMALL), source="last-good", parameters=(f"{P}/00",),
        error=f"parameter {P}/00 is not JSON: Expecting property name enclosed in double quotes: line 1 column 15 (char 14)",
    )
    assert load() == bad  # stays so while the parameter is bad

    put(ssm, f"{P}/00", {"version": 1})
    assert load() == LoadedRules(rules=DEFAULT_RULES, source="ssm", parameters=(f"{P}/00",))


def test_the_last_good_survives_the_parameters_being_deleted_then_broken(ssm):
    store = RulesStore(max_age=0)
    put(ssm, f"{P}/00", SMALL)
    store.load()
    ssm.delete_parameter(Name=f"{P}/00")
    assert store.load() == LoadedRules(rules=DEFAULT_RULES, source="defaults")  # no rules is a choice, not an error
    put(ssm, f"{P}/00", "[]")
    assert store.load().source == "last-good"


# --- caching -----------------------------------------------------------------------------------


def test_within_max_age_a_second_load_does_not_call_ssm(ssm):
    put(ssm, f"{P}/00", SMALL)
    counting = CountingProvider()
    store = RulesStore(max_age=60, provider=counting.provider)

    first, second = store.load(), store.load()
    assert counting.calls == ["GetParametersByPath"]
    assert first == second == LoadedRules(rules=load_rules(SMALL), source="ssm", parameters=(f"{P}/00",))

    put(ssm, f"{P}/00", {"version": 1})
    assert store.load().rules == load_rules(SMALL)  # cached: the change is not seen yet
    assert store.load(force_fetch=True).rules == DEFAULT_RULES
    assert counting.calls == ["GetParametersByPath"] * 2


def test_max_age_zero_reads_every_time(ssm):
    put(ssm, f"{P}/00", SMALL)
    counting = CountingProvider()
    store = RulesStore(max_age=0, provider=counting.provider)
    for _ in range(3):
        store.load()
    assert counting.calls == ["GetParametersByPath"] * 3


def test_the_default_provider_caches_and_clear_caches_clears_it(ssm):
    put(ssm, f"{P}/00", SMALL)
    store = RulesStore(max_age=60)
    store.load()
    calls: list[str] = []
    parameters.base.DEFAULT_PROVIDERS["ssm"].client.meta.events.register(
        "before-call.ssm.*", lambda model, **_: calls.append(model.name))
    put(ssm, f"{P}/00", {"version": 1})
    assert store.load().rules == load_rules(SMALL)
    assert calls == []
    parameters.clear_caches()  # drops the default providers, cache and all
    assert store.load() == LoadedRules(rules=DEFAULT_RULES, source="ssm", parameters=(f"{P}/00",))


def test_many_parameters_are_read_across_pages(ssm):
    for i in range(25):  # GetParametersByPath returns at most 10 per page
        put(ssm, f"{P}/{i:02d}", {"version": 1, "silences": [silence(i)]})
    loaded = RulesStore().load()
    assert len(loaded.parameters) == 25
    assert [s.comment for s in loaded.rules.silences] == [silence(i)["comment"] for i in range(25)]


# --- AWS failures raise ------------------------------------------------------------------------


def test_an_ssm_error_raises_the_botocore_error_even_with_a_last_good(ssm):
    put(ssm, f"{P}/00", SMALL)
    client = boto3.client("ssm")
    store = RulesStore(max_age=0, provider=SSMProvider(boto3_client=client))
    store.load()
    with Stubber(client) as stubber:
        stubber.add_client_error("get_parameters_by_path", "AccessDeniedException", "not allowed")
        with pytest.raises(ClientError) as caught:
            store.load()
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_an_unreachable_ssm_raises(aws):
    client = boto3.client("ssm", endpoint_url="http://127.0.0.1:9", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(EndpointConnectionError):
        RulesStore(provider=SSMProvider(boto3_client=client)).load()


# --- configuration -----------------------------------------------------------------------------


def test_from_env(monkeypatch):
    monkeypatch.setenv("RULES_PATH", "/team/rules/")
    monkeypatch.setenv("RULES_MAX_AGE", "5")
    store = RulesStore.from_env()
    assert (store.path, store.max_age) == ("/team/rules", 5)
    monkeypatch.delenv("RULES_PATH")
    monkeypatch.delenv("RULES_MAX_AGE")
    store = RulesStore.from_env()
    assert (store.path, store.max_age) == (P, 60)


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_from_env_rejects_a_bad_max_age(monkeypatch, value):
    monkeypatch.setenv("RULES_MAX_AGE", value)
    with pytest.raises(ValueError, match=f"RULES_MAX_AGE must be a whole number of seconds >= 0, got '{value}'"):
        RulesStore.from_env()


# --- push ------------------------------------------------------------------------------------


def versions(values: dict[str, str]) -> set[str]:
    return {name.split("/")[4] for name in values if name.startswith(f"{P}/v/")}


def test_push_then_load_round_trips_a_big_document(ssm):
    document = big_document()
    result = push_rules(document, P, pushed_by="arn:aws:iam::123456789012:user/ops")
    assert result.manifest is not None
    version = result.manifest.id
    names = [f"{P}/v/{version}/{i:02d}" for i in range(14)]
    assert result == PushResult(written=[*names, f"{P}/manifest"], deleted=[], manifest=result.manifest)

    values = stored(ssm)
    assert sorted(values) == [f"{P}/manifest", *names]
    assert all(len(v.encode()) <= 4096 for v in values.values())
    described = ssm.describe_parameters()["Parameters"]
    assert {(p["Type"], p["Tier"]) for p in described} == {("String", "Standard")}
    manifest = json.loads(values[f"{P}/manifest"])
    assert manifest == {"format": 1, "id": version, "parts": 14, "sha256": digest([values[n] for n in names]),
                        "previous": None, "pushed_at": manifest["pushed_at"],
                        "pushed_by": "arn:aws:iam::123456789012:user/ops"}

    loaded = RulesStore().load()
    assert loaded == LoadedRules(rules=load_rules(document), source="ssm", parameters=tuple(names), version=version)


def test_a_push_keeps_the_previous_version_and_deletes_the_rest_under_the_path(ssm):
    first = push_rules(big_document(), P)
    put(ssm, f"{P}/team-a/x", {"version": 1})  # hand-made, beside the manifest: not merged, deleted by a push
    put(ssm, "/hyperpod-guard/rules-old/00", {"version": 1})  # outside the path: kept
    second = push_rules(SMALL, P, ssm=ssm)
    assert first.manifest is not None and second.manifest is not None
    assert second.deleted == [f"{P}/team-a/x"]
    assert second.manifest.previous == first.manifest.current
    assert versions(stored(ssm)) == {first.manifest.id, second.manifest.id}

    third = push_rules({"version": 1}, P, ssm=ssm)
    assert third.manifest is not None
    assert third.deleted == [f"{P}/v/{first.manifest.id}/{i:02d}" for i in range(14)]
    assert versions(stored(ssm)) == {second.manifest.id, third.manifest.id}
    assert stored(ssm, "/hyperpod-guard/rules-old") == {"/hyperpod-guard/rules-old/00": '{"version": 1}'}
    assert RulesStore(max_age=0).load().rules == DEFAULT_RULES


def test_the_first_push_replaces_the_legacy_layout(ssm):
    for i in range(3):
        put(ssm, f"{P}/{i:02d}", {"version": 1, "silences": [silence(i)]})
    put(ssm, f"{P}/team-a/x", {"version": 1})
    result = push_rules(SMALL, P)
    assert result.manifest is not None and result.manifest.previous is None  # no version to roll back to
    assert result.deleted == [f"{P}/00", f"{P}/01", f"{P}/02", f"{P}/team-a/x"]
    assert sorted(stored(ssm)) == [f"{P}/manifest", f"{P}/v/{result.manifest.id}/00"]
    assert RulesStore().load().rules == load_rules(SMALL)


def test_legacy_reads_ignore_the_parts_of_a_push_that_has_not_switched(ssm):
    put(ssm, f"{P}/00", SMALL)
    put(ssm, f"{P}/v/20261130T000000000Z-abcd/00", {"version": 1, "silences": [silence(1)]})
    loaded = RulesStore().load()
    assert loaded == LoadedRules(rules=load_rules(SMALL), source="ssm", parameters=(f"{P}/00",))


def test_a_dry_run_writes_nothing(ssm):
    put(ssm, f"{P}/20", {"version": 1})
    result = push_rules(big_document(), P, dry_run=True)
    assert result.manifest is not None
    assert result.written == [*(f"{P}/v/{result.manifest.id}/{i:02d}" for i in range(14)), f"{P}/manifest"]
    assert result.deleted == [f"{P}/20"]
    assert stored(ssm) == {f"{P}/20": '{"version": 1}'}


def test_an_invalid_document_is_not_pushed(ssm):
    put(ssm, f"{P}/00", SMALL)
    with pytest.raises(InvalidRulesError) as caught:
        push_rules({"version": 1, "overrides": [{"policies": {}}]}, P)
    assert caught.value.problems == [("$.overrides[0].match", "Field required")]
    assert stored(ssm) == {f"{P}/00": json.dumps(SMALL)}
