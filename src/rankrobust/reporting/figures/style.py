"""Shared look of the figures: palette, axes, error bars, value labels placed in free space,
the style (`default`, or `paper`: figures/paper.py) and saving.

Kept apart from figures.py (the CLI and registry) so that the figure modules and the registry
import it without importing each other. The style in force is set for a whole `draw` by
`using(Look(...))`; the figure modules ask it for their size (`subplots`) and save through
`save`, so no figure needs a style argument of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankrobust.files import save_figure
from rankrobust.reporting.figures import paper
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


STYLES = ("default", "paper")


class Skip(Exception):
    """A figure's inputs are missing; the message says which."""


@dataclass(frozen=True)
class Look:
    """How figures are drawn: `default` (titles in the figure, sized for a screen) or `paper`
    (no titles: captions.md instead; `width` single = 3.5 in or double = 7.0 in; fonts of at
    least paper.MIN_FONT points at that size)."""

    style: str = "default"
    width: str = "double"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style={self.style!r}: expected one of {', '.join(STYLES)}")
        if self.width not in paper.WIDTHS:
            raise ValueError(f"width={self.width!r}: expected one of {', '.join(paper.WIDTHS)}")

    @property
    def paper(self) -> bool:
        return self.style == "paper"

    @property
    def inches(self) -> float:
        return paper.WIDTHS[self.width]


_LOOK = [Look()]  # the look in force (using() sets it for a block)


def look() -> Look:
    return _LOOK[-1]


@contextlib.contextmanager
def using(new: Look) -> Iterator[Look]:
    """Draw the figures of a block in this look."""
    _LOOK.append(new)
    try:
        yield new
    finally:
        _LOOK.pop()


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
            "axes.titlesize": "large",
            "axes.labelsize": "medium",
            "xtick.labelsize": "medium",
            "ytick.labelsize": "medium",
            "legend.fontsize": 8,
            "mathtext.fontset": "cm",
            "pdf.fonttype": 3,
        }
    )
    if look().paper:
        pyplot.rcParams.update(paper.RC)
        import logging

        logging.getLogger("fontTools").setLevel(logging.ERROR)  # font dates, when embedding
    return pyplot


def subplots(pyplot, nrows: int = 1, ncols: int = 1, figsize=(6.4, 4.8), grid=False, **kw):
    """pyplot.subplots in the look in force: the given size by default; for `paper` the
    column width, panels of a plot stacked in one column at single width (the axes keep the
    shape the caller asked for), an image grid (`grid=True`) scaled to keep its aspect.
    Constrained layout unless the caller says otherwise (always for `paper`)."""
    current = look()
    kw.setdefault("layout", "constrained")
    if not current.paper:
        return pyplot.subplots(nrows, ncols, figsize=figsize, **kw)
    kw["layout"] = "constrained"
    width = current.inches
    if grid:  # image grids do not fit one column at a readable size: always two
        fig, axes = pyplot.subplots(
            nrows, ncols, figsize=(paper.WIDTHS["double"], figsize[1] * 7.0 / figsize[0]), **kw
        )
        if width < paper.WIDTHS["double"]:
            paper.note_width(fig)
        return fig, axes
    stack = nrows == 1 and ncols > 1 and width < 5
    rows, cols = (ncols, 1) if stack else (nrows, ncols)
    fig, axes = pyplot.subplots(rows, cols, figsize=paper.plot_size(width, rows, cols), **kw)
    if stack:
        axes = np.asarray(axes).reshape((nrows, ncols) if kw.get("squeeze") is False else -1)
    return fig, axes


def columns(n: int) -> int:
    """Legend columns: n, or one in a single-column paper figure."""
    return 1 if look().paper and look().inches < 5 else n


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """fig -> out_dir/name.png and .pdf; closes the figure. In the `paper` look, the titles
    become the figure's section of captions.md and the size is exactly the column width."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    if look().paper:
        caption = paper.finish(fig, look().inches)
        for p in paths:
            save_figure(fig, p)
        paper.write_captions(out_dir, {name: (caption, [p.name for p in paths])})
    else:
        for p in paths:
            save_figure(fig, p, bbox_inches="tight")
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
    """Value labels drawn once the axes limits are final, each in free space next to its point:
    the first of a few nearby positions (right, left, above, below, diagonals; 4 to 14 points
    away) whose box crosses no plotted line or error bar, covers no marker and overlaps no
    other text. Where none is free the label goes where it crosses least (default look) or
    is left out and its value goes to the caption (paper look). No leader lines."""

    def __init__(self, ax, gap: float = 10.0):
        self.ax, self.gap, self.items, self.drawn, self.unplaced = ax, gap, [], [], []
        registered = getattr(ax.figure, "_value_labels", [])
        ax.figure._value_labels = [*registered, self]  # paper.finish places them again

    def add(self, x: float, y: float, colour: str, text: str | None = None) -> None:
        self.items.append((x, y, colour, text or f"{100 * y:.1f}%"))

    def draw(self) -> None:
        ax = self.ax
        for old in self.drawn:  # placed again after a change of layout
            old.remove()
        self.drawn, self.unplaced = [], []
        fig = ax.figure
        fig.canvas.draw()  # run the layout first: positions below are in final display units
        renderer = fig.canvas.get_renderer()
        segments, markers = paper.obstacles(ax)
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        frame = ax.get_window_extent(renderer)
        size = max(7.5, paper.MIN_FONT if look().paper else 0)
        for x, y, colour, text in sorted(self.items, key=lambda it: (it[0], -it[1])):
            ann = ax.annotate(
                text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=size,
                color=colour,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
                zorder=6, gid="value-label",
            )  # fmt: skip
            ann.set_in_layout(False)
            best = None
            for dx, dy, ha, va in paper.CANDIDATES:
                ann.xyann = (dx, dy)
                ann.set_ha(ha)
                ann.set_va(va)
                box = ann.get_window_extent(renderer)
                cost = paper.crossings(box, segments, markers, boxes, frame)
                if best is None or cost < best[0]:
                    best = (cost, dx, dy, ha, va)
                if cost == 0:
                    break
            cost, dx, dy, ha, va = best
            if cost and look().paper:
                ann.remove()
                self.unplaced.append(f"{text} (at {x:g})")  # paper.finish: to the caption
                continue
            ann.xyann = (dx, dy)
            ann.set_ha(ha)
            ann.set_va(va)
            boxes.append(ann.get_window_extent(renderer))
            self.drawn.append(ann)


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
