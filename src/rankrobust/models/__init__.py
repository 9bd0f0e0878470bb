"""Model architectures and a registry that wraps each one behind its input normalisation.

Every model built by :func:`build_model` eats pixels in [0, 1], shape (N, C, H, W): the
per-channel normalisation is the first layer (:class:`Normalize`), so attacks and SVD transforms
act on pixels. All architectures end in adaptive pooling, so they accept any input size that
survives their downsampling, and they work with ``torch.channels_last``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.identity import RANDOM_WEIGHTS  # noqa: F401  (model.checkpoint=random)
from rankrobust.inputs import check_int, check_model
from rankrobust.models.architectures import (  # noqa: F401  (the public names stay here)
    PatchWhitening,
    PreActBlock,
    PreActResNet18,
    ResNetSmall,
    SmallCNN,
    WideBasicBlock,
    WideResNet,
)
from rankrobust.models.torchvision_arch import torchvision_model

__all__ = [
    "MODEL_NAMES",
    "Normalize",
    "PatchWhitening",
    "PreActResNet18",
    "ResNetSmall",
    "SmallCNN",
    "WideResNet",
    "build_model",
    "preact_resnet18",
    "resnet50",
    "resnet_small",
    "robustbench",
    "small_cnn",
    "torchvision",
    "wide_resnet",
]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers (saved, moved with the model)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean = [float(m) for m in mean]
        std = [float(s) for s in std]
        if len(mean) == 0 or len(mean) != len(std):
            raise ConfigError(
                f"Normalize needs one mean and one std per channel; got {len(mean)} means and "
                f"{len(std)} stds. Give lists of equal, non-zero length (e.g. 3 for RGB)."
            )
        if any(s <= 0 for s in std):
            raise ConfigError(f"Normalize std values must all be > 0; got {std}.")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module of ``model`` in eval mode; restore each module's own mode afterwards.

    A plain function of images has no modes (left as is); anything not callable is a TypeError
    naming ``model``."""
    check_model(model)
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


# --------------------------------------------------------------------------- factories


def _sizes(**sizes: object) -> None:
    """The architectures' integer sizes (num_classes, in_channels, width, ...) are >= 1."""
    for name, value in sizes.items():
        check_int(value, name, 1)


def small_cnn(num_classes: int, in_channels: int = 3, width: int = 32) -> nn.Module:
    _sizes(num_classes=num_classes, in_channels=in_channels, width=width)
    return SmallCNN(num_classes, in_channels, width)


def resnet_small(
    num_classes: int,
    in_channels: int = 3,
    width: int = 32,
    logit_scale: float = 0.125,
    whiten: bool = False,
    whiten_eps: float = 5e-4,
) -> nn.Module:
    _sizes(num_classes=num_classes, in_channels=in_channels, width=width)
    return ResNetSmall(num_classes, in_channels, width, logit_scale, whiten, whiten_eps)


def preact_resnet18(num_classes: int, in_channels: int = 3) -> nn.Module:
    _sizes(num_classes=num_classes, in_channels=in_channels)
    return PreActResNet18(num_classes, in_channels)


def wide_resnet(
    num_classes: int,
    in_channels: int = 3,
    depth: int = 28,
    widen_factor: int = 10,
    drop_rate: float = 0.0,
) -> nn.Module:
    _sizes(num_classes=num_classes, in_channels=in_channels, widen_factor=widen_factor)
    return WideResNet(num_classes, in_channels, depth, widen_factor, drop_rate)


def wrn28_10(num_classes: int, in_channels: int = 3, drop_rate: float = 0.0) -> nn.Module:
    return WideResNet(num_classes, in_channels, 28, 10, drop_rate)


def wrn34_10(num_classes: int, in_channels: int = 3, drop_rate: float = 0.0) -> nn.Module:
    return WideResNet(num_classes, in_channels, 34, 10, drop_rate)


def resnet50(
    num_classes: int,
    in_channels: int = 3,
    weights: str | None = None,
    pretrained: str | None = None,
) -> nn.Module:
    """torchvision's ImageNet ResNet-50, randomly initialised or with torchvision's weights.

    ``pretrained`` ("imagenet" = IMAGENET1K_V1, or a weights name such as "IMAGENET1K_V2"; the
    older spelling ``weights`` is the same) loads them from the torch hub cache without a network
    (see :func:`rankrobust.models.external.torchvision_state_dict`); they need ``num_classes=1000``.
    The same as ``torchvision(arch="resnet50")``.
    """
    return torchvision_model("resnet50", num_classes, in_channels, pretrained or weights)


def torchvision(
    num_classes: int, in_channels: int = 3, arch: str = "resnet18", pretrained: str | None = None
) -> nn.Module:
    """Any torchvision classification architecture ``arch`` (resnet18, vit_b_16, ...), with
    ``num_classes`` outputs; see :mod:`rankrobust.models.torchvision_arch`."""
    return torchvision_model(arch, num_classes, in_channels, pretrained)


