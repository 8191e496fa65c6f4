"""`hyperpod-guard check --cluster NAME`, run as a user runs it (a subprocess) against moto.

The moto server runs in this process, so the cluster state each test wants is injected into
its backend with put_cluster(); the command reaches it only through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hyperpod_guard.cli.common import load_rules_file, render_text
from hyperpod_guard.cli.scenarios import EXPECTED_KEYS
from hyperpod_guard.engine import evaluate
from hyperpod_guard.local.hyperpod_state import ACCOUNT, put_cluster
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.conftest import EVENTS, REGION
from tests.integration.test_cli_rules import aws_env
from tests.runtime_fixtures import scenario

#: scenarios whose expected findings come (partly) from the event itself (a Cluster Event's
#: text, a Node Health Event): a DescribeCluster read alone cannot see them
EVENT_FINDINGS = {
    "rollback-failed-instance-event", "slurm-dbd-down", "taint-drift-k8s-config-update-failed",
    "unhealthy-node-auto-replace", "unhealthy-node-no-repair",
}
#: scenarios judged at their own `now` (a patch window, a capacity's end, an operation's age) or on what `check`
#: does not read (a cluster's operations, extensions, training plans: our keys in snapshot.json)
AS_OF_THEIR_TIME = {
    "auto-patch-window-upcoming", "extension-degraded", "scaling-operation-stuck", "training-plan-ending",
}
STATE_SCENARIOS = sorted(
    d.name for d in EVENTS.iterdir()
    if (d / "snapshot.json").exists() and d.name not in EVENT_FINDINGS | AS_OF_THEIR_TIME
)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "check", *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def env(aws) -> dict[str, str]:
    return aws_env(aws)


def serve(name: str) -> dict[str, Any]:
    """Serve the scenario's snapshot (and its nodes) from moto; return the snapshot."""
    _, snapshot = scenario(name)
    put_cluster(snapshot, region=REGION, nodes=snapshot.get("Nodes"))
    return snapshot


def expected_tuples(name: str) -> list[tuple[str, ...]]:
    expected = json.loads((EVENTS / name / "expected.json").read_text())
    return sorted(tuple(f.get(k) or "" for k in EXPECTED_KEYS) for f in expected["findings"])


def as_tuples(findings: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return sorted(tuple(f.get(k) or "" for k in EXPECTED_KEYS) for f in findings)


def rules_args(name: str) -> list[str]:
    rules = EVENTS / name / "rules.json"
    return ["--rules", str(rules)] if rules.exists() else []


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str | None = None) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    if message is not None:
        assert result.stderr == f"error: {message}\n"
    return result.stderr


# --- findings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STATE_SCENARIOS)
def test_json_findings_match_the_scenario(env, name):
    snapshot = serve(name)
    result = run(env, "--cluster", snapshot["ClusterName"], "--format", "json", *rules_args(name))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the header is for people: text mode only
    output = json.loads(result.stdout)
    assert sorted(output) == ["cluster", "findings", "resolved"]
    assert output["cluster"] == snapshot["ClusterName"]
    assert output["resolved"] == []
    assert as_tuples(output["findings"]) == expected_tuples(name)


def test_degraded_cluster_in_text(env):
    snapshot = serve("degraded-group-below-min")
    name = snapshot["ClusterName"]
    result = run(env, "--cluster", name)
    assert result.returncode == 0, result.stderr
    groups = len(snapshot["InstanceGroups"])
    orchestrator = "eks" if "Orchestrator" in snapshot else "slurm"
    assert result.stderr == (
        f"cluster {name} in {REGION}: status {snapshot['ClusterStatus']}, orchestrator {orchestrator}, "
        f"{groups} instance group(s), 0 node(s)\n"
    )
    in_process = evaluate(ClusterSnapshot.from_describe_cluster(snapshot, []), None, load_rules_file(None),
                          datetime.now(timezone.utc))
    assert result.stdout == render_text(in_process) + "\n"
    lines = result.stdout.splitlines()
    assert lines[0] == f"cluster {name}: 1 finding(s)"
    assert lines[1].split() == ["SEVERITY", "POLICY", "SCOPE", "SUMMARY"]
    assert lines[3].split()[:3] == ["critical", "degraded-group", "h100-train"]


