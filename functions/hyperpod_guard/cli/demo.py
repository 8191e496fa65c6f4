"""`hyperpod-guard demo [--output DIR] [--offline]`: the whole pipeline on local stand-ins.

The demo itself is `hyperpod_guard.local.demo` (moto, the Slack sink), imported only when this
command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import exit_codes


def cmd_demo(args: argparse.Namespace) -> int:
    from ..local import demo  # moto and the stand-ins are only needed here

    if args.offline:
        return demo.run_offline(Path(args.events) if args.events else None)
    return demo.run(Path(args.output))


def add_demo_command(commands: Any) -> None:
    """Add `demo` to the top-level subparsers."""
    de = commands.add_parser(
        "demo", help="the whole pipeline on local stand-ins (moto, a Slack sink), with scenario timelines",
        description="Replay scenario timelines through the real handlers on moto and a local Slack webhook, "
        "check each expected outcome, and write the SNS messages, Slack payloads and an HTML view.",
        epilog=exit_codes("every scenario's expectations held", "an expectation failed"),
    )
    de.add_argument("--output", metavar="DIR", default="out/demo",
                    help="where to write the results (default: out/demo)")
    de.add_argument("--offline", action="store_true",
                    help="only evaluate every scenario in events/ and print the findings")
    de.add_argument("--events", metavar="DIR",
                    help="with --offline: scenario directory (default: the repository's events/)")
    de.set_defaults(run=cmd_demo)
