"""Drawing attribution maps: image | vanilla gradient | RIG map, one row per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def saliency_image(attribution: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """(C, H, W) attribution -> (H, W) in [0, 1]: |a| summed over channels, clipped at a percentile.

    The usual way to show gradient-style maps (Simonyan et al.; captum's visualisation).
    """
    magnitude = np.abs(attribution).sum(axis=0)
    scale = np.percentile(magnitude, percentile)
    return np.clip(magnitude / scale, 0, 1) if scale > 0 else np.zeros_like(magnitude)


def draw_rig_rows(axes, images, vanilla, rig, captions: Sequence[str]) -> None:
    """Fill a (rows, 3) grid of matplotlib axes with image | vanilla gradient | RIG map."""
    for row, (image, van, att, caption) in enumerate(
        zip(images, vanilla, rig, captions, strict=True)
    ):
        panels = (
            (np.transpose(image, (1, 2, 0)), None, caption),
            (saliency_image(van), "gray", "vanilla gradient"),
            (saliency_image(att), "gray", "RIG"),
        )
        for col, (picture, cmap, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(np.clip(picture, 0, 1), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0 or col == 0:
                ax.set_title(title, fontsize=8)


def save_rig_grid(npz: dict, path: str | Path, title: str, classes: Sequence[str] = ()) -> Path:
    """PNG grid from the arrays of a rig.npz (images, vanilla, pixel, targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(npz["images"])
    fig, axes = plt.subplots(n, 3, figsize=(4.5, 1.5 * n + 0.6), squeeze=False)
    names = [classes[t] if t < len(classes) else f"class {t}" for t in npz["targets"].tolist()]
    draw_rig_rows(axes, npz["images"], npz["vanilla"], npz["pixel"], [f"top: {c}" for c in names])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
