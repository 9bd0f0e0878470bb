"""The checks of one config group each (data source, device, checkpoint, model kind,
attribution, speed options), called by `checks.check_config`. Same contract: a ConfigError
whose one paragraph names the key, the value and the fix, before anything is built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from rankrobust.errors import ConfigError
from rankrobust.pipeline.config_values import INF, _get, check_choice, check_range, full_rank


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
    from rankrobust.data.folder import TEST_SPLITS

    name = _get(cfg, "dataset.name", None)
    check_choice("dataset.test_split", _get(cfg, "dataset.test_split", "auto"), TEST_SPLITS)
    check_source(name, _get(cfg, "dataset.root", None))
    size = _get(cfg, "dataset.image_size", None)
    if name == "cifar10" and size not in (None, 32):
        raise ConfigError(
            f"dataset.image_size={size!r}: CIFAR-10 images are 32x32 and dataset=cifar10 does not "
            "resize them. Use dataset=image_folder dataset.root=<the CIFAR-10 copy> "
            "dataset.image_size=k to resize and centre-crop."
        )


def check_checkpoint(cfg: DictConfig) -> None:
    from rankrobust.models import RANDOM_WEIGHTS
    from rankrobust.models.checkpoints import check_checkpoint_path

    checkpoint = _get(cfg, "model.checkpoint", None)
    if checkpoint and checkpoint != RANDOM_WEIGHTS:
        check_checkpoint_path(cfg.model.checkpoint)
    pretrained = _get(cfg, "model.pretrained", None) or _get(cfg, "model.weights", None)
    external = _get(cfg, "model.name", None) == "robustbench"
    if not cfg.train and not checkpoint and not pretrained and not external:
        raise ConfigError(
            "train=false but model.checkpoint is null: there are no trained weights to evaluate "
            "(the accuracies would be those of random weights). Give model.checkpoint=<a .ckpt "
            "or state dict>, or model.checkpoint=random to evaluate random weights on purpose."
        )


def check_attribution(cfg: DictConfig) -> None:
    """attribution.methods / metrics / score, and a budget that covers RIG's rank segments."""
    from rankrobust.attribution import METHODS, SUPPORTED_SCORES
    from rankrobust.attribution.methods import METRICS, comparison_rig_ranks
    from rankrobust.svd import validate_rank_path

    if not _get(cfg, "attribution.enabled", False):
        return
    for key, valid in (("methods", METHODS), ("metrics", METRICS)):
        chosen = _get(cfg, f"attribution.{key}", list(valid))
        if not isinstance(chosen, list) or not chosen or set(chosen) - set(valid):
            raise ConfigError(
                f"attribution.{key}={chosen!r} is not valid: use a non-empty list of "
                f"{', '.join(valid)} (e.g. attribution.{key}=[{','.join(valid)}])."
            )
    score = _get(cfg, "attribution.score", "softmax")
    if score not in SUPPORTED_SCORES:
        raise ConfigError(
            f"attribution.score={score!r} is not valid: use one of {', '.join(SUPPORTED_SCORES)}."
        )
    share = _get(cfg, "attribution.rig_first_share", None)
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1
    ):
        raise ConfigError(
            f"attribution.rig_first_share={share!r} is not valid: use a number in (0, 1) (the "
            "share of RIG's budget on its first segment) or null (every segment alike)."
        )
    full, steps = full_rank(cfg), _get(cfg, "attribution.steps", 64)
    if full is not None and "rig" in _get(cfg, "attribution.methods", ["rig"]):
        ranks = _get(cfg, "attribution.rig_ranks", None)
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


def check_model_kind(cfg: DictConfig) -> None:
    """model.kind (natural | robust | unknown | null) and model.threat ({norm: linf | l2,
    eps > 0}) of loaded weights: what identity.model_kind reads."""
    kind = _get(cfg, "model.kind", None)
    if kind not in (None, "natural", "robust", "unknown"):
        raise ConfigError(
            f"model.kind={kind!r} is not a model kind: use model.kind=natural, robust or "
            "unknown (what the loaded weights are; trained runs take it from attack=...)."
        )
    threat = _get(cfg, "model.threat", None)
    if threat is None:
        return
    fix = "e.g. 'model.threat={norm: linf, eps: 0.0157}' (4/255) or '{norm: l2, eps: 3.0}'"
    if kind != "robust":
        raise ConfigError(
            f"model.threat={threat} is given but model.kind={kind}: a threat model describes a "
            "robust model. Set model.kind=robust, or model.threat=null."
        )
    if not hasattr(threat, "get") or str(threat.get("norm")).lower() not in ("linf", "l2"):
        raise ConfigError(f"model.threat={threat}: norm must be linf or l2; {fix}.")
    check_range("model.threat.eps", threat.get("eps"), float, 0.0, INF, True)


def check_speed_options(cfg: DictConfig) -> None:
    """module.compile (false, true or a torch.compile backend), the checkpoint cadence
    (callbacks.last_checkpoint.every_minutes >= 0; 0 = every epoch) and a note for a tiny
    dataset.eval_batch_size."""
    from rankrobust.pipeline.lightning_module import compile_backend

    value = _get(cfg, "module.compile", False)
    try:
        compile_backend(value)
    except ValueError as err:
        raise ConfigError(f"module.{err}") from None
    if _get(cfg, "callbacks.last_checkpoint", None) is not None:
        minutes = _get(cfg, "callbacks.last_checkpoint.every_minutes", 0.0)
        check_range("callbacks.last_checkpoint.every_minutes", minutes, float, 0, INF, True)
    _note_small_eval_batches(_get(cfg, "dataset.eval_batch_size", None))


# Below this many test images per batch the evaluation (attacks, sweeps) runs several times
# slower than it need be (eval_batch_size=1 measured about 5x slower than the default).
SLOW_EVAL_BATCH = 8


def _note_small_eval_batches(size) -> None:
    """A note (not an error: it is valid, only slow) for a tiny dataset.eval_batch_size."""
    if isinstance(size, int) and not isinstance(size, bool) and 1 <= size < SLOW_EVAL_BATCH:
        import logging

        logging.getLogger("rankrobust").warning(
            "[rankrobust] dataset.eval_batch_size=%d: testing, attacks and sweeps run one "
            "small batch at a time, which is slow (about 5x slower at 1); a larger "
            "value (e.g. 500, the default) runs faster if memory allows.",
            size,
        )
