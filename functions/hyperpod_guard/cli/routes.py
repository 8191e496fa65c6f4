"""`hyperpod-guard routes test`: which receivers an alert would reach, like `amtool config routes
test`. The alert is given by its fields (cluster, tags, policy, severity, instance group); the
routing is the rules' (routing.py decides, as the pipeline does). A field left out means each of
its values: without --policy every policy, without --severity every severity, so a table shows
where each kind of alert of the cluster goes.

Where the rules come from: `--rules FILE` (or `-`, stdin) offline; otherwise the rules in SSM, as
`explain` reads them. Tags are those given with --tags (nothing reads the cluster's). Where the cluster
lives (routes matching on `account` or `region`): `--account ID --cluster-region REGION`, or the key
`--cluster name@account/region`; neither: unknown, so only account and region matchers '*' match.
Routes that select by owner (namespace, slurm_account, workload_labels) match the owner given with
--namespace / --slurm-account / --label KEY=VALUE (a job on the alert's node, as the blast-radius read would
find it); without them the workload is not known, so those routes do not match (listed as not tried).

Exit codes: 0 routed; 1 the rules in SSM are invalid (routed with what the evaluator would use
instead); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..findings import Severity
from ..policies import POLICY_NAMES
from ..rules import ROUTABLE_POLICIES
from ..rules_store import DEFAULT_RULES_PATH
from .common import (
    BadInput,
    add_aws_options,
    add_format_option,
    add_location_options,
    add_tags_option,
    cluster_key_location,
    cluster_location,
    exit_codes,
    table,
    tags_of,
)
from .explain import (
    add_owner_options,
    not_tried,
    owner_data,
    owner_of,
    owner_text,
    print_explained,
    read_rules,
    render_routing,
    routing_explanation,
)


def render_text(data: dict[str, Any]) -> str:
    """One alert: the routes it takes and each receiver with its mention and route; several: a table."""
    tags = ", ".join(f"{k}={v}" for k, v in sorted(data["tags"].items())) if data["tags"] else "none"
    group = data["routing"]["instance_group"]
    where = f" in {data['location']}" if data.get("location") else ""
    about = (f"cluster {data['cluster']}{where} (tags: {tags}), instance group "
             f"{group if group is not None else 'none (an alert about the whole cluster)'}")
    if data.get("owner") is not None:
        about += f", {owner_text(data['owner'])}"
    alerts = data["routing"]["alerts"]
    if len(alerts) != 1:
        return "\n".join([about, *render_routing(data["routing"])])
    (alert,) = alerts
    routing = data["routing"]
    routes = [f"#{index}" + (" (continue)" if index in routing["continue"] else "") for index in alert["routes"]]
    lines = [f"{about}, policy {alert['policy']}, severity {alert['severity']}",
             f"routes matched: {', '.join(routes)}" if routes else "routes matched: none, so the default receivers",
             *table(("RECEIVER", "MENTION", "ROUTE"),
                    [(r["name"], r["mention"] or "-", "default" if r["route"] is None else f"#{r['route']}")
                     for r in alert["receivers"]]).splitlines(),
             *not_tried(routing), "route table (first match wins unless `continue`):",
             *("  " + r for r in routing["table"])]
    return "\n".join(lines)


def cmd_routes_test(args: argparse.Namespace) -> int:
    cluster = args.cluster.strip()
    if not cluster:
        raise BadInput("--cluster must not be empty")
    tags = tags_of(args)
    location = cluster_location(args) or cluster_key_location(cluster)
    workload = owner_of(args)
    rules, error = read_rules(args)
    policies = [args.policy] if args.policy else list(POLICY_NAMES)
    severities = [Severity(args.severity)] if args.severity else list(Severity)
    alerts = [(policy, severity) for policy in policies for severity in severities]
    data: dict[str, Any] = {"cluster": cluster, "location": str(location) if location else None, "tags": tags,
                            "owner": owner_data(workload),
                            "routing": routing_explanation(rules.routing, cluster, tags, alerts, args.instance_group,
                                                           location, workload)}
    return print_explained(data, error, args.format, render_text)


EPILOG = """\
examples:
  hyperpod-guard routes test --cluster ml-prod --tags team=llm --severity critical --policy failed-rollback \\
      --instance-group p5-train --rules my-rules.json
  hyperpod-guard routes test --cluster ml-prod --rules my-rules.json      (every policy and severity)
  hyperpod-guard routes test --cluster ml-prod --account 444455556666 --cluster-region us-east-1 \\
      --rules my-rules.json
  hyperpod-guard routes test --cluster ml-prod --severity critical --policy unhealthy-node \\
      --namespace team-a --label team=llm --rules my-rules.json      (routes by owner)

$ hyperpod-guard routes test --cluster ml-prod --tags team=llm --severity critical --policy failed-rollback \\
      --instance-group p5-train --rules my-rules.json
cluster ml-prod (tags: team=llm), instance group p5-train, policy failed-rollback, severity critical
routes matched: #0 (continue), #1
RECEIVER   MENTION               ROUTE
---------  --------------------  -----
ml-oncall  <!subteam^S0123ABCD>  #0
llm-team   -                     #1
route table (first match wins unless `continue`):
  #0 severity=critical -> ml-oncall mention <!subteam^S0123ABCD>, continue
  #1 tag:team=llm -> llm-team
  default -> default

""" + exit_codes("routed", "the rules in SSM are invalid (routed with the rules the evaluator uses instead)",
                "bad input or AWS unreachable")


def add_routes_commands(commands: Any) -> None:
    """Add `routes test` to the top-level subparsers."""
    routes = commands.add_parser(
        "routes", help="try the rules' routing: which receivers an alert reaches",
        description="The rules' routing (`routing.routes`, `routing.default`): which Slack receivers an alert "
        "reaches.",
    )
    sub = routes.add_subparsers(dest="routes_command", metavar="COMMAND", required=True)
    test = sub.add_parser(
        "test", help="which receivers (and mentions) an alert with these fields reaches, and by which route",
        description="Route an alert given by its fields through the rules' routing, as the evaluator does, like\n"
        "`amtool config routes test`: the routes it takes (the first that matches, and those after a route\n"
        "with `continue`), and each receiver it reaches with the mention its route adds to firing alerts.\n"
        "Leave out --policy or --severity to see every policy or severity in one table. Rules from\n"
        "--rules FILE (offline) or from SSM.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("--cluster", required=True, metavar="NAME",
                      help="the cluster's name (or its key name@account/region)")
    add_location_options(test)
    add_tags_option(test, "a tag of the cluster, repeatable (default: none known, so routes matching on tags do "
                    "not match)")
    test.add_argument("--severity", choices=[s.value for s in Severity],
                      help="the alert's severity (default: each)")
    test.add_argument("--policy", choices=ROUTABLE_POLICIES, metavar="POLICY",
                      help=f"the alert's policy, one of {', '.join(ROUTABLE_POLICIES)} (default: each policy)")
    test.add_argument("--instance-group", metavar="NAME",
                      help="the alert's instance group (default: none, an alert about the whole cluster)")
    add_owner_options(test)
    test.add_argument("--rules", metavar="FILE", help="rules JSON, '-' for stdin (default: the rules in SSM)")
    test.add_argument("--path", default=DEFAULT_RULES_PATH, metavar="PATH",
                      help=f"SSM parameter path of the rules (default: {DEFAULT_RULES_PATH})")
    add_format_option(test)
    add_aws_options(test)
    test.set_defaults(run=cmd_routes_test)
