"""Every shell command in README.md and docs/*.md is one this checkout accepts as written.

- `python run.py ...`: each job of the command (every value of a `-m` sweep) composes and
  passes the config check, in process. Paths the text names for the reader's own files
  (ImageNet, checkpoints) are replaced by stand-ins of the right kind first.
- `make TARGET VAR=...`: the target exists and `make -n` accepts the command.
- `python -m MODULE --flag ...`: the module runs `--help` and lists every flag used.
- `python -c "..."`: the code compiles, and each call of a library function binds to its
  signature.
- `bash SCRIPT`: the script exists. What needs the network or another machine (pip, rsync) is
  listed in NOT_RUN with the reason.

The commands' own outputs are covered where they run: the demo and `make test` by CI, the smoke
and sweep commands by test_configs.py and test_launch.py.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CIFAR_TARBALL
from helpers import ROOT, child_env, make_cfg

from rankrobust.pipeline import checks

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(?:bash|sh)\n(.*?)```", re.S)
# Commands that need what a test cannot have here, each with the reason.
NOT_RUN = {
    "pip": "installs packages (the registries; make install does it)",
    "rsync": "copies to another machine",
}
# Overrides naming the reader's own files: replaced by a stand-in of the kind the check wants.
OWN_FILES = ("dataset.root", "model.checkpoint")


def _commands() -> list:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            first = text[: m.start()].count("\n") + 2
            lines = m.group(1).replace("\\\n", " ").splitlines()
            pending, start = "", 0
            for i, line in enumerate(lines):
                pending, start = (f"{pending}\n{line}", start) if pending else (line, i)
                try:  # a quoted argument may span lines (python -c "...")
                    words = shlex.split(pending, comments=True)
                except ValueError:
                    continue
                pending = ""
                if words:
                    where = f"{page.relative_to(ROOT)}:{first + start}"
                    found.append(pytest.param(words, id=f"{where}:{' '.join(words)[:60]}"))
    return found


COMMANDS = _commands()


def _program(words: list[str]) -> list[str]:
    """The command without leading VAR=value assignments and `/usr/bin/time -v`."""
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words = words[1:]
    if words[:1] == ["/usr/bin/time"]:
        words = [w for w in words[1:] if w != "-v"]
    return words


def _jobs(overrides: list[str]) -> list[list[str]]:
    """Every job a `-m` command runs: the product of its comma-separated sweeps."""
    axes = []
    for item in overrides:
        key, _, value = item.partition("=")
        quoted = value[:1] in "[{'\""
        values = [value] if quoted or "," not in value else value.split(",")
        axes.append([f"{key}={v}" for v in values])
    return [list(job) for job in itertools.product(*axes)]


def _stand_ins(job: list[str], tmp_path: Path) -> list[str]:
    """The job with the reader's own files (absent here) replaced by stand-ins."""
    out = []
    for item in job:
        key, _, value = item.partition("=")
        if key in OWN_FILES and not (ROOT / value).exists() and not Path(value).exists():
            if key == "dataset.root":
                value = str(_image_folder(tmp_path / "images"))
            else:
                value = str(tmp_path / "weights.ckpt")
                Path(value).write_bytes(b"")
        out.append(f"{key}={value}")
    return out


def _image_folder(root: Path) -> Path:
    """An ImageNet-layout folder with one class (the layout check looks at it)."""
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True, exist_ok=True)
    return root


def _check_run(words: list[str], tmp_path: Path) -> None:
    overrides = [w for w in words[2:] if w != "-m" and not w.startswith("hydra.")]
    if not CIFAR_TARBALL.is_file():
        pytest.skip("the CIFAR-10 copy is absent")
    for job in _jobs(overrides):
        job = [w.replace("../shared/data/cifar10-jpeg.tar.gz", str(CIFAR_TARBALL)) for w in job]
        job = [w.replace("~/", f"{tmp_path}/") for w in _stand_ins(job, tmp_path)]
        try:
            checks.check_config(make_cfg(*job))
        except Exception as err:
            if "download" in str(err).lower() or "torchvision" in str(err).lower():
                continue  # torchvision CIFAR-10 needs the network here; the rest was checked
            raise AssertionError(f"{' '.join(words)}\n  job {job}:\n  {err}") from err


def _check_make(words: list[str]) -> None:
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    text = (ROOT / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", text, re.M), f"make {target}: no such target"
    done = subprocess.run(
        ["make", "-n", "-o", "install", *words[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert done.returncode == 0, f"{' '.join(words)}: make -n failed:\n{done.stderr}"


def _check_module(words: list[str]) -> None:
    module = words[2]
    # its options, and a subcommand (`python -m rankrobust.launch summarize DIR`)
    flags = {w.split("=")[0] for w in words[3:] if w.startswith("--")}
    flags |= {w for w in words[3:4] if w.isidentifier()}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    assert done.returncode == 0, f"python -m {module} --help failed:\n{done.stderr}"
    missing = {f for f in flags if f not in done.stdout}
    assert not missing, f"python -m {module}: --help does not list {sorted(missing)}"


def _check_code(code: str) -> None:
    """The code compiles; each `f(...)` of an imported function binds to its signature."""
    tree = ast.parse(code)
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = __import__(node.module, fromlist=[a.name for a in node.names])
            names.update({a.asname or a.name: getattr(module, a.name) for a in node.names})
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    checked = 0
    for call in calls:
        if call.func.id in names:
            keywords = {k.arg: None for k in call.keywords}
            inspect.signature(names[call.func.id]).bind(*[None] * len(call.args), **keywords)
            checked += 1
    assert checked, f"no library call found in: {code}"


@pytest.mark.parametrize("words", COMMANDS)
def test_a_documented_command_is_accepted(words, tmp_path):
    words = _program(words)
    if words[0] in NOT_RUN:
        pytest.skip(f"{words[0]}: {NOT_RUN[words[0]]}")
    if words[:2] == ["python", "run.py"]:
        _check_run(words, tmp_path)
    elif words[0] == "make":
        _check_make(words)
    elif words[:2] == ["python", "-m"]:
        _check_module(words)
    elif words[:2] == ["python", "-c"]:
        _check_code(words[2])
    elif words[0] == "bash":
        assert (ROOT / words[1]).is_file(), f"{words[1]} does not exist"
    else:
        raise AssertionError(f"a documented command of no known kind: {' '.join(words)}")


def test_the_docs_have_commands_of_every_kind():
    programs = {tuple(_program(p.values[0])[:2]) for p in COMMANDS}
    assert ("python", "run.py") in programs and ("make", "reproduce-demo") in programs
    assert len(COMMANDS) > 30
