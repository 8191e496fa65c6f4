"""A hub watching two accounts and two regions (issue 22), on moto in server mode.

The evaluator Lambda handler and the sweep run with the environment a hub's stack sets (HOME_ACCOUNT,
FLEET_REGIONS, EVENT_ACCOUNTS, SPOKE_ROLE_NAME, SPOKE_EXTERNAL_ID). moto keeps SageMaker per account and
region, and its STS AssumeRole hands out credentials that moto maps to the role's account: a DescribeCluster
made with a spoke's credentials reaches that account's clusters only. What is asserted is recorded by the
server, not by our client: the AssumeRole calls (moto's STS backend of the role's account), and the account
and region of every SageMaker read (moto's SageMakerResponse, wrapped here to note `current_account` and
`region` of each request). HyperPod's node and cluster reads moto lacks are answered by
local/sagemaker_standin.py, validated against botocore's model.
"""

from __future__ import annotations

import functools
import json
import types
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.credentials
import pytest

from hyperpod_guard.alerting import SYSTEM_CLUSTER
from hyperpod_guard.ledger import AlertRecord
from hyperpod_guard.ledger_store import LedgerStore
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.provision import Resources, delivered
from hyperpod_guard.service import Runtime, new_token, sweep
from tests.conftest import ACCOUNT, REGION
from tests.runtime_fixtures import invoke_evaluator, scenario, stack  # noqa: F401

SPOKE = "444455556666"
OTHER_REGION = "us-east-1"
UNLISTED = "999988887777"
ROLE = "hyperpod-guard-spoke"
EXTERNAL_ID = "hyperpod-guard-test"
NODE = "i-0f1e2d3c4b5a69788"
#: (account, region) -> the clusters there: the same name in two accounts, and one more in each other place
CLUSTERS = {
    (ACCOUNT, REGION): ["ml-prod"],
    (ACCOUNT, OTHER_REGION): ["research"],
    (SPOKE, OTHER_REGION): ["ml-prod"],
    (SPOKE, REGION): ["team-b"],
}


@pytest.fixture
def sagemaker_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str]]]:
    """(account, region, operation) of every DescribeCluster/ListClusters/ListClusterNodes/DescribeClusterNode
    moto's server answered."""
    from moto.sagemaker.responses import SageMakerResponse

    seen: list[tuple[str, str, str]] = []
    for method in ("describe_cluster", "list_clusters", "list_cluster_nodes", "describe_cluster_node"):
        original = getattr(SageMakerResponse, method)

        def noted(self: Any, _original: Any = original, _method: str = method) -> Any:
            seen.append((self.current_account, self.region, _method))
            return _original(self)

        monkeypatch.setattr(SageMakerResponse, method, noted)
    yield seen


