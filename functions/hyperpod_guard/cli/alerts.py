"""`hyperpod-guard alerts`: what the ledger holds, like `amtool alert query`.

Read-only, and no Scan however large the table: pending and firing alerts come from the `open`
index (the clusters with open alerts, one Query) and one Query per such cluster; resolved alerts
from the sparse `resolved` index (ledger_store.py). Each alert shows its `why` (the ledger's
reason: "pending: 3m of 15m grace", "silenced by ...") and the active ad-hoc silence that mutes
it, if any.

Many accounts and regions (fleet.py): `--cluster` globs the cluster's name, in every account and
region; `--account` and `--cluster-region` narrow by where the cluster lives. A cluster of the hub's own
account and region has a bare key: its location is the caller's account (STS GetCallerIdentity) and the
command's AWS region, looked up only when a filter (or an active silence's account or region matcher)
needs it. When any alert shown is of a cluster elsewhere, the table gains ACCOUNT and REGION columns
(and CLUSTER shows the name); the JSON always has `account` and `region` (null: home, not looked up).

Exit codes: 0 listed (with or without alerts); 2 bad input or AWS unreachable, one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from ..fleet import Location, location_of, name_of, split_key
from ..ledger import AlertRecord, AlertState
from ..ledger_store import LedgerStore
from ..policy_settings import glob_match
from ..silences import AdHocSilence, location_matches
from ..timeutil import isoformat
from .common import (
    EXIT_OK,
    add_aws_options,
    add_format_option,
    add_location_filters,
    aws_errors,
    exit_codes,
    filters_location,
    home_location,
    table,
)
from .silence import BAD_INPUT, add_table_option, now, silence_store

STATES = ("pending", "firing", "resolved", "all")


def silenced_by(record: AlertRecord, silences: list[AdHocSilence], home: Location | None = None) -> AdHocSilence | None:
    """The active silence that mutes this alert. A silence with tag matchers needs the cluster's
    tags, which the ledger does not keep: it counts when the evaluator named it in the alert's why.
    `home`: where a bare key's cluster lives (None: unknown, so only account and region '*' match it)."""
    at = now()
    for silence in silences:
        if silence.tags:
            if silence.active(at) and f"({silence.id})" in record.reason:
                return silence
        elif silence.matches(record, None, at, location_of(record.cluster, home)):
            return silence
    return None


def _scope(record: AlertRecord) -> str:
    return "/".join(part for part in (record.instance_group, record.node) if part) or "(cluster)"


def _state(record: AlertRecord) -> str:
    return record.state.value + (" (owes a notification)" if record.owed else "")


def to_dict(record: AlertRecord, silence: AdHocSilence | None, home: Location | None = None) -> dict[str, Any]:
    where = location_of(record.cluster, home)
    return {
        "cluster": record.cluster, "account": where.account if where else None,
        "region": where.region if where else None, "policy": record.policy, "condition": record.condition,
        "severity": record.severity.value, "instance_group": record.instance_group, "node": record.node,
        "state": record.state.value, "owed": record.owed.value if record.owed else None,
        "since": isoformat(record.first_seen), "fired_at": isoformat(record.fired_at) if record.fired_at else None,
        "resolved_at": isoformat(record.resolved_at) if record.resolved_at else None,
        "last_notified": isoformat(record.last_notified) if record.last_notified else None,
        "summary": record.summary, "why": record.reason, "fingerprint": record.fingerprint,
        "silenced_by": silence.to_dict() if silence else None,
    }


def key_globs(cluster: str) -> tuple[str, ...]:
    """The ledger globs (on keys) that find the clusters a name glob matches: the home clusters' bare keys
    and the qualified `name@account/region` ones; one glob when it ends in '*' (it takes both)."""
    return (cluster,) if cluster.endswith("*") else (cluster, f"{cluster}@*")


