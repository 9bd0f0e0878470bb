"""Image sets as pixel tensors in [0, 1]: the ImageSet record and the synthetic loader."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rankrobust.inputs import check_int

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclass
class ImageSet:
    """A labelled image set: `images` float32 (N, C, H, W) in [0, 1], `labels` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """A class-balanced-in-expectation random subset of n images (all when n is None)."""
        if n is None or n >= len(self.labels):
            return self
        idx = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageSet(self.images[idx], self.labels[idx], self.classes)


# ---------------------------------------------------------------------------------------------
# Loaders: each returns (train, test) ImageSets.


def synthetic_sets(
    n_train: int,
    n_test: int,
    num_classes: int = 10,
    image_size: int = 32,
    channels: int = 3,
    robust_amplitude: float = 0.25,
    nonrobust_amplitude: float = 0.02,
    noise: float = 0.08,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet]:
    """Deterministic synthetic images with a robust and a non-robust feature per class.

    x = 0.5 + a_r * s * P_y + a_n * Q_y + noise, clamped to [0, 1], where P_y is a smooth rank-1
    pattern (large, low-rank: the robust feature, its strength s ~ U(0.3, 1) varies per image) and
    Q_y a +-1 high-frequency pattern (small, high-rank, perfectly predictive: the non-robust
    feature, smaller than a typical eps). Natural training can lean on Q; adversarial training
    with eps > a_n cannot, which mirrors the paper's story at toy scale.
    """
    for name, value in {"n_train": n_train, "n_test": n_test, "num_classes": num_classes,
                        "image_size": image_size, "channels": channels}.items():  # fmt: skip
        check_int(value, name, 1)
    g = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, image_size)
    freq = torch.randint(1, 3, (num_classes, 2), generator=g).float()
    phase = torch.rand(num_classes, 2, generator=g) * 2 * torch.pi
    u = torch.sin(2 * torch.pi * freq[:, :1] * grid + phase[:, :1])
    v = torch.cos(2 * torch.pi * freq[:, 1:] * grid + phase[:, 1:])
    colour = torch.rand(num_classes, channels, generator=g) * 2 - 1
    robust = colour[:, :, None, None] * (u[:, None, :, None] * v[:, None, None, :])
    nonrobust = torch.randint(0, 2, (num_classes, channels, image_size, image_size), generator=g)
    nonrobust = nonrobust.float() * 2 - 1

    def make(n: int) -> ImageSet:
        y = torch.randint(0, num_classes, (n,), generator=g)
        strength = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=g)
        x = (
            0.5
            + robust_amplitude * strength * robust[y]
            + nonrobust_amplitude * nonrobust[y]
            + noise * torch.randn(n, channels, image_size, image_size, generator=g)
        )
        classes = tuple(f"class{i}" for i in range(num_classes))
        return ImageSet(x.clamp(0, 1), y, classes)

    return make(n_train), make(n_test)
