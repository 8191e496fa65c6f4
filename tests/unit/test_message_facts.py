"""What a message states beyond the finding (issue 18): what is true when an alert resolves
(state_now.py), the account, what happens next, and the phone-preview sentence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperpod_guard.alerting import account_of
from hyperpod_guard.findings import Severity
from hyperpod_guard.ledger import AlertRecord, AlertState, Timing, clear
from hyperpod_guard.ledger_store import from_item, to_item
from hyperpod_guard.notify.message import FindingPayload, cut_words, next_step
from hyperpod_guard.snapshot import ClusterSnapshot
from hyperpod_guard.state_now import resolved_evidence
from tests.message_samples import SAMPLES

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def snapshot(group_status: str = "InService", current: int = 16, node_status: str = "Running",
             health: str | None = "Schedulable") -> ClusterSnapshot:
    labels = {"sagemaker.amazonaws.com/node-health-status": health} if health else {}
    return ClusterSnapshot.model_validate({
        "ClusterName": "ml-prod", "ClusterStatus": "InService",
        "InstanceGroups": [{"InstanceGroupName": "p5-train", "Status": group_status, "CurrentCount": current,
                            "TargetCount": 16}],
        "Nodes": [{"InstanceId": "i-1", "InstanceGroupName": "p5-train", "InstanceStatus": {"Status": node_status},
                   "KubernetesConfig": {"CurrentLabels": labels}}],
    })


def alert(group: str | None = "p5-train", node: str | None = None, state: AlertState = AlertState.FIRING,
          **fields: object) -> AlertRecord:
    return AlertRecord(policy="degraded-group", severity=Severity.WARNING, cluster="ml-prod", instance_group=group,
                       node=node, condition="status-degraded", summary="Instance group p5-train is Degraded (15/16 nodes)",
                       details={"status": "Degraded"}, fingerprint="f1", state=state, first_seen=NOW - timedelta(hours=3),
                       last_seen=NOW, last_notified=NOW - timedelta(hours=3), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("record, read, why, summary", [
    pytest.param(alert(), snapshot(), "the condition cleared",
                 "Instance group p5-train is back to InService, 16/16 nodes", id="group back in service"),
    pytest.param(alert(), snapshot("Updating", 12), "the condition cleared",
                 "Instance group p5-train is Updating, 12/16 nodes", id="group cleared, another status"),
    pytest.param(alert(node="i-1"), snapshot(), "reported healthy again",
                 "Node i-1 is Running, health Schedulable", id="node read"),
    pytest.param(alert(node="i-1"), snapshot(health=None), "reported healthy again",
                 "Node i-1 is Running", id="node read, no health label (Slurm)"),
    pytest.param(alert(node="i-9"), snapshot(), "node i-9 no longer exists", "Node i-9 no longer exists",
                 id="node not read: why"),
    pytest.param(alert(group=None), snapshot(), "the condition cleared", "Cluster ml-prod is InService",
                 id="cluster scope"),
    pytest.param(alert(), None, "the cluster no longer exists", "The cluster no longer exists", id="nothing read"),
    pytest.param(alert(), ClusterSnapshot.minimal("ml-prod"), "reported healthy again", "Reported healthy again",
                 id="an event's partial snapshot is not a read"),
])
def test_resolved_evidence_is_what_is_true_now(record, read, why, summary):
    evidence = resolved_evidence(record, read, why)
    assert evidence["summary"] == summary
    assert "Degraded" not in str(evidence)  # never the firing evidence again


def test_a_cleared_alert_keeps_its_evidence_through_the_ledger():
    decision = clear(alert(), Timing(), NOW, "the condition cleared",
                     evidence=resolved_evidence(alert(), snapshot(), "the condition cleared"))
    assert decision.record.state is AlertState.RESOLVED and decision.record.resolved_at == NOW
    stored = from_item(to_item(decision.record))
    assert stored.resolved_evidence == {"summary": "Instance group p5-train is back to InService, 16/16 nodes",
                                        "group_status": "InService", "current_count": 16, "target_count": 16}
    assert from_item(to_item(alert())).resolved_evidence is None  # a firing alert has none


@pytest.mark.parametrize("arn, account", [
    ("arn:aws:sagemaker:us-west-2:123456789012:cluster/abcd", "123456789012"),
    ("arn:aws-cn:sagemaker:cn-north-1:210987654321:cluster/x", "210987654321"),
    (None, None), ("", None), ("not-an-arn", None), ("arn:aws:sagemaker:us-west-2::cluster/x", None),
])
def test_account_from_the_cluster_arn(arn, account):
    assert account_of(arn) == account


def finding(**details: object) -> FindingPayload:
    return FindingPayload(policy="unhealthy-node", severity="warning", cluster="c", node="i-1", fingerprint="f",
                          condition="unhealthy", summary="Node i-1 is Unhealthy", details=details)


@pytest.mark.parametrize("payload, actions, expected", [
    (finding(node_recovery="Automatic", repair_action="Replace"), (),
     "HyperPod repairs the node automatically (NodeRecovery Automatic, repair action Replace)"),
    (finding(node_recovery="Automatic", repair_action="None"), (), "Nothing automatic: a person must act"),
    (finding(node_recovery="None"), (), "Nothing automatic: a person must act"),
    (finding(), ("would replace i-1 (dry run)",),
     "Remediation is a dry run: it would replace i-1 and changes nothing; a person must act"),
    (finding(node_recovery="Automatic"), ("would replace i-1 (dry run)",),
     "HyperPod repairs the node automatically (NodeRecovery Automatic); remediation is a dry run: it would "
     "replace i-1 and changes nothing"),
    (finding(), ("replaced i-1",),
     "Remediation replaced i-1; a resolved message follows once it is healthy"),
    (finding(), ("skipped: budget spent",), "Remediation skipped: budget spent; a person must act"),
])
def test_next_step(payload, actions, expected):
    assert next_step(payload, actions) == expected


def test_preview_of_every_sample_is_a_sentence_that_fits():
    for name, sample in SAMPLES.items():
        assert len(sample.preview) <= 100, name
        assert sample.preview.split(" ")[0] in ("CRITICAL", "WARNING", "INFO", "RESOLVED", "TEST"), name
    assert SAMPLES["grouped"].preview.endswith("rollback… (+2 more)")
    assert SAMPLES["resolved"].preview == "RESOLVED ml-prod: Instance group p5-train is back to InService, 16/16 nodes"


words = st.lists(st.text(st.characters(blacklist_categories=("Zs", "Cc")), min_size=1, max_size=15), min_size=1,
                 max_size=40)


@given(words, st.integers(min_value=10, max_value=120))
def test_cut_words_never_cuts_a_word(parts, limit):
    text = " ".join(parts)
    cut = cut_words(text, limit)
    assert len(cut) <= limit
    if cut == text:
        return
    assert cut.endswith("…")
    head = cut[:-1]
    if " " in text[:limit]:  # a space to cut at: the head is whole words of the text
        assert text.startswith(head) and text[len(head)] in " ,;:-—("


def test_runbook_per_policy_and_per_override():
    from hyperpod_guard.alerting import build_notification
    from hyperpod_guard.ledger import Reason
    from hyperpod_guard.rules import load_rules

    rules = load_rules({"version": 1,
                        "policies": {"degraded-group": {"runbook_url": "https://wiki.example.com/degraded"}},
                        "overrides": [{"match": {"cluster": "ml-prod"}, "policies": {
                            "degraded-group": {"runbook_url": "https://wiki.example.com/ml-prod/degraded"}}}]})
    arn = "arn:aws:sagemaker:us-west-2:123456789012:cluster/abcd"
    for cluster, url in (("ml-prod", "https://wiki.example.com/ml-prod/degraded"),
                         ("other", "https://wiki.example.com/degraded")):
        record = alert()
        message = build_notification(cluster, [(Reason.FIRST, record)], NOW, cluster_arn=arn, rules=rules.resolve(cluster))
        (item,) = message.items
        assert item.runbook_url == url and message.account == "123456789012"
        assert item.first_seen == record.first_seen and item.next_step == "Nothing automatic: a person must act"


@pytest.mark.parametrize("url", ["http://wiki.example.com/x", "javascript:alert(1)", "https://a b", "https://x/<!here>"])
def test_runbook_must_be_an_https_link(url):
    from hyperpod_guard.errors import InvalidRulesError
    from hyperpod_guard.rules import load_rules

    with pytest.raises(InvalidRulesError, match="runbook_url"):
        load_rules({"version": 1, "policies": {"degraded-group": {"runbook_url": url}}})
