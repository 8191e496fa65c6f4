"""The hub's side of the fleet (issue 22, infra/fleet.py): the fleet bus and its policy, the rule on it, the
functions' environment and their sts:AssumeRole on the spoke roles; and none of it without fleet context.
cdk-nag and cfn-lint run on the `fleet` and `fleet-org` variants in test_stack.py (LINTED)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from hyperpod_guard import fleet
from infra.config import ConfigError
from infra.evaluation import SAGEMAKER_FEATURE_READ, SAGEMAKER_PLAN_READ, SAGEMAKER_READ, SAGEMAKER_REMEDIATE
from infra.ingestion import EVENT_PATTERN

from .conftest import REPO, make_stack
from .test_stack import (
    ACCOUNT,
    FLEET,
    FLEET_ORG,
    PARTITION,
    PREFIX,
    _join,
    as_list,
    evaluate,
    find,
    function,
    hyperpod_rule,
    live,
    queue,
    resources,
)

Synth = Callable[..., dict[str, Any]]
HUB = "123456789012"
SPOKES = ["111122223333", "444455556666"]
ORG = FLEET_ORG["organizationId"]
#: the functions that read clusters: the fleet's environment and the spoke roles
READERS = ("evaluator", "sweep", "worker")
FLEET_VARIABLES = (fleet.HOME_ACCOUNT, fleet.FLEET_REGIONS, fleet.SPOKE_ROLE_NAME, fleet.SPOKE_EXTERNAL_ID)
APP_MODE = {"slackMode": "app", "slackChannels": "default=C0123ABCD"}


def spoke_role(account: str, name: str = fleet.DEFAULT_SPOKE_ROLE) -> dict[str, Any]:
    return _join("arn:", PARTITION, f":iam::{account}:role/{name}")


def fleet_bus(template: dict[str, Any]) -> str:
    bus, _ = find(template, "AWS::Events::EventBus", Name=f"{PREFIX}-fleet")
    return bus


def fleet_rule(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return find(template, "AWS::Events::Rule", Name=f"{PREFIX}-fleet-hyperpod-events")


def bus_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The fleet bus's resource policy: CDK writes one AWS::Events::EventBusPolicy per statement."""
    bus = fleet_bus(template)
    policies = [r["Properties"] for r in resources(template, "AWS::Events::EventBusPolicy").values()]
    assert all(p["EventBusName"] == {"Ref": bus} for p in policies)
    return [p["Statement"] for p in policies]


def assume_role_grants(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> its statements that allow sts:AssumeRole (in any of the template's policies)."""
    grants: dict[str, list[dict[str, Any]]] = {}
    for r in resources(template, "AWS::IAM::Policy").values():
        for statement in r["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("sts:") for a in as_list(statement["Action"])):
                for role in r["Properties"]["Roles"]:
                    grants.setdefault(role["Ref"], []).append(statement)
    return grants


def role_of(template: dict[str, Any], name: str) -> str:
    return function(template, name)[1]["Role"]["Fn::GetAtt"][0]


def variables(template: dict[str, Any], name: str) -> dict[str, Any]:
    return function(template, name)[1]["Environment"]["Variables"]


# --- without fleet context: today's stack -------------------------------------------------------

@pytest.mark.parametrize("context", [{}, {"remediation": True, **APP_MODE, "weeklyDigest": True}],
                         ids=["default", "everything"])
def test_without_fleet_context_there_is_no_fleet(synth: Synth, context: dict[str, Any]) -> None:
    template = synth(**context)
    assert not resources(template, "AWS::Events::EventBus")
    assert not resources(template, "AWS::Events::EventBusPolicy")
    assert assume_role_grants(template) == {}
    assert "sts:AssumeRole\"" not in json.dumps([r for r in template["Resources"].values()
                                                 if r["Type"] != "AWS::IAM::Role"])
    for fn in resources(template, "AWS::Lambda::Function").values():
        assert not set(FLEET_VARIABLES) & set(fn["Properties"].get("Environment", {}).get("Variables", {}))
    assert not [name for name in template.get("Outputs", {}) if name.startswith("Fleet")]
    assert [r["Properties"]["Name"] for r in resources(template, "AWS::Events::Rule").values()
            if "hyperpod-events" in r["Properties"].get("Name", "")] == [f"{PREFIX}-hyperpod-events"]
    # the evaluator believes its own account only, as before
    assert variables(template, "evaluator")["EVENT_ACCOUNTS"] == ACCOUNT


# --- the fleet bus and its policy ----------------------------------------------------------------

def test_bus_policy_admits_each_spoke_account(synth: Synth) -> None:
    template = synth(**FLEET)
    bus = fleet_bus(template)
    statements = bus_statements(template)
    assert sorted(json.dumps(s["Principal"]) for s in statements) == sorted(
        json.dumps({"AWS": _join("arn:", PARTITION, f":iam::{account}:root")}) for account in SPOKES)
    for statement in statements:
        assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
        assert statement["Resource"] == {"Fn::GetAtt": [bus, "Arn"]}
        assert "Condition" not in statement


def test_bus_policy_admits_the_organization(synth: Synth) -> None:
    template = synth(**FLEET_ORG)
    bus = fleet_bus(template)
    ((statement),) = bus_statements(template)
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG}}
    assert (statement["Effect"], statement["Action"]) == ("Allow", "events:PutEvents")
    assert statement["Resource"] == {"Fn::GetAtt": [bus, "Arn"]}


# --- the rule on the fleet bus -------------------------------------------------------------------

@pytest.mark.parametrize("context", [FLEET, FLEET_ORG], ids=["accounts", "organization"])
def test_fleet_rule_has_the_default_rules_target(synth: Synth, context: dict[str, Any]) -> None:
    """The same target as the default bus's rule (ingestion.hyperpod_rule): the evaluator's alias, the same
    dead-letter queue (no new one), 8 retries over 6 hours; EventBridge may invoke the alias from it."""
    template = synth(**context)
    rule_id, rule = fleet_rule(template)
    _, default = hyperpod_rule(template)
    assert rule["EventBusName"] == {"Ref": fleet_bus(template)} and "EventBusName" not in default
    assert rule["Targets"] == default["Targets"]
    evaluator, _ = live(template, "evaluator")
    dlq, _ = queue(template, "events-dlq")
    ((target),) = rule["Targets"]
    assert target["Arn"] == {"Ref": evaluator}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 6 * 3600}
    assert len(resources(template, "AWS::SQS::Queue")) == len(resources(synth(), "AWS::SQS::Queue"))
    find(template, "AWS::Lambda::Permission", FunctionName={"Ref": evaluator},
         Principal="events.amazonaws.com", SourceArn={"Fn::GetAtt": [rule_id, "Arn"]})


