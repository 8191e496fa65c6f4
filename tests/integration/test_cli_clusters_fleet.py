"""`hyperpod-guard clusters` as the fleet inventory (--regions, --all-regions, --accounts), run as a user runs it
(a subprocess) against moto in server mode: two accounts (moto's default, the caller's, and a spoke) and two
regions.

moto keeps clusters per account and region (sagemaker_backends[account][region]); its STS AssumeRole hands out
credentials that moto maps to the role's account, so the command's SageMaker calls with them reach the spoke's
backend, and moto records each AssumeRole (role ARN, external id, session name) in the role account's STS
backend: the tests read that server-side record, not what the client says it sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperpod_guard.cli.clusters import read_accounts
from hyperpod_guard.cli.common import BadInput
from hyperpod_guard.local.hyperpod_state import ACCOUNT, put_cluster
from tests.conftest import REGION
from tests.integration.test_cli_check import (  # noqa: F401 (fixtures)
    ACCESS_DENIED_SHAPE,
    RECORDING,
    assert_one_line_error,
    env,
    no_credentials,
)
from tests.integration.test_cli_clusters import HEADERS, on_a_terminal, run
from tests.runtime_fixtures import scenario

SPOKE = "222233334444"
OTHER_REGION = "eu-west-1"
ROLE = f"arn:aws:iam::{SPOKE}:role/hyperpod-guard-spoke"
#: (account, region, cluster, scenario): ml-prod twice, in two accounts of the same region
CLUSTERS = [
    (ACCOUNT, REGION, "ml-prod", "healthy-eks-cluster"),
    (ACCOUNT, REGION, "rl-research", "degraded-group-below-min"),
    (ACCOUNT, OTHER_REGION, "speech-prod", "rollback-complete"),
    (SPOKE, REGION, "ml-prod", "autoscaling-failed"),
    (SPOKE, OTHER_REGION, "nova-forge", "restricted-group-degraded"),
]
EVERYWHERE = ("--regions", f"{REGION},{OTHER_REGION}")


def serve_fleet() -> None:
    for account, region, name, source in CLUSTERS:
        _, snapshot = scenario(source)
        del snapshot["ClusterArn"]  # moto's ARN for it: the account and region it lives in
        put_cluster({**snapshot, "ClusterName": name}, region=region, account=account)


def accounts_file(tmp_path: Path, text: str, name: str = "accounts.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def located(stdout: str) -> list[tuple[str, str, str]]:
    """(account, region, cluster) of every cluster of a JSON inventory, in its order."""
    return [(c["account"], c["region"], c["cluster"]) for c in json.loads(stdout)["clusters"]]


def assumed_roles(account: str) -> list[tuple[str, str | None, str]]:
    """moto's record of the AssumeRole calls into `account`: (role ARN, external id, session name)."""
    from moto.sts.models import sts_backends

    return [(r.role_arn, r.external_id, r.session_name) for r in sts_backends[account]["aws"].assumed_roles]


