"""The fleet: one hub watching HyperPod clusters in many accounts and regions.

A cluster name is unique only within one account and region, so wherever the hub keeps or matches a
cluster it uses the cluster's **key**: its name for a cluster of the hub's own account and region (the
*home* location, exactly what a single-account deployment has always stored, so a deployment that becomes
a hub keeps its alerts, silences and fingerprints), and `name@account/region` for any other. HyperPod
cluster names never hold '@' or '/', so a key reads back unambiguously (`split_key`). The key is what the
ledger's partitions, fingerprints, grouping, approvals and work messages carry; `location_of` says where
a key's cluster lives, `name_of` what to call DescribeCluster with.

`FleetSettings` is the environment the stack sets on the functions that read clusters (HOME_ACCOUNT,
FLEET_REGIONS, FLEET_ACCOUNTS, SPOKE_ROLE_NAME, SPOKE_EXTERNAL_ID); unset, as in a single-account deployment,
local runs and all but the demo's last scenario, there is no fleet: every cluster is home, nothing qualified.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

#: AWS account ids are 12 digits; region names as botocore spells them
ACCOUNT_ID = re.compile(r"[0-9]{12}")
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):")

FLEET_REGIONS = "FLEET_REGIONS"
SPOKE_ROLE_NAME = "SPOKE_ROLE_NAME"
SPOKE_EXTERNAL_ID = "SPOKE_EXTERNAL_ID"
HOME_ACCOUNT = "HOME_ACCOUNT"
FLEET_ACCOUNTS = "FLEET_ACCOUNTS"
EVENT_ACCOUNTS = "EVENT_ACCOUNTS"
#: the spoke role the CDK spoke stack creates, unless `spokeRoleName` says otherwise
DEFAULT_SPOKE_ROLE = "hyperpod-guard-spoke"


@dataclass(frozen=True, order=True)
class Location:
    """Where a cluster lives: an AWS account and a region."""

    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.account}/{self.region}"

    @classmethod
    def of_arn(cls, arn: str | None) -> Location | None:
        """The location a SageMaker ARN names, or None (no ARN, or not one of SageMaker's)."""
        found = _ARN.match(arn or "")
        return cls(found["account"], found["region"]) if found else None

    @classmethod
    def parse(cls, text: str) -> Location:
        """`account/region` (as str() writes it) -> Location; ValueError naming what is wrong."""
        account, _, region = text.partition("/")
        if not ACCOUNT_ID.fullmatch(account) or not REGION_NAME.fullmatch(region):
            raise ValueError(f"not an account/region (e.g. 111122223333/us-west-2): {text!r}")
        return cls(account, region)


def cluster_key(name: str, location: Location | None, home: Location | None) -> str:
    """The key of cluster `name` at `location`: the bare name at home (or when either location is unknown:
    no fleet), else `name@account/region`."""
    return qualified(name, None if home is None or location == home else location)


def qualified(name: str, elsewhere: Location | None) -> str:
    """`name@account/region` for a cluster `elsewhere` than home; the bare name for None (home)."""
    return f"{name}@{elsewhere}" if elsewhere is not None else name


def split_key(key: str) -> tuple[str, Location | None]:
    """A key -> (cluster name, its location; None for a home cluster's bare name)."""
    name, at, where = key.partition("@")
    return (name, Location.parse(where)) if at else (key, None)


def name_of(key: str) -> str:
    """The cluster name a key stands for (what the SageMaker API is called with)."""
    return key.partition("@")[0]


def location_of(key: str, home: Location | None = None) -> Location | None:
    """Where a key's cluster lives: its own location if qualified, else `home` (None: unknown)."""
    return split_key(key)[1] or home


@dataclass(frozen=True)
class FleetSettings:
    """Who the hub is and what it watches, from the functions' environment (the stack sets it)."""

    #: the hub's own account and region; None when not a hub (no fleet: nothing is qualified)
    home: Location | None = None
    #: the regions the fleet covers (the sweep lists each); the home region when not a hub
    regions: tuple[str, ...] = ()
    #: the accounts the sweep covers besides home (the spokes): FLEET_ACCOUNTS, else EVENT_ACCOUNTS' ids
    accounts: tuple[str, ...] = ()
    #: the role each spoke account has for the hub (the CDK spoke stack's), and its external id
    role_name: str = DEFAULT_SPOKE_ROLE
    external_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.home is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FleetSettings:
        env = os.environ if env is None else env
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        regions = tuple(dict.fromkeys(r.strip() for r in env.get(FLEET_REGIONS, "").split(",") if r.strip()))
        account = env.get(HOME_ACCOUNT, "").strip()
        if not (regions and account and region):
            return cls(regions=(region,) if region else ())
        listed = env.get(FLEET_ACCOUNTS) or env.get(EVENT_ACCOUNTS, "")
        accounts = tuple(dict.fromkeys(a.strip() for a in listed.split(",") if ACCOUNT_ID.fullmatch(a.strip())))
        return cls(home=Location(account, region), regions=tuple(dict.fromkeys((region, *regions))),
                   accounts=tuple(dict.fromkeys((account, *accounts))),
                   role_name=env.get(SPOKE_ROLE_NAME, "").strip() or DEFAULT_SPOKE_ROLE,
                   external_id=env.get(SPOKE_EXTERNAL_ID, "").strip() or None)

    def role_arn(self, account: str, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{account}:role/{self.role_name}"