def test_fleet_rule_pattern_is_the_default_rules(synth: Synth) -> None:
    """Listed spokes: the default rule's pattern, this account and the spokes (either bus may carry them)."""
    template = synth(**FLEET)
    pattern = fleet_rule(template)[1]["EventPattern"]
    assert pattern == hyperpod_rule(template)[1]["EventPattern"] == {**EVENT_PATTERN, "account": [ACCOUNT, *SPOKES]}


def test_fleet_rule_pattern_in_an_organization_takes_any_account_the_bus_admits(synth: Synth) -> None:
    template = synth(**FLEET_ORG)
    assert fleet_rule(template)[1]["EventPattern"] == EVENT_PATTERN
    # the default bus's rule: this account's own (the spokes' events come through the fleet bus)
    assert hyperpod_rule(template)[1]["EventPattern"] == {**EVENT_PATTERN, "account": [ACCOUNT]}


def _matcher(pattern: dict[str, Any]) -> EventPattern:
    return EventPattern.load(json.dumps({k: evaluate(v, {"AWS::AccountId": HUB}) for k, v in pattern.items()}))


@pytest.mark.parametrize(("context", "stranger"), [(FLEET, False), (FLEET_ORG, True)], ids=["accounts", "organization"])
def test_fleet_rule_matches_a_spokes_event(synth: Synth, context: dict[str, Any], stranger: bool) -> None:
    """moto's matcher: a spoke's HyperPod event goes to the evaluator; another account's only in organization
    mode (where the bus's policy, not the rule, admits accounts)."""
    matcher = _matcher(fleet_rule(synth(**context))[1]["EventPattern"])
    event = json.loads((REPO / "events/degraded-group-failed/event.json").read_text())
    for account, expected in ((SPOKES[0], True), (HUB, True), ("999988887777", stranger)):
        assert matcher.matches_event({**event, "account": account}) is expected, account
    assert not matcher.matches_event({**event, "source": "aws.ec2"})


# --- the functions' environment ------------------------------------------------------------------

