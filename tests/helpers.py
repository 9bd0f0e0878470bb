"""Helpers for tests that compose the Hydra config and run the pipeline or the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from reach import SITE_DIR

import rankrobust.pipeline.resolvers  # noqa: F401  (${rr_*:...} in conf/)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Tiny, fast settings for runs inside tests (no W&B unless a test asks for it).
FAST = [
    "experiment=smoke",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def make_cfg(*overrides: str) -> DictConfig:
    """The composed config for these command-line overrides."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a Python subprocess of a test: this checkout's source first, the
    reach audit (tests/reach.py) on, and tests/ importable (the callbacks of tests/hooks.py)."""
    path = os.pathsep.join([str(ROOT / "src"), str(SITE_DIR), str(ROOT / "tests")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python run.py ARGS` in `cwd` (outputs land there), W&B offline."""
    env = child_env(WANDB_MODE="offline")
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
