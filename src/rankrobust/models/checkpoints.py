"""Loading model weights from this project's Lightning checkpoints or plain state dicts."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from rankrobust.errors import ConfigError

# How torch names a global its weights-only unpickler refuses: "Unsupported global: GLOBAL
# __main__.U was not an allowed global" (a class) or, since torch 2.6, "Trying to load unsupported
# GLOBAL posix.system whose module posix is blocked" (a blocked module such as os).
_UNSAFE_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.]+)", re.IGNORECASE)
# Torch's generic advice around the reason, e.g. to retry with weights_only=False: never repeated.
_TORCH_ADVICE = ("weights only load failed", "weights_only", "check the documentation")


def _reason(err: Exception) -> str:
    """The first line of torch's message that gives the reason, not its generic advice."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = (line.strip() for line in text.splitlines())
    return next((ln for ln in lines if ln and not any(a in ln.lower() for a in _TORCH_ADVICE)), "")


def _corrupt(p: Path, err: Exception) -> ConfigError:
    first = _reason(err)[:200]
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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict from a Lightning checkpoint or a plain state dict file.

    Loaded with weights_only=True: a file that needs arbitrary pickled objects is refused.
    Lightning checkpoints hold {"state_dict": {"model.<key>": ...}}; the "model." prefix is
    stripped. A checkpoint of a bare network (no Normalize layer) is also accepted by
    `load_weights`.
    """
    p = check_checkpoint_path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
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
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(
            f"model.checkpoint '{p}' holds no state dict of tensors (found {type(obj).__name__}"
            f"{' with keys ' + str(list(obj)[:5]) if isinstance(obj, dict) else ''}). Accepted: "
            "a Lightning checkpoint of this project, or torch.save(model.state_dict(), path) of "
            "the whole model (Normalize + network) or of the bare network."
        )
    for prefix in ("module.", "model."):  # DataParallel / DDP wrappers; RobustClassifier.model
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into `model` (Normalize + network) strictly, naming mismatched keys.

    A state dict of the bare network (keys without the "net." prefix of the Sequential wrapper,
    e.g. a torchvision ResNet-50 state dict) is loaded into the network part. Keys are checked
    here (missing, unexpected, shapes), so the load itself is not strict only about BatchNorm's
    num_batches_tracked.
    """
    state = read_state_dict(path)
    target = model
    own = model.state_dict()
    if not set(state) & set(own) and isinstance(model, nn.Sequential) and len(model) == 2:
        target, own = model[1], model[1].state_dict()
    # BatchNorm's step counter is absent from old checkpoints (and unused at evaluation).
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if shapes:
            k = shapes[0]
            parts.append(
                f"shape mismatch at {k}: checkpoint {tuple(state[k].shape)} vs model "
                f"{tuple(own[k].shape)}"
            )
        raise ConfigError(
            f"model.checkpoint '{path}' does not fit the model: {'; '.join(parts)}. Check that "
            "model=… and dataset.num_classes match the run that wrote the checkpoint."
        )
    target.load_state_dict(state, strict=False)
    return model