@pytest.mark.parametrize("name", READERS)
def test_readers_environment_with_spoke_accounts(synth: Synth, name: str) -> None:
    env = variables(synth(**FLEET), name)
    assert env[fleet.HOME_ACCOUNT] == ACCOUNT
    assert env[fleet.FLEET_REGIONS] == "us-east-1,eu-west-1"
    assert env[fleet.SPOKE_ROLE_NAME] == fleet.DEFAULT_SPOKE_ROLE == "hyperpod-guard-spoke"
    assert env[fleet.SPOKE_EXTERNAL_ID] == PREFIX  # the default: the prefix
    assert evaluate(env["EVENT_ACCOUNTS"], {"AWS::AccountId": HUB}) == ",".join([HUB, *SPOKES])
    # what the runtime reads back (AWS_REGION is Lambda's): the sweep covers these accounts and regions
    settings = fleet.FleetSettings.from_env({**{k: evaluate(v, {"AWS::AccountId": HUB}) for k, v in env.items()
                                                if k in (*FLEET_VARIABLES, "EVENT_ACCOUNTS")},
                                             "AWS_REGION": "us-west-2"})
    assert settings.home == fleet.Location(HUB, "us-west-2")
    assert settings.regions == ("us-west-2", "us-east-1", "eu-west-1")
    assert settings.accounts == (HUB, *SPOKES)
    assert (settings.role_name, settings.external_id) == ("hyperpod-guard-spoke", PREFIX)


@pytest.mark.parametrize("name", READERS)
def test_readers_environment_in_an_organization(synth: Synth, name: str) -> None:
    env = variables(synth(**FLEET_ORG, spokeRoleName="guard-reader", spokeExternalId="ext:id/1"), name)
    assert env[fleet.HOME_ACCOUNT] == ACCOUNT
    assert env[fleet.FLEET_REGIONS] == {"Ref": "AWS::Region"}  # no fleetRegions: the hub's own region
    assert (env[fleet.SPOKE_ROLE_NAME], env[fleet.SPOKE_EXTERNAL_ID]) == ("guard-reader", "ext:id/1")
    assert env["EVENT_ACCOUNTS"] == "*"  # the bus admits the organization; the evaluator believes any account


def test_an_organization_hub_sweeps_the_accounts_it_lists(synth: Synth) -> None:
    """organizationId admits every account's events; the sweep cannot list an organization's accounts, so it
    covers those spokeAccounts names (FLEET_ACCOUNTS), besides the hub's own."""
    env = variables(synth(**FLEET_ORG, spokeAccounts=SPOKES[0]), "sweep")
    assert env["EVENT_ACCOUNTS"] == "*" and env[fleet.FLEET_ACCOUNTS] == SPOKES[0]
    settings = fleet.FleetSettings.from_env({fleet.HOME_ACCOUNT: HUB, fleet.FLEET_REGIONS: "us-east-1",
                                             fleet.FLEET_ACCOUNTS: env[fleet.FLEET_ACCOUNTS], "EVENT_ACCOUNTS": "*",
                                             "AWS_REGION": "us-west-2"})
    assert settings.accounts == (HUB, SPOKES[0])


