"""Lightning callbacks that run the paper's analyses at test end and log them to W&B."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from rankrobust.evaluate import rank_sweep
from rankrobust.module import Attack
from rankrobust.rig import rank_integrated_gradients, vanilla_gradient
from rankrobust.rig_plot import save_rig_grid
from rankrobust.svd import factorize


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


class PerturbationSpectrumCallback(pl.Callback):
    """At test end: mean singular values of clean test images and of adversarial perturbations.

    For the first `n_images` test images x, the evaluation attack (`attack`, else the module's
    `eval_attack`) gives x_adv; the singular values of each channel of x and of x_adv - x are
    averaged over images and channels per rank index. The result goes to
    `pl_module.extra_results["perturbation_spectrum"]` (hence metrics.json) as
    {"clean": [...], "perturbation": [...], "n_images": n}. Runs on global rank 0 only.
    """

    def __init__(self, n_images: int = 256, attack: Attack | None = None, batch_size: int = 256):
        self.n_images, self.attack, self.batch_size = n_images, attack, batch_size

    def on_test_end(self, trainer: pl.Trainer, pl_module) -> None:
        import torch

        attack = self.attack or getattr(pl_module, "eval_attack", None)
        if not trainer.is_global_zero or attack is None:
            return
        start = time.perf_counter()
        images, labels = trainer.datamodule.test_tensors(raw=False, n=self.n_images)
        device = pl_module.device
        clean, pert = [], []
        for lo in range(0, len(labels), self.batch_size):
            x = images[lo : lo + self.batch_size].to(device)
            y = labels[lo : lo + self.batch_size].to(device)
            delta = (attack(pl_module.model, x, y) - x).detach()
            clean.append(factorize(x.float()).S.cpu().flatten(0, -2))
            pert.append(factorize(delta.float()).S.cpu().flatten(0, -2))
        pl_module.extra_results["perturbation_spectrum"] = {
            "clean": torch.cat(clean).mean(0).tolist(),
            "perturbation": torch.cat(pert).mean(0).tolist(),
            "n_images": int(len(labels)),
        }
        pl_module.extra_results.setdefault("timings", {})["perturbation_spectrum"] = (
            time.perf_counter() - start
        )


def rank_shares(per_rank: torch.Tensor) -> torch.Tensor:
    """Share of each rank segment in an image's attribution: |a_k| / sum_j |a_j| (rows sum to 1)."""
    magnitude = per_rank.abs()
    return magnitude / magnitude.sum(dim=1, keepdim=True).clamp_min(1e-12)


class RIGCallback(pl.Callback):
    """At test end: Rank Integrated Gradients on a fixed, seeded set of raw test images.

    Writes `rig.npz` (images, targets, labels, pixel, vanilla, per_rank, ranks, delta,
    relative_delta, classes) and `rig.png` (image | vanilla gradient | RIG map per row) to the run
    directory, logs both to W&B, and adds to metrics.json `rig`: `top4_share` (mean share of
    |rank attribution| in ranks <= 4), `median_rel_delta` (median |delta| / |f(x) - f(b)|),
    `mean_per_rank` (mean share per path segment) and `ranks`. Global rank 0 only.
    """

    def __init__(
        self,
        run_dir: str | Path,
        n_images: int = 8,
        steps_per_rank: int = 8,
        ranks: Sequence[int] | None = None,
        baseline: str = "zero",
        batch_size: int = 256,
        seed: int = 0,
        baseline_steps: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.n_images, self.steps_per_rank = n_images, steps_per_rank
        self.baseline_steps = baseline_steps
        self.ranks, self.baseline = ranks, baseline
        self.batch_size, self.seed = batch_size, seed

    def on_test_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        images, labels = trainer.datamodule.test_tensors(raw=True)
        pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        pick = pick[: self.n_images].to(labels.device)
        x, y = images[pick].to(pl_module.device), labels[pick]
        result = rank_integrated_gradients(
            pl_module,
            x,
            steps_per_rank=self.steps_per_rank,
            baseline_steps=self.baseline_steps,
            ranks=self.ranks,
            baseline=self.baseline,
            batch_size=self.batch_size,
        )
        vanilla = vanilla_gradient(pl_module, x, target=result.target)
        arrays = {
            "images": x.cpu().numpy(),
            "targets": result.target.cpu().numpy(),
            "labels": y.cpu().numpy(),
            "pixel": result.pixel.cpu().numpy(),
            "vanilla": vanilla.cpu().numpy(),
            "per_rank": result.per_rank.cpu().numpy(),
            "ranks": np.asarray(result.ranks),
            "delta": result.delta.cpu().numpy(),
            "relative_delta": result.relative_delta.cpu().numpy(),
        }
        classes = trainer.datamodule.test_set.classes
        np.savez_compressed(self.run_dir / "rig.npz", classes=np.asarray(classes), **arrays)
        png = save_rig_grid(arrays, self.run_dir / "rig.png", rig_title(pl_module), classes)
        shares = rank_shares(result.per_rank.detach().cpu())
        in_top4 = torch.tensor(result.ranks) <= 4
        summary = {
            "top4_share": float(shares[:, in_top4].sum(1).mean()),
            "median_rel_delta": float(result.relative_delta.median()),
            "mean_per_rank": shares.mean(0).tolist(),
            "ranks": list(result.ranks),
            "n_images": len(y),
            "steps_per_rank": self.steps_per_rank,
            "baseline_steps": self.baseline_steps,
        }
        pl_module.extra_results["rig"] = summary
        pl_module.extra_results.setdefault("timings", {})["rig"] = time.perf_counter() - start
        self._log_wandb(trainer, png, summary)

    @staticmethod
    def _log_wandb(trainer: pl.Trainer, png: Path, summary: dict) -> None:
        run = wandb_run(trainer)
        if run is None:
            return
        import wandb

        curve = wandb.Table(
            data=[[r, s] for r, s in zip(summary["ranks"], summary["mean_per_rank"], strict=True)],
            columns=["rank", "share"],
        )
        run.log(
            {
                "rig/grid": wandb.Image(str(png), caption="image | vanilla gradient | RIG"),
                "rig/rank_attribution": wandb.plot.line(
                    curve, "rank", "share", title="Mean RIG rank attribution share vs rank"
                ),
            }
        )


def rig_title(pl_module) -> str:
    """'RIG: <model>, <natural|adversarial> training' for grid titles."""
    kind = "natural" if pl_module.train_attack is None else "adversarial"
    name = type(getattr(pl_module.model, "net", pl_module.model)).__name__
    return f"RIG: {name}, {kind} training"
