"""Where the runs are: the one walk of a folder of runs, shared by every reader (collect and
through it figures / report / dashboard, the sweep summary).

A run folder is one holding a ``metrics.json`` or a Hydra ``.hydra/`` folder. The walk accepts
the arrangements runs end up in: the root itself a run (or its metrics.json), single runs and
multirun jobs at any depth (a sweep inside a sweep, a run holding sub-runs), folders with
spaces or non-ASCII names, symbolic links to run folders or to folders of runs. Each run is
listed once, however many ways it is reached (a link and its target: the path without links is
shown), and a link back to a parent (a loop) is not followed twice. It only reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rankrobust.results import FILENAME, run_folder_of

__all__ = ["SKIP", "find_run_dirs", "is_run_dir"]

# Folders a run writes that never hold another run (big and slow to walk), unless one does.
SKIP = frozenset({"wandb", "checkpoints", "csv", "lightning_logs", "__pycache__", "figures"})


def is_run_dir(path: str | Path) -> bool:
    """True for a folder holding a metrics.json or a `.hydra/` folder."""
    path = Path(path)
    return (path / FILENAME).is_file() or (path / ".hydra").is_dir()


def _walked(here: Path, name: str) -> bool:
    """Whether the walk enters here/name: not a run's own bulky folder or a hidden one
    (.hydra, .git, .ipynb_checkpoints), unless that folder is itself a run."""
    if name not in SKIP and not name.startswith("."):
        return True
    return name != ".hydra" and (here / name / FILENAME).is_file()


def _walk(root: Path, follow: bool) -> Iterable[Path]:
    """The run folders below root (root included); with ``follow``, through symbolic links
    too, each real folder entered once (a link back to a parent is a loop, not followed)."""
    entered: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow):
        here = Path(dirpath)
        if follow:
            real = os.path.realpath(dirpath)
            if real in entered:
                dirnames[:] = []
                continue
            entered.add(real)
        if FILENAME in filenames or ".hydra" in dirnames:
            yield here
        dirnames[:] = sorted(d for d in dirnames if _walked(here, d))


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Run folders under ``roots`` (folders, or a run's metrics.json), sorted, each once.

    Each run is shown by a path without symbolic links below the root when it has one (a first
    walk that does not follow links), else by the first path through links. Roots that do not
    exist are skipped (the command line says so; see collect_for_cli); unreadable sub-folders
    are skipped; nothing is written.
    """
    found: dict[str, Path] = {}  # real path -> the path shown
    for follow in (False, True):
        for root in roots:
            root = run_folder_of(root)
            if root.is_dir():
                for path in _walk(root, follow):
                    found.setdefault(os.path.realpath(path), path)
    return sorted(found.values())
