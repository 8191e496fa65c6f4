"""`hyperpod-guard clusters`: every HyperPod cluster of a region, or of a fleet of accounts and regions, at a
glance, read-only.

ListClusters (every page), then per cluster what `check` does without the nodes: DescribeCluster
(check.read_cluster) and the policies and rules the evaluator uses (engine.evaluate). One
row per cluster: its account and region, status, orchestrator, instance groups InService over all
groups (restricted instance groups included) and the findings an evaluation finds now. Nothing is
written: no ledger, no alerts, only List*/Describe* calls, and ListTags when the rules select clusters
by tag (a cluster whose tags cannot be read is evaluated as untagged, with a warning).

The fleet inventory (`--regions`, `--all-regions`, `--accounts`) lists every account and region, each
*location* on its own: the caller's account with its own credentials (STS GetCallerIdentity says which
it is), every other through its spoke role (AssumeRole, once per account, fleet.py's role name). A
location that cannot be read (role not assumable, region not enabled, AccessDenied) is an `error:` line
of its own and exit code 1; the others are listed. A run of one region without them (the command as it
always was) stops at the first error instead, exit 2.

A person may be waiting on many clusters: locations are listed a few at a time and the clusters read on
a few threads, and a progress line is drawn on stderr when stderr is a terminal and the work takes more
than a moment.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from ..aws_clients import located_session
from ..cluster_reader import ClusterReader
from ..engine import evaluate
from ..findings import Severity
from ..fleet import ACCOUNT_ID, DEFAULT_SPOKE_ROLE, REGION_NAME, FleetSettings, Location
from ..rules import Rules, account_glob
from ..snapshot import ClusterSnapshot, GroupStatus
from .check import read_cluster, read_tags
from .common import (
    CLI_CONFIG,
    EXIT_OK,
    EXIT_PROBLEMS,
    AwsUnavailable,
    BadInput,
    add_format_option,
    add_rules_option,
    aws_client,
    aws_errors,
    exit_codes,
    load_rules_file,
    one_stdin,
    read_text,
    table,
)

#: DescribeCluster calls in flight at once: enough to list a region quickly, far below throttling
WORKERS = 8
#: locations (account and region) listed at once: ListClusters is one call or a few, AssumeRole one per account
LISTERS = 4


@dataclass(frozen=True)
class ClusterRow:
    name: str
    arn: str | None
    status: str | None
    orchestrator: str
    groups_in_service: int
    groups_total: int
    #: findings by severity, from a read-only evaluation
    findings: Counter[str]
    #: None: not read (the rules select no cluster by tag) or unreadable (see `warning`)
    tags: dict[str, str] | None = None
    warning: str | None = None
    #: patch debt: ListClusters' ImageVersionStatus of the cluster (UpToDate, SecurityUpdateRequired, EndOfLife,
    #: ...); None when the listing did not say
    image_version_status: str | None = None
    #: where the cluster lives (the inventory sets both; None: a row made without a location)
    account: str | None = None
    region: str | None = None

    @classmethod
    def of(cls, snapshot: ClusterSnapshot, severities: list[Severity], tags: dict[str, str] | None,
           warning: str | None = None) -> ClusterRow:
        groups = snapshot.all_groups
        return cls(
            name=snapshot.name, arn=snapshot.arn, status=snapshot.status, orchestrator=snapshot.orchestration,
            groups_in_service=sum(g.status == GroupStatus.IN_SERVICE for g in groups), groups_total=len(groups),
            findings=Counter(s.value for s in severities), tags=tags, warning=warning,
            image_version_status=snapshot.image_version_status,
        )

    @property
    def findings_text(self) -> str:
        total = sum(self.findings.values())
        parts = [f"{self.findings[s.value]} {s.value}" for s in Severity if self.findings[s.value]]
        return f"{total} ({', '.join(parts)})" if total else "0"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.name, "account": self.account, "region": self.region, "arn": self.arn,
            "status": self.status, "orchestrator": self.orchestrator,
            "instance_groups": {"in_service": self.groups_in_service, "total": self.groups_total},
            "findings": {"total": sum(self.findings.values()), **{s.value: self.findings[s.value] for s in Severity}},
            "tags": self.tags,
            # patch debt only when ListClusters said it: a listing without it keeps the document as it was
            **({"image_version_status": self.image_version_status} if self.image_version_status else {}),
        }


@dataclass
class Progress:
    """A progress line on stderr, redrawn in place, for a person watching a terminal: drawn only
    when the stream is a TTY and the work takes a moment (`delay` seconds, or more than `many`
    items), so a quick run, a pipe or a log file gets nothing extra."""

    stream: TextIO
    delay: float = 1.0
    many: int = 5
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    enabled: bool = field(init=False)
    shown: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.enabled = _isatty(self.stream)

    def update(self, text: str, items: int = 0) -> None:
        """Draw `text` once the work has taken `delay` seconds, or at once for more than `many` items."""
        if not self.enabled or not (items > self.many or self.clock() - self.started >= self.delay):
            return
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: no terminal to draw on
        return False


def list_cluster_names(sagemaker: Any) -> dict[str, str | None]:
    """Every cluster's name, with its ImageVersionStatus as ListClusters says it (patch debt without a call)."""
    with aws_errors("SageMaker"):
        return {s.name: s.image_version_status for s in ClusterReader(sagemaker).list_cluster_summaries()}


