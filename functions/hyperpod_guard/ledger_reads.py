"""Which alerts of its cluster one evaluation can change: what the pipeline reads before it plans.

`alerting.plan` decides every record it is given. Those it is not given stay as they are, so an
evaluation must be given every record it could change, and only needs those (issue 17: a storm of
Node Health events over N nodes read O(N) records per event, O(N²) in all). What it can change:

- the alerts without a node (the cluster's, its groups'): every evaluation read the cluster again;
- the alerts of a node it read (`scope.nodes`: absence resolves a state finding there; its launch
  time resolves an older report) or found gone (`scope.gone_nodes`);
- the alerts of a node one of its findings names, whatever read it: a Cluster Event about a node
  reads no node, but its finding must find that node's record (else a second alert and page);
- the fingerprints the event reports fixed (`evaluation.resolved`): policies' `resolves` name the
  event's own node (unhealthy-node: a Healthy report), which is one of the above;
- the event's report mark (freshness.py).

Left out: the other nodes' alerts. A sweep (every node listed) and a cluster that is gone read
everything, so what only the passing of time changes for them (the 24h expiry of an event finding,
a notification left owed by a send that failed and was not retried) waits for the next sweep, or
the next event about that node, instead of any event of the cluster.
"""

from __future__ import annotations

from .alerting import Scope
from .engine import Evaluation
from .freshness import Report
from .ledger_store import LedgerReads


def reads_for(evaluation: Evaluation, scope: Scope, report: Report | None) -> LedgerReads:
    if scope.all_nodes or scope.cluster_gone:
        return LedgerReads()
    named = {finding.node for finding in evaluation.findings if finding.node}
    return LedgerReads(nodes=scope.nodes | scope.gone_nodes | named, mark=report.key if report else None)
