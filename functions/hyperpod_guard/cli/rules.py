"""`hyperpod-guard rules push|show`: the rules in SSM Parameter Store, from a terminal.

Same exit codes as the rest of the CLI: 0 done; 1 the rules have problems (each printed with
its JSON path, as `validate` prints them); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidRulesError
from ..rules import DEFAULT_RULES
from ..rules_store import (
    DEFAULT_RULES_PATH,
    SSM_STANDARD_LIMIT,
    list_parameters,
    normalise_path,
    plan_parts,
    push_rules,
    rules_from_parameters,
)
from .common import EXIT_OK, EXIT_PROBLEMS, BadInput, add_aws_options, aws_client, aws_errors, print_problems, read_text

PATH_ENV = "HYPERPOD_GUARD_RULES_PATH"


def _ssm_client(args: argparse.Namespace) -> Any:
    return aws_client(args, "ssm", "SSM")


def _path(args: argparse.Namespace) -> str:
    path = args.path or os.environ.get(PATH_ENV, "").strip() or DEFAULT_RULES_PATH
    try:
        return normalise_path(path)
    except ValueError as exc:
        raise BadInput(f"--path: {exc}") from None


def _read_document(file: str) -> Any:
    """The file's JSON; not JSON is a problem of the rules (exit 1, as `validate` says)."""
    text = read_text(file, "rules")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRulesError(f"rules are not JSON: {exc}", [("$", f"not JSON: {exc}")]) from None
    except RecursionError:
        raise InvalidRulesError("rules are nested too deeply", [("$", "nested too deeply")]) from None


def _aws_cli_equivalent(args: argparse.Namespace, name: str, value: str, stale: list[str]) -> list[str]:
    """What to run without this tool, when the rules fit one parameter."""
    options = (("region", args.region), ("profile", args.profile))
    scope = "".join(f" --{flag} {shlex.quote(v)}" for flag, v in options if v)
    if len(Path(args.file).read_bytes()) <= SSM_STANDARD_LIMIT:
        source = shlex.quote(f"file://{args.file}")
    else:  # the file as written is too big; its compact form fits
        source = f'"$(jq -c . {shlex.quote(args.file)})"'
    lines = [f"aws ssm put-parameter --name {shlex.quote(name)} --type String --overwrite --value {source}{scope}"]
    if stale:
        lines.append(f"aws ssm delete-parameters --names {' '.join(shlex.quote(s) for s in stale)}{scope}")
    return lines


def cmd_rules_push(args: argparse.Namespace) -> int:
    path = _path(args)
    try:
        document = _read_document(args.file)
        planned = plan_parts(document, path)  # every problem before touching AWS
    except InvalidRulesError as exc:
        print_problems(args.file, exc.problems)
        return EXIT_PROBLEMS
    ssm = _ssm_client(args)
    with aws_errors("SSM"):
        result = push_rules(document, path, dry_run=args.dry_run, ssm=ssm)
    sizes = {name: len(value.encode("utf-8")) for name, value in planned}
    verb = ("would write", "would delete") if args.dry_run else ("wrote", "deleted")
    for name in result.written:
        print(f"{verb[0]} {name} ({sizes[name]} bytes)")
    for name in result.deleted:
        print(f"{verb[1]} {name}")
    summary = f"{len(result.written)} parameter(s) under {path}, {len(result.deleted)} stale deleted"
    print(f"dry run: nothing written ({summary.replace('deleted', 'to delete')})" if args.dry_run
          else f"pushed {summary}")
    if len(planned) == 1:
        print("without hyperpod-guard:")
        for line in _aws_cli_equivalent(args, planned[0][0], planned[0][1], result.deleted):
            print(f"  {line}")
    return EXIT_OK


def cmd_rules_show(args: argparse.Namespace) -> int:
    path = _path(args)
    ssm = _ssm_client(args)
    with aws_errors("SSM"):
        values = list_parameters(ssm, path)
    if not values:
        print(f"no parameters under {path}: the built-in defaults apply", file=sys.stderr)
        output: Any = DEFAULT_RULES.model_dump(mode="json", by_alias=True) if args.with_defaults else {"version": 1}
    else:
        try:
            merged, rules = rules_from_parameters(values, path)
        except InvalidRulesError as exc:
            print_problems(f"rules under {path}", exc.problems)
            return EXIT_PROBLEMS
        print(f"merged {len(values)} parameter(s) in name order: {', '.join(sorted(values))}", file=sys.stderr)
        output = rules.model_dump(mode="json", by_alias=True) if args.with_defaults else merged
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return EXIT_OK


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", metavar="PATH",
                        help=f"SSM parameter path (default: ${PATH_ENV} or {DEFAULT_RULES_PATH})")
    add_aws_options(parser)


def add_rules_commands(commands: Any) -> None:
    """Add the `rules` group to the top-level subparsers."""
    group = commands.add_parser(
        "rules", help="push rules to SSM Parameter Store, or show the rules stored there",
        description="Rules live in SSM Parameter Store under a path, split over Standard (4 KB) "
        "parameters <path>/00, /01, ... and merged in name order (objects key by key, lists concatenated).",
    )
    actions = group.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    push = actions.add_parser(
        "push", help="validate a rules file and store it under the path (deleting stale parameters)",
        description="Validate FILE, split it into parameters of at most 4 KB, write <path>/00, /01, ... "
        "and delete every other parameter under the path.",
    )
    push.add_argument("file", metavar="FILE")
    push.add_argument("--dry-run", action="store_true", help="show what would be written and deleted; write nothing")
    _aws_options(push)
    push.set_defaults(run=cmd_rules_push)

    show = actions.add_parser(
        "show", help="print the merged rules stored under the path; exit 1 listing problems if invalid",
        description="Read every parameter under the path, merge them in name order, validate, print the JSON.",
    )
    show.add_argument("--with-defaults", action="store_true", help="print every setting, defaults filled in")
    _aws_options(show)
    show.set_defaults(run=cmd_rules_show)
