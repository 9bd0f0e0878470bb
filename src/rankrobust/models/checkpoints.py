"""Loading model weights from any of the checkpoint layouts researchers have (one loader).

`read_checkpoint` recognises the layout, says which it found, never drops a weight (a key it
cannot place is named in a ConfigError; a duplicate copy is checked equal before it is skipped):

    rankrobust    this project's Lightning checkpoint: {"state_dict": {"model.normalize.*",
                  "model.net.*"}} (or a state dict of the whole model: normalize.* + net.*)
    state_dict    a plain state dict of the network, e.g. torchvision's resnet50-*.pth
    dataparallel  the same with nn.DataParallel / DDP's "module." prefix
    lightning     a Lightning checkpoint of another module: {"state_dict": {"model.*"|"net.*"}}
    module_state  this project's LightningModule saved bare, torch.save(module.state_dict()):
                  {"model.normalize.*", "model.net.*"} with no "state_dict" around it
    wrapped       {"state_dict" | "model_state_dict": ...} without those prefixes (RobustBench
                  files and most research code)
    madrylab      MadryLab `robustness` files: {"model": {"module.model.*",
                  "module.attacker.model.*" (a duplicate), "module.normalizer.new_mean" /
                  "new_std" (3x1x1)}, "epoch", "optimizer", "schedule"}: the file's own
                  normaliser is used, not the dataset's mean/std (Engstrom et al. 2019,
                  github.com/MadryLab/robustness, model_utils.make_and_restore_model)
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rankrobust.errors import ConfigError

log = logging.getLogger("rankrobust")

LAYOUTS = {
    "rankrobust": "this project's checkpoint (Normalize + network)",
    "state_dict": "a plain state dict of the network (torchvision layout)",
    "dataparallel": "a DataParallel / DDP state dict ('module.' prefix)",
    "lightning": "a Lightning checkpoint ('state_dict' with a 'model.' or 'net.' prefix)",
    "module_state": "this project's LightningModule state dict ('model.' prefix, unwrapped)",
    "wrapped": "a checkpoint dict holding 'state_dict' / 'model_state_dict' (RobustBench style)",
    "madrylab": "a MadryLab robustness checkpoint (module.model.*, its own normaliser)",
}
_CONTAINERS = ("state_dict", "model_state_dict", "model")
_MADRY_NORM = ("normalizer.new_mean", "normalizer.new_std")


@dataclass(frozen=True)
class Checkpoint:
    """The weights of a checkpoint file, keyed as the network (or whole model) names them.

    layout: a key of `LAYOUTS`; mean / std: the file's own input normaliser (MadryLab files),
    else None; skipped: keys left out because they duplicate placed ones (checked equal).
    """

    state: dict[str, torch.Tensor]
    layout: str
    path: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    skipped: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return LAYOUTS[self.layout]


# How torch names a global its weights-only unpickler refuses: "Unsupported global: GLOBAL
# __main__.U was not an allowed global" (a class) or, since torch 2.6, "Trying to load unsupported
# GLOBAL posix.system whose module posix is blocked" (a blocked module such as os).
_UNSAFE_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)
# Torch's generic advice around the reason, e.g. to retry with weights_only=False: never repeated.
_TORCH_ADVICE = ("weights only load failed", "weights_only", "check the documentation")


def load_error_reason(err: Exception) -> str:
    """The first line of torch's message that gives the reason, not its generic advice."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = (line.strip() for line in text.splitlines())
    return next((ln for ln in lines if ln and not any(a in ln.lower() for a in _TORCH_ADVICE)), "")


def _corrupt(p: Path, err: Exception) -> ConfigError:
    first = load_error_reason(err)[:200]
    return ConfigError(
        f"model.checkpoint '{p}' is corrupt, truncated or not a file written by torch.save "
        f"({type(err).__name__}: {first}). Re-copy it, or re-run training to write a fresh "
        "checkpoint."
    )


