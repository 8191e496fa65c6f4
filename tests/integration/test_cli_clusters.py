"""`hyperpod-guard clusters`, run as a user runs it (a subprocess) against moto.

The moto server runs in this process, so the clusters each test wants are injected into its
backend with put_cluster() (tags too: moto answers ListTags from the cluster's `tags`); the
command reaches them only through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperpod_guard.cli.clusters import Progress
from hyperpod_guard.local.hyperpod_state import ACCOUNT, put_cluster
from tests.conftest import REGION
from tests.integration.test_cli_check import (  # noqa: F401 (fixtures)
    ACCESS_DENIED_SHAPE,
    RECORDING,
    assert_one_line_error,
    env,
    no_credentials,
    refusing,
)
from tests.runtime_fixtures import scenario

HEADERS = ["ACCOUNT", "REGION", "CLUSTER", "STATUS", "ORCHESTRATOR", "GROUPS", "FINDINGS"]
#: the scenarios `fleet()` serves, each with its row as the table must show it
FLEET = {
    "autoscaling-failed": ("burst-infer", "InService", "eks", "2/2", "1 (1 critical)"),
    "degraded-group-below-min": ("rl-research", "InService", "eks", "2/2", "1 (1 critical)"),
    "healthy-eks-cluster": ("llm-train-prod", "InService", "eks", "2/2", "0"),
    "restricted-group-degraded": ("nova-forge", "InService", "eks", "1/2", "2 (2 warning)"),
    "rollback-complete": ("speech-prod", "InService", "eks", "2/2", "1 (1 warning)"),
}


def run(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "clusters", *args],
                          capture_output=True, text=True, timeout=120, env=env, **kwargs)


def serve(name: str, *, tags: dict[str, str] | None = None, rename: str | None = None) -> dict[str, Any]:
    """Serve a scenario's cluster under moto's ARN for it (ListTags looks the cluster up by that ARN)."""
    _, snapshot = scenario(name)
    del snapshot["ClusterArn"]
    if rename:
        snapshot["ClusterName"] = rename
    cluster = put_cluster(snapshot, region=REGION)
    cluster.tags = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    return snapshot


def rows(stdout: str, location: tuple[str, str] = (ACCOUNT, REGION)) -> list[list[str]]:
    """The table's rows as cells from CLUSTER on (a FINDINGS cell may hold spaces: it is the rest of the line);
    every row's ACCOUNT and REGION must be `location`."""
    lines = stdout.splitlines()
    assert lines[0].split() == HEADERS, stdout
    assert set(lines[1].replace(" ", "")) == {"-"}
    cells = [line.split(maxsplit=6) for line in lines[2:]]
    assert {tuple(row[:2]) for row in cells} <= {location}, stdout
    return [row[2:] for row in cells]


def fleet() -> dict[str, tuple[str, ...]]:
    """Serve FLEET's clusters; their expected rows by cluster name."""
    expected = {}
    for name, row in FLEET.items():
        assert serve(name)["ClusterName"] == row[0]
        expected[row[0]] = row
    return expected


# --- the table and the JSON --------------------------------------------------------------------


