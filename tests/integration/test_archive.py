"""The episode archive on moto S3 (server mode): what the evaluator writes when an alert resolves after it
fired, what the sweep writes when that failed, HyperPod's repair facts, and the reader (archive.py)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest

from hyperpod_guard.archive import ArchiveReader, ArchiveWriter, Episode, RepairFact, episode_key
from hyperpod_guard.local.hyperpod_state import delete_cluster
from hyperpod_guard.service import Runtime, handle_event, new_token, sweep
from tests.conftest import REGION
from tests.integration.test_remediation import FakeHyperPod, batch_infer, node_doc, node_rules, put_rules
from tests.runtime_fixtures import scenario, serve, stack  # noqa: F401

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BUCKET = "hyperpod-guard-archive-test"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def runtime(stack, monkeypatch) -> Runtime:  # noqa: F811
    monkeypatch.setenv("ARCHIVE_BUCKET", BUCKET)
    return Runtime.from_env()


def make_bucket() -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})


def objects(prefix: str = "") -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def episodes() -> dict[str, dict[str, Any]]:
    found = {}
    for key, body in objects("episodes/").items():
        (line,) = body.decode().splitlines()
        found[key] = json.loads(line)
    return found


def metrics(capsys) -> list[tuple[str, float]]:
    """(name, value) of the EMF documents printed since the last call."""
    out = []
    for line in capsys.readouterr().out.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
            out += [(m["Name"], doc[m["Name"]]) for m in directive["Metrics"]]
    return out


def step(runtime, event, minutes):
    return handle_event(copy.deepcopy(event), runtime, at(minutes), new_token())


def degraded():
    event, snapshot = scenario("degraded-group-failed")
    serve(snapshot)
    return event, snapshot


def heal(snapshot):
    for group in snapshot["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group["TargetCount"])
    serve(snapshot)


def archived_at(runtime, cluster: str) -> list[str | None]:
    return [item.get("archived_at", {}).get("S") for item in runtime.ledger.dynamodb.query(
        TableName=runtime.ledger.table_name, KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
        ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":a": {"S": "ALERT#C#"}})["Items"]
        if item["sk"]["S"] != "ALERT#C#LAYOUT" and item["state"]["S"] == "resolved"]


# --- what an evaluation writes -------------------------------------------------------------------------


def test_an_episode_that_fires_and_resolves_is_written_once_with_its_fields(stack, runtime, capsys):  # noqa: F811
    make_bucket()
    event, snapshot = degraded()
    step(runtime, event, 0)  # pending
    step(runtime, event, 6)  # firing (5m grace)
    assert objects() == {}
    heal(snapshot)
    step(runtime, event, 20)  # resolved
    step(runtime, event, 21)  # nothing new
    found = episodes()
    # the group's shortfall (below-target) is folded into its status alert, firing muted: its own episode
    assert sorted(e["condition"] for e in found.values()) == ["below-target", "status-failed"]
    (key,) = [k for k, e in found.items() if e["condition"] == "status-failed"]
    episode = found[key]
    fingerprint = episode["fingerprint"]
    assert key == f"episodes/dt=2026-11-24/ml-prod/{fingerprint}-20261124T120000Z.json"
    assert {k: episode[k] for k in ("cluster", "account", "region", "policy", "condition", "severity",
                                    "instance_group", "node", "first_seen", "fired_at", "resolved_at", "open",
                                    "duration_seconds", "resolved_by", "resolution", "actions", "version")} == {
        "cluster": "ml-prod", "account": "111122223333", "region": REGION, "policy": "degraded-group",
        "condition": "status-failed", "severity": "critical", "instance_group": episode["instance_group"],
        "node": None, "first_seen": "2026-11-24T12:00:00Z", "fired_at": "2026-11-24T12:06:00Z",
        "resolved_at": "2026-11-24T12:20:00Z", "open": False, "duration_seconds": 14 * 60.0,
        "resolved_by": "manual", "resolution": "the condition cleared", "actions": [], "version": 1}
    assert episode["instance_group"] and episode["summary"] and episode["reason"]
    assert Episode.model_validate(episode).fingerprint == fingerprint
    assert archived_at(runtime, "ml-prod") == ["2026-11-24T12:20:00Z"] * 2
    archive_metrics = [m for m in metrics(capsys) if m[0] in ("EpisodesArchived", "ArchiveFailed")]
    assert archive_metrics == [("EpisodesArchived", [2.0])]


def test_a_pending_episode_that_clears_in_its_grace_is_not_archived(stack, runtime):  # noqa: F811
    make_bucket()
    event, snapshot = degraded()
    step(runtime, event, 0)  # pending
    heal(snapshot)
    step(runtime, event, 2)  # cleared before its 5m grace
    assert objects() == {}
    assert sweep(runtime, at(10), new_token()).archived == 0


def test_a_cluster_that_is_gone_resolves_its_episode_as_gone(stack, runtime):  # noqa: F811
    make_bucket()
    event, _ = degraded()
    step(runtime, event, 0)
    step(runtime, event, 6)
    delete_cluster("ml-prod", region=REGION)
    step(runtime, event, 30)
    found = episodes().values()
    assert [(e["resolved_by"], e["resolution"]) for e in found] == [("gone", "the cluster no longer exists")] * 2


def test_a_real_action_of_ours_that_succeeded_resolves_as_remediation(stack, runtime):  # noqa: F811
    make_bucket()
    hyperpod = FakeHyperPod(runtime.reader.sagemaker)
    put_rules(node_rules({"dry_run": False}))
    snapshot = batch_infer()
    node = snapshot["Nodes"][0]["InstanceId"] if snapshot.get("Nodes") else "i-0e4d3c2b1a0f9e8d7"
    assert sweep(runtime, at(0), new_token()).errors == {}  # fires and reboots the node
    assert [op for op, _ in hyperpod.take()] == ["BatchRebootClusterNodes"]
    batch_infer(nodes=[node_doc(node, status="Running")])
    assert sweep(runtime, at(15), new_token()).errors == {}  # healthy: resolved
    found = [e for e in episodes().values() if e["policy"] == "unhealthy-node"]
    (episode,) = found
    assert episode["resolved_by"] == "remediation"
    assert [(a["action"], a["outcome"], a["dry_run"], a["nodes"]) for a in episode["actions"]] == [
        ("reboot", f"rebooted {node}", False, [node])]


def test_a_dry_run_is_no_remediation(stack, runtime):  # noqa: F811
    make_bucket()
    put_rules(node_rules({}))  # dry run
    snapshot = batch_infer()
    node = snapshot["Nodes"][0]["InstanceId"] if snapshot.get("Nodes") else "i-0e4d3c2b1a0f9e8d7"
    sweep(runtime, at(0), new_token())
    batch_infer(nodes=[node_doc(node, status="Running")])
    sweep(runtime, at(15), new_token())
    (episode,) = [e for e in episodes().values() if e["policy"] == "unhealthy-node"]
    assert episode["resolved_by"] == "manual"
    assert [(a["outcome"], a["dry_run"]) for a in episode["actions"]] == [(f"would reboot {node} (dry run)", True)]


def test_hyperpods_own_repair_resolves_as_hyperpod_repair(stack, runtime):  # noqa: F811
    make_bucket()
    put_rules({"version": 1, "policies": {"unhealthy-node": {"grace": "0s"}}})
    event, snapshot = scenario("unhealthy-node-auto-replace")  # NodeRecovery Automatic, RepairAction Replace
    serve(snapshot)
    step(runtime, event, 0)
    healthy = copy.deepcopy(event)
    healthy["detail"]["HealthSummary"] = {"HealthStatus": "Healthy"}
    step(runtime, healthy, 30)
    (episode,) = episodes().values()
    assert (episode["resolved_by"], episode["node"], episode["duration_seconds"]) == (
        "hyperpod-repair", "i-0123456789abcdef0", 30 * 60.0)
    assert "NvidiaGpuXidError" in episode["reason"]


def test_an_event_finding_not_reported_again_for_a_day_resolves_as_expired(stack, runtime):  # noqa: F811
    make_bucket()
    put_rules({"version": 1, "policies": {"taint-drift": {"grace": "0s"}}})
    event, snapshot = scenario("taint-drift-k8s-config-update-failed")
    serve(snapshot)
    reported = datetime.fromtimestamp(event["detail"]["EventDetails"]["EventTime"] / 1000, tz=UTC)
    handle_event(copy.deepcopy(event), runtime, reported + timedelta(minutes=1), new_token())
    sweep(runtime, reported + timedelta(hours=25), new_token())
    found = [e for e in episodes().values() if e["condition"] == "k8s-config-update-failed"]
    (episode,) = found
    assert (episode["resolved_by"], episode["resolution"]) == ("expired", "not reported again for 1d")


# --- S3 refusing, the sweep, redelivery ------------------------------------------------------------------


def test_a_refused_put_never_fails_the_evaluation_and_the_next_sweep_archives_it(stack, runtime, capsys):  # noqa: F811
    event, snapshot = degraded()
    step(runtime, event, 0)
    step(runtime, event, 6)
    heal(snapshot)
    capsys.readouterr()
    result = step(runtime, event, 20)  # the bucket does not exist: S3 refuses (NoSuchBucket)
    assert result.invalid is None and next(d.why for d in result.outcomes[-1].decisions).startswith("resolved")
    assert [m for m in metrics(capsys) if m[0] == "ArchiveFailed"] == [("ArchiveFailed", [1.0])] * 2  # one per episode
    assert archived_at(runtime, "ml-prod") == [None, None]
    make_bucket()
    assert sweep(runtime, at(25), new_token()).archived == 2
    (episode,) = [e for e in episodes().values() if e["condition"] == "status-failed"]
    # the sweep's account is the cluster's ARN in its listing (moto's account; the scenario's DescribeCluster
    # document, which the evaluation reads, names another)
    (listed,) = boto3.client("sagemaker").list_clusters()["ClusterSummaries"]
    assert (episode["resolved_at"], episode["resolved_by"], episode["resolution"], episode["account"]) == (
        "2026-11-24T12:20:00Z", "manual", "the condition cleared", listed["ClusterArn"].split(":")[4])
    assert archived_at(runtime, "ml-prod") == ["2026-11-24T12:25:00Z"] * 2
    assert ("EpisodesArchived", [2.0]) in metrics(capsys)
    assert sweep(runtime, at(30), new_token()).archived == 0  # marked: not again


def test_a_redelivered_event_writes_no_second_different_object(stack, runtime):  # noqa: F811
    make_bucket()
    event, snapshot = degraded()
    step(runtime, event, 0)
    step(runtime, event, 6)
    heal(snapshot)
    step(runtime, event, 20)
    before = objects()
    step(runtime, event, 20)  # the same event again (EventBridge is at least once)
    step(runtime, event, 22)
    assert objects() == before and len(before) == 2


def test_the_sweep_never_overwrites_an_episode_the_evaluation_wrote(stack, runtime):  # noqa: F811
    """The alert lost its mark (a later Put of the episode, e.g. a resolved notification re-sent): the sweep
    finds it unarchived, S3 holds the evaluation's object (with the cluster's tags): it stays as it is."""
    make_bucket()
    event, snapshot = degraded()
    step(runtime, event, 0)
    step(runtime, event, 6)
    heal(snapshot)
    step(runtime, event, 20)
    before = objects()
    table, dynamodb = runtime.ledger.table_name, runtime.ledger.dynamodb
    for item in dynamodb.scan(TableName=table)["Items"]:
        if "archived_at" in item:
            dynamodb.update_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                                 UpdateExpression="REMOVE archived_at")
    assert sweep(runtime, at(30), new_token()).archived == 2  # marked again
    assert objects() == before
    assert sweep(runtime, at(35), new_token()).archived == 0


# --- repair facts ------------------------------------------------------------------------------------------


def cluster_event(description: str, event_id: str, minutes: float) -> dict[str, Any]:
    event, snapshot = scenario("taint-drift-k8s-config-update-failed")
    serve(snapshot)
    details = event["detail"]["EventDetails"]
    details.update(EventId=event_id, Description=description, ResourceType="Instance",
                   EventTime=int(at(minutes).timestamp() * 1000), EventLevel="Info")
    details.pop("EventDetails", None)
    event["id"] = event_id
    return event


def test_node_repair_cluster_events_are_archived_as_repair_facts(stack, runtime):  # noqa: F811
    make_bucket()
    cluster, group, node = "genai-platform", "h100-serve", "i-0c1d2e3f4a5b6c7d8"
    started = cluster_event(f"Instance {node} is starting as part of instance replacement in Cluster {cluster} "
                            f"and IG {group}", "e-1", 0)
    done = cluster_event(f"Instance {node} replace completed successfully as part of instance replacement in "
                         f"Cluster {cluster} and IG {group}", "e-2", 9)
    other = cluster_event(f"Successfully updated Kubernetes config for instance {node} in Cluster {cluster} "
                          f"and IG {group}", "e-3", 10)
    for event, minutes in ((started, 1), (done, 10), (done, 11), (other, 12)):  # `done` delivered twice
        step(runtime, event, minutes)
    assert sorted(objects("repairs/")) == [f"repairs/dt=2026-11-24/{cluster}/e-1.json",
                                           f"repairs/dt=2026-11-24/{cluster}/e-2.json"]
    facts = list(ArchiveReader(boto3.client("s3"), BUCKET).repairs(date(2026, 11, 24), date(2026, 11, 24)))
    assert [(f.event_id, f.kind, f.phase, f.node, f.instance_group, f.account, f.at) for f in facts] == [
        ("e-1", "replacement", "started", node, group, "111122223333", at(0)),
        ("e-2", "replacement", "completed", node, group, "111122223333", at(9))]


# --- the reader ---------------------------------------------------------------------------------------------


def test_the_reader_lists_across_days_page_by_page_and_filters_by_cluster_glob(stack):  # noqa: F811
    make_bucket()
    s3 = boto3.client("s3")
    writer = ArchiveWriter(s3, BUCKET)
    written = []
    for day in range(3):
        for cluster in ("ml-prod", "ml-dev", "batch-infer"):
            for n in range(3):
                first_seen = T0 + timedelta(days=day, minutes=n)
                episode = Episode(fingerprint=f"{n:020x}", cluster=cluster, policy="degraded-group",
                                  condition="below-target", severity="warning", first_seen=first_seen,
                                  fired_at=first_seen, resolved_at=first_seen + timedelta(minutes=30), open=False,
                                  duration_seconds=1800.0, resolved_by="manual", summary="short of nodes")
                writer.put_episode(episode)
                written.append(episode)
    writer.put_repair(RepairFact(cluster="ml-prod", event_id="e-9", at=T0, kind="reboot", phase="started"))
    lists: list[str] = []
    s3.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: lists.append(params["url"]))
    progress: list[tuple[int, int]] = []
    reader = ArchiveReader(s3, BUCKET, page_size=2)
    read = list(reader.episodes(date(2026, 11, 24), date(2026, 11, 26), cluster_glob="ml-*",
                                on_progress=lambda done, total: progress.append((done, total))))
    expected = [e for e in written if e.cluster.startswith("ml-")]
    assert sorted(map(episode_key, read)) == sorted(map(episode_key, expected))
    assert read == sorted(read, key=lambda e: (e.resolved_at.date(), e.cluster, e.fingerprint))  # type: ignore[union-attr]
    assert {episode_key(e): e for e in read} == {episode_key(e): e for e in expected}
    assert len(lists) == 3 * 3  # 6 keys a day in pages of 2
    assert progress[0] == (0, 18) and progress[-1] == (18, 18) and len(progress) == 19
    assert len(list(reader.episodes(date(2026, 11, 25), date(2026, 11, 25), cluster_glob="batch-infer"))) == 3
    assert list(reader.episodes(date(2026, 11, 27), date(2026, 11, 30))) == []


def test_the_reader_finds_a_clusters_episodes_in_every_account_by_its_name(stack):  # noqa: F811
    """A hub archives a spoke's `ml-prod` under its key; `--cluster ml-prod` (a glob on names, as the rules')
    reads the home one and the spoke's, and nothing of another name."""
    make_bucket()
    s3 = boto3.client("s3")
    writer = ArchiveWriter(s3, BUCKET)
    for n, cluster in enumerate(("ml-prod", "ml-prod@444455556666/us-east-1", "ml-prod-2@444455556666/us-east-1")):
        first_seen = T0 + timedelta(minutes=n)
        writer.put_episode(Episode(fingerprint=f"{n:020x}", cluster=cluster, policy="degraded-group",
                                   condition="below-target", severity="warning", first_seen=first_seen,
                                   fired_at=first_seen, resolved_at=first_seen + timedelta(minutes=30), open=False,
                                   duration_seconds=1800.0, resolved_by="manual", summary="short of nodes"))
    reader = ArchiveReader(s3, BUCKET)
    read = list(reader.episodes(date(2026, 11, 24), date(2026, 11, 24), cluster_glob="ml-prod"))
    assert sorted(e.cluster for e in read) == ["ml-prod", "ml-prod@444455556666/us-east-1"]
    assert len(list(reader.episodes(date(2026, 11, 24), date(2026, 11, 24), cluster_glob="ml-*"))) == 3
