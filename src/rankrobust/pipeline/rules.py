"""The rules that relate settings of several groups, in one place: the ranks asked for against
the image size (rank, transform.band, sweep.ranks and cutoffs, RIG's rank path), attribution
steps against RIG's segments, train=false needing weights, the data source, the devices, the
model kind of loaded weights, and which analyses a rank-trained run computes.

Each setting's own type and range is its declaration's (pipeline/settings.py), checked before
these. Same contract: a ConfigError whose one paragraph names the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rankrobust.errors import ConfigError
from rankrobust.pipeline.settings import INF, check_range, full_rank, value


def check(cfg: DictConfig) -> None:
    """Every rule below but the devices' (`check_device`, run last), in order."""
    check_dataset(cfg)
    check_transform(cfg)
    check_analysis_ranks(cfg)
    check_attribution(cfg)
    check_basis_sweep(cfg)
    check_checkpoint(cfg)
    check_model_kind(cfg)
    check_speed_options(cfg)


# -- ranks against the image size ----------------------------------------------------------------


def check_rank(key: str, k: Any, full: int | None) -> None:
    """svd.validate_rank (the one rank rule: 1 <= k <= min(H, W)) where the image size is
    known, else an integer >= 1."""
    from rankrobust.svd import validate_rank

    if full is not None:
        validate_rank(k, full, name=key, shape=(full, full))
    else:
        check_range(key, k, int, 1, INF, False)


def check_image_size(spec: Any, H: int, W: int) -> None:
    """The ranks the analyses ask for against the images read (H x W: ranks <= min(H, W)); run
    by the datamodule when it first reads the images, before training. `spec`: a RunSpec."""
    from rankrobust.svd import validate_rank, validate_rank_path

    sweep, rig = spec.sweep, spec.rig
    for k in (sweep.ranks or []) if sweep.enabled else []:
        validate_rank(k, min(H, W), name="sweep.ranks", shape=(H, W))
    if rig.enabled and rig.ranks:
        validate_rank_path(rig.ranks, min(H, W), "rig.ranks")


def check_transform(cfg: DictConfig) -> None:
    """transform.band, and rank against the image size in the transform's basis."""
    full = full_rank(cfg)
    if value(cfg, "transform.mode") == "band":
        from rankrobust.svd import validate_band

        band = value(cfg, "transform.band")
        if not (isinstance(band, list) and len(band) == 2):
            raise ConfigError(
                f"transform.band={band!r} is not valid: transform=band needs "
                f"transform.band=[a,b] with integers 0 <= a < b <= {full or 'min(H, W)'}."
            )
        try:
            validate_band(band[0], band[1], full or 2**31)
        except ConfigError as err:
            raise ConfigError(f"transform.band: {err}") from None
    elif cfg.rank is not None and value(cfg, "transform.basis", "svd") not in (None, "svd"):
        wavelet = value(cfg, "transform.wavelet", "haar")
        check_basis_cutoffs("rank", [cfg.rank], value(cfg, "transform.basis"), full, wavelet)
    elif cfg.rank is not None:
        check_rank("rank", cfg.rank, full)


def check_analysis_ranks(cfg: DictConfig) -> None:
    """sweep.ranks and rig.ranks (RIG's rank path) against the image size where it is known."""
    from rankrobust.svd import validate_rank_path

    full = full_rank(cfg)
    for k in (value(cfg, "sweep.ranks", None) if value(cfg, "sweep.enabled", True) else None) or []:
        check_rank("sweep.ranks", k, full)
    ranks = value(cfg, "rig.ranks", None) if value(cfg, "rig.enabled", False) else None
    if ranks:  # without dataset.image_size the path's end is checked when RIG runs
        end = full or (ranks[-1] if isinstance(ranks, list) else 0)
        validate_rank_path(ranks, end, "rig.ranks")


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
    """sweep.cutoffs.<basis> against the image size (sweep.bases and sweep.wavelet: their
    declarations)."""
    from rankrobust import bases

    cutoffs = value(cfg, "sweep.cutoffs", {}) or {}
    unknown = sorted(set(cutoffs) - set(bases.BASES))
    if unknown:
        raise ConfigError(
            f"sweep.cutoffs.{unknown[0]} is not a basis: use sweep.cutoffs.<basis> for "
            f"{', '.join(bases.BASES)}."
        )
    full, wavelet = full_rank(cfg), value(cfg, "sweep.wavelet", "haar")
    for basis, cuts in cutoffs.items():
        if cuts is not None:
            check_basis_cutoffs(f"sweep.cutoffs.{basis}", cuts, basis, full, wavelet)


