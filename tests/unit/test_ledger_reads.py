"""What an evaluation reads of its cluster's ledger (ledger_reads.reads_for) and the keys that make a
read of one node possible (ledger_store.alert_key), as tables (issue 17)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hyperpod_guard.alerting import Scope
from hyperpod_guard.engine import Evaluation
from hyperpod_guard.findings import Finding, Severity, fingerprint
from hyperpod_guard.freshness import Report
from hyperpod_guard.ledger import TEXT_LIMIT, bounded
from hyperpod_guard.ledger_reads import reads_for
from hyperpod_guard.ledger_store import LedgerReads, alert_key
from hyperpod_guard.policies import REGISTRY

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
ALL = frozenset(REGISTRY)


def node_finding(node: str, origin: str = "state") -> Finding:
    return Finding(policy="unhealthy-node", severity=Severity.WARNING, cluster="c", condition="unhealthy",
                   summary="s", node=node, origin=origin)  # type: ignore[arg-type]


GROUP = Finding(policy="degraded-group", severity=Severity.WARNING, cluster="c", condition="status-degraded",
                summary="s", instance_group="g")
HEALTH = Report("node-health/node/i-1", NOW)


@pytest.mark.parametrize(("scope", "findings", "report", "expected"), [
    # the sweep listed every node: every alert may resolve (a node not listed is gone)
    (Scope("c", ALL, nodes=frozenset({"i-1", "i-2"}), all_nodes=True), [node_finding("i-1")], None, LedgerReads()),
    # the cluster is gone: every alert resolves
    (Scope("c", ALL, cluster_gone=True), [], None, LedgerReads()),
    # a State Change event: the cluster and its groups, no node, no report
    (Scope("c", ALL), [GROUP], None, LedgerReads(nodes=frozenset())),
    # a Node Health event: its node (read) and its report mark
    (Scope("c", ALL, nodes=frozenset({"i-1"})), [node_finding("i-1", "event"), GROUP], HEALTH,
     LedgerReads(nodes=frozenset({"i-1"}), mark=HEALTH.key)),
    # ... about a node that is gone: its alerts resolve (the event's finding was dropped)
    (Scope("c", ALL, gone_nodes=frozenset({"i-1"})), [], HEALTH,
     LedgerReads(nodes=frozenset({"i-1"}), mark=HEALTH.key)),
    # a Cluster Event about a node reads no node, but its finding names one: that node's record must be found
    (Scope("c", ALL), [node_finding("i-9", "event")], Report("cluster-event/node/i-9", NOW),
     LedgerReads(nodes=frozenset({"i-9"}), mark="cluster-event/node/i-9")),
])
def test_an_evaluation_reads_what_it_can_change(scope: Scope, findings: list[Finding], report: Report | None,
                                                expected: LedgerReads) -> None:
    assert reads_for(Evaluation("c", findings), scope, report) == expected


def test_only_unhealthy_node_resolves_by_fingerprint_and_names_the_events_own_node() -> None:
    """reads_for reads the nodes of the scope, not those of `evaluation.resolved` (fingerprints): a
    policy whose `resolves` named another node would resolve nothing. A new one must be added here
    once reads_for reads what it names."""
    from hyperpod_guard.events import parse_event
    from hyperpod_guard.snapshot import ClusterSnapshot

    # slurm-health resolves cluster-scope alerts only (node None): the ALERT#C# range, always read
    assert sorted(name for name, policy in REGISTRY.items() if policy.resolves) == ["slurm-health", "unhealthy-node"]
    slurm = REGISTRY["slurm-health"].resolves
    assert slurm is not None
    healthy = parse_event({
        "version": "0", "id": "s", "detail-type": "SageMaker HyperPod Cluster Event", "source": "aws.sagemaker",
        "account": "1", "time": "2026-11-26T10:00:00Z", "region": "us-west-2", "resources": [],
        "detail": {"EventDetails": {"EventId": "s", "ClusterArn": "arn:aws:sagemaker:us-west-2:1:cluster/x",
                                    "ClusterName": "c", "ResourceType": "Cluster", "EventTime": 1764151200000,
                                    "EventDetails": {"EventMetadata": {"SlurmHealth": {
                                        "Component": "Slurmdbd", "Status": "Healthy"}}}}},
    })
    from hyperpod_guard.policies.slurm_health import SLURMDBD, unhealthy_condition

    assert slurm(ClusterSnapshot.minimal("c", None), healthy) == [
        fingerprint("slurm-health", "c", None, None, unhealthy_condition(SLURMDBD))]
    event = parse_event({
        "version": "0", "id": "e", "detail-type": "SageMaker HyperPod Cluster Node Health Event",
        "source": "aws.sagemaker", "account": "1", "time": "2026-11-26T10:00:00Z", "region": "us-west-2",
        "resources": [],
        "detail": {"ClusterName": "c", "InstanceId": "i-1", "HealthSummary": {"HealthStatus": "Healthy"}},
    })
    resolves = REGISTRY["unhealthy-node"].resolves
    assert resolves is not None
    assert resolves(ClusterSnapshot.minimal("c", None), event) == [fingerprint("unhealthy-node", "c", None, "i-1",
                                                                               "unhealthy")]


@pytest.mark.parametrize(("node", "sk"), [
    (None, "ALERT#C#0123456789abcdef0123"),
    ("i-0123456789abcdef0", "ALERT#N#i-0123456789abcdef0#0123456789abcdef0123"),
    ("ip-10-1-32-17.us-west-2", "ALERT#N#ip-10-1-32-17.us-west-2#0123456789abcdef0123"),
])
def test_a_nodes_alerts_sort_under_the_node(node: str | None, sk: str) -> None:
    assert alert_key("c", "0123456789abcdef0123", node) == {"pk": {"S": "CLUSTER#c"}, "sk": {"S": sk}}


@pytest.mark.parametrize("node", ["a#b", "a", "x" * 129, "x" * (TEXT_LIMIT + 50), "ノード", "i 1", "\ud800"])
def test_a_node_id_that_is_not_plain_is_hashed_and_never_a_prefix_of_another(node: str) -> None:
    sk = alert_key("c", "f" * 20, node)["sk"]["S"]
    assert sk.startswith("ALERT#N#") and sk.endswith("#" + "f" * 20) and len(sk.encode("utf-8", "surrogatepass")) < 200
    part = sk.removeprefix("ALERT#N#").removesuffix("#" + "f" * 20)
    assert "#" not in part
    assert part == node or part.startswith("~")
    # the record keeps the node bounded (ledger.TEXT_LIMIT): a read by the finding's node finds its key
    assert alert_key("c", "f" * 20, bounded(node)) == alert_key("c", "f" * 20, node)


def test_the_new_keys_are_never_a_prefix_of_an_old_one() -> None:
    """Old items are `ALERT#<fingerprint>`, a fingerprint 20 lowercase hex digits: a scoped Query
    (begins_with is case-sensitive) never reads one as current."""
    fingerprints = [fingerprint("unhealthy-node", "c", None, f"i-{i}", "unhealthy") for i in range(500)]
    assert all(len(f) == 20 and set(f) <= set("0123456789abcdef") for f in fingerprints)
    for old in (f"ALERT#{f}" for f in fingerprints):
        assert not old.startswith(("ALERT#C#", "ALERT#N#", "ALERTMARK#"))
