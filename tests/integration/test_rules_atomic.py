"""Rules in SSM change atomically (moto server): versions + a manifest written last.

The central test interrupts `push_rules` after every single SSM call it makes and then loads the
rules: always entirely the old document or entirely the new one, never a mix, and the next complete
push succeeds. Then what a broken version does (a part deleted by hand, one added, edited), the
re-read of a listing torn by a push, rollback, and the one-GetParametersByPath cost of a load.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections import Counter
from datetime import timedelta
from typing import Any

import boto3
import pytest

from hyperpod_guard.local.provision import delivered
from hyperpod_guard.rules import DEFAULT_RULES, load_rules
from hyperpod_guard.rules_store import (
    LoadedRules,
    RollbackError,
    plan_parts,
    RulesStore,
    push_rules,
    rollback_rules,
    serialise,
)
from hyperpod_guard.service import handle_event, new_token
from tests.integration.test_faults import FAST, T0, degraded
from tests.integration.test_rules_store import CountingProvider
from tests.runtime_fixtures import runtime, stack  # noqa: F401
from tests.unit.test_rules_merge import SMALL, big_document, silence

P = "/hyperpod-guard/rules"
OLD = big_document()  # 14 parts
NEW = {**copy.deepcopy(OLD), "silences": [silence(i) for i in range(60, 90)],  # other silences, other part count
       "overrides": OLD["overrides"][:30]}


class Interrupted(Exception):
    """The push "crashed" here."""


def ssm_failing_after(limit: int | None, calls: list[str]) -> Any:
    """A fresh SSM client that makes `limit` calls (every page of a listing is one) and then raises
    Interrupted before sending the next; None: never."""
    client = boto3.client("ssm")

    def before(model: Any, **_: Any) -> None:
        if limit is not None and len(calls) >= limit:
            raise Interrupted(f"after {limit} SSM call(s)")
        calls.append(model.name)

    client.meta.events.register("before-call.ssm.*", before)
    return client


def stored(path: str = P) -> dict[str, str]:
    pages = boto3.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


def fresh() -> LoadedRules:
    return RulesStore(P, max_age=0, required=True).load()


def reset(moto_url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).close()


def legacy_old() -> None:
    """OLD as rules pushed before manifests: <path>/00..13."""
    ssm = boto3.client("ssm")
    for name, value in plan_parts(OLD, P):
        ssm.put_parameter(Name=name, Value=value, Type="String")


def versioned_old() -> None:
    """OLD pushed twice (so the push has a version of 14 parts to clean up)."""
    push_rules(OLD, P)
    push_rules(OLD, P)


SETUPS = {"versioned": versioned_old, "legacy": legacy_old}


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_a_push_interrupted_after_any_ssm_call_leaves_old_or_new_never_a_mix(aws, setup):
    old, new = load_rules(OLD), load_rules(NEW)
    assert old != new
    # how many calls a whole push makes from this state, and which one is the switch
    SETUPS[setup]()
    calls: list[str] = []
    push_rules(NEW, P, ssm=ssm_failing_after(None, calls))
    total = len(calls)
    switch = max(i for i, call in enumerate(calls) if call == "PutParameter") + 1  # calls up to the manifest's
    assert calls[:1] == ["GetParametersByPath"] and calls[switch - 1] == "PutParameter"
    assert calls[switch:] == ["GetParameter"] + ["DeleteParameters"] * (total - switch - 1)
    assert total - switch - 1 >= 2  # stale parameters to delete: more than one DeleteParameters call

    for limit in range(1, total + 1):
        reset(aws)
        SETUPS[setup]()
        reader = RulesStore(P, max_age=0, required=True)
        assert reader.load().rules == old  # the reader's last good: the old rules
        with pytest.raises(Interrupted) if limit < total else _no_error():
            push_rules(NEW, P, ssm=ssm_failing_after(limit, []))

        expected = old if limit < switch else new
        for loaded in (fresh(), reader.load()):
            assert loaded.valid and loaded.source == "ssm", (limit, loaded.error)
            assert loaded.rules == expected, f"after {limit} of {total} calls: not the {'old' if limit < switch else 'new'} rules"

        # the next push completes from whatever was left, and leaves exactly two versions at most
        result = push_rules(NEW, P)
        assert fresh().rules == new
        assert result.manifest is not None
        left = stored()
        versions = {name.split("/")[4] for name in left if name.startswith(f"{P}/v/")}
        assert result.manifest.id in versions and len(versions) <= 2
        assert set(left) - {f"{P}/manifest"} == {n for n in left if n.startswith(f"{P}/v/")}  # no legacy part left


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


# --- a broken version is invalid -------------------------------------------------------------------


def test_a_part_deleted_by_hand_is_invalid_and_names_the_part(aws):
    result = push_rules(OLD, P)
    assert result.manifest is not None
    version = result.manifest.id
    reader = RulesStore(P, max_age=0)
    assert reader.load().rules == load_rules(OLD)
    boto3.client("ssm").delete_parameter(Name=f"{P}/v/{version}/03")

    loaded = reader.load()
    assert loaded.source == "last-good" and loaded.rules == load_rules(OLD)
    assert loaded.error == (f"rules under {P} are incomplete: parameter {P}/v/{version}/03 is missing "
                            f"(version {version} has 14 part(s))")
    fresh_store = RulesStore(P, max_age=0).load()
    assert (fresh_store.source, fresh_store.rules, fresh_store.error) == ("defaults", DEFAULT_RULES, loaded.error)


def test_a_part_added_or_edited_by_hand_is_invalid(aws):
    result = push_rules(SMALL, P)
    assert result.manifest is not None
    version, ssm = result.manifest.id, boto3.client("ssm")
    ssm.put_parameter(Name=f"{P}/v/{version}/01", Value='{"version":1}', Type="String")
    assert fresh().error == (f"rules under {P} are incomplete: parameter {P}/v/{version}/01 is not one of the "
                             f"1 part(s) of version {version}")
    ssm.delete_parameter(Name=f"{P}/v/{version}/01")
    edited = {**SMALL, "silences": []}
    ssm.put_parameter(Name=f"{P}/v/{version}/00", Value=serialise(edited), Type="String", Overwrite=True)
    error = fresh().error
    assert error is not None and error.startswith(
        f"rules under {P} are incomplete: parameter {P}/v/{version}/00..00 is not what the manifest says: sha256 ")


def test_parameters_beside_a_manifest_are_not_merged(aws):
    push_rules(SMALL, P)
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{P}/00", Value=json.dumps({"version": 1, "silences": []}), Type="String")
    ssm.put_parameter(Name=f"{P}/team-a/x", Value=json.dumps({"policies": {"taint-drift": {"enabled": False}}}),
                      Type="String")
    loaded = fresh()
    assert loaded.valid and loaded.rules == load_rules(SMALL)
    assert all(name.startswith(f"{P}/v/") for name in loaded.parameters)


def test_a_torn_listing_is_read_again_once_before_it_is_invalid(aws):
    """A listing spans pages: a push may switch the manifest between them, so the reader sees the new
    manifest beside the old version's parts. It re-reads (force_fetch) and gets the new version."""
    first = push_rules(OLD, P)
    torn = {k: v for k, v in stored().items()}
    second = push_rules(NEW, P)
    assert first.manifest is not None and second.manifest is not None
    torn[f"{P}/manifest"] = second.manifest.serialise()  # the new switch beside the old parts only
    now = stored()

    class Provider:
        def __init__(self) -> None:
            self.calls: list[bool] = []

        def get_multiple(self, path: str, **options: Any) -> dict[str, str]:
            self.calls.append(options["force_fetch"])
            listing = torn if len(self.calls) == 1 else now
            return {name[len(path) + 1:]: value for name, value in listing.items()}

    provider = Provider()
    loaded = RulesStore(P, provider=provider).load()  # type: ignore[arg-type]
    assert provider.calls == [False, True]
    assert loaded.valid and loaded.rules == load_rules(NEW) and loaded.version == second.manifest.id


