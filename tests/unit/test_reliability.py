"""The reliability report (reliability.py): its properties with hypothesis, its figures as tables
computed by hand, the renderers against golden files of a simulated week (local/report_week.py),
and the HTML page's promise: self-contained, accessible, the data escaped.

Hypothesis draws times on a minute grid so that the union of intervals can be checked against a
brute force (the set of covered minutes)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperpod_guard import reliability
from hyperpod_guard.archive import Episode, RepairFact
from hyperpod_guard.local import report_week
from hyperpod_guard.local.report_week import END, NOW, START, at, episode
from hyperpod_guard.policies import degraded_group, unhealthy_node
from hyperpod_guard.reliability import (
    BELOW_MIN,
    BELOW_TARGET,
    Interval,
    build_report,
    covered_seconds,
    nearest_rank,
    render_csv,
    render_html,
    render_json,
    render_text,
)
from tests.golden import check_golden

PERIOD_MINUTES = 7 * 24 * 60
HOUR = 3600.0


def minute(n: int) -> datetime:
    return START + timedelta(minutes=n)


def node_episode(node: str, start: int, end: int | None, *, resolved_by: str = "hyperpod-repair",
                 group: str | None = "gpu", cluster: str = "c", policy: str = unhealthy_node.NAME,
                 condition: str = unhealthy_node.UNHEALTHY) -> Episode:
    """An episode of `node` from minute `start` to minute `end` of the period (None: open)."""
    return episode(cluster, policy, condition, group=group, node=node, start=minute(start),
                   end=None if end is None else minute(end), resolved_by=resolved_by)  # type: ignore[arg-type]


def report(*episodes: Episode, repairs: list[RepairFact] | None = None, now: datetime = NOW
           ) -> reliability.ReliabilityReport:
    return build_report(episodes, repairs or [], start=START, end=END, now=now)


def node_hours(rep: reliability.ReliabilityReport, node: str, cluster: str = "c") -> float:
    return next(n.unhealthy_hours for c in rep.clusters if c.name == cluster for g in c.groups for n in g.nodes
                if n.node == node)


# --- properties ---------------------------------------------------------------------------------------

#: minutes from two days before the period to two days after it
moments = st.integers(min_value=-2 * 24 * 60, max_value=PERIOD_MINUTES + 2 * 24 * 60)
spans = st.tuples(moments, st.one_of(st.none(), moments))  # end None: open; an end before the start: drawn too
resolvers = st.sampled_from(["hyperpod-repair", "remediation", "manual", "expired", "gone"])


def covered_minutes(drawn: list[tuple[int, int | None]], now_minute: int) -> int:
    """Brute force: the minutes of the period some interval covers (an open one runs to now)."""
    covered: set[int] = set()
    for start, end in drawn:
        stop = max(start, now_minute if end is None else end)
        covered.update(range(max(start, 0), min(stop, PERIOD_MINUTES)))
    return len(covered)


@given(st.lists(spans, min_size=1, max_size=8), st.integers(min_value=0, max_value=PERIOD_MINUTES + 2 * 24 * 60))
def test_a_nodes_hours_are_the_union_of_its_episodes_clipped_to_the_period(drawn, now_minute):
    # `now` is never before an episode's resolve: what has resolved resolved before now
    now_minute = max([now_minute, *(e for s, e in drawn if e is not None), *(s for s, _ in drawn)])
    rep = report(*(node_episode("i-1", s, e) for s, e in drawn), now=minute(now_minute))
    in_period = [(s, e) for s, e in drawn
                 if s < PERIOD_MINUTES and (s >= 0 or max(s, now_minute if e is None else e) > 0)]
    if not in_period:
        assert rep.fleet.incidents == 0
        return
    hours = node_hours(rep, "i-1")
    assert hours == round(covered_minutes(drawn, now_minute) * 60 / HOUR, 4)
    assert 0 <= hours <= PERIOD_MINUTES / 60
    assert rep.fleet.node_hours_unhealthy == hours  # one node: its hours are the fleet's


@given(st.lists(st.tuples(st.sampled_from(["i-1", "i-2", "i-3"]), spans, resolvers,
                          st.sampled_from([unhealthy_node.NAME, degraded_group.NAME])), max_size=12))
def test_no_figure_is_ever_negative_and_mttr_comes_from_resolved_episodes_only(drawn):
    episodes = [
        node_episode(node, s, e, resolved_by=by, policy=policy,
                     condition=unhealthy_node.UNHEALTHY if policy == unhealthy_node.NAME else BELOW_MIN)
        for node, (s, e), by, policy in drawn
    ]
    rep = report(*episodes, now=minute(PERIOD_MINUTES + 3 * 24 * 60))
    scopes = [rep.fleet, *(c.figures for c in rep.clusters), *(g.figures for c in rep.clusters for g in c.groups)]
    for figures in scopes:
        assert min(figures.node_hours_unhealthy, figures.group_hours_below_target, figures.group_hours_below_min) >= 0
        assert figures.group_hours_below_min <= figures.group_hours_below_target
        assert all(v >= 0 for m in figures.mttr.values() for v in (m.median_seconds, m.p90_seconds, m.mean_seconds)
                   if v is not None)
        assert figures.mttr["all"].count == figures.incidents - figures.open
        assert sum(figures.per_day.values()) + figures.carried_in == figures.incidents
    assert all(o.hours >= 0 for o in rep.open_episodes)
    assert all(n.unhealthy_hours <= PERIOD_MINUTES / 60 for c in rep.clusters for g in c.groups for n in g.nodes)
    assert rep.fleet.open == len(rep.open_episodes)


@given(st.lists(spans, max_size=6), st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=4))
def test_open_episodes_do_not_change_mttr(drawn, open_starts):
    resolved = [node_episode("i-1", s, e if e is not None else s + 1) for s, e in drawn]
    still_open = [node_episode("i-2", s, None) for s in open_starts]
    now = minute(PERIOD_MINUTES)
    assert report(*resolved, now=now).fleet.mttr == report(*resolved, *still_open, now=now).fleet.mttr


# --- tables computed by hand ---------------------------------------------------------------------------


@pytest.mark.parametrize("values, median, p90", [
    ([7.0], 7.0, 7.0),
    ([40.0, 10.0, 30.0, 20.0], 20.0, 40.0),             # even n: the lower middle; p90 rank ceil(3.6) = 4
    ([1.0, 2.0, 3.0, 4.0, 5.0], 3.0, 5.0),              # p90 rank ceil(4.5) = 5
    ([float(n) for n in range(1, 11)], 5.0, 9.0),       # p90 rank 9 of 10
    ([float(n) for n in range(1, 21)], 10.0, 18.0),     # p90 rank 18 of 20
])
def test_nearest_rank(values, median, p90):
    assert (nearest_rank(values, 50), nearest_rank(values, 90)) == (median, p90)


@pytest.mark.parametrize("intervals, seconds", [
    ([], 0),
    ([(0, 60)], 3600),
    ([(0, 60), (30, 90)], 5400),                         # overlapping: once
    ([(0, 60), (60, 120)], 7200),                        # touching
    ([(0, 120), (30, 60)], 7200),                        # nested
    ([(-60, 30)], 1800),                                 # before the period: clipped at its start
    ([(PERIOD_MINUTES - 30, PERIOD_MINUTES + 60)], 1800),  # after it: clipped at its end
    ([(-10, PERIOD_MINUTES + 10)], PERIOD_MINUTES * 60),  # across both boundaries: the whole period
    ([(30, 10)], 0),                                     # an end before the start: nothing, not negative
])
def test_covered_seconds(intervals, seconds):
    assert covered_seconds([Interval(minute(s), minute(e)) for s, e in intervals], START, END) == seconds


def test_an_episode_across_the_period_start_is_clipped_and_carried_in():
    rep = report(node_episode("i-1", -120, 60))
    assert node_hours(rep, "i-1") == 1.0
    assert (rep.fleet.incidents, rep.fleet.carried_in, sum(rep.fleet.per_day.values())) == (1, 1, 0)
    assert rep.fleet.mttr["all"].median_seconds == 3 * HOUR  # its whole duration: recovery is the episode's


def test_an_open_episode_counts_up_to_now_and_is_marked_open():
    now = minute(PERIOD_MINUTES - 60)  # an hour before the period ends
    rep = report(node_episode("i-1", PERIOD_MINUTES - 180, None), now=now)
    assert node_hours(rep, "i-1") == 2.0
    assert rep.fleet.open == 1 and rep.fleet.mttr["all"].count == 0
    [opened] = rep.open_episodes
    assert (opened.node, opened.hours, opened.since) == ("i-1", 2.0, minute(PERIOD_MINUTES - 180))


def test_an_open_episode_seen_after_the_period_is_clipped_at_its_end():
    rep = report(node_episode("i-1", PERIOD_MINUTES - 60, None), now=minute(PERIOD_MINUTES + 600))
    assert node_hours(rep, "i-1") == 1.0
    assert rep.open_episodes[0].hours == 11.0  # how long it has been open, not clipped


def test_episodes_outside_the_period_are_left_out():
    rep = report(node_episode("i-1", -300, -60), node_episode("i-2", PERIOD_MINUTES, PERIOD_MINUTES + 60),
                 node_episode("i-3", 0, 0))  # a zero-length episode at the start is in it
    assert rep.fleet.incidents == 1 and [c.groups[0].nodes[0].node for c in rep.clusters] == ["i-3"]


def test_mttr_by_what_resolved_it():
    rep = report(node_episode("i-1", 0, 10, resolved_by="hyperpod-repair"),
                 node_episode("i-2", 0, 30, resolved_by="hyperpod-repair"),
                 node_episode("i-3", 0, 20, resolved_by="hyperpod-repair"),
                 node_episode("i-4", 0, 60, resolved_by="remediation"),
                 node_episode("i-5", 0, 120, resolved_by="expired"),
                 node_episode("i-6", 0, 240, resolved_by="manual"),
                 node_episode("i-7", 0, None))
    mttr = {cause: (m.count, m.median_seconds, m.p90_seconds) for cause, m in rep.fleet.mttr.items()}
    assert mttr == {"hyperpod-repair": (3, 1200.0, 1800.0), "remediation": (1, 3600.0, 3600.0),
                    "other": (2, 7200.0, 14400.0), "all": (6, 1800.0, 14400.0)}
    assert rep.fleet.mttr["hyperpod-repair"].mean_seconds == 1200.0


def test_group_hours_below_target_and_min():
    """below-min counts for both; a restricted group's conditions count for the group of its name."""
    def group(condition: str, start: int, end: int, name: str = "g") -> Episode:
        return episode("c", degraded_group.NAME, condition, group=name, start=minute(start), end=minute(end),
                       resolved_by="manual")

    rep = report(group(BELOW_TARGET, 0, 120), group(BELOW_MIN, 60, 180),
                 group(degraded_group.RESTRICTED + BELOW_MIN, 600, 660),
                 group("status-degraded", 0, 1000), group(BELOW_TARGET, 0, 60, name="h"))
    g, h = rep.clusters[0].groups
    assert (g.name, g.figures.group_hours_below_target, g.figures.group_hours_below_min) == ("g", 4.0, 3.0)
    assert (h.name, h.figures.group_hours_below_target, h.figures.group_hours_below_min) == ("h", 1.0, 0.0)
    assert (rep.fleet.group_hours_below_target, rep.fleet.group_hours_below_min) == (5.0, 3.0)


