"""The checked run (its RunSpec) -> objects, through `hydra.utils.instantiate` of each group's
`_target_` in the spec's resolved config, each built once.

The only values decided here are the ones a yaml cannot know: "auto" settings that depend on
the machine, objects passed between groups (the model into the module, the transform into the
datamodule) and the run folder.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from rankrobust.attacks import make_attack
from rankrobust.pipeline.callbacks import (
    AtomicCheckpointIO,
    LogEveryAuto,
    log_every_n_steps,
)
from rankrobust.pipeline.lightning_module import RobustClassifier
from rankrobust.pipeline.rules import check_image_size
from rankrobust.pipeline.spec import NOT_ARGUMENTS, RunSpec
from rankrobust.pipeline.threat_checks import check_zoo_weights

_NOT_ARGS = NOT_ARGUMENTS["dataset"]

# Training-set sizes for log_every_n_steps=auto when dataset.n_train is null.
KNOWN_SIZES = {"cifar10": 50_000, "imagenet": 1_281_167}


def on_gpu(spec: RunSpec) -> bool:
    accelerator = spec.config["trainer"].get("accelerator", "auto")
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _pixels(spec: RunSpec, split: str, dataset: dict | None = None) -> bool:
    """Whether `split`'s images are pixels in [0, 1]: H_k residuals and bands are not clamped
    (svd.py), nor are training images after a brightness / contrast augmentation
    (data.batches.random_brightness_contrast), so attacks on them must neither reject nor clamp
    them."""
    t = spec.transform
    if split in t.apply_to and t.mode in ("high", "band") and not t.is_identity:
        return False
    if split == "train" and dataset is not None and dataset.get("augment", False):
        return not (dataset.get("augment_brightness", 0) or dataset.get("augment_contrast", 0))
    return True


def _attack_for(spec, pixels: bool):
    attack = make_attack(spec)
    if attack is None or pixels or spec.name == "autoattack":
        return attack
    return functools.partial(attack, pixels=False)


def datamodule(spec: RunSpec) -> pl.LightningDataModule:
    dataset = spec.node("dataset")
    node = OmegaConf.masked_copy(dataset, [k for k in dataset if k not in _NOT_ARGS])
    # _partial_: objects passed at call time stay objects (Hydra would turn a dataclass into a
    # config node if it were merged into the config)
    make = instantiate(node, _partial_=True, _convert_="all")
    dm = make(transform=spec.transform, seed=spec.seed)
    dm.size_checks.append(functools.partial(check_image_size, spec))  # once the images are read
    return dm


def model(spec: RunSpec) -> nn.Module:
    check_zoo_weights(spec.config.get("zoo"))  # a zoo job: its weights file, named, first
    return instantiate(spec.node("model"), _convert_="all")


def module(spec: RunSpec, net: nn.Module) -> RobustClassifier:
    """The LightningModule: the model, the spec's attacks and budgets, optim.* as arguments.

    The evaluation attack runs batch by batch under the module's budget (eval_budget), so
    AutoAttack's own n_examples (folded into that budget) must not cut each batch.
    """
    train, evaluate = spec.train_attack, spec.eval_attack
    make = instantiate(spec.node("module"), _partial_=True, _convert_="all")
    dataset = spec.config["dataset"]
    return make(
        model=net,
        train_attack=_attack_for(train, _pixels(spec, "train", dataset)) if train else None,
        eval_attack=(
            _attack_for(evaluate.replace(n_examples=None), _pixels(spec, "test"))
            if evaluate
            else None
        ),
        n_robust=spec.eval_budget,
        eval_precision=spec.eval.precision,
        **spec.config["optim"],
    )


def callbacks(spec: RunSpec) -> list[pl.Callback]:
    nodes = spec.node("callbacks") if spec.config.get("callbacks") else {}
    return [instantiate(node) for node in nodes.values() if node is not None]


def log_every(spec: RunSpec) -> int:
    """About 10 logged points per epoch (Lightning's 50 leaves small runs with none): the
    first guess, from the config; LogEveryAuto corrects it from the data once they are read."""
    dataset = spec.config["dataset"]
    n = dataset.get("n_train") or KNOWN_SIZES.get(dataset["name"], 10_000)
    return log_every_n_steps(math.ceil(n / dataset["batch_size"]))


def trainer(spec: RunSpec, run_dir: Path, loggers: list, cbs: list) -> pl.Trainer:
    t = spec.node("trainer")
    overrides = {}
    if t.get("precision") == "auto":
        overrides["precision"] = "bf16-mixed" if on_gpu(spec) else "32-true"
    if t.get("enable_progress_bar") == "auto":
        overrides["enable_progress_bar"] = sys.stdout.isatty()
    if t.get("log_every_n_steps") == "auto":
        overrides["log_every_n_steps"] = log_every(spec)
        cbs = [*cbs, LogEveryAuto()]
    if t.get("benchmark") == "auto":  # cudnn autotuning: training batches have one shape
        overrides["benchmark"] = on_gpu(spec) and not spec.config["deterministic"]
    if t.get("plugins") is None:  # last.ckpt written beside itself and renamed (callbacks.py)
        overrides["plugins"] = [AtomicCheckpointIO()]
    return instantiate(
        t,
        **overrides,
        deterministic=bool(spec.config["deterministic"]),
        logger=loggers or False,
        callbacks=cbs,
        default_root_dir=str(run_dir),
    )
