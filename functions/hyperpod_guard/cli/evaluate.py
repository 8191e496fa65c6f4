"""`hyperpod-guard evaluate --event FILE`: evaluate one EventBridge event offline.

`--event` may name a scenario directory of events/ (event.json, and snapshot.json / rules.json
when present); without `--snapshot` a State Change event's own detail serves as the snapshot.
Any one of the files may be `-`, standard input. The rules are resolved for the cluster as the
evaluator resolves them: by its name and, with `--tags`, by the tags it would carry, so
tag-selected overrides can be tried before deploying. Findings a silence of the rules mutes at
`--now` are shown as silenced, with the silence.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine import Evaluation, evaluate, snapshot_for
from ..events import IgnoredEvent, parse_event
from ..rules import ClusterRules
from ..snapshot import ClusterSnapshot
from ..timeutil import parse_timestamp
from .common import (
    EXIT_OK,
    BadInput,
    add_format_option,
    add_rules_option,
    add_tags_option,
    exit_codes,
    load_rules_file,
    one_stdin,
    read_json,
    render_json,
    render_text,
    silenced_findings,
    tags_of,
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
    return resolve_and_evaluate(event_path, snapshot_path, rules_path, now)[0]


def resolve_and_evaluate(
    event_path: str, snapshot_path: str | None, rules_path: str | None, now: datetime,
    tags: Mapping[str, str] | None = None,
) -> tuple[Evaluation | IgnoredEvent, ClusterRules | None]:
    """The evaluation, and the rules resolved for its cluster (None when the event is ignored)."""
    one_stdin(event=event_path, snapshot=snapshot_path, rules=rules_path)
    event_file, snapshot_path, rules_path = _scenario_files(Path(event_path), snapshot_path, rules_path)
    event = parse_event(read_json(event_file, "event"))
    rules = load_rules_file(rules_path)
    if isinstance(event, IgnoredEvent):
        return event, None
    snapshot = None
    if snapshot_path:
        snapshot = ClusterSnapshot.from_describe_cluster(read_json(snapshot_path, "snapshot"))
    snapshot = snapshot_for(event, snapshot)
    cluster_rules = rules.resolve(snapshot.name, tags)
    return evaluate(snapshot, event, cluster_rules, now), cluster_rules


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise BadInput(f"--now must be an ISO-8601 time, e.g. 2026-11-24T12:00:00Z; got {value!r}")
    return parsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    now = _now(args.now)
    result, rules = resolve_and_evaluate(args.event, args.snapshot, args.rules, now, tags_of(args))
    silenced = silenced_findings(result, rules, now) if rules else {}
    print(render_json(result, silenced) if args.format == "json" else render_text(result, silenced))
    return EXIT_OK


def add_evaluate_command(commands: Any) -> None:
    """Add `evaluate` to the top-level subparsers."""
    ev = commands.add_parser(
        "evaluate", help="evaluate one EventBridge event offline and print the findings",
        description="Evaluate one HyperPod EventBridge event against a DescribeCluster snapshot and rules, offline. "
        "The rules are resolved for the event's cluster by its name and the --tags given; findings that a "
        "silence of the rules mutes at --now are listed as silenced, with the silence.",
        epilog=exit_codes("evaluated (with or without findings, silenced or not)",
                          bad_input="bad input (unreadable or invalid event, snapshot or rules)"),
    )
    ev.add_argument("--event", required=True, metavar="FILE",
                    help="EventBridge event JSON file, - for standard input, or a scenario directory "
                    "(event.json [+ snapshot.json, rules.json])")
    ev.add_argument("--snapshot", metavar="FILE",
                    help="DescribeCluster response JSON file, - for standard input "
                    "(default: a State Change event's own detail)")
    add_rules_option(ev)
    add_tags_option(ev, "a tag the cluster carries, for overrides that select clusters by tag; repeatable "
                    "(default: untagged)")
    add_format_option(ev)
    ev.add_argument("--now", metavar="TIME", help="evaluate as of this ISO-8601 time (default: now)")
    ev.set_defaults(run=cmd_evaluate)
