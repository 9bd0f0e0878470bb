"""Fail fast: the whole config is checked before any data is loaded or model built.

`check_config` is the one entry point (the task calls it first): the config's shape (known
top-level keys, keys the task owns, each `_target_` taking every key its node gives), each
setting against its declaration (pipeline/settings.py), the rules between groups
(pipeline/rules.py), then the typed `RunSpec` everything is built from, built once. Every
problem is a ConfigError whose one paragraph names the key, the value and what is valid;
run_folder.py guards the run folder.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rankrobust.attacks import AttackSpec
from rankrobust.errors import ConfigError, as_config_error
from rankrobust.pipeline import (
    resolvers,  # noqa: F401  (registers ${rr_*:...}: the config resolves)
    rules,
    settings,
)
from rankrobust.pipeline.spec import NOT_ARGUMENTS, RunSpec
from rankrobust.pipeline.threat_checks import eval_attack_for_model

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"  # src/rankrobust/pipeline/ -> repo
# Top-level keys that are not config groups (conf/config.yaml) and a few Hydra adds itself.
# zoo: the zoo entry a job evaluates (rankrobust.launch.zoo writes it; metrics.json "zoo").
TOP_LEVEL = {"name", "seed", "rank", "train", "resume", "deterministic", "launcher", "hydra", "zoo"}


def _build(node: DictConfig) -> Any:
    """instantiate(node) with its errors as one ConfigError paragraph."""
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except Exception as err:
        raise as_config_error(err) from None


# What to set instead of a zero budget (AttackSpec.validate refuses eps=0 for a real attack).
NO_ATTACK = {
    "train": " For a natural run use attack=none (no training attack).",
    "eval": " To skip robust accuracy set eval.n_robust=0 (or attack.eval=null).",
}


def _is_zero_budget(node: DictConfig) -> bool:
    return node.get("name") not in (None, "none") and node.get("eps") == 0


def _keyed(prefix: str, message: str, node: DictConfig) -> str:
    """'attack.train.eps=0: ...' for a message that starts with a field ('eps=0: ...' or
    'steps must be ...': the field and its value named), else 'attack.train: <message>'."""
    field = re.split(r"[= ]", message, maxsplit=1)[0]
    if field.isidentifier() and message.startswith(f"{field}="):
        return f"{prefix}.{message}"
    if field.isidentifier() and field in node:
        return f"{prefix}.{field}={node.get(field)}: {message}"
    return f"{prefix}: {message}"


def check_attacks(cfg: DictConfig) -> dict[str, AttackSpec | None]:
    """attack.train and attack.eval as validated AttackSpecs (None when null), built once."""
    specs: dict[str, AttackSpec | None] = {"train": None, "eval": None}
    for part in ("train", "eval"):
        node = cfg.attack.get(part)
        if node is None:
            continue
        try:
            spec = specs[part] = _build(node).validate()
        except ConfigError as err:  # name the key: attack.train.eps=..., else attack.train: ...
            raise ConfigError(
                _keyed(f"attack.{part}", str(err), node)
                + NO_ATTACK.get(part if _is_zero_budget(node) else "", "")
            ) from None
        norm = spec.norm or ("L2" if spec.name == "pgd_l2" else "Linf")
        if norm == "Linf" and spec.name != "none" and spec.eps > 1:
            raise ConfigError(
                f"attack.{part}.eps={spec.eps!r} is not valid: pixels are in [0, 1], so an Linf "
                "budget must be in [0, 1] (8/255 = 0.0314 is usual)."
            )
        if part == "train" and spec.name == "autoattack" and cfg.train:
            raise ConfigError(
                "attack.train.name=autoattack: AutoAttack is for evaluation only. Train with "
                "pgd_linf, pgd_l2 or fgsm_rs (attack=...), and evaluate with attack=autoattack."
            )
    return specs


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every config node with a `_target_`, with its dotted path."""
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for key in node:
            if key != "hydra":
                yield from _targets(node._get_node(key), f"{path}.{key}" if path else str(key))


