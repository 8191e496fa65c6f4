"""Account and region on the command line (issue 22), run as a user runs it (a subprocess) against
moto in server mode: `silence add --account --cluster-region` (and a silence stored before the
fleet, which reads back as '*'), `alerts --account --cluster-region` over home and qualified keys,
`routes test` and `explain` with a cluster's location, `report --account --cluster-region`.

moto's caller is account 123456789012 and the CLI's region us-west-2: a bare key's cluster (home) is
there. `--cluster-region`, not `--region`: every command's --region is the AWS region it calls."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from hyperpod_guard import naming
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.ledger_store import to_item
from tests.conftest import ACCOUNT, REGION
from tests.integration.test_cli_oncall import env, ok, one_line_error, run  # noqa: F401 (env: a fixture)
from tests.integration.test_cli_report import report_json, week  # noqa: F401 (week: a fixture)

SPOKE = "ml-prod@444455556666/us-east-1"
EU = "speech@777788889999/eu-west-1"


def put_fleet_alerts() -> None:
    """ml-prod at home, the spoke's ml-prod, and speech in eu-west-1: each one firing alert."""
    dynamodb = boto3.client("dynamodb")
    now = datetime.now(UTC)
    for key in ("ml-prod", SPOKE, EU):
        finding = Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster=key,
                          condition="instance-failure", summary="node down", instance_group="gpu", node="i-1")
        record = replace(AlertRecord.start(finding, now - timedelta(minutes=30)), state=AlertState.FIRING,
                         last_notified=now, reason="first")
        dynamodb.put_item(TableName=naming.table_name(), Item=to_item(record))


def alerts(cli_env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    return json.loads(ok(run(cli_env, "alerts", "--format", "json", *args)))["alerts"]


def places(found: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return [(a["cluster"], a["account"], a["region"]) for a in found]


def test_alerts_by_account_and_region(env):  # noqa: F811 (fixture from test_cli_oncall)
    put_fleet_alerts()
    # no filter: no STS call, a bare key's location unknown (null)
    assert places(alerts(env)) == [("ml-prod", None, None), (SPOKE, "444455556666", "us-east-1"),
                                   (EU, "777788889999", "eu-west-1")]
    assert places(alerts(env, "--account", "444455556666")) == [(SPOKE, "444455556666", "us-east-1")]
    # home: the caller's account and the CLI's region
    assert places(alerts(env, "--account", ACCOUNT)) == [("ml-prod", ACCOUNT, REGION)]
    assert places(alerts(env, "--cluster-region", "us-*")) == [("ml-prod", ACCOUNT, REGION),
                                                               (SPOKE, "444455556666", "us-east-1")]
    assert [a["cluster"] for a in alerts(env, "--cluster-region", "eu-*", "--account", "7777*")] == [EU]
    # --cluster globs the name, in every account and region
    assert [a["cluster"] for a in alerts(env, "--cluster", "ml-prod")] == ["ml-prod", SPOKE]
    text = ok(run(env, "alerts"))
    assert text.splitlines()[0].split()[:5] == ["SEVERITY", "CLUSTER", "ACCOUNT", "REGION", "POLICY"]
    assert any(line.split()[:4] == ["critical", "ml-prod", "444455556666", "us-east-1"] for line in text.splitlines())
    assert ok(run(env, "alerts", "--account", "999999999999")) == \
        "no firing alerts for clusters matching '*' in account 999999999999\n"
    refused = run(env, "alerts", "--account", "12")
    assert refused.returncode == 2 and "argument --account: not an account id or glob: '12'" in refused.stderr


def test_alerts_of_one_location_keep_the_old_table(env):  # noqa: F811 (fixture from test_cli_oncall)
    """Only home clusters: the table is as it was before the fleet (no ACCOUNT/REGION columns)."""
    put_fleet_alerts()
    text = ok(run(env, "alerts", "--cluster-region", REGION))
    assert text.splitlines()[0].split()[:4] == ["SEVERITY", "CLUSTER", "POLICY", "SCOPE"]


def test_silence_by_account_and_region_and_one_from_before_the_fleet(env):  # noqa: F811 (fixture from test_cli_oncall)
    put_fleet_alerts()
    silence_id = ok(run(env, "silence", "add", "--cluster", "ml-*", "--account", "444455556666",
                        "--cluster-region", "us-east-1", "--for", "1h", "--comment", "spoke swap")).strip()
    (listed,) = json.loads(ok(run(env, "silence", "list", "--format", "json")))["silences"]
    assert {k: listed["matchers"][k] for k in ("cluster", "account", "region")} == {
        "cluster": "ml-*", "account": "444455556666", "region": "us-east-1"}
    assert f"{silence_id}  cluster=ml-* account=444455556666 region=us-east-1" in ok(run(env, "silence", "list"))
    by = {a["cluster"]: (a["silenced_by"] or {}).get("id") for a in alerts(env)}
    assert by == {"ml-prod": None, SPOKE: silence_id, EU: None}  # the home ml-prod is another cluster
    # an item written before the fleet: no account, no region
    item = json.loads(json.dumps(boto3.client("dynamodb").get_item(
        TableName=naming.table_name(), Key={"pk": {"S": "SILENCE"}, "sk": {"S": f"SILENCE#{silence_id}"}})["Item"]))
    old = {**{k: v for k, v in item.items() if k not in ("account", "region")},
           "sk": {"S": "SILENCE#old"}, "id": {"S": "old"}}
    boto3.client("dynamodb").put_item(TableName=naming.table_name(), Item=old)
    listed = {s["id"]: s["matchers"] for s in json.loads(ok(run(env, "silence", "list", "--format", "json")))[
        "silences"]}
    assert (listed["old"]["account"], listed["old"]["region"]) == ("*", "*")
    assert {a["cluster"]: (a["silenced_by"] or {}).get("id") for a in alerts(env)}["ml-prod"] == "old"
    refused = run(env, "silence", "add", "--cluster", "x", "--cluster-region", "Mars", "--for", "1h", "--comment", "x")
    assert refused.returncode == 2 and "argument --cluster-region: not a region name or glob: 'Mars'" in refused.stderr


RULES = {"version": 1, "overrides": [
    {"match": {"account": "444455556666"}, "policies": {"degraded-group": {"grace": "7m"}}}],
    "routing": {"routes": [{"match": {"account": "444455556666", "region": "us-*"}, "receivers": ["spoke-team"]}]}}


def test_routes_test_and_explain_with_a_location(env, tmp_path: Path):  # noqa: F811 (fixture from test_cli_oncall)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    common = ("--rules", str(rules), "--format", "json", "--policy", "unhealthy-node", "--severity", "critical")

    def receivers(*args: str) -> list[str]:
        data = json.loads(ok(run(env, "routes", "test", *common, *args)))
        return [r["name"] for r in data["routing"]["alerts"][0]["receivers"]]

    assert receivers("--cluster", "ml-prod") == ["default"]                 # where: unknown
    assert receivers("--cluster", "ml-prod", "--account", "444455556666", "--cluster-region", "us-east-1") == [
        "spoke-team"]
    assert receivers("--cluster", SPOKE) == ["spoke-team"]                  # the key says where
    assert receivers("--cluster", "ml-prod", "--account", "444455556666", "--cluster-region", "eu-west-1") == [
        "default"]
    assert "go together" in one_line_error(run(env, "routes", "test", "--cluster", "x", "--account", "444455556666",
                                               "--rules", str(rules)))
    text = ok(run(env, "routes", "test", "--cluster", SPOKE, "--rules", str(rules)))
    assert f"cluster {SPOKE} in 444455556666/us-east-1" in text and "account=444455556666 region=us-*" in text

    explained = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--account", "444455556666",
                                  "--cluster-region", "us-east-1", "--rules", str(rules), "--format", "json")))
    assert explained["location"] == "444455556666/us-east-1"
    assert explained["overrides"] == [{"index": 0, "by": ["account '444455556666'"],
                                       "policies": {"degraded-group": {"grace": "7m"}}}]
    assert explained["policies"]["degraded-group"]["grace"] == "7m"
    home = json.loads(ok(run(env, "explain", "--cluster", "ml-prod", "--rules", str(rules), "--format", "json")))
    assert home["overrides"] == [] and home["location"] is None