def read_row(sagemaker: Any, name: str, rules: Rules, now: datetime,
             image_version_status: str | None = None) -> ClusterRow | None:
    """One cluster's row, or None when it was deleted between ListClusters and DescribeCluster."""
    try:
        snapshot = read_cluster(sagemaker, name, nodes=False)
    except BadInput:  # read_cluster's "not found": listed, then gone
        return None
    if image_version_status is not None:  # the listing's, passed through (DescribeCluster does not say it)
        snapshot = snapshot.model_copy(update={"image_version_status": image_version_status})
    tags, warning = read_tags(sagemaker, snapshot, rules)
    evaluation = evaluate(snapshot, None, rules.for_tags(tags), now)
    return ClusterRow.of(snapshot, [f.severity for f in evaluation.findings], tags, warning)


# --- where to look --------------------------------------------------------------------------------


def read_accounts(path: str) -> tuple[str, ...]:
    """The account ids of an `--accounts` file, in order, each once: one per line (`#` comments and blank
    lines ignored), a JSON list of strings, or a CSV whose header has an `account` column. Anything else is
    BadInput naming the line (or the JSON item)."""
    text = read_text(path, "accounts")
    shown = "(standard input)" if path == "-" else repr(path)
    if text.lstrip().startswith("["):
        return _json_accounts(text, shown)
    lines = [(number, line.split("#", 1)[0].strip()) for number, line in enumerate(text.splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    header = [cell.strip().lower() for cell in next(csv.reader([lines[0][1]]))] if lines else []
    if "account" in header:  # a CSV (a spreadsheet's export): its `account` column
        column = header.index("account")
        cells = [(number, row[column].strip() if column < len(row) else "")
                 for number, row in zip((n for n, _ in lines[1:]), csv.reader(line for _, line in lines[1:]),
                                        strict=True)]
    else:
        cells = lines
    for number, cell in cells:
        if not (cell.isascii() and ACCOUNT_ID.fullmatch(cell)):  # \d matches any script's digits
            raise BadInput(f"accounts file {shown}, line {number}: not a 12-digit account id: {cell!r}")
    if not cells:
        raise BadInput(f"accounts file {shown} lists no account")
    return tuple(dict.fromkeys(cell for _, cell in cells))


def _json_accounts(text: str, shown: str) -> tuple[str, ...]:
    try:
        listed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"accounts file {shown}, line {exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(listed, list) or not listed:
        raise BadInput(f"accounts file {shown}: a JSON list of 12-digit account ids (strings) was expected")
    for index, item in enumerate(listed):
        if not isinstance(item, str) or not (item.isascii() and ACCOUNT_ID.fullmatch(item)):
            raise BadInput(f"accounts file {shown}, item {index}: not a 12-digit account id (a string): {item!r}")
    return tuple(dict.fromkeys(listed))


def comma_list(check: Callable[[str], Any]) -> Callable[[str], list[str]]:
    """An argparse type: `a,b` -> [a, b], each passing `check` (ValueError: a usage error saying why)."""
    def parse(value: str) -> list[str]:
        items = [item.strip() for item in value.split(",") if item.strip()]
        try:
            for item in items or [value]:
                check(item)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return items

    return parse


def region_name(value: str) -> str:
    if not (value.isascii() and REGION_NAME.fullmatch(value)):  # \d alone would take any script's digits
        raise ValueError(f"not a region name: {value!r}; use a region as AWS spells it, e.g. 'us-west-2'")
    return value


def matches(account: str | None, globs: list[str] | None) -> bool:
    """--account: no globs keep everything; an unknown account only then."""
    return not globs or (account is not None and any(fnmatchcase(account, glob) for glob in globs))


@dataclass(frozen=True)
class Target:
    """One location to list, and how to reach it: `role_arn` None reads it with the caller's own credentials."""

    region: str
    #: None in a plain run (one region, no fleet options): the rows' ARNs say it, no STS call is made
    account: str | None
    role_arn: str | None = None


@dataclass(frozen=True)
class ReadError:
    """What could not be read: a whole account (its role), a location's listing, or one cluster."""

    account: str | None
    region: str | None
    message: str
    cluster: str | None = None

    def __str__(self) -> str:
        where = "/".join(part for part in (self.account, self.region) if part)
        return f"{where}: " + (f"cluster {self.cluster}: " if self.cluster else "") + self.message

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "region": self.region, "cluster": self.cluster, "error": self.message}


@dataclass(frozen=True)
class Plan:
    """What a run lists: the locations, and the sessions that reach them."""

    targets: tuple[Target, ...]
    #: True for the fleet inventory (errors are per location, exit 1); False for a plain one-region run
    fleet: bool
    #: account -> its boto3 session (the caller's, or a spoke role's), whose clients reach its regions; a plain
    #: run: None -> its one SageMaker client
    sessions: dict[str | None, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: what is listed, sorted (a plain run: its region, no account)
    regions: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)


def _region_of(session: Any, args: argparse.Namespace) -> str:
    """The region the caller's STS and EC2 calls go to: the profile's or environment's, else the first asked."""
    region = session.region_name or next(iter(args.regions or args.region or ()), None)
    if not region:
        raise AwsUnavailable("cannot reach STS: no AWS region; pass --region or --regions, or set AWS_REGION")
    return str(region)


def sagemaker_regions(session: Any, region: str) -> tuple[list[str], str | None]:
    """--all-regions: the regions enabled for the account (EC2 DescribeRegions, opted-in ones only) where
    SageMaker is (botocore's endpoint data); if DescribeRegions is refused, botocore's list, with a warning."""
    known = session.get_available_regions("sagemaker", session.get_partition_for_region(region))
    ec2 = session.client("ec2", region_name=region, config=CLI_CONFIG)
    try:
        enabled = {r["RegionName"] for r in ec2.describe_regions(AllRegions=False)["Regions"]}
    except ClientError as exc:
        reason = " ".join(str(exc).split())
        return known, (f"cannot list the account's enabled regions ({reason}); listing every region SageMaker "
                       f"is in ({len(known)}), those not enabled will fail")
    return [r for r in known if r in enabled], None


def plan(args: argparse.Namespace) -> Plan:
    """The locations to list, from the options: which regions, which accounts, the filters narrowing both."""
    wanted_regions = set(args.region or ())
    if not (args.regions or args.all_regions or args.accounts or len(wanted_regions) > 1):
        # the command as it always was: one region, the caller's credentials, nothing looked up
        sagemaker = aws_client(_plain_args(args), "sagemaker", "SageMaker")
        region = sagemaker.meta.region_name
        return Plan((Target(region, None),), fleet=False, sessions={None: sagemaker}, regions=[region])
    import boto3
    import botocore.session

    with aws_errors("STS"):
        core = botocore.session.Session(profile=args.profile)
        session = boto3.session.Session(botocore_session=core)
        home = _region_of(session, args)
        core.set_config_variable("region", home)  # where AssumeRole's STS client goes
        caller = str(session.client("sts", region_name=home, config=CLI_CONFIG).get_caller_identity()["Account"])
    warnings: list[str] = []
    if args.all_regions:
        with aws_errors("EC2"):
            regions, warning = sagemaker_regions(session, home)
        warnings += [warning] if warning else []
    else:
        regions = list(args.regions or args.region or [home])
    regions = [r for r in dict.fromkeys(regions) if not wanted_regions or r in wanted_regions]
    accounts = [a for a in dict.fromkeys((caller, *args.accounts)) if matches(a, args.account)]
    spokes = FleetSettings(role_name=args.role_name, external_id=args.external_id)
    partition = session.get_partition_for_region(home)
    targets = tuple(Target(region, account, None if account == caller else spokes.role_arn(account, partition))
                    for account in accounts for region in regions)
    sessions: dict[str | None, Any] = {caller: session}
    for target in targets:
        if target.role_arn and target.account not in sessions:
            # one session per spoke account, its clients made per region: one AssumeRole for all its regions
            sessions[target.account] = located_session(home, target.role_arn, args.external_id, base=core)
    return Plan(targets, fleet=True, sessions=sessions, warnings=tuple(warnings), regions=sorted(regions),
                accounts=sorted(accounts))


def _plain_args(args: argparse.Namespace) -> argparse.Namespace:
    """--region as aws_client wants it: one region (or None: the profile's or environment's)."""
    return argparse.Namespace(region=next(iter(args.region or ()), None), profile=args.profile)


# --- reading --------------------------------------------------------------------------------------


@dataclass
class Inventory:
    rows: list[ClusterRow] = field(default_factory=list)
    errors: list[ReadError] = field(default_factory=list)
    listed: int = 0  # locations listed (or failed)
    found: int = 0  # clusters listed
    read: int = 0  # clusters described (or failed)


class Surveyor:
    """Lists a plan's locations (LISTERS at once) and reads their clusters (WORKERS at once): a spoke account's
    role is assumed first, once; each listing then queues its clusters' reads. A plain run raises the first error;
    the fleet inventory records it against its location and carries on."""

    def __init__(self, plan: Plan, rules: Rules, now: datetime, progress: Progress):
        self.plan, self.rules, self.now, self.progress = plan, rules, now, progress
        self.inventory = Inventory()
        self._clients_lock = threading.Lock()  # a boto3 session makes one client at a time

    def client(self, target: Target) -> Any:
        maker = self.plan.sessions[target.account]
        if not self.plan.fleet:
            return maker  # the plain run's client, made by aws_client
        with self._clients_lock:
            return maker.client("sagemaker", region_name=target.region, config=CLI_CONFIG)

    def assume(self, account: str) -> None:
        """The spoke role's credentials, fetched now (botocore refreshes them): an account whose role cannot be
        assumed is one error, not one per region."""
        role_arn = next(t.role_arn for t in self.plan.targets if t.account == account)
        try:
            self.plan.sessions[account].get_credentials().get_frozen_credentials()
        except (ClientError, BotoCoreError) as exc:
            raise AwsUnavailable(f"cannot assume {role_arn}: {' '.join(str(exc).split())}") from None

    def list_target(self, target: Target) -> tuple[Any, dict[str, str | None]]:
        sagemaker = self.client(target)
        return sagemaker, list_cluster_names(sagemaker)

    def run(self) -> Inventory:
        listers = ThreadPoolExecutor(max_workers=LISTERS, thread_name_prefix="clusters-list")
        readers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="clusters")
        work: dict[Future[Any], tuple[str, Any]] = {}
        spokes = dict.fromkeys(t.account for t in self.plan.targets if t.role_arn and t.account)
        for account in spokes:
            work[listers.submit(self.assume, account)] = ("assume", account)
        for target in self.plan.targets:
            if target.account not in spokes:
                work[listers.submit(self.list_target, target)] = ("list", target)
        try:
            pending = set(work)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    kind, subject = work.pop(future)
                    try:
                        result = future.result()
                    except AwsUnavailable as exc:
                        self.failed(kind, subject, str(exc))
                        continue
                    if kind == "assume":  # the role's credentials are there: list the account's regions
                        for target in (t for t in self.plan.targets if t.account == subject):
                            queued = listers.submit(self.list_target, target)
                            work[queued] = ("list", target)
                            pending.add(queued)
                    elif kind == "list":
                        pending.update(self.listed(readers, work, subject, *result))
                    else:
                        self.row(subject, result)
                self.progress.update(self.progress_text(), len(self.plan.targets) + self.inventory.found)
            return self.inventory
        finally:
            listers.shutdown(wait=False, cancel_futures=True)
            readers.shutdown(wait=False, cancel_futures=True)
            self.progress.clear()

    def listed(self, readers: ThreadPoolExecutor, work: dict[Future[Any], tuple[str, Any]], target: Target,
               sagemaker: Any, names: dict[str, str | None]) -> list[Future[Any]]:
        self.inventory.listed += 1
        self.inventory.found += len(names)
        reads = [readers.submit(read_row, sagemaker, name, self.rules, self.now, names[name]) for name in sorted(names)]
        work.update((future, ("read", (target, name))) for future, name in zip(reads, sorted(names), strict=True))
        return reads

    def row(self, read: tuple[Target, str], row: ClusterRow | None) -> None:
        target, _ = read
        self.inventory.read += 1
        if row is not None:  # a plain run does not ask STS who it is: the cluster's ARN says its account
            account = target.account or getattr(Location.of_arn(row.arn), "account", None)
            self.inventory.rows.append(dataclasses.replace(row, account=account, region=target.region))

    def failed(self, kind: str, subject: Any, message: str) -> None:
        if not self.plan.fleet:
            raise AwsUnavailable(message)  # a plain run: the one line it always printed, exit 2
        if kind == "assume":  # the account's every location: one error, its locations counted as done
            self.inventory.listed += sum(t.account == subject for t in self.plan.targets)
            self.inventory.errors.append(ReadError(subject, None, message))
        elif kind == "list":
            self.inventory.listed += 1
            self.inventory.errors.append(ReadError(subject.account, subject.region, message))
        else:
            target, name = subject
            self.inventory.read += 1
            self.inventory.errors.append(ReadError(target.account, target.region, message, cluster=name))

    def progress_text(self) -> str:
        done = self.inventory
        if not self.plan.fleet:
            return f"reading clusters {done.read}/{done.found}" if done.listed else "listing clusters..."
        what = "regions" if len(self.plan.accounts) == 1 else "locations"
        return f"{done.listed}/{len(self.plan.targets)} {what} listed, {done.read}/{done.found} clusters read"


