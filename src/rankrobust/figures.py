"""Run files -> the paper's figures (PNG + PDF); reads files, never models.

    python -m rankrobust.figures outputs [more dirs] --out outputs/figures [--only rank-accuracy]
    python -m rankrobust.figures outputs --report [--wandb]      # + report.md (report.py)
    python -m rankrobust.figures outputs --no-figures [--wandb]  # the report only

Figures (each skipped with a printed note when its inputs are missing):
    rank-accuracy         C1  accuracy on L_k(x) vs k, natural vs robust, clean accuracy dotted
    high-rank             C2  accuracy on H_k(x) vs k, natural vs robust, chance line
    rank-examples             L_k and H_k of a few images for several k
    rig                   C3  image | vanilla gradient | RIG map, natural and robust (rig.npz)
    rig-spectrum          C3  mean rank attribution share vs rank, natural vs robust
    train-rank            C4  clean / robust accuracy of models trained on rank-k data vs k
    perturbation-spectrum     singular values of adversarial perturbations vs clean images
The report (rankrobust.report: report.md, report.json) states each claim's rule, numbers and
verdict.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.collect import collect, summary_line, write_table
from rankrobust.rig_plot import saliency_image

# Okabe-Ito colour-blind-safe palette.
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
KIND_COLOURS = {
    "natural": [OKABE_ITO[c] for c in ("blue", "sky", "green")],
    "robust": [OKABE_ITO[c] for c in ("vermillion", "orange", "purple")],
}
MARKERS = {"natural": "o", "robust": "s"}
K_REF = 4  # the rank the C1/C2 rules look at (the nearest measured rank is used if absent)
MARGIN_C1 = 0.05  # robust must keep this much more of its clean accuracy than natural
MARGIN_C2 = 0.05  # "above chance" = more than chance + margin; "at chance" = within it
TOP_RANKS_C3 = 4
FLAT_C4 = 0.02  # a C4 trend smaller than 2 accuracy points over the k range is "flat"

FIGURES = (
    "rank-accuracy",
    "high-rank",
    "rank-examples",
    "rig",
    "rig-spectrum",
    "train-rank",
    "perturbation-spectrum",
)


# ---------------------------------------------------------------------------------------------
# Selecting and grouping runs.


def ok_runs(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def num_classes(rows: list[dict]) -> int:
    for r in rows:
        n = (r.get("config") or {}).get("num_classes") or r.get("num_classes")
        if n:
            return int(n)
    return 10


def group_label(key: tuple) -> str:
    dataset, model, attack = key[:3]
    kind = "robust" if attack not in (None, "none") else "natural"
    return f"{kind}: {model} ({'trained with ' + attack if kind == 'robust' else 'natural'})" + (
        f", {dataset}" if dataset else ""
    )


def sweep_groups(rows: list[dict], mode: str) -> list[dict]:
    """Full-image runs with a `mode` rank sweep, grouped by (dataset, model, attack).

    Each group: key, kind, label, runs, ks (sorted ranks measured by every run), acc (mean over
    the group's runs per k), clean (mean clean accuracy).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in ok_runs(rows):
        if r.get("rank") is not None or mode not in (r.get("rank_sweep") or {}):
            continue
        groups.setdefault((r.get("dataset"), r.get("model"), r.get("attack")), []).append(r)
    out = []
    for key, runs in sorted(groups.items(), key=lambda kv: [str(x) for x in kv[0]]):
        sweeps = [{int(k): v for k, v in r["rank_sweep"][mode].items()} for r in runs]
        ks = sorted(set.intersection(*[set(s) for s in sweeps]))
        if not ks:
            continue
        cleans = [r["clean_acc"] for r in runs if r.get("clean_acc") is not None]
        out.append(
            {
                "key": key,
                "kind": runs[0]["kind"],
                "label": group_label(key)
                + (f", mean of {len(runs)} runs" if len(runs) > 1 else ""),
                "runs": runs,
                "ks": ks,
                "acc": [float(np.mean([s[k] for s in sweeps])) for k in ks],
                "clean": float(np.mean(cleans)) if cleans else None,
            }
        )
    return out


def nearest_k(ks: Sequence[int], k: int = K_REF) -> int:
    below = [x for x in ks if x <= k]
    return max(below) if below else min(ks)


def colour_for(kind: str, index: dict[str, int]) -> str:
    i = index.get(kind, 0)
    index[kind] = i + 1
    palette = KIND_COLOURS.get(kind, [OKABE_ITO["black"]])
    return palette[i % len(palette)]


# ---------------------------------------------------------------------------------------------
# Plot helpers.


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.fontsize": 8,
        }
    )
    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _rank_axis(ax, ks: Sequence[int], label: str) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted({k for k in ks if k & (k - 1) == 0} | {max(ks)})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel(label)


