"""auto-patch: one row per case, the clock is the row's hours from the group's NextPatchDate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.findings import Severity
from hyperpod_guard.policies.auto_patch import (
    ACTIVE,
    NAME,
    POLICY,
    RESCHEDULE,
    UNKNOWN_STRATEGY,
    UPCOMING,
    WINDOW,
    AutoPatchSettings,
    evaluate,
)
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import model_errors
from tests.conftest import REPO

PATCH = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
SETTINGS = AutoPatchSettings()


def snapshot(config: dict[str, Any] | None, *, name: str = "gpu") -> ClusterSnapshot:
    group: dict[str, Any] = {"InstanceGroupName": name, "Status": "InService", "CurrentCount": 4, "TargetCount": 4}
    if config is not None:
        group["AutoPatchConfig"] = config
    return ClusterSnapshot.model_validate({"ClusterName": "training", "ClusterStatus": "InService",
                                           "InstanceGroups": [group]})


def config(strategy: str | None = "WhenIdle", *, current: datetime | None = PATCH, desired: datetime | None = None,
           idle: int | None = 3600) -> dict[str, Any]:
    data: dict[str, Any] = {"PatchingStrategy": strategy, "IdleWaitWindowInSeconds": idle}
    if current is not None:
        data["CurrentPatchSchedule"] = {"NextPatchDate": current}
    data["DesiredPatchSchedule"] = {"NextPatchDate": desired or current} if (desired or current) else None
    return {k: v for k, v in data.items() if v is not None}


def at(hours: float) -> datetime:
    return PATCH + timedelta(hours=hours)


# (id, config, now, settings, expected {(condition, severity, phase)})
CASES: list[tuple[str, dict[str, Any] | None, datetime, AutoPatchSettings, set[tuple[str, Severity, str | None]]]] = [
    ("no AutoPatchConfig: nothing", None, at(-1), SETTINGS, set()),
    ("config without a scheduled patch: nothing", config(current=None), at(0), SETTINGS, set()),
    ("window 30h ahead, notice 24h: nothing yet", config(), at(-30), SETTINGS, set()),
    ("window 23h ahead: upcoming notice", config(), at(-23), SETTINGS, {(WINDOW, Severity.INFO, UPCOMING)}),
    ("notice_before 48h: 30h ahead is announced", config(), at(-30),
     AutoPatchSettings(notice_before=timedelta(hours=48)), {(WINDOW, Severity.INFO, UPCOMING)}),
    ("window opened: active", config(), at(0), SETTINGS, {(WINDOW, Severity.INFO, ACTIVE)}),
    ("within idle wait (1h) + window_length (4h): active", config(), at(4.9), SETTINGS,
     {(WINDOW, Severity.INFO, ACTIVE)}),
    ("after idle wait + window_length: over, nothing", config(), at(5), SETTINGS, set()),
    ("WhenIdle without IdleWaitWindowInSeconds: 24h default wait, still active at 27h", config(idle=None), at(27),
     SETTINGS, {(WINDOW, Severity.INFO, ACTIVE)}),
    ("DrainFirst ignores the idle wait: over after window_length", config("DrainFirst", idle=None), at(4), SETTINGS,
     set()),
    ("reschedule pending: info, beside the upcoming notice", config(desired=PATCH + timedelta(days=2)), at(-2),
     SETTINGS, {(WINDOW, Severity.INFO, UPCOMING), (RESCHEDULE, Severity.INFO, None)}),
    ("reschedule pending, window far ahead: the reschedule alone", config(desired=PATCH + timedelta(days=2)),
     at(-72), SETTINGS, {(RESCHEDULE, Severity.INFO, None)}),
    ("desired equals current: no reschedule", config(desired=PATCH), at(-72), SETTINGS, set()),
    ("unknown strategy: warning with the raw value", config("WhenTheMoonIsFull"), at(-72), SETTINGS,
     {(UNKNOWN_STRATEGY, Severity.WARNING, None)}),
]


@pytest.mark.parametrize("cfg, now, settings, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_auto_patch(cfg: dict[str, Any] | None, now: datetime, settings: AutoPatchSettings,
                    expected: set[tuple[str, Severity, str | None]]) -> None:
    findings = evaluate(snapshot(cfg), None, settings, now)
    assert {(f.condition, f.severity, f.details.get("phase")) for f in findings} == expected
    assert len(findings) == len(expected)
    assert all(f.policy == NAME and f.instance_group == "gpu" and f.node is None for f in findings)


def test_one_alert_per_window_from_notice_to_close() -> None:
    """Every evaluation of one window gives the same fingerprint; the date is in the evidence."""
    seen = [evaluate(snapshot(config()), None, SETTINGS, at(h)) for h in (-23, -1, 0, 3)]
    assert {f.fingerprint for findings in seen for f in findings} == {seen[0][0].fingerprint}
    assert {f.details["next_patch_date"] for findings in seen for f in findings} == {"2026-11-21T02:00:00Z"}
    assert [f.details["phase"] for findings in seen for f in findings] == [UPCOMING, UPCOMING, ACTIVE, ACTIVE]
    assert seen[-1][0].details["window_end"] == "2026-11-21T07:00:00Z"  # 1h idle wait + 4h


def test_unknown_strategy_keeps_the_raw_value() -> None:
    (finding,) = evaluate(snapshot(config("WhenTheMoonIsFull")), None, SETTINGS, at(-72))
    assert finding.details["patching_strategy"] == "WhenTheMoonIsFull"
    assert "WhenTheMoonIsFull" in finding.summary


def test_reschedule_names_both_dates() -> None:
    (finding,) = evaluate(snapshot(config(desired=PATCH + timedelta(days=2))), None, SETTINGS, at(-72))
    assert (finding.details["current_next_patch_date"], finding.details["desired_next_patch_date"]) == (
        "2026-11-21T02:00:00Z", "2026-11-23T02:00:00Z")
    assert finding.problem != evaluate(snapshot(config()), None, SETTINGS, at(-1))[0].problem  # news of its own


def test_notices_do_not_repeat_every_few_hours_by_default() -> None:
    assert SETTINGS.repeat_interval == timedelta(days=7)
    for name in ("notice_before", "window_length", "repeat_interval"):
        assert POLICY.settings.model_fields[name].description, name


def test_scenario_snapshot_is_a_describe_cluster_answer() -> None:
    document = json.loads((REPO / "events" / "auto-patch-window-upcoming" / "snapshot.json").read_text())
    assert model_errors(document, "DescribeClusterResponse") == []
    ClusterSnapshot.from_describe_cluster(document)
    group = document["InstanceGroups"][0]
    bad = {**group, "AutoPatchConfig": {**group["AutoPatchConfig"], "PatchingStrategy": "WhenTheMoonIsFull"}}
    (unknown_strategy,) = model_errors({**document, "InstanceGroups": [bad]}, "DescribeClusterResponse")
    assert "'WhenTheMoonIsFull' is not one of" in unknown_strategy  # an unknown strategy breaks the enum
