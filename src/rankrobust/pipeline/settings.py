"""Each setting's type and range (or allowed values), stated once, and the one validator.

A group's settings are one typed declaration whose fields carry their rule
(`setting(default, low=, high=, choices=, nullable=)`): the analysis settings (eval, sweep,
rig, analysis, attribution) are the dataclasses their yaml builds (`_target_`), so their
fields hold the default too; the groups that build another class through `_target_` (dataset,
model, module, optim, trainer, transform, callbacks) keep their defaults in their yaml and
declare here only the rule of each numeric or enumerated field. `validate(cfg)` walks every
declaration and raises the first ConfigError (exit 2) naming the key, the value and what is
valid. Rules that relate settings of several groups live in pipeline/rules.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rankrobust import bases
from rankrobust.data.folder import TEST_SPLITS
from rankrobust.errors import ConfigError

INF = math.inf
CHANNELS_LAST = (True, False, "auto")
EVAL_PRECISIONS = ("32-true", "32", "trainer")  # float32, float32, the training precision
SCHEDULES = ("onecycle", "cosine", "none")
FOR_RANK_TRAINED = ("figures", "all")  # the rule for rank-trained runs: pipeline/rules.py


@dataclass(frozen=True)
class Rule:
    """What a setting may hold: a `kind` number in [low, high] (an end open where `low_open` /
    `high_open`), or one of `choices`; a list of them (`each`, non-empty unless `empty`);
    None where `nullable`; `also`: other values accepted as they are (e.g. "auto"); `passes`:
    values of these types left to the class that takes them (trainer.devices="0,1" or [0, 1]).
    `hint`: a sentence that ends the message (an example, what the setting means)."""

    kind: type | None = None
    low: float = -INF
    high: float = INF
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    each: bool = False
    empty: bool = False
    nullable: bool = False
    also: tuple = ()
    passes: tuple[type, ...] = ()
    hint: str = ""


def setting(default: Any = MISSING, **rule: Any) -> Any:
    """A dataclass field with its rule (`Rule`'s arguments) in its metadata. A list default is
    copied for each object; no default: a declaration only (the yaml holds the default)."""
    meta = {"rule": Rule(**rule)}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def rules_of(declaration: type) -> dict[str, Rule]:
    """{field name: Rule} of a declaration (a dataclass); {} for any other class."""
    if not dataclasses.is_dataclass(declaration):
        return {}
    fields = dataclasses.fields(declaration)
    return {f.name: f.metadata["rule"] for f in fields if "rule" in f.metadata}


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, int | float)


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


def check_range(key: str, value: Any, kind: type, low: float, high: float, nullable: bool) -> None:
    """Raise ConfigError unless `value` is a `kind` in [low, high] (or None when nullable)."""
    check(key, value, Rule(kind=kind, low=low, high=high, nullable=nullable))


def check_choice(key: str, value: Any, choices: tuple) -> None:
    """Raise ConfigError unless value is one of choices (booleans compared as booleans)."""
    check(key, value, Rule(choices=choices))


def _in_choices(value: Any, choices: tuple) -> bool:
    return any(value is c or (type(value) is type(c) and value == c) for c in choices)


def check(key: str, value: Any, rule: Rule) -> None:
    """Raise ConfigError (key, value, what is valid) unless `value` follows `rule`."""
    if (value is None and rule.nullable) or _in_choices(value, rule.also):
        return
    if rule.passes and isinstance(value, rule.passes):
        return
    null = " (or null)" if rule.nullable else ""
    hint = f" {rule.hint}" if rule.hint else ""
    if rule.each:
        shown = ", ".join(_shown(c) for c in rule.choices)
        some = "a list" if rule.empty else "a non-empty list"
        if (
            not isinstance(value, list | tuple)
            or (not value and not rule.empty)
            or not all(_in_choices(v, rule.choices) for v in value)
        ):
            raise ConfigError(f"{key}={value!r} is not valid: use {some} of {shown}{null}.{hint}")
        return
    if rule.choices:
        if not _in_choices(value, rule.choices):
            shown = ", ".join(_shown(c) for c in (*rule.choices, *rule.also))
            raise ConfigError(f"{key}={value!r} is not valid: use one of {shown}{null}.{hint}")
        return
    kind = rule.kind or float
    what = "an integer" if kind is int else "a finite number"
    if rule.high == INF:
        span = f"> {rule.low:g}" if rule.low_open else f">= {rule.low:g}"
    else:
        left, right = "(" if rule.low_open else "[", ")" if rule.high_open else "]"
        span = f"in {left}{rule.low:g}, {rule.high:g}{right}"
    # NaN and inf are never valid (inf passed `low <= value <= INF`: optim.lr=inf trained to NaN)
    inside = _is_number(value, kind) and math.isfinite(value)
    if inside:
        above = value > rule.low if rule.low_open else value >= rule.low
        below = value < rule.high if rule.high_open else value <= rule.high
        inside = above and below
    if not inside:
        raise ConfigError(f"{key}={value!r} is not valid: it must be {what} {span}{null}.{hint}")


# -- the groups that build another class (their defaults: conf/<group>/*.yaml) ------------------


@dataclass(frozen=True)
class TopLevel:
    """conf/config.yaml's own settings (rank: its range is the image size's, rules.py)."""

    seed: int = setting(kind=int, low=0, high=2**32 - 1)  # what pl.seed_everything accepts


@dataclass(frozen=True)
class DatasetSettings:
    """dataset.* (pipeline.datamodule.ImageDataModule)."""

    batch_size: int = setting(kind=int, low=1)
    eval_batch_size: int = setting(kind=int, low=1)
    n_train: int = setting(kind=int, low=1, nullable=True)
    n_test: int = setting(kind=int, low=1, nullable=True)
    num_classes: int = setting(kind=int, low=2)
    image_size: int = setting(kind=int, low=8, nullable=True)
    num_workers: int = setting(kind=int, low=0, nullable=True)  # null: the cores (at most 8)
    augment_brightness: float = setting(kind=float, low=0)
    augment_contrast: float = setting(kind=float, low=0, high=1)  # above 1 inverts some images
    test_split: str = setting(choices=TEST_SPLITS)


@dataclass(frozen=True)
class ModelSettings:
    """model.* (the model kind and threat model of loaded weights: rules.py)."""

    width: int = setting(kind=int, low=1, nullable=True)  # 0 channels cannot train
    kind: str = setting(
        choices=("natural", "robust", "unknown"),
        nullable=True,
        hint="It says what the loaded weights are (trained runs take it from attack=...).",
    )


@dataclass(frozen=True)
class ThreatSettings:
    """model.threat.*: the threat model of robust weights (its norm: rules.py)."""

    eps: float = setting(kind=float, low=0, nullable=True)


@dataclass(frozen=True)
class ModuleSettings:
    """module.* (pipeline.lightning_module.RobustClassifier; module.compile: rules.py)."""

    channels_last: bool | str = setting(choices=CHANNELS_LAST)


@dataclass(frozen=True)
class OptimSettings:
    """optim.* (RobustClassifier's optimiser arguments)."""

    lr: float = setting(kind=float, low=1e-12)
    momentum: float = setting(kind=float, low=0, high=1)
    weight_decay: float = setting(kind=float, low=0)
    label_smoothing: float = setting(kind=float, low=0, high=0.999)
    schedule: str = setting(choices=SCHEDULES)


@dataclass(frozen=True)
class TrainerSettings:
    """trainer.* (pytorch_lightning.Trainer; the devices this machine has: rules.py)."""

    max_epochs: int = setting(kind=int, low=1, nullable=True)
    devices: int = setting(
        kind=int, low=1, passes=(str, list), hint="Also valid: auto, or GPU indices."
    )
    num_nodes: int = setting(kind=int, low=1)


@dataclass(frozen=True)
class TransformSettings:
    """transform.* (rankrobust.bases.BasisTransform; the band and rank: rules.py)."""

    mode: str = setting(choices=("low", "high", "band"))
    basis: str = setting(choices=tuple(bases.BASES), nullable=True)
    wavelet: str = setting(choices=tuple(bases.WAVELETS))


@dataclass(frozen=True)
class LastCheckpointSettings:
    """callbacks.last_checkpoint.* (pipeline.callbacks.LastCheckpoint)."""

    every_minutes: float = setting(kind=float, low=0)  # 0 = every epoch


@dataclass(frozen=True)
class ProgressSettings:
    """callbacks.progress.* (pipeline.callbacks.LineProgress)."""

    every: float = setting(kind=float, low=0, high=1, low_open=True)  # a fraction of an epoch


# config key -> its declaration, for the groups whose `_target_` is not a declaration itself
DECLARED: dict[str, type] = {
    "": TopLevel,
    "dataset": DatasetSettings,
    "model": ModelSettings,
    "model.threat": ThreatSettings,
    "module": ModuleSettings,
    "optim": OptimSettings,
    "trainer": TrainerSettings,
    "transform": TransformSettings,
    "callbacks.last_checkpoint": LastCheckpointSettings,
    "callbacks.progress": ProgressSettings,
}
# the groups whose yaml builds their declaration (`_target_`: pipeline/analyses.py, explain.py)
BUILT = ("eval", "sweep", "rig", "analysis", "attribution")


def value(cfg: DictConfig, key: str, default: Any = "__missing__") -> Any:
    """The config's value at a dotted key, as plain Python (lists and dicts, not nodes)."""
    found = OmegaConf.select(cfg, key, default=default)
    return OmegaConf.to_container(found) if OmegaConf.is_config(found) else found


def declarations(cfg: DictConfig) -> dict[str, type]:
    """{config key: its declaration} for this config: DECLARED, and each of BUILT's `_target_`."""
    from hydra.utils import get_object

    found = dict(DECLARED)
    for key in BUILT:
        target = value(cfg, f"{key}._target_", None)
        if target is not None:
            found[key] = get_object(target)
    return found


def validate(cfg: DictConfig) -> None:
    """Every declared setting the config holds against its rule: the first ConfigError."""
    for prefix, declaration in declarations(cfg).items():
        node = cfg if not prefix else OmegaConf.select(cfg, prefix, default=None)
        if not OmegaConf.is_dict(node):
            continue
        for name, rule in rules_of(declaration).items():
            if name in node:
                check(f"{prefix}.{name}" if prefix else name, value(node, name), rule)


def full_rank(cfg: DictConfig) -> int | None:
    """min(H, W) of the images when the config fixes it (dataset.image_size), else None."""
    size = value(cfg, "dataset.image_size", None)
    return int(size) if isinstance(size, int) else None
