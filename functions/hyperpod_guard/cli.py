"""`hyperpod-guard`: evaluate events offline, validate rules, print the rules schema, run the demo.

Exit codes: 0 done; 1 `validate` found problems (or the demo's expectations failed);
2 bad input, with one `error: ...` line on stderr. Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .engine import Evaluation, evaluate, snapshot_for
from .errors import HyperPodGuardError, InvalidRulesError
from .events import IgnoredEvent, parse_event
from .findings import Finding
from .rules import DEFAULT_RULES, Rules, load_rules, load_rules_text, rules_schema
from .snapshot import ClusterSnapshot
from .timeutil import parse_timestamp

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 70


class BadInput(HyperPodGuardError):
    """A file that cannot be read or is not JSON."""


def read_json(path: str | Path, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"cannot read {what} file {str(path)!r}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what} file {str(path)!r} is not JSON: {exc}") from None
    except RecursionError:
        raise BadInput(f"{what} file {str(path)!r} is nested too deeply") from None


# --- evaluate ---------------------------------------------------------------------------


def _scenario_files(event: Path, snapshot: str | None, rules: str | None) -> tuple[Path, str | None, str | None]:
    """`--event events/<scenario>` reads event.json, and snapshot.json / rules.json when present."""
    if not event.is_dir():
        return event, snapshot, rules
    if snapshot is None and (event / "snapshot.json").exists():
        snapshot = str(event / "snapshot.json")
    if rules is None and (event / "rules.json").exists():
        rules = str(event / "rules.json")
    return event / "event.json", snapshot, rules


def load_rules_file(path: str | None) -> Rules:
    if path is None:
        return DEFAULT_RULES
    try:
        return load_rules(read_json(path, "rules"))
    except InvalidRulesError as exc:
        raise InvalidRulesError(f"{exc} (run `hyperpod-guard validate {path}` for every problem)") from None


def evaluate_files(event_path: str, snapshot_path: str | None, rules_path: str | None, now: datetime) -> Evaluation | IgnoredEvent:
    event_file, snapshot_path, rules_path = _scenario_files(Path(event_path), snapshot_path, rules_path)
    event = parse_event(read_json(event_file, "event"))
    rules = load_rules_file(rules_path)
    if isinstance(event, IgnoredEvent):
        return event
    snapshot = None
    if snapshot_path:
        snapshot = ClusterSnapshot.from_describe_cluster(read_json(snapshot_path, "snapshot"))
    return evaluate(snapshot_for(event, snapshot), event, rules, now)


def _scope(finding: Finding) -> str:
    return "/".join(part for part in (finding.instance_group, finding.node) if part) or "(cluster)"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def render_text(result: Evaluation | IgnoredEvent) -> str:
    if isinstance(result, IgnoredEvent):
        return f"ignored {result.detail_type!r}: {result.reason}"
    if not result.findings:
        text = f"cluster {result.cluster}: no findings"
    else:
        rows = [(f.severity.value, f.policy, _scope(f), f.summary) for f in result.findings]
        text = f"cluster {result.cluster}: {len(rows)} finding(s)\n" + table(("SEVERITY", "POLICY", "SCOPE", "SUMMARY"), rows)
    if result.resolved:
        text += f"\nresolved by this event: {', '.join(result.resolved)}"
    return text


def render_json(result: Evaluation | IgnoredEvent) -> str:
    if isinstance(result, IgnoredEvent):
        data: dict[str, Any] = {"cluster": None, "findings": [], "ignored": result.reason}
    else:
        data = result.to_dict()
    return json.dumps(data, indent=2, ensure_ascii=False)


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise BadInput(f"--now must be an ISO-8601 time, e.g. 2026-11-24T12:00:00Z; got {value!r}")
    return parsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_files(args.event, args.snapshot, args.rules, _now(args.now))
    print(render_json(result) if args.format == "json" else render_text(result))
    return EXIT_OK


# --- validate / schema ------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read rules file {args.file!r}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        rules = load_rules_text(text)
    except InvalidRulesError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)")
        for path, message in exc.problems:
            print(f"  {path}: {message}")
        return EXIT_PROBLEMS
    print(f"{args.file}: valid (version {rules.version}, {len(rules.overrides)} override(s), {len(rules.silences)} silence(s))")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(rules_schema(), indent=2))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .local import demo  # moto and the stand-ins are only needed here

    if args.offline:
        return demo.run_offline(Path(args.events) if args.events else None)
    return demo.run(Path(args.output))


# --- wiring -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperpod-guard",
        description="Policy checks and alerts for Amazon SageMaker HyperPod clusters.",
        epilog="Exit codes: 0 ok, 1 problems found by validate/demo/rules, 2 bad input (or AWS unreachable).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ev = commands.add_parser(
        "evaluate", help="evaluate one EventBridge event offline and print the findings",
        description="Evaluate one HyperPod EventBridge event against a DescribeCluster snapshot and rules, offline.",
    )
    ev.add_argument("--event", required=True, metavar="FILE",
                    help="EventBridge event JSON, or a scenario directory (event.json [+ snapshot.json, rules.json])")
    ev.add_argument("--snapshot", metavar="FILE",
                    help="DescribeCluster response JSON; default: a State Change event's own detail")
    ev.add_argument("--rules", metavar="FILE", help="rules JSON; default: the built-in defaults")
    ev.add_argument("--format", choices=("json", "text"), default="text", help="output format (default: text)")
    ev.add_argument("--now", metavar="TIME", help="evaluate as of this ISO-8601 time (default: now)")
    ev.set_defaults(run=cmd_evaluate)

    va = commands.add_parser("validate", help="check a rules file; exit 1 listing each problem with its JSON path")
    va.add_argument("file", metavar="FILE")
    va.set_defaults(run=cmd_validate)

    sc = commands.add_parser("schema", help="print the rules JSON Schema")
    sc.set_defaults(run=cmd_schema)

    de = commands.add_parser(
        "demo", help="the whole pipeline on local stand-ins (moto, a Slack sink), with scenario timelines",
        description="Replay scenario timelines through the real handlers on moto and a local Slack webhook, "
        "check each expected outcome, and write the SNS messages, Slack payloads and an HTML view.",
    )
    de.add_argument("--output", metavar="DIR", default="out/demo", help="where to write the results (default: out/demo)")
    de.add_argument("--offline", action="store_true", help="only evaluate every scenario in events/ and print the findings")
    de.add_argument("--events", metavar="DIR", help="with --offline: scenario directory (default: the repository's events/)")
    de.set_defaults(run=cmd_demo)

    from .cli_check import add_check_command  # here: cli_check imports this module
    from .cli_clusters import add_clusters_command  # here: cli_clusters imports this module
    from .cli_redrive import add_redrive_command  # here: cli_redrive imports this module
    from .cli_rules import add_rules_commands  # here: cli_rules imports this module

    add_check_command(commands)
    add_clusters_command(commands)
    add_rules_commands(commands)
    add_redrive_command(commands)
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
        print(f"error: internal error ({type(exc).__name__}): {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
