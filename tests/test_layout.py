"""The package's shape stays readable: no import loops between googlenet's modules (imports inside
functions count), no module over 500 lines, no function over 80 lines.

Each check has an allowlist ``KNOWN_*`` of today's offenders, so a new offender fails at once and
an entry that no longer offends fails too (the lists can only shrink: delete the entry when you
fix it). Static only: the sources are parsed (grimp, ast), nothing is imported, no torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src" / "googlenet"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80  # body with its docstring: end_lineno - lineno + 1

# Import loops, each a strongly connected component of the module import graph: none today.
KNOWN_CYCLES: set[frozenset[str]] = set()
# Modules over MAX_MODULE_LINES, as paths under src/googlenet/: none today.
KNOWN_LONG_MODULES: set[str] = set()
# Functions over MAX_FUNCTION_LINES, as "path:qualified.name": none today.
KNOWN_LONG_FUNCTIONS: set[str] = set()


def _strongly_connected(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative; components of more than one module only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(frozenset(comp))
    return found


def _check(kind: str, found: set, known: set) -> None:
    new, fixed = found - known, known - found
    msg = []
    if new:
        msg.append(f"new {kind}:\n  " + "\n  ".join(sorted(map(_show, new))))
    if fixed:
        msg.append(f"{kind} no longer offending; delete from the allowlist in tests/test_layout.py:"
                   f"\n  " + "\n  ".join(sorted(map(_show, fixed))))
    assert not msg, "\n".join(msg)


def _show(item) -> str:
    return " <-> ".join(sorted(item)) if isinstance(item, frozenset) else str(item)


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function, nested ones and methods included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


def test_strongly_connected_finds_a_loop_and_ignores_a_chain():
    g = grimp.ImportGraph()
    for m in ("a", "b", "c", "d"):
        g.add_module(m)
    g.add_import(importer="a", imported="b")
    g.add_import(importer="b", imported="c")
    g.add_import(importer="c", imported="a")
    g.add_import(importer="c", imported="d")
    assert _strongly_connected(g) == [frozenset({"a", "b", "c"})]


def test_no_import_loops():
    graph = grimp.build_graph("googlenet", cache_dir=None)  # imports inside functions included
    assert "googlenet.models.googlenet" in graph.modules
    _check("import loops", set(_strongly_connected(graph)), KNOWN_CYCLES)


def test_no_module_over_500_lines():
    long = {str(f.relative_to(SRC)) for f in SRC.rglob("*.py")
            if len(f.read_text().splitlines()) > MAX_MODULE_LINES}
    _check(f"modules over {MAX_MODULE_LINES} lines", long, KNOWN_LONG_MODULES)


def test_no_function_over_80_lines():
    long = set()
    for f in SRC.rglob("*.py"):
        for name, node in _functions(ast.parse(f.read_text())):
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.add(f"{f.relative_to(SRC)}:{name}")
    _check(f"functions over {MAX_FUNCTION_LINES} lines", long, KNOWN_LONG_FUNCTIONS)
