"""`hyperpod-guard report`: the reliability report of a period (reliability.py) from the episode archive.

Reads, never writes: the archived episodes (archive.ArchiveReader: one paginated listing per day
prefix `episodes/dt=<day>/`, then each object) from the period's first day to today, since an
episode that began in the period may have resolved after it; HyperPod's repair facts of the
period's days; and the firing alerts of the ledger (LedgerStore.open_alerts, no Scan) as open
episodes. Pending alerts are not incidents (yet). A progress line is drawn on stderr when it is
a terminal and the reading takes a moment.

Many accounts and regions (fleet.py): `--account` and `--cluster-region` keep the episodes (and repairs)
whose cluster is in a matching account and region, as the archive recorded them; an open alert of a
cluster of the hub's own account and region (a bare key) is at the caller's account and the command's
AWS region. The report's header says what it was narrowed to.

Exit codes: 0 report written; 2 bad input (a period that does not parse or is empty) or AWS
unreachable (no credentials, no such bucket or table), one `error: ...` line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .. import naming
from ..archive import ArchiveReader, Episode, RepairFact, open_episodes, with_open
from ..fleet import Location
from ..ledger import AlertRecord
from ..ledger_store import LedgerStore
from ..reliability import (
    ReliabilityReport,
    build_report,
    in_place,
    render_csv,
    render_html,
    render_json,
    render_text,
)
from ..timeutil import isoformat, parse_duration, parse_timestamp
from .clusters import Progress
from .common import (
    EXIT_OK,
    FORMAT_ALIASES,
    AwsUnavailable,
    BadInput,
    add_aws_options,
    add_location_filters,
    add_prefix_option,
    aws_client,
    aws_errors,
    exit_codes,
    filters_location,
)

RENDERERS: dict[str, Callable[[ReliabilityReport], str]] = {
    "text": render_text, "json": render_json, "csv": render_csv, "html": render_html,
}


def moment(value: str, now: datetime, option: str) -> datetime:
    """`--since`/`--until`: a duration back from now ("7d", "36h") or an ISO-8601 time."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    bare_number = value.strip().replace(".", "", 1).isdigit()  # parse_timestamp would read epoch seconds
    at = None if bare_number else parse_timestamp(value)
    if at is None:
        raise BadInput(f"{option} {value!r}: expected a duration back from now (7d, 36h) or an ISO-8601 time "
                       "(2026-11-16T00:00:00Z)")
    return at


