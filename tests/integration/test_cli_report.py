"""`hyperpod-guard report`, run as a user runs it (a subprocess) against moto in server mode.

The simulated week (local/report_week.py), moved to end at the last full hour, is archived with
archive.ArchiveWriter into the bucket the stack names (naming.archive_bucket_name); its open
episode is a firing alert in the ledger, as it is in a deployment (the archive keeps episodes once
they resolve). A pending alert is no incident. Counts and contents are asserted, never times."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from hyperpod_guard import naming
from hyperpod_guard.archive import ArchiveWriter, Episode
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.ledger_store import to_item
from hyperpod_guard.local import report_week
from hyperpod_guard.local.provision import provision
from hyperpod_guard.timeutil import isoformat
from tests.conftest import ACCOUNT, REGION
from tests.integration.test_cli_rules import aws_env
from tests.unit.test_reliability import parse

BUCKET = naming.archive_bucket_name(naming.DEFAULT_PREFIX, ACCOUNT, REGION)


def shifted(episode: Episode, by: timedelta) -> Episode:
    return episode.model_copy(update={
        name: value + by for name in ("first_seen", "fired_at", "resolved_at")
        if (value := getattr(episode, name)) is not None
    } | {"actions": [a.model_copy(update={"at": a.at + by}) for a in episode.actions]})


def firing(episode: Episode) -> AlertRecord:
    finding = Finding(policy=episode.policy, severity=Severity(episode.severity), cluster=episode.cluster,
                      condition=episode.condition, summary=episode.summary, instance_group=episode.instance_group,
                      node=episode.node, details={"reason": episode.reason})
    record = AlertRecord.start(finding, episode.first_seen)
    return replace(record, state=AlertState.FIRING, fired_at=episode.fired_at, reason="first")


@pytest.fixture
def week(aws) -> dict[str, str]:
    """The week archived and in the ledger; the period's --since/--until and the environment."""
    provision()
    by = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - report_week.END
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    writer = ArchiveWriter(s3, BUCKET)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for episode in (shifted(e, by) for e in report_week.week_episodes()):
        if episode.resolved_at is None:
            dynamodb.put_item(TableName=naming.table_name(), Item=to_item(firing(episode)))
        else:
            writer.put_episode(episode)
    for fact in report_week.week_repairs():
        writer.put_repair(fact.model_copy(update={"at": fact.at + by}))
    pending = replace(firing(shifted(report_week.week_episodes()[0], by)), state=AlertState.PENDING, fired_at=None,
                      fingerprint="pending-one")
    dynamodb.put_item(TableName=naming.table_name(), Item=to_item(pending))
    return {"since": isoformat(report_week.START + by), "until": isoformat(report_week.END + by), **aws_env(aws)}


def run(week: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in week.items() if k not in ("since", "until")}
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "report", "--since", week["since"],  # noqa: S603
                           "--until", week["until"], *args], capture_output=True, text=True, timeout=120, env=env)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # not a terminal: no progress line
    return result.stdout


def report_json(week: dict[str, str], *args: str) -> dict[str, Any]:
    return json.loads(ok(run(week, "--format", "json", *args)))


def test_the_week_from_the_archive_and_the_ledger(week):
    report = report_json(week)
    fleet = report["fleet"]
    assert (fleet["incidents"], fleet["open"], fleet["carried_in"]) == (15, 1, 1)  # the pending alert is none
    assert fleet["node_hours_unhealthy"] == 19.2  # the open one counted up to the period's end
    assert (fleet["group_hours_below_target"], fleet["group_hours_below_min"]) == (5.5, 3.0)
    assert fleet["mttr"]["remediation"]["count"] == 1 and fleet["mttr"]["all"]["count"] == 14
    assert sum(fleet["repairs"].values()) == 7
    assert [(o["cluster"], o["node"], o["incidents"]) for o in report["repeat_offenders"]] == [
        ("llm-train-prod", "i-0a1", 5)]
    [opened] = report["open_episodes"]
    assert (opened["cluster"], opened["node"], opened["policy"]) == ("speech-prod", "i-0d4", "unhealthy-node")
    assert [c["name"] for c in report["clusters"]] == ["llm-train-prod", "rl-research", "speech-prod"]


def test_text_csv_and_html(week, tmp_path: Path):
    text = ok(run(week))
    assert "fleet: 15 incident(s) (1 open, 1 from before the period), 19.2 node-hours unhealthy" in text
    assert "repeat-offender nodes" in text and "i-0a1" in text

    rows = list(csv.DictReader(io.StringIO(ok(run(week, "--format", "csv")))))
    fleet = {(r["metric"], r["key"]): r["value"] for r in rows if r["scope"] == "fleet"}
    assert fleet[("incidents", "")] == "15" and fleet[("incidents_by_policy", "unhealthy-node")] == "12"

    page_file = tmp_path / "report.html"
    result = run(week, "--format", "html", "--output", str(page_file))
    assert ok(result) == "" and f"written to {page_file}" in result.stderr
    page = parse(page_file.read_text())
    assert len(page.of("svg")) == 3 and not page.of("script")
    assert "speech-prod / inference" in "".join(page.text)


def test_the_cluster_glob(week):
    llm = report_json(week, "--cluster", "llm-*")
    assert [c["name"] for c in llm["clusters"]] == ["llm-train-prod"] and llm["fleet"]["incidents"] == 9
    assert llm["fleet"]["repairs"] == {"reboot started": 2, "reboot completed": 1, "reboot failed": 1,
                                       "replacement started": 1, "replacement completed": 1}
    speech = report_json(week, "--cluster", "speech-prod")  # no wildcard: that cluster, its open episode too
    assert (speech["fleet"]["incidents"], speech["fleet"]["open"]) == (3, 1)
    assert report_json(week, "--cluster", "nothing-*")["fleet"]["incidents"] == 0


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == "" and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result
    return result.stderr


def test_no_such_bucket_is_one_clear_line(week):
    error = one_line_error(run(week, "--bucket", "no-such-archive"))
    assert "archive bucket 'no-such-archive' does not exist" in error


def test_the_default_bucket_follows_the_prefix(week):
    error = one_line_error(run(week, "--prefix", "other"))
    assert f"archive bucket '{naming.archive_bucket_name('other', ACCOUNT, REGION)}' does not exist" in error


@pytest.mark.parametrize("args, message", [
    (("--since", "last week"), "--since 'last week': expected a duration back from now"),
    (("--since", "1d", "--until", "2d"), "empty period"),
])
def test_a_bad_period_is_one_line(week, args, message):
    env = {k: v for k, v in week.items() if k not in ("since", "until")}
    result = subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", "report", *args], capture_output=True,  # noqa: S603
                            text=True, timeout=120, env=env)
    assert message in one_line_error(result)
