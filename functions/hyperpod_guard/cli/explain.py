"""`hyperpod-guard explain --cluster NAME`: the rules as they apply to one cluster, like `amtool
config routes test`: per policy the effective settings, the overrides that matched (by name, by
tag), the silences that apply now (the rules' and the ad-hoc ones), and the routing: per enabled
policy and severity, the routes an alert about the whole cluster takes and its receivers
(`hyperpod-guard routes test` tries one alert, instance group included; cli/routes.py).

Where the rules come from: `--rules FILE` (or `-`, stdin) offline; otherwise the rules in SSM
(RulesStore, as the evaluator reads them). Ad-hoc silences come from the ledger table: always
without --rules (a table that cannot be read is a warning), with --rules only when --table is
given. Tags are those given with --tags (explain does not read the cluster). Where the cluster
lives: `--account ID --cluster-region REGION`, or the key `--cluster name@account/region` (fleet.py);
neither: unknown, so only account and region matchers '*' match (a cluster of the hub's own account
and region: give its location). Routes that select by owner (namespace, slurm_account, workload_labels) match
the owner given with --namespace / --slurm-account / --label (one job on the alert's node, as the blast-radius
read finds it); without them, the workload is not known, so such routes are listed as not tried.

Exit codes: 0 explained; 1 the rules in SSM are invalid (explained with what the evaluator would
use instead); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from .. import naming
from ..errors import InvalidRulesError
from ..findings import Severity
from ..fleet import Location, location_of
from ..policies import REGISTRY
from ..policy_settings import remediation_of
from ..routing import decide, describe_routes
from ..rules import Routing, Rules, load_rules_text
from ..rules_store import DEFAULT_RULES_PATH, RulesStore
from ..silences import AdHocSilence
from ..timeutil import format_duration, isoformat
from ..workload.model import Job, Workload
from .common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    AwsUnavailable,
    BadInput,
    add_aws_options,
    add_format_option,
    add_location_options,
    add_tags_option,
    aws_client,
    aws_errors,
    cluster_key_location,
    cluster_location,
    exit_codes,
    read_text,
    table,
    tag_pair,
    tags_of,
)
from .silence import BAD_INPUT, now, silence_store

#: the node an owner given on the command line is on (only routing sees it)
_GIVEN_NODE = "(given)"


def add_owner_options(parser: argparse.ArgumentParser) -> None:
    """--namespace, --slurm-account, --label KEY=VALUE: the owner of a job on the alert's node (owner routes)."""
    parser.add_argument("--namespace", metavar="NS",
                        help="EKS: the Kubernetes namespace of a job on the alert's node (routes matching on "
                        "`namespace`)")
    parser.add_argument("--slurm-account", metavar="ACCOUNT",
                        help="Slurm: the account of a job on the alert's node (routes matching on `slurm_account`)")
    parser.add_argument("--label", metavar="KEY=VALUE", action="append", type=tag_pair,
                        help="a label of that job, repeatable (routes matching on `workload_labels`)")


def owner_of(args: argparse.Namespace) -> Workload | None:
    """The workload the owner options describe: one job on the alert's node carrying what was given; None when
    nothing was (the workload not read: routes that select by owner do not match)."""
    if args.namespace is None and args.slurm_account is None and not args.label:
        return None
    for option, value in (("--namespace", args.namespace), ("--slurm-account", args.slurm_account)):
        if value is not None and not value.strip():
            raise BadInput(f"{option} must not be empty")
    job = Job(name="(given)", kind="slurm" if args.slurm_account is not None else "Pod", namespace=args.namespace,
              account=args.slurm_account, labels=dict(args.label or ()))
    return Workload(_GIVEN_NODE, (job,))


def owner_data(workload: Workload | None) -> dict[str, Any] | None:
    """The owner given, as the JSON output shows it (None: none given)."""
    if workload is None:
        return None
    (job,) = workload.jobs
    return {"namespace": job.namespace, "slurm_account": job.account, "labels": dict(job.labels)}


def owner_text(owner: dict[str, Any] | None) -> str:
    """`owner namespace=team-a slurm_account=research label:team=llm`, or `owner not given`."""
    if owner is None:
        return "owner not given"
    parts = [f"{key}={owner[key]}" for key in ("namespace", "slurm_account") if owner[key] is not None]
    parts += [f"label:{key}={value}" for key, value in sorted(owner["labels"].items())]
    return "owner " + " ".join(parts)


