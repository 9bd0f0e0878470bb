"""A GPU lease per job for `launcher=local_gpus` (the file locks are in rankrobust.launch.gpus)."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

from omegaconf import DictConfig

from rankrobust.launch import gpus


@contextlib.contextmanager
def job_device(cfg: DictConfig) -> Iterator[gpus.GpuSlot | None]:
    """Take a GPU for this job when `launcher.gpu_lock` is set; pin the trainer to it.

    Without GPUs, or with trainer.accelerator=cpu, the job runs on the CPU with
    `launcher.cpu_threads` torch threads (default: the CPUs shared evenly among the parallel
    jobs). DDP child processes (LOCAL_RANK > 0) and launchers without `gpu_lock` take nothing.
    A worker process runs job after job: on release it frees this job's cached CUDA blocks, so
    the next job (maybe on another GPU) does not keep memory on this one.
    """
    spec = cfg.get("launcher") or {}
    if not spec.get("gpu_lock") or int(os.environ.get("LOCAL_RANK", "0")) > 0:
        yield None
        return
    import torch

    from rankrobust.errors import ConfigError

    devices, strategy = cfg.trainer.get("devices", 1), str(cfg.trainer.get("strategy", ""))
    if strategy.startswith("ddp") or (isinstance(devices, int) and devices > 1):
        raise ConfigError(
            f"launcher=local_gpus gives each job one GPU, but trainer.strategy={strategy} "
            f"trainer.devices={devices} asks for several: use launcher=basic (or slurm) for DDP "
            "jobs, or trainer.devices=1 to run one job per GPU."
        )
    on_cpu = cfg.trainer.get("accelerator") == "cpu"
    slots = [] if on_cpu else gpus.gpu_slots(spec.get("gpus", "auto"))
    lock_dir = spec.get("lock_dir") or gpus.DEFAULT_LOCK_DIR
    with gpus.acquire_gpu(slots, lock_dir, timeout_s=spec.get("lock_timeout_s")) as slot:
        if slot is None:
            jobs = gpus.n_jobs(0, spec.get("cpu_jobs"))
            threads = spec.get("cpu_threads") or max(1, (os.cpu_count() or 1) // jobs)
            torch.set_num_threads(int(threads))
        else:
            cfg.trainer.accelerator = "gpu"
            cfg.trainer.devices = [slot.index]
            print(f"[rankrobust] job holds GPU {slot.name} (cuda:{slot.index})", flush=True)
        try:
            yield slot
        finally:
            gc.collect()
            if slot is not None and torch.cuda.is_available():
                with torch.cuda.device(slot.index):
                    torch.cuda.empty_cache()