def test_a_part_deleted_by_hand_raises_one_rules_invalid_alert(stack, runtime):  # noqa: F811
    result = push_rules(FAST, P)
    assert result.manifest is not None
    first = handle_event(degraded("atomic-a"), runtime, T0, new_token())
    assert first.outcomes[-1].notification is not None  # grace 0s: the pushed rules are live
    delivered(stack)
    boto3.client("ssm").delete_parameter(Name=f"{P}/v/{result.manifest.id}/00")
    for minute, name in enumerate(("atomic-b", "atomic-c"), start=1):
        outcome = handle_event(degraded(name), runtime, T0 + timedelta(minutes=minute), new_token())
        assert outcome.rules_error and "is missing" in outcome.rules_error
        assert outcome.outcomes[-1].notification is not None  # last good: still grace 0s
    by_cluster = Counter(m["message"]["cluster"] for m in delivered(stack))
    assert by_cluster == {"_hyperpod-guard": 1, "atomic-b": 1, "atomic-c": 1}


# --- rollback --------------------------------------------------------------------------------------


def test_rollback_makes_the_previous_version_live_and_back(aws):
    first, second = push_rules(OLD, P), push_rules(NEW, P)
    assert first.manifest is not None and second.manifest is not None
    manifest, document = rollback_rules(P)
    assert (manifest.id, document) == (first.manifest.id, OLD)
    assert manifest.previous == second.manifest.current
    assert fresh().rules == load_rules(OLD)
    manifest, document = rollback_rules(P)  # a rollback of the rollback
    assert manifest.id == second.manifest.id and fresh().rules == load_rules(NEW)


def test_rollback_refuses_without_an_intact_previous_version(aws):
    with pytest.raises(RollbackError, match=f"no manifest under {P}"):
        rollback_rules(P)
    only = push_rules(SMALL, P)
    assert only.manifest is not None
    with pytest.raises(RollbackError, match=f"version {only.manifest.id} under {P} has no previous version"):
        rollback_rules(P)
    second = push_rules(OLD, P)
    boto3.client("ssm").delete_parameter(Name=f"{P}/v/{only.manifest.id}/00")
    with pytest.raises(RollbackError, match=f"cannot roll back to version {only.manifest.id}: .* is missing"):
        rollback_rules(P)
    assert second.manifest is not None and fresh().version == second.manifest.id  # nothing changed


# --- cost --------------------------------------------------------------------------------------------


def test_a_load_is_one_get_parameters_by_path_with_the_manifest(aws):
    push_rules({"version": 1}, P)
    push_rules(SMALL, P)  # manifest + two versions of one part: one page
    counting = CountingProvider()
    store = RulesStore(P, max_age=0, provider=counting.provider)
    for _ in range(3):
        assert store.load().rules == load_rules(SMALL)
    assert counting.calls == ["GetParametersByPath"] * 3