def explanation(rules: Rules, cluster: str, tags: Mapping[str, str] | None, silences: list[AdHocSilence],
                at: datetime, location: Location | None = None, workload: Workload | None = None) -> dict[str, Any]:
    """What the evaluator would apply to `cluster` (its key; with `tags`, None: unknown) at `at`, the
    cluster living at `location` (None: the key's own, if qualified), its alerts' node running `workload` (None:
    not known, so routes by owner do not match): pure."""
    location = location or location_of(cluster)
    resolved = rules.resolve(cluster, tags, silences, location)
    policies = {}
    alerts: list[tuple[str, Severity]] = []  # (policy, severity) of the alerts the cluster can have
    for name in REGISTRY:
        settings = resolved.policies.for_policy(name)
        remediation = remediation_of(settings)
        if settings.enabled:  # the severity its settings force, or any
            alerts += [(name, severity) for severity in ((settings.severity,) if settings.severity else Severity)]
        policies[name] = {
            "enabled": settings.enabled, "severity": settings.severity.value if settings.severity else "(per finding)",
            "grace": format_duration(settings.grace), "repeat_interval": format_duration(settings.repeat_interval),
            "notify_on_resolve": settings.notify_on_resolve,
            "remediation": remediation.model_dump(mode="json") if remediation else None,
        }
    overrides = []
    for index, override in enumerate(rules.overrides):
        match = override.match
        if not match.matches(cluster, tags, location):
            continue
        by = [f"name {match.cluster!r}"] if match.cluster != "*" else []
        by += [f"{what} {value!r}" for what, value in (("account", match.account), ("region", match.region))
               if value != "*"]
        by += [f"tag {key}={value}" for key, value in sorted(match.tags.items())]
        overrides.append({"index": index, "by": by or ["every cluster"],
                          "policies": override.policies.model_dump(mode="json", by_alias=True, exclude_unset=True)})
    rule_silences = [
        {"index": index, "matchers": s.matchers.model_dump(), "until": isoformat(s.until), "comment": s.comment}
        for index, s in enumerate(rules.silences)
        if s.until and s.until > at and s.matchers.applies_to(cluster, location)
    ]
    # resolve() binds the ad-hoc silences to the cluster: show each as it was written
    bound = {s.id for s in resolved.adhoc if s.active(at) and s.tags_match(tags)}
    adhoc = [s.to_dict() for s in silences if s.id in bound]
    return {"cluster": cluster, "location": str(location) if location else None,
            "tags": dict(tags) if tags is not None else None, "at": isoformat(at),
            "policies": policies, "overrides": overrides, "rules_silences": rule_silences, "adhoc_silences": adhoc,
            "owner": owner_data(workload),
            "routing": routing_explanation(rules.routing, cluster, tags, alerts, None, location, workload)}


def routing_explanation(routing: Routing, cluster: str, tags: Mapping[str, str] | None,
                        alerts: Iterable[tuple[str, Severity]], instance_group: str | None,
                        location: Location | None = None, workload: Workload | None = None) -> dict[str, Any]:
    """Where alerts of `cluster` with these (policy, severity) go, about `instance_group` (None: about
    the whole cluster, so routes that match on an instance group are listed as not tried), the cluster
    living at `location` (None: the key's own, if qualified), their node running `workload` (None: not known,
    so routes that select by owner are listed as not tried): pure."""
    rows = []
    for policy, severity in alerts:
        decision = decide(routing, cluster=cluster, policy=policy, severity=severity, instance_group=instance_group,
                          tags=tags, location=location, workload=workload)
        rows.append({"policy": policy, "severity": severity.value, "routes": list(decision.routes),
                     "receivers": [ref.model_dump(mode="json") for ref in decision.receivers]})
    by_group = [index for index, r in enumerate(routing.routes) if r.match.instance_group != "*"]
    by_owner = [index for index, r in enumerate(routing.routes) if r.match.selects_by_owner]
    return {"instance_group": instance_group, "alerts": rows, "table": describe_routes(routing),
            "continue": [index for index, r in enumerate(routing.routes) if r.continue_],
            "by_instance_group": by_group if instance_group is None else [],
            "by_owner": by_owner if workload is None else []}


def _receivers_text(receivers: list[dict[str, Any]]) -> str:
    return ", ".join(r["name"] + (f" {r['mention']}" if r["mention"] else "") for r in receivers)