def inventory(plan: Plan, rules: Rules, now: datetime, progress: Progress) -> Inventory:
    """Every cluster of the plan's locations as a row, by account, region and name; what could not be read."""
    found = Surveyor(plan, rules, now, progress).run()
    found.rows.sort(key=lambda r: (r.account or "", r.region or "", r.name))
    found.errors.sort(key=lambda e: (e.account or "", e.region or "", e.cluster or ""))
    return found


# --- output ---------------------------------------------------------------------------------------


def render_table(rows: list[ClusterRow], region: str) -> str:
    """`region`: what the empty table names (the region, or e.g. "2 region(s) of 3 account(s)")."""
    if not rows:
        return f"no clusters in {region}"
    # IMAGES (patch debt) only when ListClusters reports an ImageVersionStatus (older APIs and moto do not)
    images = any(r.image_version_status for r in rows)
    # ACCOUNT and REGION for rows the inventory placed (all of its rows)
    located = any(r.region for r in rows)
    return table(
        (*(("ACCOUNT", "REGION") if located else ()), "CLUSTER", "STATUS", "ORCHESTRATOR", "GROUPS",
         *(("IMAGES",) if images else ()), "FINDINGS"),
        [(*((r.account or "-", r.region or "-") if located else ()), r.name, r.status or "unknown", r.orchestrator,
          f"{r.groups_in_service}/{r.groups_total}", *((r.image_version_status or "-",) if images else ()),
          r.findings_text) for r in rows],
    )


