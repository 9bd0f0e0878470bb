"""Shared pytest fixtures."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

# The JPEG copy of CIFAR-10 (see ../shared/data/README.md); never committed into the project.
CIFAR_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
CIFAR_CLASSES = (
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


def load_cifar_test_images(n: int, path: Path = CIFAR_TARBALL) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of the tarball in archive order, read sequentially.

    Returns (images float32 in [0, 1] of shape (n, 3, 32, 32), labels int64 of shape (n,)).
    """
    from PIL import Image

    images: list[np.ndarray] = []
    labels: list[int] = []
    with tarfile.open(path, "r|gz") as tf:  # sequential: random access into gzip is quadratic
        for member in tf:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] != "test":
                continue
            f = tf.extractfile(member)
            assert f is not None
            with Image.open(io.BytesIO(f.read())) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(CIFAR_CLASSES.index(parts[1]))
            if len(images) >= n:
                break
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(), torch.tensor(labels, dtype=torch.int64)


@pytest.fixture(scope="session")
def cifar_images() -> tuple[torch.Tensor, torch.Tensor]:
    """64 real CIFAR-10 test images (float32 [0, 1], N x 3 x 32 x 32) and their labels."""
    if not CIFAR_TARBALL.is_file():
        pytest.skip(f"CIFAR-10 JPEG copy not found at {CIFAR_TARBALL} (see shared/data/README.md)")
    return load_cifar_test_images(64)
