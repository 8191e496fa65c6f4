"""`hyperpod-guard`: evaluate events offline, validate rules, print the rules schema, run the demo,
check live clusters, manage the rules in SSM, redrive dead-letter queues.

This module only wires the commands: each command group is one module with an `add_*_command(s)`
that registers it on the top-level subparsers and a `cmd_*` it runs. What they share (exit codes,
reading files and rules, options, printing an evaluation, AWS clients and their errors) is
`common.py`. Command modules import `common`, the runtime and at most another command's module
(`clusters` reuses `check`'s reads), never this package: tests/unit/test_import_graph.py keeps the
imports free of cycles. Nothing here ships to Lambda (infra/bundling.py leaves out `cli/`).

Exit codes: 0 done; 1 problems found (each command's `--help` ends with what 1 means for it:
common.exit_codes); 2 bad input, with one `error: ...` line on stderr; 70 internal error, one line.
Never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import HyperPodGuardError
from .alerts import add_alerts_command
from .check import add_check_command
from .clusters import add_clusters_command
from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK
from .demo import add_demo_command
from .evaluate import add_evaluate_command
from .explain import add_explain_command
from .redrive import add_redrive_command
from .report import add_report_command
from .routes import add_routes_commands
from .rules import add_rules_commands
from .silence import add_silence_commands
from .test_alert import add_test_alert_command
from .validate import add_validate_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperpod-guard",
        description="Policy checks and alerts for Amazon SageMaker HyperPod clusters.",
        epilog="Exit codes: 0 ok, 1 problems found (what that means per command: COMMAND --help), 2 bad input "
        "(or AWS unreachable), 70 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # the order `--help` lists them in
    add_evaluate_command(commands)
    add_validate_commands(commands)
    add_demo_command(commands)
    add_check_command(commands)
    add_clusters_command(commands)
    add_rules_commands(commands)
    add_redrive_command(commands)
    add_test_alert_command(commands)
    add_alerts_command(commands)
    add_report_command(commands)
    add_silence_commands(commands)
    add_explain_command(commands)
    add_routes_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except HyperPodGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        print(f"error: internal error ({type(exc).__name__}): {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return EXIT_INTERNAL
