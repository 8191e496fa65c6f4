"""The benchmark's inputs and verdicts (not its timings: the benchmark is the measurement)."""

from __future__ import annotations

import base64
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench  # noqa: E402
import cold_path

from hyperpod_guard.chatops.interaction import parse
from hyperpod_guard.chatops.signature import verify
from hyperpod_guard.engine import evaluate  # noqa: E402
from hyperpod_guard.notify.buttons import ActionId
from hyperpod_guard.notify.message import Notification
from hyperpod_guard.rules import DEFAULT_RULES  # noqa: E402
from hyperpod_guard.snapshot import ClusterSnapshot  # noqa: E402
from tests.message_samples import SAMPLES


def test_synthetic_cluster_has_the_mixed_drift_the_readme_describes() -> None:
    snapshot = ClusterSnapshot.from_describe_cluster(bench.synthetic_describe_cluster())
    assert len(snapshot.instance_groups) == 256
    group = snapshot.instance_groups[1]
    assert len(group.kubernetes_config.desired_labels) == 20 and len(group.kubernetes_config.desired_taints) == 10
    findings = evaluate(snapshot, None, DEFAULT_RULES, datetime.now(timezone.utc)).findings
    by_condition = Counter((f.policy, f.condition) for f in findings)
    drifted = sum(1 for g in range(256) if g % 4 == 0 or g % 8 == 1 or g % 3 == 0 or g % 10 == 2)
    assert by_condition[("taint-drift", "current-vs-desired")] == drifted
    assert by_condition[("degraded-group", "status-degraded")] == len(range(0, 256, 7))
    assert by_condition[("failed-rollback", "rolled-back")] == len(range(0, 256, 11))
    kinds = Counter()
    for f in findings:
        if f.policy == "taint-drift":
            for part in ("taints", "labels"):
                kinds.update(f"{part}.{kind}" for kind in f.details[part])
    assert set(kinds) == {"taints.changed", "taints.missing", "labels.changed", "labels.unexpected"}


@pytest.mark.parametrize(("calls", "ok"), [
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1}, True),
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1, "dynamodb:PutItem": 1, "sns:Publish": 1}, True),
    ({"sagemaker:DescribeCluster": 1, "dynamodb:Query": 1, "dynamodb:PutItem": 1, "dynamodb:UpdateItem": 1}, False),
    ({"sagemaker:DescribeCluster": 2, "dynamodb:Query": 1}, False),
    ({"sagemaker:DescribeCluster": 1, "ssm:GetParametersByPath": 1}, False),
])
def test_call_count_verdict(calls: dict[str, int], ok: bool) -> None:
    assert bench._calls_ok(calls) is ok


# --- the cold path of issue 20's functions (benchmarks/cold_path.py): what each run sends and what is checked


@pytest.fixture
def stage() -> dict[str, Any]:
    """What cold_path.serve hands the parent: the alert as SNS delivers it (here the golden `firing` sample,
    cluster ml-prod) and the Acknowledge button of its app-mode message."""
    sns_event = {"Records": [{"EventSource": "aws:sns",
                              "Sns": {"MessageId": "m-1", "Message": SAMPLES["firing"].model_dump_json()}}]}
    return {"sns_event": sns_event, "button": cold_path._acknowledge_button(sns_event)}


def test_a_click_run_is_signed_now_and_presses_the_alerts_acknowledge_button(stage: dict[str, Any]) -> None:
    event, action_ts = cold_path._run_event("endpoint", stage, "cold-3")
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    headers = event["headers"]
    verify(cold_path.SIGNING_SECRET, headers["x-slack-request-timestamp"], body, headers["x-slack-signature"],
           datetime.now(UTC))  # the endpoint believes it: no SignatureRefused
    click = parse(body)
    finding = SAMPLES["firing"].items[0].finding
    assert (click.action, click.value.cluster, click.value.fingerprint) == (ActionId.ACKNOWLEDGE, "ml-prod",
                                                                            finding.fingerprint)
    assert (click.action_ts, click.user_id, click.channel_id) == (action_ts, cold_path.USER, cold_path.CHANNEL)
    assert cold_path._run_event("endpoint", stage, "cold-4")[1] != action_ts  # each run's click is its own


