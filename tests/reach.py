"""Where the tests may reach: the clone, the temporary folder, ../shared and the installed software.

A test that reads a file anywhere else (a run folder left by an earlier session, weights in a
home-directory cache) passes on the machine that has the file and fails on every clean one.
`install()` adds an audit hook (PEP 578) that records every file the test process opens or lists
outside those places; conftest.py fails the session when one was recorded. `sitecustomize.py`
beside this file installs the same hook in the subprocesses the tests start (`run.py`, DDP
children), which append what they saw to the log named by REACH_LOG_ENV.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REACH_LOG_ENV = "RANKROBUST_TEST_REACH_LOG"
SITE_DIR = Path(__file__).resolve().parent / "reach_site"

# The system's own files (libraries, devices, fonts, locale, certificates), never a test's data.
_SYSTEM = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev",
           "/run", "/var/cache/fontconfig", "/var/lib/dpkg")  # fmt: skip
# Per-user settings the libraries look up for themselves; their absence changes no result.
_USER_SETTINGS = (
    ".config/matplotlib",
    ".cache/matplotlib",
    ".matplotlib",
    ".cache/fontconfig",
    ".fontconfig",
    ".config/wandb",
    ".netrc",
    ".config/pip",
    ".pydistutils.cfg",
    ".cache/torch/kernels",
    ".triton",
    ".nv",
    ".cache/wandb/logs",
)  # fmt: skip (W&B links each run's debug-core.log there)


def allowed_roots() -> tuple[str, ...]:
    """Absolute folders (real paths) a test may read or list."""
    roots = {REPO, SHARED, Path(tempfile.gettempdir())}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(Path(prefix))
    for key in ("stdlib", "platstdlib", "purelib", "platlib", "include", "data"):
        if sysconfig.get_paths().get(key):
            roots.add(Path(sysconfig.get_paths()[key]))
    roots.update(Path(p) for p in site.getsitepackages())
    roots.add(Path(site.getusersitepackages()))
    roots.update(Path(p) for p in _SYSTEM)
    home = Path.home()
    roots.update(home / p for p in _USER_SETTINGS)
    return tuple(sorted({os.path.realpath(r) for r in roots}))


def outside(path: str, roots: tuple[str, ...]) -> bool:
    """Whether the absolute `path` lies outside every folder in `roots` (symlinks resolved)."""
    real = os.path.realpath(path)
    return not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class Recorder:
    """The audit hook: existing files and folders opened or listed outside the allowed roots."""

    EVENTS = ("open", "os.listdir", "os.scandir")

    def __init__(self, log: str | None = None):
        self.roots = allowed_roots()
        self.seen: set[str] = set()
        self.log = log
        self._busy = False

    def __call__(self, event: str, args: tuple) -> None:
        if event not in self.EVENTS or self._busy or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or not path:
            return
        self._busy = True  # the checks below open nothing, but never recurse into this hook
        try:
            path = os.path.abspath(path)
            if path not in self.seen and os.path.exists(path) and outside(path, self.roots):
                self.seen.add(path)
                if self.log:
                    real = os.path.realpath(path)
                    with open(self.log, "a", encoding="utf-8") as out:
                        out.write(path + ("" if real == path else f" -> {real}") + "\n")
        finally:
            self._busy = False


def install(log: str | None = None) -> Recorder:
    recorder = Recorder(log)
    sys.addaudithook(recorder)
    return recorder
