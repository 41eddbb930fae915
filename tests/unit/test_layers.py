"""The layers point down, nothing imports in a circle, and the ground floor is shared.

    cli                      the top floor: the user's entry point
    services | pipelines     the two ways work runs (online, batch): siblings
    qa                       answering and its evaluation
    indexing                 the document library
    llama_rag                the kernel everything shares

Walks every module's imports with ``ast`` (those inside functions too). A module may
import its own package and the floors below it. A kernel module that a single upper
floor alone uses is that floor's logic sitting on the ground floor (how answering
once hid in ``llama_rag/``), so every kernel module must serve two floors or more,
or another kernel module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANK = {"llama_rag": 0, "indexing": 1, "qa": 2, "pipelines": 3, "services": 3, "cli": 4}


def _imports(tree: ast.AST):
    """(imported module, inside a function?) for every absolute import."""
    def walk(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, in_function
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                yield child.module, in_function
                for alias in child.names:  # `from qa import grounding` imports qa.grounding
                    yield f"{child.module}.{alias.name}", in_function
            yield from walk(child, inner)
    yield from walk(tree, False)


def _modules() -> dict[str, Path]:
    found = {}
    for package in RANK:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {m for m, _ in _imports(tree) if m in modules and m != name}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in graph.items():
        package = module.split(".")[0]
        for target in sorted(imported):
            other = target.split(".")[0]
            if other != package and RANK[other] >= RANK[package]:
                found.append(f"{module} imports {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def kernel_logic_of_one_floor(graph: dict[str, set[str]]) -> list[str]:
    users: dict[str, set[str]] = defaultdict(set)
    for module, imported in graph.items():
        for target in imported:
            if target.startswith("llama_rag."):
                users[target].add("llama_rag" if module.startswith("llama_rag")
                                  else module.split(".")[0])
    return sorted(f"{m} is used by {sorted(users[m]) or 'nothing'} alone"
                  for m in graph if m.startswith("llama_rag.") and len(users[m]) < 2
                  and "llama_rag" not in users[m])


def test_imports_point_down_the_layers():
    assert violations(_graph()) == []


def test_no_import_circles():
    assert cycles(_graph()) == []


def test_the_kernel_holds_only_what_two_floors_share():
    assert kernel_logic_of_one_floor(_graph()) == []


def test_indexing_does_not_import_answering():
    assert not [m for m, imported in _graph().items() if m.startswith("indexing")
                and any(t.startswith("qa") for t in imported)]


def test_the_checks_see_what_they_check():
    """Each rule fails on the shape it forbids (so a passing run means something)."""
    tree = ast.parse("import os\ndef f():\n    from services.api import x\n")
    assert list(_imports(tree)) == [("os", False), ("services.api", True),
                                    ("services.api.x", True)]
    assert violations({"indexing.store": {"qa.extractive"}}) == [
        "indexing.store imports qa.extractive"]
    assert violations({"services.api": {"pipelines.classify"}}) != []  # siblings
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert kernel_logic_of_one_floor({"llama_rag.x": set(), "qa.a": {"llama_rag.x"}}) == [
        "llama_rag.x is used by ['qa'] alone"]
