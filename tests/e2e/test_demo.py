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
    # two llm-train clusters (issue 22) 3; the unhealthy node's cluster 2 (issue 23: a second node while the
    # Kubernetes API refuses)
    week = [p for p in sns if "-fleet-" in p.name]
    assert len(slack) == len(sns) == 23 and len(week) == 10
    assert len({json.loads(p.read_text())["sns_message_id"] for p in slack}) == 23  # no SNS message twice
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
    assert len(chatbot) == len(emails) == len(every_sns) == 26
    for path in chatbot:
        validate_chatbot(json.loads(path.read_text()))
    for path in emails:
        text = path.read_text()
        assert text.startswith("Subject: [") and "\nCluster: " in text and "{" not in text, path.name
    resolved = next(t for t in (p.read_text() for p in emails)
                    if t.startswith("Subject: [RESOLVED] demo-degraded"))
    assert "Now: Instance group p5-train is back to InService" in resolved and "Lasted: " in resolved
    assert "back to InService" in page and "Runbook: failed-rollback" in page  # what the HTML shows
    # blast radius (issue 23): the unhealthy node's alert says what runs on it, read from its EKS cluster's
    # Kubernetes API (the stand-in, over TLS), and is routed by owner to the team whose job it hits, with the
    # on-call and the default channel; while the API answers 403 the next node's alert goes out all the same,
    # saying why its workload is unknown, and not to the team (the owner is unknown)
    (team,) = [json.loads(p.read_text()) for p in sorted((tmp_path / "slack" / demo.TEAM_LLM).glob("*.json"))]
    paged = " ".join(json.dumps(team["payload"], ensure_ascii=False).split())
    assert team["cluster"] == demo.NODE_CLUSTER and "*Workload* on `hyperpod-i-0f1e2d3c4b5a69788`" in paged
    assert "PyTorchJob llama-70b-pretrain in team-llm" in paged
    assert "6 of 64 pods on this node, auto-resume off" in paged
    assert "auto-resume is off: llama-70b-pretrain will not restart by itself" in paged
    node_mail = [" ".join(p.read_text().split()) for p in emails if p.name.endswith(f"-{demo.NODE_CLUSTER}.txt")]
    assert len(node_mail) == 2 and "llama-70b-pretrain" in node_mail[0]
    assert "workload unknown: forbidden" in node_mail[1] and "llama-70b-pretrain" not in node_mail[1]
    assert page.count("receiver team-llm") == 1 and "workload unknown: forbidden" in page
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


def _node_stage(*, read: bool = True, team: bool = True, second: bool = True) -> SimpleNamespace:
    """What the unhealthy-node scenario leaves: `read` the first alert's workload, `team` routed by owner,
    `second` the alert sent while the Kubernetes API refused."""
    jobs = [{"name": demo.LLAMA, "kind": "PyTorchJob", "namespace": "team-llm", "on_node": 6, "total": 64,
             "auto_resume": False}]
    first_receivers = [demo.TEAM_LLM, demo.ONCALL, "default"] if team else [demo.ONCALL, "default"]
    items = [({"node": f"hyperpod-{demo.SICK_NODE}", "jobs": jobs, "unknown": None} if read else None,
              demo.SICK_NODE, first_receivers)]
    if second:
        refused = {"node": f"hyperpod-{demo.SECOND_NODE}", "jobs": [],
                   "unknown": "forbidden: grant the view access entry"}
        items.append((refused, demo.SECOND_NODE, [demo.ONCALL, "default"]))
    sns = [{"message": {"cluster": demo.NODE_CLUSTER, "status": "firing", "items": [
        {"finding": {"node": node, "severity": "critical"}, "receivers": [{"name": r} for r in receivers],
         "workload": workload}]}} for workload, node, receivers in items]
    text = (f"*Workload* on `hyperpod-{demo.SICK_NODE}`\n• PyTorchJob {demo.LLAMA} in team-llm: 6 of 64 pods, "
            f"auto-resume off\n💡 auto-resume is off: {demo.LLAMA} will not restart by itself") if read else "none"
    slack = [{"cluster": demo.NODE_CLUSTER, "receiver": demo.TEAM_LLM, "payload": {"text": text}}] if team else []
    read_once = SimpleNamespace(target=f"/api/v1/nodes/hyperpod-{demo.SICK_NODE}", status=200)
    return SimpleNamespace(sns=sns, slack=slack, kube=SimpleNamespace(requests=[read_once]))


def test_the_unhealthy_node_scenario_wants_the_workload_and_the_alert_that_could_not_read_it():
    scenario = next(s for s in demo.SCENARIOS if s.cluster == demo.NODE_CLUSTER)
    assert scenario.check(_node_stage(), scenario) == []
    assert len(scenario.check(_node_stage(read=False), scenario)) == 2  # the item's workload and the Slack section
    assert len(scenario.check(_node_stage(team=False), scenario)) == 2  # not routed to the team, nothing posted there
    assert len(scenario.check(_node_stage(second=False), scenario)) == 2  # one message: none during the 403
