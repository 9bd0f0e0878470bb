"""Drawing attribution maps: image | vanilla gradient | RIG map (rig.png) and image | gradient |
IG | RIG | SIG (attribution.png), one row per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rankrobust.files import save_figure

SALIENCY_CMAP = "magma"
SALIENCY_LABEL = "|attribution| / 99th percentile"


def saliency_image(attribution: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """(C, H, W) attribution -> (H, W) in [0, 1]: |a| summed over channels, clipped at a percentile.

    The usual way to show gradient-style maps (Simonyan et al.; captum's visualisation).
    """
    magnitude = np.abs(attribution).sum(axis=0)
    scale = np.percentile(magnitude, percentile)
    return np.clip(magnitude / scale, 0, 1) if scale > 0 else np.zeros_like(magnitude)


def class_namer(arrays: dict, classes: Sequence[str] = ()) -> Callable[[int], str]:
    """Class index -> name, from `classes` or a rig.npz's `classes` array, else 'class i'."""
    names = [str(c) for c in (classes if len(classes) else arrays.get("classes", []))]
    return lambda i: names[i] if 0 <= i < len(names) else f"class {i}"


def saliency_colorbar(fig, mappable, axes) -> None:
    """One colour bar for all saliency maps of a figure (they share the [0, 1] scale)."""
    bar = fig.colorbar(mappable, ax=axes, fraction=0.025, pad=0.02, shrink=0.8)
    bar.set_label(SALIENCY_LABEL, fontsize=7)
    bar.ax.tick_params(labelsize=7)


def draw_rig_rows(axes, images, vanilla, rig, captions: Sequence[str], predicted=None):
    """Fill a (rows, 3) grid of matplotlib axes with image | vanilla gradient | RIG map; the
    image's y label is its caption (e.g. the true class), the maps' x label `predicted[i]`.
    Returns the last map's image (for a colour bar)."""
    mappable = None
    for row, (image, van, att, caption) in enumerate(
        zip(images, vanilla, rig, captions, strict=True)
    ):
        ax = axes[row, 0]
        ax.imshow(np.clip(np.transpose(image, (1, 2, 0)), 0, 1), interpolation="nearest")
        ax.set_ylabel(caption, fontsize=7)
        for col, (att_map, title) in enumerate(((van, "vanilla gradient"), (att, "RIG")), 1):
            ax = axes[row, col]
            mappable = ax.imshow(
                saliency_image(att_map), cmap=SALIENCY_CMAP, vmin=0, vmax=1, interpolation="nearest"
            )
            if row == 0:
                ax.set_title(title, fontsize=8)
            if predicted is not None:
                name = str(predicted[row])  # long ImageNet names would overrun the next map
                name = name if len(name) <= 20 else name[:19] + "…"
                ax.set_xlabel(f"pred: {name}", fontsize=7)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    return mappable


def save_rig_grid(npz: dict, path: str | Path, title: str, classes: Sequence[str] = ()) -> Path:
    """PNG grid from the arrays of a rig.npz (images, vanilla, pixel, targets, labels): each
    row's true class on the left, the predicted (explained) class under each map, a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(npz["images"])
    name = class_namer(npz, classes)
    predicted = [name(int(t)) for t in np.asarray(npz["targets"]).tolist()]
    labels = npz.get("labels")
    true = (
        [f"true: {name(int(t))}" for t in np.asarray(labels).tolist()]
        if labels is not None
        else [""] * n
    )
    fig, axes = plt.subplots(n, 3, figsize=(5.2, 1.6 * n + 0.7), squeeze=False)
    mappable = draw_rig_rows(axes, npz["images"], npz["vanilla"], npz["pixel"], true, predicted)
    fig.suptitle(title + "\nmaps explain the predicted class", fontsize=9)
    saliency_colorbar(fig, mappable, list(axes.ravel()))
    path = Path(path)
    save_figure(fig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


METHOD_TITLES = {"gradient": "gradient", "ig": "IG", "rig": "RIG", "sig": "SIG"}


def draw_method_rows(axes, images, maps: dict, captions: Sequence[str], predicted=None):
    """Fill a (rows, 1 + len(maps)) grid: the image, then one map per method (``maps``: method
    -> (N, C, H, W) array, drawn in its order).  Returns the last map's image (colour bar)."""
    mappable = None
    for row, image in enumerate(images):
        ax = axes[row, 0]
        ax.imshow(np.clip(np.transpose(image, (1, 2, 0)), 0, 1), interpolation="nearest")
        ax.set_ylabel(captions[row], fontsize=7)
        if row == 0:
            ax.set_title("image", fontsize=8)
        for col, (method, arr) in enumerate(maps.items(), 1):
            ax = axes[row, col]
            mappable = ax.imshow(
                saliency_image(arr[row]), cmap=SALIENCY_CMAP, vmin=0, vmax=1,
                interpolation="nearest",
            )  # fmt: skip
            if row == 0:
                ax.set_title(METHOD_TITLES.get(method, method), fontsize=8)
            if predicted is not None and col == 1:
                ax.set_xlabel(f"pred: {predicted[row]}", fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    return mappable


def save_attribution_grid(
    npz: dict, path: str | Path, title: str, classes: Sequence[str] = (), rows: int = 6
) -> Path:
    """PNG grid image | gradient | IG | RIG | SIG (the methods in an attribution.npz, arrays
    ``map_<method>``) for its first ``rows`` images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = {k[4:]: np.asarray(v) for k, v in npz.items() if k.startswith("map_")}
    n = min(rows, len(npz["images"]))
    name = class_namer(npz, classes)
    predicted = [name(int(t)) for t in np.asarray(npz["targets"])[:n].tolist()]
    true = [f"true: {name(int(t))}" for t in np.asarray(npz["labels"])[:n].tolist()]
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.5 * cols + 0.6, 1.5 * n + 0.7), squeeze=False)
    mappable = draw_method_rows(
        axes, np.asarray(npz["images"])[:n], {k: v[:n] for k, v in maps.items()}, true, predicted
    )
    fig.suptitle(title + "\nmaps explain the predicted class", fontsize=9)
    if mappable is not None:
        saliency_colorbar(fig, mappable, list(axes.ravel()))
    path = Path(path)
    save_figure(fig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
