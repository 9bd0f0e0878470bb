"""Image figures: L_k / H_k examples, the Figure-1-style RIG maps, perturbation spectra.

Each figure takes (rows, out_dir, **options), returns the written paths or raises Skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.attribution.plot import (
    SALIENCY_CMAP,
    class_namer,
    saliency_colorbar,
    saliency_image,
)
from rankrobust.reporting import claims as C
from rankrobust.reporting.figures.style import (
    MARKERS,
    OKABE_ITO,
    Skip,
    colour_for,
    grouped_curves,
    plt,
    save,
    subplots,
)


def _first_images(source: str | None, n: int) -> tuple[np.ndarray, str]:
    """n images (N, C, H, W) in [0, 1], one per class, from a tarball / ImageFolder root, else
    synthetic ones."""
    if source and Path(source).exists():
        from rankrobust.data import read_images

        try:
            data = read_images(source, n, one_per_class=True)
            name = "CIFAR-10" if "cifar" in Path(source).name.lower() else Path(source).name
            return data.images.numpy(), f"{name} test images"
        except Exception as err:  # noqa: BLE001 - fall back to synthetic images, say so
            print(f"[figures] could not read images from {source}: {err}; using synthetic ones")
    from rankrobust.data import synthetic_sets

    _, test = synthetic_sets(1, n)
    return test.images.numpy(), "synthetic images"


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def fig_rank_examples(
    rows: list[dict], out_dir: Path, images: str | None = None, **_: Any
) -> list[Path]:
    import torch

    from rankrobust.svd import factorize

    n = 3
    x, source = None, ""
    for r in C.usable(rows):
        if r.get("rig_npz"):
            with np.load(r["rig_npz"]) as z:
                if "images" in z.files:
                    x, source = z["images"][:n], f"{C.dataset_name(r)} test images"
                    break
    if x is None:
        x, source = _first_images(images, n)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    full = min(x.shape[-2:])
    ks = [k for k in (1, 2, 4, 8, 16) if k < full]
    fac = factorize(x)
    pyplot = plt()
    cols = 1 + 2 * len(ks)
    fig, axes = subplots(
        pyplot, len(x), cols, figsize=(1.35 * cols, 1.3 * len(x) + 0.9), grid=True, layout=None
    )
    axes = np.atleast_2d(axes)

    def show(ax, img, title):
        ax.imshow(np.clip(img.permute(1, 2, 0).numpy(), 0, 1), interpolation="nearest")
        _off(ax)
        if title:
            ax.set_title(title, fontsize=9)

    for i in range(len(x)):
        show(axes[i, 0], x[i], "$x$" if i == 0 else None)
        for j, k in enumerate(ks):
            low = fac[i : i + 1].low_rank(k, clamp=True)[0]
            show(axes[i, 1 + j], low, f"$L_{{{k}}}(x)$" if i == 0 else None)
            h = fac[i : i + 1].high_rank(k)[0]
            lo, hi = h.amin(), h.amax()
            show(
                axes[i, 1 + len(ks) + j],
                (h - lo) / (hi - lo + 1e-12),
                f"$H_{{{k}}}(x)$" if i == 0 else None,
            )
    fig.suptitle(
        f"Low-rank approximations $L_k(x)$ and high-rank residuals $H_k(x) = x - L_k(x)$ "
        f"({source})\n$H_k(x)$ is min-max rescaled to [0, 1] per image for visibility "
        "(it is about zero-mean)",
        fontsize=9,
    )
    return save(fig, out_dir, "fig-rank-examples")


def fig_rig(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    runs = C.rig_runs(rows)
    if not runs:
        raise Skip("no finished run with a rig.npz (run with rig.enabled=true)")
    kinds = [k for k in ("natural", "robust") if k in runs]
    data = {}
    for kind in kinds:
        with np.load(runs[kind]["rig_npz"]) as z:
            data[kind] = {k: z[k] for k in z.files}
    n = min(4, *(len(d["images"]) for d in data.values()))
    same = len(kinds) == 2 and np.allclose(
        data["natural"]["images"][:n], data["robust"]["images"][:n], atol=1e-4
    )
    columns: list[tuple[str, str, str]] = []  # (kind, array key, title)
    for kind in kinds:
        if not columns or not same:
            columns.append((kind, "images", "image"))
        columns += [
            (kind, "vanilla", f"{kind}:\nvanilla gradient"),
            (kind, "pixel", f"{kind}:\nRIG"),
        ]
    pyplot = plt()
    fig, axes = subplots(
        pyplot, n, len(columns), figsize=(1.9 * len(columns) + 0.8, 1.9 * n + 1.0),
        squeeze=False, grid=True, layout=None,
    )  # fmt: skip
    mappable = None
    for i in range(n):
        for j, (kind, key, title) in enumerate(columns):
            ax = axes[i, j]
            arr = data[kind][key][i]
            if key == "images":
                ax.imshow(np.clip(arr.transpose(1, 2, 0), 0, 1), interpolation="nearest")
            else:
                mappable = ax.imshow(
                    saliency_image(arr), cmap=SALIENCY_CMAP, vmin=0, vmax=1, interpolation="nearest"
                )
                if "targets" in data[kind]:  # the class this map explains: the model's top-1
                    pred = class_namer(data[kind])(int(data[kind]["targets"][i]))
                    ax.set_xlabel(f"pred: {pred}", fontsize=7)
            _off(ax)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0 and "labels" in data[kind]:
                true = class_namer(data[kind])(int(data[kind]["labels"][i]))
                ax.set_ylabel(f"true: {true}", fontsize=8)
    if mappable is not None:
        saliency_colorbar(fig, mappable, list(axes.ravel()))
    missing = {"natural", "robust"} - set(kinds)
    dataset = C.dataset_name(runs[kinds[0]])
    fig.suptitle(
        f"C3 ({dataset}, Figure 1 style): image | vanilla gradient | Rank Integrated Gradients\n"
        "maps explain the predicted class; |attribution| summed over channels, scaled to each "
        "map's 99th percentile" + (f"; no {missing.pop()} run with rig.npz" if missing else ""),
        fontsize=9,
    )
    return save(fig, out_dir, "fig-rig")


def fig_perturbation_spectrum(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    items = [
        r
        for r in C.usable(rows)
        if (r.get("perturbation_spectrum") or {}).get("perturbation")
        and r.get("rank") is None
        and r.get("kind")
    ]
    if not items:
        raise Skip(
            "no finished full-image run with a perturbation_spectrum "
            "(set analysis.perturbation_spectrum=true)"
        )
    pyplot = plt()
    fig, (ax, ax_n) = subplots(pyplot, 1, 2, figsize=(11.5, 4.4))
    index: dict[str, int] = {}
    clean_drawn = False
    eps_values = set()

    def label(r: dict) -> str:
        return (
            f"$x_\\mathrm{{adv}} - x$, {r['kind']} model "
            f"({r['model']}, {r['attack']}, {C.dataset_name(r)})"
        )

    curves, note = grouped_curves(items, label, "fig-perturbation-spectrum")
    for name, runs in curves:
        spec = runs[0]["perturbation_spectrum"]
        if spec.get("clean") and not clean_drawn:
            s = np.asarray(spec["clean"], dtype=float)
            idx = np.arange(1, len(s) + 1)
            kw = dict(color=OKABE_ITO["black"], ls="--", marker=".", label="clean images $x$")
            ax.plot(idx, s, **kw)
            ax_n.plot(idx, s / s.sum(), **kw)
            clean_drawn = True
        kind = runs[0]["kind"]
        c = colour_for(kind, index)
        n = len(runs[0]["perturbation_spectrum"]["perturbation"])
        same = [r for r in runs if len(r["perturbation_spectrum"]["perturbation"]) == n]
        spectra = np.asarray([r["perturbation_spectrum"]["perturbation"] for r in same], float)
        for r in same:
            eps = (r.get("eval_attack") or {}).get("eps")
            if eps is not None:
                eps_values.add(f"{eps:.4g}")
        idx = np.arange(1, n + 1)
        m = MARKERS.get(kind, "^")
        shown = f"{name} ({len(same)} runs)" if len(same) > 1 else name
        for target, values in ((ax, spectra), (ax_n, spectra / spectra.sum(1, keepdims=True))):
            target.plot(idx, values.mean(0), color=c, marker=m, ms=3, label=shown)
            if len(same) > 1:
                target.fill_between(idx, values.min(0), values.max(0), color=c, alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("singular value index $i$ (per channel)")
    ax.set_ylabel("mean singular value $s_i$ (pixel units, log scale)")
    eps_text = f" (eval attack $\\epsilon$ = {', '.join(sorted(eps_values))})" if eps_values else ""
    ax.set_title("Mean singular values" + eps_text, fontsize=10)
    ax_n.set_yscale("log")
    ax_n.set_xlabel("singular value index $i$ (per channel)")
    ax_n.set_ylabel(r"$s_i / \Sigma_j s_j$ (log scale)")
    ax_n.set_title("Normalised spectra (shape)", fontsize=10)
    ax.legend(loc="upper right")
    title = "Singular value spectra of adversarial perturbations vs clean images"
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
    return save(fig, out_dir, "fig-perturbation-spectrum")
