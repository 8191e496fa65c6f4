"""`hyperpod-guard rules push|show`, run as a user runs it (a subprocess) against moto."""

from __future__ import annotations

import json
import os
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


def test_push_writes_one_parameter_and_shows_the_aws_cli_equivalent(env, tmp_path):
    file = write(tmp_path, SMALL)
    result = run(env, "push", file)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    value = serialise(SMALL)
    assert result.stdout.splitlines() == [
        f"wrote {P}/00 ({len(value.encode())} bytes)",
        f"pushed 1 parameter(s) under {P}, 0 stale deleted",
        "without hyperpod-guard:",
        f"  aws ssm put-parameter --name {P}/00 --type String --overwrite --value file://{file}",
    ]
    assert stored() == {f"{P}/00": value}


def test_push_of_a_big_document_writes_parts_that_merge_back(env, tmp_path):
    document = big_document()
    result = run(env, "push", write(tmp_path, document))
    assert result.returncode == 0, result.stderr
    names = [f"{P}/{i:02d}" for i in range(BIG_PARTS)]
    lines = result.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [f"wrote {n}" for n in names]
    assert lines[-1] == f"pushed {BIG_PARTS} parameter(s) under {P}, 0 stale deleted"  # no aws CLI line: many parts
    values = stored()
    assert sorted(values) == names
    assert all(len(v.encode()) <= 4096 for v in values.values())

    shown = run(env, "show")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == document
    assert shown.stderr == f"merged {BIG_PARTS} parameter(s) in name order: {', '.join(names)}\n"


def test_a_second_shorter_push_deletes_the_stale_parts(env, tmp_path):
    assert run(env, "push", write(tmp_path, big_document(), "big.json")).returncode == 0
    file = write(tmp_path, SMALL, "small.json")
    result = run(env, "push", file)
    assert result.returncode == 0, result.stderr
    stale = [f"{P}/{i:02d}" for i in range(1, BIG_PARTS)]
    lines = result.stdout.splitlines()
    assert lines[1:BIG_PARTS] == [f"deleted {name}" for name in stale]
    assert lines[BIG_PARTS] == f"pushed 1 parameter(s) under {P}, {BIG_PARTS - 1} stale deleted"
    assert lines[-1] == f"  aws ssm delete-parameters --names {' '.join(stale)}"
    assert stored() == {f"{P}/00": serialise(SMALL)}


def test_dry_run_writes_nothing(env, tmp_path):
    boto3.client("ssm").put_parameter(Name=f"{P}/team-a/x", Value='{"version":1}', Type="String")
    result = run(env, "push", write(tmp_path, big_document()), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:BIG_PARTS]] == [f"would write {P}/{i:02d}" for i in range(BIG_PARTS)]
    assert lines[BIG_PARTS:] == [
        f"would delete {P}/team-a/x",
        f"dry run: nothing written ({BIG_PARTS} parameter(s) under {P}, 1 stale to delete)",
    ]
    assert stored() == {f"{P}/team-a/x": '{"version":1}'}


def test_a_file_too_big_for_file_url_gets_the_compact_form(env, tmp_path):
    document = {**SMALL, "silences": SMALL["silences"] * 6}
    file = write(tmp_path, document, indent=8)
    assert Path(file).stat().st_size > 4096 >= len(serialise(document).encode())
    result = run(env, "push", file, "--region", "eu-west-1", "--path", "/team/rules/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f'  aws ssm put-parameter --name /team/rules/00 --type String --overwrite --value "$(jq -c . {file})" --region eu-west-1'
    )
    assert stored("/team/rules", region="eu-west-1") == {"/team/rules/00": serialise(document)}
    assert stored("/team/rules") == {}  # not in the default region


def test_the_path_comes_from_the_environment_unless_given(aws, tmp_path):
    env = aws_env(aws, HYPERPOD_GUARD_RULES_PATH="/from/env")
    file = write(tmp_path, {"version": 1})
    assert run(env, "push", file).returncode == 0
    assert run(env, "push", file, "--path", "/from/flag").returncode == 0
    assert stored("/from") == {"/from/env/00": '{"version":1}', "/from/flag/00": '{"version":1}'}


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
    assert result.stdout == ""
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
                                                   "notify_on_resolve": True, "target_shortfall_ratio": 0.1,
                                                   "remediation": {"enabled": False, "dry_run": True,
                                                                   "action": "reboot", "after": "30m"}}
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
