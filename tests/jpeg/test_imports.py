"""cdomain.jpeg's modules import in any order, and their imports form no cycle.

A cycle that only works because one side imports lazily (inside a function) breaks as soon as
someone moves that import to the top. The graph here counts every import of a cdomain.jpeg
module, at module level or inside a function, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cdomain.jpeg

PACKAGE = "cdomain.jpeg"
FOLDER = Path(cdomain.jpeg.__file__).parent
MODULES = sorted(f"{PACKAGE}.{path.stem}" for path in FOLDER.glob("*.py") if path.stem != "__init__")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, module: str) -> set[str]:
    """The cdomain.jpeg modules ``module``'s code imports at run time (anywhere in the file)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # from cdomain.jpeg import native
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


def _graph() -> dict[str, set[str]]:
    return {name: _imported(ast.parse((FOLDER / f"{name.rsplit('.', 1)[1]}.py").read_text()), name) for name in MODULES}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := walk(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_the_graph_sees_the_known_dependencies():
    graph = _graph()
    assert "cdomain.jpeg.image" in graph["cdomain.jpeg.reader"]
    assert "cdomain.jpeg.native" in graph["cdomain.jpeg.reader"]  # "from cdomain.jpeg import native"
    assert "cdomain.jpeg.reconstruct" in graph["cdomain.jpeg.image"]  # DCTImage.to_rgb
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_cdomain_jpeg():
    assert _find_cycle(_graph()) is None


@pytest.mark.parametrize(
    "first, second",
    [("reconstruct", "image"), ("image", "reconstruct")],
)
def test_fresh_interpreter_imports_either_module_first(first, second):
    code = (
        f"import {PACKAGE}.{first}\n"
        f"import {PACKAGE}.{second}\n"
        "import numpy as np\n"
        "from cdomain.jpeg.image import DCTImage\n"
        "from cdomain.jpeg.reconstruct import coefficients_to_rgb\n"
        "blocks = np.zeros((1, 1, 8, 8), np.int16)\n"
        "image = DCTImage((blocks,), (np.ones((8, 8), np.uint16),), ((1, 1),), 8, 8, 'gray')\n"
        "assert coefficients_to_rgb(image).tolist() == [[128] * 8] * 8\n"  # DC 0 -> mid-grey
        "assert image.to_rgb().tolist() == [[128] * 8] * 8\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
