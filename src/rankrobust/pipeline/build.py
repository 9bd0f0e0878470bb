"""Config -> objects, through `hydra.utils.instantiate` of each group's `_target_`.

The only values decided here are the ones a yaml cannot know: "auto" settings that depend on
the machine, objects passed between groups (the model into the module, the transform into the
datamodule) and the run folder.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rankrobust.attacks import AttackSpec, make_attack
from rankrobust.pipeline.callbacks import LogEveryAuto, env_hooks, log_every_n_steps
from rankrobust.pipeline.lightning_module import RobustClassifier

# Training-set sizes for log_every_n_steps=auto when dataset.n_train is null.
KNOWN_SIZES = {"cifar10": 50_000, "imagenet": 1_281_167}


def on_gpu(cfg: DictConfig) -> bool:
    accelerator = cfg.trainer.get("accelerator", "auto")
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def attack_spec(node: DictConfig | None) -> AttackSpec | None:
    """The typed, validated AttackSpec of attack.train / attack.eval (None when null)."""
    if node is None:
        return None
    return instantiate(node, _convert_="all").validate()


def eval_budget(cfg: DictConfig) -> int | None:
    """Test images attacked for robust_acc: eval.n_robust, capped by AutoAttack's n_examples."""
    n = cfg.eval.n_robust
    spec = attack_spec(cfg.attack.eval)
    if spec is not None and spec.name == "autoattack" and spec.n_examples is not None:
        n = spec.n_examples if n is None else min(n, spec.n_examples)
    return n


def eval_attack(cfg: DictConfig):
    """The evaluation attack for use batch by batch: the caller's budget bounds the images
    attacked, so AutoAttack's n_examples (folded into eval_budget) must not cut each batch."""
    spec = attack_spec(cfg.attack.eval)
    return make_attack(spec.replace(n_examples=None)) if spec else None


def datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    transform = instantiate(cfg.transform, _convert_="all")
    # _partial_: objects passed at call time stay objects (Hydra would turn a dataclass into a
    # config node if it were merged into the config)
    make = instantiate(cfg.dataset, _partial_=True, _convert_="all")
    dm = make(transform=transform, seed=cfg.seed)
    dm.check()  # a missing root etc. before any data is read
    return dm


def model(cfg: DictConfig) -> nn.Module:
    return instantiate(cfg.model, _convert_="all")


def module(cfg: DictConfig, net: nn.Module) -> RobustClassifier:
    train_spec = attack_spec(cfg.attack.train)
    make = instantiate(cfg.module, _partial_=True, _convert_="all")
    return make(
        model=net,
        train_attack=make_attack(train_spec) if train_spec else None,
        eval_attack=eval_attack(cfg),
        n_robust=eval_budget(cfg),
        eval_precision=cfg.eval.precision,
        **OmegaConf.to_container(cfg.optim, resolve=True),
    )


def callbacks(cfg: DictConfig) -> list[pl.Callback]:
    nodes = cfg.get("callbacks") or {}
    return [instantiate(node) for node in nodes.values() if node is not None] + env_hooks()


def log_every(cfg: DictConfig) -> int:
    """About 10 logged points per epoch (Lightning's 50 leaves small runs with none): the
    first guess, from the config; LogEveryAuto corrects it from the data once they are read."""
    n = cfg.dataset.get("n_train") or KNOWN_SIZES.get(cfg.dataset.name, 10_000)
    return log_every_n_steps(math.ceil(n / cfg.dataset.batch_size))


def trainer(cfg: DictConfig, run_dir: Path, loggers: list, cbs: list) -> pl.Trainer:
    t = cfg.trainer
    overrides = {}
    if t.get("precision") == "auto":
        overrides["precision"] = "bf16-mixed" if on_gpu(cfg) else "32-true"
    if t.get("enable_progress_bar") == "auto":
        overrides["enable_progress_bar"] = sys.stdout.isatty()
    if t.get("log_every_n_steps") == "auto":
        overrides["log_every_n_steps"] = log_every(cfg)
        cbs = [*cbs, LogEveryAuto()]
    if t.get("benchmark") == "auto":  # cudnn autotuning: training batches have one shape
        overrides["benchmark"] = on_gpu(cfg) and not cfg.deterministic
    return instantiate(
        t,
        **overrides,
        deterministic=bool(cfg.deterministic),
        logger=loggers or False,
        callbacks=cbs,
        default_root_dir=str(run_dir),
    )
