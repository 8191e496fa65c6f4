"""`hyperpod-guard validate FILE` and `hyperpod-guard schema`: rules files, offline.

`validate` exits 1 listing every problem with its JSON path (as `rules push` does before it
writes anything). Valid rules may still carry warnings (rules_checks.py: a silence muting
everything, one already expired, one naming no policy; a route that can never match, among them one that
selects by owner where no `workload` entry reads the workload): printed, exit 0, or 1 with `--strict`.
`schema` prints the rules JSON Schema for editors and CI.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidRulesError
from ..rules import load_rules_text, rules_schema
from ..rules_checks import routing_notes, rules_warnings
from .common import EXIT_OK, EXIT_PROBLEMS, STDIN, exit_codes, print_problems, read_text


def cmd_validate(args: argparse.Namespace) -> int:
    label = "(standard input)" if args.file == STDIN else args.file
    text = read_text(args.file, "rules")
    try:
        rules = load_rules_text(text)
    except InvalidRulesError as exc:
        print_problems(label, exc.problems)
        return EXIT_PROBLEMS
    print(f"{label}: valid (version {rules.version}, {len(rules.overrides)} override(s), "
          f"{len(rules.silences)} silence(s))")
    warnings = rules_warnings(rules, datetime.now(UTC))
    if warnings:
        print(f"{label}: {len(warnings)} warning(s)" + (" (--strict: treated as problems)" if args.strict else ""))
        for path, message in warnings:
            print(f"  {path}: {message}")
    for path, message in routing_notes(rules.routing):  # not warnings: --strict passes a file that names receivers
        print(f"  note: {path}: {message}")
    return EXIT_PROBLEMS if warnings and args.strict else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(rules_schema(), indent=2))
    return EXIT_OK


def add_validate_commands(commands: Any) -> None:
    """Add `validate` and `schema` to the top-level subparsers."""
    va = commands.add_parser(
        "validate", help="check a rules file; exit 1 listing each problem with its JSON path",
        description="Check a rules file against the rules model (the schema `hyperpod-guard schema` prints) and "
        "list every problem with its JSON path. Valid rules are also checked for silences that are probably "
        "mistakes: every matcher \"*\" (mutes everything), an `until` already past, or a policy matcher that "
        "matches no policy; and routes that never match (shadowed by an earlier one, or selecting by owner where no "
        "`workload` entry reads the workload of their clusters). Those are warnings: printed, exit 0, unless "
        "--strict.",
        epilog=exit_codes("valid (warnings, if any, printed)", "problems found, or warnings with --strict",
                          bad_input="bad input (the file cannot be read)"),
    )
    va.add_argument("file", metavar="FILE", help="rules JSON file, - for standard input")
    va.add_argument("--strict", action="store_true", help="treat warnings as problems: exit 1 when there are any")
    va.set_defaults(run=cmd_validate)

    sc = commands.add_parser(
        "schema", help="print the rules JSON Schema",
        description="Print the JSON Schema (draft 2020-12) of rules files, generated from the rules model: for "
        "editors (completion, defaults) and CI. Every default in it validates against its own subschema.",
        epilog=exit_codes("printed"),
    )
    sc.set_defaults(run=cmd_schema)
