"""Finding: fingerprint stability, its JSON shape (`evaluate --format json` prints it), escalation, settings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from hyperpod_guard.findings import Escalation, Finding, Severity, fingerprint

DESIGN_KEYS = {"policy", "severity", "cluster", "instance_group", "node", "fingerprint", "summary", "details"}
EXTRA_KEYS = {"condition", "origin", "problem", "grace"}

BASE = ("degraded-group", "training", "gpu-workers", None, "status-degraded")


def make(**overrides) -> Finding:
    fields = dict(
        policy="degraded-group", severity=Severity.WARNING, cluster="training", condition="status-degraded",
        summary="Instance group gpu-workers is Degraded", instance_group="gpu-workers",
    )
    fields.update(overrides)
    return Finding(**fields)


def test_fingerprint_is_stable_and_short_hex():
    first = fingerprint(*BASE)
    assert first == fingerprint(*BASE)
    assert len(first) == 20
    int(first, 16)
    # the same scope and condition with other evidence, severity or summary: same problem
    a = make(details={"current_count": 3}, severity=Severity.WARNING)
    b = make(details={"current_count": 1}, severity=Severity.CRITICAL, summary="other words", origin="event",
             grace=timedelta(minutes=5))
    assert a.fingerprint == b.fingerprint == first


@pytest.mark.parametrize("index, value", [
    pytest.param(0, "failed-rollback", id="policy"),
    pytest.param(1, "inference", id="cluster"),
    pytest.param(2, "cpu-workers", id="group"),
    pytest.param(2, None, id="no-group"),
    pytest.param(3, "i-0123456789abcdef0", id="node"),
    pytest.param(4, "status-failed", id="condition"),
])
def test_fingerprint_differs_by_each_scope_part(index, value):
    changed = list(BASE)
    changed[index] = value
    assert fingerprint(*changed) != fingerprint(*BASE)


def test_fingerprint_does_not_confuse_joined_parts():
    assert fingerprint("p", "a", "bc", None, "x") != fingerprint("p", "ab", "c", None, "x")


def test_node_findings_ignore_the_group():
    node = "i-0123456789abcdef0"
    known = fingerprint("unhealthy-node", "training", "gpu-workers", node, "unhealthy")
    unknown = fingerprint("unhealthy-node", "training", None, node, "unhealthy")
    other_group = fingerprint("unhealthy-node", "training", "cpu-workers", node, "unhealthy")
    assert known == unknown == other_group
    assert make(node=node).fingerprint == make(node=node, instance_group=None).fingerprint
    assert fingerprint("unhealthy-node", "training", None, "i-1", "unhealthy") != unknown


def test_empty_group_and_no_group_are_the_same_scope():
    assert fingerprint("p", "c", "", None, "x") == fingerprint("p", "c", None, None, "x")


def test_to_dict_has_the_design_keys_and_our_extras():
    finding = make(details={"current_count": 3, "target_count": 4, "statuses": ["Degraded"]}, grace=timedelta(minutes=5))
    out = finding.to_dict()
    assert set(out) == DESIGN_KEYS | EXTRA_KEYS
    assert out == {
        "policy": "degraded-group",
        "severity": "warning",
        "cluster": "training",
        "instance_group": "gpu-workers",
        "node": None,
        "fingerprint": fingerprint(*BASE),
        "condition": "status-degraded",
        "summary": "Instance group gpu-workers is Degraded",
        "details": {"current_count": 3, "target_count": 4, "statuses": ["Degraded"]},
        "origin": "state",
        "problem": "health",
        "grace": "5m",
    }
    assert json.loads(json.dumps(out)) == out


def test_to_dict_with_escalation_and_node_is_json_serialisable():
    finding = make(
        policy="failed-rollback", severity=Severity.INFO, condition="rollback-in-progress", node="i-1",
        origin="event", escalation=Escalation(after=timedelta(hours=1, minutes=30), severity=Severity.CRITICAL),
    )
    out = finding.to_dict()
    assert set(out) == DESIGN_KEYS | EXTRA_KEYS | {"escalation"}
    assert out["escalation"] == {"after": "1h30m", "severity": "critical"}
    assert (out["node"], out["origin"], out["severity"], out["grace"]) == ("i-1", "event", "info", "0s")
    assert out["details"] == {}
    assert json.loads(json.dumps(out)) == out


def test_details_default_is_not_shared():
    a, b = make(), make()
    a.details["x"] = 1
    assert b.details == {}


@pytest.mark.parametrize("elapsed, expected", [
    pytest.param(timedelta(0), Severity.INFO, id="just-seen"),
    pytest.param(timedelta(minutes=59, seconds=59), Severity.INFO, id="before"),
    pytest.param(timedelta(hours=1), Severity.CRITICAL, id="at-threshold"),
    pytest.param(timedelta(days=1), Severity.CRITICAL, id="long-after"),
])
def test_severity_at_applies_escalation(elapsed, expected):
    first_seen = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    finding = make(severity=Severity.INFO, escalation=Escalation(timedelta(hours=1), Severity.CRITICAL))
    assert finding.severity_at(first_seen, first_seen + elapsed) is expected


def test_severity_at_without_escalation_is_the_severity():
    now = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    assert make().severity_at(now - timedelta(days=30), now) is Severity.WARNING


@pytest.mark.parametrize("override, expected", [
    pytest.param(None, Severity.WARNING, id="keep"),
    pytest.param(Severity.CRITICAL, Severity.CRITICAL, id="override"),
])
def test_with_settings(override, expected):
    original = make()
    changed = original.with_settings(grace=timedelta(minutes=15), severity=override)
    assert changed.severity is expected
    assert changed.grace == timedelta(minutes=15)
    assert changed.fingerprint == original.fingerprint
    assert original.grace == timedelta(0)  # frozen: a copy, not a mutation


def test_severity_rank_orders_critical_first():
    ranked = sorted(Severity, key=lambda s: s.rank, reverse=True)
    assert ranked == [Severity.CRITICAL, Severity.WARNING, Severity.INFO]
    assert [s.value for s in ranked] == ["critical", "warning", "info"]