def _pct_axis(ax, label: str) -> None:
    ax.set_ylabel(label)
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")


def _annotate(ax, x: float, y: float, colour: str, dy: int | None = None) -> None:
    """Print a measured value next to its point; of two close values at the same x, the
    higher is labelled above its point and the lower below, so the labels do not collide."""
    near = [t for t in ax.texts if getattr(t, "_rr_xy", (None, 0))[0] == x]
    near = [t for t in near if abs(t._rr_xy[1] - y) < 0.08]
    if dy is None:
        dy = 6 if all(y >= t._rr_xy[1] for t in near) else -12
        if dy == 6:
            for t in near:
                t.xyann = (4, -12)
    text = ax.annotate(
        f"{100 * y:.1f}%",
        (x, y),
        textcoords="offset points",
        xytext=(4, dy),
        fontsize=7,
        color=colour,
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        zorder=5,
    )
    text._rr_xy = (x, y)


class Skip(Exception):
    """A figure's inputs are missing; the message says which."""


# ---------------------------------------------------------------------------------------------
# The figures. Each takes (rows, out_dir, **options) and returns the written paths or raises Skip.


def fig_rank_accuracy(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    groups = sweep_groups(rows, "low")
    if not groups:
        raise Skip("no finished full-image run with a low-rank sweep (rank_sweep.low)")
    plt = _plt()
    fig, (ax, ax_rel) = plt.subplots(1, 2, figsize=(11, 4.2))
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    for g in groups:
        c = colour_for(g["kind"], index)
        ks, acc = g["ks"], g["acc"]
        all_ks |= set(ks)
        m = MARKERS.get(g["kind"], "^")
        ax.plot(ks, acc, marker=m, ms=4, color=c, label=g["label"])
        kr = nearest_k(ks)
        _annotate(ax, kr, acc[ks.index(kr)], c)
        if g["clean"] is not None:
            ax.axhline(g["clean"], color=c, ls=":", lw=1.2)
            ax.annotate(
                f"clean {100 * g['clean']:.1f}%",
                (min(ks), g["clean"]),
                textcoords="offset points",
                xytext=(0, 3),
                fontsize=7,
                color=c,
            )
            rel = [a / g["clean"] if g["clean"] else float("nan") for a in acc]
            ax_rel.plot(ks, rel, marker=m, ms=4, color=c, label=g["label"])
            _annotate(ax_rel, kr, rel[ks.index(kr)], c)
    for a in (ax, ax_rel):
        _rank_axis(a, sorted(all_ks), "rank k of the low-rank test images L_k(x)")
        a.axvline(nearest_k(sorted(all_ks)), color="grey", ls="--", lw=0.8)
    _pct_axis(ax, "top-1 accuracy on L_k(x) (%)")
    ax_rel.set_ylabel("accuracy on L_k(x) / clean accuracy (%)")
    top = max([1.1] + [np.nanmax(np.asarray(ln.get_ydata(), float)) + 0.05 for ln in ax_rel.lines])
    ax_rel.set_ylim(-0.02, top)
    ax_rel.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_title("Accuracy on rank-k approximations (dotted: clean accuracy)")
    ax_rel.set_title(f"Share of clean accuracy kept (dashed: k={nearest_k(sorted(all_ks))})")
    ax.legend(loc="lower right")
    fig.suptitle("C1: robust models keep more accuracy on low-rank images", fontweight="bold")
    return _save(fig, out_dir, "fig-rank-accuracy")


def fig_high_rank(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    groups = sweep_groups(rows, "high")
    if not groups:
        raise Skip("no finished full-image run with a high-rank sweep (rank_sweep.high)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    chance = 1.0 / num_classes(rows)
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    for g in groups:
        c = colour_for(g["kind"], index)
        ks, acc = g["ks"], g["acc"]
        all_ks |= set(ks)
        ax.plot(ks, acc, marker=MARKERS.get(g["kind"], "^"), ms=4, color=c, label=g["label"])
        kr = nearest_k(ks)
        _annotate(ax, kr, acc[ks.index(kr)], c)
    ks = sorted(all_ks)
    ax.axhline(
        chance, color=OKABE_ITO["black"], ls="--", lw=1, label=f"chance (1/{num_classes(rows)})"
    )
    ax.axhspan(chance - MARGIN_C2, chance + MARGIN_C2, color="grey", alpha=0.15, lw=0)
    ax.axvline(nearest_k(ks), color="grey", ls=":", lw=0.8)
    _rank_axis(ax, ks, "rank k removed: test images are H_k(x) = x - L_k(x)")
    _pct_axis(ax, "top-1 accuracy on H_k(x) (%)")
    ax.set_title(
        f"C2: accuracy on high-rank residuals\n(grey band: chance ± {100 * MARGIN_C2:.0f} points)",
        fontweight="bold",
    )
    ax.legend(loc="upper right")
    return _save(fig, out_dir, "fig-high-rank")


def _first_images(source: str | None, n: int) -> tuple[np.ndarray, str]:
    """n images (N, C, H, W) in [0, 1], one per class, from a tarball / ImageFolder root, else
    synthetic ones."""
    if source and Path(source).exists():
        from rankrobust.data import read_images

        try:
            data = read_images(source, n, one_per_class=True)
            return data.images.numpy(), f"images from {Path(source).name}"
        except Exception as err:  # noqa: BLE001 - fall back to synthetic images, say so
            print(f"[figures] could not read images from {source}: {err}; using synthetic ones")
    from rankrobust.data import synthetic_sets

    _, test = synthetic_sets(1, n)
    return test.images.numpy(), "synthetic images (rankrobust.data.synthetic_sets)"


def fig_rank_examples(
    rows: list[dict], out_dir: Path, images: str | None = None, **_: Any
) -> list[Path]:
    import torch

    from rankrobust.svd import factorize

    n = 3
    x, source = None, ""
    for r in ok_runs(rows):
        if r.get("rig_npz"):
            with np.load(r["rig_npz"]) as z:
                if "images" in z.files:
                    x, source = (
                        z["images"][:n],
                        f"test images from {Path(r['run_dir']).name}/rig.npz",
                    )
                    break
    if x is None:
        x, source = _first_images(images, n)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    full = min(x.shape[-2:])
    ks = [k for k in (1, 2, 4, 8, 16) if k < full]
    fac = factorize(x)
    plt = _plt()
    cols = 1 + 2 * len(ks)
    fig, axes = plt.subplots(len(x), cols, figsize=(1.35 * cols, 1.3 * len(x) + 0.9))
    axes = np.atleast_2d(axes)

    def show(ax, img, title):
        ax.imshow(np.clip(img.permute(1, 2, 0).numpy(), 0, 1), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if title:
            ax.set_title(title, fontsize=8)

    for i in range(len(x)):
        show(axes[i, 0], x[i], "original" if i == 0 else None)
        for j, k in enumerate(ks):
            show(
                axes[i, 1 + j],
                fac[i : i + 1].low_rank(k, clamp=True)[0],
                f"L_{k}" if i == 0 else None,
            )
            h = fac[i : i + 1].high_rank(k)[0]
            lo, hi = h.amin(), h.amax()
            show(
                axes[i, 1 + len(ks) + j],
                (h - lo) / (hi - lo + 1e-12),
                f"H_{k} (rescaled)" if i == 0 else None,
            )
    fig.suptitle(
        f"Low-rank approximations L_k and high-rank residuals H_k = x - L_k ({source})\n"
        "H_k is min-max rescaled to [0, 1] per image for visibility (it is ~zero-mean)",
        fontsize=9,
    )
    return _save(fig, out_dir, "fig-rank-examples")


def _rig_runs(rows: list[dict]) -> dict[str, dict]:
    """The first finished run of each kind with a rig.npz (full-image runs first)."""
    found: dict[str, dict] = {}
    for r in sorted(ok_runs(rows), key=lambda r: (r.get("rank") is not None, r["run_dir"])):
        if r.get("rig_npz") and r.get("kind") and r["kind"] not in found:
            found[r["kind"]] = r
    return found


def _class_namer(arrays: dict) -> Callable[[int], str]:
    """Class index -> name, from a rig.npz's `classes` when it has them."""
    names = [str(c) for c in arrays.get("classes", [])]
    return lambda i: names[i] if i < len(names) else f"class {i}"


def fig_rig(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    runs = _rig_runs(rows)
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
        columns += [(kind, "vanilla", f"{kind}: vanilla gradient"), (kind, "pixel", f"{kind}: RIG")]
    plt = _plt()
    fig, axes = plt.subplots(n, len(columns), figsize=(1.9 * len(columns), 1.9 * n + 0.9))
    axes = np.atleast_2d(axes)
    for i in range(n):
        for j, (kind, key, title) in enumerate(columns):
            ax = axes[i, j]
            arr = data[kind][key][i]
            if key == "images":
                ax.imshow(np.clip(arr.transpose(1, 2, 0), 0, 1), interpolation="nearest")
            else:
                ax.imshow(
                    saliency_image(arr), cmap="magma", vmin=0, vmax=1, interpolation="nearest"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0 and "targets" in data[kind]:
                name = _class_namer(data[kind])
                targets = {k: int(data[k]["targets"][i]) for k in kinds if "targets" in data[k]}
                if len(set(targets.values())) == 1 or not same:
                    label = f"explained: {name(int(data[kind]['targets'][i]))}"
                else:
                    label = "explained: " + ", ".join(f"{k} {name(t)}" for k, t in targets.items())
                if "labels" in data[kind]:
                    label += f"\n(true: {name(int(data[kind]['labels'][i]))})"
                ax.set_ylabel(label, fontsize=7)
    missing = {"natural", "robust"} - set(kinds)
    fig.suptitle(
        "C3 (Figure 1 style): image | vanilla gradient | Rank Integrated Gradients\n"
        "maps: |attribution| summed over channels, scaled to each map's 99th percentile"
        + (f"; no {missing.pop()} run with rig.npz" if missing else ""),
        fontsize=9,
    )
    return _save(fig, out_dir, "fig-rig")


def rank_attribution(row: dict) -> tuple[list[int], np.ndarray] | None:
    """(ranks, mean attribution per path rank) of a run, from metrics.json or its rig.npz."""
    rig = row.get("rig") or {}
    if rig.get("mean_per_rank") and rig.get("ranks"):
        return [int(k) for k in rig["ranks"]], np.asarray(rig["mean_per_rank"], dtype=float)
    if row.get("rig_npz"):
        with np.load(row["rig_npz"]) as z:
            if "per_rank" in z.files and "ranks" in z.files:
                return [int(k) for k in z["ranks"]], z["per_rank"].mean(0).astype(float)
    return None


def top_share(ranks: Sequence[int], per_rank: np.ndarray, top: int = TOP_RANKS_C3) -> float:
    """Share of the total |rank attribution| in the path ranks <= top."""
    a = np.abs(np.asarray(per_rank, dtype=float))
    total = a.sum()
    return float(a[np.asarray(ranks) <= top].sum() / total) if total > 0 else float("nan")


def fig_rig_spectrum(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    items = [(r, rank_attribution(r)) for r in ok_runs(rows) if r.get("kind")]
    items = [(r, a) for r, a in items if a is not None]
    if not items:
        raise Skip("no finished run with RIG rank attributions (metrics.json rig or rig.npz)")
    plt = _plt()
    fig, (ax, ax_cum) = plt.subplots(1, 2, figsize=(11, 4.2))
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    for r, (ranks, per_rank) in sorted(items, key=lambda it: (it[0]["kind"], it[0]["run_dir"])):
        c = colour_for(r["kind"], index)
        label = f"{r['kind']}: {r['model']} {r['attack']}" + (
            f", trained on rank {r['rank']}" if r.get("rank") is not None else ""
        )
        denom = np.abs(per_rank).sum() or 1.0
        share = per_rank / denom
        cum = np.cumsum(np.abs(per_rank)) / denom
        m = MARKERS.get(r["kind"], "^")
        ax.plot(ranks, share, marker=m, ms=3, color=c, label=label)
        ax_cum.plot(ranks, cum, marker=m, ms=3, color=c, label=label)
        ts = top_share(ranks, per_rank)
        _annotate(ax_cum, nearest_k(ranks, TOP_RANKS_C3), ts, c)
        all_ks |= set(ranks)
    ks = sorted(all_ks)
    for a in (ax, ax_cum):
        _rank_axis(a, ks, "path rank k (segment L_{k-1}(x) -> L_k(x))")
        a.axvline(TOP_RANKS_C3, color="grey", ls="--", lw=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("mean rank attribution a_k / Σ|a_k|")
    ax.set_title("RIG attribution share per rank")
    _pct_axis(ax_cum, "cumulative share of Σ|a_k| (%)")
    ax_cum.set_title(f"Cumulative share (dashed: top {TOP_RANKS_C3} ranks)")
    ax.legend(loc="upper right")
    fig.suptitle("C3: which ranks RIG credits, natural vs robust", fontweight="bold")
    return _save(fig, out_dir, "fig-rig-spectrum")


def train_rank_groups(rows: list[dict]) -> list[dict]:
    """Runs trained on rank-k data grouped by (dataset, model, attack, transform_mode)."""
    groups: dict[tuple, dict[int, list[dict]]] = {}
    for r in ok_runs(rows):
        if r.get("rank") is None or r.get("clean_acc") is None:
            continue
        key = (r.get("dataset"), r.get("model"), r.get("attack"), r.get("transform_mode"))
        groups.setdefault(key, {}).setdefault(int(r["rank"]), []).append(r)
    out = []
    for key, by_k in sorted(groups.items(), key=lambda kv: [str(x) for x in kv[0]]):
        ks = sorted(by_k)

        def mean(field: str, by_k=by_k, ks=ks) -> list[float | None]:
            vals = []
            for k in ks:
                v = [r[field] for r in by_k[k] if r.get(field) is not None]
                vals.append(float(np.mean(v)) if v else None)
            return vals

        out.append(
            {
                "key": key,
                "kind": "robust" if key[2] not in (None, "none") else "natural",
                "ks": ks,
                "clean": mean("clean_acc"),
                "robust": mean("robust_acc"),
                "n": sum(len(v) for v in by_k.values()),
            }
        )
    return out


def fig_train_rank(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    groups = train_rank_groups(rows)
    if not groups:
        raise Skip("no finished run trained on rank-k data (a `-m rank=...` sweep)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    for g in groups:
        c = colour_for(g["kind"], index)
        dataset, model, attack, mode = g["key"]
        name = f"{model}, {attack}, {mode}-rank data"
        ax.plot(g["ks"], g["clean"], marker="o", ms=4, color=c, label=f"clean: {name}")
        pairs = [(k, v) for k, v in zip(g["ks"], g["robust"], strict=True) if v is not None]
        if pairs:
            ax.plot(
                *zip(*pairs, strict=True),
                marker="s",
                ms=4,
                ls="--",
                color=c,
                label=f"robust: {name}",
            )
        for k, v in zip(g["ks"], g["clean"], strict=True):
            _annotate(ax, k, v, c)
        for k, v in pairs:
            _annotate(ax, k, v, c)
        all_ks |= set(g["ks"])
    _rank_axis(ax, sorted(all_ks), "rank k of the training and test images")
    _pct_axis(ax, "top-1 accuracy (%)")
    ax.axhline(1.0 / num_classes(rows), color="black", ls=":", lw=1, label="chance")
    ax.set_title(
        "C4: models trained on rank-k data\n(solid: clean, dashed: robust under the eval attack)",
        fontweight="bold",
    )
    ax.legend(loc="best")
    return _save(fig, out_dir, "fig-train-rank")


def fig_perturbation_spectrum(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    items = [
        r
        for r in ok_runs(rows)
        if (r.get("perturbation_spectrum") or {}).get("perturbation") and r.get("rank") is None
    ]
    if not items:
        raise Skip(
            "no finished full-image run with a perturbation_spectrum "
            "(set analysis.perturbation_spectrum=true)"
        )
    plt = _plt()
    fig, (ax, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
    index: dict[str, int] = {}
    clean_drawn = False
    for r in sorted(items, key=lambda r: (r["kind"], r["run_dir"])):
        spec = r["perturbation_spectrum"]
        if spec.get("clean") and not clean_drawn:
            s = np.asarray(spec["clean"], dtype=float)
            idx = np.arange(1, len(s) + 1)
            kw = dict(color=OKABE_ITO["black"], ls="--", marker=".", label="clean images")
            ax.plot(idx, s, **kw)
            ax_n.plot(idx, s / s.sum(), **kw)
            clean_drawn = True
        c = colour_for(r["kind"], index)
        s = np.asarray(spec["perturbation"], dtype=float)
        idx = np.arange(1, len(s) + 1)
        eps = (r.get("eval_attack") or {}).get("eps")
        label = f"x_adv - x, {r['kind']} model ({r['model']} {r['attack']})"
        m = MARKERS.get(r["kind"], "^")
        ax.plot(idx, s, color=c, marker=m, ms=3, label=label)
        ax_n.plot(idx, s / s.sum(), color=c, marker=m, ms=3, label=label)
        if eps is not None:
            ax.set_title(f"Mean singular values (eval attack eps = {eps:.4g})")
    ax.set_yscale("log")
    ax.set_xlabel("singular value index i (per channel)")
    ax.set_ylabel("mean singular value s_i (pixel units, log scale)")
    if not ax.get_title():
        ax.set_title("Mean singular values")
    ax_n.set_yscale("log")
    ax_n.set_xlabel("singular value index i (per channel)")
    ax_n.set_ylabel("s_i / Σ_j s_j (log scale)")
    ax_n.set_title("Normalised spectra (shape)")
    ax.legend(loc="upper right")
    fig.suptitle(
        "Singular value spectra of adversarial perturbations vs clean images", fontweight="bold"
    )
    return _save(fig, out_dir, "fig-perturbation-spectrum")


DRAW: dict[str, Callable[..., list[Path]]] = {
    "rank-accuracy": fig_rank_accuracy,
    "high-rank": fig_high_rank,
    "rank-examples": fig_rank_examples,
    "rig": fig_rig,
    "rig-spectrum": fig_rig_spectrum,
    "train-rank": fig_train_rank,
    "perturbation-spectrum": fig_perturbation_spectrum,
}


def draw(rows: list[dict], out_dir: str | Path, only: Sequence[str] | None = None, **opts) -> dict:
    """Draw the named figures (all by default); {name: [paths]} or {name: "skipped: why"}."""
    out_dir = Path(out_dir)
    done: dict[str, Any] = {}
    for name in only or FIGURES:
        try:
            done[name] = DRAW[name](rows, out_dir, **opts)
            print(f"[figures] fig-{name}: {', '.join(str(p) for p in done[name])}")
        except Skip as why:
            done[name] = f"skipped: {why}"
            print(f"[figures] fig-{name} skipped: {why}")
    return done


# ---------------------------------------------------------------------------------------------
# The claims report.


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figures and claims report from run files.")
    parser.add_argument("runs", nargs="*", default=["outputs"], help="outputs or sweep folders")
    parser.add_argument("--out", default="outputs/figures", help="output folder")
    parser.add_argument("--only", nargs="*", choices=FIGURES, help="draw only these figures")
    parser.add_argument("--images", default=None, help="tarball/ImageFolder for rank-examples")
    parser.add_argument("--no-figures", action="store_true", help="report only")
    parser.add_argument("--report", action="store_true", help="also write report.md")
    parser.add_argument("--wandb", action="store_true", help="log the report as a W&B run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = collect(args.runs)
    write_table(rows, out)
    print(f"[figures] {summary_line(rows)} under {', '.join(args.runs)}")
    drawn = None
    if not args.no_figures:
        drawn = draw(rows, out, only=args.only, images=args.images)
    if args.report or args.no_figures:
        from rankrobust.report import log_wandb, report

        _, results = report(rows, out, None if args.only else drawn)
        if args.wandb:
            try:
                log_wandb(rows, results, out)
            except Exception as err:  # noqa: BLE001 - the report files are written already
                print(f"[report] W&B logging skipped: {type(err).__name__}: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
