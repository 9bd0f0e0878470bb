"""DDP child processes that work under any Hydra launcher.

Lightning's "ddp" strategy re-runs `sys.argv` in each extra process. Under Hydra that command is
wrong in a multirun (it holds `-m` and the whole sweep) and meaningless inside a joblib /
submitit worker or pytest. Instead each child runs the task on the job's own composed config:
`python -m rankrobust.task ddp-child <run_dir>/.ddp/config.yaml <run_dir>`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CHILD_MODULE = "rankrobust.task"


def is_ddp_subprocess_strategy(cfg: DictConfig) -> bool:
    strategy = str(cfg.trainer.get("strategy") or "")
    return strategy.startswith("ddp") and "spawn" not in strategy and "fork" not in strategy


def prepare_ddp_children(cfg: DictConfig, run_dir: str | Path) -> None:
    """Save the resolved config and point Lightning's process launcher at our child command."""
    if not is_ddp_subprocess_strategy(cfg) or int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return
    run_dir = Path(run_dir).resolve()
    path = run_dir / ".ddp" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path, resolve=True)

    def command(local_rank: int = 0) -> tuple[list[str], str]:
        argv = [sys.executable, "-m", CHILD_MODULE, "ddp-child", str(path), str(run_dir)]
        return argv, os.getcwd()

    from lightning_fabric.strategies.launchers import subprocess_script as fabric_launcher
    from pytorch_lightning.strategies.launchers import subprocess_script as pl_launcher

    for module in (fabric_launcher, pl_launcher):  # pytorch_lightning imports them by name
        module._hydra_subprocess_cmd = command
        module._basic_subprocess_cmd = lambda: command()[0]


def rank_zero() -> bool:
    """Whether this process is global rank 0 (from the launch environment; no Trainer needed)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
