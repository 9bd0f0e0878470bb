"""C3 as the field measures attributions: insertion / deletion curves per method, and the map grid
image | gradient | IG | RIG | SIG for the natural and the robust model (metrics.json's
``attribution`` and attribution.npz; reads files, never models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.attribution.plot import METHOD_TITLES, draw_method_rows, saliency_colorbar
from rankrobust.reporting.claims.attribution import attribution_runs
from rankrobust.reporting.figures.style import Skip, plt, save, subplots
from rankrobust.results import FILES

METHOD_COLOURS = {"gradient": "#7f7f7f", "ig": "#1f77b4", "rig": "#d62728", "sig": "#2ca02c"}


def _runs(rows: list[dict]) -> dict[str, dict]:
    runs = attribution_runs(rows)
    if not runs:
        raise Skip("no finished run with attribution metrics (run with attribution.enabled=true)")
    return {k: runs[k] for k in ("natural", "robust") if k in runs}


def fig_attribution_curves(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    """Mean insertion (solid) and deletion (dashed) accuracy vs the fraction of elements
    replaced, one panel per model kind, one colour per method; DiffID in the legend."""
    runs = _runs(rows)
    pyplot = plt()
    fig, axes = subplots(
        pyplot, 1, len(runs), figsize=(4.6 * len(runs), 3.6), squeeze=False, layout=None
    )
    for ax, (kind, run) in zip(axes[0], runs.items(), strict=True):
        att = run["attribution"]
        for method, curve in (att.get("curves") or {}).items():
            colour = METHOD_COLOURS.get(method)
            diffid = (att.get("mean") or {}).get(method, {}).get("diffid")
            label = METHOD_TITLES.get(method, method) + (
                f" (DiffID {diffid:.2f})" if diffid is not None else ""
            )
            ax.plot(curve["ratios"], curve["insertion"], "-o", ms=3, color=colour, label=label)
            ax.plot(curve["ratios"], curve["deletion"], "--", color=colour, alpha=0.8)
        ax.set_title(f"{kind} ({att.get('n_images')} images, {att.get('steps')} evaluations)")
        ax.set_xlabel("fraction of elements replaced by the mean of the rest")
        ax.set_ylabel("top class kept")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower left")
    fig.suptitle(
        "C3 faithfulness (SIG's DiffID): insertion replaces the least important elements (solid), "
        "deletion the most important (dashed)",
        fontsize=9,
        y=1.04,
    )
    return save(fig, out_dir, "fig-attribution-curves")


def fig_attribution_maps(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    """image | gradient | IG | RIG | SIG for the first images, natural and robust side by side."""
    runs = _runs(rows)
    data = {}
    for kind, run in runs.items():
        path = Path(run["run_dir"]) / FILES["attribution_npz"]
        if path.is_file():
            with np.load(path) as z:
                data[kind] = {k: z[k] for k in z.files}
    if not data:
        raise Skip("no attribution.npz beside the runs' metrics.json")
    n = min(4, *(len(d["images"]) for d in data.values()))
    widths = [1 + sum(k.startswith("map_") for k in d) for d in data.values()]
    pyplot = plt()
    fig, axes = subplots(
        pyplot, n, sum(widths), figsize=(1.55 * sum(widths) + 0.8, 1.6 * n + 1.0),
        squeeze=False, grid=True, layout=None,
    )  # fmt: skip
    start, mappable = 0, None
    for (kind, d), width in zip(data.items(), widths, strict=True):
        names = d.get("classes", [])
        name = lambda i, names=names: str(names[i]) if 0 <= i < len(names) else f"class {i}"  # noqa: E731
        maps = {k[4:]: d[k][:n] for k in d if k.startswith("map_")}
        sub = axes[:, start : start + width]
        true = [f"true: {name(int(t))}" for t in d["labels"][:n]]
        pred = [name(int(t)) for t in d["targets"][:n]]
        mappable = draw_method_rows(sub, d["images"][:n], maps, true, pred)
        for ax in sub[0]:
            ax.set_title(f"{kind}:\n{ax.get_title()}", fontsize=8)
        start += width
    if mappable is not None:
        saliency_colorbar(fig, mappable, list(axes.ravel()))
    fig.suptitle(
        "C3 maps at equal gradient evaluations: |attribution| summed over channels, scaled to "
        "each map's 99th percentile; maps explain the predicted class",
        fontsize=9,
    )
    return save(fig, out_dir, "fig-attribution-maps")
