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
    long = {
        str(p.relative_to(PKG)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# The layers are folders: the library at the top level, then pipeline/, launch/, reporting/.
UPPER = ("rankrobust.pipeline", "rankrobust.launch", "rankrobust.reporting")
FRAMEWORKS = {"pytorch_lightning", "lightning", "hydra", "omegaconf", "wandb", "wandb_workspaces"}


def _layer(module: str) -> str:
    for upper in UPPER:
        if module == upper or module.startswith(upper + "."):
            return upper.split(".")[1]
    return "library"


def _third_party(path: Path) -> set[str]:
    """Top-level names of what a file imports anywhere (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_imports_nothing_from_the_layers_above_it():
    graph = import_graph()
    wrong = {
        (m, t)
        for m, targets in graph.items()
        if _layer(m) == "library"
        for t in targets
        if _layer(t) != "library"
    }
    assert wrong == set()


def test_the_library_knows_nothing_of_lightning_hydra_or_wandb():
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    wrong = {
        m: sorted(_third_party(p) & FRAMEWORKS)
        for m, p in modules.items()
        if _layer(m) == "library" and _third_party(p) & FRAMEWORKS
    }
    assert wrong == {}


def test_reporting_imports_no_lightning_and_reads_no_live_models():
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    wrong = {
        m: sorted(_third_party(p) & {"pytorch_lightning", "lightning"})
        for m, p in modules.items()
        if _layer(m) == "reporting" and _third_party(p) & {"pytorch_lightning", "lightning"}
    }
    assert wrong == {}
    graph = import_graph()
    assert not {t for m, ts in graph.items() if _layer(m) == "reporting" for t in ts} & {
        "rankrobust.pipeline.task",
        "rankrobust.pipeline.lightning_module",
        "rankrobust.pipeline.build",
    }


def test_reporting_flows_one_way():
    """collect -> claims -> figures / report: the claims never import what draws or writes them."""
    graph = import_graph()
    below = graph["rankrobust.reporting.claims"] | graph["rankrobust.reporting.collect"]
    below |= graph["rankrobust.reporting.claims.grouping"]
    assert not {
        m
        for m in below
        if m.startswith(("rankrobust.reporting.figures", "rankrobust.reporting.report"))
    }
    assert not {m for m in graph["rankrobust.reporting.report"] if "figures" in m}


def test_the_top_level_is_a_short_list():
    modules = sorted(p.stem for p in PKG.glob("*.py"))
    # 16: files.py, the one atomic writer that every layer (library, pipeline, reporting) uses
    assert len(modules) <= 16, modules


def test_old_module_names_still_import_and_run_as_the_new_ones():
    import importlib
    import subprocess
    import sys
    import warnings

    import rankrobust

    for old, new in rankrobust.MOVED.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert importlib.import_module(f"rankrobust.{old}") is importlib.import_module(
                f"rankrobust.{new}"
            ), old
    out = subprocess.run(
        [sys.executable, "-m", "rankrobust.figures", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--only" in out.stdout, out.stderr


def test_the_project_itself_uses_no_moved_name():
    """run.py, bench/, src/, tests/, conf/ and the Makefile name modules by their new paths: an
    old name works but warns on every run (run.py once imported rankrobust.task and printed two
    DeprecationWarnings at each job's start)."""
    import re

    import rankrobust

    root = SRC.parent
    old = "|".join(re.escape(k) for k in rankrobust.MOVED)
    dotted = re.compile(rf"rankrobust\.({old})\b")
    from_import = re.compile(rf"from rankrobust import [^\n]*\b({old})\b")
    files = [root / "run.py", root / "Makefile", *(root / "bench").rglob("*.py")]
    files += [*(root / "conf").rglob("*.yaml"), *PKG.rglob("*.py"), *(root / "tests").glob("*.py")]
    allowed = {PKG / "__init__.py", Path(__file__).resolve(), root / "tests" / "test_runs.py"}
    wrong = {
        str(f.relative_to(root)): m.group(0)
        for f in files
        if f.resolve() not in allowed
        for m in [*dotted.finditer(f.read_text()), *from_import.finditer(f.read_text())]
    }
    assert wrong == {}


def test_nothing_below_the_task_imports_it():
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "rankrobust.pipeline.task" in targets}
    assert importers <= {"rankrobust.pipeline.task"}, importers