def test_a_nodes_episodes_without_a_group_count_for_its_group():
    rep = report(node_episode("i-1", 0, 60, group=None), node_episode("i-1", 120, 180, group="gpu"))
    [cluster] = rep.clusters
    assert [(g.name, g.figures.incidents, g.figures.node_hours_unhealthy) for g in cluster.groups] == [("gpu", 2, 2.0)]


def test_repeat_offenders_have_three_incidents_or_more():
    rep = report(*(node_episode("i-1", n * 100, n * 100 + 10) for n in range(3)),
                 *(node_episode("i-2", n * 100, n * 100 + 10) for n in range(2)),
                 node_episode("i-3", 0, 10, cluster="d"), node_episode("i-3", 50, 60, cluster="e"),
                 node_episode("i-3", 70, 80, cluster="f"))  # one node id in three clusters: three nodes
    assert [(o.cluster, o.node, o.incidents) for o in rep.repeat_offenders] == [("c", "i-1", 3)]


def test_per_day_counts_the_day_an_incident_started():
    rep = report(node_episode("i-1", 10, 20), node_episode("i-2", 24 * 60 - 1, 24 * 60 + 30),
                 node_episode("i-3", 6 * 24 * 60 + 5, None))
    assert list(rep.fleet.per_day.values()) == [2, 0, 0, 0, 0, 0, 1]
    assert [d.isoformat() for d in rep.days] == [f"2026-11-{d}" for d in range(16, 23)]


