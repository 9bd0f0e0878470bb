"""Scale-out plumbing: GPU leases for local sweeps, sweep summaries, per-epoch checkpoints,
resume-exact randomness, and DDP child processes that work under any Hydra launcher.

See docs/scale-out.md. Run `python -m rankrobust.launch summarize <sweep dir>` to (re)write a
sweep's summary by hand (e.g. after a SLURM job was killed before Hydra could write it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from rankrobust import gpus
from rankrobust.results import FILENAME, write_metrics

SUMMARY = "sweep_summary.json"
KILL_ENV = "RANKROBUST_KILL_AT_EPOCH"  # test hook: SIGKILL this process when epoch N starts


def register_resolvers() -> None:
    """`${rr_local_jobs:cpu_jobs,gpus}`: jobs at a time for the local_gpus launcher."""
    if not OmegaConf.has_resolver("rr_local_jobs"):
        OmegaConf.register_new_resolver(
            "rr_local_jobs",
            lambda cpu_jobs=None, count="auto": gpus.n_jobs(len(gpus.gpu_slots(count)), cpu_jobs),
        )


def rank_zero() -> bool:
    """Whether this process is global rank 0 (from the launch environment; no Trainer needed)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# ---------------------------------------------------------------------------------------------
# Jobs: a GPU lease per job (local_gpus), failures recorded instead of raised in a multirun.


@contextlib.contextmanager
def job_device(cfg: DictConfig) -> Iterator[gpus.GpuSlot | None]:
    """Take a GPU for this job when `launcher.gpu_lock` is set; pin the trainer to it.

    Without GPUs, the job runs on the CPU with `launcher.cpu_threads` torch threads (default:
    the CPUs shared evenly among the parallel jobs). DDP child processes (LOCAL_RANK > 0) and
    launchers without `gpu_lock` take nothing.
    """
    spec = cfg.get("launcher") or {}
    if not spec.get("gpu_lock") or int(os.environ.get("LOCAL_RANK", "0")) > 0:
        yield None
        return
    slots = gpus.gpu_slots(spec.get("gpus", "auto"))
    lock_dir = spec.get("lock_dir") or gpus.DEFAULT_LOCK_DIR
    with gpus.acquire_gpu(slots, lock_dir, timeout_s=spec.get("lock_timeout_s")) as slot:
        if slot is None:
            import torch

            jobs = gpus.n_jobs(0, spec.get("cpu_jobs"))
            threads = spec.get("cpu_threads") or max(1, (os.cpu_count() or 1) // jobs)
            torch.set_num_threads(int(threads))
        else:
            cfg.trainer.accelerator = "gpu"
            cfg.trainer.devices = [slot.index]
            print(f"[rankrobust] job holds GPU {slot.name} (cuda:{slot.index})", flush=True)
        yield slot


def record_failure(run_dir: str | Path, err: BaseException) -> None:
    """Make sure a failed job leaves a failed metrics.json (pipeline.run writes one itself)."""
    path = Path(run_dir) / FILENAME
    try:
        if json.loads(path.read_text()).get("status") == "failed":
            return
    except (OSError, ValueError):
        pass
    write_metrics(
        run_dir,
        {
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "clean_acc": None,
            "robust_acc": None,
            "config": {},
            "timings": {},
            "run_dir": str(run_dir),
        },
    )


def job_overrides() -> list[str]:
    """This job's own overrides (a multirun job's, not the sweep's), when Hydra runs."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]


def resume_command(run_dir: Path) -> str:
    """`python run.py <this job's overrides> hydra.run.dir=<run_dir> resume=true`."""
    keep = [o for o in job_overrides() if not o.startswith(("resume=", "hydra.run.dir="))]
    args = [*keep, f"hydra.run.dir={run_dir}", "resume=true"]
    return " ".join(["python run.py", *(shlex.quote(a) for a in args)])


# ---------------------------------------------------------------------------------------------
# Sweep summary: which jobs finished, which failed and why.


def summarize_sweep(sweep_dir: str | Path) -> dict:
    """Read every job folder of a sweep (those with .hydra/overrides.yaml) into one summary."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for job_dir in sorted(p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")):
        overrides = [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]
        entry: dict[str, Any] = {"job": job_dir.name, "dir": str(job_dir), "overrides": overrides}
        try:
            m = json.loads((job_dir / FILENAME).read_text())
        except (OSError, ValueError):
            m = {"status": "missing", "error": "no metrics.json: the job died before it started"}
        if m.get("status") == "running":
            m["error"] = m.get("error") or "still running, or killed before it finished"
        entry.update(
            status=m.get("status"),
            error=m.get("error"),
            clean_acc=m.get("clean_acc"),
            robust_acc=m.get("robust_acc"),
        )
        jobs.append(entry)
    jobs.sort(key=lambda j: (len(j["job"].split("_")[0]), j["job"]))
    failed = [j for j in jobs if j["status"] != "ok"]
    return {
        "sweep_dir": str(sweep_dir),
        "n_jobs": len(jobs),
        "n_ok": len(jobs) - len(failed),
        "n_failed": len(failed),
        "failed": [{k: j[k] for k in ("job", "overrides", "status", "error")} for j in failed],
        "jobs": jobs,
    }


