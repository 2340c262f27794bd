"""No import cycle anywhere in ktlens/: the graph of imports between ktlens modules is acyclic.

Every `import` / `from ... import` of a ktlens module counts, at module level and inside functions
alike (an import deferred into a function still makes the two modules depend on each other; that is
how `analysis.probes` and `analysis.probe_targets` once imported each other). Imports under
``if TYPE_CHECKING:`` are not executed and do not count. ``from pkg import name`` points at the
submodule ``pkg.name`` when there is one, else at ``pkg``; importing a submodule does not count as
importing its parent package (Python runs the parent's ``__init__`` first, but a package whose
``__init__`` re-exports its submodules is not a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ktlens

ROOT = Path(ktlens.__file__).resolve().parent


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `root` (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The known modules that module `name` (file `path`) imports."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                pkg = name.split(".") if is_package else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        for t in targets:
            # `import a.b.c` names a.b.c; keep the longest known prefix (a name inside a module)
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(root: Path = ROOT, package: str = "ktlens") -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of nodes [a, b, ..., a], or None when the graph is acyclic (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        iters = [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


# ----- the detector on small graphs ---------------------------------------------------------------------


def test_find_cycle_on_synthetic_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond is no cycle
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    cycle = find_cycle({"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}})
    assert cycle == ["a", "b", "c", "a"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_old_probes_cycle_is_caught(tmp_path):
    """The former layout: probe_targets imports probes at module level, probes imports probe_targets
    inside a function."""
    _write(tmp_path / "pkg", {
        "__init__.py": "",
        "analysis/__init__.py": "",
        "analysis/probes.py": "def resolve():\n    from pkg.analysis.probe_targets import default_position\n",
        "analysis/probe_targets.py": "from pkg.analysis.probes import ProbeTarget\n",
    })
    graph = import_graph(tmp_path / "pkg", "pkg")
    assert graph["pkg.analysis.probe_targets"] == {"pkg.analysis.probes"}
    assert graph["pkg.analysis.probes"] == {"pkg.analysis.probe_targets"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"pkg.analysis.probes", "pkg.analysis.probe_targets"}


def test_import_forms_are_resolved(tmp_path):
    _write(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": "import pkg.sub.b\nfrom pkg.sub import c\nfrom .sub.b import thing\nfrom typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import d\n",
        "d.py": "",
        "sub/__init__.py": "from . import b\nfrom .c import name\n",
        "sub/b.py": "from .. import a\n",
        "sub/c.py": "import numpy\nfrom pkg.sub import helper\n",
    })
    graph = import_graph(tmp_path / "pkg", "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.sub.c"}  # the TYPE_CHECKING import does not count
    assert graph["pkg.sub"] == {"pkg.sub.b", "pkg.sub.c"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub.c"] == {"pkg.sub"}  # a name from the package's __init__
    assert find_cycle(graph) is not None  # a -> sub.b -> a


# ----- the package ----------------------------------------------------------------------------------


def test_graph_covers_the_package():
    graph = import_graph()
    assert "ktlens.analysis.probes.running" in graph
    assert "ktlens.analysis.probes.records" in graph["ktlens.analysis.probes.running"]
    assert "ktlens.analysis.probes.targets" in graph["ktlens.analysis.probe_targets"]


def test_no_import_cycle_in_ktlens():
    cycle = find_cycle(import_graph())
    if cycle is not None:
        pytest.fail("import cycle in ktlens: " + " -> ".join(cycle))
