"""The demo's own command lines (Makefile: reproduce-demo) pass the config check: a mistyped key
or an out-of-range value there would stop `make reproduce-demo` after minutes of training."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from conftest import CIFAR_TARBALL
from helpers import ROOT, make_cfg

from rankrobust.pipeline import checks


def _demo_runs() -> list[list[str]]:
    """The overrides of every `run.py` line `make -n reproduce-demo` would run (multirun values
    split into one job each; hydra.* left out). STAMP=README.md: the install step is only
    printed, never a makefile make would remake (and run) under -n."""
    out = subprocess.run(
        ["make", "-n", "reproduce-demo", "STAMP=README.md", "FORCE=", f"DATA={CIFAR_TARBALL}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    runs = []
    for line in out.replace("\\\n", " ").splitlines():
        words = shlex.split(line.replace("@", " ").replace(";", " ; "))
        if "run.py" not in words:
            continue
        args = words[words.index("run.py") + 1 :]
        args = args[: args.index(";")] if ";" in args else args
        args = [a for a in args if a not in ("-m", "fi") and not a.startswith("hydra.")]
        sweep = [a for a in args if a.startswith("rank=") and "," in a]
        for value in sweep[0].split("=")[1].split(",") if sweep else [None]:
            runs.append([a if a not in sweep else f"rank={value}" for a in args])
    return runs


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_every_demo_run_passes_the_config_check():
    if not CIFAR_TARBALL.is_file():  # the config check looks for dataset.root
        pytest.skip("CIFAR-10 JPEG copy absent")
    runs = _demo_runs()
    assert len(runs) == 5  # natural, robust, and rank=2,8,32
    kinds = set()
    for overrides in runs:
        spec = checks.check_config(make_cfg(*overrides))
        kinds.add(spec.train_attack.name if spec.train_attack else "none")
    assert kinds == {"none", "fgsm_rs"}