def test_an_app_mode_run_delivers_the_first_alert_of_its_cluster(stage: dict[str, Any]) -> None:
    before = json.dumps(stage)
    event, cluster = cold_path._run_event("notifier_app", stage, "cold-3")
    sns = event["Records"][0]["Sns"]
    notification = Notification.model_validate_json(sns["Message"])
    assert cluster == "cold-3" and sns["MessageId"] == "cold-app-cold-3"
    assert notification.cluster == "cold-3" and {i.finding.cluster for i in notification.items} == {"cold-3"}
    assert "ml-prod" not in sns["Message"]  # subject, text and links name it too: a new thread, one post
    assert json.dumps(stage) == before  # the next run starts from the same alert


def _posted(*posts: tuple[str, str]) -> list[dict[str, str]]:
    return [{"channel": channel, "text": text} for channel, text in posts]


C = "C0BENCH"  # cold_path.CHANNEL
SENT = {"endpoint": ["1.000001", "1.000002"], "notifier_app": ["cold-1", "cold-12"]}


@pytest.mark.parametrize(("queued", "posts", "ok"), [
    (["1.000002", "1.000001"], _posted((C, "[CRITICAL] cold-12: Cluster cold-12 is RollingBack"), (C, "cold-1")), True),
    (["1.000001"], _posted((C, "cold-1"), (C, "cold-12")), False),  # a click answered 200 is not on the queue
    (["1.000001", "1.000002", "1.000002"], _posted((C, "cold-1"), (C, "cold-12")), False),  # queued twice
    (["1.000001", "1.000002"], _posted((C, "cold-1")), False),  # an alert not posted
    (["1.000001", "1.000002"], _posted((C, "cold-1"), (C, "cold-12"), (C, "cold-12")), False),  # posted twice
    (["1.000001", "1.000002"], _posted((C, "cold-1"), ("C0OTHER", "cold-12")), False),  # in another channel
    (["1.000001", "1.000002"], _posted((C, "cold-1"), (C, "cold-1 and cold-12")), False),  # not its own
])
def test_app_mode_runs_are_checked_against_the_queue_and_the_slack_stand_in(queued: list[str],
                                                                            posts: list[dict[str, str]],
                                                                            ok: bool) -> None:
    assert cold_path.CHANNEL == C
    stage = {"clicks_queued": queued, "slack_api_posts": posts}
    if ok:
        cold_path._check_app_mode(SENT, stage)
    else:
        with pytest.raises(RuntimeError):
            cold_path._check_app_mode(SENT, stage)


