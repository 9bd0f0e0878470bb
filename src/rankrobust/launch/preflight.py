"""Hydra callback: checks that need no config value, before Hydra starts any job.

A run or sweep folder that cannot be written, and `launcher=slurm` where SLURM's commands do not
exist, are one paragraph and exit code 2 instead of a traceback from inside Hydra or submitit.
A resume keeps the folder's .hydra/ files (`keep_saved_config`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


def _stop(message: str) -> None:
    print(f"\nrankrobust: configuration error\n  {message}\n", file=sys.stderr)
    sys.exit(2)


def unwritable(folder: str | Path) -> str | None:
    """Create `folder` (and parents) and write a probe file in it: None when that works, else
    why not (the one write probe, for this callback and the task's run-folder check)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe = Path(folder) / f".rankrobust-write-test-{os.getpid()}"  # DDP processes at once
        probe.write_text("")
        probe.unlink(missing_ok=True)
    except OSError as err:
        return err.strerror or str(err)
    return None


def check_writable(folder: str | Path, key: str) -> None:
    """Create `folder` (and parents) or stop with a paragraph naming the Hydra key to change."""
    problem = unwritable(folder)
    if problem:
        _stop(
            f"The output folder '{folder}' cannot be written ({problem}). Choose a writable "
            f"folder with {key}=... or run from a folder you can write to."
        )


def keep_saved_config(config: DictConfig) -> None:
    """resume=true in a folder holding a run: Hydra would rewrite its .hydra/ files (the config
    and overrides the run was started with) before the task checks anything. They are kept (the
    run continues with its own settings, pipeline/resume.py; metrics.json records what ran)."""
    from omegaconf import open_dict, read_write

    subdir = config.hydra.get("output_subdir")
    if not subdir or config.get("resume") is not True:
        return
    if (Path(str(config.hydra.run.dir)) / str(subdir) / "config.yaml").is_file():
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.output_subdir = None


class Preflight(_HydraCallback):
    """on_run_start / on_multirun_start: the output folder, and SLURM's tools for slurm."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.run.dir, "hydra.run.dir")
        keep_saved_config(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
        launcher = (config.get("launcher") or {}).get("name")
        if launcher == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            _stop(
                "launcher=slurm needs SLURM's sbatch and srun, which are not on this machine's "
                "PATH: run the sweep on a SLURM login node, or use launcher=local_gpus (this "
                "machine's GPUs or CPUs) or launcher=submitit_local (the same code path, local)."
            )
