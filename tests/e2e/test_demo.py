"""`hyperpod-guard demo` as a user runs it, and its expectation checks."""

from __future__ import annotations

import json
import subprocess
import sys
from fnmatch import fnmatchcase
from types import SimpleNamespace

from hyperpod_guard.local import demo
from tests.chatbot_schema import validate_chatbot


def test_demo_runs_every_scenario_and_writes_the_html(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hyperpod_guard.cli", "demo", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(demo.SCENARIOS)}/{len(demo.SCENARIOS)} scenarios met their expected outcome" in result.stdout
    assert f"Slack messages as a person sees them: {(tmp_path / 'index.html').resolve()}" in result.stdout
    page = (tmp_path / "index.html").read_text()
    for scenario in demo.SCENARIOS:
        assert scenario.name in page
    assert "NOT met" not in page
    slack = sorted((tmp_path / "slack" / "default").glob("*.json"))
    every_sns = sorted((tmp_path / "sns").glob("*.json"))
    sns = [p for p in every_sns if not p.name.endswith("-demo-chatops.json")]  # the ChatOps scenario's: app mode
    # every SNS message reached Slack exactly once (the outage one after recovery); the rolled-back group's
    # Degraded status is part of the rollback's alert, not a message of its own (one problem, one alert);
    # the grouped storm of 200 nodes is 2 messages (grouping, issue 17); the week before (issue 21) 10; the hub's
    # two llm-train clusters (issue 22) 3
    week = [p for p in sns if "-fleet-" in p.name]
    assert len(slack) == len(sns) == 22 and len(week) == 10
    assert len({json.loads(p.read_text())["sns_message_id"] for p in slack}) == 22  # no SNS message twice
    # routing (issue 18): the critical messages also reach the on-call receiver, with its user group mentioned
    critical = [json.loads(p.read_text()) for p in sns]
    critical = [m for m in critical if m["attributes"]["severity"] == "critical"]
    oncall = [json.loads(p.read_text()) for p in sorted((tmp_path / "slack" / demo.ONCALL).glob("*.json"))]
    assert len(oncall) == len(critical) >= 3
    # its user group is mentioned when an alert fires, not when it resolves
    firing = [m for m in oncall if "resolved" not in m["payload"]["blocks"][0]["text"]["text"]]
    assert firing and all("<!subteam^S0DEMO123>" in json.dumps(m["payload"]) for m in firing)
    assert not any("<!subteam^S0DEMO123>" in json.dumps(m["payload"]) for m in oncall if m not in firing)
    # what Chatbot and email subscribers get: each SNS message's "https" and "email" per protocol
    chatbot = sorted((tmp_path / "chatbot").glob("*.json"))
    emails = sorted((tmp_path / "email").glob("*.txt"))
    assert len(chatbot) == len(emails) == len(every_sns) == 25
    for path in chatbot:
        validate_chatbot(json.loads(path.read_text()))
    for path in emails:
        text = path.read_text()
        assert text.startswith("Subject: [") and "\nCluster: " in text and "{" not in text, path.name
    resolved = next(t for t in (p.read_text() for p in emails)
                    if t.startswith("Subject: [RESOLVED] demo-degraded"))
    assert "Now: Instance group p5-train is back to InService" in resolved and "Lasted: " in resolved
    assert "back to InService" in page and "Runbook: failed-rollback" in page  # what the HTML shows
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    clusters = {row["cluster"] for row in ledger}
    assert all(any(fnmatchcase(c, s.cluster) for c in clusters) for s in demo.SCENARIOS)
    logs = (tmp_path / "lambda-logs.jsonl").read_text().splitlines()
    assert any('"alert decision"' in line for line in logs)
    # Slack app mode (issue 20): the ChatOps scenario's three messages (first, the approved replacement, the
    # resolved) became, in each channel, one parent (updated) and its thread: the acknowledgement, the approval
    # and those messages' news; the refused click only its user saw
    for receiver in ("default", demo.ONCALL):
        (parent,) = json.loads((tmp_path / "slack-app" / f"{receiver}.json").read_text())
        replies = [r["text"] for r in parent["replies"]]
        assert parent["edits"] >= 2 and "*Resolved*" in json.dumps(parent["blocks"]), parent
        assert len(replies) == 4 and replies[0].startswith("Acknowledged by maya") and "Approved by sam" in replies[1]
    assert "Not done: only the approvers may approve" in page and "replaced i-" in page
    assert page.count("only visible to lee") == 1  # with the ChatOps scenario, not with every scenario
    # many accounts (issue 22): the stage is a hub; llm-train in the spoke account is paged by its key, naming its
    # account and region, and resolves; llm-train at home is an alert of its own, still firing; the same name
    # from an account not on the allow-list is ignored, with its reason in the timeline
    spoke = "llm-train@444455556666/us-east-1"
    fleet = [json.loads(p.read_text()) for p in every_sns if "-llm-train" in p.name]
    assert [(m["message"]["cluster"], m["message"]["status"], m["attributes"]["account"], m["attributes"]["region"])
            for m in fleet] == [(spoke, "firing", "444455556666", "us-east-1"),
                                ("llm-train", "firing", "123456789012", "us-west-2"),
                                (spoke, "resolved", "444455556666", "us-east-1")]
    assert len(list((tmp_path / "sns").glob("*-llm-train@444455556666_us-east-1.json"))) == 2  # '/' -> '_'
    for receiver in ("default", demo.ONCALL):  # critical: both receivers, each payload naming where it is
        paged = [json.dumps(json.loads(p.read_text())["payload"])
                 for p in sorted((tmp_path / "slack" / receiver).glob("*-llm-train@*.json"))]
        assert len(paged) == 2 and all(spoke in m and "444455556666" in m and "us-east-1" in m for m in paged)
    spoke_mail = next(p.read_text() for p in emails if p.name.endswith("-llm-train@444455556666_us-east-1.txt"))
    assert f"Cluster: {spoke}\nAccount: 444455556666\nRegion: us-east-1" in spoke_mail
    fleet_alerts = {row["cluster"]: row for row in ledger if row["cluster"].startswith("llm-train")}
    assert {key: row["state"] for key, row in fleet_alerts.items()} == {"llm-train": "firing", spoke: "resolved"}
    assert fleet_alerts["llm-train"]["fingerprint"] != fleet_alerts[spoke]["fingerprint"]
    timeline = (tmp_path / "timeline.txt").read_text()
    (ignored,) = [t for t in timeline.split("\nT+") if "from 999988887777/us-east-1" in t]
    assert "ignored: event from account '999988887777'" in ignored
    assert "ListClusters in 4 locations" in timeline and "Many accounts: one hub" in page and spoke in page
    # the reliability report of the week (issue 21), from the archive the pipeline wrote as episodes resolved
    report = json.loads((tmp_path / "report.json").read_text())
    fleet = report["fleet"]
    assert fleet["incidents"] == 6 and fleet["open"] == 0
    assert {cause: m["count"] for cause, m in fleet["mttr"].items()} == {
        "hyperpod-repair": 1, "remediation": 1, "other": 4, "all": 6}
    assert [o["node"] for o in report["repeat_offenders"]] == ["i-0a1a1a1a1a1a1a1a1"]
    assert fleet["node_hours_unhealthy"] > 0 and fleet["group_hours_below_target"] == 4.9
    assert (tmp_path / "report.csv").read_text().startswith("scope,cluster,instance_group,node,metric,key,value")
    assert "<svg" in (tmp_path / "report.html").read_text()


def _item(status: str, now: str = "Instance group p5-train is back to InService, 16/16 nodes") -> dict[str, object]:
    if status == "resolved":
        return {"reason": "resolved", "resolved_evidence": {"summary": now}}
    return {"reason": "first"}


def _stage(sns_statuses: list[str], slack: int) -> SimpleNamespace:
    cluster = "demo-degraded"
    return SimpleNamespace(
        sns=[{"message": {"cluster": cluster, "status": s, "items": [_item(s)]}, "at": "x", "attributes": {}}
             for s in sns_statuses],
        slack=[{"cluster": cluster, "at": "x", "sns_message_id": str(i), "receiver": "default"} for i in range(slack)],
    )


def test_a_scenario_whose_outcome_differs_is_reported():
    scenario = next(s for s in demo.SCENARIOS if s.cluster == "demo-degraded")
    assert scenario.check(_stage(["firing", "resolved"], 2), scenario) == []
    assert scenario.check(_stage(["firing", "firing", "resolved"], 3), scenario) != []  # a repeat too many
    assert scenario.check(_stage(["firing"], 1), scenario) != []  # never resolved
    stale = _stage(["firing", "resolved"], 2)
    stale.sns[1]["message"]["items"] = [_item("resolved", "Instance group p5-train is Degraded (15/16 nodes)")]
    assert scenario.check(stale, scenario) != []  # the resolved repeats the firing evidence
