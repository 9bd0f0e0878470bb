"""Fail fast: the whole config is checked before any data is loaded or model built.

Every problem is a ConfigError whose one paragraph names the key, the value and what is
valid. `check_config` is the one entry point (the task calls it first) and returns the typed
`RunSpec` everything is built from; run_folder.py guards the run folder.
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
from rankrobust.pipeline import resolvers  # noqa: F401  (registers ${rr_*:...}: the config resolves)
from rankrobust.pipeline.config_values import INF, _get, check_choice, check_range, full_rank
from rankrobust.pipeline.group_checks import (
    check_attribution,
    check_checkpoint,
    check_dataset,
    check_device,
    check_model_kind,
    check_speed_options,
)
from rankrobust.pipeline.scope import is_rank_trained, scope_analyses
from rankrobust.pipeline.spec import NOT_ARGUMENTS, RunSpec
from rankrobust.pipeline.threat_checks import eval_attack_for_model
from rankrobust.svd import RankTransform

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"  # src/rankrobust/pipeline/ -> repo
# Top-level keys that are not config groups (conf/config.yaml) and a few Hydra adds itself.
# zoo: the zoo entry a job evaluates (rankrobust.launch.zoo writes it; metrics.json "zoo").
TOP_LEVEL = {"name", "seed", "rank", "train", "resume", "deterministic", "launcher", "hydra", "zoo"}

# (key, kind, low, high, may be null): every numeric setting and its valid range.
RANGES: tuple[tuple[str, type, float, float, bool], ...] = (
    ("dataset.batch_size", int, 1, INF, False),
    ("dataset.eval_batch_size", int, 1, INF, False),
    ("dataset.n_train", int, 1, INF, True),
    ("dataset.n_test", int, 1, INF, True),
    ("dataset.num_classes", int, 2, INF, False),
    ("dataset.image_size", int, 8, INF, True),
    ("dataset.num_workers", int, 0, INF, True),  # null: the machine's cores (at most 8)
    ("dataset.augment_brightness", float, 0, INF, False),
    ("dataset.augment_contrast", float, 0, 1, False),  # above 1 would invert some images
    ("model.width", int, 1, INF, True),  # small_cnn's first layer: 0 channels cannot train
    ("optim.lr", float, 1e-12, INF, False),
    ("optim.momentum", float, 0, 1, False),
    ("optim.weight_decay", float, 0, INF, False),
    ("optim.label_smoothing", float, 0, 0.999, False),
    ("eval.n_robust", int, 0, INF, True),
    ("sweep.n_images", int, 1, INF, True),
    ("sweep.n_robust", int, 1, INF, True),
    ("sweep.basis_n_images", int, 1, INF, True),
    ("rig.n_images", int, 1, INF, False),
    ("rig.steps_per_rank", int, 1, INF, False),
    ("rig.baseline_steps", int, 1, INF, True),
    ("rig.batch_size", int, 1, INF, False),
    ("rig.seed", int, 0, INF, False),
    ("analysis.n_images", int, 1, INF, False),
    ("attribution.n_images", int, 1, INF, False),
    ("attribution.steps", int, 1, INF, False),
    ("attribution.overlap", float, 0, 0.999999, False),
    ("attribution.mprt_layers", int, 1, INF, True),
    ("attribution.batch_size", int, 1, INF, False),
    ("attribution.seed", int, 0, INF, False),
    ("analysis.heat_map_eps", float, 1e-12, INF, False),
    ("analysis.heat_map_size", int, 0, INF, False),
    ("analysis.heat_map_n_images", int, 1, INF, False),
    ("seed", int, 0, 2**32 - 1, False),  # what pl.seed_everything accepts
    ("trainer.devices", int, 1, INF, False),
    ("trainer.num_nodes", int, 1, INF, False),
)


def check_ranges(cfg: DictConfig) -> None:
    for key, kind, low, high, nullable in RANGES:
        value = _get(cfg, key)
        if key == "trainer.devices" and not isinstance(value, int):
            continue  # "auto", a list of device indices
        if value != "__missing__":
            check_range(key, value, kind, low, high, nullable)


def _check_rank(key: str, k: Any, full: int | None) -> None:
    """svd.validate_rank (the one rank rule) where the image size is known; else k >= 1."""
    from rankrobust.svd import validate_rank

    if full is None:
        check_range(key, k, int, 1, INF, False)
    else:
        validate_rank(k, full, name=key, shape=(full, full))


def check_image_size(spec: Any, H: int, W: int) -> None:
    """The ranks the analyses ask for against the images read (H x W: ranks <= min(H, W)); run
    by the datamodule when it first reads the images, before training. `spec`: a RunSpec."""
    from rankrobust.svd import validate_rank, validate_rank_path

    sweep, rig = spec.sweep, spec.rig
    for k in (sweep.ranks or []) if sweep.enabled else []:
        validate_rank(k, min(H, W), name="sweep.ranks", shape=(H, W))
    if rig.enabled and rig.ranks:
        validate_rank_path(rig.ranks, min(H, W), "rig.ranks")


def check_transform(cfg: DictConfig) -> RankTransform:
    """The rank transform, built once (RankTransform checks mode and apply_to itself)."""
    full = full_rank(cfg)
    mode = _get(cfg, "transform.mode")
    if mode not in ("low", "high", "band"):
        raise ConfigError(f"transform.mode={mode!r} is not valid: use low, high or band.")
    if mode == "band":
        from rankrobust.svd import validate_band

        band = _get(cfg, "transform.band")
        if not (isinstance(band, list) and len(band) == 2):
            raise ConfigError(
                f"transform.band={band!r} is not valid: transform=band needs "
                f"transform.band=[a,b] with integers 0 <= a < b <= {full or 'min(H, W)'}."
            )
        try:
            validate_band(band[0], band[1], full or 2**31)
        except ConfigError as err:
            raise ConfigError(f"transform.band: {err}") from None
    elif cfg.rank is not None and _get(cfg, "transform.basis", "svd") not in (None, "svd"):
        check_basis_cutoffs(
            "rank",
            [cfg.rank],
            _get(cfg, "transform.basis"),
            full,
            _get(cfg, "transform.wavelet", "haar"),
        )
    elif cfg.rank is not None:
        _check_rank("rank", cfg.rank, full)
    return _build(cfg.transform)


def _build(node: DictConfig) -> Any:
    """instantiate(node) with its errors as one ConfigError paragraph."""
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except Exception as err:
        raise as_config_error(err) from None


def check_analyses(cfg: DictConfig) -> dict[str, Any]:
    """Settings only the evaluation and the post-training analyses read, checked now (not after
    training) and built once: {"eval", "sweep", "rig", "analysis", "attribution"} -> their
    settings objects."""
    from rankrobust.pipeline.lightning_module import EVAL_PRECISIONS
    from rankrobust.svd import validate_rank_path

    check_choice("eval.precision", _get(cfg, "eval.precision", "32-true"), EVAL_PRECISIONS)
    full = full_rank(cfg)
    sweep_on, rig_on = _get(cfg, "sweep.enabled", True), _get(cfg, "rig.enabled", False)
    for k in (_get(cfg, "sweep.ranks", None) if sweep_on else None) or []:
        _check_rank("sweep.ranks", k, full)
    modes = _get(cfg, "sweep.modes", ["low"])
    if not modes or set(modes) - {"low", "high"}:
        raise ConfigError(f"sweep.modes={modes!r} is not valid: use [low], [high] or [low,high].")
    ranks = _get(cfg, "rig.ranks", None) if rig_on else None
    if ranks:  # without dataset.image_size the path's end is checked when RIG runs
        end = full or (ranks[-1] if isinstance(ranks, list) else 0)
        validate_rank_path(ranks, end, "rig.ranks")
    if _get(cfg, "rig.baseline", "zero") not in ("zero", "mean"):
        raise ConfigError(f"rig.baseline={_get(cfg, 'rig.baseline')!r}: use zero or mean.")
    return {key: _build(cfg[key]) for key in ("eval", "sweep", "rig", "analysis", "attribution")}


def check_basis_cutoffs(key: str, cutoffs: Any, basis: Any, full: int | None, wavelet: Any) -> None:
    """Each cutoff against bases.validate_cutoff (the one rule) where the image size is known;
    else an integer >= 0."""
    from rankrobust import bases

    if basis not in bases.BASES:
        raise ConfigError(f"{key}: basis {basis!r} is not valid: use {', '.join(bases.BASES)}.")
    if basis == "wavelet" and wavelet not in bases.WAVELETS:
        raise ConfigError(
            f"wavelet={wavelet!r} is not valid: use one of {', '.join(bases.WAVELETS)}."
        )
    if not isinstance(cutoffs, list) or not cutoffs:
        raise ConfigError(f"{key}={cutoffs!r} is not valid: give a non-empty list of cutoffs.")
    for k in cutoffs:
        if full is None:
            check_range(key, k, int, 0 if basis != "svd" else 1, INF, False)
        else:
            bases.validate_cutoff(k, basis, full, full, wavelet, name=key)


def check_basis_sweep(cfg: DictConfig) -> None:
    """sweep.bases, sweep.cutoffs.<basis> and sweep.wavelet (rankrobust.bases)."""
    from rankrobust import bases

    chosen = _get(cfg, "sweep.bases", [])
    wavelet = _get(cfg, "sweep.wavelet", "haar")
    if not isinstance(chosen, list) or set(chosen) - set(bases.BASES):
        raise ConfigError(
            f"sweep.bases={chosen!r} is not valid: use a list of {', '.join(bases.BASES)} "
            "(e.g. sweep.bases=[svd,fourier]; [] = off)."
        )
    if wavelet not in bases.WAVELETS:
        raise ConfigError(
            f"sweep.wavelet={wavelet!r} is not valid: use one of {', '.join(bases.WAVELETS)}."
        )
    cutoffs = _get(cfg, "sweep.cutoffs", {}) or {}
    unknown = sorted(set(cutoffs) - set(bases.BASES))
    if unknown:
        raise ConfigError(
            f"sweep.cutoffs.{unknown[0]} is not a basis: use sweep.cutoffs.<basis> for "
            f"{', '.join(bases.BASES)}."
        )
    full = full_rank(cfg)
    for basis, cuts in cutoffs.items():
        if cuts is not None:
            check_basis_cutoffs(f"sweep.cutoffs.{basis}", cuts, basis, full, wavelet)


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
SCHEDULES = ("onecycle", "cosine", "none")


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
    from rankrobust.pipeline.lightning_module import CHANNELS_LAST

    check_choice("module.channels_last", _get(cfg, "module.channels_last", False), CHANNELS_LAST)
    schedule = _get(cfg, "optim.schedule", "onecycle")
    if schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule={schedule!r} is not valid: use {', '.join(SCHEDULES)}.")


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
    """Every check above, in order; raises the first ConfigError found, else the typed spec that
    build.py and the task use (the config is resolved and snapshotted here, once)."""
    check_top_level(cfg)
    check_task_owned(cfg)
    check_targets(cfg)
    check_ranges(cfg)
    check_dataset(cfg)
    transform = check_transform(cfg)
    attacks = check_attacks(cfg)
    check_model_kind(cfg)
    attacks["eval"] = eval_attack_for_model(cfg, attacks["eval"])
    settings = check_analyses(cfg)
    rank_trained = is_rank_trained(cfg.rank, _get(cfg, "transform.apply_to", None), cfg.train)
    settings, skipped = scope_analyses(settings, rank_trained)
    check_attribution(cfg)
    check_basis_sweep(cfg)
    check_checkpoint(cfg)
    check_speed_options(cfg)
    check_device(cfg)
    if cfg.train and _get(cfg, "trainer.max_epochs", 1) is not None:
        check_range("trainer.max_epochs", cfg.trainer.max_epochs, int, 1, INF, False)
    return RunSpec(
        config=OmegaConf.to_container(cfg, resolve=True),
        seed=int(cfg.seed),
        train=bool(cfg.train),
        resume=bool(cfg.resume),
        transform=transform,
        train_attack=attacks["train"],
        eval_attack=attacks["eval"],
        **settings,
        skipped=tuple(skipped),
    )
