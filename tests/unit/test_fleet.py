"""fleet.py: where a cluster lives (Location), its key (bare at home, `name@account/region` elsewhere) and the
hub's settings from the environment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperpod_guard.fleet import (
    ACCOUNT_ID,
    DEFAULT_SPOKE_ROLE,
    REGION_NAME,
    FleetSettings,
    Location,
    cluster_key,
    location_of,
    name_of,
    split_key,
)

HOME = Location("111122223333", "us-west-2")
SPOKE = Location("444455556666", "us-east-1")

#: HyperPod cluster names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$ (never '@' or '/')
names = st.from_regex(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", fullmatch=True)
accounts = st.from_regex(ACCOUNT_ID, fullmatch=True)
regions = st.from_regex(REGION_NAME, fullmatch=True)
locations = st.builds(Location, accounts, regions)


# --- Location ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arn", "location"), [
    ("arn:aws:sagemaker:us-east-1:444455556666:cluster/abc123", SPOKE),
    ("arn:aws-us-gov:sagemaker:us-gov-west-1:444455556666:cluster/x", Location("444455556666", "us-gov-west-1")),
    ("arn:aws-cn:sagemaker:cn-north-1:444455556666:cluster/x", Location("444455556666", "cn-north-1")),
    ("arn:aws:ec2:us-east-1:444455556666:instance/i-1", None),  # not SageMaker's
    ("arn:aws:sagemaker:us-east-1:4444:cluster/x", None),  # not an account id
    ("", None),
    (None, None),
])
def test_location_of_an_arn(arn, location):
    assert Location.of_arn(arn) == location


@pytest.mark.parametrize("text", ["444455556666", "444455556666/", "/us-east-1", "4444/us-east-1",
                                  "444455556666/US-EAST-1", "444455556666/us-east-1/x", "444455556666:us-east-1"])
def test_parse_refuses_what_is_not_account_slash_region(text):
    with pytest.raises(ValueError, match="not an account/region"):
        Location.parse(text)


@given(locations)
def test_a_location_reads_back_from_its_text(location):
    assert str(location) == f"{location.account}/{location.region}"
    assert Location.parse(str(location)) == location


# --- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("location", "home", "key"), [
    (HOME, HOME, "ml-prod"),  # home: the bare name, as a single-account deployment always stored it
    (SPOKE, HOME, "ml-prod@444455556666/us-east-1"),
    (Location(HOME.account, "eu-west-1"), HOME, "ml-prod@111122223333/eu-west-1"),  # home account, other region
    (Location(SPOKE.account, HOME.region), HOME, "ml-prod@444455556666/us-west-2"),  # other account, home region
    (None, HOME, "ml-prod"),  # location unknown
    (SPOKE, None, "ml-prod"),  # no fleet: nothing is qualified
])
def test_cluster_key(location, home, key):
    assert cluster_key("ml-prod", location, home) == key
    assert name_of(key) == "ml-prod"


def test_same_named_clusters_of_two_accounts_have_two_keys():
    assert cluster_key("ml-prod", SPOKE, HOME) != cluster_key("ml-prod", Location("777788889999", SPOKE.region), HOME)


@given(names, locations, st.none() | locations)
def test_split_key_gives_back_the_name_and_location(name, location, home):
    key = cluster_key(name, location, home)
    at_home = home is None or location == home
    assert split_key(key) == (name, None if at_home else location)
    assert name_of(key) == name
    assert location_of(key, home) == (home if at_home else location)


@given(names, locations)
def test_a_home_key_is_the_bare_name(name, home):
    assert cluster_key(name, home, home) == name
    assert split_key(name) == (name, None)
    assert location_of(name) is None  # no home given: unknown


def test_a_qualified_key_with_a_bad_location_is_refused():
    with pytest.raises(ValueError, match="not an account/region"):
        split_key("ml-prod@nowhere")


# --- FleetSettings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), [
    pytest.param({}, FleetSettings(), id="nothing"),
    pytest.param({"AWS_REGION": "us-west-2"}, FleetSettings(regions=("us-west-2",)), id="single-account"),
    pytest.param({"AWS_DEFAULT_REGION": "eu-west-1"}, FleetSettings(regions=("eu-west-1",)), id="default-region"),
    pytest.param({"AWS_REGION": "us-west-2", "HOME_ACCOUNT": HOME.account}, FleetSettings(regions=("us-west-2",)),
                 id="home-without-regions-is-no-fleet"),
    pytest.param({"AWS_REGION": "us-west-2", "FLEET_REGIONS": "us-east-1"}, FleetSettings(regions=("us-west-2",)),
                 id="regions-without-home-is-no-fleet"),
    pytest.param({"HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": "us-east-1"}, FleetSettings(),
                 id="no-own-region-is-no-fleet"),
    pytest.param(
        {"AWS_REGION": "us-west-2", "HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": " us-east-1, us-west-2,,us-east-1",
         "FLEET_ACCOUNTS": f"{SPOKE.account}, 1234, {HOME.account},{SPOKE.account}",
         "SPOKE_ROLE_NAME": "reader", "SPOKE_EXTERNAL_ID": "hyperpod-guard"},
        FleetSettings(home=HOME, regions=("us-west-2", "us-east-1"), accounts=(HOME.account, SPOKE.account),
                      role_name="reader", external_id="hyperpod-guard"),
        id="hub"),
    pytest.param(
        {"AWS_REGION": "us-west-2", "HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": "us-west-2",
         "EVENT_ACCOUNTS": f"{HOME.account},{SPOKE.account}", "SPOKE_ROLE_NAME": " ", "SPOKE_EXTERNAL_ID": ""},
        FleetSettings(home=HOME, regions=("us-west-2",), accounts=(HOME.account, SPOKE.account)),
        id="event-accounts-and-defaults"),
    pytest.param(
        {"AWS_REGION": "us-west-2", "HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": "us-west-2",
         "FLEET_ACCOUNTS": SPOKE.account, "EVENT_ACCOUNTS": "777788889999"},
        FleetSettings(home=HOME, regions=("us-west-2",), accounts=(HOME.account, SPOKE.account)),
        id="fleet-accounts-win"),
    pytest.param(
        {"AWS_REGION": "us-west-2", "HOME_ACCOUNT": HOME.account, "FLEET_REGIONS": "us-west-2", "EVENT_ACCOUNTS": "*"},
        FleetSettings(home=HOME, regions=("us-west-2",), accounts=(HOME.account,)),
        id="organization-mode"),
])
def test_from_env(env, expected):
    settings = FleetSettings.from_env(env)
    assert settings == expected
    assert settings.enabled is (expected.home is not None)


def test_from_env_reads_the_process_environment(monkeypatch):
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "HOME_ACCOUNT", "FLEET_REGIONS", "FLEET_ACCOUNTS",
                "EVENT_ACCOUNTS", "SPOKE_ROLE_NAME", "SPOKE_EXTERNAL_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("HOME_ACCOUNT", HOME.account)
    monkeypatch.setenv("FLEET_REGIONS", "eu-west-1")
    assert FleetSettings.from_env().home == HOME
    assert FleetSettings.from_env().regions == ("us-west-2", "eu-west-1")


def test_role_arn():
    assert FleetSettings().role_arn(SPOKE.account) == f"arn:aws:iam::{SPOKE.account}:role/{DEFAULT_SPOKE_ROLE}"
    assert FleetSettings(role_name="r").role_arn(SPOKE.account, "aws-cn") == f"arn:aws-cn:iam::{SPOKE.account}:role/r"
