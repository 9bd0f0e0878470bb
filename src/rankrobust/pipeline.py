"""Config -> datamodule, module, callbacks, loggers, trainer; fit; test; write metrics.json."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from rankrobust import launch
from rankrobust.attacks import AttackSpec, make_attack
from rankrobust.callbacks import RankSweepCallback, RIGCallback
from rankrobust.checkpoints import check_checkpoint_path, load_weights
from rankrobust.data import ImageDataModule
from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.module import RobustClassifier
from rankrobust.results import write_metrics
from rankrobust.svd import RankTransform

MODEL_KWARGS = (
    "depth",
    "widen_factor",
    "weights",
    "pretrained",  # resnet50: torchvision weights ("imagenet")
    "name_rb",  # robustbench: model zoo name, dataset, threat model, cache folder
    "rb_dataset",
    "threat_model",
    "model_dir",
)


# ---------------------------------------------------------------------------------------------
# Validation: everything that can be checked before data is loaded or a model trained.


def attack_spec(cfg_attack: DictConfig | None) -> AttackSpec | None:
    """An AttackSpec from a config node (None when the node is null)."""
    if cfg_attack is None:
        return None
    spec = AttackSpec(**OmegaConf.to_container(cfg_attack, resolve=True))
    spec.validate()
    return spec


def rank_transform(cfg: DictConfig) -> RankTransform:
    """The data transform for `rank` and the `transform` group (identity when rank is null)."""
    rank = cfg.rank
    if isinstance(rank, bool) or not (rank is None or isinstance(rank, int)):
        raise ConfigError(
            f"rank={rank!r} is not valid: rank must be null (full images) or an integer k with "
            "1 <= k <= min(H, W) of the images (32 for CIFAR-10)."
        )
    band = tuple(cfg.transform.band) if cfg.transform.band is not None else None
    if cfg.transform.mode == "band" and band is None:
        raise ConfigError("transform.mode=band needs transform.band=[a,b] with 0 <= a < b.")
    if cfg.transform.mode == "band":
        rank = band[1]
    return RankTransform(mode=cfg.transform.mode, rank=rank, band=band, clamp=cfg.transform.clamp)


def eval_budget(cfg: DictConfig) -> int | None:
    """Test images attacked for robust_acc: eval.n_robust, capped by AutoAttack's n_examples."""
    n = cfg.eval.n_robust
    spec = attack_spec(cfg.attack.eval)
    if spec is not None and spec.name == "autoattack" and spec.n_examples is not None:
        n = spec.n_examples if n is None else min(n, spec.n_examples)
    return n


def batch_attack(spec: AttackSpec | None):
    """make_attack for use batch by batch: the caller's budget bounds the images attacked, so an
    AutoAttack n_examples (folded into eval_budget) must not cut each batch again."""
    return make_attack(spec.replace(n_examples=None)) if spec else None


def model_weights(cfg: DictConfig) -> str | None:
    """Where the evaluated weights come from (None: trained in this run from scratch)."""
    m = cfg.model
    if m.get("checkpoint"):
        return f"checkpoint:{m.checkpoint}"
    if m.name == "robustbench":
        return f"robustbench:{m.get('rb_dataset')}/{m.get('threat_model')}/{m.get('name_rb')}"
    if m.get("pretrained") or m.get("weights"):
        return f"torchvision:{m.get('pretrained') or m.get('weights')}"
    return None


def check_config(cfg: DictConfig) -> None:
    """Fail fast, with one clear paragraph, on bad configuration values."""
    transform = rank_transform(cfg)
    image_size = cfg.dataset.get("image_size")
    if image_size:
        transform.validate(int(image_size))
    train_spec = attack_spec(cfg.attack.train)
    if train_spec is not None and train_spec.name == "autoattack" and cfg.train:
        raise ConfigError(
            "attack.train.name=autoattack: AutoAttack is for evaluation only. Train with "
            "pgd_linf, pgd_l2 or fgsm_rs (attack=...), and evaluate with attack.eval=autoattack."
        )
    attack_spec(cfg.attack.eval)
    if cfg.model.get("checkpoint"):
        check_checkpoint_path(cfg.model.checkpoint)
    if not cfg.train and model_weights(cfg) is None:
        print(
            "[rankrobust] warning: train=false without model.checkpoint, model.pretrained or "
            "model=robustbench evaluates randomly initialised weights.",
            file=sys.stderr,
        )
    if cfg.trainer.max_epochs < 1 and cfg.train:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs}: it must be >= 1.")


