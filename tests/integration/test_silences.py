"""Ad-hoc silences on moto (server mode): the store, the evaluator honouring them end to end, the
tags they need, and `alerts`' reads of a large ledger (Query on the indexes, never a Scan)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from hyperpod_guard.cli.alerts import read_alerts
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.ledger import AlertRecord, AlertState
from hyperpod_guard.ledger_store import LedgerStore, to_item
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import Runtime, handle_event, new_token, sweep
from hyperpod_guard.silences import SilenceCache, SilenceNotFound, SilenceStore, new_silence
from tests.conftest import REGION
from tests.runtime_fixtures import runtime, scenario, serve, stack  # noqa: F401

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def store(stack) -> SilenceStore:  # noqa: F811
    return SilenceStore(stack.table_name, boto3.client("dynamodb"))


def add(stack, minutes: float = 0, until: float = 60, **matchers: Any):  # noqa: F811
    silence = new_silence(until=at(until), comment="CHG-7 swapping the group", author="ana", now=at(minutes),
                          **matchers)
    store(stack).add(silence)
    return silence


# --- the store --------------------------------------------------------------------------------------


def test_add_list_and_expire(stack):
    s = store(stack)
    first = add(stack, cluster="ml-prod", node="i-*", tags={"team": "llm"})
    second = add(stack, 1, until=120, cluster="speech-*")  # made later: listed after
    assert s.all() == [first, second]  # one Query, everything as written
    assert s.active(at(90)) == [second]
    expired = s.expire(first.id, at(10))
    assert expired.until == expired.expired_at == at(10)
    assert s.active(at(11)) == [second]
    with pytest.raises(SilenceNotFound):
        s.expire(first.id, at(11))  # ended already
    with pytest.raises(SilenceNotFound):
        s.expire("no-such-id", at(11))
    item = boto3.client("dynamodb").get_item(TableName=stack.table_name,
                                             Key={"pk": {"S": "SILENCE"}, "sk": {"S": f"SILENCE#{first.id}"}})["Item"]
    assert int(item["expires_at"]["N"]) == int((at(10) + timedelta(days=7)).timestamp())  # TTL after its end


def test_an_id_is_never_overwritten(stack):
    from botocore.exceptions import ClientError

    silence = add(stack, cluster="ml-prod")
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        store(stack).add(replace(silence, comment="another"))


# --- the evaluator ----------------------------------------------------------------------------------


def degraded():
    """degraded-group-failed: group gpu-workers of ml-prod Failed at 1/4, grace 5m."""
    event, snapshot = scenario("degraded-group-failed")
    serve(snapshot)
    return event, snapshot


def step(runtime, event, minutes):  # noqa: F811
    return handle_event(copy.deepcopy(event), runtime, at(minutes), new_token())


def reasons(stack) -> list[str]:  # noqa: F811
    return [item["reason"] for message in delivered(stack) for item in message["message"]["items"]]


@pytest.fixture
def uncached(stack, monkeypatch) -> Runtime:  # noqa: F811
    monkeypatch.setenv("SILENCES_MAX_AGE", "0")  # silences change between steps
    return Runtime.from_env()


def test_an_alert_that_would_page_does_not_while_silenced_and_resolves_after(stack, uncached):
    event, snapshot = degraded()
    silence = add(stack, cluster="ml-prod", instance_group="gpu-workers", until=60)
    step(uncached, event, 0)
    outcome = step(uncached, event, 6).outcomes[-1]  # past the grace: it would page
    assert reasons(stack) == []
    records = {r.condition: r for r in uncached.ledger.load("ml-prod").values()}
    record = records["status-failed"]  # the problem's leader (below-target is folded into it)
    assert record.state is AlertState.FIRING
    assert record.reason == silence.reason() == \
        f"silenced by ana until 2026-11-24T13:00:00Z ({silence.id}): CHG-7 swapping the group"
    assert record.fingerprint in [d.record.fingerprint for d in outcome.suppressed]

    store(stack).expire(silence.id, at(20))  # ended early: the next evaluation pages
    step(uncached, event, 21)
    assert reasons(stack) == ["first"]
    for group in snapshot["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group["TargetCount"])
    serve(snapshot)
    step(uncached, event, 30)
    assert reasons(stack) == ["resolved"]


def test_a_paged_alert_gets_its_resolved_though_silenced_and_its_recurrence_stays_quiet(stack, uncached):
    event, snapshot = degraded()
    step(uncached, event, 0)
    step(uncached, event, 6)
    assert reasons(stack) == ["first"]
    add(stack, 7, until=120, cluster="ml-*", policy="degraded-group")
    healthy = copy.deepcopy(snapshot)
    for group in healthy["InstanceGroups"]:
        group.update(Status="InService", CurrentCount=group["TargetCount"])
    serve(healthy)
    step(uncached, event, 10)  # every page gets its resolved, silences notwithstanding
    assert reasons(stack) == ["resolved"]
    serve(snapshot)  # it comes back while silenced: nothing
    step(uncached, event, 20)
    step(uncached, event, 30)
    assert reasons(stack) == []
    sweep(uncached, at(121), new_token())  # the silence is over: it pages
    assert reasons(stack) == ["first"]


def test_silences_are_read_once_per_evaluation_and_cached(stack, runtime):  # noqa: F811
    event, _ = degraded()
    queries: Counter[str] = Counter()
    runtime.ledger.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query",
        lambda params, **_: queries.update([params["ExpressionAttributeValues"].get(":pk", {}).get("S", "index")]))
    assert runtime.silences is not None and runtime.silences.max_age == 30  # SILENCES_MAX_AGE's default
    step(runtime, event, 0)
    step(runtime, event, 1)
    assert queries["SILENCE"] == 1  # the second evaluation, within 30 s, used the cache
    runtime.silences = SilenceCache(runtime.silences.store, 0)
    put_cluster(dict(scenario("degraded-group-failed")[1], ClusterName="ml-dev"), region=REGION)
    sweep(runtime, at(2), new_token())  # two clusters, one read
    assert queries["SILENCE"] == 2


def test_a_tag_matcher_reads_the_tags_and_mutes_only_the_tagged_cluster(stack, uncached):
    calls: list[str] = []
    uncached.reader.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListTags", lambda params, **_: calls.append(params["ResourceArn"]))
    events = {}
    for name, team in (("ml-prod", "llm"), ("ml-dev", "speech")):
        event, snapshot = scenario("degraded-group-failed")
        del snapshot["ClusterArn"]  # served under moto's ARN: the one ListTags knows
        snapshot["ClusterName"] = event["detail"]["ClusterName"] = name
        put_cluster(snapshot, region=REGION).tags = [{"Key": "team", "Value": team}]
        events[name] = event
    step(uncached, events["ml-prod"], 0)
    assert calls == []  # no rule and no silence selects by tag: ListTags is not called
    add(stack, 0, cluster="ml-*", tags={"team": "llm"})
    for name, event in events.items():
        step(uncached, event, 1)
        step(uncached, event, 7)
    assert sorted(arn.rsplit("/", 1)[1] for arn in calls) == ["ml-dev", "ml-prod"]  # once each (TAGS_MAX_AGE)
    assert [m["message"]["cluster"] for m in delivered(stack)] == ["ml-dev"]  # ml-prod (team=llm) is silenced


# --- `alerts` on a large ledger ---------------------------------------------------------------------


def test_alerts_reads_10000_records_with_queries_on_the_indexes_only(stack):
    """100 clusters x 100 alerts: 3 of each cluster's firing, 1 pending, the rest resolved."""
    dynamodb = boto3.client("dynamodb")
    finding = Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster="c", condition="instance-failure",
                      summary="node down", instance_group="g")
    requests = []
    for c in range(100):
        for n in range(100):
            record = AlertRecord.start(replace(finding, cluster=f"cluster-{c:03d}", node=f"i-{n:04d}"), T0)
            state = AlertState.FIRING if n < 3 else AlertState.PENDING if n == 3 else AlertState.RESOLVED
            record = replace(record, state=state, resolved_at=T0 if state is AlertState.RESOLVED else None,
                             reason=f"state {state.value}")
            requests.append({"PutRequest": {"Item": to_item(record)}})
    for start in range(0, len(requests), 25):
        dynamodb.batch_write_item(RequestItems={stack.table_name: requests[start:start + 25]})

    calls: list[tuple[str, str]] = []
    dynamodb.meta.events.register("provide-client-params.dynamodb.*", lambda params, model, **_: calls.append(
        (model.name, params.get("IndexName") or f"table:{params['ExpressionAttributeValues'].get(':pk', {}).get('S')}")))
    ledger = LedgerStore(stack.table_name, dynamodb)

    firing = read_alerts(ledger, "*", "firing")
    assert len(firing) == 300 and {r.state for r in firing} == {AlertState.FIRING}
    assert {op for op, _ in calls} == {"Query"}
    assert Counter(target for _, target in calls if not target.startswith("table:")) == {"open": 1}
    assert len([t for _, t in calls if t.startswith("table:CLUSTER#")]) == 100  # one Query per cluster with open alerts

    calls.clear()
    resolved = read_alerts(ledger, "*", "resolved")
    assert len(resolved) == 9600 and {r.state for r in resolved} == {AlertState.RESOLVED}
    assert {op for op, _ in calls} == {"Query"} and {t for _, t in calls} == {"resolved"}
    print(f"resolved: {len(calls)} Query pages of the resolved index")

    calls.clear()
    one = read_alerts(ledger, "cluster-042", "all")
    assert Counter(r.state for r in one) == {AlertState.FIRING: 3, AlertState.PENDING: 1, AlertState.RESOLVED: 96}
    assert calls[0] == ("Query", "open") and calls[1] == ("Query", "table:CLUSTER#cluster-042")
    assert {t for _, t in calls[2:]} == {"resolved"}  # narrowed by the cluster's name: begins_with on the sort key
    assert "Scan" not in {op for op, _ in calls}


def test_a_record_leaves_the_resolved_index_when_it_opens_again(stack):
    ledger = LedgerStore(stack.table_name, boto3.client("dynamodb"))
    finding = Finding(policy="degraded-group", severity=Severity.WARNING, cluster="ml-prod", condition="below-target",
                      summary="short", instance_group="g")
    resolved = replace(AlertRecord.start(finding, T0), state=AlertState.RESOLVED, resolved_at=T0)
    item = to_item(resolved)
    boto3.client("dynamodb").put_item(TableName=stack.table_name, Item=item)
    assert [r.fingerprint for r in ledger.resolved_alerts("ml-*")] == [finding.fingerprint]
    assert ledger.resolved_alerts("ml-dev") == [] and ledger.resolved_alerts("ml-pro") == []  # exact name
    boto3.client("dynamodb").put_item(TableName=stack.table_name, Item=to_item(replace(resolved, state=AlertState.FIRING,
                                                                                       resolved_at=None)))
    assert ledger.resolved_alerts() == []
    assert json.dumps([r.fingerprint for r in ledger.open_alerts()]) == json.dumps([finding.fingerprint])