def test_report_by_account_and_region(week):  # noqa: F811 (fixture from test_cli_report)
    """The week's episodes are all of moto's account in us-west-2; one more firing alert is of a spoke."""
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=naming.table_name(), Item=to_item(replace(
        AlertRecord.start(Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster=SPOKE,
                                  condition="instance-failure", summary="node down", node="i-9"),
                          datetime.now(UTC) - timedelta(hours=2)),
        state=AlertState.FIRING, fired_at=datetime.now(UTC) - timedelta(hours=2), reason="first")))
    whole = report_json(week)
    assert (whole["fleet"]["incidents"], whole["fleet"]["open"]) == (16, 2) and "filters" not in whole
    home = report_json(week, "--account", ACCOUNT)
    assert (home["fleet"]["incidents"], home["fleet"]["open"]) == (15, 1) and home["filters"] == {"account": ACCOUNT}
    spoke = report_json(week, "--account", "4444*", "--cluster-region", "us-east-1")
    assert (spoke["fleet"]["incidents"], [c["name"] for c in spoke["clusters"]]) == (1, [SPOKE])
    assert spoke["clusters"][0]["account"] == "444455556666" and sum(spoke["fleet"]["repairs"].values()) == 0
    assert report_json(week, "--cluster-region", "eu-*")["fleet"]["incidents"] == 0
    cli_env = {k: v for k, v in week.items() if k not in ("since", "until")}
    text = ok(run(cli_env, "report", "--since", week["since"], "--until", week["until"], "--account", ACCOUNT,
                  "--cluster", "llm-*"))
    assert text.splitlines()[0].endswith(f", of cluster=llm-* account={ACCOUNT}")

