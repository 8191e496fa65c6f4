"""image-hygiene: one row per case, from DescribeCluster groups, the nodes read and ListClusters' summary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hyperpod_guard.findings import Escalation, Severity
from hyperpod_guard.policies.image_hygiene import (
    END_OF_LIFE,
    NAME,
    PARTIALLY_PATCHED,
    POLICY,
    RELEASE_DRIFT,
    SECURITY_UPDATE,
    UNKNOWN_STATUS,
    UPDATE_AVAILABLE,
    ImageHygieneSettings,
    evaluate,
)
from hyperpod_guard.snapshot import ClusterSnapshot
from tests.botocore_model import model_errors
from tests.conftest import REPO

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SETTINGS = ImageHygieneSettings()
OLD, NEW = "2026.10.01", "2026.11.05"


def group(name: str = "gpu", status: str | None = "UpToDate", *, current: str | None = NEW,
          desired: str | None = NEW, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceGroupName": name, "Status": "InService", "CurrentCount": 4, "TargetCount": 4,
                            "CurrentImageReleaseVersion": current, "DesiredImageReleaseVersion": desired}
    if status is not None:
        data["ImageVersionStatus"] = status
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def node(instance: str, version: str = NEW, *, group_name: str = "gpu", status: str | None = None,
         desired: str | None = None) -> dict[str, Any]:
    data = {"InstanceId": instance, "InstanceGroupName": group_name, "InstanceStatus": {"Status": "Running"},
            "CurrentImageReleaseVersion": version, "DesiredImageReleaseVersion": desired or version,
            "LastSoftwareUpdateTime": "2026-10-02T00:00:00Z"}
    if status is not None:
        data["ImageVersionStatus"] = status
    return data


def patched(hours_ago: float, strategy: str = "WhenIdle", idle: int | None = 3600) -> dict[str, Any]:
    config: dict[str, Any] = {"PatchingStrategy": strategy,
                              "CurrentPatchSchedule": {"NextPatchDate": NOW - timedelta(hours=hours_ago)}}
    if idle is not None:
        config["IdleWaitWindowInSeconds"] = idle
    return {"AutoPatchConfig": config}


def snapshot(*groups: dict[str, Any], nodes: list[dict[str, Any]] | None = None,
             summary: str | None = None) -> ClusterSnapshot:
    data: dict[str, Any] = {"ClusterName": "training", "ClusterStatus": "InService", "InstanceGroups": list(groups),
                            "Nodes": nodes or []}
    if summary is not None:
        data["ImageVersionStatus"] = summary
    return ClusterSnapshot.model_validate(data)


MIXED = [node("i-1"), node("i-2"), node("i-3", OLD, desired=NEW)]

# (id, snapshot, settings, expected {(condition, severity, group, node)})
CASES: list[tuple[str, ClusterSnapshot, ImageHygieneSettings, set[tuple[str, Severity, str | None, str | None]]]] = [
    ("up to date: nothing", snapshot(group(), nodes=[node("i-1")], summary="UpToDate"), SETTINGS, set()),
    ("no image fields at all (older API, Slurm): nothing", snapshot({"InstanceGroupName": "gpu"}), SETTINGS, set()),
    ("group SecurityUpdateRequired: warning on the group only (cluster aggregate and nodes say the same)",
     snapshot(group(status="SecurityUpdateRequired"), nodes=[node("i-1", status="SecurityUpdateRequired")],
              summary="SecurityUpdateRequired"),
     SETTINGS, {(SECURITY_UPDATE, Severity.WARNING, "gpu", None)}),
    ("group EndOfLife: critical", snapshot(group(status="EndOfLife")), SETTINGS,
     {(END_OF_LIFE, Severity.CRITICAL, "gpu", None)}),
    ("UpdateAvailable: nothing by default", snapshot(group(status="UpdateAvailable"), summary="UpdateAvailable"),
     SETTINGS, set()),
    ("UpdateAvailable: info when asked", snapshot(group(status="UpdateAvailable")),
     ImageHygieneSettings(report_update_available=True), {(UPDATE_AVAILABLE, Severity.INFO, "gpu", None)}),
    ("unknown group status: warning (raw value in the evidence)", snapshot(group(status="Quarantined")), SETTINGS,
     {(UNKNOWN_STATUS, Severity.WARNING, "gpu", None)}),
    ("a node worse than its group: the node's own finding",
     snapshot(group(status="UpToDate"), nodes=[node("i-1"), node("i-2", status="EndOfLife")]), SETTINGS,
     {(END_OF_LIFE, Severity.CRITICAL, "gpu", "i-2")}),
    ("cluster status only from ListClusters (groups silent): cluster finding",
     snapshot(group(status=None), summary="EndOfLife"), SETTINGS, {(END_OF_LIFE, Severity.CRITICAL, None, None)}),
    ("cluster status unknown value: cluster warning", snapshot(group(), summary="Deprecated"), SETTINGS,
     {(UNKNOWN_STATUS, Severity.WARNING, None, None)}),
    ("mixed versions after the window (+ idle wait + settle): partially patched",
     snapshot(group(**patched(hours_ago=6)), nodes=MIXED), SETTINGS,
     {(PARTIALLY_PATCHED, Severity.WARNING, "gpu", None), (RELEASE_DRIFT, Severity.INFO, "gpu", "i-3")}),
    ("mixed versions while the window settles: nothing yet",
     snapshot(group(**patched(hours_ago=4)), nodes=MIXED), SETTINGS, set()),
    ("mixed versions, WhenIdle with the default 24h idle wait, 6h after: still patching",
     snapshot(group(**patched(hours_ago=6, idle=None)), nodes=MIXED), SETTINGS, set()),
    ("mixed versions, DrainFirst (no idle wait), 6h after: partially patched",
     snapshot(group(**patched(hours_ago=6, strategy="DrainFirst", idle=None)), nodes=MIXED), SETTINGS,
     {(PARTIALLY_PATCHED, Severity.WARNING, "gpu", None), (RELEASE_DRIFT, Severity.INFO, "gpu", "i-3")}),
    ("mixed versions, window still ahead: not judged as partial (node drift only)",
     snapshot(group(**patched(hours_ago=-30)), nodes=MIXED), SETTINGS, {(RELEASE_DRIFT, Severity.INFO, "gpu", "i-3")}),
    ("mixed versions while the group is updating: nothing",
     snapshot(group(**patched(hours_ago=6), SoftwareUpdateStatus="InProgress"), nodes=MIXED), SETTINGS, set()),
    ("group current != desired release: info drift (nodes with the same pair add nothing)",
     snapshot(group(current=OLD), nodes=[node("i-1", OLD, desired=NEW)]), SETTINGS,
     {(RELEASE_DRIFT, Severity.INFO, "gpu", None)}),
    ("group drift while the group is Updating: nothing", snapshot(group(current=OLD, Status="Updating")),
     SETTINGS, set()),
]


@pytest.mark.parametrize("snap, settings, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_image_hygiene(snap: ClusterSnapshot, settings: ImageHygieneSettings,
                       expected: set[tuple[str, Severity, str | None, str | None]]) -> None:
    findings = evaluate(snap, None, settings, NOW)
    assert {(f.condition, f.severity, f.instance_group, f.node) for f in findings} == expected
    assert len(findings) == len(expected)
    assert all(f.policy == NAME and f.problem == "image" for f in findings)


def test_unknown_status_keeps_the_raw_value() -> None:
    (finding,) = evaluate(snapshot(group(status="Quarantined")), None, SETTINGS, NOW)
    assert finding.details["image_version_status"] == "Quarantined"
    assert "Quarantined" in finding.summary


def test_partially_patched_names_versions_counts_and_the_nodes_behind() -> None:
    findings = evaluate(snapshot(group(**patched(hours_ago=6)), nodes=MIXED), None, SETTINGS, NOW)
    (partial,) = [f for f in findings if f.condition == PARTIALLY_PATCHED]
    assert partial.details["versions"] == {NEW: 2, OLD: 1}
    details = partial.details
    assert (details["nodes_read"], details["behind"], details["behind_count"]) == (3, ["i-3"], 1)
    assert f"2 on {NEW}, 1 on {OLD}" in partial.summary
    assert partial.details["patching_strategy"] == "WhenIdle"


def test_conditions_name_no_version_so_a_new_release_is_the_same_alert() -> None:
    before = evaluate(snapshot(group(current=OLD, status="SecurityUpdateRequired")), None, SETTINGS, NOW)
    after = evaluate(snapshot(group(current="2026.12.01", status="SecurityUpdateRequired")), None, SETTINGS, NOW)
    assert {f.fingerprint for f in before} == {f.fingerprint for f in after}
    assert len(before) == 2  # the status and the drift


def test_drift_asks_for_its_threshold_and_escalates_to_warning() -> None:
    settings = ImageHygieneSettings(drift_after=timedelta(hours=6), drift_warning_after=timedelta(days=3))
    (drift,) = evaluate(snapshot(group(current=OLD)), None, settings, NOW)
    assert (drift.severity, drift.grace, drift.escalation) == (
        Severity.INFO, timedelta(hours=6), Escalation(timedelta(days=3), Severity.WARNING))
    assert drift.severity_at(NOW - timedelta(days=3), NOW) is Severity.WARNING
    assert drift.severity_at(NOW - timedelta(days=1), NOW) is Severity.INFO


def test_security_update_says_since_when_the_nodes_were_updated() -> None:
    (finding,) = evaluate(snapshot(group(status="SecurityUpdateRequired"), nodes=[node("i-1")]), None, SETTINGS, NOW)
    assert finding.details["last_software_update"] == "2026-10-02T00:00:00Z"


def test_policy_settings_are_described() -> None:
    fields = POLICY.settings.model_fields
    for name in ("report_update_available", "patch_settle", "drift_after", "drift_warning_after"):
        assert fields[name].description, name


# --- the scenario's snapshot is a DescribeCluster answer ------------------------------------------


def test_scenario_snapshot_is_a_describe_cluster_answer() -> None:
    document = json.loads((REPO / "events" / "image-end-of-life" / "snapshot.json").read_text())
    assert model_errors(document, "DescribeClusterResponse") == []
    ClusterSnapshot.from_describe_cluster(document)
    # and the check bites: our own extension key and an unknown status are refused
    (extension_key,) = model_errors({**document, "Nodes": []}, "DescribeClusterResponse")
    assert 'Unknown parameter in input: "Nodes"' in extension_key
    (unknown_status,) = model_errors({**document, "InstanceGroups": [
        {**document["InstanceGroups"][0], "ImageVersionStatus": "Quarantined"}]}, "DescribeClusterResponse")
    assert "'Quarantined' is not one of ClusterImageVersionStatus's values" in unknown_status


# --- `hyperpod-guard clusters` shows patch debt from ListClusters alone ---------------------------


def test_clusters_table_has_an_images_column_when_listclusters_says() -> None:
    from collections import Counter

    from hyperpod_guard.cli.clusters import ClusterRow, render_table

    listed = ClusterRow.of(snapshot(group(), summary="SecurityUpdateRequired"), [Severity.WARNING], None)
    silent = ClusterRow.of(snapshot(group()).model_copy(update={"name": "other"}), [], None)
    lines = render_table([listed, silent], "us-west-2").splitlines()
    assert lines[0].split() == ["CLUSTER", "STATUS", "ORCHESTRATOR", "GROUPS", "IMAGES", "FINDINGS"]
    assert lines[2].split()[4] == "SecurityUpdateRequired" and lines[3].split()[4] == "-"
    assert listed.to_dict()["image_version_status"] == "SecurityUpdateRequired"
    # a listing without ImageVersionStatus (older API, moto) keeps the table and the JSON as they were
    assert render_table([silent], "us-west-2").splitlines()[0].split() == [
        "CLUSTER", "STATUS", "ORCHESTRATOR", "GROUPS", "FINDINGS"]
    assert "image_version_status" not in silent.to_dict() and silent.findings == Counter()