@pytest.fixture
def hub(stack: Resources, monkeypatch: pytest.MonkeyPatch, sagemaker_calls) -> Resources:  # noqa: F811
    """The functions' environment as a hub's stack sets it, and an unhealthy node in every cluster."""
    monkeypatch.setenv("HOME_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("FLEET_REGIONS", f"{REGION},{OTHER_REGION}")
    monkeypatch.setenv("EVENT_ACCOUNTS", f"{ACCOUNT},{SPOKE}")
    monkeypatch.setenv("SPOKE_ROLE_NAME", ROLE)
    monkeypatch.setenv("SPOKE_EXTERNAL_ID", EXTERNAL_ID)
    from hyperpod_guard import aws_clients

    aws_clients.reset()
    for (account, region), names in CLUSTERS.items():
        for name in names:
            put_unhealthy(name, account, region)
    return stack


def put_unhealthy(name: str, account: str, region: str, *, status: str = "Failure") -> None:
    _, snapshot = scenario("unhealthy-node-no-repair")
    assert snapshot is not None
    snapshot = {k: v for k, v in snapshot.items() if k != "ClusterArn"}  # the injected cluster's own ARN
    snapshot["ClusterName"] = name
    node = {"InstanceId": NODE, "InstanceGroupName": "p5-train", "InstanceType": "ml.p5.48xlarge",
            "InstanceStatus": {"Status": status, "Message": "NvidiaErrorTerminate" if status == "Failure" else ""}}
    put_cluster(snapshot, region=region, account=account, nodes=[node])


def event_from(name: str, account: str, region: str, *, healthy: bool = False,
               at: datetime | None = None) -> dict[str, Any]:
    event, _ = scenario("unhealthy-node-no-repair")
    arn = f"arn:aws:sagemaker:{region}:{account}:cluster/{name}"
    event.update(account=account, region=region, resources=[arn], id=f"{name}-{account}-{region}-{healthy}")
    event["detail"].update(ClusterName=name, ClusterArn=arn)
    if healthy:
        event["detail"]["HealthSummary"] = {"HealthStatus": "Healthy"}
    if at is not None:
        event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def assumed_roles() -> list[tuple[str, str, str]]:
    """(role ARN, session name, external id) of every AssumeRole moto's STS answered for the spoke account."""
    from moto.sts.models import sts_backends

    return [(r.role_arn, r.session_name, r.external_id) for r in sts_backends[SPOKE]["aws"].assumed_roles]


def alerts(table: str) -> dict[tuple[str, str], AlertRecord]:
    """The ledger's alert records (the rules' own aside), by the cluster's key and fingerprint."""
    ledger = LedgerStore(table, boto3.client("dynamodb"))
    items = boto3.client("dynamodb").scan(TableName=table, ProjectionExpression="pk")["Items"]
    keys = {i["pk"]["S"].removeprefix("CLUSTER#") for i in items if i["pk"]["S"].startswith("CLUSTER#")}
    return {(key, fingerprint): record for key in keys - {SYSTEM_CLUSTER}
            for fingerprint, record in ledger.load(key).items()}


def states(table: str) -> dict[str, str]:
    """Each cluster key's alert states (one word when they agree)."""
    found: dict[str, set[str]] = {}
    for (key, _), record in alerts(table).items():
        found.setdefault(key, set()).add(record.state.value)
    return {key: "/".join(sorted(values)) for key, values in found.items()}


def test_events_are_evaluated_in_their_own_account_and_region(hub: Resources, sagemaker_calls) -> None:
    """Each event's cluster is read where it lives: the spoke's through its role, the hub's own with its own
    credentials (its other region included); same-named clusters of two accounts are two alerts."""
    for (account, region), names in CLUSTERS.items():
        for name in names:
            answer, _, _ = invoke_evaluator(event_from(name, account, region))
            assert answer["notifications"] == 1, (name, account, region, answer)

    describes = Counter((a, r) for a, r, op in sagemaker_calls if op == "describe_cluster")
    assert describes == Counter({place: 1 for place in CLUSTERS})  # once each, each in its own place
    spoke_role = f"arn:aws:iam::{SPOKE}:role/{ROLE}"
    # the spoke's role, assumed once for both its regions (one set of credentials per role), with the external
    # id; the hub's own account never through a role
    assert assumed_roles() == [(spoke_role, "hyperpod-guard", EXTERNAL_ID)]
    from moto.sts.models import sts_backends

    assert sts_backends[ACCOUNT]["aws"].assumed_roles == []

    records = alerts(hub.table_name)
    assert sorted({key for key, _ in records}) == ["ml-prod", f"ml-prod@{SPOKE}/{OTHER_REGION}",
                                                    f"research@{ACCOUNT}/{OTHER_REGION}", f"team-b@{SPOKE}/{REGION}"]
    home = {fingerprint for key, fingerprint in records if key == "ml-prod"}
    spoke = {fingerprint for key, fingerprint in records if key == f"ml-prod@{SPOKE}/{OTHER_REGION}"}
    assert home and spoke and not home & spoke  # the same problems of two same-named clusters: other alerts

    messages = delivered(hub)
    where = sorted((m["attributes"]["cluster"], m["attributes"]["account"]) for m in messages)
    assert where == [("ml-prod", ACCOUNT), (f"ml-prod@{SPOKE}/{OTHER_REGION}", SPOKE),
                     (f"research@{ACCOUNT}/{OTHER_REGION}", ACCOUNT), (f"team-b@{SPOKE}/{REGION}", SPOKE)]


@pytest.mark.parametrize(("account", "region", "why"), [
    pytest.param(UNLISTED, REGION, f"event from account '{UNLISTED}'", id="an account not on the allow-list"),
    pytest.param(SPOKE, "eu-west-1", "event from region 'eu-west-1'", id="a region the hub does not watch"),
])
def test_an_event_from_outside_the_fleet_is_ignored(hub: Resources, sagemaker_calls, account: str, region: str,
                                                    why: str) -> None:
    put_unhealthy("ml-prod", account, region)
    answer, logs, metrics = invoke_evaluator(event_from("ml-prod", account, region))
    assert why in answer.get("ignored", ""), answer
    assert metrics["IgnoredEvents"] == 1
    assert sagemaker_calls == [] and assumed_roles() == []  # nothing read, no role assumed
    assert delivered(hub) == [] and alerts(hub.table_name) == {}


def test_same_named_clusters_keep_separate_alerts(hub: Resources) -> None:
    """The spoke's ml-prod recovers: its alert resolves, the hub's own ml-prod stays firing (and the other
    way round an old event of one never touches the other)."""
    now = datetime.now(UTC)
    invoke_evaluator(event_from("ml-prod", ACCOUNT, REGION, at=now - timedelta(minutes=2)))
    invoke_evaluator(event_from("ml-prod", SPOKE, OTHER_REGION, at=now - timedelta(minutes=2)))
    put_unhealthy("ml-prod", SPOKE, OTHER_REGION, status="Running")
    answer, _, _ = invoke_evaluator(event_from("ml-prod", SPOKE, OTHER_REGION, healthy=True, at=now))
    assert answer["notifications"] == 1
    assert states(hub.table_name) == {"ml-prod": "firing", f"ml-prod@{SPOKE}/{OTHER_REGION}": "resolved"}
    last = delivered(hub)[-1]
    assert last["attributes"]["cluster"] == f"ml-prod@{SPOKE}/{OTHER_REGION}"
    assert last["attributes"]["status"] == "resolved"


def test_the_sweep_covers_every_account_and_region(hub: Resources, sagemaker_calls) -> None:
    runtime = Runtime.from_env()
    result = sweep(runtime, datetime.now(UTC), new_token("sweep"))
    assert result.errors == {} and result.clusters == 4 and result.evaluated == 4
    listed = sorted((a, r) for a, r, op in sagemaker_calls if op == "list_clusters")
    assert listed == sorted(CLUSTERS)  # ListClusters once in each account and region
    assert states(hub.table_name) == {"ml-prod": "firing", f"ml-prod@{SPOKE}/{OTHER_REGION}": "firing",
                                      f"research@{ACCOUNT}/{OTHER_REGION}": "firing",
                                      f"team-b@{SPOKE}/{REGION}": "firing"}


def test_a_spoke_that_cannot_be_read_does_not_stop_the_sweep(hub: Resources, monkeypatch: pytest.MonkeyPatch,
                                                             sagemaker_calls) -> None:
    """A spoke whose role refuses (here: its ListClusters denied) is an error of the run, named by its
    location; every other location is evaluated, and its remembered clusters are not taken for gone."""
    from moto.sagemaker.responses import SageMakerResponse

    original = SageMakerResponse.list_clusters

    def refusing(self: Any) -> Any:
        if self.current_account == SPOKE and self.region == OTHER_REGION:
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError("AccessDeniedException", "not authorized to perform: sagemaker:ListClusters")
        return original(self)

    runtime = Runtime.from_env()
    invoke_evaluator(event_from("ml-prod", SPOKE, OTHER_REGION))  # an open alert there, remembered by the ledger
    monkeypatch.setattr(SageMakerResponse, "list_clusters", refusing)
    result = sweep(runtime, datetime.now(UTC), new_token("sweep"))
    assert list(result.errors) == [f"{SPOKE}/{OTHER_REGION}"] and "AccessDenied" in result.errors[f"{SPOKE}/{OTHER_REGION}"]
    assert result.evaluated == 3
    assert states(hub.table_name)[f"ml-prod@{SPOKE}/{OTHER_REGION}"] == "firing"


def test_a_single_account_deployment_becomes_a_hub_without_losing_its_alerts(
        stack: Resources, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Upgrade path: the alert a single-account deployment fired (no fleet environment) is the same alert once
    the deployment is a hub: same partition and fingerprint, no second page, and it resolves as before."""
    put_unhealthy("ml-prod", ACCOUNT, REGION)
    monkeypatch.setenv("EVENT_ACCOUNTS", ACCOUNT)
    from hyperpod_guard import aws_clients

    aws_clients.reset()
    now = datetime.now(UTC)
    answer, _, _ = invoke_evaluator(event_from("ml-prod", ACCOUNT, REGION, at=now - timedelta(minutes=3)))
    assert answer["notifications"] == 1
    before = alerts(stack.table_name)

    monkeypatch.setenv("HOME_ACCOUNT", ACCOUNT)  # redeployed as a hub
    monkeypatch.setenv("FLEET_REGIONS", f"{REGION},{OTHER_REGION}")
    monkeypatch.setenv("EVENT_ACCOUNTS", f"{ACCOUNT},{SPOKE}")
    aws_clients.reset()
    answer, _, _ = invoke_evaluator(event_from("ml-prod", ACCOUNT, REGION, at=now - timedelta(minutes=2)))
    assert answer["notifications"] == 0  # the same alert, still firing: no second page
    assert list(alerts(stack.table_name)) == list(before)
    put_unhealthy("ml-prod", ACCOUNT, REGION, status="Running")
    answer, _, _ = invoke_evaluator(event_from("ml-prod", ACCOUNT, REGION, healthy=True, at=now))
    assert answer["notifications"] == 1
    assert states(stack.table_name) == {"ml-prod": "resolved"}


def test_a_spoke_session_is_made_once_and_refreshed_before_its_credentials_expire(hub: Resources) -> None:
    """One AssumeRole per account and region for the container's life, however many calls; a new one once the
    credentials are within botocore's refresh window (15 minutes before expiry), before any call fails."""
    from hyperpod_guard import aws_clients

    role = f"arn:aws:iam::{SPOKE}:role/{ROLE}"
    sagemaker = aws_clients.located_client("sagemaker", OTHER_REGION, role, EXTERNAL_ID)
    for _ in range(3):
        assert [s["ClusterName"] for s in sagemaker.list_clusters()["ClusterSummaries"]] == ["ml-prod"]
    assert aws_clients.located_client("sagemaker", OTHER_REGION, role, EXTERNAL_ID) is sagemaker
    assert len(assumed_roles()) == 1

    credentials = aws_clients.located_session(OTHER_REGION, role, EXTERNAL_ID).get_credentials()
    assert credentials.method == "assume-role" and not credentials.refresh_needed()
    with pytest.MonkeyPatch.context() as later:  # botocore's clock 50 minutes on: the hour's credentials expire soon
        later.setattr(botocore.credentials, "datetime", _clock_ahead(timedelta(minutes=50)))
        assert credentials.refresh_needed()
        sagemaker.list_clusters()
    assert len(assumed_roles()) == 2 and not credentials.refresh_needed()


def _clock_ahead(by: timedelta) -> Any:
    """A stand-in for botocore.credentials' `datetime` module whose datetime.now() is `by` ahead."""
    import datetime as real

    class Clock(type):  # botocore checks isinstance(value, datetime.datetime) on real datetimes
        def __instancecheck__(cls, value: Any) -> bool:
            return isinstance(value, real.datetime)

    class Ahead(real.datetime, metaclass=Clock):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return real.datetime.now(tz) + by

    return types.SimpleNamespace(**{**vars(real), "datetime": Ahead})


def put_rules(rules: dict[str, Any]) -> None:
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules),
                                      Overwrite=True)


