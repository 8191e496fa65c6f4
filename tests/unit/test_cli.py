"""The `hyperpod-guard` command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hyperpod_guard import __version__
from tests.conftest import EVENTS

SCENARIO = EVENTS / "degraded-group-failed"
NOW = "2026-11-20T10:00:05Z"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyperpod_guard.cli", *args],
        capture_output=True, text=True, input=stdin, timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "hyperpod-guard"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"hyperpod-guard {__version__}"


@pytest.mark.parametrize("command", [[], ["evaluate"], ["validate"], ["schema"], ["demo"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: hyperpod-guard")


def test_evaluate_json_follows_the_contract():
    result = run("evaluate", "--event", str(SCENARIO / "event.json"), "--format", "json", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    output = json.loads(result.stdout)
    assert output["cluster"] == "ml-prod"
    assert [(f["policy"], f["severity"], f["instance_group"], f["node"]) for f in output["findings"]] == [
        ("degraded-group", "critical", "gpu-workers", None),
        ("degraded-group", "warning", "gpu-workers", None),
    ]
    for finding in output["findings"]:
        assert {"policy", "severity", "cluster", "instance_group", "node", "fingerprint", "summary", "details"} <= set(finding)
        assert "\n" not in finding["summary"]


def test_evaluate_text_is_a_table():
    result = run("evaluate", "--event", str(SCENARIO), "--now", NOW)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "cluster ml-prod: 2 finding(s)"
    assert lines[1].split() == ["SEVERITY", "POLICY", "SCOPE", "SUMMARY"]
    assert lines[3].startswith("critical  degraded-group  gpu-workers")


def test_snapshot_is_the_truth_over_the_event(tmp_path):
    snapshot = json.loads((SCENARIO / "event.json").read_text())["detail"]
    for group in snapshot["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group["TargetCount"])
    result = run("evaluate", "--event", str(SCENARIO / "event.json"), "--snapshot",
                 write(tmp_path, "s.json", json.dumps(snapshot)), "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"cluster": "ml-prod", "findings": [], "resolved": []}


def test_rules_file_changes_the_outcome(tmp_path):
    rules = write(tmp_path, "rules.json", json.dumps({"version": 1, "policies": {"degraded-group": {"severity": "info"}}}))
    result = run("evaluate", "--event", str(SCENARIO), "--rules", rules, "--format", "json")
    assert {f["severity"] for f in json.loads(result.stdout)["findings"]} == {"info"}


def test_other_events_are_ignored_with_a_reason(tmp_path):
    event = write(tmp_path, "e.json", json.dumps({"detail-type": "SageMaker Training Job State Change", "source": "aws.sagemaker", "detail": {}}))
    result = run("evaluate", "--event", event, "--format", "json")
    assert result.returncode == 0
    output = json.loads(result.stdout)
    assert output["findings"] == [] and "not a HyperPod detail-type" in output["ignored"]


BAD_EVENTS = [
    pytest.param(b"not json", "not JSON", id="not-json"),
    pytest.param(b"\xff\xfe\x00garbage", "cannot read", id="not-utf8"),
    pytest.param(b"[1, 2, 3]", "must be a JSON object", id="array"),
    pytest.param(b"{}", "no 'detail-type'", id="empty-object"),
    pytest.param(b'{"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker"}', "no 'detail' object", id="no-detail"),
    pytest.param(b'{"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker", "detail": []}', "no 'detail' object", id="detail-array"),
    pytest.param(b'{"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker", "detail": {"ClusterName": 7}}', "detail.ClusterName", id="name-wrong-type"),
    pytest.param(b'{"detail-type": "SageMaker HyperPod Cluster State Change", "source": "aws.sagemaker", "detail": {"ClusterName": "c", "InstanceGroups": [{"InstanceGroupName": "g", "CurrentCount": "many"}]}}',
                 "detail.InstanceGroups.0.CurrentCount", id="count-wrong-type"),
    pytest.param(b'{"detail-type": "SageMaker HyperPod Cluster Node Health Event", "source": "aws.sagemaker", "detail": {"InstanceId": "i-1"}}', "detail.ClusterName", id="node-health-without-cluster"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="deep-nesting"),
]


@pytest.mark.parametrize(("content", "fragment"), BAD_EVENTS)
def test_bad_events_exit_2_with_one_line(tmp_path, content, fragment):
    assert_one_line_error(run("evaluate", "--event", write(tmp_path, "bad.json", content)), fragment)


def test_missing_event_file(tmp_path):
    assert_one_line_error(run("evaluate", "--event", str(tmp_path / "nope.json")), "No such file")


@pytest.mark.parametrize(
    ("snapshot", "fragment"),
    [
        pytest.param("[]", "must be a JSON object", id="array"),
        pytest.param('{"ClusterStatus": "InService"}', "ClusterName", id="no-name"),
        pytest.param('{"ClusterName": "other"}', "snapshot is for cluster 'other'", id="other-cluster"),
        pytest.param('{"ClusterName": "ml-prod", "InstanceGroups": {"g": 1}}', "InstanceGroups", id="groups-not-list"),
    ],
)
def test_bad_snapshots(tmp_path, snapshot, fragment):
    result = run("evaluate", "--event", str(SCENARIO / "event.json"), "--snapshot", write(tmp_path, "s.json", snapshot))
    assert_one_line_error(result, fragment)


def test_bad_rules_point_to_validate(tmp_path):
    rules = write(tmp_path, "r.json", '{"version": 1, "policies": {"taint-drift": {"grace": "later"}}}')
    result = run("evaluate", "--event", str(SCENARIO), "--rules", rules)
    assert_one_line_error(result, "hyperpod-guard validate")


def test_bad_now():
    assert_one_line_error(run("evaluate", "--event", str(SCENARIO), "--now", "yesterday"), "--now")


def test_validate_ok(tmp_path):
    result = run("validate", write(tmp_path, "r.json", '{"version": 1}'))
    assert result.returncode == 0
    assert "valid" in result.stdout


def test_validate_lists_every_problem_with_its_path(tmp_path):
    rules = {"version": 1, "policies": {"taint-drift": {"grace": "later", "required": [{"taints": [{"key": "k"}]}]}},
             "silences": [{"matchers": {}, "until": "never"}]}
    result = run("validate", write(tmp_path, "r.json", json.dumps(rules)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("3 problem(s)")
    paths = [line.split(": ")[0].strip() for line in lines[1:]]
    assert paths == ['$.policies["taint-drift"].grace', '$.policies["taint-drift"].required[0].taints[0].effect', "$.silences[0].until"]


def test_validate_not_json_is_a_problem_at_the_root(tmp_path):
    result = run("validate", write(tmp_path, "r.json", "{oops"))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].strip().startswith("$: not JSON")


def test_validate_missing_file(tmp_path):
    assert_one_line_error(run("validate", str(tmp_path / "missing.json")), "cannot read rules file")


def test_schema_validates_the_default_rules():
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"version": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "policies": {"taint-drift": {"grace": "soon"}}}, schema)


def test_unknown_command_is_a_usage_error_not_a_traceback():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid choice" in result.stderr
