"""Lightning callbacks: only what needs a hook inside training (checkpoints, step seeds,
progress lines). The analyses are plain functions (analyses.py) run by the task."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from rankrobust.files import torch_save
from rankrobust.pipeline.seeding import step_seed

_clock = time.monotonic  # the checkpoint cadence's clock (a test replaces it)


class LastCheckpoint(ModelCheckpoint):
    """Write <dirpath>/last.ckpt for resume=true: when training ends, and at the end of an epoch
    once `every_minutes` have passed since the last write (0 = every epoch).

    A paper-scale checkpoint is about 90 MB: written every epoch of a 1-second GPU epoch it
    costs more than the epoch. Saving only at epoch ends keeps a resume exact (the data order
    and step seeds restart at an epoch). ModelCheckpoint(save_top_k=0, save_last=True) alone
    writes last.ckpt only in a step where a top-k checkpoint was saved, i.e. never here.
    A relative ``dirpath`` is taken inside the trainer's default_root_dir (the run folder).
    """

    def __init__(self, dirpath: str | Path = "checkpoints", every_minutes: float = 0.0):
        # ModelCheckpoint makes a relative dirpath absolute against the current directory:
        # keep it to place it inside the run folder once the trainer is known
        self._relative = None if Path(dirpath).is_absolute() else str(dirpath)
        super().__init__(
            dirpath=str(dirpath), save_last=True, save_top_k=0, enable_version_counter=False
        )
        self.every_s = 60.0 * float(every_minutes)
        self._saved_at: float | None = None  # _clock() of the last write (or the start)
        self._saved_step = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._relative is not None:
            self.dirpath = os.path.realpath(Path(trainer.default_root_dir) / self._relative)
            self._relative = None
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._saved_at = _clock()

    def _save(self, trainer: pl.Trainer) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._saved_at, self._saved_step = _clock(), trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        due = self._saved_at is None or _clock() - self._saved_at >= self.every_s
        # the time test is taken on rank 0 and broadcast: every process must save together
        due = trainer.strategy.broadcast(due)
        if due or last or trainer.should_stop:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # max_steps can end training inside an epoch: its final state is written too
        if self._saved_step != trainer.global_step:
            self._save(trainer)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, written the project's way (files.torch_save): into a
    temporary file in the checkpoint's own folder, fsync'ed, then renamed over last.ckpt.

    Lightning's own writes a local file through an fsspec transaction, which stages it in
    $TMPDIR and then moves it: across file systems that move is a copy, and a kill during it
    truncates the previous good checkpoint (Lightning-AI/pytorch-lightning#688). A full disk
    raises an OSError naming the checkpoint and leaves no partial file. Remote paths (s3://...)
    keep Lightning's way.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        torch_save(checkpoint, path)


class LogEveryAuto(pl.Callback):
    """trainer.log_every_n_steps=auto: about 10 logged points per epoch, from the real number of
    training batches once the data are set up (a guess from the config, when the data set's
    size is not in it, can be off by 100x: an image folder's size is only known once read)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = trainer.num_training_batches
        if isinstance(batches, int) and batches > 0:
            trainer.log_every_n_steps = log_every_n_steps(batches)


def log_every_n_steps(batches_per_epoch: int) -> int:
    """About 10 logged points per epoch, at least 1 and at most 50 steps apart."""
    return max(1, min(50, batches_per_epoch // 10))


class StepSeed(pl.Callback):
    """Reseed torch's global RNG before every training step from (seed, step, rank).

    Training attacks (random starts) and anything else drawing from the global RNG then give
    the same numbers whether a run went straight through or was resumed from a checkpoint.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_step, trainer.global_rank))

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        # evaluation attacks' random starts: the same after a resume
        torch.manual_seed(step_seed(self.seed + 1, trainer.global_step, trainer.global_rank))


class LineProgress(pl.Callback):
    """When stdout is not a terminal (a log file, a cluster job): one line per ``every`` of an
    epoch instead of a progress bar's hundreds of carriage-return updates. On a terminal it
    does nothing (the progress bar shows)."""

    def __init__(self, every: float = 0.1):
        self.every = every
        self._next = 0.0
        self._start = 0.0

    @staticmethod
    def active(trainer: pl.Trainer) -> bool:
        return trainer.is_global_zero and not sys.stdout.isatty()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._next, self._start = self.every, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        total = trainer.num_training_batches
        if not self.active(trainer) or not total or total == float("inf"):
            return
        done = (batch_idx + 1) / total
        if done + 1e-9 < self._next and batch_idx + 1 < total:
            return
        while self._next <= done + 1e-9:
            self._next += self.every
        loss = trainer.callback_metrics.get("train/loss")
        loss_text = f", loss {float(loss):.3f}" if loss is not None else ""
        elapsed = time.perf_counter() - self._start
        logging.getLogger("rankrobust").info(
            f"[rankrobust] epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: "
            f"{done:4.0%} ({batch_idx + 1}/{total} steps, {elapsed:.0f} s{loss_text})"
        )

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._next, self._start = self.every, time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        """Testing (clean + attacked batches) says how far it is and how long is left."""
        totals = trainer.num_test_batches
        total = totals[dataloader_idx] if isinstance(totals, list) and totals else totals
        if not self.active(trainer) or not total or total == float("inf"):
            return
        done = (batch_idx + 1) / total
        if done + 1e-9 < self._next and batch_idx + 1 < total:
            return
        while self._next <= done + 1e-9:
            self._next += self.every
        elapsed = time.perf_counter() - self._start
        left = elapsed / done - elapsed
        logging.getLogger("rankrobust").info(
            f"[rankrobust] test: {done:4.0%} ({batch_idx + 1}/{total} batches, {elapsed:.0f} s, "
            f"about {left:.0f} s left)"
        )


class TimeEstimate(pl.Callback):
    """Early in training (after `after_steps` steps, or a quarter of a shorter job, at least one),
    say how long the whole job will take when that is longer than `warn_minutes`: the training
    still to go plus the test and the analyses after it, and on a CPU what is quicker (the demo,
    the smoke run).

    The test and analyses are counted in forward passes (`work`: set by the task from the
    spec, pipeline/analyses.planned_work) at a third of a training step's cost per image (a step
    is one forward and one backward pass, the backward counted as two forwards). `advice`: name
    the quicker alternatives on a CPU (the demo turns it off for its own runs)."""

    def __init__(self, after_steps: int = 5, warn_minutes: float = 10.0, advice: bool = True):
        self.after_steps, self.warn_minutes, self.advice = after_steps, warn_minutes, advice
        # forward passes after training (test + analyses), or a function giving them once the
        # data are set up (the task sets it: analyses.planned_work)
        self.work: int | Callable[[], int] = 0
        self._start: float | None = None
        self._said = False

    def on_train_start(self, trainer, pl_module) -> None:
        self._start, self._from = time.perf_counter(), trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._start is None:
            self._start, self._from = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._said or self._start is None or not trainer.is_global_zero:
            return
        done = trainer.global_step - self._from
        # a short job (the card's command at 1,000 images: 2 steps of 512) is said after its
        # first quarter, at least one step, not at its end
        left = trainer.estimated_stepping_batches - self._from
        enough = self.after_steps
        if left != float("inf"):
            enough = min(enough, max(1, int(left) // 4))
        if done < enough:
            return
        self._said = True
        per_step = (time.perf_counter() - self._start) / max(done, 1)
        total = trainer.estimated_stepping_batches - trainer.global_step
        if total == float("inf"):  # an unsized stream: no estimate to give
            return
        batch_size = _batch_size(batch)
        work = self.work() if callable(self.work) else self.work
        after = work * per_step / (3 * batch_size) if batch_size else 0.0
        minutes = (per_step * total + after) / 60
        jobs = sweep_jobs(sys.argv[1:])
        if minutes * jobs < self.warn_minutes:
            return
        sweep = ""
        if jobs > 1:
            sweep = f" This multirun has {jobs} jobs: about {_span(minutes * jobs)}."
        where = pl_module.device.type
        advice = (
            " On a CPU, `make reproduce-demo` (about 3.5 minutes on 2 cores) shows every claim "
            "quickly, and `python run.py experiment=smoke` the whole pipeline; this "
            "configuration is meant for a GPU (trainer=gpu)."
            if where == "cpu" and self.advice
            else ""
        )
        logging.getLogger("rankrobust").warning(
            f"[rankrobust] this job will take about {_span(minutes)} more on this {where}: "
            f"training about {_span(per_step * total / 60)} ({per_step:.2f} s per step, {total} "
            f"steps to go), the test and analyses after it about {_span(after / 60)} ({work} "
            f"forward passes).{sweep}{advice}"
        )


def _span(minutes: float) -> str:
    """'40 s' under two minutes, else '7 minutes' (a job of 0.3 minutes once read '0 minutes')."""
    return f"{minutes * 60:.0f} s" if minutes < 2 else f"{minutes:.0f} minutes"


def sweep_jobs(argv: list[str]) -> int:
    """Jobs a Hydra multirun command line starts (the product of the comma-separated values of
    its sweep overrides, e.g. rank=1,4,16,32 -> 4); 1 without -m / --multirun. Lists in brackets
    and hydra.* overrides are not sweeps."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return 1
    jobs = 1
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+~").startswith("hydra.") or value.startswith(("[", "{")):
            continue
        jobs *= len(value.split(",")) if "," in value else 1
    return jobs


def _batch_size(batch) -> int:
    """Images in a training batch ((x, y) or x), 0 when unknown."""
    x = batch[0] if isinstance(batch, list | tuple) and batch else batch
    return int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim > 0 else 0
