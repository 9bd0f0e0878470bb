"""Fail fast: the whole config is checked before any data is loaded or model built.

Every problem is a ConfigError whose one paragraph names the key, the value and what is
valid. `check_config` is the one entry point (the task calls it first); `check_run_dir` guards
the run folder (never overwrite a finished run, never "resume" nothing).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rankrobust.errors import ConfigError, as_config_error
from rankrobust.results import run_status

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"  # src/rankrobust/pipeline/ -> repo
# Top-level keys that are not config groups (conf/config.yaml) and a few Hydra adds itself.
TOP_LEVEL = {"name", "seed", "rank", "train", "resume", "deterministic", "launcher", "hydra"}
INF = math.inf

# (key, kind, low, high, may be null): every numeric setting and its valid range.
RANGES: tuple[tuple[str, type, float, float, bool], ...] = (
    ("dataset.batch_size", int, 1, INF, False),
    ("dataset.eval_batch_size", int, 1, INF, False),
    ("dataset.n_train", int, 1, INF, True),
    ("dataset.n_test", int, 1, INF, True),
    ("dataset.num_classes", int, 2, INF, False),
    ("dataset.image_size", int, 8, INF, True),
    ("dataset.num_workers", int, 0, INF, False),
    ("optim.lr", float, 1e-12, INF, False),
    ("optim.momentum", float, 0, 1, False),
    ("optim.weight_decay", float, 0, INF, False),
    ("optim.label_smoothing", float, 0, 0.999, False),
    ("eval.n_robust", int, 0, INF, True),
    ("sweep.n_images", int, 1, INF, True),
    ("sweep.n_robust", int, 1, INF, True),
    ("rig.n_images", int, 1, INF, False),
    ("rig.steps_per_rank", int, 1, INF, False),
    ("rig.baseline_steps", int, 1, INF, True),
    ("rig.batch_size", int, 1, INF, False),
    ("rig.seed", int, 0, INF, False),
    ("analysis.n_images", int, 1, INF, False),
    ("analysis.heat_map_eps", float, 1e-12, INF, False),
    ("analysis.heat_map_size", int, 0, INF, False),
    ("analysis.heat_map_n_images", int, 1, INF, False),
    ("seed", int, 0, 2**32 - 1, False),  # what pl.seed_everything accepts
    ("trainer.devices", int, 1, INF, False),
    ("trainer.num_nodes", int, 1, INF, False),
)


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, int | float)


def check_range(key: str, value: Any, kind: type, low: float, high: float, nullable: bool) -> None:
    """Raise ConfigError unless `value` is a `kind` in [low, high] (or None when nullable)."""
    if value is None and nullable:
        return
    what = "an integer" if kind is int else "a number"
    span = f">= {low:g}" if high == INF else f"in [{low:g}, {high:g}]"
    null = " (or null)" if nullable else ""
    if not _is_number(value, kind) or not (low <= value <= high) or value != value:
        raise ConfigError(f"{key}={value!r} is not valid: it must be {what} {span}{null}.")


def _get(cfg: DictConfig, key: str, default: Any = "__missing__") -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_ranges(cfg: DictConfig) -> None:
    for key, kind, low, high, nullable in RANGES:
        value = _get(cfg, key)
        if key == "trainer.devices" and not isinstance(value, int):
            continue  # "auto", a list of device indices
        if value != "__missing__":
            check_range(key, value, kind, low, high, nullable)


def full_rank(cfg: DictConfig) -> int | None:
    """min(H, W) of the images when the config fixes it (dataset.image_size), else None."""
    size = _get(cfg, "dataset.image_size", None)
    return int(size) if isinstance(size, int) else None


def _check_rank(key: str, k: Any, full: int | None) -> None:
    """svd.validate_rank (the one rank rule) where the image size is known; else k >= 1."""
    from rankrobust.svd import validate_rank

    if full is None:
        check_range(key, k, int, 1, INF, False)
    else:
        validate_rank(k, full, name=key, shape=(full, full))


def check_transform(cfg: DictConfig) -> None:
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
    from hydra.utils import instantiate

    try:  # RankTransform checks apply_to and mode itself (one rule)
        instantiate(cfg.transform, _convert_="all")
    except Exception as err:
        raise as_config_error(err) from None


def check_analyses(cfg: DictConfig) -> None:
    """Settings only the post-training analyses read: checked now, not after training."""
    full = full_rank(cfg)
    sweep_on, rig_on = _get(cfg, "sweep.enabled", True), _get(cfg, "rig.enabled", False)
    for k in (_get(cfg, "sweep.ranks", None) if sweep_on else None) or []:
        _check_rank("sweep.ranks", k, full)
    modes = _get(cfg, "sweep.modes", ["low"])
    if not modes or set(modes) - {"low", "high"}:
        raise ConfigError(f"sweep.modes={modes!r} is not valid: use [low], [high] or [low,high].")
    ranks = _get(cfg, "rig.ranks", None) if rig_on else None
    if ranks:
        for k in ranks:
            _check_rank("rig.ranks", k, full)
        if any(b <= a for a, b in zip(ranks, ranks[1:], strict=False)):
            raise ConfigError(f"rig.ranks={ranks} is not valid: the ranks must increase.")
        if full is not None and ranks[-1] != full:
            raise ConfigError(
                f"rig.ranks={ranks} is not valid: the rank path must end at full rank ({full})."
            )
    if _get(cfg, "rig.baseline", "zero") not in ("zero", "mean"):
        raise ConfigError(f"rig.baseline={_get(cfg, 'rig.baseline')!r}: use zero or mean.")


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


def check_attacks(cfg: DictConfig) -> None:
    from rankrobust.attacks import AttackSpec

    for part in ("train", "eval"):
        node = cfg.attack.get(part)
        if node is None:
            continue
        fields = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()}
        fields.pop("_target_", None)
        spec = AttackSpec(**fields)
        spec.validate()
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
        keys = [k for k in node if not str(k).startswith("_")]
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


def check_device(cfg: DictConfig) -> None:
    import torch

    accelerator = _get(cfg, "trainer.accelerator", "auto")
    devices = _get(cfg, "trainer.devices", 1)
    wants_gpu = accelerator in ("gpu", "cuda")
    if (wants_gpu or accelerator == "auto") and not torch.cuda.is_available():
        if Path("/dev/nvidiactl").exists() or os.environ.get("CUDA_VISIBLE_DEVICES"):
            print(
                "[rankrobust] warning: an NVIDIA GPU seems present but torch cannot use it "
                f"(torch {torch.__version__}, CUDA {torch.version.cuda}: the driver may be too "
                "old for this wheel); running on the CPU.",
                file=sys.stderr,
            )
        if wants_gpu:
            raise ConfigError(
                f"trainer.accelerator={accelerator} but no usable CUDA GPU: use trainer=cpu "
                "(or trainer=auto)."
            )
    if torch.cuda.is_available() and accelerator != "cpu" and isinstance(devices, int):
        count = torch.cuda.device_count()
        if devices > count:
            raise ConfigError(
                f"trainer.devices={devices} but this machine has {count} GPU(s): set "
                f"trainer.devices={count} (or run DDP on CPU: trainer.accelerator=cpu)."
            )


def check_dataset(cfg: DictConfig) -> None:
    from rankrobust.data import check_source

    name = _get(cfg, "dataset.name", None)
    check_source(name, _get(cfg, "dataset.root", None))
    size = _get(cfg, "dataset.image_size", None)
    if name == "cifar10" and size not in (None, 32):
        raise ConfigError(
            f"dataset.image_size={size!r}: CIFAR-10 images are 32x32 and dataset=cifar10 does not "
            "resize them. Use dataset=image_folder dataset.root=<the CIFAR-10 copy> "
            "dataset.image_size=k to resize and centre-crop."
        )


def check_checkpoint(cfg: DictConfig) -> None:
    from rankrobust.models.checkpoints import check_checkpoint_path

    if _get(cfg, "model.checkpoint", None):
        check_checkpoint_path(cfg.model.checkpoint)


def check_config(cfg: DictConfig) -> None:
    """Every check above, in order; raises the first ConfigError found."""
    check_top_level(cfg)
    check_targets(cfg)
    check_task_owned(cfg)
    check_ranges(cfg)
    check_dataset(cfg)
    check_transform(cfg)
    check_attacks(cfg)
    check_analyses(cfg)
    check_basis_sweep(cfg)
    check_checkpoint(cfg)
    check_device(cfg)
    if cfg.train and _get(cfg, "trainer.max_epochs", 1) is not None:
        check_range("trainer.max_epochs", cfg.trainer.max_epochs, int, 1, INF, False)


def check_run_dir(run_dir: Path, resume: bool, skip_finished: bool = False) -> bool:
    """A finished run (metrics.json status ok) is never overwritten; resume needs a checkpoint.

    Returns True when the folder holds a finished run that the caller should skip (a multirun
    job rerun to fill in its sweep: `skip_finished`); else raises or returns False.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"  # DDP processes check at once
        probe.write_text("")
        probe.unlink(missing_ok=True)
    except OSError as err:
        raise ConfigError(
            f"The run folder '{run_dir}' cannot be written ({err.strerror}). Choose a writable "
            "folder with hydra.run.dir=... (or hydra.sweep.dir=... for -m)."
        ) from None
    status = run_status(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise ConfigError(
            f"resume=true but '{last}' does not exist: nothing to resume in '{run_dir}'. Check "
            "hydra.run.dir (the folder of the run to continue), or drop resume=true to start "
            "a new run."
        )
    if status == "ok" and not resume and skip_finished:
        return True
    if status == "ok" and not resume:
        raise ConfigError(
            f"'{run_dir}' holds a finished run (metrics.json says ok); it is not overwritten. "
            "Use another folder (leave hydra.run.dir unset for a new one), or resume=true to "
            "continue that run."
        )
    return False
