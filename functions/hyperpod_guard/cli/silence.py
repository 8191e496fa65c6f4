"""`hyperpod-guard silence add|list|expire`: ad-hoc silences (silences.py), like `amtool silence`.

Operational state in the ledger table, apart from the rules' silences (rules-as-code): an on-call
person mutes what they are working on without a rules push. The evaluator applies them within
SILENCES_MAX_AGE (30 s) of a change. `alerts` and `explain` reuse this module's table helpers.

Exit codes: 0 done; 1 `expire` found no such active silence; 2 bad input (a refused silence: empty
matchers without --all, an end in the past, no comment) or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from .. import naming
from ..silences import AdHocSilence, SilenceNotFound, SilenceRefused, SilenceStore, new_silence
from ..timeutil import isoformat, parse_duration, parse_timestamp
from .common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    BadInput,
    add_aws_options,
    add_format_option,
    add_location_filters,
    aws_client,
    aws_errors,
    caller_arn,
    exit_codes,
    table,
    tag_pair,
)

BAD_INPUT = "bad input or AWS unreachable"


# --- shared with `alerts` and `explain` ------------------------------------------------------------


def add_table_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", metavar="NAME", default=naming.table_name(),
                        help=f"the ledger table (default: {naming.table_name()})")


def silence_store(args: argparse.Namespace) -> SilenceStore:
    if not args.table.strip():
        raise BadInput("--table must not be empty")
    return SilenceStore(args.table, aws_client(args, "dynamodb", "DynamoDB"))


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # times people read and type back


# --- add --------------------------------------------------------------------------------------------


def _until(args: argparse.Namespace, at: datetime) -> datetime:
    if args.until is not None:
        until = parse_timestamp(args.until)
        if until is None:
            raise BadInput(f"--until {args.until!r}: expected an ISO-8601 time, e.g. 2026-12-01T18:00:00Z")
        return until
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        raise BadInput(f"--for: {exc}") from None
    return at + duration


def cmd_silence_add(args: argparse.Namespace) -> int:
    at = now()
    until = _until(args, at)
    tags = dict(args.tags or [])
    matchers = {"cluster": args.cluster, "account": args.account, "region": args.cluster_region,
                "policy": args.policy, "instance_group": args.group, "node": args.node, "tags": tags}
    try:  # everything refusable is refused before any AWS call
        new_silence(until=until, comment=args.comment, author=args.author or "-", now=at, allow_all=args.all,
                    **matchers)
    except SilenceRefused as exc:
        raise BadInput(str(exc)) from None
    author = args.author or caller_arn(args)
    silence = new_silence(until=until, comment=args.comment, author=author, now=at, allow_all=args.all, **matchers)
    store = silence_store(args)
    with aws_errors("DynamoDB"):
        store.add(silence)
    print(silence.id)
    print(f"silenced {silence.matchers_text()} until {isoformat(silence.until)} by {silence.author}", file=sys.stderr)
    return EXIT_OK


# --- list and expire --------------------------------------------------------------------------------


def render_silences(silences: list[AdHocSilence], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"silences": [s.to_dict() for s in silences]}, indent=2, ensure_ascii=False)
    if not silences:
        return "no silences"
    return table(("ID", "MATCHERS", "UNTIL", "AUTHOR", "COMMENT"),
                 [(s.id, s.matchers_text(), isoformat(s.until), s.author, s.comment) for s in silences])


def cmd_silence_list(args: argparse.Namespace) -> int:
    store = silence_store(args)
    at = now()
    with aws_errors("DynamoDB"):
        stored = store.all()
    shown = [s for s in stored if s.active(at) != args.expired]
    print(render_silences(shown, args.format))
    return EXIT_OK


def cmd_silence_expire(args: argparse.Namespace) -> int:
    if not args.id.strip():
        raise BadInput("ID must not be empty")
    store = silence_store(args)
    try:
        with aws_errors("DynamoDB"):
            silence = store.expire(args.id.strip(), now())
    except SilenceNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"expired {silence.id} ({silence.matchers_text()}); the evaluator stops applying it within 30 s")
    return EXIT_OK


# --- the parser -------------------------------------------------------------------------------------

ADD_EPILOG = """\
examples:
  hyperpod-guard silence add --cluster llm-train-prod --node i-0e4d3c2b1a0f9e8d7 --for 4h \\
      --comment "replacing the node, CHG-1234"
  hyperpod-guard silence add --cluster '*' --tags team=research --policy taint-drift --until 2026-12-01T09:00:00Z \\
      --comment "label migration"
  hyperpod-guard silence add --cluster ml-prod --account 444455556666 --cluster-region us-east-1 --for 2h \\
      --comment "the us-east-1 ml-prod only, CHG-1235"