def check_attribution(cfg: DictConfig) -> None:
    """A budget (attribution.steps) that covers RIG's rank segments on these images."""
    from rankrobust.attribution.methods import comparison_rig_ranks
    from rankrobust.svd import validate_rank_path

    if not value(cfg, "attribution.enabled", False):
        return
    full, steps = full_rank(cfg), value(cfg, "attribution.steps", 64)
    if full is not None and "rig" in value(cfg, "attribution.methods", ["rig"]):
        ranks = value(cfg, "attribution.rig_ranks", None)
        ranks = list(ranks) if ranks is not None else None
        if ranks is not None:
            validate_rank_path(ranks, full, "attribution.rig_ranks")
        segments = len(ranks or comparison_rig_ranks(full))
        if steps < segments:
            raise ConfigError(
                f"attribution.steps={steps} is not valid: RIG's rank path on {full}x{full} "
                f"images has {segments} segments and every method gets the same number of "
                f"gradient evaluations per image, so use attribution.steps >= {segments}."
            )


# -- data, weights, machine ------------------------------------------------------------------------


def check_dataset(cfg: DictConfig) -> None:
    """The data source (data.check_source) and CIFAR-10's fixed image size."""
    from rankrobust.data import check_source

    name = value(cfg, "dataset.name", None)
    check_source(name, value(cfg, "dataset.root", None))
    size = value(cfg, "dataset.image_size", None)
    if name == "cifar10" and size not in (None, 32):
        raise ConfigError(
            f"dataset.image_size={size!r}: CIFAR-10 images are 32x32 and dataset=cifar10 does not "
            "resize them. Use dataset=image_folder dataset.root=<the CIFAR-10 copy> "
            "dataset.image_size=k to resize and centre-crop."
        )


def check_checkpoint(cfg: DictConfig) -> None:
    """model.checkpoint exists; train=false needs weights to evaluate."""
    from rankrobust.models import RANDOM_WEIGHTS
    from rankrobust.models.checkpoints import check_checkpoint_path

    checkpoint = value(cfg, "model.checkpoint", None)
    if checkpoint and checkpoint != RANDOM_WEIGHTS:
        check_checkpoint_path(cfg.model.checkpoint)
    pretrained = value(cfg, "model.pretrained", None) or value(cfg, "model.weights", None)
    external = value(cfg, "model.name", None) == "robustbench"
    if not cfg.train and not checkpoint and not pretrained and not external:
        raise ConfigError(
            "train=false but model.checkpoint is null: there are no trained weights to evaluate "
            "(the accuracies would be those of random weights). Give model.checkpoint=<a .ckpt "
            "or state dict>, or model.checkpoint=random to evaluate random weights on purpose."
        )


def check_model_kind(cfg: DictConfig) -> None:
    """model.threat ({norm: linf | l2, eps}) describes robust weights (model.kind=robust): what
    identity.model_kind reads."""
    kind, threat = value(cfg, "model.kind", None), value(cfg, "model.threat", None)
    if threat is None:
        return
    fix = "e.g. 'model.threat={norm: linf, eps: 0.0157}' (4/255) or '{norm: l2, eps: 3.0}'"
    if kind != "robust":
        raise ConfigError(
            f"model.threat={threat} is given but model.kind={kind}: a threat model describes a "
            "robust model. Set model.kind=robust, or model.threat=null."
        )
    if not isinstance(threat, dict) or str(threat.get("norm")).lower() not in ("linf", "l2"):
        raise ConfigError(f"model.threat={threat}: norm must be linf or l2; {fix}.")