@pytest.fixture
def refusing_roles(monkeypatch):
    """Make moto's AssumeRole answer AccessDenied for the given role ARNs."""
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    refused: set[str] = set()
    assume_role = STSBackend.assume_role

    def assume(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs["role_arn"] in refused:
            raise STSClientError("AccessDenied", f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to "
                                 f"perform: sts:AssumeRole on resource: {kwargs['role_arn']}")
        return assume_role(self, *args, **kwargs)

    monkeypatch.setattr(STSBackend, "assume_role", assume)
    return refused.add


@pytest.fixture
def refusing_in(monkeypatch):
    """Make moto answer AccessDenied for one SageMaker operation in one account and region."""
    from moto.core.exceptions import ServiceException
    from moto.sagemaker.models import sagemaker_backends

    class AccessDenied(ServiceException):  # defined here: moto serialises it with SageMaker's model
        code = "AccessDeniedException"

    def refuse(account: str, region: str, operation: str, action: str) -> None:
        def denied(*args: Any, **kwargs: Any) -> Any:
            raise AccessDenied(f"User: arn:aws:iam::{account}:role/x is not authorized to perform: sagemaker:{action}")

        monkeypatch.setattr(sagemaker_backends[account][region], operation, denied)

    return refuse


# --- the inventory ---------------------------------------------------------------------------------


def test_every_cluster_of_two_accounts_and_two_regions_once_with_its_location(env, tmp_path):
    serve_fleet()
    spokes = accounts_file(tmp_path, f"# the spokes\n{SPOKE}\n\n")
    result = run(env, *EVERYWHERE, "--accounts", spokes, "--external-id", "ext-1", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    output = json.loads(result.stdout)
    assert (output["accounts"], output["regions"], output["errors"]) == (
        [ACCOUNT, SPOKE], [OTHER_REGION, REGION], [])
    # each once, by account, region, name; the two ml-prod side by side, each with its own findings
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS)
    for cluster in output["clusters"]:
        assert cluster["arn"] == (f"arn:aws:sagemaker:{cluster['region']}:{cluster['account']}:"
                                  f"cluster/{cluster['cluster']}")
    prod = {c["account"]: c["findings"]["total"] for c in output["clusters"] if c["cluster"] == "ml-prod"}
    assert prod == {ACCOUNT: 0, SPOKE: 1}  # healthy at home, autoscaling-failed in the spoke
    # one AssumeRole for the spoke's two regions, with the role, the external id and the hub's session name;
    # the caller's own account read with its own credentials
    assert assumed_roles(SPOKE) == [(ROLE, "ext-1", "hyperpod-guard")]
    assert assumed_roles(ACCOUNT) == []


def test_the_table_has_account_and_region_columns(env, tmp_path):
    serve_fleet()
    result = run(env, *EVERYWHERE, "--accounts", accounts_file(tmp_path, f"{SPOKE}\n"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "5 cluster(s) in 2 region(s) of 2 account(s)\n"
    lines = result.stdout.splitlines()
    assert lines[0].split() == HEADERS
    assert [tuple(line.split()[:3]) for line in lines[2:]] == sorted((a, r, n) for a, r, n, _ in CLUSTERS)


def test_without_accounts_only_the_callers_account_and_no_assume_role(env):
    serve_fleet()
    result = run(env, *EVERYWHERE, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"] == [ACCOUNT]
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS if a == ACCOUNT)
    assert assumed_roles(SPOKE) == assumed_roles(ACCOUNT) == []


def test_role_name_and_no_external_id(env, tmp_path):
    serve_fleet()
    result = run(env, "--region", OTHER_REGION, "--regions", OTHER_REGION, "--role-name", "platform-reader",
                 "--accounts", accounts_file(tmp_path, f"{SPOKE}\n"), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert located(result.stdout) == [(ACCOUNT, OTHER_REGION, "speech-prod"), (SPOKE, OTHER_REGION, "nova-forge")]
    assert assumed_roles(SPOKE) == [(f"arn:aws:iam::{SPOKE}:role/platform-reader", None, "hyperpod-guard")]


def test_the_callers_account_in_the_file_is_read_with_its_own_credentials(env, tmp_path):
    serve_fleet()
    result = run(env, *EVERYWHERE, "--accounts", accounts_file(tmp_path, f"{ACCOUNT}\n{SPOKE}\n{SPOKE}\n"),
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS)
    assert assumed_roles(ACCOUNT) == [] and len(assumed_roles(SPOKE)) == 1


def test_only_reads(env, tmp_path):
    serve_fleet()
    record = tmp_path / "calls.json"
    result = subprocess.run([sys.executable, "-c", RECORDING, str(record), "clusters", *EVERYWHERE,
                             "--accounts", accounts_file(tmp_path, f"{SPOKE}\n")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    calls = json.loads(record.read_text())
    assert sorted(set(calls)) == ["sagemaker:DescribeCluster", "sagemaker:ListClusters", "sts:AssumeRole",
                                  "sts:GetCallerIdentity"]
    assert (calls.count("sagemaker:ListClusters"), calls.count("sagemaker:DescribeCluster"),
            calls.count("sts:AssumeRole"), calls.count("sts:GetCallerIdentity")) == (4, 5, 1, 1)


# --- what cannot be read -----------------------------------------------------------------------------


#: moto serialises an STS error it has no shape for, and says so
STS_ERROR_SHAPE = pytest.mark.filterwarnings("ignore:Exception\\(STSClientError\\):UserWarning")


@STS_ERROR_SHAPE
def test_an_account_whose_role_cannot_be_assumed_is_one_error_line_and_the_others_list(
        env, tmp_path, refusing_roles):
    serve_fleet()
    locked = "333344445555"
    refusing_roles(f"arn:aws:iam::{locked}:role/hyperpod-guard-spoke")
    spokes = accounts_file(tmp_path, f"{SPOKE}\n{locked}\n")
    result = run(env, *EVERYWHERE, "--accounts", spokes)
    assert result.returncode == 1, result.stderr
    error, summary = result.stderr.splitlines()
    assert error.startswith(f"error: {locked}: cannot assume arn:aws:iam::{locked}:role/hyperpod-guard-spoke: "
                            "An error occurred (AccessDenied) when calling the AssumeRole operation: User: ")
    assert summary == "5 cluster(s) in 2 region(s) of 3 account(s)"
    assert [tuple(line.split()[:3]) for line in result.stdout.splitlines()[2:]] == sorted(
        (a, r, n) for a, r, n, _ in CLUSTERS)
    as_json = run(env, *EVERYWHERE, "--accounts", spokes, "--format", "json")
    assert as_json.returncode == 1
    (refused,) = json.loads(as_json.stdout)["errors"]
    assert (refused["account"], refused["region"], refused["cluster"]) == (locked, None, None)
    assert "(AccessDenied) when calling the AssumeRole operation" in refused["error"]
    assert len(located(as_json.stdout)) == len(CLUSTERS)


@ACCESS_DENIED_SHAPE
def test_a_region_that_cannot_be_listed_is_an_error_line_for_that_location(env, tmp_path, refusing_in):
    serve_fleet()
    refusing_in(SPOKE, OTHER_REGION, "list_clusters", "ListClusters")
    result = run(env, *EVERYWHERE, "--accounts", accounts_file(tmp_path, f"{SPOKE}\n"), "--format", "json")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {SPOKE}/{OTHER_REGION}: SageMaker refused the request: An error occurred "
                           "(AccessDeniedException) when calling the ListClusters operation: ")
    output = json.loads(result.stdout)
    assert [(e["account"], e["region"], e["cluster"]) for e in output["errors"]] == [(SPOKE, OTHER_REGION, None)]
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS if (a, r) != (SPOKE, OTHER_REGION))


@ACCESS_DENIED_SHAPE
def test_a_cluster_that_cannot_be_described_is_an_error_line_naming_it(env, tmp_path, refusing_in):
    serve_fleet()
    refusing_in(ACCOUNT, OTHER_REGION, "describe_cluster", "DescribeCluster")
    result = run(env, *EVERYWHERE, "--format", "json")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {ACCOUNT}/{OTHER_REGION}: cluster speech-prod: SageMaker refused the request: ")
    assert located(result.stdout) == [(ACCOUNT, REGION, "ml-prod"), (ACCOUNT, REGION, "rl-research")]


# --- --all-regions -------------------------------------------------------------------------------------


def enabled_sagemaker_regions() -> list[str]:
    """What --all-regions must list on moto: botocore's SageMaker regions that moto's DescribeRegions names."""
    import boto3
    from moto.ec2.models import ec2_backends

    enabled = {r.name for r in ec2_backends[ACCOUNT][REGION].describe_regions()}
    return sorted(r for r in boto3.session.Session().get_available_regions("sagemaker") if r in enabled)


def test_all_regions_lists_every_enabled_sagemaker_region(env, tmp_path):
    serve_fleet()
    result = run(env, "--all-regions", "--accounts", accounts_file(tmp_path, f"{SPOKE}\n"), "--format", "json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["regions"] == enabled_sagemaker_regions() and len(output["regions"]) > 2
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS)
    assert len(assumed_roles(SPOKE)) == 1  # one AssumeRole for all of the spoke's regions


@ACCESS_DENIED_SHAPE
def test_all_regions_without_describe_regions_lists_botocores_regions_with_a_warning(env, monkeypatch):
    import boto3
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import ec2_backends

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")

    monkeypatch.setattr(ec2_backends[ACCOUNT][REGION], "describe_regions", denied)
    serve_fleet()
    result = run(env, "--all-regions", "--format", "json")
    assert result.returncode == 0, result.stderr
    known = boto3.session.Session().get_available_regions("sagemaker")
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("warning: cannot list the account's enabled regions (An error occurred "
                              "(UnauthorizedOperation) when calling the DescribeRegions operation: ")
    assert warning.endswith(f"listing every region SageMaker is in ({len(known)}), those not enabled will fail")
    assert json.loads(result.stdout)["regions"] == sorted(known)
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS if a == ACCOUNT)


# --- filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("filters", "kept"), [
    pytest.param(("--account", SPOKE), {(SPOKE, REGION), (SPOKE, OTHER_REGION)}, id="account"),
    pytest.param(("--region", OTHER_REGION), {(ACCOUNT, OTHER_REGION), (SPOKE, OTHER_REGION)}, id="region"),
    pytest.param(("--account", f"{ACCOUNT},{SPOKE}", "--region", REGION), {(ACCOUNT, REGION), (SPOKE, REGION)},
                 id="comma-list"),
    pytest.param(("--account", SPOKE, "--region", REGION, "--region", OTHER_REGION),
                 {(SPOKE, REGION), (SPOKE, OTHER_REGION)}, id="repeated"),
    pytest.param(("--account", "2222*"), {(SPOKE, REGION), (SPOKE, OTHER_REGION)}, id="glob"),
    pytest.param(("--account", "9999*"), set(), id="none"),
])
def test_account_and_region_filters(env, tmp_path, filters, kept):
    serve_fleet()
    result = run(env, *EVERYWHERE, "--accounts", accounts_file(tmp_path, f"{SPOKE}\n"), *filters,
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS if (a, r) in kept)
    output = json.loads(result.stdout)
    assert set(output["accounts"]) == {a for a, _ in kept}
    assert set(output["regions"]) == ({r for _, r in kept} or {REGION, OTHER_REGION})
    # a filtered-out spoke is not even assumed
    assert len(assumed_roles(SPOKE)) == (1 if SPOKE in output["accounts"] else 0)


def test_account_filter_on_a_plain_run(env):
    serve_fleet()
    assert located(run(env, "--account", ACCOUNT, "--format", "json").stdout) == [
        (ACCOUNT, REGION, "ml-prod"), (ACCOUNT, REGION, "rl-research")]
    other = run(env, "--account", SPOKE)
    assert (other.returncode, other.stdout) == (0, f"no clusters in {REGION}\n")


def test_several_regions_given_as_region_list_them_all(env):
    serve_fleet()
    result = run(env, "--region", f"{REGION},{OTHER_REGION}", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert located(result.stdout) == sorted((a, r, n) for a, r, n, _ in CLUSTERS if a == ACCOUNT)


@pytest.mark.parametrize(("args", "why"), [
    (("--account", "1234"), "not an account id or glob: '1234'"),
    (("--account", f"{SPOKE},abc"), "not an account id or glob: 'abc'"),
    (("--region", "uswest2"), "not a region name: 'uswest2'"),
    (("--regions", "us-west-2,x"), "not a region name: 'x'"),
    (("--regions", ","), "not a region name: ','"),
    (("--regions", REGION, "--all-regions"), "not allowed with argument --regions"),
])
def test_malformed_filters_are_usage_errors(no_credentials, args, why):
    result = run(no_credentials, *args)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("hyperpod-guard clusters: error: argument ")
    assert why in result.stderr


# --- the accounts file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "accounts"), [
    pytest.param(f"# spokes\n{SPOKE}\n\n  333344445555  # staging\n{SPOKE}\n", (SPOKE, "333344445555"), id="lines"),
    pytest.param(f'["{SPOKE}", "333344445555"]', (SPOKE, "333344445555"), id="json"),
    pytest.param(f"name,Account\nprod,{SPOKE}\n# gone\nstaging,333344445555\n", (SPOKE, "333344445555"), id="csv"),
    pytest.param(f"account\n{SPOKE}\n", (SPOKE,), id="csv-one-column"),
])
def test_accounts_file_formats(tmp_path, text, accounts):
    assert read_accounts(accounts_file(tmp_path, text)) == accounts