def period(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    start = moment(since, now, "--since")
    end = min(moment(until, now, "--until"), now) if until else now  # after now nothing is known yet
    if end <= start:
        raise BadInput(f"empty period: --since {isoformat(start)} is not before --until {isoformat(end)}")
    return start, end


@contextlib.contextmanager
def archive_errors(bucket: str) -> Iterator[None]:
    """No such bucket in words (the stack without the archive, or another region); the rest as aws_errors."""
    with aws_errors("S3", f" (is {bucket!r} the archive bucket? --bucket NAME)"):
        try:
            yield
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise AwsUnavailable(f"archive bucket {bucket!r} does not exist: deploy the stack (it creates the "
                                     "archive), or pass --bucket NAME (and --region)") from None
            raise


def read_period(reader: ArchiveReader, start: datetime, end: datetime, now: datetime, cluster_glob: str,
                progress: Progress) -> tuple[list[Episode], list[RepairFact]]:
    """The archived episodes resolved from the period's first day to today, and the period's repair facts."""
    def drawn(done: int, total: int) -> None:
        progress.update(f"reading the archive {done}/{total}", total)

    try:
        episodes = list(reader.episodes(start.date(), now.date(), cluster_glob=cluster_glob, on_progress=drawn))
        repairs = list(reader.repairs(start.date(), end.date(), cluster_glob=cluster_glob))
    finally:
        progress.clear()
    return episodes, repairs


def opened(records: list[AlertRecord], now: datetime, home: Location | None) -> list[Episode]:
    """The ledger's firing alerts as open episodes, each at its cluster's location (a bare key's: `home`)."""
    return open_episodes(records, now=now, account=home.account if home else None,
                         region=home.region if home else None)


def cmd_report(args: argparse.Namespace) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = period(args.since, args.until, now)  # bad input before any AWS call
    s3 = aws_client(args, "s3", "S3")
    region = s3.meta.region_name
    account = None
    if args.bucket is None or filters_location(args):  # the bucket's name, or where a home cluster is
        sts = aws_client(args, "sts", "STS")
        with aws_errors("STS"):
            account = str(sts.get_caller_identity()["Account"])
    bucket = args.bucket or naming.archive_bucket_name(args.prefix, account or "", region)
    table = args.table or naming.table_name(args.prefix)
    with archive_errors(bucket):
        archived, repairs = read_period(ArchiveReader(s3, bucket), start, end, now, args.cluster, Progress(sys.stderr))
    ledger = LedgerStore(table, aws_client(args, "dynamodb", "DynamoDB"))
    with aws_errors("DynamoDB", f" (is {table!r} the ledger table? --table NAME)"):
        still_open = opened(ledger.open_alerts(args.cluster), now, Location(account, region) if account else None)
    place = {"account": args.account, "region": args.cluster_region}
    archived, repairs = [e for e in archived if in_place(e, **place)], [r for r in repairs if in_place(r, **place)]
    still_open = [e for e in still_open if in_place(e, **place)]
    episodes = with_open(archived, still_open)
    report = build_report(episodes, repairs, start=start, end=end, now=now, filters={"cluster": args.cluster, **place})
    text = RENDERERS[args.format](report)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot write --output {args.output!r}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    print(f"{report.fleet.incidents} incident(s) in {isoformat(start)} to {isoformat(end)}: {len(archived)} "
          f"archived episode(s) from s3://{bucket}, {len(still_open)} open from {table}"
          + (f"; written to {args.output}" if args.output else ""), file=sys.stderr)
    return EXIT_OK


EPILOG = """\
figures (per instance group, cluster and the fleet; README "Reliability report" defines each):
  incidents          episodes in the period (started in it, or still going at its start), by policy
  MTTR               median and p90 (nearest rank) time to recover of the resolved ones, by what
                     resolved them: HyperPod auto-repair, our remediation, manual/other
  node-hours         per node, the union of its unhealthy-node episodes clipped to the period
  below target/min   per group, the union of its degraded-group below-target/below-min episodes
  also               top failure reasons, repeat-offender nodes (>= 3 incidents), incidents per day,
                     open incidents (counted up to now)

formats: text (people), json (the report model), csv (one flat row per figure: scope, cluster,
instance_group, node, metric, key, value), html (one self-contained page with charts, nothing
fetched when viewed).

example:
  hyperpod-guard report --since 7d
  hyperpod-guard report --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z --cluster 'llm-*' \\
      --format html --output report.html
  hyperpod-guard report --since 30d --account 444455556666 --cluster-region 'us-*'

""" + exit_codes("report written (with or without incidents)",
                 bad_input="bad input (a period that does not parse or is empty) or AWS unreachable "
                 "(no credentials, no archive bucket or ledger table)")


def add_report_command(commands: Any) -> None:
    """Add `report` to the top-level subparsers."""
    report = commands.add_parser(
        "report", help="the reliability report of a period: incidents, MTTR, node-hours lost, capacity shortfall",
        description="The reliability report of a period, per cluster and instance group, from the episode\n"
        "archive (S3, written by the functions as alerts resolve) and the ledger's firing alerts\n"
        "(open episodes, counted up to now). Read-only. A progress line is drawn on stderr when it is\n"
        "a terminal and reading the archive takes a moment.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--since", default="7d", metavar="WHEN",
                        help="the period's start: a duration back from now (7d, 36h) or an ISO-8601 time "
                        "(default: 7d)")
    report.add_argument("--until", metavar="WHEN",
                        help="the period's end, like --since (default: now; a later time is now)")
    report.add_argument("--cluster", default="*", metavar="GLOB", help="cluster name glob (default: *)")
    add_location_filters(report, "the incidents")
    report.add_argument("--format", choices=tuple(RENDERERS), default="text",
                        type=lambda value: FORMAT_ALIASES.get(value, value),
                        help="output format: text (for people), json or csv (for programs), html (one "
                        "self-contained page with charts) (default: text)")
    report.add_argument("--output", metavar="FILE", help="write the report to FILE (default: standard output)")
    report.add_argument("--bucket", metavar="NAME",
                        help="the archive bucket (default: <prefix>-archive-<account>-<region>, as deployed)")
    report.add_argument("--table", metavar="NAME", help="the ledger table (default: <prefix>-ledger)")
    add_prefix_option(report)
    add_aws_options(report)
    report.set_defaults(run=cmd_report)
