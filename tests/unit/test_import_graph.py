"""No import cycles in `hyperpod_guard`: the module graph read with `ast` (tests/import_graph.py),
deferred (function-level) imports included, must be a DAG.

A cycle hidden by a deferred import still couples the two modules both ways (and breaks the day
someone moves the import to the top); the fix is a module both can import, not a later import.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests import import_graph


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph.build()
    assert not import_graph.knots(graph), "import cycles:\n" + import_graph.report(graph)


def test_the_graph_sees_every_module_and_its_imports() -> None:
    graph = import_graph.build()
    assert {"hyperpod_guard", "hyperpod_guard.cli", "hyperpod_guard.cli.common", "hyperpod_guard.policies",
            "hyperpod_guard.handlers.evaluator", "hyperpod_guard.local.demo"} <= set(graph)
    # a relative `from .. import x` of a submodule, and of a name in a package's __init__
    assert "hyperpod_guard.aws_clients" in graph["hyperpod_guard.handlers.evaluator"]
    assert "hyperpod_guard.policies.base" in graph["hyperpod_guard.policies"]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_deferred_import_cycle_is_found(tmp_path: Path) -> None:
    """The shape policies/__init__.py had: the registry imports its modules in a function, and
    each module imports a name from the registry's package."""
    root = _tree(tmp_path, {
        "__init__.py": "",
        "reg/__init__.py": "class Policy: ...\ndef load():\n    from . import one\n    return one\n",
        "reg/one.py": "from . import Policy\n",
        "a.py": "def f():\n    import pkg.b\n",
        "b.py": "from .sub.c import x\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..a import f\nx = 1\n",
        "leaf.py": "from . import a\nfrom .sub import c\nimport os\n",
    })
    graph = import_graph.build(root, "pkg")
    assert graph["pkg.leaf"] == {"pkg.a", "pkg.sub.c"}
    assert graph["pkg.reg"] == {"pkg.reg.one"} and graph["pkg.reg.one"] == {"pkg.reg"}
    assert sorted(import_graph.cycles(graph)) == [
        ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"],
        ["pkg.reg", "pkg.reg.one", "pkg.reg"],
    ]


def test_a_package_importing_its_own_submodules_is_no_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "__init__.py": "from .core import main\n",
        "core.py": "from .base import X\nmain = X\n",
        "base.py": "X = 1\n",
        "self.py": "def f():\n    from . import self\n",
    })
    graph = import_graph.build(root, "pkg")
    assert graph["pkg"] == {"pkg.core"}
    assert import_graph.cycles(graph) == [["pkg.self", "pkg.self"]]