def check_targets(cfg: DictConfig) -> None:
    """Each `_target_` exists and takes every key its node gives (no option silently dropped)."""
    from hydra.utils import get_object

    for path, node in _targets(cfg):
        try:
            target: Callable = get_object(node._target_)
        except Exception as err:
            raise ConfigError(
                f"{path}._target_={node._target_!r} cannot be imported ({err})."
            ) from None
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        skip = NOT_ARGUMENTS.get(path, ())
        keys = [k for k in node if not str(k).startswith("_") and k not in skip]
        unknown = sorted(set(keys) - set(params))
        if unknown:
            accepted = ", ".join(p for p in params if p != "self")
            raise ConfigError(
                f"{path}.{unknown[0]} is not an option of {node._target_} (unknown key"
                f"{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}). It takes: "
                f"{accepted}."
            )


# Arguments the task passes itself: set in the config, they would be silently replaced.
TASK_OWNED = {
    "dataset": {"transform": "transform=... / transform.*", "seed": "seed", "apply_to":
                "transform.apply_to"},
    "module": {"model": "model=... / model.*", "train_attack": "attack.train.*",
               "eval_attack": "attack.eval.*", "n_robust": "eval.n_robust",
               "eval_precision": "eval.precision"},
    "trainer": {"deterministic": "deterministic", "logger": "logger=...",
                "callbacks": "callbacks.*", "default_root_dir": "hydra.run.dir"},
}  # fmt: skip


def check_task_owned(cfg: DictConfig) -> None:
    """Keys the task sets itself, and optim.* (RobustClassifier's optimiser arguments)."""
    from rankrobust.pipeline.lightning_module import RobustClassifier

    owned = dict(TASK_OWNED)
    optim = [k for k in (cfg.get("optim") or {})]
    owned["module"] = {**owned["module"], **{k: f"optim.{k}" for k in optim}}
    for group, keys in owned.items():
        for key in cfg.get(group) or {}:
            if key in keys:
                raise ConfigError(
                    f"{group}.{key} is set by rankrobust itself: set {keys[key]} instead."
                )
    params = inspect.signature(RobustClassifier).parameters
    unknown = sorted(k for k in optim if k not in params or k in TASK_OWNED["module"])
    if unknown:
        raise ConfigError(
            f"optim.{unknown[0]} is not an optimiser setting (it takes: lr, momentum, "
            "weight_decay, nesterov, schedule, label_smoothing)."
        )


def check_top_level(cfg: DictConfig) -> None:
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} if CONF_DIR.is_dir() else set()
    allowed = TOP_LEVEL | groups
    unknown = sorted(k for k in cfg if k not in allowed)
    if groups and unknown:
        raise ConfigError(
            f"{unknown[0]} is not a setting of rankrobust (unknown top-level key"
            f"{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}). Top-level settings: "
            f"{', '.join(sorted(TOP_LEVEL - {'hydra'}))}; groups: {', '.join(sorted(groups))}."
        )


def check_config(cfg: DictConfig) -> RunSpec:
    """Every check, in order; raises the first ConfigError found, else the typed spec that
    build.py and the task use (the config is resolved and snapshotted here, once)."""
    check_top_level(cfg)
    check_task_owned(cfg)
    check_targets(cfg)
    settings.validate(cfg)
    rules.check(cfg)
    transform = _build(cfg.transform)
    attacks = check_attacks(cfg)
    attacks["eval"] = eval_attack_for_model(cfg, attacks["eval"])
    built = {key: _build(cfg[key]) for key in settings.BUILT}
    apply_to = settings.value(cfg, "transform.apply_to", None)
    built, skipped = rules.scope_analyses(
        built, rules.is_rank_trained(cfg.rank, apply_to, cfg.train)
    )
    rules.check_device(cfg)
    return RunSpec(
        config=OmegaConf.to_container(cfg, resolve=True),
        seed=int(cfg.seed),
        train=bool(cfg.train),
        resume=bool(cfg.resume),
        transform=transform,
        train_attack=attacks["train"],
        eval_attack=attacks["eval"],
        **built,
        skipped=tuple(skipped),
    )
