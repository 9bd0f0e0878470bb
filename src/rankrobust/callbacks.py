"""Lightning callbacks that run the paper's analyses at test end and log them to W&B."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytorch_lightning as pl

from rankrobust.evaluate import rank_sweep
from rankrobust.module import Attack


def default_ranks(full_rank: int) -> list[int]:
    """Every rank up to full for small images (<= 32); else a geometric list 1, 2, 4, ..., full."""
    if full_rank <= 32:
        return list(range(1, full_rank + 1))
    ranks, k = [], 1
    while k < full_rank:
        ranks.append(k)
        k *= 2
    return ranks + [full_rank]


def wandb_run(trainer: pl.Trainer):
    """The W&B run of the trainer's WandbLogger, or None."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


class RankSweepCallback(pl.Callback):
    """At test end: accuracy on L_k(x) and H_k(x) of the raw test images for each rank k.

    The test set is factorised once and reused for every rank and mode. The result,
    {mode: {k: accuracy}}, goes to `pl_module.extra_results["rank_sweep"]` (hence metrics.json)
    and to W&B as a table and one line plot per mode. Runs on global rank 0 over the whole set.
    """

    def __init__(
        self,
        ranks: Sequence[int] | None = None,
        modes: Sequence[str] = ("low", "high"),
        n_images: int | None = None,
        attack: Attack | None = None,
        n_robust: int | None = 500,
        batch_size: int = 500,
    ):
        self.ranks, self.modes = ranks, tuple(modes)
        self.n_images, self.attack, self.n_robust = n_images, attack, n_robust
        self.batch_size = batch_size

    def on_test_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        dm = trainer.datamodule
        images, labels = dm.test_tensors(raw=True, n=self.n_images)
        ranks = list(self.ranks) if self.ranks else default_ranks(min(images.shape[-2:]))
        sweep = rank_sweep(
            pl_module, images, labels, ranks, modes=self.modes, batch_size=self.batch_size
        )
        if self.attack is not None:
            n = self.n_robust or len(labels)
            robust = rank_sweep(
                pl_module,
                images[:n],
                labels[:n],
                ranks,
                modes=self.modes,
                batch_size=self.batch_size,
                attack=self.attack,
            )
            sweep.update({k: v for k, v in robust.items() if k.endswith("_robust")})
        pl_module.extra_results["rank_sweep"] = sweep
        pl_module.extra_results.setdefault("timings", {})["rank_sweep"] = (
            time.perf_counter() - start
        )
        self._log_wandb(trainer, sweep)

    @staticmethod
    def _log_wandb(trainer: pl.Trainer, sweep: dict) -> None:
        run = wandb_run(trainer)
        if run is None:
            return
        import wandb

        rows = [
            [mode, int(k), float(acc)] for mode, accs in sweep.items() for k, acc in accs.items()
        ]
        table = wandb.Table(data=rows, columns=["mode", "rank", "accuracy"])
        plots = {
            f"rank_sweep/{mode}": wandb.plot.line(
                wandb.Table(
                    data=[[int(k), float(a)] for k, a in accs.items()], columns=["rank", "accuracy"]
                ),
                "rank",
                "accuracy",
                title=f"Accuracy on {mode}-rank images vs rank",
            )
            for mode, accs in sweep.items()
        }
        run.log({"rank_sweep/table": table, **plots})
