"""The shape of the code: no import circles, no long files, data flowing one way (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "rankrobust"
MAX_LINES = 450


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the rankrobust modules it imports anywhere (top level or inside functions)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle found by a depth-first search (empty when there is none)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circles():
    graph = import_graph()
    # a package importing its own submodules (data/__init__.py re-exports) is not a circle
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert cycles(graph) == []


def test_no_long_files():
    long = {p.name: n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_the_bottom_layer_knows_nothing_of_lightning_hydra_or_wandb():
    bottom = ["svd", "_svd_maths", "attacks", "models", "evaluate", "rig", "_path", "results"]
    bottom += ["inputs", "seeding", "errors"]
    for name in bottom:
        tree = ast.parse((PKG / f"{name}.py").read_text())
        imported = {
            (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in (n.names if isinstance(n, ast.Import) else [n])
            if not isinstance(n, ast.ImportFrom) or n.module
        }
        assert not imported & {"pytorch_lightning", "lightning", "hydra", "omegaconf", "wandb"}, (
            name,
            imported,
        )


def test_nothing_below_the_task_imports_it():
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "rankrobust.task" in targets}
    assert importers <= {"rankrobust.task"}, importers