def test_top_reasons_and_repairs():
    rep = report(*(episode("c", unhealthy_node.NAME, unhealthy_node.UNHEALTHY, node=f"i-{n}", start=at(0, n),
                           end=at(0, n + 0.5), resolved_by="hyperpod-repair", reason=reason)
                   for n, reason in enumerate(["Xid", "Efa", "Xid", None, "Thermal", "Efa", "Xid"])),
                 repairs=[report_week.repair("c", "g", "i-0", at(0, 1), "reboot", "started"),
                          report_week.repair("c", "g", "i-0", at(0, 2), "reboot", "completed"),
                          report_week.repair("c", "g", "i-0", at(-1, 2), "reboot", "completed")])  # before
    assert [(r.reason, r.incidents) for r in rep.fleet.top_reasons] == [("Xid", 3), ("Efa", 2), ("Thermal", 1)]
    assert rep.fleet.repairs == {"reboot completed": 1, "reboot started": 1}


def test_an_empty_period_is_refused():
    with pytest.raises(ValueError, match="not after its start"):
        build_report([], [], start=END, end=START, now=NOW)


# --- the simulated week: hand-computed figures, then golden files -----------------------------------


@pytest.fixture(scope="module")
def week() -> reliability.ReliabilityReport:
    return build_report(report_week.week_episodes(), report_week.week_repairs(), start=START, end=END, now=NOW)


