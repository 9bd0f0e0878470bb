"""The figures behind C5 (is it rank, or just frequency?): accuracy against energy kept in every
basis, low-pass and high-pass, natural vs robust; the Fourier heat map and its rank analogue.

Each figure takes (rows, out_dir, **options), returns the written paths or raises Skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.reporting.claims import full_image, groups, pairs
from rankrobust.reporting.claims.c5 import BASES_C5, group_points, sweep_groups_bases
from rankrobust.reporting.figures.style import (
    CI_NOTE,
    OKABE_ITO,
    Skip,
    columns,
    errorbar,
    pct_axis,
    plt,
    save,
    subplots,
)

BASIS_COLOURS = {
    "svd": OKABE_ITO["vermillion"],
    "fourier": OKABE_ITO["blue"],
    "dct": OKABE_ITO["green"],
    "wavelet": OKABE_ITO["purple"],
}
BASIS_LABELS = {"svd": "SVD (rank)", "fourier": "Fourier (radius)", "dct": "DCT (radius)",
                "wavelet": "wavelet (levels)"}  # fmt: skip
KIND_STYLE = {"natural": ("-", "o"), "robust": ("--", "s")}


def _nines(e: np.ndarray | float) -> np.ndarray:
    """-log10(1 - e): 1 at 90% energy kept, 2 at 99%, ..."""
    return -np.log10(np.maximum(1.0 - np.asarray(e, dtype=float), 1e-9))


def _energy_axis(ax, xs: list[float]) -> None:
    lo, hi = (min(xs), max(xs)) if xs else (0.5, 3.0)
    ticks = [t for t in (0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 0.9999)
             if lo - 0.15 <= _nines(t) <= hi + 0.15]  # fmt: skip
    ax.set_xticks(_nines(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=8)


def _draw(rows: list[dict], out_dir: Path, mode: str, name: str) -> list[Path]:
    gs = sweep_groups_bases(rows)
    if not gs:
        raise Skip("no finished full-image run with a basis sweep (sweep.bases=[svd,fourier,...])")
    pyplot = plt()
    fig, ax = subplots(pyplot, figsize=(7.6, 4.8))
    xs: list[float] = []
    for g in gs:
        style, marker = KIND_STYLE.get(g.kind, (":", "^"))
        for basis in BASES_C5:
            pts = group_points(g, basis, mode)
            if not pts:
                continue
            x = _nines([e for e, _ in pts]).tolist()
            xs += x
            label = f"{BASIS_LABELS[basis]}, {g.kind}" + (f": {g.label}" if len(gs) > 2 else "")
            errorbar(ax, x, [a for _, a in pts], color=BASIS_COLOURS[basis], ls=style,
                     marker=marker, label=label)  # fmt: skip
        clean = g.clean()
        if clean is not None and mode == "low":
            ax.axhline(clean.value, color="grey", ls=style, lw=0.8)
    _energy_axis(ax, xs)
    what = "low-pass images" if mode == "low" else "high-pass images x - low-pass"
    ax.set_xlabel(
        "energy kept by the low-pass, ||low||² / ||x||² (log scale in 1 - energy)"
        if mode == "low"
        else "energy kept by the low-pass that was removed (log scale in 1 - energy)"
    )
    pct_axis(ax, f"top-1 accuracy on {what}")
    ax.legend(loc="best", ncols=columns(2))
    title = "C5: accuracy against energy kept, one line per basis (solid natural, dashed robust)"
    if mode == "low":
        title += "\ngrey lines: clean accuracy"
    ax.set_title(f"{title}\n{CI_NOTE}", fontsize=9)
    return save(fig, out_dir, name)


def fig_bases_energy(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    return _draw(rows, out_dir, "low", "fig-bases-energy")


def fig_bases_high(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    return _draw(rows, out_dir, "high", "fig-bases-high")


def _heat_runs(rows: list[dict]) -> dict[str, dict]:
    """One run of each kind with heat maps, from a natural/robust pair when there is one."""
    gs = groups(rows, lambda r: full_image(r) and bool(r.get("heat_maps")))
    for n, r in pairs(gs):
        return {"natural": n.runs[0], "robust": r.runs[0]}
    return {g.kind: g.runs[0] for g in gs}


def fig_heat_maps(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    runs = _heat_runs(rows)
    if not runs:
        raise Skip("no finished full-image run with heat maps (analysis.heat_maps=true)")
    kinds = [k for k in ("natural", "robust") if k in runs]
    pyplot = plt()
    fig, axes = subplots(pyplot, 1, len(kinds) + 1, figsize=(4.2 * (len(kinds) + 1), 4.2),
                          grid=True)  # fmt: skip
    image = None
    for ax, kind in zip(axes, kinds, strict=False):
        hm = runs[kind]["heat_maps"]["fourier"]
        f = hm["freqs"]
        image = ax.imshow(np.asarray(hm["error"]), cmap="viridis", vmin=0, vmax=1, origin="lower",
                          extent=(f[0] - 0.5, f[-1] + 0.5, f[0] - 0.5, f[-1] + 0.5))  # fmt: skip
        ax.set_title(f"Fourier heat map, {kind}\neps = {hm['eps']:g}, {hm['n_images']} images",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("frequency $k_x$")
        ax.set_ylabel("frequency $k_y$")
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(kinds)]), label="error rate", shrink=0.85)
    ax = axes[-1]
    for kind in kinds:
        hm = runs[kind]["heat_maps"]["rank"]
        style, marker = KIND_STYLE[kind]
        colour = OKABE_ITO["blue"] if kind == "natural" else OKABE_ITO["vermillion"]
        ax.plot(hm["ranks"], hm["error"], ls=style, marker=marker, ms=3, color=colour, label=kind)
    ax.set_xlabel("rank $i$ of the added $\\epsilon\\, u_i v_i^T$ (the image's own pair)")
    pct_axis(ax, "error rate")
    ax.set_title(
        f"Rank analogue (eps = {runs[kinds[0]]['heat_maps']['rank']['eps']:g})", fontsize=9
    )
    ax.legend(loc="best")
    return save(fig, out_dir, "fig-heat-maps")
