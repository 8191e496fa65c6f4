"""`hyperpod-guard alerts`: what the ledger holds, like `amtool alert query`.

Read-only, and no Scan however large the table: pending and firing alerts come from the `open`
index (the clusters with open alerts, one Query) and one Query per such cluster; resolved alerts
from the sparse `resolved` index (ledger_store.py). Each alert shows its `why` (the ledger's
reason: "pending: 3m of 15m grace", "silenced by ...") and the active ad-hoc silence that mutes
it, if any.

Exit codes: 0 listed (with or without alerts); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..ledger import AlertRecord, AlertState
from ..ledger_store import LedgerStore
from ..silences import AdHocSilence
from ..timeutil import isoformat
from .common import EXIT_OK, add_aws_options, add_format_option, aws_errors, exit_codes, table
from .silence import BAD_INPUT, add_table_option, now, silence_store

STATES = ("pending", "firing", "resolved", "all")


def silenced_by(record: AlertRecord, silences: list[AdHocSilence]) -> AdHocSilence | None:
    """The active silence that mutes this alert. A silence with tag matchers needs the cluster's
    tags, which the ledger does not keep: it counts when the evaluator named it in the alert's why."""
    at = now()
    for silence in silences:
        if silence.tags:
            if silence.active(at) and f"({silence.id})" in record.reason:
                return silence
        elif silence.matches(record, None, at):
            return silence
    return None


def _scope(record: AlertRecord) -> str:
    return "/".join(part for part in (record.instance_group, record.node) if part) or "(cluster)"


def _state(record: AlertRecord) -> str:
    return record.state.value + (" (owes a notification)" if record.owed else "")


def to_dict(record: AlertRecord, silence: AdHocSilence | None) -> dict[str, Any]:
    return {
        "cluster": record.cluster, "policy": record.policy, "condition": record.condition,
        "severity": record.severity.value, "instance_group": record.instance_group, "node": record.node,
        "state": record.state.value, "owed": record.owed.value if record.owed else None,
        "since": isoformat(record.first_seen), "fired_at": isoformat(record.fired_at) if record.fired_at else None,
        "resolved_at": isoformat(record.resolved_at) if record.resolved_at else None,
        "last_notified": isoformat(record.last_notified) if record.last_notified else None,
        "summary": record.summary, "why": record.reason, "fingerprint": record.fingerprint,
        "silenced_by": silence.to_dict() if silence else None,
    }


def read_alerts(ledger: LedgerStore, cluster: str, state: str) -> list[AlertRecord]:
    records: list[AlertRecord] = []
    if state in ("pending", "firing", "all"):
        records += [r for r in ledger.open_alerts(cluster) if state == "all" or r.state.value == state]
    if state in ("resolved", "all"):
        seen = {(r.cluster, r.fingerprint) for r in records}  # a resolved alert owing its notification is open too
        records += [r for r in ledger.resolved_alerts(cluster) if (r.cluster, r.fingerprint) not in seen]
    order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}
    return sorted(records, key=lambda r: (order[r.state], -r.severity.rank, r.cluster, r.policy, _scope(r)))


def cmd_alerts(args: argparse.Namespace) -> int:
    store = silence_store(args)
    ledger = LedgerStore(store.table_name, store.dynamodb)
    with aws_errors("DynamoDB", f" (is {args.table!r} the ledger table? --table NAME)"):
        records = read_alerts(ledger, args.cluster, args.state)
        silences = store.active(now())
    rows = [(r, silenced_by(r, silences)) for r in records]
    if args.format == "json":
        print(json.dumps({"alerts": [to_dict(r, s) for r, s in rows]}, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print(f"no {'' if args.state == 'all' else args.state + ' '}alerts for clusters matching {args.cluster!r}")
        return EXIT_OK
    print(table(
        ("SEVERITY", "CLUSTER", "POLICY", "SCOPE", "STATE", "SINCE", "LAST NOTIFIED", "SILENCED BY", "WHY"),
        [(r.severity.value, r.cluster, r.policy, _scope(r), _state(r), isoformat(r.first_seen),
          isoformat(r.last_notified) if r.last_notified else "-", s.id if s else "-", r.reason or "-")
         for r, s in rows],
    ))
    print(f"{len(rows)} alert(s)", file=sys.stderr)
    return EXIT_OK


def add_alerts_command(commands: Any) -> None:
    """Add `alerts` to the top-level subparsers."""
    alerts = commands.add_parser(
        "alerts", help="list the alerts the ledger holds: severity, scope, state, since, why, silenced by",
        description="List the alerts in the ledger table (read-only): pending and firing from the `open` index,\n"
        "resolved (kept 7 days) from the `resolved` index; never a Scan. WHY is the ledger's reason for the\n"
        "alert's state; SILENCED BY the active ad-hoc silence that mutes it (`hyperpod-guard silence list`).",
        epilog=exit_codes("listed (with or without alerts)", None, BAD_INPUT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    alerts.add_argument("--cluster", default="*", metavar="GLOB", help="cluster name glob (default: *)")
    alerts.add_argument("--state", choices=STATES, default="firing", help="which alerts (default: firing)")
    add_format_option(alerts)
    add_table_option(alerts)
    add_aws_options(alerts)
    alerts.set_defaults(run=cmd_alerts)