def check_checkpoint_path(path: str | Path) -> Path:
    """The path as a Path, or a ConfigError when no such file exists."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"model.checkpoint '{path}' does not exist. Give the path of a .ckpt written by a "
            "previous run (outputs/.../checkpoints/last.ckpt) or of a saved state dict (.pt)."
        )
    return p


def _load(p: Path):
    """torch.load with weights_only=True and this project's errors for bad files."""
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # Not chained (from None): torch's text advises weights_only=False, which we never do.
        match = _UNSAFE_GLOBAL.search(str(err))
        if match is None:  # a weights-only unpickler failure that is not a refused global
            raise _corrupt(p, err) from None
        raise ConfigError(
            f"model.checkpoint '{p}' not loaded: it holds Python objects beyond tensors and "
            f"plain containers (it refers to the global {match.group(1)}), and unpickling them "
            "can run arbitrary code, so only weights are read (torch.load with "
            "weights_only=True). If you trust the file and the code that wrote it, re-save only "
            "the weights there: torch.save(model.state_dict(), path)."
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise _corrupt(p, err) from err


def _tensors(obj) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _no_state(p: Path, obj) -> ConfigError:
    keys = f" with keys {list(obj)[:6]}" if isinstance(obj, dict) else ""
    return ConfigError(
        f"model.checkpoint '{p}' holds no state dict of tensors (found {type(obj).__name__}"
        f"{keys}). Accepted layouts: " + "; ".join(LAYOUTS.values()) + ". Re-save the "
        "weights with torch.save(model.state_dict(), path)."
    )


def _unplaced(p: Path, keys: list[str], layout: str) -> ConfigError:
    return ConfigError(
        f"model.checkpoint '{p}' ({LAYOUTS[layout]}) has {len(keys)} key(s) that belong to no "
        f"part of the model, e.g. {keys[:5]}: they are not dropped silently. Re-save only the "
        "network's weights (torch.save(net.state_dict(), path)) if those keys are not weights."
    )


@dataclass(frozen=True)
class KeyFit:
    """How a state dict fits a model's: the model's keys the file lacks (`missing`), the file's
    keys the model has no place for (`unexpected`), and (key, file shape, model shape) for each
    key whose shapes differ (`shapes`)."""

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes)

    def describe(self, shown: int = 5) -> str:
        """'missing keys [...] (320 in all); unexpected keys [...] (2 in all); shape mismatch at
        fc.weight: checkpoint (5, 128) vs model (10, 128) (1 in all)': a few of each, counted."""
        parts = []
        for what, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                parts.append(f"{what} keys {list(keys[:shown])} ({len(keys)} in all)")
        if self.shapes:
            shapes = [f"{k}: checkpoint {f} vs model {m}" for k, f, m in self.shapes[:3]]
            parts.append(f"shape mismatch at {'; '.join(shapes)} ({len(self.shapes)} in all)")
        return "; ".join(parts)


def key_fit(own: dict[str, torch.Tensor], state: dict, optional: tuple[str, ...] = ()) -> KeyFit:
    """The one rule for "these weights fit this model": every key of `own` (a model's state
    dict) comes from `state` with its shape, and every key of `state` has a place in `own`.

    Not counted as missing: BatchNorm's step counter (num_batches_tracked, absent from old files
    and unused at evaluation) and the keys in `optional` (constants the model's constructor sets).
    A value of `state` that is not a tensor counts as unexpected.
    """
    missing = tuple(k for k in own if k not in state
                    and not k.endswith("num_batches_tracked") and k not in optional)  # fmt: skip
    unexpected = tuple(k for k in state if k not in own or not isinstance(state[k], torch.Tensor))
    shapes = tuple(
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if isinstance(state.get(k), torch.Tensor) and state[k].shape != own[k].shape
    )
    return KeyFit(missing, unexpected, shapes)


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items()}


def _madrylab(p: Path, state: dict) -> Checkpoint:
    """MadryLab robustness: module.model.* (the network), module.attacker.model.* (the same
    network held by the attacker: checked equal, skipped), module.normalizer.new_mean/new_std
    (the input normaliser, 3x1x1) and module.attacker.normalize.* (its duplicate)."""
    lead = "module." if all(k.startswith("module.") for k in state) else ""
    state = _strip(state, lead)
    net = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    mean, std = state["normalizer.new_mean"], state["normalizer.new_std"]
    skipped, unplaced = [], []
    for key, value in state.items():
        if key.startswith("model.") or key in _MADRY_NORM:
            continue
        twin = None
        if key.startswith("attacker.model."):
            twin = net.get(key[len("attacker.model.") :])
        elif key.startswith("attacker.normalize."):
            twin = state.get("normalizer." + key[len("attacker.normalize.") :])
        if twin is None:
            unplaced.append(lead + key)
        elif twin.shape != value.shape or not torch.equal(twin, value):
            raise ConfigError(
                f"model.checkpoint '{p}' (MadryLab layout): {lead}{key} differs from the "
                "model's own copy of it, so it is not a duplicate that can be skipped; the file "
                "is not a standard robustness checkpoint."
            )
        else:
            skipped.append(lead + key)
    if unplaced:
        raise _unplaced(p, unplaced, "madrylab")
    return Checkpoint(
        net, "madrylab", str(p), tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()),
        tuple(skipped),
    )  # fmt: skip