def read_alerts(ledger: LedgerStore, cluster: str, state: str) -> list[AlertRecord]:
    """The alerts in `state` of the clusters whose name matches the glob `cluster`, in every account and
    region: the `open` index once, one Query per such cluster, the `resolved` index per key glob."""
    records: list[AlertRecord] = []
    if state in ("pending", "firing", "all"):  # LedgerStore.open_alerts, with the glob on the key's name
        for key in sorted(k for k in ledger.open_clusters() if glob_match(cluster, name_of(k))):
            records += [r for r in ledger.load(key).values() if r.open and (state == "all" or r.state.value == state)]
    if state in ("resolved", "all"):
        seen = {(r.cluster, r.fingerprint) for r in records}  # a resolved alert owing its notification is open too
        for glob in key_globs(cluster):
            records += [r for r in ledger.resolved_alerts(glob)
                        if glob_match(cluster, name_of(r.cluster)) and (r.cluster, r.fingerprint) not in seen]
    order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}
    return sorted(records, key=lambda r: (order[r.state], -r.severity.rank, r.cluster, r.policy, _scope(r)))


def in_location(record: AlertRecord, account: str, region: str, home: Location | None) -> bool:
    """Whether the alert's cluster lives in an account and a region the globs match (a bare key: at `home`)."""
    return location_matches(account, region, location_of(record.cluster, home))


def render_text(rows: list[tuple[AlertRecord, AdHocSilence | None]], home: Location | None) -> str:
    """The alerts as a table; with ACCOUNT and REGION columns when a cluster elsewhere is among them."""
    def when(moment: datetime | None) -> str:
        return isoformat(moment) if moment else "-"

    def state_row(r: AlertRecord, s: AdHocSilence | None) -> tuple[str, ...]:
        return (r.policy, _scope(r), _state(r), isoformat(r.first_seen), when(r.last_notified), s.id if s else "-",
                r.reason or "-")

    tail = ("POLICY", "SCOPE", "STATE", "SINCE", "LAST NOTIFIED", "SILENCED BY", "WHY")
    if all(split_key(r.cluster)[1] is None for r, _ in rows):  # one account and region: as before the fleet
        return table(("SEVERITY", "CLUSTER", *tail), [(r.severity.value, r.cluster, *state_row(r, s)) for r, s in rows])

    def place(r: AlertRecord) -> tuple[str, str]:
        where = location_of(r.cluster, home)
        return (where.account, where.region) if where else ("(home)", "(home)")

    return table(("SEVERITY", "CLUSTER", "ACCOUNT", "REGION", *tail),
                 [(r.severity.value, name_of(r.cluster), *place(r), *state_row(r, s)) for r, s in rows])


def _matching(args: argparse.Namespace) -> str:
    """What the alerts shown were narrowed to, in words: `clusters matching 'ml-*' in account 1111*`."""
    text = f"clusters matching {args.cluster!r}"
    text += f" in account {args.account}" if args.account != "*" else ""
    return text + (f" in region {args.cluster_region}" if args.cluster_region != "*" else "")


def cmd_alerts(args: argparse.Namespace) -> int:
    store = silence_store(args)
    ledger = LedgerStore(store.table_name, store.dynamodb)
    with aws_errors("DynamoDB", f" (is {args.table!r} the ledger table? --table NAME)"):
        records = read_alerts(ledger, args.cluster, args.state)
        silences = store.active(now())
    # where a bare key's cluster lives: asked only when a filter or a silence's account/region matcher needs it
    needs_home = filters_location(args) or any(s.account != "*" or s.region != "*" for s in silences)
    home = home_location(args, store.dynamodb.meta.region_name) if needs_home else None
    records = [r for r in records if in_location(r, args.account, args.cluster_region, home)]
    rows = [(r, silenced_by(r, silences, home)) for r in records]
    if args.format == "json":
        print(json.dumps({"alerts": [to_dict(r, s, home) for r, s in rows]}, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print(f"no {'' if args.state == 'all' else args.state + ' '}alerts for {_matching(args)}")
        return EXIT_OK
    print(render_text(rows, home))
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
    alerts.add_argument("--cluster", default="*", metavar="GLOB",
                        help="cluster name glob, in every account and region (default: *)")
    add_location_filters(alerts, "the alerts")
    alerts.add_argument("--state", choices=STATES, default="firing", help="which alerts (default: firing)")
    add_format_option(alerts)
    add_table_option(alerts)
    add_aws_options(alerts)
    alerts.set_defaults(run=cmd_alerts)
