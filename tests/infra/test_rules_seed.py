"""The rules seed (infra/rules_seed.py) as synthesised, and its exact SDK calls replayed on moto.

The stack must put rules in SSM only where none exist and never overwrite rules a user pushed:
no CloudFormation-owned parameter, PutParameter with Overwrite false (ParameterAlreadyExists ignored),
the manifest written after the parts. The replay takes each Custom::AWS resource's `Create` (and
`Update`) call out of the template and makes it with boto3 as the provider would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from hyperpod_guard.rules import load_rules
from hyperpod_guard.rules_store import RulesStore, push_rules, seed_version
from tests.unit.test_rules_merge import SMALL

from .conftest import REPO
from .test_stack import ACCOUNT, PARTITION, REGION, RULES_PATH, _join, resources

DEFAULTS = json.loads((REPO / "rules/defaults.json").read_text())


def seed_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources(template, "Custom::AWS")


def ordered_calls(template: dict[str, Any], phase: str = "Create") -> list[dict[str, Any]]:
    """The seed's SDK calls in an order CloudFormation may make them (every DependsOn first)."""
    seeds = seed_resources(template)
    done: list[str] = []
    while len(done) < len(seeds):
        ready = [lid for lid, r in seeds.items() if lid not in done and set(r.get("DependsOn", [])) & set(seeds) <= set(done)]
        assert ready, "a dependency cycle among the seed's resources"
        done += sorted(ready)
    return [json.loads(seeds[lid]["Properties"][phase]) for lid in done]


def replay(calls: list[dict[str, Any]]) -> list[str]:
    """Make the calls as the AwsCustomResource provider does: errors matching ignoreErrorCodesMatching
    are ignored. Returns what each call did."""
    ssm = boto3.client("ssm")
    outcomes = []
    for call in calls:
        assert (call["service"], call["action"]) == ("SSM", "putParameter")
        try:
            ssm.put_parameter(**call["parameters"])
            outcomes.append("written")
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            assert code == call["ignoreErrorCodesMatching"], code
            outcomes.append("ignored")
    return outcomes


def live():
    """What a fresh evaluator loads now (max_age 0: Powertools' cache is per process, not per store)."""
    return RulesStore(RULES_PATH, max_age=0, required=True).load()


# --- the template ----------------------------------------------------------------------------------


def test_no_cloudformation_owned_rules_parameter(template: dict[str, Any]) -> None:
    assert resources(template, "AWS::SSM::Parameter") == {}


def test_the_seed_is_put_parameter_without_overwrite_and_deletes_nothing(template: dict[str, Any]) -> None:
    planned, manifest = seed_version(DEFAULTS, RULES_PATH, "rules/defaults.json")
    seeds = seed_resources(template)
    assert len(seeds) == len(planned) + 1
    for seed in seeds.values():
        properties = seed["Properties"]
        assert "Delete" not in properties  # the rules outlive `cdk destroy`
        assert properties["Create"] == properties["Update"]
        assert properties["InstallLatestAwsSdk"] is False
        call = json.loads(properties["Create"])
        assert call["parameters"]["Overwrite"] is False
        assert call["ignoreErrorCodesMatching"] == "ParameterAlreadyExists"
        assert (call["parameters"]["Type"], call["parameters"]["Tier"]) == ("String", "Standard")
    written = [(c["parameters"]["Name"], c["parameters"]["Value"]) for c in ordered_calls(template)]
    assert written == [*planned, (f"{RULES_PATH}/manifest", manifest.serialise())]


def test_the_manifest_call_depends_on_every_part(template: dict[str, Any]) -> None:
    seeds = seed_resources(template)
    manifest = [lid for lid, r in seeds.items() if json.loads(r["Properties"]["Create"])["parameters"]["Name"]
                == f"{RULES_PATH}/manifest"]
    assert len(manifest) == 1
    parts = set(seeds) - set(manifest)
    assert parts and parts <= set(seeds[manifest[0]]["DependsOn"])


def test_each_seed_call_may_write_its_one_parameter_only(template: dict[str, Any]) -> None:
    names = sorted(json.loads(r["Properties"]["Create"])["parameters"]["Name"] for r in seed_resources(template).values())
    statements = [s for lid, r in resources(template, "AWS::IAM::Policy").items() if "RulesSeed" in lid
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    assert {s["Action"] for s in statements} == {"ssm:PutParameter"}
    arns = sorted((s["Resource"] for s in statements), key=json.dumps)
    assert arns == sorted((_join("arn:", PARTITION, ":ssm:", REGION, ":", ACCOUNT, f":parameter{n}") for n in names),
                          key=json.dumps)


def test_seed_rules_false_seeds_nothing(synth: Callable[..., dict[str, Any]]) -> None:
    template = synth(seedRules=False)
    assert seed_resources(template) == {}
    assert resources(template, "AWS::SSM::Parameter") == {}
    assert all("FunctionName" in f["Properties"] for f in resources(template, "AWS::Lambda::Function").values())


# --- the template's calls on moto ------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["Create", "Update"])
def test_on_an_empty_account_the_seed_becomes_live(aws, template: dict[str, Any], phase: str) -> None:
    assert set(replay(ordered_calls(template, phase))) == {"written"}
    loaded = live()
    assert loaded.valid and loaded.source == "ssm", loaded.error
    assert loaded.rules == load_rules(DEFAULTS)
    assert loaded.version is not None and loaded.version.startswith("seed-")


@pytest.mark.parametrize("phase", ["Create", "Update"])
def test_after_a_user_push_the_seed_changes_nothing(aws, template: dict[str, Any], phase: str) -> None:
    pushed = push_rules(SMALL, RULES_PATH)
    assert pushed.manifest is not None
    before = live()
    assert before.version == pushed.manifest.id

    outcomes = replay(ordered_calls(template, phase))

    assert outcomes[-1] == "ignored"  # the manifest exists: the switch is not touched
    after = live()
    assert after == before and after.rules == load_rules(SMALL)


def test_a_redeploy_over_the_seed_and_then_a_push(aws, template: dict[str, Any]) -> None:
    replay(ordered_calls(template))
    assert set(replay(ordered_calls(template, "Update"))) == {"ignored"}  # a second deploy: all there already
    seed = live()
    pushed = push_rules(SMALL, RULES_PATH)
    assert pushed.manifest is not None and pushed.manifest.previous is not None
    assert pushed.manifest.previous.id == seed.version  # the seed is the version a rollback returns to
    replay(ordered_calls(template, "Update"))
    assert live().rules == load_rules(SMALL)