@pytest.mark.parametrize("hub_env", [True, False], ids=["hub", "one-account"])
def test_rules_by_account_and_region_reach_the_right_cluster(stack: Resources, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                             hub_env: bool) -> None:
    """An override selecting the hub's own account and region applies to its ml-prod, not to the spoke's (and,
    in a deployment without a fleet, to its own cluster as its ARN says where it lives)."""
    put_rules({"version": 1, "overrides": [
        {"match": {"account": ACCOUNT, "region": REGION}, "policies": {"unhealthy-node": {"severity": "info"}}},
        {"match": {"account": SPOKE}, "policies": {"unhealthy-node": {"severity": "warning"}}},
    ]})
    monkeypatch.setenv("EVENT_ACCOUNTS", f"{ACCOUNT},{SPOKE}")
    if hub_env:
        monkeypatch.setenv("HOME_ACCOUNT", ACCOUNT)
        monkeypatch.setenv("FLEET_REGIONS", f"{REGION},{OTHER_REGION}")
        monkeypatch.setenv("SPOKE_ROLE_NAME", ROLE)
    from hyperpod_guard import aws_clients

    aws_clients.reset()
    put_unhealthy("ml-prod", ACCOUNT, REGION)
    put_unhealthy("ml-prod", SPOKE, OTHER_REGION)
    invoke_evaluator(event_from("ml-prod", ACCOUNT, REGION))
    if hub_env:
        invoke_evaluator(event_from("ml-prod", SPOKE, OTHER_REGION))
    severities = {m["attributes"]["cluster"]: m["attributes"]["severity"] for m in delivered(stack)}
    expected = {"ml-prod": "info"} | ({f"ml-prod@{SPOKE}/{OTHER_REGION}": "warning"} if hub_env else {})
    assert severities == expected