def _routes_text(routes: list[int]) -> str:
    return ",".join(f"#{index}" for index in routes) or "default"


def not_tried(routing: dict[str, Any]) -> list[str]:
    """The lines saying which routes were not tried (they match on an instance group, or on an owner), if any."""
    lines = []
    if routing["by_instance_group"]:
        lines.append(f"not tried: {', '.join(f'#{i}' for i in routing['by_instance_group'])} (match on an instance "
                     "group; `hyperpod-guard routes test --instance-group G` tries them)")
    if routing.get("by_owner"):
        lines.append(f"not tried: {', '.join(f'#{i}' for i in routing['by_owner'])} (match on an owner; "
                     "--namespace, --slurm-account or --label KEY=VALUE tries them)")
    return lines


def render_routing(routing: dict[str, Any]) -> list[str]:
    """The routing section of `explain` (and `routes test` for several alerts): a table of the
    alerts (policy, severity) with the routes they take and their receivers, then the route table."""
    if len(routing["table"]) == 1:  # no routes, only the default
        return [f"  no routes: every alert goes to {routing['table'][0].removeprefix('default -> ')}"]
    lines = ["  " + line for line in table(
        ("POLICY", "SEVERITY", "ROUTES", "RECEIVERS"),
        [(a["policy"], a["severity"], _routes_text(a["routes"]), _receivers_text(a["receivers"]))
         for a in routing["alerts"]]).splitlines()]
    return [*lines, *("  " + line for line in not_tried(routing)),
            "  route table (first match wins unless `continue`):", *("    " + r for r in routing["table"])]


def render_text(data: dict[str, Any]) -> str:
    tags = data["tags"]
    tag_text = ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else \
        "none given (overrides and silences that select by tag do not match)"
    where = f" in {data['location']}" if data.get("location") else ""
    lines = [f"cluster {data['cluster']}{where} (tags: {tag_text}) at {data['at']}", "", "policies:"]
    if data.get("owner") is not None:
        lines[0] += f", {owner_text(data['owner'])}"

    for name, p in data["policies"].items():
        remediation = p["remediation"]
        fix = "-" if not remediation or not remediation["enabled"] else (
            ("dry run " if remediation.get("dry_run") else "") + str(remediation.get("action", "on")))
        lines.append(f"  {name:<16} {'enabled ' if p['enabled'] else 'disabled'}  severity {p['severity']:<13} "
                     f"grace {p['grace']:<5} repeat {p['repeat_interval']:<5} remediation {fix}")
    lines += ["", "overrides matched:" if data["overrides"] else "overrides matched: none"]
    lines += [f"  #{o['index']} by {', '.join(o['by'])}: {json.dumps(o['policies'], separators=(',', ':'))}"
              for o in data["overrides"]]
    lines += ["", "rules silences that apply now:" if data["rules_silences"] else "rules silences that apply now: none"]
    lines += [f"  #{s['index']} {' '.join(f'{k}={v}' for k, v in s['matchers'].items() if v != '*') or '(everything)'}"
              f" until {s['until']}: {s['comment']}" for s in data["rules_silences"]]
    adhoc = data["adhoc_silences"]
    if adhoc is None:
        lines += ["", "ad-hoc silences: not read"]
    else:
        lines += ["", "ad-hoc silences that apply now:" if adhoc else "ad-hoc silences that apply now: none"]
        for s in adhoc:
            matchers = " ".join(f"{k}={v}" for k, v in s["matchers"].items() if k != "tags" and v != "*")
            matchers += "".join(f" tag:{k}={v}" for k, v in sorted(s["matchers"]["tags"].items()))
            lines.append(f"  {s['id']} {matchers.strip() or '(everything)'} until {s['until']} by {s['author']}: "
                         f"{s['comment']}")
    lines += ["", "routing of alerts about the whole cluster, per enabled policy and severity:",
              *render_routing(data["routing"])]
    return "\n".join(lines)