def robustbench(
    num_classes: int,
    in_channels: int = 3,
    name_rb: str | None = None,
    threat_model: str = "Linf",
    rb_dataset: str = "cifar10",
    model_dir: str = "models",
    arch: str | None = None,
    architecture_only: bool = False,
    checkpoint: str | None = None,
) -> nn.Module:
    """A RobustBench model zoo model (optional extra); it normalises its inputs itself.

    ``arch`` only names the architecture family for reports (e.g. resnet50 for
    Salman2020Do_R50, so it pairs with torchvision's natural ResNet-50); it does not change the
    network. ``checkpoint``: a file of the entry's weights, read as RobustBench reads its cache
    (strictly: `rankrobust.models.external.robustbench_model`). ``architecture_only`` builds
    the zoo entry's network with random weights (``model.checkpoint=random``)."""
    from rankrobust.models.external import ROBUSTBENCH_CLASSES, robustbench_model

    expected = ROBUSTBENCH_CLASSES.get(rb_dataset)
    if expected is not None and expected != num_classes:
        raise ConfigError(
            f"RobustBench {rb_dataset} models have {expected} classes but num_classes="
            f"{num_classes}: pick the dataset that matches model.rb_dataset (dataset=cifar10 or "
            "image_folder for cifar10, dataset=imagenet for imagenet)."
        )
    return robustbench_model(
        name_rb, rb_dataset, threat_model, model_dir, architecture_only, checkpoint
    )


_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": small_cnn,
    "resnet_small": resnet_small,
    "preact_resnet18": preact_resnet18,
    "wide_resnet": wide_resnet,
    "wrn28_10": wrn28_10,
    "wrn34_10": wrn34_10,
    "resnet50": resnet50,
    "torchvision": torchvision,
    "robustbench": robustbench,
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
# Models that take [0, 1] pixels and normalise inside (RobustBench): no Normalize in front.
NORMALIZES_INSIDE: frozenset[str] = frozenset({"robustbench"})


def build_model(
    name: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    checkpoint: str | None = None,
    kind: str | None = None,
    threat: dict | None = None,
    **kwargs,
) -> nn.Module:
    """Build ``name`` behind its normalisation: ``nn.Sequential(normalize=..., net=...)``.

    The result takes pixels in [0, 1]; ``model.normalize`` and ``model.net`` (or ``model[0]``,
    ``model[1]``) reach the parts. The number of input channels is ``len(mean)``. Extra keyword
    arguments go to the architecture (e.g. ``depth``, ``widen_factor`` for ``wide_resnet``,
    ``width`` for ``small_cnn``, ``pretrained`` for ``resnet50``, ``name_rb`` etc. for
    ``robustbench``). Models in ``NORMALIZES_INSIDE`` (RobustBench's) take [0, 1] pixels and
    normalise themselves: their ``model.normalize`` is an ``nn.Identity``, mean/std are unused.
    ``checkpoint`` (a path: this project's Lightning checkpoint or a plain state dict) loads
    weights into the built model (rankrobust.models.checkpoints: weights only, never pickled code;
    every layout of ``checkpoints.LAYOUTS``; a MadryLab file's own normaliser replaces mean/std).
    ``kind`` ("natural" | "robust" | "unknown") and ``threat`` ({norm, eps}) declare what the
    loaded weights are (identity.model_kind reads them from the config; they build nothing).
    The model's ``normalization`` attribute says which normalisation it applies:
    {"source", "mean", "std"}.
    ``checkpoint="random"`` keeps the random initial weights, asked for explicitly.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"Unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer; got {num_classes!r}.")
    normalize = Normalize(mean, std)
    factory = _REGISTRY[name]
    params = inspect.signature(factory).parameters
    internal = ("num_classes", "in_channels", "architecture_only", "checkpoint")
    accepted = [p for p in params if p not in internal]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"Model {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'no options'}."
        )
    if kind not in (None, "natural", "robust", "unknown"):
        raise ConfigError(f"model.kind={kind!r}: use natural, robust or unknown.")
    own_loader = "checkpoint" in params  # the factory reads the file its own way (RobustBench)
    if own_loader and checkpoint == RANDOM_WEIGHTS:
        kwargs["architecture_only"] = True
    elif own_loader and checkpoint:
        kwargs["checkpoint"] = checkpoint
    net = factory(num_classes=num_classes, in_channels=normalize.mean.shape[1], **kwargs)
    source = {
        "source": "dataset.mean / dataset.std",
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }
    if name in NORMALIZES_INSIDE:  # same layout (model.net), but no second normalisation
        normalize = nn.Identity()
        source = {"source": "inside the model (RobustBench's own)", "mean": None, "std": None}
    model = nn.Sequential(OrderedDict(normalize=normalize, net=net))
    model.normalization = source
    if checkpoint and checkpoint != RANDOM_WEIGHTS and not own_loader:
        from rankrobust.models.checkpoints import load_weights

        load_weights(model, checkpoint)
    return model