def render_json(found: Inventory, plan: Plan) -> str:
    """A plain run: {"region", "clusters", "errors"} as before; the fleet: {"accounts", "regions", ...}."""
    where: dict[str, Any] = ({"accounts": plan.accounts, "regions": plan.regions} if plan.fleet
                             else {"region": plan.targets[0].region})
    return json.dumps({**where, "clusters": [r.to_dict() for r in found.rows],
                       "errors": [e.to_dict() for e in found.errors]}, indent=2, ensure_ascii=False)


def keep(rows: Iterable[ClusterRow], accounts: list[str] | None) -> list[ClusterRow]:
    """--account on the rows (a plain run knows a row's account from its ARN only)."""
    return [r for r in rows if matches(r.account, accounts)]


def cmd_clusters(args: argparse.Namespace) -> int:
    one_stdin(rules=args.rules, accounts=args.accounts_file)
    rules = load_rules_file(args.rules)  # bad input before any AWS call: the rules, the accounts file
    args.accounts = read_accounts(args.accounts_file) if args.accounts_file else ()
    where = plan(args)
    for warning in where.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    found = inventory(where, rules, datetime.now(UTC), Progress(sys.stderr))
    found.rows = keep(found.rows, args.account)
    for row in found.rows:
        if row.warning:
            print(f"warning: {row.warning}", file=sys.stderr)
    for error in found.errors:
        print(f"error: {error}", file=sys.stderr)
    scope = (f"{len(where.regions)} region(s) of {len(where.accounts)} account(s)" if where.fleet
             else where.targets[0].region)
    if args.format == "json":
        print(render_json(found, where))
    else:
        if found.rows:
            print(f"{len(found.rows)} cluster(s) in {scope}", file=sys.stderr)
        print(render_table(found.rows, scope))
    return EXIT_PROBLEMS if found.errors else EXIT_OK


