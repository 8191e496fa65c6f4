"""`hyperpod-guard explain --cluster NAME`: the rules as they apply to one cluster, like `amtool
config routes test`: per policy the effective settings, the overrides that matched (by name, by
tag), and the silences that apply now (the rules' and the ad-hoc ones).

Where the rules come from: `--rules FILE` (or `-`, stdin) offline; otherwise the rules in SSM
(RulesStore, as the evaluator reads them). Ad-hoc silences come from the ledger table: always
without --rules (a table that cannot be read is a warning), with --rules only when --table is
given. Tags are those given with --tags (explain does not read the cluster).

Exit codes: 0 explained; 1 the rules in SSM are invalid (explained with what the evaluator would
use instead); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import naming
from ..errors import InvalidRulesError
from ..policies import REGISTRY
from ..policy_settings import glob_match, remediation_of
from ..rules import Rules, load_rules_text
from ..rules_store import DEFAULT_RULES_PATH, RulesStore
from ..silences import AdHocSilence
from ..timeutil import format_duration, isoformat
from .common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    AwsUnavailable,
    BadInput,
    add_aws_options,
    add_format_option,
    add_tags_option,
    aws_client,
    aws_errors,
    exit_codes,
    read_text,
    tags_of,
)
from .silence import BAD_INPUT, now, silence_store


def explanation(rules: Rules, cluster: str, tags: Mapping[str, str] | None, silences: list[AdHocSilence],
                at: datetime) -> dict[str, Any]:
    """What the evaluator would apply to `cluster` (with `tags`; None: unknown) at `at`: pure."""
    resolved = rules.resolve(cluster, tags, silences)
    policies = {}
    for name in REGISTRY:
        settings = resolved.policies.for_policy(name)
        remediation = remediation_of(settings)
        policies[name] = {
            "enabled": settings.enabled, "severity": settings.severity.value if settings.severity else "(per finding)",
            "grace": format_duration(settings.grace), "repeat_interval": format_duration(settings.repeat_interval),
            "notify_on_resolve": settings.notify_on_resolve,
            "remediation": remediation.model_dump(mode="json") if remediation else None,
        }
    overrides = []
    for index, override in enumerate(rules.overrides):
        match = override.match
        if not match.matches(cluster, tags):
            continue
        by = [f"name {match.cluster!r}"] if match.cluster != "*" else []
        by += [f"tag {key}={value}" for key, value in sorted(match.tags.items())]
        overrides.append({"index": index, "by": by or ["every cluster"],
                          "policies": override.policies.model_dump(mode="json", by_alias=True, exclude_unset=True)})
    rule_silences = [
        {"index": index, "matchers": s.matchers.model_dump(), "until": isoformat(s.until), "comment": s.comment}
        for index, s in enumerate(rules.silences)
        if s.until and s.until > at and glob_match(s.matchers.cluster, cluster)
    ]
    adhoc = [s.to_dict() for s in resolved.adhoc if s.active(at) and s.tags_match(tags)]
    return {"cluster": cluster, "tags": dict(tags) if tags is not None else None, "at": isoformat(at),
            "policies": policies, "overrides": overrides, "rules_silences": rule_silences, "adhoc_silences": adhoc}


def render_text(data: dict[str, Any]) -> str:
    tags = data["tags"]
    tag_text = ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else \
        "none given (overrides and silences that select by tag do not match)"
    lines = [f"cluster {data['cluster']} (tags: {tag_text}) at {data['at']}", "", "policies:"]
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
    return "\n".join(lines)


def _rules_from_ssm(args: argparse.Namespace) -> tuple[Rules, str | None]:
    """The rules as the evaluator loads them; (rules, error) with the defaults or last good on error."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    ssm = aws_client(args, "ssm", "SSM")
    with aws_errors("SSM"):
        loaded = RulesStore(args.path, 0, provider=SSMProvider(boto3_client=ssm)).load(force_fetch=True)
    return loaded.rules, loaded.error


def _read_rules(args: argparse.Namespace) -> tuple[Rules, str | None]:
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
    rules, error = _read_rules(args)
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
    data = explanation(rules, cluster, tags, silences or [], at)
    if silences is None:
        data["adhoc_silences"] = None
    if error:
        data["rules_error"] = error
        print(f"warning: the rules in SSM are invalid; the evaluator uses the defaults or the last good rules: {error}",
              file=sys.stderr)
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.format == "json" else render_text(data))
    return EXIT_PROBLEMS if error else EXIT_OK


EPILOG = """\
examples:
  hyperpod-guard explain --cluster llm-train-prod --tags team=research env=prod
  hyperpod-guard explain --cluster llm-train-prod --rules rules/defaults.json --format json

""" + exit_codes("explained", "the rules in SSM are invalid (explained with the rules the evaluator uses instead)",
                BAD_INPUT)


def add_explain_command(commands: Any) -> None:
    """Add `explain` to the top-level subparsers."""
    explain = commands.add_parser(
        "explain", help="show the effective rules for one cluster: settings, overrides matched, silences",
        description="Show what the evaluator applies to one cluster: per policy enabled, severity, grace,\n"
        "repeat interval and remediation; the overrides that matched (by name or tag, with their index);\n"
        "the rules' silences and the ad-hoc silences that apply now. Rules from --rules FILE (offline) or\n"
        "from SSM; ad-hoc silences from the ledger table (without --rules, or with --table).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("--cluster", required=True, metavar="NAME", help="the cluster's name")
    add_tags_option(explain, "a tag of the cluster, repeatable (default: none known; explain does not read them)")
    explain.add_argument("--rules", metavar="FILE", help="rules JSON, '-' for stdin (default: the rules in SSM)")
    explain.add_argument("--path", default=DEFAULT_RULES_PATH, metavar="PATH",
                         help=f"SSM parameter path of the rules (default: {DEFAULT_RULES_PATH})")
    explain.add_argument("--table", metavar="NAME",
                         help=f"the ledger table to read ad-hoc silences from (default without --rules: "
                         f"{naming.table_name()})")
    add_format_option(explain)
    add_aws_options(explain)
    explain.set_defaults(run=cmd_explain)