# ---------------------------------------------------------------------------------------------
# Builders.


def on_gpu(cfg: DictConfig) -> bool:
    return cfg.trainer.accelerator in ("gpu", "cuda") or (
        cfg.trainer.accelerator == "auto" and torch.cuda.is_available()
    )


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    d = cfg.dataset
    dm = ImageDataModule(
        name=d.name,
        batch_size=d.batch_size,
        eval_batch_size=d.eval_batch_size,
        root=d.get("root"),
        download=d.get("download", False),
        image_size=d.get("image_size"),
        num_classes=d.num_classes,
        n_train=d.get("n_train"),
        n_test=d.get("n_test"),
        augment=d.get("augment", True),
        in_memory=d.get("in_memory", True),
        on_device=d.get("on_device", True),
        num_workers=d.get("num_workers", 0),
        synthetic=OmegaConf.to_container(d.synthetic) if d.get("synthetic") else None,
        transform=rank_transform(cfg),
        apply_to=list(cfg.transform.apply_to),
        seed=cfg.seed,
    )
    dm.check()
    return dm


def build_network(cfg: DictConfig) -> torch.nn.Module:
    kwargs = {k: cfg.model[k] for k in MODEL_KWARGS if cfg.model.get(k) is not None}
    model = build_model(
        cfg.model.name, cfg.dataset.num_classes, cfg.dataset.mean, cfg.dataset.std, **kwargs
    )
    if cfg.model.get("checkpoint"):
        load_weights(model, cfg.model.checkpoint)
    return model


def build_module(cfg: DictConfig) -> RobustClassifier:
    train_spec, eval_spec = attack_spec(cfg.attack.train), attack_spec(cfg.attack.eval)
    channels_last = cfg.trainer.channels_last
    return RobustClassifier(
        build_network(cfg),
        num_classes=cfg.dataset.num_classes,
        train_attack=make_attack(train_spec) if train_spec else None,
        eval_attack=batch_attack(eval_spec),
        n_robust=eval_budget(cfg),
        channels_last=on_gpu(cfg) if channels_last == "auto" else bool(channels_last),
        **OmegaConf.to_container(cfg.optim),
    )


def run_tags(cfg: DictConfig) -> list[str]:
    return [
        f"dataset:{cfg.dataset.name}",
        f"model:{cfg.model.name}",
        f"attack:{cfg.attack.name}",
        f"rank:{cfg.rank}",
    ] + list(cfg.logger.get("tags") or [])


def build_loggers(cfg: DictConfig, run_dir: Path, group: str | None) -> list:
    name = cfg.logger.name
    if name == "none":
        return []
    if name == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return [CSVLogger(str(run_dir), name="csv")]
    if name == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        offline = os.environ["WANDB_MODE"] != "online"
        return [
            WandbLogger(
                project=cfg.logger.project,
                entity=cfg.logger.get("entity"),
                name=cfg.name,
                group=cfg.logger.get("group") or group or cfg.name,
                tags=run_tags(cfg),
                save_dir=str(run_dir),
                offline=offline,
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        ]
    raise ConfigError(f"Unknown logger '{name}': use wandb, csv or none.")


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[pl.Callback]:
    from rankrobust.launch import LastCheckpoint, extra_callbacks

    # last.ckpt rewritten every epoch (resume=true), per-step reseeding (exact resume)
    callbacks: list[pl.Callback] = [LastCheckpoint(run_dir / "checkpoints"), *extra_callbacks(cfg)]
    if cfg.sweep.enabled:
        robust = attack_spec(cfg.attack.eval) if cfg.sweep.robust else None
        callbacks.append(
            RankSweepCallback(
                ranks=list(cfg.sweep.ranks) if cfg.sweep.ranks else None,
                modes=list(cfg.sweep.modes),
                n_images=cfg.sweep.n_images,
                attack=batch_attack(robust),
                n_robust=cfg.sweep.n_robust,
                batch_size=cfg.dataset.eval_batch_size,
            )
        )
    if cfg.rig.enabled:
        callbacks.append(
            RIGCallback(
                run_dir,
                n_images=cfg.rig.n_images,
                steps_per_rank=cfg.rig.steps_per_rank,
                baseline_steps=cfg.rig.get("baseline_steps"),
                ranks=list(cfg.rig.ranks) if cfg.rig.ranks else None,
                baseline=cfg.rig.baseline,
                batch_size=cfg.rig.batch_size,
                seed=cfg.rig.seed,
            )
        )
    analysis = cfg.get("analysis") or {}
    if analysis.get("perturbation_spectrum", False) and cfg.attack.eval is not None:
        from rankrobust.callbacks import PerturbationSpectrumCallback

        callbacks.append(
            PerturbationSpectrumCallback(
                n_images=analysis.get("n_images", 256), batch_size=cfg.dataset.eval_batch_size
            )
        )
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list) -> pl.Trainer:
    t = cfg.trainer
    precision = t.precision
    if precision == "auto":
        precision = "bf16-mixed" if on_gpu(cfg) else "32-true"
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.get("num_nodes", 1),
        strategy=t.strategy,
        precision=precision,
        max_epochs=t.max_epochs,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=False,
        deterministic=cfg.deterministic,
        inference_mode=False,  # the evaluation attack needs gradients at test time
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
    )


