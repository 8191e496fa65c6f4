"""Ad-hoc silences (silences.py) as tables, like Alertmanager's silence_test.go: what a silence
matches (globs, tags, its end), what is refused when one is made, how the evaluator's cache reads
them, and that muted_reason names the silence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hyperpod_guard.alerting import muted_reason
from hyperpod_guard.findings import Finding, Severity
from hyperpod_guard.rules import DEFAULT_RULES, Rules
from hyperpod_guard.silences import AdHocSilence, SilenceCache, SilenceRefused, new_silence

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
NODE = Finding(policy="unhealthy-node", severity=Severity.CRITICAL, cluster="llm-prod", condition="instance-failure",
               summary="node down", instance_group="p5", node="i-1")
CLUSTER_WIDE = Finding(policy="cluster-health", severity=Severity.CRITICAL, cluster="llm-prod",
                       condition="cluster-failed", summary="cluster failed")
TAGS = {"team": "research", "env": "prod"}


def silence(until: datetime = T0 + HOUR, **matchers) -> AdHocSilence:
    return AdHocSilence(id="s1", until=until, created_at=T0 - HOUR, author="arn:aws:iam::1:user/ana",
                        comment="CHG-1 node swap", **matchers)


@pytest.mark.parametrize("finding, s, tags, matches", [
    (NODE, silence(cluster="llm-prod"), None, True),
    (NODE, silence(cluster="llm-*", policy="unhealthy-*"), None, True),                    # globs
    (NODE, silence(cluster="llm-prod", node="i-2"), None, False),                         # another node
    (NODE, silence(cluster="LLM-prod"), None, False),                                     # case-sensitive
    (NODE, silence(cluster="llm-prod", until=T0), None, False),                           # ended at `now`
    (NODE, silence(cluster="llm-prod", until=T0 + timedelta(seconds=1)), None, True),     # ... a second later: holds
    (CLUSTER_WIDE, silence(cluster="llm-prod", instance_group="p5"), None, False),        # no group vs a group glob
    (CLUSTER_WIDE, silence(cluster="llm-prod", instance_group="*"), None, True),          # ... matches "*"
    (NODE, silence(tags={"team": "research"}), TAGS, True),                               # tags: each must be carried
    (NODE, silence(tags={"team": "research", "env": "dev"}), TAGS, False),                # one value differs
    (NODE, silence(tags={"team": "Research"}), TAGS, False),                              # exact, case-sensitive
    (NODE, silence(tags={"team": "research"}), None, False),                              # tags not read: no match
    (NODE, silence(tags={"team": "research"}), {}, False),                                # untagged
    (NODE, silence(cluster="other", tags={"team": "research"}), TAGS, False),             # and the cluster glob too
], ids=["cluster", "globs", "other node", "case", "ended", "holds", "no group vs glob", "no group vs *", "tag",
        "tag value differs", "tag case", "tags unknown", "untagged", "tag but other cluster"])
def test_what_a_silence_matches(finding, s, tags, matches):
    assert s.matches(finding, tags, T0) is matches
    # the evaluator's view: resolved for the cluster with its tags, muted_reason names the silence
    rules = DEFAULT_RULES.resolve(finding.cluster, tags, [s])
    reason = muted_reason(finding, rules, [], T0)
    assert reason == (s.reason() if matches else None)


def test_a_muted_alert_names_the_silence():
    assert silence(cluster="llm-prod").reason() == \
        "silenced by arn:aws:iam::1:user/ana until 2026-11-26T07:00:00Z (s1): CHG-1 node swap"


def test_a_rules_silence_still_mutes_and_comes_first():
    rules = Rules.model_validate({"version": 1, "silences": [
        {"matchers": {"cluster": "llm-prod"}, "until": "2026-11-26T08:00:00Z", "comment": "from the rules"}]})
    reason = muted_reason(NODE, rules.resolve("llm-prod", None, [silence(cluster="llm-prod")]), [], T0)
    assert reason == "silenced until 2026-11-26T08:00:00Z: from the rules"


def test_resolve_keeps_only_the_silences_of_the_cluster():
    mine, other = silence(cluster="llm-*"), silence(cluster="speech-*")
    assert DEFAULT_RULES.resolve("llm-prod", None, [mine, other]).adhoc == (mine,)


@pytest.mark.parametrize("changes, refused", [
    ({}, None),
    ({"policy": "taint-drift"}, None),
    ({"cluster": "*", "tags": {"team": "x"}}, None),                 # a tag alone narrows it
    ({"cluster": "*"}, "every matcher is '*'"),                      # empty matchers
    ({"cluster": "", "node": ""}, "every matcher is '*'"),           # empty strings mean '*'
    ({"cluster": "*", "allow_all": True}, None),                     # ... unless asked for
    ({"until": T0}, "not in the future"),                            # an end now ...
    ({"until": T0 - HOUR}, "not in the future"),                     # ... or in the past
    ({"until": T0 - HOUR, "cluster": "*", "allow_all": True}, "not in the future"),  # --all does not excuse that
    ({"comment": "  "}, "needs a comment"),
], ids=["ok", "policy", "tag only", "empty", "blank", "all", "now", "past", "all but past", "no comment"])
def test_what_a_new_silence_refuses(changes, refused):
    arguments = {"until": T0 + HOUR, "comment": "why", "author": "ana", "now": T0, "cluster": "llm-prod", **changes}
    if refused is None:
        made = new_silence(**arguments)
        assert made.until == arguments["until"] and made.created_at == T0 and len(made.id) == 12
    else:
        with pytest.raises(SilenceRefused, match=refused):
            new_silence(**arguments)


def test_an_item_round_trips():
    s = new_silence(until=T0 + HOUR, comment="c", author="a", now=T0, cluster="x-*", node="i-*", tags={"k": "v"})
    assert AdHocSilence.from_item(s.to_item()) == s
    assert int(s.to_item()["expires_at"]["N"]) == int((T0 + HOUR + timedelta(days=7)).timestamp())


class CountingStore:
    def __init__(self, silences):
        self.silences, self.reads = silences, 0

    def all(self):
        self.reads += 1
        return list(self.silences)


def test_the_cache_reads_once_per_max_age_and_filters_by_the_evaluations_time():
    store, ticks = CountingStore([silence(cluster="a"), silence(cluster="b", until=T0 + 3 * HOUR)]), [0.0]
    cache = SilenceCache(store, 30, clock=lambda: ticks[0])  # type: ignore[arg-type]
    assert len(cache.active(T0)) == 2 and store.reads == 1
    ticks[0] = 29.9
    assert [s.cluster for s in cache.active(T0 + 2 * HOUR)] == ["b"] and store.reads == 1  # cached, filtered by now
    ticks[0] = 30.0
    cache.active(T0)
    assert store.reads == 2  # an expire takes effect within max_age
    uncached = SilenceCache(store, 0, clock=lambda: ticks[0])  # type: ignore[arg-type]
    uncached.active(T0), uncached.active(T0)
    assert store.reads == 4