EPILOG = """\
columns:
  ACCOUNT   the cluster's account (from its ARN)
  REGION    the cluster's region
  GROUPS    instance groups InService / all instance groups (restricted instance groups included)
  IMAGES    patch debt, from ListClusters alone: the cluster's ImageVersionStatus over its instance groups
            (UpToDate, UpdateAvailable, SecurityUpdateRequired, EndOfLife; "-" when not listed); shown
            when ListClusters reports it for some cluster
  FINDINGS  what an evaluation with the rules finds now, by severity (DescribeCluster only: nodes in
            Failure need `hyperpod-guard check --cluster NAME`, which also lists the nodes)

the fleet inventory:
  --regions/--all-regions list several regions, --accounts several accounts: the caller's own
  account (STS GetCallerIdentity) with its own credentials, every other one through its spoke role
  (sts:AssumeRole on arn:aws:iam::ACCOUNT:role/ROLE-NAME, once per account, session name
  hyperpod-guard). --all-regions: the regions EC2 DescribeRegions says are enabled for the caller's
  account (opted-in ones only) where SageMaker is; without ec2:DescribeRegions, every region SageMaker
  is in, with a warning. A location that cannot be read is an `error: ACCOUNT/REGION: ...` line
  (an account whose role cannot be assumed: one line for the account) and exit code 1; the rest is
  listed. --account/--region narrow what is listed (and shown).

reads:
  sts:GetCallerIdentity (fleet only), ec2:DescribeRegions (--all-regions only), sts:AssumeRole (other
  accounts only), sagemaker:ListClusters, sagemaker:DescribeCluster, sagemaker:ListTags (only when the
  rules select clusters by tag). Writes nothing, anywhere.

example:
  hyperpod-guard clusters --region us-west-2
  hyperpod-guard clusters --format json --rules rules.json
  hyperpod-guard clusters --all-regions --accounts accounts.txt --external-id hyperpod-guard
  hyperpod-guard clusters --regions us-east-1,us-west-2 --account 111122223333

""" + exit_codes("listed (with or without findings)",
                 problems="the fleet inventory could not read some accounts, regions or clusters (an "
                 "`error: ...` line each); the rest is listed",
                 bad_input="bad input (invalid rules or accounts file) or AWS unreachable or refusing (a "
                 "plain one-region run)")