# ---------------------------------------------------------------------------------------------
# The run.


def key_config(cfg: DictConfig) -> dict:
    return {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "attack": cfg.attack.name,
        "rank": cfg.rank,
        "transform_mode": cfg.transform.mode,
        "apply_to": list(cfg.transform.apply_to),
        "seed": cfg.seed,
        "train": cfg.train,
        "max_epochs": cfg.trainer.max_epochs,
        "name": cfg.name,
        "weights": model_weights(cfg),
    }


def resume_command(run_dir: Path) -> str:
    """The command that continues this run (this job's own overrides) from its last checkpoint."""
    from rankrobust.launch import resume_command as command

    return command(run_dir)


def run(cfg: DictConfig, run_dir: str | Path, group: str | None = None) -> dict:
    """Train (or load) the model, test it, run the analyses; write run_dir/metrics.json."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    base = {"config": key_config(cfg), "run_dir": str(run_dir), "clean_acc": None}
    base["robust_acc"] = None
    base["timings"] = timings
    try:
        check_config(cfg)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        dm = build_datamodule(cfg)
        module = build_module(cfg)
        loggers = build_loggers(cfg, run_dir, group)
        trainer = build_trainer(cfg, run_dir, loggers, build_callbacks(cfg, run_dir))
        launch.prepare_ddp_children(cfg, run_dir)  # DDP: extra processes rerun this config
        if launch.rank_zero():
            write_metrics(run_dir, {**base, "status": "running", "error": None})
        timings["setup"] = time.perf_counter() - start
        last = run_dir / "checkpoints" / "last.ckpt"
        if cfg.train:  # every DDP process trains; rank 0 says how to resume
            if launch.rank_zero():
                print(
                    f"[rankrobust] run directory: {run_dir}\n[rankrobust] resume with: "
                    f"{resume_command(run_dir)}",
                    flush=True,
                )
            tick = time.perf_counter()
            ckpt = str(last) if cfg.resume and last.exists() else None
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
            timings["fit"] = time.perf_counter() - tick
        tick = time.perf_counter()
        tested = trainer.test(module, datamodule=dm, verbose=False)[0]
        timings["test"] = (
            time.perf_counter()
            - tick
            - sum(module.extra_results.get("timings", {}).values())  # analyses timed apart
        )
        timings.update(module.extra_results.pop("timings", {}))
        timings["total"] = time.perf_counter() - start
        eval_spec = attack_spec(cfg.attack.eval)
        metrics = {
            **base,
            "status": "ok",
            "error": None,
            "clean_acc": tested.get("test/clean_acc"),
            "robust_acc": tested.get("test/robust_acc"),
            "eval_attack": dataclasses.asdict(eval_spec) if eval_spec else None,
            "n_robust": eval_budget(cfg),
            "checkpoint": str(last) if last.exists() else cfg.model.get("checkpoint"),
            **module.extra_results,
        }
        if trainer.is_global_zero:
            write_metrics(run_dir, metrics)
            log_summary(trainer, metrics)
        return metrics
    except Exception as err:
        timings["total"] = time.perf_counter() - start
        failed = {**base, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        if launch.rank_zero():
            write_metrics(run_dir, failed)
        raise
    finally:
        finish_wandb()


def log_summary(trainer: pl.Trainer, metrics: dict) -> None:
    """Put the test metrics into the W&B run summary (what a dashboard table shows)."""
    from rankrobust.callbacks import wandb_run

    run = wandb_run(trainer)
    if run is None:
        return
    summary = {k: metrics[k] for k in ("clean_acc", "robust_acc") if metrics.get(k) is not None}
    for name, value in (metrics.get("rig") or {}).items():
        if isinstance(value, int | float):
            summary[f"rig/{name}"] = value
    run.summary.update(summary)


def finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts a fresh one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
