"""`hyperpod-guard clusters`: every HyperPod cluster of a region at a glance, read-only.

ListClusters (every page), then per cluster what `check` does without the nodes: DescribeCluster
(check.read_cluster) and the policies and rules the evaluator uses (engine.evaluate). One
row per cluster: status, orchestrator, instance groups InService over all groups (restricted
instance groups included) and the findings an evaluation finds now. Nothing is written: no
ledger, no alerts, only List*/Describe* calls, and ListTags when the rules select clusters by
tag (a cluster whose tags cannot be read is evaluated as untagged, with a warning).

A person may be waiting on many clusters: the reads run on a few threads, and a progress line
is drawn on stderr when stderr is a terminal and the work takes more than a moment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from ..cluster_reader import ClusterReader
from ..engine import evaluate
from ..findings import Severity
from ..rules import Rules
from ..snapshot import ClusterSnapshot, GroupStatus
from .check import read_cluster, read_tags
from .common import (
    EXIT_OK,
    BadInput,
    add_aws_options,
    add_format_option,
    add_rules_option,
    aws_client,
    aws_errors,
    exit_codes,
    load_rules_file,
    table,
)

#: DescribeCluster calls in flight at once: enough to list a region quickly, far below throttling
WORKERS = 8


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
            "cluster": self.name, "arn": self.arn, "status": self.status, "orchestrator": self.orchestrator,
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


def _await(futures: list[Future[Any]], progress: Progress, text: Callable[[int], str]) -> None:
    """Wait for every future, redrawing the progress line (`text(done)`); the first failure
    cancels what has not started and is raised."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        for future in done:
            if future.exception() is not None:
                for other in pending:
                    other.cancel()
                future.result()
        progress.update(text(len(futures) - len(pending)), len(futures))


def inventory(sagemaker: Any, rules: Rules, now: datetime, progress: Progress) -> list[ClusterRow]:
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="clusters")
    try:
        listing = pool.submit(list_cluster_names, sagemaker)
        _await([listing], progress, lambda _: "listing clusters...")
        listed = listing.result()
        reads = [pool.submit(read_row, sagemaker, name, rules, now, listed[name]) for name in sorted(listed)]
        _await(reads, progress, lambda done: f"reading clusters {done}/{len(reads)}")
        return [row for row in (f.result() for f in reads) if row is not None]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        progress.clear()


def render_table(rows: list[ClusterRow], region: str) -> str:
    if not rows:
        return f"no clusters in {region}"
    # IMAGES (patch debt) only when ListClusters reports an ImageVersionStatus (older APIs and moto do not)
    images = any(r.image_version_status for r in rows)
    return table(
        ("CLUSTER", "STATUS", "ORCHESTRATOR", "GROUPS", *(("IMAGES",) if images else ()), "FINDINGS"),
        [(r.name, r.status or "unknown", r.orchestrator, f"{r.groups_in_service}/{r.groups_total}",
          *((r.image_version_status or "-",) if images else ()), r.findings_text) for r in rows],
    )


def render_json(rows: list[ClusterRow], region: str) -> str:
    return json.dumps({"region": region, "clusters": [r.to_dict() for r in rows]}, indent=2, ensure_ascii=False)


def cmd_clusters(args: argparse.Namespace) -> int:
    rules = load_rules_file(args.rules)  # bad rules are bad input: before any AWS call
    sagemaker = aws_client(args, "sagemaker", "SageMaker")
    region = sagemaker.meta.region_name
    rows = inventory(sagemaker, rules, datetime.now(UTC), Progress(sys.stderr))
    for row in rows:
        if row.warning:
            print(f"warning: {row.warning}", file=sys.stderr)
    if args.format == "json":
        print(render_json(rows, region))
    else:
        if rows:
            print(f"{len(rows)} cluster(s) in {region}", file=sys.stderr)
        print(render_table(rows, region))
    return EXIT_OK


EPILOG = """\
columns:
  GROUPS    instance groups InService / all instance groups (restricted instance groups included)
  IMAGES    patch debt, from ListClusters alone: the cluster's ImageVersionStatus over its instance groups
            (UpToDate, UpdateAvailable, SecurityUpdateRequired, EndOfLife; "-" when not listed); shown
            when ListClusters reports it for some cluster
  FINDINGS  what an evaluation with the rules finds now, by severity (DescribeCluster only: nodes in
            Failure need `hyperpod-guard check --cluster NAME`, which also lists the nodes)

example:
  hyperpod-guard clusters --region us-west-2
  hyperpod-guard clusters --format json --rules rules.json

""" + exit_codes("listed (with or without findings)",
                 bad_input="bad input (invalid rules) or SageMaker unreachable or refusing")


def add_clusters_command(commands: Any) -> None:
    """Add `clusters` to the top-level subparsers."""
    clusters = commands.add_parser(
        "clusters", help="list the region's clusters with status, groups and findings (read-only)",
        description="List the HyperPod clusters of a region (ListClusters) with their status, orchestrator\n"
        "(eks/slurm), instance groups InService over all, and the findings a read-only evaluation\n"
        "(DescribeCluster + the policies and rules) finds now. Read-only: no ledger, no alerts,\n"
        "nothing written to AWS. ListTags is called only when the rules select clusters by tag.\n"
        "A progress line is drawn on stderr when it is a terminal and listing takes a moment.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_aws_options(clusters)
    add_format_option(clusters)
    add_rules_option(clusters)
    clusters.set_defaults(run=cmd_clusters)