def test_table_lists_every_cluster_with_status_groups_and_findings(env):
    expected = fleet()
    result = run(env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{len(expected)} cluster(s) in {REGION}\n"  # no progress: stderr is not a terminal
    assert rows(result.stdout) == [list(expected[name]) for name in sorted(expected)]


def test_json_has_the_counts_by_severity_and_restricted_groups_count(env):
    fleet()
    result = run(env, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    output = json.loads(result.stdout)
    assert output["region"] == REGION
    by_name = {c["cluster"]: c for c in output["clusters"]}
    assert list(by_name) == sorted(by_name)
    assert by_name["nova-forge"] == {
        "cluster": "nova-forge", "account": ACCOUNT, "region": REGION, "arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:cluster/nova-forge",
        "status": "InService", "orchestrator": "eks", "instance_groups": {"in_service": 1, "total": 2},
        "findings": {"total": 2, "critical": 0, "warning": 2, "info": 0}, "tags": None,
    }
    assert by_name["burst-infer"]["findings"] == {"total": 1, "critical": 1, "warning": 0, "info": 0}
    assert by_name["llm-train-prod"]["findings"]["total"] == 0


def test_slurm_and_failed_clusters(env):
    slurm = serve("slurm-cluster-no-orchestrator")
    _, failed = scenario("cluster-failed-with-message")
    del failed["ClusterArn"]  # moto's ARN for it: its account is the one listed
    put_cluster(failed, region=REGION)
    result = run(env)
    assert result.returncode == 0, result.stderr
    cells = {row[0]: row for row in rows(result.stdout)}
    groups = slurm["InstanceGroups"]
    in_service = sum(g.get("Status") == "InService" for g in groups)
    assert cells[slurm["ClusterName"]][1:] == [slurm["ClusterStatus"], "slurm", f"{in_service}/{len(groups)}", "0"]
    # Failed cluster and its Failed group: cluster-failed, status-failed (critical), below-target (warning)
    assert cells[failed["ClusterName"]][1:4] == ["Failed", "eks" if "Orchestrator" in failed else "slurm", "0/1"]
    assert cells[failed["ClusterName"]][4] == "3 (2 critical, 1 warning)"


def test_no_clusters(env):
    result = run(env)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"no clusters in {REGION}\n", "")
    as_json = run(env, "--format", "json")
    assert json.loads(as_json.stdout) == {"region": REGION, "clusters": [], "errors": []}


def test_every_page_of_list_clusters_is_read(env):
    _, snapshot = scenario("healthy-eks-cluster")
    names = [f"c-{i:03d}" for i in range(105)]  # moto pages ListClusters by 100
    for name in names:
        put_cluster({**copy.deepcopy(snapshot), "ClusterName": name}, region=REGION)
    result = run(env, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [c["cluster"] for c in json.loads(result.stdout)["clusters"]] == names


def test_the_rules_file_changes_the_findings(env, tmp_path):
    fleet()
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"version": 1, "policies": {"degraded-group": {"enabled": False}}}))
    result = run(env, "--rules", str(rules))
    assert result.returncode == 0, result.stderr
    findings = {row[0]: row[4] for row in rows(result.stdout)}
    assert findings["nova-forge"] == "0" and findings["rl-research"] == "0"
    assert findings["burst-infer"] == "1 (1 critical)"


# --- tags ----------------------------------------------------------------------------------------

TAG_RULES = {"version": 1, "overrides": [
    {"match": {"tags": {"team": "llm"}}, "policies": {"degraded-group": {"enabled": False}}},
]}


def test_tag_selected_overrides_apply_to_tagged_clusters_only(env, tmp_path):
    # the team tag comes after 60 others: on ListTags' second page (moto pages by 50)
    many = {f"cost-center-{i:02d}": str(i) for i in range(60)}
    serve("degraded-group-below-min", tags={**many, "team": "llm"})
    serve("degraded-group-below-min", rename="rl-other", tags={"team": "rl"})
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(TAG_RULES))
    result = run(env, "--rules", str(rules), "--format", "json")
    assert result.returncode == 0, result.stderr
    by_name = {c["cluster"]: c for c in json.loads(result.stdout)["clusters"]}
    assert by_name["rl-research"]["findings"]["total"] == 0  # team=llm: degraded-group off
    assert by_name["rl-research"]["tags"] == {**many, "team": "llm"}
    assert by_name["rl-other"]["findings"] == {"total": 1, "critical": 1, "warning": 0, "info": 0}
    assert by_name["rl-other"]["tags"] == {"team": "rl"}


@ACCESS_DENIED_SHAPE
def test_unreadable_tags_evaluate_as_untagged_with_a_warning(env, refusing, tmp_path):
    serve("degraded-group-below-min", tags={"team": "llm"})
    refusing("list_tags", "ListTags")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(TAG_RULES))
    result = run(env, "--rules", str(rules))
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [["rl-research", "InService", "eks", "2/2", "1 (1 critical)"]]
    warning, summary = result.stderr.splitlines()
    assert warning.startswith("warning: cannot read the tags of cluster rl-research (An error occurred "
                              "(AccessDeniedException) when calling the ListTags operation: ")
    assert warning.endswith("); evaluated it as untagged")
    assert summary == f"1 cluster(s) in {REGION}"


# --- read-only -----------------------------------------------------------------------------------


def recorded_calls(env: dict[str, str], tmp_path: Path, *args: str) -> list[str]:
    record = tmp_path / "calls.json"
    result = subprocess.run([sys.executable, "-c", RECORDING, str(record), "clusters", *args],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return sorted(json.loads(record.read_text()))


def test_only_list_and_describe_calls_and_list_tags_only_for_tag_rules(env, tmp_path):
    serve("healthy-eks-cluster", tags={"team": "llm"})
    serve("restricted-group-degraded")
    assert recorded_calls(env, tmp_path) == [
        "sagemaker:DescribeCluster", "sagemaker:DescribeCluster", "sagemaker:ListClusters"]
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(TAG_RULES))
    assert recorded_calls(env, tmp_path, "--rules", str(rules)) == [
        "sagemaker:DescribeCluster", "sagemaker:DescribeCluster", "sagemaker:ListClusters",
        "sagemaker:ListTags", "sagemaker:ListTags"]


