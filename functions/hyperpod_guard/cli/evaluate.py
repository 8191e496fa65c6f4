"""`hyperpod-guard evaluate --event FILE`: evaluate one EventBridge event offline.

`--event` may name a scenario directory of events/ (event.json, and snapshot.json / rules.json
when present); without `--snapshot` a State Change event's own detail serves as the snapshot.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine import Evaluation, evaluate, snapshot_for
from ..events import IgnoredEvent, parse_event
from ..snapshot import ClusterSnapshot
from ..timeutil import parse_timestamp
from .common import (
    EXIT_OK,
    BadInput,
    add_format_option,
    add_rules_option,
    load_rules_file,
    read_json,
    render_json,
    render_text,
)


def _scenario_files(event: Path, snapshot: str | None, rules: str | None) -> tuple[Path, str | None, str | None]:
    """`--event events/<scenario>` reads event.json, and snapshot.json / rules.json when present."""
    if not event.is_dir():
        return event, snapshot, rules
    if snapshot is None and (event / "snapshot.json").exists():
        snapshot = str(event / "snapshot.json")
    if rules is None and (event / "rules.json").exists():
        rules = str(event / "rules.json")
    return event / "event.json", snapshot, rules


def evaluate_files(event_path: str, snapshot_path: str | None, rules_path: str | None,
                   now: datetime) -> Evaluation | IgnoredEvent:
    event_file, snapshot_path, rules_path = _scenario_files(Path(event_path), snapshot_path, rules_path)
    event = parse_event(read_json(event_file, "event"))
    rules = load_rules_file(rules_path)
    if isinstance(event, IgnoredEvent):
        return event
    snapshot = None
    if snapshot_path:
        snapshot = ClusterSnapshot.from_describe_cluster(read_json(snapshot_path, "snapshot"))
    return evaluate(snapshot_for(event, snapshot), event, rules, now)


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise BadInput(f"--now must be an ISO-8601 time, e.g. 2026-11-24T12:00:00Z; got {value!r}")
    return parsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_files(args.event, args.snapshot, args.rules, _now(args.now))
    print(render_json(result) if args.format == "json" else render_text(result))
    return EXIT_OK


def add_evaluate_command(commands: Any) -> None:
    """Add `evaluate` to the top-level subparsers."""
    ev = commands.add_parser(
        "evaluate", help="evaluate one EventBridge event offline and print the findings",
        description="Evaluate one HyperPod EventBridge event against a DescribeCluster snapshot and rules, offline.",
    )
    ev.add_argument("--event", required=True, metavar="FILE",
                    help="EventBridge event JSON, or a scenario directory (event.json [+ snapshot.json, rules.json])")
    ev.add_argument("--snapshot", metavar="FILE",
                    help="DescribeCluster response JSON; default: a State Change event's own detail")
    add_rules_option(ev)
    add_format_option(ev, ("json", "text"), "text")
    ev.add_argument("--now", metavar="TIME", help="evaluate as of this ISO-8601 time (default: now)")
    ev.set_defaults(run=cmd_evaluate)