def check_speed_options(cfg: DictConfig) -> None:
    """module.compile (false, true or a torch.compile backend this torch has) and a note for a
    tiny dataset.eval_batch_size."""
    from rankrobust.pipeline.lightning_module import compile_backend

    try:
        compile_backend(value(cfg, "module.compile", False))
    except ValueError as err:
        raise ConfigError(f"module.{err}") from None
    _note_small_eval_batches(value(cfg, "dataset.eval_batch_size", None))


# Below this many test images per batch the evaluation (attacks, sweeps) runs several times
# slower than it need be (eval_batch_size=1 measured about 5x slower than the default).
SLOW_EVAL_BATCH = 8


def _note_small_eval_batches(size) -> None:
    """A note (not an error: it is valid, only slow) for a tiny dataset.eval_batch_size."""
    if isinstance(size, int) and not isinstance(size, bool) and 1 <= size < SLOW_EVAL_BATCH:
        logging.getLogger("rankrobust").warning(
            "[rankrobust] dataset.eval_batch_size=%d: testing, attacks and sweeps run one "
            "small batch at a time, which is slow (about 5x slower at 1); a larger "
            "value (e.g. 500, the default) runs faster if memory allows.",
            size,
        )


def check_device(cfg: DictConfig) -> None:
    """trainer.accelerator / trainer.devices against the GPUs torch can use here."""
    import torch

    accelerator = value(cfg, "trainer.accelerator", "auto")
    devices = value(cfg, "trainer.devices", 1)
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


# -- what a rank-trained run computes ------------------------------------------------------------
# A rank-trained run (rank=k with the transform applied to the training images) feeds one figure
# and one claim: fig-train-rank and C4 read its clean and robust test accuracy, nothing else
# (reporting/claims grouping.train_rank_groups). Its rank sweep, perturbation spectrum, RIG and
# attribution maps are read by no figure and no report, yet cost about 40% of such a run on a
# CPU. With analysis.for_rank_trained=figures (the default) they are switched off in the run's
# spec; analysis.for_rank_trained=all keeps every analysis the config enables.

# spec field -> (its "on" flag, the analysis' name)
_ANALYSES = (
    ("sweep", "enabled", "rank sweep"),
    ("analysis", "perturbation_spectrum", "perturbation spectrum"),
    ("rig", "enabled", "RIG"),
    ("attribution", "enabled", "attribution maps"),
)
TURN_ON = "analysis.for_rank_trained=all"


def is_rank_trained(rank: Any, transform_apply_to: Any, train: bool) -> bool:
    """True for a run that trains on rank-transformed images (rank=k, "train" in apply_to)."""
    apply_to = (transform_apply_to,) if isinstance(transform_apply_to, str) else transform_apply_to
    return bool(train) and rank is not None and "train" in tuple(apply_to or ())


def scope_analyses(settings: dict[str, Any], rank_trained: bool) -> tuple[dict[str, Any], list]:
    """Apply the rule to the built analysis settings ({"sweep": SweepSettings, "analysis":
    SpectrumSettings, "rig": ..., "attribution": ...}): returns the settings to run and the
    names of the analyses switched off (empty unless a rank-trained run has for_rank_trained
    = figures). The settings objects given are not changed (copies replace them)."""
    if not rank_trained or settings["analysis"].for_rank_trained == "all":
        return settings, []
    out, skipped = dict(settings), []
    for key, flag, name in _ANALYSES:
        if getattr(out[key], flag, False):
            out[key] = dataclasses.replace(out[key], **{flag: False})
            skipped.append(name)
    return out, skipped


def skipped_line(skipped: list[str]) -> str | None:
    """The closing line that says what a rank-trained run skipped and how to turn it on."""
    if not skipped:
        return None
    return (
        f"  skipped (rank-trained run; no figure reads them): {', '.join(skipped)}; "
        f"compute them with {TURN_ON}"
    )
