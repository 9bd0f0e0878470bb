"""DDP child processes that work under any Hydra launcher.

Lightning's "ddp" strategy re-runs `sys.argv` in each extra process. Under Hydra that command is
wrong in a multirun (it holds `-m` and the whole sweep) and meaningless inside a joblib /
submitit worker or pytest. Instead each child runs the task on the job's own composed config:
`python -m rankrobust.pipeline.task ddp-child <run_dir>/.ddp/config.yaml <run_dir>`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rankrobust.files import write_text

CHILD_MODULE = "rankrobust.pipeline.task"
# What Lightning's launcher writes into this process's environment when it starts children.
LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_ENV_BEFORE: dict[str, str | None] | None = None


def is_ddp_subprocess_strategy(cfg: DictConfig) -> bool:
    strategy = str(cfg.trainer.get("strategy") or "")
    return strategy.startswith("ddp") and "spawn" not in strategy and "fork" not in strategy


def prepare_ddp_children(cfg: DictConfig, run_dir: str | Path) -> None:
    """Save the resolved config and point Lightning's process launcher at our child command."""
    if not is_ddp_subprocess_strategy(cfg) or int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return
    global _ENV_BEFORE
    _ENV_BEFORE = {k: os.environ.get(k) for k in LAUNCH_ENV}
    run_dir = Path(run_dir).resolve()
    path = run_dir / ".ddp" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, OmegaConf.to_yaml(cfg, resolve=True))

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


def end_ddp() -> None:
    """After a job, in every process of it: destroy the process group, and in the process that
    started DDP children restore the launch environment.

    A process that exits with its group alive leaves Gloo's worker threads to the interpreter's
    finalisation, which aborts it ("terminate called without an active exception",
    pytorch/pytorch#190489); Lightning's launcher then kills the whole job. In the launching
    process, the restored environment lets a multirun's next job start its own children (with
    LOCAL_RANK left set, Lightning would think it is a child and reuse a dead group).
    """
    global _ENV_BEFORE
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if _ENV_BEFORE is None:
        return
    for key, value in _ENV_BEFORE.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _ENV_BEFORE = None