def write_sweep_summary(sweep_dir: str | Path) -> dict:
    summary = summarize_sweep(sweep_dir)
    path = Path(sweep_dir) / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    return summary


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


class SweepSummary(_HydraCallback):
    """Hydra callback: at the end of a multirun, write <sweep dir>/sweep_summary.json.

    With `fail_on_error` the process then exits with status 1 when any job failed.
    """

    def __init__(self, fail_on_error: bool = True):
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = write_sweep_summary(config.hydra.sweep.dir)
        print(
            f"[rankrobust] sweep: {summary['n_ok']}/{summary['n_jobs']} jobs ok; summary in "
            f"{Path(config.hydra.sweep.dir) / SUMMARY}",
            flush=True,
        )
        for job in summary["failed"]:
            print(f"[rankrobust]   FAILED {job['job']}: {job['error']}", file=sys.stderr)
        if summary["failed"] and self.fail_on_error:
            sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Lightning callbacks: a checkpoint every epoch, randomness that survives a resume.


class LastCheckpoint(ModelCheckpoint):
    """Rewrite <dirpath>/last.ckpt at the end of every training epoch.

    ModelCheckpoint(save_top_k=0, save_last=True) alone writes last.ckpt only when training ends
    (it saves "last" only in a step where a top-k checkpoint was saved), useless for resuming.
    """

    def __init__(self, dirpath: str | Path):
        super().__init__(
            dirpath=str(dirpath), save_last=True, save_top_k=0, enable_version_counter=False
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A seed that depends only on (run seed, optimizer step, process rank)."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class StepSeed(pl.Callback):
    """Reseed torch's global RNG before every training step from (seed, step, rank).

    Training attacks (random starts) and anything else drawing from the global RNG then give
    the same numbers whether a run went straight through or was resumed from a checkpoint.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        import torch

        torch.manual_seed(step_seed(self.seed, trainer.global_step, trainer.global_rank))

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        import torch  # evaluation attacks' random starts: the same after a resume

        torch.manual_seed(step_seed(self.seed + 1, trainer.global_step, trainer.global_rank))


class KillAtEpoch(pl.Callback):
    """Test hook ($RANKROBUST_KILL_AT_EPOCH=N): SIGKILL the process as epoch N starts (0-based),
    after epoch N-1's checkpoint is on disk: a hard crash, no cleanup."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def extra_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [StepSeed(int(cfg.seed))]
    if os.environ.get(KILL_ENV):
        callbacks.append(KillAtEpoch(int(os.environ[KILL_ENV])))
    return callbacks


# ---------------------------------------------------------------------------------------------
# DDP: Lightning's "ddp" strategy re-runs `sys.argv` in each extra process. Under Hydra that
# command is wrong in a multirun (it holds `-m` and the whole sweep) and meaningless inside a
# joblib / submitit worker or pytest. Instead each child runs this module on the job's own
# composed config: `python -m rankrobust.launch ddp-child <run_dir>/.ddp/config.yaml <run_dir>`.


def prepare_ddp_children(cfg: DictConfig, run_dir: str | Path) -> None:
    """Save the live config and point Lightning's process launcher at our child command."""
    strategy = str(cfg.trainer.get("strategy") or "")
    if not strategy.startswith("ddp") or "spawn" in strategy or "fork" in strategy:
        return
    if int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return
    run_dir = Path(run_dir).resolve()
    path = run_dir / ".ddp" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path)

    def command(local_rank: int = 0) -> tuple[list[str], str]:
        argv = [sys.executable, "-m", "rankrobust.launch", "ddp-child", str(path), str(run_dir)]
        return argv, os.getcwd()

    from lightning_fabric.strategies.launchers import subprocess_script as fabric_launcher
    from pytorch_lightning.strategies.launchers import subprocess_script as pl_launcher

    for module in (fabric_launcher, pl_launcher):  # pytorch_lightning imports them by name
        module._hydra_subprocess_cmd = command
        module._basic_subprocess_cmd = lambda: command()[0]


def _ddp_child(config: str, run_dir: str) -> None:
    from rankrobust import pipeline

    register_resolvers()
    pipeline.run(OmegaConf.load(config), run_dir)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ddp-child"] and len(argv) == 3:
        _ddp_child(argv[1], argv[2])
        return 0
    if argv[:1] == ["summarize"] and len(argv) == 2:
        summary = write_sweep_summary(argv[1])
        print(json.dumps({k: summary[k] for k in ("n_jobs", "n_ok", "failed")}, indent=2))
        return 1 if summary["failed"] else 0
    print("usage: python -m rankrobust.launch summarize <sweep dir>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