def _rules_from_ssm(args: argparse.Namespace) -> tuple[Rules, str | None]:
    """The rules as the evaluator loads them; (rules, error) with the defaults or last good on error."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    ssm = aws_client(args, "ssm", "SSM")
    with aws_errors("SSM"):
        loaded = RulesStore(args.path, 0, provider=SSMProvider(boto3_client=ssm)).load(force_fetch=True)
    return loaded.rules, loaded.error


def read_rules(args: argparse.Namespace) -> tuple[Rules, str | None]:
    """The rules of --rules FILE (`-`: stdin), or else as the evaluator loads them from SSM (--path):
    (rules, error), with the defaults or the last good rules when those in SSM are invalid."""
    if args.rules is None:
        return _rules_from_ssm(args)
    text = read_text(args.rules, "rules")  # `-`: standard input
    try:
        return load_rules_text(text), None
    except InvalidRulesError as exc:
        raise BadInput(f"{exc} (run `hyperpod-guard validate {args.rules}` for every problem)") from None


def cmd_explain(args: argparse.Namespace) -> int:
    cluster = args.cluster.strip()
    if not cluster:
        raise BadInput("--cluster must not be empty")
    tags = tags_of(args)
    location = cluster_location(args) or cluster_key_location(cluster)
    workload = owner_of(args)
    rules, error = read_rules(args)
    at = now()
    silences: list[AdHocSilence] | None = None
    if args.rules is None or args.table is not None:
        if args.table is None:
            args.table = naming.table_name()
        store = silence_store(args)
        try:
            with aws_errors("DynamoDB"):
                silences = store.active(at)
        except AwsUnavailable as exc:  # without --rules and --table the silences are a bonus: warn, explain the rest
            if args.rules is not None:
                raise
            print(f"warning: ad-hoc silences not read: {exc}", file=sys.stderr)
    data = explanation(rules, cluster, tags, silences or [], at, location, workload)
    if silences is None:
        data["adhoc_silences"] = None
    return print_explained(data, error, args.format, render_text)


def print_explained(data: dict[str, Any], error: str | None, fmt: str,
                    render: Callable[[dict[str, Any]], str]) -> int:
    """Print what `explain`/`routes test` found, as text or JSON; rules in SSM that are invalid (`error`)
    are a warning on stderr, a `rules_error` in the data and exit 1."""
    if error:
        data["rules_error"] = error
        print(f"warning: the rules in SSM are invalid; the evaluator uses the defaults or the last good rules: {error}",
              file=sys.stderr)
    print(json.dumps(data, indent=2, ensure_ascii=False) if fmt == "json" else render(data))
    return EXIT_PROBLEMS if error else EXIT_OK


EPILOG = """\
examples:
  hyperpod-guard explain --cluster llm-train-prod --tags team=research env=prod
  hyperpod-guard explain --cluster llm-train-prod --rules rules/defaults.json --format json
  hyperpod-guard explain --cluster ml-prod --account 444455556666 --cluster-region us-east-1
  hyperpod-guard explain --cluster ml-prod --namespace team-a --label team=llm   (routes by owner)

""" + exit_codes("explained", "the rules in SSM are invalid (explained with the rules the evaluator uses instead)",
                BAD_INPUT)


def add_explain_command(commands: Any) -> None:
    """Add `explain` to the top-level subparsers."""
    explain = commands.add_parser(
        "explain", help="show the effective rules for one cluster: settings, overrides matched, silences, routing",
        description="Show what the evaluator applies to one cluster: per policy enabled, severity, grace,\n"
        "repeat interval and remediation; the overrides that matched (by name or tag, with their index);\n"
        "the rules' silences and the ad-hoc silences that apply now; the routing: per enabled policy and\n"
        "severity, the routes an alert about the whole cluster takes and the receivers (with mentions) it\n"
        "reaches. Rules from --rules FILE (offline) or from SSM; ad-hoc silences from the ledger table\n"
        "(without --rules, or with --table). One alert, instance group included: `routes test`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("--cluster", required=True, metavar="NAME",
                         help="the cluster's name (or its key name@account/region)")
    add_location_options(explain)
    add_tags_option(explain, "a tag of the cluster, repeatable (default: none known; explain does not read them)")
    add_owner_options(explain)
    explain.add_argument("--rules", metavar="FILE", help="rules JSON, '-' for stdin (default: the rules in SSM)")
    explain.add_argument("--path", default=DEFAULT_RULES_PATH, metavar="PATH",
                         help=f"SSM parameter path of the rules (default: {DEFAULT_RULES_PATH})")
    explain.add_argument("--table", metavar="NAME",
                         help=f"the ledger table to read ad-hoc silences from (default without --rules: "
                         f"{naming.table_name()})")
    add_format_option(explain)
    add_aws_options(explain)
    explain.set_defaults(run=cmd_explain)
