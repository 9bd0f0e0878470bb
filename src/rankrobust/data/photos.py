"""Real photographs for tests and benchmarks: the sample images shipped with scikit-image and
matplotlib (no download), as float32 tensors in [0, 1] of shape (3, H, W).

scikit-image is a dev dependency: it is imported only when the photos are asked for. Where it is
missing (a bare GPU image), `save_photos` writes them beforehand to an .npz that
$RANKROBUST_PHOTOS names (bench/prepare_gpu_carry.sh does).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rankrobust.files import save_npz

__all__ = ["SAMPLE_PHOTOS", "center_crops", "random_crops", "sample_photos", "save_photos"]
PHOTOS_ENV = "RANKROBUST_PHOTOS"

# skimage.data names (motorcycle_left is the left view of stereo_motorcycle) and matplotlib's.
SAMPLE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "hubble_deep_field",
    "grace_hopper",
)


def _load(name: str) -> np.ndarray:
    saved = os.environ.get(PHOTOS_ENV)
    if saved:
        with np.load(saved) as z:
            return z[name]
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data

    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def sample_photos(names: tuple[str, ...] = SAMPLE_PHOTOS) -> dict[str, Tensor]:
    """The photos at their own size, name -> float32 (3, H, W) in [0, 1]."""
    bad = sorted(set(names) - set(SAMPLE_PHOTOS))
    if bad:
        raise ValueError(f"names={bad} are not sample photos: use some of {list(SAMPLE_PHOTOS)}")
    out = {}
    for name in names:
        a = np.array(_load(name)[..., :3])  # a writable copy
        out[name] = torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)
    return out


def center_crops(size: int = 224, names: tuple[str, ...] = SAMPLE_PHOTOS) -> Tensor:
    """Each photo resized (bicubic, PIL) so its short side is ``size``, then centre-cropped:
    (len(names), 3, size, size)."""
    from PIL import Image

    crops = []
    for img in sample_photos(names).values():
        h, w = img.shape[-2:]
        scale = size / min(h, w)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        pil = Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        pil = pil.resize((new_w, new_h), Image.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        arr = np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.float32)
        crops.append(torch.from_numpy(arr / 255.0).permute(2, 0, 1))
    return torch.stack(crops).contiguous()


def random_crops(n: int, size: int = 224, seed: int = 0) -> Tensor:
    """n random size x size crops (uniform photo, uniform position) at the photos' own
    resolution: (n, 3, size, size)."""
    if n < 1 or size < 1:
        raise ValueError(f"n={n} and size={size} must be positive")
    photos = list(sample_photos().values())
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = photos[int(torch.randint(len(photos), (1,), generator=g))]
        h, w = img.shape[-2:]
        top = int(torch.randint(h - size + 1, (1,), generator=g))
        left = int(torch.randint(w - size + 1, (1,), generator=g))
        out[i] = img[:, top : top + size, left : left + size]
    return out


def save_photos(path: str | Path) -> Path:
    """Write every sample photo (uint8, H x W x 3) to one .npz, for machines without them."""
    path = Path(path)
    save_npz(path, **{name: np.array(_load(name)[..., :3]) for name in SAMPLE_PHOTOS})
    return path
