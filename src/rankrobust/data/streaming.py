"""Streamed ImageFolder sets (ImageNet-style trees too large for memory): resize + centre crop."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from rankrobust.data.folder import SPLITS, open_image, pick_test_split
from rankrobust.errors import ConfigError


def subset_indices(size: int, n: int, seed: int) -> list[int]:
    """n of range(size) drawn at random (seeded), in order: randperm(size, seed)[:n], sorted
    (so a smaller n picks a subset of a larger n's indices)."""
    idx = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]
    return sorted(idx.tolist())


def random_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """n images of ds drawn at random (seeded), in file order; all of ds when n is None."""
    if n is None or n >= len(ds):
        return ds
    return torch.utils.data.Subset(ds, subset_indices(len(ds), n, seed))


def _load(path: str):
    """torchvision ImageFolder's loader, with data.folder's errors (a file named, not a
    traceback; a decompression bomb never decoded). Module level: DataLoader workers pickle it."""
    with open(path, "rb") as f:
        return open_image(f, f"'{path}'")


def stream_sets(
    root: str | Path, image_size: int, test_split: str | None = None
) -> dict[str, Dataset]:
    """{'train', 'test'}: torchvision ImageFolders of root/train and of the test split,
    root/test when it exists, else root/val (ImageNet's layout), or the one `test_split` names
    (data.folder.pick_test_split: val/ is never merged into test/).

    Each image is resized (short side round(size * 8 / 7), 256 for 224), centre-cropped to
    size x size and returned as a float tensor in [0, 1]; labels are the sorted class folders.
    """
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Resize(round(image_size * 8 / 7)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
        ]
    )
    root = Path(root).expanduser()
    present = {split for split in SPLITS if (root / split).is_dir()}
    if not present & {"test", "val"}:
        raise ConfigError(
            f"'{root}' has no test/ or val/ folder of class folders (found: "
            f"{sorted(p.name for p in root.iterdir())[:5] if root.is_dir() else 'no folder'})."
            " ImageNet's validation set must be sorted into val/<wnid>/*.JPEG folders."
        )
    test = pick_test_split(present, test_split, root)
    splits = {"test": datasets.ImageFolder(str(root / test), tf, loader=_load)}
    if "train" in present:
        splits["train"] = datasets.ImageFolder(str(root / "train"), tf, loader=_load)
    if "train" in splits and splits["train"].classes != splits["test"].classes:
        raise ConfigError(
            f"'{root}': train/ and {test}/ hold different class folders, so their labels would "
            "not agree."
        )
    return splits


def stream_loader(ds: Dataset, batch_size: int, shuffle: bool, num_workers: int) -> DataLoader:
    """A DataLoader decoding images in worker processes (pinned memory where CUDA exists)."""
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
