"""Metric names are constants (hyperpod_guard.constants), read from the code with `ast`: no function
emits a literal name, every `Metric` is emitted, and each handler counts under its own `service`.
tests/infra/test_dashboard_metrics.py uses `emitted_by` to check the dashboard and alarms against this."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperpod_guard import constants
from hyperpod_guard.constants import Dimension, Metric, Service

PACKAGE = Path(constants.__file__).parent
#: the calls that emit a metric, and where their name is (a keyword, else this positional index)
EMITTING = {"add_metric": 0, "single_metric": 0, "count": 1}
#: the modules whose metrics carry each service dimension: the handler, and the code it passes its Metrics to
SERVICE_MODULES = {
    Service.EVALUATOR: ("handlers/evaluator.py", "handlers/observability.py"),
    Service.SWEEP: ("handlers/sweep.py", "handlers/observability.py"),
    Service.SLACK_NOTIFIER: ("handlers/slack_notifier.py", "notify/delivery.py"),
    Service.SLACK_INTERACTIVITY: ("handlers/slack_interactivity.py",),
    Service.SLACK_ACTIONS: ("handlers/slack_actions.py",),
    Service.DIGEST: ("handlers/digest.py", "handlers/observability.py"),
}
#: where a metric name may be a variable: the helper that the handlers call with a Metric
PASS_THROUGH = {("handlers/observability.py", "count")}


def _emissions(tree: ast.AST) -> Iterator[tuple[ast.Call, ast.expr, str | None]]:
    """(call, its metric-name argument, the enclosing function) for every emitting call."""
    parents: dict[ast.AST, ast.AST] = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if called not in EMITTING or (called == "count" and not isinstance(func, ast.Name)):  # not str.count
            continue
        name = next((k.value for k in node.keywords if k.arg == "name"), None)
        if name is None and len(node.args) > EMITTING[called]:
            name = node.args[EMITTING[called]]
        if name is None:
            continue
        scope: ast.AST | None = node
        while scope is not None and not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            scope = parents.get(scope)
        yield node, name, scope.name if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _member(name: ast.expr) -> Metric | None:
    if isinstance(name, ast.Attribute) and isinstance(name.value, ast.Name) and name.value.id == "Metric":
        return Metric[name.attr]
    return None


def _dimensions(call: ast.Call) -> frozenset[Dimension]:
    """The dimensions a `count(metrics, name, value, {Dimension.X: ...})` adds (besides `service`)."""
    given = next((k.value for k in call.keywords if k.arg == "dimensions"), None)
    if given is None and isinstance(call.func, ast.Name) and len(call.args) > 3:
        given = call.args[3]
    if not isinstance(given, ast.Dict):
        return frozenset()
    return frozenset(Dimension[key.attr] for key in given.keys if isinstance(key, ast.Attribute))


def scan(source: str, module: str = "<module>") -> tuple[dict[Metric, set[frozenset[Dimension]]], list[str]]:
    """(the Metric members a module emits, each with its dimension sets; its emissions that are not a Metric member)."""
    members: dict[Metric, set[frozenset[Dimension]]] = {}
    offences = []
    for call, name, function in _emissions(ast.parse(source)):
        member = _member(name)
        if member is not None:
            members.setdefault(member, set()).add(_dimensions(call))
        elif not (isinstance(name, ast.Name) and (module, function) in PASS_THROUGH):
            offences.append(f"{module}:{call.lineno}: {ast.unparse(call)}")
    return members, offences


def modules() -> dict[str, str]:
    """Every runtime module's source, by path relative to the package."""
    return {path.relative_to(PACKAGE).as_posix(): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def emitted_by(service: Service) -> dict[Metric, set[frozenset[Dimension]]]:
    """The metrics a function emits under its `service` dimension, each with the other dimensions it adds."""
    sources = modules()
    emitted: dict[Metric, set[frozenset[Dimension]]] = {}
    for module in SERVICE_MODULES[service]:
        for metric, dimensions in scan(sources[module], module)[0].items():
            emitted.setdefault(metric, set()).update(dimensions)
    return emitted


def test_no_function_emits_a_literal_metric_name() -> None:
    offences = [offence for module, source in modules().items() for offence in scan(source, module)[1]]
    assert offences == [], "emit a hyperpod_guard.constants.Metric member instead:\n" + "\n".join(offences)


def test_every_metric_is_emitted() -> None:
    emitted = set().union(*(scan(source, module)[0].keys() for module, source in modules().items()))
    assert emitted == set(Metric), f"declared but never emitted: {sorted(set(Metric) - emitted)}"


@pytest.mark.parametrize("service", list(Service))
def test_each_handler_counts_under_its_service(service: Service) -> None:
    handler = SERVICE_MODULES[service][0]
    calls = [node for node in ast.walk(ast.parse(modules()[handler]))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "make_metrics"]
    assert [ast.unparse(call.args[0]) for call in calls] == [f"Service.{service.name}"]
    assert emitted_by(service), f"{handler} emits nothing"


def test_the_notifier_and_the_sweep_emit_what_the_readme_says() -> None:
    assert {Metric.SWEEP_RUNS, Metric.SWEEP_CLUSTERS, Metric.SWEEP_GONE_CLUSTERS, Metric.SWEEP_ERRORS,
            Metric.NOTIFICATIONS} <= emitted_by(Service.SWEEP).keys()
    assert {m for m in Metric if m.startswith("Slack")} | {Metric.INVALID_NOTIFICATION, Metric.NOTIFICATIONS_RECEIVED} \
        == emitted_by(Service.SLACK_NOTIFIER).keys()
    evaluator = emitted_by(Service.EVALUATOR)
    assert evaluator[Metric.EVENTS] == {frozenset({Dimension.DETAIL_TYPE})}
    assert evaluator[Metric.FINDINGS] == {frozenset({Dimension.POLICY, Dimension.SEVERITY})}
    assert evaluator[Metric.INVALID_EVENTS] == {frozenset()}


@pytest.mark.parametrize(("source", "offending"), [
    ('count(metrics, "Events")', True),
    ('metrics.add_metric(name="SlackMessagesSent", unit=MetricUnit.Count, value=1)', True),
    ('metrics.add_metric(f"{prefix}Sent", MetricUnit.Count, 1)', True),
    ('with single_metric(name="TagsUnavailable", unit=MetricUnit.Count, value=1): pass', True),
    ("count(metrics, name)", True),  # a variable outside the helper
    ("count(metrics, Metric.EVENTS, dimensions={Dimension.DETAIL_TYPE: t})", False),
    ("metrics.add_metric(name=Metric.SLACK_MESSAGES_SENT, unit=MetricUnit.Count, value=1)", False),
    ('"a,b".count(",")', False),  # str.count is not a metric
])
def test_the_scan_finds_literal_names(source: str, offending: bool) -> None:
    assert bool(scan(source)[1]) is offending
