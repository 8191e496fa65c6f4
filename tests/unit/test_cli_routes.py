"""`hyperpod-guard routes test` and the routing section of `explain`, run as a user runs them (a
subprocess): offline with --rules, and from the rules in SSM (moto in server mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3

from hyperpod_guard.policies import POLICY_NAMES

RULES: dict[str, Any] = {"version": 1, "policies": {"cluster-health": {"severity": "warning"}}, "routing": {
    "routes": [
        {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"], "mention": "subteam^S0123ABCD",
         "continue": True},
        {"match": {"tags": {"team": "llm"}}, "receivers": ["llm-team"]},
        {"match": {"instance_group": "p5-*", "policy": ["taint-drift"]}, "receivers": ["gpu-infra"]},
    ],
    "default": ["default"],
}}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def rules_file(tmp_path: Path, document: dict[str, Any] = RULES) -> str:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    return str(path)


ONE_ALERT = ("--cluster", "ml-prod", "--tags", "team=llm", "--severity", "critical", "--policy", "failed-rollback",
             "--instance-group", "p5-train")


def test_routes_test_one_alert_text(tmp_path: Path):
    out = ok(run("routes", "test", *ONE_ALERT, "--rules", rules_file(tmp_path)))
    assert out.splitlines() == [
        "cluster ml-prod (tags: team=llm), instance group p5-train, policy failed-rollback, severity critical",
        "routes matched: #0 (continue), #1",
        "RECEIVER   MENTION               ROUTE",
        "---------  --------------------  -----",
        "ml-oncall  <!subteam^S0123ABCD>  #0",
        "llm-team   -                     #1",
        "route table (first match wins unless `continue`):",
        "  #0 severity=critical -> ml-oncall mention <!subteam^S0123ABCD>, continue",
        "  #1 tag:team=llm -> llm-team",
        "  #2 policy=taint-drift instance_group=p5-* -> gpu-infra",
        "  default -> default",
    ]


def test_routes_test_one_alert_json_from_stdin():
    out = ok(run("routes", "test", "--cluster", "ml-prod", "--severity", "warning", "--policy", "taint-drift",
                 "--instance-group", "p5-a", "--rules", "-", "--format", "json", stdin=json.dumps(RULES)))
    data = json.loads(out)
    assert data["cluster"] == "ml-prod" and data["tags"] is None
    assert data["routing"]["alerts"] == [{"policy": "taint-drift", "severity": "warning", "routes": [2],
                                          "receivers": [{"name": "gpu-infra", "mention": None, "route": 2}]}]
    assert data["routing"]["continue"] == [0] and data["routing"]["by_instance_group"] == []


def test_routes_test_default_route_and_the_routes_not_tried(tmp_path: Path):
    out = ok(run("routes", "test", "--cluster", "speech", "--severity", "info", "--policy", "taint-drift",
                 "--rules", rules_file(tmp_path)))
    assert "routes matched: none, so the default receivers" in out
    assert "default   -        default" in out
    assert "not tried: #2 (match on an instance group" in out


def test_routes_test_without_policy_and_severity_shows_each(tmp_path: Path):
    data = json.loads(ok(run("routes", "test", "--cluster", "ml-prod", "--tags", "team=llm", "--rules",
                             rules_file(tmp_path), "--format", "json")))
    alerts = data["routing"]["alerts"]
    assert len(alerts) == len(POLICY_NAMES) * 3  # every policy, every severity
    assert {(a["severity"], tuple(a["routes"])) for a in alerts} == {("critical", (0, 1)), ("warning", (1,)),
                                                                     ("info", (1,))}
    text = ok(run("routes", "test", "--cluster", "ml-prod", "--policy", "rules-invalid", "--rules",
                  rules_file(tmp_path)))
    assert "  rules-invalid  critical  #0       ml-oncall <!subteam^S0123ABCD>" in text
    assert "  rules-invalid  warning   default  default" in text


def test_routes_test_bad_input_is_one_line_exit_2(tmp_path: Path):
    bad = run("routes", "test", "--cluster", "x", "--rules", rules_file(tmp_path, {"version": 1, "routing": {
        "routes": [{"receivers": ["a"], "mention": "@oncall"}]}}))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: 1 problem(s) in rules; first: $.routing.routes[0].mention: Value error, "
                                 "not a Slack mention") and bad.stderr.count("\n") == 1
    empty = run("routes", "test", "--cluster", " ", "--rules", rules_file(tmp_path))
    assert (empty.returncode, empty.stderr) == (2, "error: --cluster must not be empty\n")
    unknown = run("routes", "test", "--cluster", "x", "--policy", "taint-drfit", "--rules", rules_file(tmp_path))
    assert unknown.returncode == 2 and "invalid choice: 'taint-drfit'" in unknown.stderr


def test_routes_test_help_has_an_example_and_the_exit_codes():
    out = ok(run("routes", "test", "--help"))
    assert "hyperpod-guard routes test --cluster ml-prod --tags team=llm --severity critical" in out
    assert "routes matched: #0 (continue), #1" in out
    assert "exit codes: 0 routed; 1 the rules in SSM are invalid" in " ".join(out.split())


def test_routes_test_reads_the_rules_from_ssm(aws):
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(RULES),
                                      Overwrite=True)
    data = json.loads(ok(run("routes", "test", *ONE_ALERT, "--format", "json")))
    assert [(r["name"], r["route"]) for r in data["routing"]["alerts"][0]["receivers"]] == [("ml-oncall", 0),
                                                                                            ("llm-team", 1)]
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Overwrite=True,
                                      Value='{"version": 1, "routing": {"default": []}}')
    invalid = run("routes", "test", *ONE_ALERT)
    assert invalid.returncode == 1 and "rules in SSM are invalid" in invalid.stderr
    assert "ml-oncall" not in invalid.stdout and "default -> default" in invalid.stdout  # the defaults instead


# --- explain ------------------------------------------------------------------------------------


def test_explain_shows_the_routing_per_enabled_policy_and_severity(tmp_path: Path):
    data = json.loads(ok(run("explain", "--cluster", "ml-prod", "--tags", "team=llm", "--rules", rules_file(tmp_path),
                             "--format", "json")))
    routing = data["routing"]
    # cluster-health's settings force warning: only that severity; the others: each
    assert [(a["policy"], a["severity"]) for a in routing["alerts"] if a["policy"] == "cluster-health"] == [
        ("cluster-health", "warning")]
    assert len(routing["alerts"]) == (len(POLICY_NAMES) - 1) * 3 + 1
    critical = next(a for a in routing["alerts"] if (a["policy"], a["severity"]) == ("taint-drift", "critical"))
    assert critical["routes"] == [0, 1]
    assert critical["receivers"] == [{"name": "ml-oncall", "mention": "<!subteam^S0123ABCD>", "route": 0},
                                     {"name": "llm-team", "mention": None, "route": 1}]
    assert routing["by_instance_group"] == [2]
    text = ok(run("explain", "--cluster", "ml-prod", "--rules", rules_file(tmp_path)))
    section = text.split("routing of alerts about the whole cluster, per enabled policy and severity:\n", 1)[1]
    lines = section.splitlines()
    words = [line.split() for line in lines]  # the columns are as wide as the longest policy name
    assert words[0] == ["POLICY", "SEVERITY", "ROUTES", "RECEIVERS"]
    assert words[2] == ["taint-drift", "critical", "#0", "ml-oncall", "<!subteam^S0123ABCD>"]
    assert ["cluster-health", "warning", "default", "default"] in words
    assert "  not tried: #2 (match on an instance group; `hyperpod-guard routes test --instance-group G` tries them)" \
        in lines
    assert lines[-4:] == ["    #0 severity=critical -> ml-oncall mention <!subteam^S0123ABCD>, continue",
                          "    #1 tag:team=llm -> llm-team", "    #2 policy=taint-drift instance_group=p5-* -> gpu-infra",
                          "    default -> default"]


def test_explain_without_routes_says_everything_goes_to_default(tmp_path: Path):
    text = ok(run("explain", "--cluster", "ml-prod", "--rules", rules_file(tmp_path, {"version": 1})))
    assert text.rstrip().endswith("routing of alerts about the whole cluster, per enabled policy and severity:\n"
                                  "  no routes: every alert goes to default")


# --- routes by owner (issue 23) -------------------------------------------------------------------


OWNER_RULES: dict[str, Any] = {"version": 1, "workload": [{}], "routing": {"routes": [
    {"match": {"namespace": "team-*", "workload_labels": {"team": "llm"}}, "receivers": ["llm-team"],
     "continue": True},
    {"match": {"slurm_account": "research"}, "receivers": ["research"]},
    {"match": {"severity": ["critical"]}, "receivers": ["ml-oncall"]},
], "default": ["default"]}}
NODE_ALERT = ("--cluster", "ml-prod", "--severity", "critical", "--policy", "unhealthy-node")


def test_routes_test_with_an_owner(tmp_path: Path):
    rules = rules_file(tmp_path, OWNER_RULES)
    out = ok(run("routes", "test", *NODE_ALERT, "--namespace", "team-a", "--label", "team=llm", "--label",
                 "tier=prod", "--rules", rules))
    lines = out.splitlines()
    assert lines[0] == ("cluster ml-prod (tags: none), instance group none (an alert about the whole cluster), "
                        "owner namespace=team-a label:team=llm label:tier=prod, policy unhealthy-node, severity "
                        "critical")
    assert lines[1] == "routes matched: #0 (continue), #2"
    assert "  #0 namespace=team-* label:team=llm -> llm-team, continue" in lines
    assert not any(line.startswith("not tried") for line in lines)

    data = json.loads(ok(run("routes", "test", *NODE_ALERT, "--slurm-account", "research", "--rules", rules,
                             "--format", "json")))
    assert data["owner"] == {"namespace": None, "slurm_account": "research", "labels": {}}
    assert [(r["name"], r["route"]) for r in data["routing"]["alerts"][0]["receivers"]] == [("research", 1)]
    # one job carries every owner given: a label the route wants, but another namespace
    other = json.loads(ok(run("routes", "test", *NODE_ALERT, "--namespace", "ops", "--label", "team=llm",
                              "--rules", rules, "--format", "json")))
    assert other["routing"]["alerts"][0]["routes"] == [2]


def test_routes_test_without_an_owner_lists_the_owner_routes_as_not_tried(tmp_path: Path):
    out = ok(run("routes", "test", *NODE_ALERT, "--rules", rules_file(tmp_path, OWNER_RULES)))
    assert "routes matched: #2" in out
    assert ("not tried: #0, #1 (match on an owner; --namespace, --slurm-account or --label KEY=VALUE tries them)"
            in out.splitlines())
    data = json.loads(ok(run("routes", "test", *NODE_ALERT, "--rules", rules_file(tmp_path, OWNER_RULES),
                             "--format", "json")))
    assert data["owner"] is None and data["routing"]["by_owner"] == [0, 1]


def test_routes_test_bad_owner_input_is_exit_2(tmp_path: Path):
    rules = rules_file(tmp_path, OWNER_RULES)
    bad_label = run("routes", "test", *NODE_ALERT, "--label", "team", "--rules", rules)
    assert bad_label.returncode == 2 and "expected KEY=VALUE, got 'team'" in bad_label.stderr
    empty = run("routes", "test", *NODE_ALERT, "--namespace", " ", "--rules", rules)
    assert (empty.returncode, empty.stderr) == (2, "error: --namespace must not be empty\n")


def test_explain_with_an_owner(tmp_path: Path):
    rules = rules_file(tmp_path, OWNER_RULES)
    data = json.loads(ok(run("explain", "--cluster", "ml-prod", "--namespace", "team-a", "--label", "team=llm",
                             "--rules", rules, "--format", "json")))
    assert data["owner"] == {"namespace": "team-a", "slurm_account": None, "labels": {"team": "llm"}}
    critical = next(a for a in data["routing"]["alerts"] if (a["policy"], a["severity"]) == ("unhealthy-node",
                                                                                             "critical"))
    assert critical["routes"] == [0, 2] and data["routing"]["by_owner"] == []
    text = ok(run("explain", "--cluster", "ml-prod", "--rules", rules))
    assert ("  not tried: #0, #1 (match on an owner; --namespace, --slurm-account or --label KEY=VALUE tries them)"
            in text.splitlines())
    with_owner = ok(run("explain", "--cluster", "ml-prod", "--slurm-account", "research", "--rules", rules))
    assert with_owner.splitlines()[0].startswith("cluster ml-prod (tags: none given (overrides and silences that "
                                                 "select by tag do not match)) at ")
    assert with_owner.splitlines()[0].endswith(", owner slurm_account=research")
