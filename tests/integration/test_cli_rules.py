"""`hyperpod-guard rules push|show`, run as a user runs it (a subprocess) against moto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from hyperpod_guard.rules_store import serialise
from tests.conftest import REGION
from tests.unit.test_rules_merge import SMALL, big_document

P = "/hyperpod-guard/rules"
BIG_PARTS = 14


def aws_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HYPERPOD_GUARD_"))}
    env.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true",
    })
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "rules", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def write(tmp_path: Path, document: Any, name: str = "rules.json", indent: int | None = 2) -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=indent))
    return str(path)


def stored(path: str = P, region: str = REGION) -> dict[str, str]:
    ssm = boto3.client("ssm", region_name=region)
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


@pytest.fixture
def env(aws) -> dict[str, str]:
    return aws_env(aws)


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"


# --- push --------------------------------------------------------------------------------------


def manifest(path: str = P, region: str = REGION) -> dict[str, Any]:
    return json.loads(stored(path, region)[f"{path}/manifest"])


def test_push_prints_the_diff_and_writes_a_version_then_the_manifest(env, tmp_path):
    file = write(tmp_path, SMALL)
    result = run(env, "push", file)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    live = manifest()
    version, value = live["id"], serialise(SMALL)
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"--- {P} (no rules)", f"+++ {file}", f"@@ -0,0 +1,{len(json.dumps(SMALL, indent=2).splitlines())} @@"]
    assert lines[3:-4] == ["+" + line for line in json.dumps(SMALL, indent=2, sort_keys=True).splitlines()]
    assert lines[-3:] == [f"wrote {P}/v/{version}/00", f"wrote {P}/manifest",
                          f"pushed version {version} (1 part(s)) under {P}; previous: none"]
    assert lines[-4].startswith("plan: version ") and lines[-4].endswith(
        f", 1 part(s) ({len(value.encode())} bytes), then {P}/manifest; delete 0 stale parameter(s)")
    assert stored() == {f"{P}/v/{version}/00": value, f"{P}/manifest": stored()[f"{P}/manifest"]}
    assert live["parts"] == 1 and live["previous"] is None
    assert live["pushed_by"] == "arn:aws:sts::123456789012:user/moto"  # STS GetCallerIdentity


def test_a_second_push_diffs_against_the_live_rules_and_keeps_the_previous_version(env, tmp_path):
    assert run(env, "push", write(tmp_path, big_document(), "big.json")).returncode == 0
    first = manifest()
    changed = {**SMALL, "policies": {"taint-drift": {"grace": "7m", "required": SMALL["policies"]["taint-drift"]["required"]}}}
    result = run(env, "push", write(tmp_path, changed, "small.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"--- {P} (version {first['id']})"
    assert '+      "grace": "7m",' in lines and lines[2].startswith("@@ ")
    second = manifest()
    assert second["previous"] == {"id": first["id"], "parts": BIG_PARTS, "sha256": first["sha256"]}
    assert lines[-1] == f"pushed version {second['id']} (1 part(s)) under {P}; previous: {first['id']}"

    shown = run(env, "show")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == changed
    assert shown.stderr.startswith(f"version {second['id']} (1 part(s), sha256 verified), pushed ")
    assert shown.stderr.endswith(f"; previous: {first['id']}\n")

    again = run(env, "push", write(tmp_path, changed, "same.json"))
    assert again.stdout.splitlines()[0] == f"no changes: {tmp_path / 'same.json'} equals {P} (version {second['id']})"
    third = manifest()
    deleted = [line for line in again.stdout.splitlines() if line.startswith("deleted ")]
    assert deleted == [f"deleted {P}/v/{first['id']}/{i:02d}" for i in range(BIG_PARTS)]
    assert {name.split("/")[4] for name in stored() if "/v/" in name} == {second["id"], third["id"]}


def test_push_reads_stdin_and_never_asks_when_stdin_is_not_a_terminal(env):
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "rules", "push", "-"], input=json.dumps(SMALL),
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "push?" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[1] == "+++ stdin"
    assert json.loads(run(env, "show").stdout) == SMALL


def test_on_a_terminal_push_asks_and_no_writes_nothing(env, tmp_path):
    file = write(tmp_path, SMALL)
    answers = {"n\n": ("not pushed: nothing written", {}), "y\n": (None, None)}
    for answer, (last, expected) in answers.items():
        controller, terminal = os.openpty()
        os.write(controller, answer.encode())
        try:
            result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "rules", "push", file], stdin=terminal,
                                    capture_output=True, text=True, timeout=120, env=env)
        finally:
            os.close(terminal)
            os.close(controller)
        assert result.returncode == 0, result.stderr
        assert "push? [y/N] " in result.stdout
        if expected is not None:
            assert result.stdout.splitlines()[-1].endswith(last) and stored() == expected
        else:
            assert result.stdout.splitlines()[-1].startswith("pushed version ")
    # --yes: no question, even on a terminal
    controller, terminal = os.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "rules", "push", file, "--yes"],
                                stdin=terminal, capture_output=True, text=True, timeout=120, env=env)
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0 and "push?" not in result.stdout


def test_dry_run_prints_the_diff_and_the_plan_and_writes_nothing(env, tmp_path):
    boto3.client("ssm").put_parameter(Name=f"{P}/team-a/x", Value='{"version":1}', Type="String")
    result = run(env, "push", write(tmp_path, big_document()), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"--- {P} (legacy layout)"
    assert re.fullmatch(rf"plan: version \d{{8}}T\d{{9}}Z-[0-9a-f]{{4}}, {BIG_PARTS} part\(s\) \((\d+, ){{13}}\d+ bytes\), "
                        rf"then {P}/manifest; delete 1 stale parameter\(s\)", lines[-3]), lines[-3]
    assert lines[-2:] == [f"would delete {P}/team-a/x", "dry run: nothing written"]
    assert stored() == {f"{P}/team-a/x": '{"version":1}'}


def test_push_to_another_region_and_path(env, tmp_path):
    file = write(tmp_path, SMALL)
    result = run(env, "push", file, "--region", "eu-west-1", "--path", "/team/rules/")
    assert result.returncode == 0, result.stderr
    assert json.loads(stored("/team/rules", region="eu-west-1")[f"/team/rules/v/{manifest('/team/rules', 'eu-west-1')['id']}/00"]) == SMALL
    assert stored("/team/rules") == {}  # not in the default region


def test_the_path_comes_from_the_environment_unless_given(aws, tmp_path):
    env = aws_env(aws, HYPERPOD_GUARD_RULES_PATH="/from/env")
    file = write(tmp_path, {"version": 1})
    assert run(env, "push", file).returncode == 0
    assert run(env, "push", file, "--path", "/from/flag").returncode == 0
    assert {name.split("/")[2] for name in stored("/from")} == {"env", "flag"}
    assert manifest("/from/env")["parts"] == manifest("/from/flag")["parts"] == 1


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_restores_the_previous_version_and_refuses_without_one(env, tmp_path):
    refused = run(env, "rollback")
    assert refused.returncode == 1
    assert refused.stderr == (f"error: cannot roll back: no manifest under {P}: nothing to roll back to (no rules "
                              "pushed by this version of hyperpod-guard yet)\n")
    assert run(env, "push", write(tmp_path, SMALL, "a.json")).returncode == 0
    first = manifest()
    refused = run(env, "rollback", "--yes")
    assert refused.returncode == 1
    assert refused.stderr == f"error: cannot roll back: version {first['id']} under {P} has no previous version to roll back to\n"

    assert run(env, "push", write(tmp_path, big_document(), "b.json")).returncode == 0
    second = manifest()
    dry = run(env, "rollback", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines()[-1] == (
        f"dry run: version {first['id']} would be live again; nothing written")
    assert manifest()["id"] == second["id"]
    result = run(env, "rollback")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"--- {P} (version {second['id']})", f"+++ {P} (version {first['id']})"]
    assert lines[-1] == f"rolled back: version {first['id']} is live again under {P} (previous: {second['id']})"
    assert json.loads(run(env, "show").stdout) == SMALL

    # a broken previous version is refused, naming the part
    ssm = boto3.client("ssm")
    ssm.delete_parameter(Name=f"{P}/v/{second['id']}/03")
    refused = run(env, "rollback", "--yes")
    assert refused.returncode == 1
    assert refused.stderr == (f"error: cannot roll back: cannot roll back to version {second['id']}: rules under {P} "
                              f"are incomplete: parameter {P}/v/{second['id']}/03 is missing (version {second['id']} "
                              f"has {BIG_PARTS} part(s))\n")
    assert manifest()["id"] == first["id"]


def test_push_of_an_invalid_file_lists_the_problems_and_writes_nothing(env, tmp_path):
    file = write(tmp_path, {"version": 1, "policies": {"taint-drift": {"grace": "soon"}},
                            "silences": [{"matchers": {}, "until": "never"}]})
    result = run(env, "push", file)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{file}: 2 problem(s)",
        """  $.policies["taint-drift"].grace: Value error, not a duration: 'soon' (use e.g. '90s', '15m', '4h', '1d', '1h30m')""",
        "  $.silences[0].until: Value error, until must be an ISO-8601 timestamp, e.g. 2026-12-01T00:00:00Z",
    ]
    assert stored() == {}


def test_push_prints_what_validate_prints(env, tmp_path):
    file = write(tmp_path, {"version": 2, "overrides": [{"policies": {}}]})
    pushed = run(env, "push", file)
    validated = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "validate", file],
                               capture_output=True, text=True, timeout=60, env=env)
    assert pushed.returncode == validated.returncode == 1
    assert pushed.stdout == validated.stdout
    assert "  $.overrides[0].match: Field required" in pushed.stdout.splitlines()


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "  $: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
     ("[1]", "  $: expected an object, got list")],
)
def test_push_of_a_file_that_is_not_a_rules_object(env, tmp_path, content, problem):
    result = run(env, "push", write(tmp_path, content))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [problem]


def test_push_of_a_fragment_too_big_for_a_parameter(env, tmp_path):
    file = write(tmp_path, {"version": 1, "silences": [{"matchers": {}, "until": "2026-12-01T00:00:00Z", "comment": "x" * 5000}]})
    result = run(env, "push", file)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{file}: 1 problem(s)",
        "  $.silences[0]: is 5086 bytes as a parameter; one SSM parameter holds at most 4096",
    ]


def test_push_of_a_missing_file_is_bad_input(env, tmp_path):
    assert_one_line_error(run(env, "push", str(tmp_path / "nope.json")),
                          f"cannot read rules file {str(tmp_path / 'nope.json')!r}: No such file or directory")


def test_a_path_without_a_leading_slash_is_bad_input(env, tmp_path):
    assert_one_line_error(run(env, "push", write(tmp_path, SMALL), "--path", "rules"),
                          "--path: an SSM parameter path starts with '/', got 'rules'")


def test_without_credentials_push_is_one_error_line(env, tmp_path):
    env = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    assert_one_line_error(run(env, "push", write(tmp_path, SMALL)), "cannot reach SSM: no AWS credentials; pass --profile, set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair")
    assert_one_line_error(run(env, "show"), "cannot reach SSM: no AWS credentials; pass --profile, set AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair")


def test_an_unknown_profile_is_one_error_line(env, tmp_path):
    assert_one_line_error(run(env, "show", "--profile", "nope"),
                          "cannot reach SSM: The config profile (nope) could not be found")


def test_an_ssm_refusal_is_one_error_line(env, tmp_path):
    # moto validates parameter names: a path level starting with "aws" is reserved
    result = run(env, "push", write(tmp_path, SMALL), "--path", "/aws/rules")
    assert result.returncode == 2, result
    [line] = result.stderr.splitlines()
    assert line.startswith("error: SSM refused the request: An error occurred (")


# --- show --------------------------------------------------------------------------------------


def test_show_prints_the_merged_rules(env):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{P}/10", Type="String", Value=json.dumps({"silences": [{"matchers": {}, "until": "2026-12-01T00:00:00Z"}]}))
    ssm.put_parameter(Name=f"{P}/00", Type="String", Value=json.dumps({"version": 1, "policies": {"degraded-group": {"grace": "1m"}}}))
    ssm.put_parameter(Name=f"{P}/team-a/x", Type="String", Value=json.dumps({"policies": {"degraded-group": {"severity": "info"}}}))
    result = run(env, "show")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "version": 1,
        "policies": {"degraded-group": {"grace": "1m", "severity": "info"}},
        "silences": [{"matchers": {}, "until": "2026-12-01T00:00:00Z"}],
    }
    assert result.stderr == f"merged 3 parameter(s) in name order: {P}/00, {P}/10, {P}/team-a/x\n"

    full = run(env, "show", "--with-defaults")
    assert full.returncode == 0
    shown = json.loads(full.stdout)
    assert shown["policies"]["degraded-group"] == {"enabled": True, "severity": "info", "grace": "1m", "repeat_interval": "4h",
                                                   "notify_on_resolve": True, "runbook_url": None, "target_shortfall_ratio": 0.1, "scaling_grace": "1h",
                                                   "remediation": {"enabled": False, "dry_run": True, "approval": "none",
                                                                   "approval_expires": "1h", "action": "reboot",
                                                                   "after": "30m"}}
    assert shown["policies"]["taint-drift"]["grace"] == "15m"


def test_show_without_parameters_prints_the_defaults(env):
    result = run(env, "show")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"version": 1}
    assert result.stderr == f"no parameters under {P}: the built-in defaults apply\n"


def test_show_of_invalid_rules_lists_the_problems(env):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{P}/00", Type="String", Value=json.dumps({"version": 1, "policies": {"taint-drift": {"grace": "soon"}}}))
    ssm.put_parameter(Name=f"{P}/01", Type="String", Value=json.dumps({"overrides": [{"policies": {}}]}))
    result = run(env, "show")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"rules under {P}: 2 problem(s)",
        """  $.policies["taint-drift"].grace: Value error, not a duration: 'soon' (use e.g. '90s', '15m', '4h', '1d', '1h30m')""",
        "  $.overrides[0].match: Field required",
    ]

    ssm.put_parameter(Name=f"{P}/02", Type="String", Value="version: 1")
    result = run(env, "show")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"rules under {P}: 1 problem(s)",
        f"  {P}/02: not JSON: Expecting value: line 1 column 1 (char 0)",
    ]


@pytest.mark.parametrize("command", [["--help"], ["push", "--help"], ["show", "--help"]])
def test_help(env, command):
    result = run(env, *command)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: hyperpod-guard rules {command[0] if command[0] != '--help' else ''}".rstrip())


def test_show_reads_through_the_manifest_and_names_what_it_does_not_merge(env, tmp_path):
    assert run(env, "push", write(tmp_path, SMALL)).returncode == 0
    live = manifest()
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{P}/00", Type="String", Value=json.dumps({"version": 1, "silences": []}))
    ssm.put_parameter(Name=f"{P}/team-a/x", Type="String", Value=json.dumps({"version": 1}))
    result = run(env, "show")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == SMALL
    assert result.stderr.splitlines()[-1] == f"note: not merged (no version owns them): {P}/00, {P}/team-a/x"

    ssm.delete_parameter(Name=f"{P}/v/{live['id']}/00")
    broken = run(env, "show")
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        f"rules under {P}: 1 problem(s)",
        f"  {P}/v/{live['id']}/00: missing (version {live['id']} has 1 part(s))",
    ]


def test_push_warns_about_a_silence_that_mutes_everything_and_still_pushes(env, tmp_path):
    """What `validate` warns about, `rules push` says too (on stderr), and pushes: a warning is not a problem."""
    document = {"version": 1, "silences": [{"matchers": {}, "until": "2099-01-01T00:00:00Z", "comment": "all"}]}
    result = run(env, "push", write(tmp_path, document))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"warning: {tmp_path / 'rules.json'}: $.silences[0].matchers: every matcher is")
    assert manifest()["parts"] == 1
