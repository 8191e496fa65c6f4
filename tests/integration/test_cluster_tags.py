"""Rules that select clusters by tag, in the runtime on moto (server mode): ListTags only when the
rules need it, tags cached per cluster ARN for TAGS_MAX_AGE, a ListTags failure evaluated as
untagged, and the tags in the SNS message (body and the `tags` attribute).

moto 5.2 answers ListTags for a HyperPod cluster ARN (its backend looks the cluster up by the
name in the ARN and returns the cluster's `tags`), so no call is stubbed: the injected clusters
are served under moto's ARN for them and get their tags set on the injected object.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from hyperpod_guard.cluster_reader import TagCache
from hyperpod_guard.local.hyperpod_state import put_cluster
from hyperpod_guard.local.provision import delivered
from hyperpod_guard.service import Runtime, handle_event, new_token, sweep
from tests.conftest import ACCOUNT, REGION
from tests.integration.test_cli_check import ACCESS_DENIED_SHAPE, refusing  # noqa: F401 (fixture)
from tests.runtime_fixtures import runtime, scenario, stack  # noqa: F401 (fixtures)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
#: clusters tagged team=llm: degraded-group fires at once, as info (the default: 5m grace, critical/warning)
RULES = {"version": 1, "overrides": [
    {"match": {"tags": {"team": "llm"}}, "policies": {"degraded-group": {"grace": "0s", "severity": "info"}}},
]}


def put_rules(rules: dict[str, Any]) -> None:
    boto3.client("ssm").put_parameter(Name="/hyperpod-guard/rules/00", Type="String", Value=json.dumps(rules),
                                      Overwrite=True)


def serve(name: str = "ml-prod", tags: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    """degraded-group-failed (a group Failed at 1/4) as cluster `name`, with `tags`; its event."""
    event, snapshot = scenario("degraded-group-failed")
    del snapshot["ClusterArn"]  # served under moto's ARN: the one ListTags knows
    snapshot["ClusterName"] = name
    event["detail"]["ClusterName"] = name
    cluster = put_cluster(snapshot, region=REGION)
    cluster.tags = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    return event, cluster


def list_tags_calls(runtime: Runtime) -> list[str]:
    """ARNs of the ListTags calls the runtime's SageMaker client makes from now on."""
    calls: list[str] = []
    runtime.reader.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListTags", lambda params, **_: calls.append(params["ResourceArn"]))
    return calls


def step(runtime: Runtime, event: dict[str, Any], minutes: float = 0):
    return handle_event(copy.deepcopy(event), runtime, T0 + timedelta(minutes=minutes), new_token())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    """The tag cache's clock, moved by hand."""
    clock = Clock()
    assert runtime.tags is not None and runtime.tags.max_age == 300  # TAGS_MAX_AGE's default
    runtime.tags._clock = clock
    return clock


def test_a_tag_selected_override_applies_to_the_tagged_cluster_and_its_message_carries_the_tags(stack, runtime):
    put_rules(RULES)
    tagged, _ = serve("ml-prod", {"team": "llm", "cost-center": "cc 42/ml"})
    untagged, _ = serve("ml-dev", {"team": "rl"})

    result = step(runtime, tagged)
    # one problem, one alert: the shortfall the Failed status causes is folded into its evidence
    [item] = result.outcomes[-1].notification.items
    assert (item.finding.condition, item.finding.severity.value) == ("status-failed", "info")
    assert [(also["condition"], also["severity"]) for also in item.finding.details["also"]] == [("below-target", "info")]
    [message] = delivered(stack)
    assert message["message"]["tags"] == {"team": "llm", "cost-center": "cc 42/ml"}
    assert json.loads(message["attributes"]["tags"]) == ["cost-center=cc 42/ml", "team=llm"]
    assert message["attributes"]["severity"] == "info"
    assert len(message["attributes"]) == 8  # severity, cluster, policy, status, tags, receivers, account, region
    assert "tags: cost-center=cc 42/ml, team=llm" in message["message"]["text"].splitlines()

    assert step(runtime, untagged).outcomes[-1].notification is None  # the default: pending for 5m
    assert delivered(stack) == []


def test_tags_are_read_once_per_cluster_until_they_are_older_than_tags_max_age(stack, runtime, clock):
    put_rules(RULES)
    event, cluster = serve("ml-prod", {"team": "rl"})
    calls = list_tags_calls(runtime)

    step(runtime, event, 0)
    step(runtime, event, 1)
    assert calls == [cluster.arn]  # the second evaluation used the cache
    cluster.tags = [{"Key": "team", "Value": "llm"}]  # retagged: not seen until the cached tags expire
    clock.now += 299
    assert step(runtime, event, 2).outcomes[-1].notification is None
    assert len(calls) == 1
    clock.now += 1
    notified = step(runtime, event, 3).outcomes[-1].notification
    assert len(calls) == 2
    assert notified is not None and notified.tags == {"team": "llm"}
    assert {i.finding.severity.value for i in notified.items} == {"info"}


