"""alerting.plan and alerting.fold as tables, in the spirit of Alertmanager's inhibit_test.go:
what an evaluation decides for each alert, given the findings, its scope, the ledger and the time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from hyperpod_guard.alerting import Scope, fold, muted_reason, plan
from hyperpod_guard.engine import Evaluation
from hyperpod_guard.findings import CONFIGURATION, Finding, Severity
from hyperpod_guard.freshness import Report, ReportMark
from hyperpod_guard.ledger import AlertRecord, AlertState, Reason
from hyperpod_guard.ledger_store import ClusterLedger
from hyperpod_guard.policies import POLICY_NAMES
from hyperpod_guard.rules import Rules

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
CRIT, WARN = Severity.CRITICAL, Severity.WARNING
ALL = frozenset(POLICY_NAMES)
RULES = Rules.model_validate({"version": 1, "policies": {p: {"grace": "0s"} for p in POLICY_NAMES}}).resolve("c")


def f(policy: str, condition: str, severity: Severity = WARN, *, group: str | None = "g", node: str | None = None,
      origin: str = "state", problem: str = "health") -> Finding:
    return Finding(policy=policy, severity=severity, cluster="c", condition=condition, summary=f"{condition} summary",
                   instance_group=group, node=node, origin=origin, problem=problem)  # type: ignore[arg-type]


def paged(finding: Finding, *, at: datetime = T0 - timedelta(hours=1), **changes) -> AlertRecord:
    """The alert of `finding`, firing and notified."""
    record = AlertRecord.start(finding, at)
    return replace(record, state=AlertState.FIRING, fired_at=at, last_notified=at, notified_severity=finding.severity,
                   version=2, **changes)


STATUS_FAILED, BELOW_MIN = f("degraded-group", "status-failed", CRIT), f("degraded-group", "below-min", CRIT)
BELOW_TARGET, DEGRADED = f("degraded-group", "below-target"), f("degraded-group", "status-degraded")
ROLLED_BACK = f("failed-rollback", "rolled-back")
REQUIRED = f("taint-drift", "required", problem=CONFIGURATION)
FAILURE = f("unhealthy-node", "instance-failure", CRIT, group="g", node="i-1")
UNHEALTHY = f("unhealthy-node", "unhealthy", CRIT, group=None, node="i-1", origin="event")
OTHER_NODE = f("unhealthy-node", "instance-failure", CRIT, node="i-2")


@pytest.mark.parametrize("findings, leader, inhibited", [
    ([STATUS_FAILED, BELOW_MIN], STATUS_FAILED, [BELOW_MIN]),          # equal severity: the status explains the count
    ([BELOW_TARGET, DEGRADED], DEGRADED, [BELOW_TARGET]),
    ([DEGRADED, BELOW_MIN], BELOW_MIN, [DEGRADED]),                    # the more severe leads
    ([DEGRADED, ROLLED_BACK], ROLLED_BACK, [DEGRADED]),                 # a rollback explains a Degraded group
    ([UNHEALTHY, FAILURE], FAILURE, [UNHEALTHY]),                      # the state confirms the report
    ([REQUIRED, DEGRADED], None, []),                                  # configuration and health: two problems
    ([FAILURE, OTHER_NODE], None, []),                                 # two nodes: two problems
    ([FAILURE, DEGRADED], None, []),                                   # a node and its group: two scopes
], ids=["failed+below-min", "degraded+below-target", "below-min over degraded", "rolled-back+degraded",
        "failure+unhealthy", "other problem", "other node", "other scope"])
def test_one_problem_one_alert(findings, leader, inhibited):
    led, leaders = fold(findings, [], {}, T0)
    assert {fp: m.fingerprint for fp, m in leaders.items()} == {i.fingerprint: leader.fingerprint for i in inhibited}
    if leader:
        (lead,) = [x for x in led if x.fingerprint == leader.fingerprint]
        assert [a["condition"] for a in lead.details["also"]] == [i.condition for i in inhibited]


def test_an_open_page_keeps_leading_its_problem_over_an_equal_newcomer():
    record = paged(UNHEALTHY)  # reported Unhealthy and paged; now the node is seen in Failure
    led, leaders = fold([FAILURE], [record], {record.fingerprint: record}, T0)
    assert leaders[FAILURE.fingerprint].fingerprint == UNHEALTHY.fingerprint
    assert led == [FAILURE]  # a carried alert takes no new evidence


def test_plan_inhibits_the_lesser_finding_and_keeps_its_open_page_firing_until_it_clears():
    shortfall = paged(BELOW_TARGET)  # the group was short first; now it is Failed too
    ledger = ClusterLedger({shortfall.fingerprint: shortfall})
    decisions = plan(Evaluation("c", [STATUS_FAILED, BELOW_TARGET]), Scope("c", ALL), ledger, RULES, T0, "t").decisions
    by = {d.record.fingerprint: d for d in decisions}
    assert by[STATUS_FAILED.fingerprint].notify is Reason.FIRST
    assert by[BELOW_TARGET.fingerprint].muted and by[BELOW_TARGET.fingerprint].record.state is AlertState.FIRING
    # the shortfall clears: the page it sent gets its resolved, inhibited or not
    ledger = ClusterLedger({**ledger.records, BELOW_TARGET.fingerprint: by[BELOW_TARGET.fingerprint].record})
    later = plan(Evaluation("c", [STATUS_FAILED]), Scope("c", ALL), ledger, RULES, T0 + timedelta(minutes=5), "t").decisions
    assert [d.notify for d in later if d.record.fingerprint == BELOW_TARGET.fingerprint] == [Reason.RESOLVED]


MARKED = ReportMark("c", "node-health/node/i-1", T0 + timedelta(minutes=10))


@pytest.mark.parametrize("report_at, notified", [
    (T0 + timedelta(minutes=5), None),            # older than the mark: stale, its text changes nothing
    (T0 + timedelta(minutes=10), Reason.FIRST),   # the newest again
    (T0 + timedelta(minutes=15), Reason.FIRST),
])
def test_a_stale_report_neither_pages_nor_resolves(report_at, notified):
    report = Report(MARKED.key, report_at, "e")
    ledger = ClusterLedger(marks={MARKED.key: MARKED})
    planned = plan(Evaluation("c", [UNHEALTHY]), Scope("c", ALL, nodes=frozenset({"i-1"})), ledger, RULES, T0 + timedelta(hours=1),
                   "t", report)
    assert [d.notify for d in planned.decisions] == ([notified] if notified else [])
    assert bool(planned.stale) is (notified is None)
    assert planned.marks == ([] if notified is None or report_at == MARKED.time else
                             [ReportMark("c", MARKED.key, report_at, "e")])
    # a stale Healthy report does not resolve the open alert
    record = paged(UNHEALTHY)
    healthy = Evaluation("c", [], resolved=[UNHEALTHY.fingerprint])
    resolved = plan(healthy, Scope("c", ALL), ClusterLedger({record.fingerprint: record}, {MARKED.key: MARKED}), RULES,
                    T0 + timedelta(hours=1), "t", report)
    assert [d.notify for d in resolved.decisions] == ([None] if notified is None else [Reason.RESOLVED])


@pytest.mark.parametrize("scope, record_node, cleared", [
    (Scope("c", ALL, nodes=frozenset({"i-1"})), "i-1", True),   # looked at this node: absence resolves
    (Scope("c", ALL, nodes=frozenset({"i-1"})), "i-2", False),  # Node Health read one node: others untouched
    (Scope("c", ALL, all_nodes=True), "i-2", True),             # the sweep listed every node: i-2 is gone
    (Scope("c", ALL, cluster_gone=True), "i-2", True),
    (Scope("c", frozenset({"degraded-group"}), nodes=frozenset({"i-1"})), "i-1", False),  # its policy was not evaluated
])
def test_scoped_resolution(scope, record_node, cleared):
    record = paged(replace(FAILURE, node=record_node))
    (decision,) = plan(Evaluation("c", []), scope, ClusterLedger({record.fingerprint: record}), RULES, T0, "t").decisions
    assert (decision.record.state is AlertState.RESOLVED) is cleared


@pytest.mark.parametrize("launched, cleared", [
    (T0 - timedelta(days=1), False),           # launched before the report: the report stands
    (T0 + timedelta(minutes=1), True),         # launched after it: the report was about a replaced instance
    (None, False),                             # launch time unknown
])
def test_an_event_report_about_a_node_launched_after_it_is_resolved(launched, cleared):
    record = paged(UNHEALTHY, reported_at=T0)
    scope = Scope("c", ALL, nodes=frozenset({"i-1"}), launched={"i-1": launched} if launched else {})
    (decision,) = plan(Evaluation("c", []), scope, ClusterLedger({record.fingerprint: record}), RULES,
                       T0 + timedelta(hours=1), "t").decisions
    assert (decision.notify is Reason.RESOLVED) is cleared
    if cleared:
        assert "was launched at 2026-11-26T06:01:00Z, after the report of 2026-11-26T06:00:00Z" in decision.why


# --- silences and inhibition (muted_reason), like Alertmanager's silence_test.go -------------------

def silenced(matchers: dict[str, str], until: datetime = T0 + timedelta(hours=1), comment: str = ""):
    return Rules.model_validate({"version": 1, "silences": [
        {"matchers": matchers, "until": until.isoformat(), "comment": comment}]}).resolve("c")


CLUSTER_FAILED = f("degraded-group", "cluster-failed", CRIT, group=None)


@pytest.mark.parametrize("record, rules, inhibitors, muted", [
    (FAILURE, silenced({"cluster": "c"}), [], "silenced until 2026-11-26T07:00:00Z"),
    (FAILURE, silenced({"cluster": "c*", "policy": "unhealthy-*"}), [], "silenced until"),   # globs
    (FAILURE, silenced({"node": "i-1"}, comment="CHG-1 reboot"), [], ": CHG-1 reboot"),       # the comment says why
    (FAILURE, silenced({"node": "i-2"}), [], None),                                          # another node
    (FAILURE, silenced({"cluster": "C"}), [], None),                                         # case-sensitive
    (FAILURE, silenced({"cluster": "c"}, until=T0), [], None),                               # ended at `now`
    (CLUSTER_FAILED, silenced({"instance_group": "g"}), [], None),        # no group never matches a group glob
    (CLUSTER_FAILED, silenced({"instance_group": "*"}), [], "silenced until"),  # ... but matches "*"
    (FAILURE, RULES, [CLUSTER_FAILED], "inhibited by degraded-group/cluster-failed"),  # a cluster-level cause
    (DEGRADED, RULES, [CLUSTER_FAILED], "inhibited by degraded-group/cluster-failed"),
    (CLUSTER_FAILED, RULES, [CLUSTER_FAILED], None),                      # a cluster-level alert is never inhibited
    (FAILURE, RULES, [], None),
], ids=["cluster", "globs", "comment", "other node", "case", "expired", "no group vs glob", "no group vs *",
        "inhibited node", "inhibited group", "cluster alert", "nothing"])
def test_muted_reason(record, rules, inhibitors, muted):
    reason = muted_reason(record, rules, inhibitors, T0)
    assert (reason is None) is (muted is None)
    if muted:
        assert muted in reason
    # the alert record of the finding is muted the same way
    assert muted_reason(AlertRecord.start(record, T0), rules, inhibitors, T0) == reason


@pytest.mark.parametrize("own_grace, expected", [
    (timedelta(0), Reason.FIRST),            # the policy's grace (0s in RULES): fires at once
    (timedelta(hours=24), None),             # the finding asks for longer (image-hygiene's release drift): pending
])
def test_a_finding_may_ask_for_a_longer_grace_than_its_policy(own_grace, expected):
    finding = replace(BELOW_TARGET, grace=own_grace)
    planned = plan(Evaluation("c", [finding]), Scope("c", ALL), ClusterLedger({}, {}), RULES, T0, "t")
    (decision,) = planned.decisions
    assert decision.notify is expected and decision.record.state is (AlertState.FIRING if expected else AlertState.PENDING)


@pytest.mark.parametrize("unjudged, resolved", [
    (frozenset(), {"cluster", "group"}),               # the sweep read the cluster's ImageVersionStatus: both judged
    (frozenset({"image-hygiene"}), {"group"}),         # an event did not: the cluster-level alert is carried
])
def test_cluster_level_findings_an_evaluation_could_not_judge_are_carried(unjudged, resolved):
    cluster = f("image-hygiene", "end-of-life", CRIT, group=None, problem="image")
    group = f("image-hygiene", "end-of-life", CRIT, problem="image")
    records = {r.fingerprint: r for r in (paged(cluster), paged(group))}
    scope = Scope("c", ALL, unjudged_cluster=unjudged)
    planned = plan(Evaluation("c", []), scope, ClusterLedger(records, {}), RULES, T0, "t")
    done = {("group" if d.record.instance_group else "cluster") for d in planned.decisions
            if d.record.state is AlertState.RESOLVED}
    assert done == resolved