# --- errors --------------------------------------------------------------------------------------


def test_no_credentials_is_one_line(no_credentials):
    assert_one_line_error(run(no_credentials, "--region", REGION), "cannot reach SageMaker: no AWS credentials; pass --profile, set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair")


def test_no_region_is_one_line(no_credentials):
    assert_one_line_error(run(no_credentials), "cannot reach SageMaker: no AWS region; pass --region or set AWS_REGION")


@ACCESS_DENIED_SHAPE
def test_access_denied_on_list_clusters_is_one_line(env, refusing):
    refusing("list_clusters", "ListClusters")
    line = assert_one_line_error(run(env))
    assert line.startswith("error: SageMaker refused the request: An error occurred (AccessDeniedException) "
                           "when calling the ListClusters operation: User: ")


@ACCESS_DENIED_SHAPE
def test_access_denied_on_describe_cluster_is_one_line(env, refusing):
    fleet()
    refusing("describe_cluster", "DescribeCluster")
    line = assert_one_line_error(run(env))
    assert "(AccessDeniedException) when calling the DescribeCluster operation" in line


def test_an_invalid_rules_file_is_bad_input_before_any_call(no_credentials, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"version": 1, "overrides": [{"match": {"tags": {"team": 7}}}]}))
    line = assert_one_line_error(run(no_credentials, "--rules", str(rules)))  # no credentials needed to say so
    assert f"hyperpod-guard validate {rules}" in line and "overrides[0].match.tags.team" in line


# --- progress --------------------------------------------------------------------------------------


def test_progress_is_drawn_on_a_terminal_and_cleared(env):
    fleet()
    serve("healthy-eks-cluster", rename="llm-train-dev")  # six: more than a few, so drawn at once
    result, text = on_a_terminal([sys.executable, "-m", "hyperpod_guard.cli", "clusters"], env)
    assert result.returncode == 0
    assert "\r\x1b[Kreading clusters 6/6" in text
    # the line is wiped before the summary, so that nothing of it is left on the screen
    assert text.endswith(f"\r\x1b[K6 cluster(s) in {REGION}\r\n")
    assert "\x1b" not in result.stdout and "reading" not in result.stdout
    assert rows(result.stdout)[0][0] == "burst-infer"


class Terminal:
    def __init__(self) -> None:
        self.written: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("elapsed", "items", "drawn"), [
    pytest.param(0.2, 3, False, id="quick-and-few"),
    pytest.param(1.0, 3, True, id="after-a-second"),
    pytest.param(0.0, 6, True, id="many-at-once"),
])
def test_progress_waits_for_a_moment_or_many_items(elapsed, items, drawn):
    now = [100.0]
    terminal = Terminal()
    progress = Progress(terminal, clock=lambda: now[0])  # type: ignore[arg-type]
    now[0] += elapsed
    progress.update("reading clusters 1/x", items)
    assert terminal.written == (["\r\x1b[Kreading clusters 1/x"] if drawn else [])
    progress.clear()
    assert terminal.written[len(terminal.written) - 1:] == (["\r\x1b[K"] if drawn else [])


def test_progress_is_silent_off_a_terminal(tmp_path):
    with open(tmp_path / "log", "w") as stream:
        progress = Progress(stream, delay=0)
        progress.update("reading clusters 1/1", 100)
        progress.clear()
    assert (tmp_path / "log").read_text() == ""


# --- help ----------------------------------------------------------------------------------------


def test_help_explains_the_command():
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "clusters", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--region REGION", "--profile PROFILE", "--format {text,json}", "--rules FILE"):
        assert option in result.stdout
    assert "Read-only" in result.stdout and "restricted instance groups included" in result.stdout
    top = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert any(line.split()[:1] == ["clusters"] for line in top.stdout.splitlines())


def on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `command` with its stderr on a pseudo-terminal (so that it draws its progress line): its result, and
    everything it drew there."""
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=120, env=env)
        os.close(secondary)
        secondary = -1
        drawn = b""
        while select.select([primary], [], [], 0.5)[0]:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    return result, drawn.decode()
