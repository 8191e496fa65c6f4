"""`hyperpod-guard validate FILE` and `hyperpod-guard schema`: rules files, offline.

`validate` exits 1 listing every problem with its JSON path (as `rules push` does before it
writes anything); `schema` prints the rules JSON Schema for editors and CI.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidRulesError
from ..rules import load_rules_text, rules_schema
from .common import EXIT_OK, EXIT_PROBLEMS, print_problems, read_text


def cmd_validate(args: argparse.Namespace) -> int:
    text = read_text(args.file, "rules")
    try:
        rules = load_rules_text(text)
    except InvalidRulesError as exc:
        print_problems(args.file, exc.problems)
        return EXIT_PROBLEMS
    print(f"{args.file}: valid (version {rules.version}, {len(rules.overrides)} override(s), "
          f"{len(rules.silences)} silence(s))")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(rules_schema(), indent=2))
    return EXIT_OK


def add_validate_commands(commands: Any) -> None:
    """Add `validate` and `schema` to the top-level subparsers."""
    va = commands.add_parser("validate", help="check a rules file; exit 1 listing each problem with its JSON path")
    va.add_argument("file", metavar="FILE")
    va.set_defaults(run=cmd_validate)

    sc = commands.add_parser("schema", help="print the rules JSON Schema")
    sc.set_defaults(run=cmd_schema)
