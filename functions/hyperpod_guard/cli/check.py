"""`hyperpod-guard check --cluster NAME`: evaluate a real cluster now, read-only.

DescribeCluster (+ ListClusterNodes unless --no-nodes, + ListTags when a rule selects clusters
by tag), then the same policies and rules the evaluator uses; the findings are printed as
`evaluate` prints them. Nothing is written: no ledger, no alerts, only Describe*/List* calls.
What a user runs before deploying, or to debug.

Exit codes as the rest of the CLI: 0 evaluated (with or without findings); 2 bad input, the
cluster not found, or SageMaker unreachable / refusing, with one `error: ...` line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..cluster_reader import ClusterReader
from ..engine import evaluate
from ..rules import Rules
from ..snapshot import ClusterSnapshot
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
    render_json,
    render_text,
    silenced_findings,
)


def _sagemaker_client(args: argparse.Namespace) -> Any:
    return aws_client(args, "sagemaker", "SageMaker")


def read_cluster(sagemaker: Any, cluster: str, *, nodes: bool) -> ClusterSnapshot:
    """DescribeCluster (+ every node's summary); BadInput when the cluster does not exist."""
    reader = ClusterReader(sagemaker)
    region = sagemaker.meta.region_name
    with aws_errors("SageMaker"):
        snapshot = reader.describe(cluster)
    if snapshot is not None and nodes:
        with aws_errors("SageMaker", " (--no-nodes skips ListClusterNodes)"):
            listed = reader.list_nodes(cluster)
        snapshot = None if listed is None else snapshot.model_copy(update={"nodes": tuple(listed)})
    if snapshot is None:
        raise BadInput(f"cluster {cluster} not found in {region}")
    return snapshot


def read_tags(sagemaker: Any, snapshot: ClusterSnapshot, rules: Rules) -> tuple[dict[str, str] | None, str | None]:
    """(tags, warning): read only when the rules select clusters by tag; unreadable -> untagged."""
    if not rules.selects_by_tags or not snapshot.arn:
        return None, None
    try:
        return ClusterReader(sagemaker).list_tags(snapshot.arn), None
    except (ClientError, BotoCoreError) as exc:
        reason = " ".join(str(exc).split())
        return None, f"cannot read the tags of cluster {snapshot.name} ({reason}); evaluated it as untagged"


def header(snapshot: ClusterSnapshot, region: str, nodes: bool) -> str:
    parts = [
        f"status {snapshot.status or 'unknown'}",
        f"orchestrator {snapshot.orchestration}",
        f"{len(snapshot.instance_groups)} instance group(s)",
    ]
    if nodes:
        parts.append(f"{len(snapshot.nodes)} node(s)")
    return f"cluster {snapshot.name} in {region}: {', '.join(parts)}"


def cmd_check(args: argparse.Namespace) -> int:
    if not args.cluster.strip():
        raise BadInput("--cluster must not be empty")
    rules = load_rules_file(args.rules)  # bad rules are bad input: before any AWS call
    sagemaker = _sagemaker_client(args)
    snapshot = read_cluster(sagemaker, args.cluster, nodes=args.nodes)
    tags, warning = read_tags(sagemaker, snapshot, rules)  # ListTags only when a rule selects by tag
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    now = datetime.now(UTC)
    cluster_rules = rules.resolve(snapshot.name, tags)
    result = evaluate(snapshot, None, cluster_rules, now)
    silenced = silenced_findings(result, cluster_rules, now)
    if args.format == "json":
        print(render_json(result, silenced))
    else:
        print(header(snapshot, sagemaker.meta.region_name, args.nodes), file=sys.stderr)
        print(render_text(result, silenced))
    return EXIT_OK


def add_check_command(commands: Any) -> None:
    """Add `check` to the top-level subparsers."""
    check = commands.add_parser(
        "check", help="evaluate a live cluster read-only (DescribeCluster + ListClusterNodes) and print the findings",
        description="Read a HyperPod cluster from SageMaker (DescribeCluster, and ListClusterNodes unless "
        "--no-nodes) and evaluate it with the same policies and rules as the deployed evaluator. Read-only: "
        "no ledger, no alerts, nothing written to AWS. Findings a silence of the rules mutes now are listed as "
        "silenced, with the silence.",
        epilog=exit_codes("evaluated (with or without findings)",
                          bad_input="bad input (invalid rules), the cluster not found, or SageMaker unreachable "
                          "or refusing"),
    )
    check.add_argument("--cluster", required=True, metavar="NAME", help="cluster name or ARN")
    add_aws_options(check)
    add_rules_option(check)
    add_format_option(check)
    check.add_argument("--nodes", action=argparse.BooleanOptionalAction, default=True,
                       help="list the nodes too, so nodes in Failure are found (default: --nodes)")
    check.set_defaults(run=cmd_check)