def test_healthy_cluster_has_no_findings(env):
    snapshot = serve("healthy-eks-cluster")
    result = run(env, "--cluster", snapshot["ClusterName"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"cluster {snapshot['ClusterName']}: no findings\n"
    assert ", orchestrator eks, " in result.stderr


def test_a_node_in_failure_is_found_through_list_cluster_nodes(env):
    _, snapshot = scenario("healthy-eks-cluster")
    group = snapshot["InstanceGroups"][0]["InstanceGroupName"]
    failed = {"InstanceId": "i-0feedfacecafe0001", "InstanceGroupName": group, "InstanceType": "ml.p5.48xlarge",
              "InstanceStatus": {"Status": "Failure", "Message": "deep health check failed"},
              "LaunchTime": "2026-10-01T00:00:00Z"}
    healthy = {**failed, "InstanceId": "i-0feedfacecafe0002", "InstanceStatus": {"Status": "Running"}}
    put_cluster(snapshot, region=REGION, nodes=[failed, healthy])
    name = snapshot["ClusterName"]

    result = run(env, "--cluster", name, "--format", "json")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    severity = "critical" if (snapshot.get("NodeRecovery") or "").lower() == "none" else "warning"
    assert as_tuples(findings) == [("unhealthy-node", severity, group, "i-0feedfacecafe0001", "instance-failure")]

    text = run(env, "--cluster", name)
    assert text.returncode == 0, text.stderr
    assert text.stderr.endswith(", 2 node(s)\n")
    assert "i-0feedfacecafe0001" in text.stdout and "unhealthy-node" in text.stdout

    without = run(env, "--cluster", name, "--no-nodes")  # DescribeCluster alone cannot see it
    assert without.returncode == 0, without.stderr
    assert without.stdout == f"cluster {name}: no findings\n"
    assert "node(s)" not in without.stderr


def test_the_rules_file_changes_the_outcome(env, tmp_path):
    snapshot = serve("taint-drift-required-p5")
    name = snapshot["ClusterName"]
    defaults = run(env, "--cluster", name, "--format", "json")
    assert defaults.returncode == 0, defaults.stderr
    assert "required" not in {f["condition"] for f in json.loads(defaults.stdout)["findings"]}

    with_rules = run(env, "--cluster", name, "--format", "json", *rules_args("taint-drift-required-p5"))
    assert with_rules.returncode == 0, with_rules.stderr
    assert as_tuples(json.loads(with_rules.stdout)["findings"]) == expected_tuples("taint-drift-required-p5")

    serve("degraded-group-below-min")
    off = tmp_path / "off.json"
    off.write_text(json.dumps({"version": 1, "policies": {"degraded-group": {"enabled": False}}}))
    degraded = scenario("degraded-group-below-min")[1]["ClusterName"]
    result = run(env, "--cluster", degraded, "--rules", str(off))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"cluster {degraded}: no findings\n"


def test_the_cluster_can_be_named_by_arn(env):
    snapshot = serve("degraded-group-below-min")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:cluster/{snapshot['ClusterName']}"
    result = run(env, "--cluster", arn, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert as_tuples(json.loads(result.stdout)["findings"]) == expected_tuples("degraded-group-below-min")


# --- read-only -----------------------------------------------------------------------------------

#: installs a botocore hook recording every operation any client of the process calls, then runs the CLI
RECORDING = """
import json, sys
import botocore.session
calls = []
create_client = botocore.session.Session.create_client
def recording_create_client(self, *args, **kwargs):
    client = create_client(self, *args, **kwargs)
    client.meta.events.register(
        "before-call", lambda model, **_: calls.append(model.service_model.service_name + ":" + model.name))
    return client
botocore.session.Session.create_client = recording_create_client
from hyperpod_guard.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump(calls, out)
sys.exit(code)
"""


def test_check_calls_only_describe_and_list_operations(env, tmp_path):
    snapshot = serve("node-failure-recovery-none")
    record = tmp_path / "calls.json"
    result = subprocess.run(
        [sys.executable, "-c", RECORDING, str(record), "check", "--cluster", snapshot["ClusterName"]],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "instance-failure" not in result.stdout  # text shows the summary, not the condition
    assert "i-0e4d3c2b1a0f9e8d7" in result.stdout
    calls = json.loads(record.read_text())
    assert calls == ["sagemaker:DescribeCluster", "sagemaker:ListClusterNodes"]
    assert all(c.split(":")[1].startswith(("Describe", "List")) for c in calls)


# --- bad input and AWS errors --------------------------------------------------------------------


def test_a_missing_cluster_is_one_line(env):
    assert_one_line_error(run(env, "--cluster", "no-such-cluster"), f"cluster no-such-cluster not found in {REGION}")


def test_the_region_flag_is_honoured(env):
    snapshot = serve("healthy-eks-cluster")  # served in REGION only
    name = snapshot["ClusterName"]
    assert_one_line_error(run(env, "--cluster", name, "--region", "eu-west-1"), f"cluster {name} not found in eu-west-1")


def test_an_empty_cluster_name_is_bad_input(env):
    assert_one_line_error(run(env, "--cluster", ""), "--cluster must not be empty")


def test_an_invalid_rules_file_is_one_line_naming_validate(env, tmp_path):
    snapshot = serve("healthy-eks-cluster")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"version": 1, "policies": {"taint-drift": {"grace": "soon"}}}))
    line = assert_one_line_error(run(env, "--cluster", snapshot["ClusterName"], "--rules", str(rules)))
    assert f"hyperpod-guard validate {rules}" in line

    rules.write_text("{not json")
    assert "is not JSON" in assert_one_line_error(run(env, "--cluster", snapshot["ClusterName"], "--rules", str(rules)))


@pytest.fixture
def no_credentials(tmp_path) -> dict[str, str]:
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("")
    credentials.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HYPERPOD_GUARD_"))}
    env.update({"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
                "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def test_no_credentials_is_one_line(no_credentials):
    result = run(no_credentials, "--cluster", "any", "--region", REGION)
    assert_one_line_error(result, "cannot reach SageMaker: no AWS credentials; pass --profile, set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair")


def test_no_region_is_one_line(no_credentials):
    result = run(no_credentials, "--cluster", "any")
    assert_one_line_error(result, "cannot reach SageMaker: no AWS region; pass --region or set AWS_REGION")


def test_an_unknown_profile_is_one_line(no_credentials):
    result = run(no_credentials, "--cluster", "any", "--profile", "nobody")
    assert_one_line_error(result, "cannot reach SageMaker: The config profile (nobody) could not be found")


def test_an_unreachable_endpoint_is_one_line(aws):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    line = assert_one_line_error(run(aws_env(endpoint), "--cluster", "any"))
    assert line.startswith(f'error: cannot reach SageMaker: Could not connect to the endpoint URL: "{endpoint}/')


@pytest.fixture
def refusing(monkeypatch):
    """Make moto answer AccessDenied for one SageMaker operation."""
    from moto.core.exceptions import ServiceException
    from moto.sagemaker.models import sagemaker_backends

    class AccessDenied(ServiceException):  # defined here: moto serialises it with SageMaker's model
        code = "AccessDeniedException"

    def refuse(operation: str, action: str) -> None:
        def denied(*args: Any, **kwargs: Any) -> Any:
            raise AccessDenied(f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to perform: sagemaker:{action}")

        monkeypatch.setattr(sagemaker_backends[ACCOUNT][REGION], operation, denied)

    return refuse


ACCESS_DENIED_SHAPE = pytest.mark.filterwarnings("ignore:Exception\\(AccessDenied\\):UserWarning")


@ACCESS_DENIED_SHAPE
def test_access_denied_is_one_line(env, refusing):
    snapshot = serve("healthy-eks-cluster")
    refusing("describe_cluster", "DescribeCluster")
    line = assert_one_line_error(run(env, "--cluster", snapshot["ClusterName"]))
    assert line.startswith("error: SageMaker refused the request: An error occurred (AccessDeniedException) "
                           "when calling the DescribeCluster operation: User: ")


@ACCESS_DENIED_SHAPE
def test_access_denied_on_list_nodes_suggests_no_nodes(env, refusing):
    snapshot = serve("degraded-group-below-min")
    refusing("list_cluster_nodes", "ListClusterNodes")
    line = assert_one_line_error(run(env, "--cluster", snapshot["ClusterName"]))
    assert "(AccessDeniedException) when calling the ListClusterNodes operation" in line
    assert line.endswith(" (--no-nodes skips ListClusterNodes)\n")
    skipped = run(env, "--cluster", snapshot["ClusterName"], "--no-nodes", "--format", "json")
    assert skipped.returncode == 0, skipped.stderr
    assert as_tuples(json.loads(skipped.stdout)["findings"]) == expected_tuples("degraded-group-below-min")


# --- help ----------------------------------------------------------------------------------------


def test_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "check", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--cluster NAME", "--region REGION", "--profile PROFILE", "--rules FILE",
                   "--format {text,json}", "--nodes, --no-nodes"):
        assert option in result.stdout
    assert "read-only" in result.stdout.lower()
    top = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert any(line.split()[:1] == ["check"] for line in top.stdout.splitlines())


# --- tag selection ---------------------------------------------------------------------------------

def test_check_applies_overrides_that_select_the_cluster_by_tag(env, tmp_path):
    from tests.integration.test_cluster_tags import RULES, serve as serve_tagged

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))  # degraded-group: severity info for clusters tagged team=llm
    serve_tagged("ml-prod", {"team": "llm"})
    serve_tagged("ml-dev", {"team": "rl"})
    tagged = json.loads(run(env, "--cluster", "ml-prod", "--rules", str(rules), "--format", "json").stdout)
    other = json.loads(run(env, "--cluster", "ml-dev", "--rules", str(rules), "--format", "json").stdout)
    assert {f["severity"] for f in tagged["findings"] if f["policy"] == "degraded-group"} == {"info"}
    assert {f["severity"] for f in other["findings"] if f["policy"] == "degraded-group"} != {"info"}
