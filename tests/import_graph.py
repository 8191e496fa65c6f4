"""The import graph of the `hyperpod_guard` package, read with `ast` (nothing is imported).

Every `import` and `from ... import` statement counts, wherever it is: module level, inside a
function (a deferred import is still a dependency), under `if TYPE_CHECKING:`. Relative imports
are resolved against the importing module. `from pkg import name` is an edge to `pkg.name` when
that is a module of the package, else to `pkg` (the name is an attribute of its `__init__`).
Only edges between modules of the package are kept. Importing a submodule also runs its parent
packages' `__init__`, but that is not an edge: Python finds the parent already being imported,
so a package importing its own submodules is no cycle.

Used by tests/unit/test_import_graph.py (no cycles) and by the Lambda asset tests (the asset
carries every module the handlers reach, and nothing of the command line or the stand-ins).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "functions" / "hyperpod_guard"
PACKAGE = "hyperpod_guard"

Graph = dict[str, set[str]]


def modules(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file, for every .py of the package (a package is its `__init__.py`)."""
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(node: ast.ImportFrom, name: str, path: Path) -> str:
    """The absolute module a `from` statement names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    anchor = name.split(".")
    if not _is_package(path):
        anchor = anchor[:-1]  # a module's level 1 is its package
    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
    return ".".join(anchor + ([node.module] if node.module else []))


def _known(dotted: str, known: Mapping[str, Path]) -> str | None:
    """The longest prefix of `dotted` that is a module of the package."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The package modules `name` imports, anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, path)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in (_known(target, known) for target in targets) if t is not None)
    return found


def build(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> Graph:
    known = modules(package_dir, package)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def reachable(graph: Graph, roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _a_cycle(graph: Graph, component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module (shortest, by BFS)."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover - a component always has one


def knots(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other (directly or through others), each sorted."""
    return [c for c in _strongly_connected(graph) if len(c) > 1 or c[0] in graph[c[0]]]


def cycles(graph: Graph) -> list[list[str]]:
    """One concrete cycle per knot."""
    return [_a_cycle(graph, knot) for knot in knots(graph)]


def report(graph: Graph) -> str:
    """Each knot: one cycle through it, every 2-cycle in it, and all its modules."""
    lines = []
    for knot in knots(graph):
        lines.append("  " + " -> ".join(_a_cycle(graph, knot)))
        pairs = [(a, b) for a in knot for b in sorted(graph[a]) if a < b and a in graph[b]]
        lines += [f"      {a} <-> {b}" for a, b in pairs]
        lines.append(f"      ({len(knot)} modules: {', '.join(knot)})")
    return "\n".join(lines)
