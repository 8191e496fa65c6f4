"""`hyperpod-guard silence add|list|expire`, `alerts` and `explain`, run as a user runs them (a
subprocess) against moto in server mode, reached only through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.ledger_store import to_item
from hyperpod_guard.local.provision import provision
from tests.conftest import REGION

RULES = {"version": 1, "overrides": [
    {"match": {"cluster": "ml-*"}, "policies": {"degraded-group": {"grace": "0s"}}},
    {"match": {"tags": {"team": "llm"}}, "policies": {"unhealthy-node": {"severity": "warning"}}},
    {"match": {"cluster": "speech-*"}, "policies": {"taint-drift": {"enabled": False}}},
], "silences": [{"matchers": {"cluster": "ml-prod", "node": "i-1"}, "until": "2099-01-01T00:00:00Z",
                 "comment": "in the rules"}]}


@pytest.fixture
def env(aws) -> dict[str, str]:
    provision()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HYPERPOD_GUARD_"))}
    env.update({"AWS_ENDPOINT_URL": aws, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, input=stdin)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- silence ------------------------------------------------------------------------------------------


def test_add_list_expire(env):
    added = ok(run(env, "silence", "add", "--cluster", "ml-prod", "--group", "gpu-workers", "--tag", "team=llm",
                   "--for", "4h", "--comment", "CHG-9 swap"))
    silence_id = added.strip()
    assert len(silence_id) == 12
    listed = json.loads(ok(run(env, "silence", "list", "--format", "json")))["silences"]
    (silence,) = listed
    assert silence["id"] == silence_id
    assert silence["author"] == "arn:aws:sts::123456789012:user/moto"  # STS GetCallerIdentity, as moto answers it
    assert silence["matchers"] == {"cluster": "ml-prod", "account": "*", "region": "*", "policy": "*",
                                   "instance_group": "gpu-workers", "node": "*", "tags": {"team": "llm"}}
    until = datetime.fromisoformat(silence["until"].replace("Z", "+00:00"))
    assert timedelta(hours=3, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=4)
    text = ok(run(env, "silence", "list"))
    assert text.splitlines()[0].split() == ["ID", "MATCHERS", "UNTIL", "AUTHOR", "COMMENT"]
    assert "cluster=ml-prod instance_group=gpu-workers tag:team=llm" in text
    assert ok(run(env, "silence", "list", "--expired")) == "no silences\n"

    assert ok(run(env, "silence", "expire", silence_id)).startswith(f"expired {silence_id}")
    assert ok(run(env, "silence", "list")) == "no silences\n"
    assert silence_id in ok(run(env, "silence", "list", "--expired"))
    assert "no active silence" in one_line_error(run(env, "silence", "expire", silence_id), code=1)


def test_author_and_until_given(env):
    ok(run(env, "silence", "add", "--cluster", "*", "--policy", "taint-drift", "--until", "2099-01-01T00:00:00Z",
           "--comment", "migration", "--author", "ana"))
    (silence,) = json.loads(ok(run(env, "silence", "list", "--format", "json")))["silences"]
    assert (silence["author"], silence["until"]) == ("ana", "2099-01-01T00:00:00Z")


@pytest.mark.parametrize("args, message", [
    (["--cluster", "*", "--for", "1h"], "every matcher is '*'"),
    (["--cluster", "ml-prod", "--until", "2020-01-01T00:00:00Z"], "not in the future"),
    (["--cluster", "ml-prod", "--for", "soon"], "--for: not a duration"),
    (["--cluster", "ml-prod", "--until", "tomorrow"], "--until 'tomorrow'"),
], ids=["empty matchers", "past", "bad duration", "bad time"])
def test_refused_silences_are_bad_input_and_write_nothing(env, args, message):
    assert message in one_line_error(run(env, "silence", "add", *args, "--comment", "x"))
    assert ok(run(env, "silence", "list")) == "no silences\n"


def test_all_allows_empty_matchers(env):
    ok(run(env, "silence", "add", "--cluster", "*", "--all", "--for", "30m", "--comment", "maintenance window"))
    assert "(everything)" in ok(run(env, "silence", "list"))


def test_a_missing_table_is_one_line(env):
    one_line_error(run(env, "silence", "list", "--table", "no-such-table"))


# --- alerts -------------------------------------------------------------------------------------------


def put_alerts() -> None:
    dynamodb, table = boto3.client("dynamodb"), "hyperpod-guard-ledger"
    now = datetime.now(UTC)
    base = Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster="ml-prod", condition="instance-failure",
                   summary="node down", instance_group="gpu-workers", node="i-1")
    rows: list[tuple[Finding, dict[str, Any]]] = [
        (base, {"state": AlertState.FIRING, "last_notified": now, "reason": "first"}),
        (replace(base, node="i-2"), {"state": AlertState.PENDING, "reason": "pending: 3m of 15m grace"}),
        (replace(base, cluster="speech-prod", node="i-9"),
         {"state": AlertState.RESOLVED, "resolved_at": now, "reason": "resolved: the condition cleared"}),
    ]
    for finding, changes in rows:
        record = replace(AlertRecord.start(finding, now - timedelta(minutes=30)), **changes)
        dynamodb.put_item(TableName=table, Item=to_item(record))


def test_alerts_by_state_and_cluster_with_the_silence_that_mutes_them(env):
    put_alerts()
    silence_id = ok(run(env, "silence", "add", "--cluster", "ml-*", "--node", "i-1", "--for", "1h",
                        "--comment", "swap")).strip()
    firing = json.loads(ok(run(env, "alerts", "--format", "json")))["alerts"]
    assert [(a["cluster"], a["node"], a["state"]) for a in firing] == [("ml-prod", "i-1", "firing")]
    assert firing[0]["silenced_by"]["id"] == silence_id and firing[0]["why"] == "first"
    every = json.loads(ok(run(env, "alerts", "--state", "all", "--format", "json")))["alerts"]
    assert [(a["cluster"], a["state"]) for a in every] == [
        ("ml-prod", "firing"), ("ml-prod", "pending"), ("speech-prod", "resolved")]
    assert [a["silenced_by"] for a in every[1:]] == [None, None]
    resolved = json.loads(ok(run(env, "alerts", "--state", "resolved", "--cluster", "speech-*", "--format", "json")))
    assert [a["why"] for a in resolved["alerts"]] == ["resolved: the condition cleared"]
    text = ok(run(env, "alerts", "--state", "pending"))
    assert text.splitlines()[0].split()[:4] == ["SEVERITY", "CLUSTER", "POLICY", "SCOPE"]
    assert "gpu-workers/i-2" in text and "pending: 3m of 15m grace" in text
    assert ok(run(env, "alerts", "--cluster", "none-*")) == "no firing alerts for clusters matching 'none-*'\n"


# --- explain ------------------------------------------------------------------------------------------


def test_explain_offline_with_tags(env, tmp_path: Path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    data = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--tags", "team=llm", "--rules", str(rules),
                             "--format", "json")))
    assert [(o["index"], o["by"]) for o in data["overrides"]] == [(0, ["name 'ml-*'"]), (1, ["tag team=llm"])]
    assert data["policies"]["degraded-group"]["grace"] == "0s"
    assert data["policies"]["unhealthy-node"]["severity"] == "warning"
    assert data["policies"]["taint-drift"]["enabled"] is True
    assert [s["comment"] for s in data["rules_silences"]] == ["in the rules"]
    assert data["adhoc_silences"] is None  # offline: the table is not read without --table
    untagged = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--rules", "-", "--format", "json",
                                 stdin=json.dumps(RULES))))
    assert [o["index"] for o in untagged["overrides"]] == [0]  # no tags given: the tag override does not match
    speech = ok(run(env, "explain", "--cluster", "speech-prod", "--rules", str(rules)))
    assert "taint-drift      disabled" in speech and "#2 by name 'speech-*'" in speech
    assert "rules silences that apply now: none" in speech


def test_explain_reads_the_rules_from_ssm_and_the_adhoc_silences(env):
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(RULES),
                                      Overwrite=True)
    silence_id = ok(run(env, "silence", "add", "--cluster", "ml-*", "--tag", "team=llm", "--for", "1h",
                        "--comment", "swap")).strip()
    ok(run(env, "silence", "add", "--cluster", "speech-*", "--for", "1h", "--comment", "other cluster"))
    tagged = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--tags", "team=llm", "--format", "json")))
    assert [s["id"] for s in tagged["adhoc_silences"]] == [silence_id]
    assert tagged["policies"]["degraded-group"]["grace"] == "0s"  # from SSM
    other_team = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--tags", "team=x", "--format", "json")))
    assert other_team["adhoc_silences"] == []
    text = ok(run(env, "explain", "--cluster", "ml-prod", "--tags", "team=llm"))
    assert f"{silence_id} cluster=ml-* tag:team=llm until" in text


def test_explain_with_invalid_rules_in_ssm_exits_1(env):
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String",
                                      Value='{"version": 1, "policies": {"degraded-group": {"grace": "soon"}}}')
    result = run(env, "explain", "--cluster", "ml-prod")
    assert result.returncode == 1 and "rules in SSM are invalid" in result.stderr
    assert "policies:" in result.stdout  # explained with what the evaluator uses instead


def test_explain_bad_rules_file_is_one_line(env, tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 2}')
    one_line_error(run(env, "explain", "--cluster", "x", "--rules", str(bad)))