@pytest.mark.parametrize(("kind", "result", "ok"), [
    ("endpoint", {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": ""}, True),
    ("endpoint", {"statusCode": 401, "body": ""}, False),
    ("notifier_app", {"sent": 1, "dropped": 0}, True),
    ("notifier_app", {"sent": 0, "dropped": 1}, False),
    # issue 22: a spoke's event notifies, keyed as a cluster of the spoke's account and region
    ("evaluator_spoke", {"cluster": "spoke-3@444455556666/us-east-1", "notifications": 1}, True),
    ("evaluator_spoke", {"cluster": "spoke-3@444455556666/us-east-1", "notifications": 0}, False),  # read elsewhere
    ("evaluator_spoke", {"cluster": "spoke-3", "notifications": 1}, False),  # taken for a home cluster
    ("evaluator_spoke", {"ignored": "event from region 'us-east-1', not this function's region"}, False),
])
def test_each_run_is_checked(kind: str, result: dict[str, Any], ok: bool) -> None:
    if ok:
        cold_path._check(kind, result)
    else:
        with pytest.raises(RuntimeError):
            cold_path._check(kind, result)


SPOKE_ROLE = ["arn:aws:iam::444455556666:role/hyperpod-guard-spoke", "hyperpod-guard", "hyperpod-guard"]


@pytest.mark.parametrize(("assumed", "ok"), [
    ([SPOKE_ROLE, SPOKE_ROLE], True),
    ([SPOKE_ROLE], False),  # a run whose process did not assume the role (its cluster read as the hub)
    ([SPOKE_ROLE] * 3, False),  # one run assumed it twice (no session kept)
    ([SPOKE_ROLE, [*SPOKE_ROLE[:2], None]], False),  # without the external id the spoke's trust requires
    ([SPOKE_ROLE, [SPOKE_ROLE[0].replace("hyperpod-guard-spoke", "other"), *SPOKE_ROLE[1:]]], False),
])
def test_spoke_runs_are_checked_against_the_roles_moto_saw_assumed(assumed: list[list[str | None]], ok: bool) -> None:
    stage = {"assumed_roles": assumed}
    if ok:
        cold_path._check_spoke(["spoke-1", "spoke-9"], stage)
    else:
        with pytest.raises(RuntimeError):
            cold_path._check_spoke(["spoke-1", "spoke-9"], stage)


def test_the_spoke_run_is_the_home_run_in_a_hubs_environment() -> None:
    """Comparable with cold_event (the same snippet and event, from the spoke); its environment makes a hub
    that believes the spoke's account and region and assumes the role _check_spoke expects."""
    from hyperpod_guard.fleet import FleetSettings, Location

    assert cold_path.SNIPPETS["evaluator_spoke"] == cold_path.SNIPPETS["evaluator"]
    assert "evaluator_spoke" in cold_path.VARIANTS["deployed"].snippets
    hub = FleetSettings.from_env(dict(cold_path._fleet_environment(), AWS_REGION=cold_path.REGION))
    assert hub.home == Location(cold_path.ACCOUNT, cold_path.REGION)
    assert cold_path.SPOKE in hub.accounts and cold_path.SPOKE_REGION in hub.regions
    assert [hub.role_arn(cold_path.SPOKE), "hyperpod-guard", hub.external_id] == SPOKE_ROLE


def test_every_variant_measures_the_endpoint_and_the_app_mode_notifier() -> None:
    for name, variant in cold_path.VARIANTS.items():
        kinds = {cold_path._kind(snippet) for snippet in variant.snippets}
        assert {"endpoint", "notifier_app"} <= kinds, name
    for snippet, code in cold_path.SNIPPETS.items():
        assert "hyperpod_guard.local" not in code, snippet  # not in the asset


@pytest.mark.parametrize(("seconds", "met"), [(0.41, True), (2.99, True), (3.0, False)])
def test_endpoint_verdict_is_slacks_limit(seconds: float, met: bool) -> None:
    _, holds = bench.TARGETS["endpoint_cold_seconds"]
    assert holds({"endpoint_cold_seconds": seconds}) is met


# --- issue 23: the blast radius on the cold path (benchmarks/blast_radius.py): what each run must leave behind

import blast_radius  # noqa: E402

JOBS = {"node": "hyperpod-i-0a1b2c3d4e5f60001", "unknown": None, "jobs": [{"kind": "PyTorchJob", "name": "llama-ft"}]}
TIMEOUT = {"node": "hyperpod-i-0a1b2c3d4e5f60001", "unknown": "timeout: no answer within 3s", "jobs": []}
NODE_GET = f"/api/v1/nodes/{blast_radius.KUBE_NODE}"
SENT_RUNS = {"workload": ["wl-0", "wl-1"], "plain": ["plain-0", "plain-1"], "hang": ["hang-0"],
             "kubeapi": ["none-0"], "kubernetes_client": ["none-0"], "kubernetes_request": ["none-0"], "boto3": []}


def _read(target: str = NODE_GET, status: int = 200, token: bool = True) -> dict[str, Any]:
    return {"target": target, "status": status, "token": token}


def _stage(**changes: Any) -> dict[str, Any]:
    """What serve reports after runs that all did what they should."""
    workloads = {"wl-0": [JOBS], "wl-1": [JOBS], "plain-0": [None], "plain-1": [None], "hang-0": [TIMEOUT]}
    requests = {"eks": [_read(), _read("/api/v1/pods?fieldSelector=spec.nodeName=x"), _read(),
                        _read("/apis/kueue.x-k8s.io/v1beta1/namespaces/team-a/workloads/w", 404)],
                "hanging": [_read(status=200)], "client": [_read(), _read()]}
    stage = {"workloads": workloads, "requests": requests}
    for key, change in changes.items():
        change(stage[key])
    return stage


def test_blast_radius_runs_that_did_their_work_pass() -> None:
    blast_radius._check(SENT_RUNS, _stage())


@pytest.mark.parametrize("break_it", [
    pytest.param({"workloads": lambda w: w.update({"wl-1": [TIMEOUT]})}, id="workload-run-measured-the-failure"),
    pytest.param({"workloads": lambda w: w.update({"wl-1": [dict(JOBS, jobs=[])]})}, id="workload-run-no-jobs"),
    pytest.param({"workloads": lambda w: w.update({"wl-1": [None]})}, id="workload-run-read-nothing"),
    pytest.param({"workloads": lambda w: w.pop("wl-0")}, id="workload-run-not-delivered"),
    pytest.param({"workloads": lambda w: w.update({"wl-0": [JOBS, JOBS]})}, id="delivered-twice"),
    pytest.param({"workloads": lambda w: w.update({"plain-0": [JOBS]})}, id="plain-run-read-the-workload"),
    pytest.param({"workloads": lambda w: w.update({"hang-0": [JOBS]})}, id="hang-run-did-not-hang"),
    pytest.param({"workloads": lambda w: w.update({"hang-0": [dict(TIMEOUT, unknown="connection refused")]})},
                 id="hang-run-failed-otherwise"),
    pytest.param({"requests": lambda r: r["eks"].pop(0)}, id="a-node-read-missing"),
    pytest.param({"requests": lambda r: r["eks"].append(_read(status=401))}, id="token-refused"),
    pytest.param({"requests": lambda r: r["eks"].append(_read("/api/v1/pods", token=False))}, id="no-token"),
    pytest.param({"requests": lambda r: r["hanging"].clear()}, id="hanging-api-never-asked"),
    pytest.param({"requests": lambda r: r["hanging"].append(_read(status=401))}, id="hanging-api-token-refused"),
    pytest.param({"requests": lambda r: r["client"].pop()}, id="a-client-run-read-nothing"),
])
def test_blast_radius_runs_that_measured_something_else_fail(break_it: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError):
        blast_radius._check(SENT_RUNS, _stage(**break_it))


@pytest.mark.parametrize(("snippet", "result", "ok"), [
    ("workload", {"cluster": "wl-0", "notifications": 1}, True),
    ("hang", {"cluster": "hang-0", "notifications": 0}, False),  # the alert was lost (or held back)
    ("kubeapi", {"node": blast_radius.KUBE_NODE}, True),
    ("kubernetes_request", {"node": None}, False),
    ("kubernetes_client", {"node": None}, True),  # builds the client only: reads nothing
])
def test_each_blast_radius_run_is_checked(snippet: str, result: dict[str, Any], ok: bool) -> None:
    if ok:
        blast_radius._check_result(snippet, result, blast_radius.KUBE_NODE)
    else:
        with pytest.raises(RuntimeError):
            blast_radius._check_result(snippet, result, blast_radius.KUBE_NODE)


def test_the_blast_radius_runs_differ_only_by_their_cluster() -> None:
    """workload, plain and hang are the one evaluator snippet: the rules turn workload on by the cluster's name
    (plain-<n> matches no entry), the hanging API is the cluster's orchestrator. None runs local/ code."""
    from hyperpod_guard.rules import Rules

    assert blast_radius.SNIPPETS["workload"] == blast_radius.SNIPPETS["plain"] == blast_radius.SNIPPETS["hang"]
    rules = Rules.model_validate({"version": 1, "workload": blast_radius.WORKLOAD})
    assert rules.resolve("wl-3").workload is not None and rules.resolve("hang-3").workload is not None
    assert rules.resolve("plain-3").workload is None
    for snippet, code in blast_radius.SNIPPETS.items():
        assert "hyperpod_guard.local" not in code, snippet
    assert "blast_radius_figures" in {step.__name__ for step in bench.STEPS}


@pytest.mark.parametrize(("ratio", "met"), [(1.02, True), (1.1, True), (1.5, False)])
def test_the_hang_verdict_is_the_rules_timeout(ratio: float, met: bool) -> None:
    _, holds = bench.TARGETS["workload_hang_over_timeout_ratio"]
    assert holds({"workload_hang_over_timeout_ratio": ratio}) is met
