"""The import graph of deitkit: no cycles, the library never imports the CLI, serving stays lean."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import deitkit

PACKAGE_ROOT = Path(deitkit.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph() -> dict[str, set[str]]:
    """module -> the deitkit modules it imports (at the top or inside functions).

    `from deitkit.a import b` points at the module `deitkit.a.b` when there is one, else at
    `deitkit.a`; imports under `if TYPE_CHECKING:` run at no time and are left out.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        targets: set[str] = set()
        for node in ast.walk(tree):
            if _under_type_checking(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "deitkit")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] != "deitkit":
                    continue
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    graph = import_graph()
    # deitkit.cli.main imports its commands inside functions or at the top: either way seen.
    assert any(target.startswith("deitkit.cli.") for target in graph["deitkit.cli.main"])


def test_no_import_cycle_inside_deitkit():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


def _is_cli(module: str) -> bool:
    return module == "deitkit.cli" or module.startswith("deitkit.cli.")


def test_the_library_never_imports_the_cli():
    offenders = {
        module: sorted(t for t in targets if _is_cli(t))
        for module, targets in import_graph().items()
        if not _is_cli(module)
    }
    assert {m: t for m, t in offenders.items() if t} == {}


# deitkit.serving itself exports lazily; its scorer is what a serving worker imports.
@pytest.mark.parametrize("package", ["deitkit.inference", "deitkit.serving.score"])
def test_serving_loads_no_training_or_cli_module(package):
    code = (
        f"import json, sys, {package}\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m.split('.')[:2] in (['deitkit', 'training'], ['deitkit', 'cli']))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