def test_the_weeks_figures(week):
    fleet = week.fleet
    assert (fleet.incidents, fleet.open, fleet.carried_in) == (15, 1, 1)
    assert list(fleet.per_day.values()) == [2, 1, 3, 2, 3, 1, 2]
    clusters = {c.name: c for c in week.clusters}
    train = {g.label: g.figures for g in clusters["llm-train-prod"].groups}
    # i-0a1: [3h, 3.5h] u [3.25h, 4h] = 1h; 1h on day 2 (its episode names no group); 22h-1h with 23h-24h inside = 3h
    assert node_hours(week, "i-0a1", "llm-train-prod") == 5.0
    assert train["gpu-workers"].node_hours_unhealthy == 5.75 and train["gpu-workers"].group_hours_below_target == 2.5
    assert train["(cluster)"].by_policy == {"cluster-health": 1}
    rl = {g.label: g.figures for g in clusters["rl-research"].groups}
    assert (rl["gpu-b"].group_hours_below_target, rl["gpu-b"].group_hours_below_min) == (3.0, 3.0)
    assert rl["gpu-a"].mttr["remediation"].median_seconds == 45 * 60
    # i-0d1 from Sunday 20:00 clipped to 2h, i-0d4 open for 6h, i-0d2 0.5h
    assert clusters["speech-prod"].figures.node_hours_unhealthy == 8.5
    assert fleet.node_hours_unhealthy == 19.2  # 5.75 + i-0c0 0.2 + i-0b7 0.75 + i-0b9 4 + 8.5
    assert [(o.node, o.incidents) for o in week.repeat_offenders] == [("i-0a1", 5)]
    assert [o.node for o in week.open_episodes] == ["i-0d4"]
    assert list(fleet.repairs.items()) == [("reboot started", 2), ("reboot completed", 1), ("reboot failed", 1),
                                           ("replacement started", 1), ("replacement completed", 2)]


def test_golden_week(week):
    check_golden("report", "week", json.loads(render_json(week)))
    check_golden("report", "week", render_text(week))
    check_golden("report", "week", render_csv(week), suffix="csv")


def test_the_json_reads_back_as_the_report(week):
    assert reliability.ReliabilityReport.model_validate_json(render_json(week)) == week


def test_csv_rows_are_flat_and_carry_the_headline_figures(week):
    rows = list(csv.DictReader(io.StringIO(render_csv(week))))
    assert set(rows[0]) == set(reliability.CSV_COLUMNS)
    fleet = {(r["metric"], r["key"]): r["value"] for r in rows if r["scope"] == "fleet"}
    assert fleet[("incidents", "")] == "15" and fleet[("mttr_count", "remediation")] == "1"
    assert fleet[("node_hours_unhealthy", "")] == str(week.fleet.node_hours_unhealthy)
    groups = {(r["cluster"], r["instance_group"]) for r in rows if r["scope"] == "group"}
    assert ("llm-train-prod", "(cluster)") in groups and ("rl-research", "gpu-b") in groups


def test_text_of_a_quiet_period():
    text = render_text(report())
    assert "0 incident(s)" in text and "no incidents in the period" in text