@pytest.mark.parametrize(("text", "message"), [
    pytest.param(f"{SPOKE}\n\n1234\n", "line 3: not a 12-digit account id: '1234'", id="short"),
    pytest.param(f"{SPOKE}, 333344445555\n", f"line 1: not a 12-digit account id: '{SPOKE}, 333344445555'",
                 id="two-on-a-line"),
    pytest.param(f"name,account\nprod,{SPOKE}\nstaging\n", "line 3: not a 12-digit account id: ''", id="csv-short-row"),
    pytest.param(f'["{SPOKE}", 333344445555]', "item 1: not a 12-digit account id (a string): 333344445555",
                 id="json-number"),
    pytest.param(f'["{SPOKE}",\n', "line 2: not JSON: ", id="json-broken"),
    pytest.param("# nobody\n\n", "lists no account", id="empty"),
])
def test_accounts_file_errors_name_the_line(tmp_path, text, message):
    path = accounts_file(tmp_path, text)
    with pytest.raises(BadInput) as raised:
        read_accounts(path)
    assert str(raised.value).startswith(f"accounts file {path!r}")
    assert message in str(raised.value)


def test_a_bad_accounts_file_is_bad_input_before_any_call(no_credentials, tmp_path):
    path = accounts_file(tmp_path, f"{SPOKE}\n# next\nabc\n")
    assert_one_line_error(run(no_credentials, "--regions", REGION, "--accounts", path),
                          f"accounts file {path!r}, line 3: not a 12-digit account id: 'abc'")
    missing = str(tmp_path / "missing.txt")
    line = assert_one_line_error(run(no_credentials, "--accounts", missing))
    assert line.startswith(f"error: cannot read accounts file {missing!r}: ")


