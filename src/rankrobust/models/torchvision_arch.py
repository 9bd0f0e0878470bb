"""Any torchvision classification architecture by name (resnet18, resnet50, vit_b_16, ...).

``torchvision.models.get_model(arch, weights=None, num_classes=...)`` builds it: an ImageNet
head (num_classes=1000) or any other (10 for CIFAR-10); torchvision's own ImageNet weights
(``pretrained``) are read from the torch hub cache (rankrobust.models.external). Like every
model of :func:`rankrobust.models.build_model` it sits behind its Normalize layer.
"""

from __future__ import annotations

from functools import cache

import torchvision
from torch import nn

from rankrobust.errors import ConfigError

__all__ = ["classification_archs", "torchvision_model"]


@cache
def classification_archs() -> tuple[str, ...]:
    """torchvision's classification architectures (no detection / segmentation / video)."""
    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def torchvision_model(
    arch: str, num_classes: int, in_channels: int = 3, pretrained: str | None = None
) -> nn.Module:
    """torchvision's ``arch``, randomly initialised or with torchvision's weights ``pretrained``
    ("imagenet" = IMAGENET1K_V1, or a weights name such as "IMAGENET1K_V2"; 1000 classes).

    Raises ConfigError for an unknown architecture (naming close ones), a non-RGB input, or
    pretrained weights with num_classes != 1000.
    """
    archs = classification_archs()
    if arch not in archs:
        import difflib

        close = difflib.get_close_matches(str(arch), archs, n=5, cutoff=0.5)
        raise ConfigError(
            f"model.arch={arch!r} is not a torchvision classification architecture"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f". Known: {', '.join(archs[:12])}, ... ({len(archs)} in all: "
            "torchvision.models.list_models(module=torchvision.models))."
        )
    if in_channels != 3:
        raise ConfigError(
            f"{arch} takes 3-channel images; the mean/std given have {in_channels} channels."
        )
    if pretrained in (None, False, "none", "None", "null"):
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    if num_classes != 1000:
        raise ConfigError(
            f"{arch} with model.pretrained={pretrained!r} has torchvision's 1000 ImageNet "
            f"classes, but num_classes={num_classes}: use dataset=imagenet (or set "
            "dataset.num_classes=1000), or drop model.pretrained."
        )
    from rankrobust.models.external import torchvision_state_dict

    net = torchvision.models.get_model(arch, weights=None, num_classes=1000)
    net.load_state_dict(torchvision_state_dict(arch, str(pretrained)))
    return net