# --- HTML ---------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Every start tag with its attributes, the text of <title>/<desc> elements, and style text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag):]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def of(self, tag: str) -> list[dict[str, Any]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_the_page_fetches_nothing(week):
    text = render_html(week)
    page = parse(text)
    assert not page.of("script") and not page.of("link") and not page.of("img") and not page.of("iframe")
    for _, attrs in page.tags:
        assert "src" not in attrs and "srcset" not in attrs
        assert attrs.get("href") is None or str(attrs["href"]).startswith("#")
    assert "http:" not in text.lower() and "https:" not in text.lower() and "url(" not in text and "@import" not in text
    [csp] = [a for a in page.of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp["content"]


def test_the_charts_are_labelled(week):
    page = parse(render_html(week))
    ids = {attrs["id"] for _, attrs in page.tags if attrs.get("id")}
    svgs = page.of("svg")
    assert len(svgs) == 3
    for svg in svgs:
        assert svg["role"] == "img"
        assert set(svg["aria-labelledby"].split()) <= ids
    titles = {a["id"] for a in page.of("title") if a.get("id")}
    assert {"per-day-t", "mttr-t", "node-hours-t"} <= titles
    assert len(page.of("desc")) == 3 and page.of("caption") and all(a.get("scope") == "col" for a in page.of("th"))
    body = "".join(page.text)
    assert "Incidents per day" in body and "MTTR by what resolved it" in body and "Node-hours lost" in body
    assert "i-0a1" in body and "llm-train-prod / gpu-workers" in body


def test_the_page_escapes_the_data():
    hostile = "<script>alert(1)</script>"
    rep = report(episode(hostile, unhealthy_node.NAME, unhealthy_node.UNHEALTHY, group='g"><img src=x>', node="i-1",
                         start=at(0, 1), end=at(0, 2), resolved_by="manual", reason=hostile))
    page = parse(render_html(rep))
    assert not page.of("script") and not page.of("img")
    assert hostile in "".join(page.text)


def test_a_quiet_period_renders_too():
    page = parse(render_html(report()))
    assert len(page.of("svg")) == 3 and "nothing in the period" in "".join(page.text)


def test_the_week_builder_spans_what_the_report_must_handle():
    episodes = report_week.week_episodes()
    assert len({e.cluster for e in episodes}) >= 3
    assert any(e.resolved_at is None for e in episodes) and any(e.first_seen < START for e in episodes)
    assert {e.resolved_by for e in episodes} >= {"hyperpod-repair", "remediation", "manual", "expired", None}
    assert any(a.dry_run is False for e in episodes for a in e.actions)
    assert all(e.first_seen.tzinfo is UTC for e in episodes)


def test_an_episode_folded_into_another_is_not_an_incident_of_its_own():
    """One problem, one alert (alerting.fold): the group's below-target finding was folded into its Failed
    status (the leader's details name it under `also`); the archive keeps both episodes, the report counts one."""
    leader = report_week.episode("c", degraded_group.NAME, "status-failed", group="gpu", start=minute(60),
                                 end=minute(180), also=[{"policy": degraded_group.NAME, "condition": BELOW_TARGET,
                                                         "severity": "warning", "summary": "short"}])
    member = report_week.episode("c", degraded_group.NAME, BELOW_TARGET, group="gpu", start=minute(62),
                                 end=minute(180), severity="warning")
    elsewhere = report_week.episode("c", degraded_group.NAME, BELOW_TARGET, group="cpu", start=minute(62),
                                    end=minute(180), severity="warning")  # another group: its own incident
    rep = report(leader, member, elsewhere)
    assert rep.fleet.incidents == 2
    assert {g.name: g.figures.incidents for g in rep.clusters[0].groups} == {"cpu": 1, "gpu": 1}
    alone = report(member)  # without its leader it is an incident
    assert alone.fleet.incidents == 1


def test_a_folded_episodes_time_still_counts_in_the_hours_below_target():
    """Folded for alerting (the group's Degraded status leads), the capacity shortfall still lasted."""
    leader = report_week.episode("c", degraded_group.NAME, "status-degraded", group="gpu", start=minute(0),
                                 end=minute(300), also=[{"policy": degraded_group.NAME, "condition": BELOW_TARGET}])
    member = report_week.episode("c", degraded_group.NAME, BELOW_TARGET, group="gpu", start=minute(0),
                                 end=minute(300), severity="warning")
    rep = report(leader, member)
    assert rep.fleet.incidents == 1 and rep.fleet.group_hours_below_target == 5.0