def test_tags_max_age_comes_from_the_environment(stack, monkeypatch):
    monkeypatch.setenv("TAGS_MAX_AGE", "0")
    put_rules(RULES)
    event, _ = serve("ml-prod", {"team": "rl"})
    fresh = Runtime.from_env()
    assert fresh.tags.max_age == 0
    calls = list_tags_calls(fresh)
    step(fresh, event, 0)
    step(fresh, event, 1)
    assert len(calls) == 2  # nothing kept
    monkeypatch.setenv("TAGS_MAX_AGE", "soon")
    with pytest.raises(ValueError, match="TAGS_MAX_AGE must be a number of seconds >= 0, got 'soon'"):
        Runtime.from_env()


def test_no_list_tags_call_when_no_rule_selects_by_tag(stack, runtime):
    put_rules({"version": 1, "overrides": [{"match": {"cluster": "ml-*"}, "policies": {"degraded-group": {"grace": "0s"}}}]})
    event, _ = serve("ml-prod", {"team": "llm"})
    calls = list_tags_calls(runtime)
    result = step(runtime, event)
    assert calls == []
    notification = result.outcomes[-1].notification
    assert notification is not None and notification.tags is None  # not read, so not told
    [message] = delivered(stack)
    assert "tags" not in message["attributes"] and message["message"]["tags"] is None


@ACCESS_DENIED_SHAPE
def test_list_tags_denied_evaluates_as_untagged_says_so_and_tries_again_next_time(
        stack, runtime, refusing, caplog, capsys):
    put_rules(RULES)
    event, cluster = serve("ml-prod", {"team": "llm"})
    refusing("list_tags", "ListTags")
    calls = list_tags_calls(runtime)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="hyperpod_guard.service"):
        result = step(runtime, event, 0)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m.get("TagsUnavailable") for m in emf] == [[1.0]], emf  # counted once, as an EMF metric
    assert result.invalid is None and result.findings == 2  # evaluated all the same
    assert result.outcomes[-1].notification is None  # as untagged: the default 5m grace, so pending
    [record] = [r for r in caplog.records if r.name == "hyperpod_guard.service"]
    assert record.getMessage().startswith(
        "cannot read the tags of cluster ml-prod; evaluating it as untagged, so overrides that select by tag do "
        f"not apply to it: ListTags on {cluster.arn} failed: An error occurred (AccessDeniedException)")

    from moto.sagemaker.models import sagemaker_backends

    backend = sagemaker_backends[ACCOUNT][REGION]
    backend.list_tags = type(backend).list_tags.__get__(backend)  # allowed again: the failure was not cached
    notified = step(runtime, event, 1).outcomes[-1].notification
    assert len(calls) == 2
    assert notified is not None and notified.tags == {"team": "llm"}


def test_the_sweep_reads_each_clusters_tags_once_within_tags_max_age(stack, runtime, clock):
    put_rules(RULES)
    _, llm = serve("ml-prod", {"team": "llm"})
    _, other = serve("ml-dev", {"team": "rl"})
    calls = list_tags_calls(runtime)
    first = sweep(runtime, T0, new_token())
    assert first.errors == {} and first.clusters == 2
    sweep(runtime, T0 + timedelta(minutes=5), new_token())
    assert sorted(calls) == sorted([llm.arn, other.arn])
    fired = {m["message"]["cluster"]: m for m in delivered(stack)}
    assert set(fired) == {"ml-prod", "ml-dev"}  # ml-dev after its 5m grace, ml-prod at once
    assert json.loads(fired["ml-prod"]["attributes"]["tags"]) == ["team=llm"]
    assert fired["ml-prod"]["attributes"]["severity"] == "info"
    assert fired["ml-dev"]["attributes"]["severity"] == "critical"


def test_tag_cache_unit():
    """TagCache on a fake reader: kept per ARN, expired by age, failures not kept."""
    from botocore.exceptions import ClientError

    from hyperpod_guard.cluster_reader import TagsUnavailable

    answers: dict[str, Any] = {"a": {"team": "llm"}, "b": ClientError({"Error": {"Code": "ThrottlingException"}}, "ListTags")}
    calls: list[str] = []

    class Reader:
        def list_tags(self, arn: str) -> dict[str, str]:
            calls.append(arn)
            answer = answers[arn]
            if isinstance(answer, Exception):
                raise answer
            return dict(answer)

    clock = Clock()
    cache = TagCache(Reader(), max_age=60, clock=clock)  # type: ignore[arg-type]
    assert cache.get("a") == {"team": "llm"}
    cache.get("a")["team"] = "mutated"  # a copy: the cache keeps its own
    assert cache.get("a") == {"team": "llm"} and calls == ["a"]
    for _ in range(2):
        with pytest.raises(TagsUnavailable, match="ListTags on b failed: .*ThrottlingException"):
            cache.get("b")
    assert calls == ["a", "b", "b"]
    clock.now += 60
    cache.get("a")
    assert calls == ["a", "b", "b", "a"]
