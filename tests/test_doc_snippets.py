"""Every Python snippet in README.md and docs/*.md runs as written against the library.

Each ```python block is executed with the names the prose assumes: ``model`` (a small CNN with
its normalisation inside, eval mode), ``images`` / ``x`` (two 32x32 pixel images in [0, 1]) and
``labels`` / ``y``; a run folder the text names (``outputs/demo/robust``, ``folder``) is a copy
of the committed run fixture tests/data/run-v0.1; ``load_cifar10`` has its arguments checked
against its signature and returns random pixels. A renamed argument or function that a doc
still uses fails here.
"""

from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest
import torch

import rankrobust.data
from rankrobust.data import load_cifar10
from rankrobust.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
OLD_RUN = ROOT / "tests" / "data" / "run-v0.1"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _load_cifar10_checked(*args, **kwargs):
    """load_cifar10's call checked against its real signature, answered with random pixels of
    its shapes (reading the archive takes ~20 s; tests/test_data_cifar10.py reads it)."""
    bound = inspect.signature(load_cifar10).bind(*args, **kwargs)
    n = bound.arguments["n_examples"]
    return torch.rand(n, 3, 32, 32), torch.arange(n) % 10


def _blocks() -> list:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            found.append(pytest.param(m.group(1), id=f"{page.relative_to(ROOT)}:{line}"))
    return found


def test_the_docs_have_snippets_to_run():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("code", _blocks())
def test_a_doc_snippet_runs(code, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, (0.5,) * 3, (0.25,) * 3, width=8).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 3])
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    for path in run.rglob("*"):
        if path.suffix in (".json", ".yaml"):
            path.write_text(path.read_text().replace("@WRITER@", str(tmp_path / "writer")))
    code = code.replace('"outputs/demo/robust"', repr(str(run)))
    monkeypatch.setattr(rankrobust.data, "load_cifar10", _load_cifar10_checked)
    namespace = {"torch": torch, "model": model, "images": images, "x": images,
                 "labels": labels, "y": labels, "folder": str(run)}  # fmt: skip
    exec(compile(code, "<doc snippet>", "exec"), namespace)  # noqa: S102 - the docs' own code