def test_credentials_of_another_account_never_put_its_clusters_under_a_spokes_key(
        hub: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the spoke's credentials reached another account (here: the hub's own, as a role misconfigured to be
    no spoke's would), SageMaker answers with that account's ARNs: the reader refuses them. The sweep records
    the spoke's locations as errors, an event is invalid, and no alert is made under a spoke's key."""
    from hyperpod_guard import aws_clients

    misconfigured = functools.cache(lambda *_, **__: aws_clients._botocore().get_credentials())  # the hub's own
    monkeypatch.setattr(aws_clients, "role_credentials", misconfigured)
    put_unhealthy("ml-prod", SPOKE, REGION)  # a spoke cluster named as the hub's own in the hub's region
    result = sweep(Runtime.from_env(), datetime.now(UTC), new_token("sweep"))
    assert sorted(result.errors) == [f"{SPOKE}/{OTHER_REGION}", f"{SPOKE}/{REGION}"]
    assert all("answered about arn:aws:sagemaker:" in error for error in result.errors.values())
    answer, _, metrics = invoke_evaluator(event_from("ml-prod", SPOKE, REGION))
    assert "DescribeCluster for 444455556666/us-west-2 answered about" in answer.get("invalid", ""), answer
    assert not any("@" in key and key.startswith("ml-prod") and key.endswith(f"/{REGION}")
                   for key in states(hub.table_name))