def _module_state(state: dict) -> bool:
    """RobustClassifier.state_dict(): every key under its "model." (build_model's model:
    model.net.*, and model.normalize.* unless the network normalises inside)."""
    return any(k.startswith("model.net.") for k in state) and all(
        k.startswith("model.") for k in state
    )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint of any layout of `LAYOUTS` (weights only, never pickled code).

    Returns the state dict keyed as this project's model (normalize.*, net.*) or as the bare
    network names it, the layout found and, for MadryLab files, their normaliser's mean and std.
    Raises ConfigError for a missing, corrupt or unsafe file, one without tensors, or keys that
    fit no part of the model.
    """
    p = check_checkpoint_path(path)
    obj = _load(p)
    container = next((c for c in _CONTAINERS if isinstance(obj, dict) and _tensors(obj.get(c))),
                     None)  # fmt: skip
    state = obj[container] if container else obj
    if not _tensors(state):
        raise _no_state(p, obj)
    norm_keys = [k for k in state if k.endswith(_MADRY_NORM)]
    if container == "model" and len(norm_keys) == 2:
        return _madrylab(p, state)
    layout = "state_dict"
    if all(k.startswith("module.") for k in state):
        state, layout = _strip(state, "module."), "dataparallel"
    if container is None and _module_state(state):
        return Checkpoint(_strip(state, "model."), "module_state", str(p))
    if container is not None:
        layout = "wrapped"
        for prefix in ("model.", "net."):  # RobustClassifier.model / a module's self.net
            inside = [k for k in state if k.startswith(prefix)]
            if inside and len(inside) >= len(state) / 2:
                others = [k for k in state if not k.startswith(prefix)]
                if others:
                    raise _unplaced(p, others, "lightning")
                state, layout = _strip(state, prefix), "lightning"
                break
    if "normalize.mean" in state and any(k.startswith("net.") for k in state):
        layout = "rankrobust"
    return Checkpoint(state, layout, str(p))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint of any layout (see `read_checkpoint`), as a state dict."""
    return read_checkpoint(path).state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into `model` (Normalize + network) strictly, naming mismatched keys.

    A state dict of the bare network (keys without the "net." prefix of the Sequential wrapper,
    e.g. a torchvision ResNet-50 state dict) is loaded into the network part. Keys are checked
    here (missing, unexpected, shapes), so the load itself is not strict only about BatchNorm's
    num_batches_tracked. A MadryLab file's own normaliser replaces the model's Normalize (the
    dataset's mean/std are ignored for that model: a log line says so). Sets
    ``model.checkpoint_layout`` (the layout found, a key of `LAYOUTS`).
    """
    ckpt = read_checkpoint(path)
    state = ckpt.state
    target = model
    own = model.state_dict()
    if not set(state) & set(own) and isinstance(model, nn.Sequential) and len(model) == 2:
        target, own = model[1], model[1].state_dict()
    fit = key_fit(own, state)
    if not fit.ok:
        raise ConfigError(
            f"model.checkpoint '{path}' ({ckpt.description}) does not fit the model: "
            f"{fit.describe()}. Check that model=… (and model.arch) and dataset.num_classes "
            "match the network that wrote the checkpoint."
        )
    target.load_state_dict(state, strict=False)
    if ckpt.mean is not None:
        _use_file_normalizer(model, ckpt)
    model.checkpoint_layout = ckpt.layout
    log.info("[rankrobust] model.checkpoint %s: %s", path, ckpt.description)
    return model


def _use_file_normalizer(model: nn.Module, ckpt: Checkpoint) -> None:
    """Put the checkpoint's own normaliser in front of the network (MadryLab files)."""
    from rankrobust.models import Normalize

    if not (isinstance(model, nn.Sequential) and hasattr(model, "normalize")):
        raise ConfigError(
            f"model.checkpoint '{ckpt.path}' brings its own input normaliser (MadryLab layout); "
            "load it into a model built by rankrobust.models.build_model."
        )
    device = next(model.parameters()).device
    model.normalize = Normalize(ckpt.mean, ckpt.std).to(device)
    model.normalization = {
        "source": "the checkpoint's own normalizer (MadryLab)",
        "mean": list(ckpt.mean),
        "std": list(ckpt.std),
    }
    log.info(
        "[rankrobust] %s holds its own input normaliser (mean %s, std %s): used for this model; "
        "dataset.mean / dataset.std are ignored for it.",
        ckpt.path, [round(m, 4) for m in ckpt.mean], [round(s, 4) for s in ckpt.std],
    )  # fmt: skip