def test_accounts_from_standard_input(env):
    serve_fleet()
    result = run(env, *EVERYWHERE, "--accounts", "-", "--format", "json", input=f"{SPOKE}\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"] == [ACCOUNT, SPOKE]


# --- progress and help ---------------------------------------------------------------------------------


def test_progress_counts_locations_listed_and_clusters_read(env, tmp_path):
    serve_fleet()
    command = [sys.executable, "-m", "hyperpod_guard.cli", "clusters", *EVERYWHERE,
               "--accounts", accounts_file(tmp_path, f"{SPOKE}\n")]
    result, text = on_a_terminal(command, env)
    assert result.returncode == 0
    assert "\r\x1b[K4/4 locations listed, 5/5 clusters read" in text
    assert text.endswith("\r\x1b[K5 cluster(s) in 2 region(s) of 2 account(s)\r\n")
    assert "\x1b" not in result.stdout and "listed" not in result.stdout


def test_help_says_what_it_reads_and_that_it_writes_nothing():
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "clusters", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--regions R1,R2", "--all-regions", "--accounts FILE", "--role-name NAME", "--external-id ID",
                   "--account GLOB", "--region REGION"):
        assert option in result.stdout
    text = " ".join(result.stdout.split())
    for read in ("sts:GetCallerIdentity", "ec2:DescribeRegions", "sts:AssumeRole", "sagemaker:ListClusters",
                 "sagemaker:DescribeCluster", "Writes nothing"):
        assert read in text
    assert "1 the fleet inventory could not read some accounts, regions or clusters" in text