def add_clusters_command(commands: Any) -> None:
    """Add `clusters` to the top-level subparsers."""
    clusters = commands.add_parser(
        "clusters", help="list the clusters of a region or of every account and region, with status, groups "
        "and findings (read-only)",
        description="List the HyperPod clusters of a region (ListClusters), or of many regions and accounts\n"
        "(the fleet inventory), with their account, region, status, orchestrator (eks/slurm), instance\n"
        "groups InService over all, and the findings a read-only evaluation (DescribeCluster + the\n"
        "policies and rules) finds now. Read-only: it reads SageMaker (List*/Describe*; ListTags only when\n"
        "the rules select clusters by tag), STS (who the caller is, the spoke roles) and EC2 DescribeRegions\n"
        "(--all-regions); it writes nothing: no ledger, no alerts, nothing to AWS.\n"
        "A progress line is drawn on stderr when it is a terminal and listing takes a moment.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    regions = comma_list(region_name)
    accounts = comma_list(account_glob)  # as `alerts`, `report`, `silence` take it: an id or a glob
    clusters.add_argument("--region", metavar="REGION", action="extend", type=regions,
                          help="AWS region to list (default: from the environment/profile); with --regions or "
                          "--all-regions, only these of them; repeatable or comma-separated")
    clusters.add_argument("--profile", metavar="PROFILE", help="AWS named profile")
    where = clusters.add_mutually_exclusive_group()
    where.add_argument("--regions", metavar="R1,R2", action="extend", type=regions,
                       help="list these regions (comma-separated, repeatable)")
    where.add_argument("--all-regions", action="store_true",
                       help="list every region enabled for the account where SageMaker is")
    clusters.add_argument("--accounts", metavar="FILE", dest="accounts_file",
                          help="also list these accounts through their spoke role: one 12-digit id a line (# "
                          "comments), a JSON list or a CSV with an `account` column; - for standard input")
    clusters.add_argument("--role-name", metavar="NAME", default=DEFAULT_SPOKE_ROLE,
                          help=f"the spoke role assumed in each other account (default: {DEFAULT_SPOKE_ROLE})")
    clusters.add_argument("--external-id", metavar="ID",
                          help="the external id passed on AssumeRole (default: none; the spoke stack's is its "
                          "prefix, e.g. hyperpod-guard)")
    clusters.add_argument("--account", metavar="GLOB", action="extend", type=accounts,
                          help="only clusters of these AWS accounts: account ids or globs over digits (e.g. "
                          "'1111*'); repeatable or comma-separated (default: all)")
    add_format_option(clusters)
    add_rules_option(clusters)
    clusters.set_defaults(run=cmd_clusters)
