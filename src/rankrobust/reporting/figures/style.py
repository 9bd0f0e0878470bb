"""Shared look of the figures: palette, axes, error bars, value labels that do not overlap, saving.

Kept apart from figures.py (the CLI and registry) so that the figure modules and the registry
import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankrobust.reporting.intervals import Estimate

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
CI_NOTE = "error bars: 95% intervals (Wilson for one run, t over seeds)"


class Skip(Exception):
    """A figure's inputs are missing; the message says which."""


def plt():
    """matplotlib.pyplot on the Agg backend with the project's style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.fontsize": 8,
            "mathtext.fontset": "cm",
        }
    )
    return pyplot


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """fig -> out_dir/name.png and .pdf; closes the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    import matplotlib.pyplot as pyplot

    pyplot.close(fig)
    return paths


def colour_for(kind: str, index: dict[str, int]) -> str:
    """The next colour of a kind's palette (index counts per kind)."""
    i = index.get(kind, 0)
    index[kind] = i + 1
    palette = KIND_COLOURS.get(kind, [OKABE_ITO["black"]])
    return palette[i % len(palette)]


def rank_axis(ax, ks: Sequence[int], label: str) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted({k for k in ks if k & (k - 1) == 0} | {max(ks)})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel(label)


def pct_axis(ax, label: str, top: float = 1.02) -> None:
    ax.set_ylabel(label)
    ax.set_ylim(-0.02, top)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")


def errorbar(ax, xs: Sequence[float], ests: Sequence[Estimate | None], **kw):
    """Points with their 95% intervals as error bars (none where the interval is unknown)."""
    pts = [(x, e) for x, e in zip(xs, ests, strict=True) if e is not None]
    if not pts:
        return None
    x = [p[0] for p in pts]
    y = np.array([e.value for _, e in pts], dtype=float)
    lo = np.array([max(e.value - e.lo, 0) if e.known else np.nan for _, e in pts], dtype=float)
    hi = np.array([max(e.hi - e.value, 0) if e.known else np.nan for _, e in pts], dtype=float)
    if kw.get("label") and not all(e.known for _, e in pts):
        kw["label"] += " (n unknown: no error bars)"
    kw.setdefault("ms", 4)
    kw.setdefault("capsize", 2.5)
    kw.setdefault("elinewidth", 1)
    return ax.errorbar(x, y, yerr=np.vstack([lo, hi]), **kw)


class ValueLabels:
    """Value labels drawn once the axes limits are final, pushed apart vertically (at least
    `gap` points between centres) among labels at about the same x, so they never overlap."""

    def __init__(self, ax, gap: float = 10.0):
        self.ax, self.gap, self.items = ax, gap, []

    def add(self, x: float, y: float, colour: str, text: str | None = None) -> None:
        self.items.append((x, y, colour, text or f"{100 * y:.1f}%"))

    def draw(self) -> None:
        ax = self.ax
        fig = ax.figure
        fig.canvas.draw()  # run the layout first: positions below are in final display units
        px_per_pt = fig.dpi / 72.0
        pts = [(ax.transData.transform((x, y)), c, t, (x, y)) for x, y, c, t in self.items]
        clusters: list[list] = []
        for item in sorted(pts, key=lambda p: (p[0][0], p[0][1])):
            if clusters and abs(clusters[-1][0][0][0] - item[0][0]) < 40 * px_per_pt:
                clusters[-1].append(item)
            else:
                clusters.append([item])
        gap = self.gap * px_per_pt
        for cluster in clusters:
            cluster.sort(key=lambda p: p[0][1])
            ys = [p[0][1] for p in cluster]
            placed: list[float] = []
            for y in ys:
                placed.append(max(y, placed[-1] + gap) if placed else y)
            shift = (sum(placed) - sum(ys)) / len(ys)  # centre the stack on the points
            placed = [p - shift for p in placed]
            for i in range(1, len(placed)):  # re-impose the gap after centring
                placed[i] = max(placed[i], placed[i - 1] + gap)
            for (disp, colour, text, xy), y_new in zip(cluster, placed, strict=True):
                ax.annotate(
                    text,
                    xy,
                    textcoords="offset points",
                    xytext=(6, (y_new - disp[1]) / px_per_pt),
                    va="center",
                    fontsize=7.5,
                    color=colour,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
                    zorder=6,
                )


# Curves (and legend entries) one figure draws at most: runs of one label are drawn as one
# mean curve, and beyond this many labels the ones with the fewest runs are left out (said on
# the figure and in the log), so that a folder of thousands of runs gives a readable figure.
MAX_CURVES = 12


def grouped_curves(
    items: list,
    label_of,
    what: str,
    kind_of=lambda item: item["kind"],
    pooled: str = "runs of one label: their mean, band: min to max",
) -> tuple[list[tuple[str, list]], str]:
    """[(label, its items)], at most MAX_CURVES labels (taken in turn from each kind, most runs
    first, then by label), and a note for the figure: how many runs a curve averages and what
    was left out (also logged). `label_of(item)` names an item's curve; `what` names the
    figure in the log; `pooled` says how a curve of several runs is drawn."""
    import logging

    by_label: dict[str, list] = {}
    for item in items:
        by_label.setdefault(label_of(item), []).append(item)
    kinds: dict[str, list[str]] = {}
    for k in sorted(by_label, key=lambda k: (-len(by_label[k]), k)):
        kinds.setdefault(str(kind_of(by_label[k][0])), []).append(k)
    turns = [kinds[kind] for kind in sorted(kinds)]
    order = [ks[i] for i in range(max(map(len, turns), default=0)) for ks in turns if i < len(ks)]
    kept, dropped = order[:MAX_CURVES], order[MAX_CURVES:]
    note = ""
    if any(len(by_label[k]) > 1 for k in kept):
        note = pooled
    if dropped:
        n_runs = sum(len(by_label[k]) for k in dropped)
        left = f"{len(dropped)} more labels ({n_runs} runs) not drawn: at most {MAX_CURVES} curves"
        note = f"{note}; {left}" if note else left
        logging.getLogger("rankrobust").warning("[rankrobust] %s: %s", what, left)
    return [(k, by_label[k]) for k in sorted(kept)], note