def fleet_region_grants(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The statements of a function's `...FleetRegionReads` policy (the hub's own account, other regions)."""
    role = role_of(template, name)
    return [statement for logical, r in resources(template, "AWS::IAM::Policy").items()
            if "FleetRegionReads" in logical and {"Ref": role} in r["Properties"]["Roles"]
            for statement in r["Properties"]["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("remediation", [False, True])
def test_readers_read_the_hubs_own_clusters_in_each_fleet_region(synth: Synth, remediation: bool) -> None:
    """The hub's account in another region is read with the functions' own credentials (no spoke role): its
    SageMaker reads are granted in each fleet region, the remediation actions only with remediation on."""
    template = synth(**FLEET, remediation=remediation)

    def arns(kind: str) -> list[str]:
        return sorted(json.dumps(_join("arn:", PARTITION, f":sagemaker:{region}:", ACCOUNT, f":{kind}/*"))
                      for region in ("us-east-1", "eu-west-1"))

    reads = {*SAGEMAKER_READ, *SAGEMAKER_FEATURE_READ} | (set(SAGEMAKER_REMEDIATE) if remediation else set())
    for name in READERS:
        allowed: dict[str, set[str]] = {}  # resource -> actions (CDK may merge statements on the same resources)
        for statement in fleet_region_grants(template, name):
            for resource in as_list(statement["Resource"]):
                allowed.setdefault(json.dumps(resource), set()).update(as_list(statement["Action"]))
        assert sorted(allowed) == sorted([*arns("cluster"), *arns("training-plan")])
        assert all(allowed[arn] == reads for arn in arns("cluster"))
        assert all(allowed[arn] == set(SAGEMAKER_PLAN_READ) for arn in arns("training-plan"))
    assert fleet_region_grants(template, "slack-notifier") == []
    assert fleet_region_grants(synth(**FLEET_ORG), "evaluator") == []  # no fleetRegions: the hub's region only


def test_only_the_readers_and_the_slack_actions_worker_get_the_fleet_environment(synth: Synth) -> None:
    template = synth(**FLEET, **APP_MODE, weeklyDigest=True)
    named = {fn["Properties"].get("FunctionName"): fn["Properties"].get("Environment", {}).get("Variables", {})
             for fn in resources(template, "AWS::Lambda::Function").values()}
    having = {name for name, env in named.items() if set(FLEET_VARIABLES) <= set(env)}
    assert having == {f"{PREFIX}-{name}" for name in (*READERS, "slack-actions")}
    assert not [name for name, env in named.items() if set(FLEET_VARIABLES) & set(env) and name not in having]


# --- sts:AssumeRole on the spoke roles -----------------------------------------------------------

def test_readers_may_assume_each_spoke_role(synth: Synth) -> None:
    template = synth(**FLEET, **APP_MODE)
    grants = assume_role_grants(template)
    assert set(grants) == {role_of(template, name) for name in READERS}  # not the notifier, not slack-actions
    for statements in grants.values():
        ((statement),) = statements
        assert (statement["Effect"], statement["Action"]) == ("Allow", "sts:AssumeRole")
        assert statement["Resource"] == [spoke_role(account) for account in SPOKES]
        assert "Condition" not in statement


def test_readers_may_assume_the_spoke_role_of_the_organizations_accounts(synth: Synth) -> None:
    template = synth(**FLEET_ORG, spokeRoleName="guard-reader")
    grants = assume_role_grants(template)
    assert set(grants) == {role_of(template, name) for name in READERS}
    for statements in grants.values():
        ((statement),) = statements
        assert (statement["Effect"], statement["Action"]) == ("Allow", "sts:AssumeRole")
        assert statement["Resource"] == spoke_role("*", "guard-reader")
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceOrgID": ORG}}


# --- outputs, the deprecated alias ---------------------------------------------------------------

def test_outputs_name_what_a_spoke_needs(synth: Synth) -> None:
    template = synth(**FLEET, spokeExternalId="guard-ext")
    outputs = {name: output["Value"] for name, output in template["Outputs"].items() if name.startswith("Fleet")}
    assert outputs == {
        "FleetEventBusArn": {"Fn::GetAtt": [fleet_bus(template), "Arn"]},
        "FleetHubAccountId": ACCOUNT,
        "FleetExternalId": "guard-ext",
        "FleetSpokeRoleName": fleet.DEFAULT_SPOKE_ROLE,
        "FleetHubRolePattern": _join("arn:", PARTITION, ":iam::", ACCOUNT, f":role/{PREFIX}-*"),
    }


def test_event_accounts_is_spoke_accounts_by_its_old_name(synth: Synth) -> None:
    """`eventAccounts` (deprecated) is merged into `spokeAccounts`: the same hub, repeats dropped."""
    assert synth(eventAccounts=",".join(SPOKES)) == synth(spokeAccounts=SPOKES)
    merged = synth(spokeAccounts=[SPOKES[0]], eventAccounts=f"{SPOKES[1]},{SPOKES[0]}")
    assert merged == synth(spokeAccounts=SPOKES)


# --- invalid context -----------------------------------------------------------------------------

@pytest.mark.parametrize(("context", "named"), [
    ({"spokeAccounts": "11112222333"}, "'spokeAccounts'"),
    ({"spokeAccounts": ["111122223333", "arn:aws:iam::444455556666:root"]}, "'spokeAccounts'"),
    ({"eventAccounts": "12345678901"}, "'eventAccounts'"),
    ({"organizationId": "r-abcd"}, "'organizationId'"),
    ({"organizationId": "o-ABCDEFGHIJ"}, "'organizationId'"),
    ({"organizationId": "o-abc"}, "'organizationId'"),
    ({**FLEET, "fleetRegions": "us-east-1,Frankfurt"}, "'fleetRegions'"),
    ({"fleetRegions": "us-east-1"}, "needs 'spokeAccounts' or 'organizationId'"),
    ({"spokeRoleName": ""}, "'spokeRoleName'"),
    ({"spokeRoleName": "role/with-path"}, "'spokeRoleName'"),
    ({"spokeRoleName": "r" * 65}, "'spokeRoleName'"),
    ({"spokeExternalId": "x"}, "'spokeExternalId'"),
    ({"spokeExternalId": "has space"}, "'spokeExternalId'"),
    ({"spokeExternalId": "e" * 1225}, "'spokeExternalId'"),
], ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:60])
def test_invalid_fleet_context(tmp_path: Path, context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_stack(tmp_path, **context)
    assert named in str(raised.value)
