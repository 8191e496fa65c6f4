"""Hypothesis strategies for the fuzz tests: the real event shapes of events/*/event.json, mutated.

A mutation drops, retypes or grows a field, swaps an enum for one nobody documented, writes
unicode and control characters into a string, or pads the event towards EventBridge's 256 KiB.
Every strategy here is cheap to draw from (big strings are built, not generated character by
character), so the fuzz tests can afford thousands of examples.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
#: EventBridge refuses events larger than this (the whole event as JSON, UTF-8)
EVENTBRIDGE_LIMIT = 256 * 1024


def _scenarios() -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    found = {}
    for folder in sorted(EVENTS.iterdir()):
        if (folder / "event.json").exists():
            snapshot = folder / "snapshot.json"
            found[folder.name] = (json.loads((folder / "event.json").read_text()),
                                  json.loads(snapshot.read_text()) if snapshot.exists() else None)
    return found


#: scenario name -> (event, DescribeCluster snapshot or None), as the repository has them
SCENARIOS = _scenarios()
DETAIL_TYPES = sorted({event["detail-type"] for event, _ in SCENARIOS.values()})


def size(value: Any) -> int:
    """Bytes as EventBridge counts them: the JSON text, UTF-8."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


# --- values -------------------------------------------------------------------------------------

NASTY_TEXT = [
    "", " ", "\x00", "\x01\x02\x1f\x7f", "a\nb\r\nc\td", "\u2028\u2029\x85", "\ufeff", "\u200b\u200d",
    "\u202eevil\u202c", "🔥🚨" * 3, "ノード-ü-ß", "\ud800", "\U0010ffff", "<!channel>", "<@U123>",
    "<http://evil.example|click>", "&lt;!here&gt;", "`code` *bold* _it_ ~s~", "${jndi:x}", "%s%n", "../../etc/passwd",
    "null", "true", "0", "-1", "1e400", "NaN", "2026-13-45T99:99:99Z", "i-0123456789abcdef0",
]
UNKNOWN_ENUMS = [
    "Quarantined", "UNKNOWN", "healthy", "HEALTHY", "InService ", "in_service", "Status.Failed", "Rebooting",
    "PendingReplacement", "SystemUpdating", "Unhealthy\x00", "Ünknöwn", "Failed" * 40,
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**63, 1795578251150, 0.5, -0.0, 1e308]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
unicode_text = st.one_of(
    st.sampled_from(NASTY_TEXT),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=24),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY_TEXT), st.text(max_size=8)),
)


# --- paths in a document ------------------------------------------------------------------------

def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a nested value (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield prefix + (key,)
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield prefix + (index,)
            yield from paths(child, prefix + (index,))


def get(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    get(document, path[:-1])[path[-1]] = value


def _retyped(value: Any) -> st.SearchStrategy[Any]:
    """A value of another JSON type than `value`."""
    kinds = {
        type(None): st.none(), bool: st.booleans(), int: st.integers(min_value=-(2**70), max_value=2**70),
        float: st.floats(allow_nan=False, allow_infinity=False), str: unicode_text,
        list: st.lists(json_scalars, max_size=3), dict: st.dictionaries(st.text(max_size=6), json_scalars, max_size=3),
    }
    return st.one_of([strategy for kind, strategy in kinds.items() if not isinstance(value, kind)])


# --- mutations ----------------------------------------------------------------------------------

MUTATIONS = ("drop", "retype", "grow", "enum", "unicode", "swap-detail-type", "envelope")


@st.composite
def mutated_event(draw: st.DrawFn, *, max_mutations: int = 3) -> Any:
    """A scenario's event with 1..max_mutations mutations; sometimes not an object at all."""
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    event = copy.deepcopy(SCENARIOS[name][0])
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        event = _mutate(draw, event)
    if draw(st.integers(min_value=0, max_value=40)) == 0:  # not an object at all
        return draw(st.sampled_from([[event], json.dumps(event), None, 7]))
    return event


def _mutate(draw: st.DrawFn, event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    action = draw(st.sampled_from(MUTATIONS))
    if action == "swap-detail-type":
        event["detail-type"] = draw(st.sampled_from(DETAIL_TYPES + ["SageMaker HyperPod Cluster Unknown Event", ""]))
        return event
    if action == "envelope":
        key = draw(st.sampled_from(["id", "source", "time", "account", "region", "resources", "detail", "version"]))
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(json_values)
        return event
    everything = list(paths(event))
    strings = [p for p in everything if isinstance(get(event, p), str)]
    if action in ("enum", "unicode") and strings:
        path = draw(st.sampled_from(strings))
        _set(event, path, draw(st.sampled_from(UNKNOWN_ENUMS) if action == "enum" else unicode_text))
        return event
    path = draw(st.sampled_from(everything))
    value = get(event, path)
    if action == "drop":
        parent = get(event, path[:-1])
        del parent[path[-1]]
    elif action == "retype":
        _set(event, path, draw(_retyped(value)))
    else:  # grow
        _set(event, path, _grown(draw, value))
    return event


def _grown(draw: st.DrawFn, value: Any) -> Any:
    times = draw(st.integers(min_value=2, max_value=60))
    if isinstance(value, str):  # up to ~20 KB: the near-limit strategy covers the largest events
        return (value or "x") * draw(st.integers(min_value=2, max_value=max(2, 20_000 // max(len(value), 1))))
    if isinstance(value, list):
        return (value or [None]) * times
    if isinstance(value, dict):
        grown = dict(value)
        grown.update({f"Unknown{i}": draw(json_scalars) for i in range(times)})
        return grown
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 10 ** draw(st.integers(min_value=1, max_value=400))
    return value


@st.composite
def near_limit_event(draw: st.DrawFn) -> dict[str, Any]:
    """A scenario's event with one string grown until the event is close to (but within)
    EventBridge's 256 KiB: the largest input the evaluator can ever be given."""
    name = draw(st.sampled_from(sorted(n for n, (e, _) in SCENARIOS.items() if e.get("source") == "aws.sagemaker")))
    event = copy.deepcopy(SCENARIOS[name][0])
    strings = [p for p in paths(event["detail"], ("detail",)) if isinstance(get(event, p), str)]
    path = draw(st.sampled_from(strings))
    unit = draw(st.sampled_from(["x", "é", "🔥", "\x01", "<!channel> ", "a\n"]))
    target = draw(st.integers(min_value=EVENTBRIDGE_LIMIT - 8 * 1024, max_value=EVENTBRIDGE_LIMIT - 64))
    unit_size = size(unit) - 2  # without the quotes
    _set(event, path, get(event, path) + unit * max(0, (target - size(event)) // unit_size))
    assert size(event) <= EVENTBRIDGE_LIMIT
    return event


any_event = st.one_of(mutated_event(), mutated_event(), mutated_event(), near_limit_event())