""" + exit_codes("the silence was added (its id on stdout)", None, f"{BAD_INPUT} (a refused silence: empty "
                                                                "matchers without --all, an end in the past)")


def add_silence_commands(commands: Any) -> None:
    """Add the `silence` group to the top-level subparsers."""
    group = commands.add_parser(
        "silence", help="add, list or expire ad-hoc silences (operational state in the ledger table)",
        description="Ad-hoc silences mute matching alerts until they end, without a rules push. They live in\n"
        "the ledger table; the evaluator applies them with the rules' silences within 30 s of a change.\n"
        "A muted alert keeps its state: its resolved is still sent after the silence.",
        epilog=exit_codes("done", "`expire` found no such active silence", BAD_INPUT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = group.add_subparsers(dest="silence_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add", help="add a silence; prints its id",
        description="Mute the alerts whose cluster (its name), account, region, policy, instance group and node\n"
        "match the globs (and whose cluster carries every --tags) until --until, or for --for. Refused:\n"
        "every matcher '*' and no tag (unless --all), an end in the past, an empty comment.",
        epilog=ADD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--cluster", required=True, metavar="GLOB",
                     help="cluster name glob, in every account and region ('*': every cluster)")
    add_location_filters(add, "the alerts")
    add.add_argument("--policy", default="*", metavar="GLOB", help="policy glob, e.g. unhealthy-node (default: *)")
    add.add_argument("--group", default="*", metavar="GLOB", help="instance group glob (default: *)")
    add.add_argument("--node", default="*", metavar="GLOB", help="node (instance id) glob (default: *)")
    add.add_argument("--tags", "--tag", metavar="KEY=VALUE", nargs="+", action="extend", type=tag_pair,
                     dest="tags", help="the cluster must carry each tag with exactly this value (as in "
                     "explain and evaluate; --tag is the same)")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--for", dest="duration", metavar="DURATION", help="how long, e.g. 90m, 4h, 1d")
    end.add_argument("--until", metavar="TIME", help="when it ends, ISO-8601 (e.g. 2026-12-01T18:00:00Z)")
    add.add_argument("--comment", required=True, metavar="TEXT", help="why (shown with every muted alert)")
    add.add_argument("--author", metavar="NAME", help="who (default: your ARN, from STS GetCallerIdentity)")
    add.add_argument("--all", action="store_true", help="allow matchers that match every alert")
    add_table_option(add)
    add_aws_options(add)
    add.set_defaults(run=cmd_silence_add)

    listing = actions.add_parser(
        "list", help="list the active silences (--expired: the ended ones)",
        description="List the active ad-hoc silences, or with --expired those that ended (kept 7 days).",
        epilog=exit_codes("listed (with or without silences)", None, BAD_INPUT),
    )
    listing.add_argument("--expired", action="store_true", help="show the ended silences instead of the active")
    add_format_option(listing)
    add_table_option(listing)
    add_aws_options(listing)
    listing.set_defaults(run=cmd_silence_list)

    expire = actions.add_parser(
        "expire", help="end an active silence now",
        description="End the silence ID now (it stays listed with --expired). Alerts it muted notify again\n"
        "as the next evaluation finds them (repeat, or their owed resolved).",
        epilog=exit_codes("expired", "no active silence has this id", BAD_INPUT),
    )
    expire.add_argument("id", metavar="ID")
    add_table_option(expire)
    add_aws_options(expire)
    expire.set_defaults(run=cmd_silence_expire)
