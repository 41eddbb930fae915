"""The layers point down: llama_rag (core) <- indexing <- pipelines | services.

Walks every module's imports with ``ast``. A module may import its own package and
the layers below it; ``pipelines`` and ``services`` are siblings and import neither
each other. ``llama_rag/cli.py`` is the one exception: it may reach up, but only
inside its command functions (so ``llama-rag --help`` stays light).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANK = {"llama_rag": 0, "indexing": 1, "pipelines": 2, "services": 2}


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
            yield from walk(child, inner)
    yield from walk(tree, False)


def violations() -> list[str]:
    found = []
    for package, rank in RANK.items():
        for path in sorted((ROOT / package).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for module, in_function in _imports(tree):
                target = module.split(".")[0]
                if target not in RANK or target == package:
                    continue
                up = RANK[target] > rank or (RANK[target] == rank)
                if up and not (path.name == "cli.py" and package == "llama_rag" and in_function):
                    found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_imports_point_down_the_layers():
    assert violations() == []


def test_the_walk_sees_imports_inside_functions():
    tree = ast.parse("import os\ndef f():\n    from services.api import x\n")
    assert list(_imports(tree)) == [("os", False), ("services.api", True)]
