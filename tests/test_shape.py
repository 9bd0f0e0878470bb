"""The shape of the code: no import circles, no long files, data flowing one way (DESIGN.md)."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

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


# Module names the package does not have: each module lives in its layer (pipeline/, launch/,
# reporting/, models/, data/, attribution/), with no alias at the top level.
REMOVED = (
    "analyses", "build", "callbacks", "checks", "loggers", "module", "resolvers", "seeding",
    "task", "data.module", "gpus", "claims", "claims_groups", "collect", "dashboard", "figures",
    "figures_claims", "figures_images", "figures_style", "intervals", "report", "wandb_offline",
    "checkpoints", "external", "photos", "rig_plot", "_rig", "_path", "_captum", "rig",
)  # fmt: skip


@pytest.mark.parametrize("old", REMOVED)
def test_a_removed_module_name_does_not_import(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"rankrobust.{old}")


def test_no_module_passes_on_another_modules_names():
    """results.py holds the metrics.json contract; a run's identity is identity.py's alone."""
    from rankrobust import results

    tree = ast.parse((PKG / "identity.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    own = {"run_identity", "model_kind", "row_kind", "_select"}  # what results itself calls
    passed_on = (defined - own) & set(vars(results))
    assert passed_on == set()


def _defined(path: Path) -> set[str]:
    """The names a module defines at its top level (functions, classes, assignments)."""
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_every_import_from_results_names_what_results_defines():
    """run_folders.py defines the folder walk and the metrics.json validator; results.py uses
    some of them but is not their address: importers name the module that defines a name."""
    own = _defined(PKG / "results.py")
    root = SRC.parent
    files = [*PKG.rglob("*.py"), *(root / "tests").glob("*.py"), *(root / "bench").rglob("*.py")]
    elsewhere = {}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rankrobust.results":
                for alias in node.names:
                    if alias.name not in own:
                        elsewhere[f"{f.relative_to(root)}: {alias.name}"] = alias.name
        if f.name != "results.py":
            for m in re.finditer(r"\bresults\.([A-Za-z_]\w*)\b", f.read_text()):
                if m.group(1) in _defined(PKG / "run_folders.py"):
                    elsewhere[f"{f.relative_to(root)}: results.{m.group(1)}"] = m.group(1)
    assert elsewhere == {}


def test_the_project_itself_uses_no_removed_name():
    """run.py, bench/, src/, tests/, conf/, docs/, README and the Makefile name modules by their
    paths (tests/data/run-v0.1 is a run folder of that layout: its config names them)."""
    root = SRC.parent
    old = "|".join(re.escape(k) for k in REMOVED)
    dotted = re.compile(rf"rankrobust\.({old})\b")
    from_import = re.compile(rf"from rankrobust import [^\n]*\b({old})\b")
    files = [
        root / "run.py",
        root / "Makefile",
        root / "README.md",
        *(root / "bench").rglob("*.py"),
    ]
    files += [*(root / "conf").rglob("*.yaml"), *PKG.rglob("*.py"), *(root / "tests").glob("*.py")]
    files += [*(root / "docs").rglob("*.md")]
    allowed = {Path(__file__).resolve(), root / "tests" / "test_runs.py"}
    wrong = {
        str(f.relative_to(root)): m.group(0)
        for f in files
        if f.resolve() not in allowed
        for m in [*dotted.finditer(f.read_text()), *from_import.finditer(f.read_text())]
    }
    assert wrong == {}


def test_pytest_ignores_no_deprecation_warning_wholesale():
    """Each warning filter names a third party's module or message and gives its reason: a bare
    `ignore::DeprecationWarning` would hide torch's and Lightning's deprecations too."""
    text = (SRC.parent / "pyproject.toml").read_text()
    filters = tomllib.loads(text)["tool"]["pytest"]["ini_options"].get("filterwarnings", [])
    for entry in filters:
        action, message, category, module = ([*entry.split(":", 4), "", "", ""])[:4]
        if action == "ignore" and "Warning" in category:
            assert message.strip() or module.strip(), entry
    assert not re.search(r"ignore::\w*Warning\s*[\"']", text), "a bare ignore filter"


def test_nothing_below_the_task_imports_it():
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "rankrobust.pipeline.task" in targets}
    assert importers <= {"rankrobust.pipeline.task"}, importers


ROOT = SRC.parent
README_LIMIT = 12_000
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def test_readme_is_one_screen_and_maps_every_doc():
    """README.md stays short; each docs/*.md it links exists, and each docs/*.md is in its map."""
    text = (ROOT / "README.md").read_text()
    assert len(text) < README_LIMIT, f"README.md has {len(text)} characters"
    linked = {m.group(1) for m in LINK.finditer(text) if m.group(1).startswith("docs/")}
    missing = sorted(name for name in linked if not (ROOT / name).is_file())
    assert missing == []
    docs = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert sorted(docs - linked) == []


def test_links_between_docs_resolve():
    """A link from one docs/*.md to another names a file that exists beside it."""
    broken = [
        f"{page.name} -> {m.group(1)}"
        for page in (ROOT / "docs").glob("*.md")
        for m in LINK.finditer(page.read_text())
        if "://" not in m.group(1) and not (page.parent / m.group(1)).is_file()
    ]
    assert broken == []


def test_no_history_in_readme_docs_conf_or_source():
    """Docs, comments and tests say what is and why, never which issue changed it."""
    files = [ROOT / "README.md", ROOT / "Makefile", *(ROOT / "docs").glob("*.md")]
    files += [*(ROOT / "conf").rglob("*.yaml"), *PKG.rglob("*.py"), *(ROOT / "tests").glob("*.py")]
    # the second phrase is split so that this line does not match itself
    narration = re.compile(r"\bissue \d+|behaviour" + r" before", re.IGNORECASE)
    found = {
        str(f.relative_to(ROOT)): m.group(0)
        for f in files
        for m in narration.finditer(f.read_text())
    }
    assert found == {}
