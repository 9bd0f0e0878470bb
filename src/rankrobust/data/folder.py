"""ImageFolder trees and tarballs (train/<class>/*, test/ or val/<class>/*) read into memory."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from rankrobust.data.sets import ImageSet
from rankrobust.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _decode(data: bytes, size: int | None) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and img.size != (size, size):
        img = _resize_center_crop(img, size)
    return np.asarray(img, dtype=np.uint8)


def _resize_center_crop(img, size: int):
    """Resize the short side to size * 8/7 (256 for 224) and centre-crop size x size."""
    from torchvision.transforms import functional as F

    img = F.resize(img, round(size * 8 / 7))
    return F.center_crop(img, size)


def _split_member(name: str) -> tuple[str, str] | None:
    """'…/train/<class>/<file>.jpg' -> ('train', '<class>'), else None."""
    parts = Path(name).parts
    if len(parts) < 3 or not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    split, cls = parts[-3], parts[-2]
    return (split, cls) if split in ("train", "test", "val") else None


def _collect(items: Iterator[tuple[str, str, bytes]], size: int | None) -> dict:
    """Group decoded images by split: {split: (list of HWC uint8 arrays, list of class names)}."""
    out: dict[str, tuple[list, list]] = {}
    for split, cls, data in items:
        imgs, names = out.setdefault("test" if split == "val" else split, ([], []))
        imgs.append(_decode(data, size))
        names.append(cls)
    return out


def _tar_items(path: Path) -> Iterator[tuple[str, str, bytes]]:
    with tarfile.open(path, "r|gz" if path.name.endswith("gz") else "r|") as tf:
        for member in tf:
            key = _split_member(member.name) if member.isfile() else None
            if key is not None:
                yield key[0], key[1], tf.extractfile(member).read()


def _folder_items(root: Path) -> Iterator[tuple[str, str, bytes]]:
    for path in sorted(root.rglob("*")):
        key = _split_member(str(path.relative_to(root))) if path.is_file() else None
        if key is not None:
            yield key[0], key[1], path.read_bytes()


def _cache_file(root: Path, size: int | None) -> Path:
    stat = root.stat()
    key = f"{root.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    base = Path(os.environ.get("RANKROBUST_CACHE", Path.home() / ".cache" / "rankrobust"))
    return base / f"imagefolder-{digest}.npz"


def image_folder_sets(root: str | Path, image_size: int | None = None) -> tuple[ImageSet, ImageSet]:
    """An ImageFolder tree (`train/<class>/*`, `test/<class>/*` or `val/<class>/*`) held in memory.

    `root` is a folder or a .tar / .tar.gz of one, read sequentially. Decoded images are cached
    as a .npz under $RANKROBUST_CACHE (default ~/.cache/rankrobust), keyed by path, size and
    modification time, so a second run starts in a second.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(
            f"dataset.root '{root}' does not exist. Point dataset.root at an ImageFolder tree "
            "(train/<class>/*.jpg and test/<class>/*.jpg) or a .tar.gz of one; for the CIFAR-10 "
            "copy shipped with this project's shared folder use "
            "dataset.root=../shared/data/cifar10-jpeg.tar.gz."
        )
    cache = _cache_file(root, image_size)
    if cache.exists():
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        items = _tar_items(root) if root.is_file() else _folder_items(root)
        try:
            groups = _collect(items, image_size)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ConfigError(f"Could not read images from '{root}': {err}.") from err
        missing = {"train", "test"} - set(groups)
        if missing:
            raise ConfigError(
                f"'{root}' holds no {' or '.join(sorted(missing))} images: an ImageFolder root "
                "needs train/<class>/ and test/<class>/ (or val/<class>/) folders of images."
            )
        classes = sorted(set(groups["train"][1]))
        arrays = {"classes": np.array(classes)}
        for split, (imgs, names) in groups.items():
            sizes = {a.shape for a in imgs}
            if len(sizes) > 1:
                raise ConfigError(
                    f"'{root}' holds images of several sizes ({sorted(sizes)[:3]}…): set "
                    "dataset.image_size to resize and centre-crop them to one size."
                )
            index = {c: i for i, c in enumerate(classes)}
            unknown = set(names) - set(index)
            if unknown:
                raise ConfigError(
                    f"{split} classes {sorted(unknown)} are not in train/ under '{root}'."
                )
            arrays[f"{split}_x"] = np.stack(imgs)
            arrays[f"{split}_y"] = np.array([index[c] for c in names], dtype=np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    classes = tuple(str(c) for c in arrays["classes"])

    def to_set(split: str) -> ImageSet:
        x = torch.from_numpy(arrays[f"{split}_x"]).permute(0, 3, 1, 2).float().div_(255)
        return ImageSet(x.contiguous(), torch.from_numpy(arrays[f"{split}_y"]), classes)

    return to_set("train"), to_set("test")


def read_images(
    root: str | Path,
    n: int,
    splits: Sequence[str] = ("test", "val"),
    one_per_class: bool = False,
    classes: Sequence[str] | None = None,
) -> ImageSet:
    """The first n images of the given splits of an ImageFolder tree or tarball, read in order.

    Stops reading as soon as it has n images (no cache, no full decode): for tests, benchmarks
    and figures. `one_per_class` keeps only the first image of each class met. Labels index
    `classes` (default: the sorted class names met, ImageFolder's convention).
    """
    root = Path(root).expanduser()
    items = _tar_items(root) if root.is_file() else _folder_items(root)
    images, names = [], []
    for split, cls, data in items:
        if split not in splits or (one_per_class and cls in names):
            continue
        images.append(_decode(data, None))
        names.append(cls)
        if len(images) >= n:
            break
    if not images:
        raise ConfigError(f"'{root}' holds no {' or '.join(splits)} images.")
    classes = tuple(classes) if classes is not None else tuple(sorted(set(names)))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return ImageSet(x.contiguous(), torch.tensor([classes.index(c) for c in names]), classes)
