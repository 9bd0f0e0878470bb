"""The `paper` look: figures a paper can use as they are (`figures --style paper`).

- No titles in the figure: the suptitle and each plot panel's title become the figure's
  caption, one section per figure file in `captions.md` beside the figures (`write_captions`,
  its one writer); plot panels get (a), (b), ... instead. The column headings of an image
  grid (x, L_1(x), ...; image, RIG, ...) stay: they label the pictures.
- Exactly the column width: single (3.5 in) or double (7.0 in), PDF (vector) and PNG (300 dpi)
  of the same size; at single width the panels of a plot are stacked in one column. Image
  grids (rank examples, RIG and attribution maps, heat maps) are always double width (their
  caption says so when single was asked): a row of 5-11 pictures with headings does not fit
  3.5 in at 8 pt.
- A figure's only legend goes below the panels; axis labels longer than their panel wrap.
- Every text at least `MIN_FONT` points at that size.
- Value labels in free space (style.ValueLabels with `obstacles` / `crossings` here): a label
  with no free place nearby is left out of the figure and its value said in the caption.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WIDTHS = {"single": 3.5, "double": 7.0}  # inches: one column / the page of a two-column paper
MIN_FONT = 8.0  # points, at print size
CAPTIONS = "captions.md"
RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,  # TrueType in the PDF: text a journal's tools can edit and search
}
# Where a value label may go, in points from its point: (dx, dy, ha, va), nearest first.
CANDIDATES = [
    (dx * d, dy * d, ha, va)
    for d in (4, 8, 14)
    for dx, dy, ha, va in (
        (1, 0, "left", "center"),
        (-1, 0, "right", "center"),
        (0, 1, "center", "bottom"),
        (0, -1, "center", "top"),
        (1, 1, "left", "bottom"),
        (-1, 1, "right", "bottom"),
        (1, -1, "left", "top"),
        (-1, -1, "right", "top"),
    )
]


def plot_size(width: float, rows: int, cols: int) -> tuple[float, float]:
    """A plot's size at `width`: panels about 3:2, room below for axis labels and a legend."""
    panel = min(width / cols * 0.68, 2.6)
    return width, rows * panel + 0.6


# ---------------------------------------------------------------------------------------------
# Free space for labels (display coordinates).


def obstacles(ax) -> tuple[list[np.ndarray], np.ndarray]:
    """The axes' line segments ((n, 2, 2) arrays: curves, reference lines, error bars) and
    marker centres ((m, 2)), in display coordinates."""
    from matplotlib.collections import LineCollection

    segments, markers = [], []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.isfinite(xy).all(1)]
        if line.get_linestyle() not in ("None", "", " ", "none") and len(xy) > 1:
            segments.append(np.stack([xy[:-1], xy[1:]], axis=1))
        if line.get_marker() not in (None, "None", "", " ", "none"):
            markers.append(xy)
    for coll in ax.collections:
        if isinstance(coll, LineCollection) and coll.get_visible():
            for seg in coll.get_segments():
                xy = coll.get_transform().transform(np.asarray(seg, dtype=float))
                if len(xy) > 1:
                    segments.append(np.stack([xy[:-1], xy[1:]], axis=1))
    pts = np.concatenate(markers) if markers else np.zeros((0, 2))
    return segments, pts


def segment_hits_box(p: np.ndarray, q: np.ndarray, box) -> bool:
    """Whether the segment p-q meets the rectangle `box` (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    d = q - p
    for pk, qk in (
        (-d[0], p[0] - box.x0),
        (d[0], box.x1 - p[0]),
        (-d[1], p[1] - box.y0),
        (d[1], box.y1 - p[1]),
    ):
        if pk == 0:
            if qk < 0:
                return False
            continue
        t = qk / pk
        if pk < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def crossings(box, segments, markers, boxes, frame, pad: float = 1.5) -> int:
    """How many lines, markers and texts a label's box meets (0: free), plus one when it
    leaves the axes."""
    grown = box.expanded(1, 1).padded(pad)
    cost = 0 if frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1) else 1
    for segs in segments:
        cost += sum(segment_hits_box(p, q, grown) for p, q in segs)
    if len(markers):
        r = 3.0  # about a marker's radius in pixels
        inside = (
            (markers[:, 0] > grown.x0 - r)
            & (markers[:, 0] < grown.x1 + r)
            & (markers[:, 1] > grown.y0 - r)
            & (markers[:, 1] < grown.y1 + r)
        )
        cost += int(inside.sum())
    return cost + sum(box.overlaps(b) for b in boxes)


def note_width(fig) -> None:
    """An image grid asked for at single width: drawn at double width, said in its caption."""
    fig._caption_width = (
        "Drawn at double-column width (7.0 in): an image grid does not fit one column at a "
        "readable size."
    )


# ---------------------------------------------------------------------------------------------
# Titles -> caption, size, fonts.


def _sentence(text: str, lines_are_sentences: bool = True) -> str:
    """A title (each line a sentence) or a note (lines broken mid-sentence) as caption text:
    each sentence capitalised and ended with a full stop."""
    lines = [part.strip().rstrip(";") for part in text.strip().splitlines() if part.strip()]
    if not lines_are_sentences:
        lines = [" ".join(lines)]
    out = []
    for line in lines:
        line = line[0].upper() + line[1:] if line[:1].islower() else line
        out.append(line if line.endswith(".") else line + ".")
    return " ".join(out)


def finish(fig, width: float) -> str:
    """Make `fig` a paper figure in place (titles out, panel letters, fonts, frozen layout);
    return its caption."""
    parts = []
    suptitle = fig.get_suptitle()
    if suptitle:
        parts.append(_sentence(suptitle))
        fig.suptitle("")
        fig._suptitle.set_visible(False)
    plots = [ax for ax in fig.axes if not ax.images and ax.get_label() != "<colorbar>"]
    titled = [ax for ax in plots if ax.get_title()]
    for i, ax in enumerate(titled):
        letter = f"({chr(ord('a') + i)})"
        if len(plots) > 1:
            parts.append(f"{letter} {_sentence(ax.get_title())}")
            ax.text(0.0, 1.02, letter, transform=ax.transAxes, fontweight="bold",
                    ha="left", va="bottom", gid="panel-letter")  # fmt: skip
        else:
            parts.append(_sentence(ax.get_title()))
        ax.set_title("")
    for ax in plots:  # a note written on a panel (e.g. why a share is above 100%)
        for text in [t for t in ax.texts if t.get_gid() is None and len(t.get_text()) > 24]:
            parts.append(_sentence(text.get_text(), lines_are_sentences=False))
            text.remove()
    readable(fig)
    _fit_axis_labels(fig, plots)
    _legend_below(fig, plots)
    for labels in getattr(fig, "_value_labels", []):
        labels.draw()  # again, in the final layout
    readable(fig)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # the size and the places found above are final
    if getattr(fig, "_caption_width", None):
        parts.append(fig._caption_width)
    notes = [n for labels in getattr(fig, "_value_labels", []) for n in labels.unplaced]
    if notes:
        parts.append(f"Values not labelled in the figure for lack of space: {'; '.join(notes)}.")
    return " ".join(p for p in parts if p)


def _legend_below(fig, plots) -> None:
    """A figure's only legend, drawn inside a panel, moved below that panel's axis label (it
    may cover curves where it is; below, it covers nothing); the figure grows by its height so
    that the panels keep theirs."""
    from matplotlib.transforms import offset_copy

    legends = [(ax, ax.get_legend()) for ax in plots if ax.get_legend() is not None]
    if len(legends) != 1 or fig.legends:
        return
    ax, legend = legends[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend.set_visible(False)
    below = ax.get_window_extent(renderer).y0 - ax.get_tightbbox(renderer).y0
    legend.set_visible(True)
    drop = below * 72.0 / fig.dpi + 4  # points from the axes' bottom to below its label
    legend.set_loc("upper center")
    legend.set_bbox_to_anchor((0.5, 0.0), transform=offset_copy(ax.transAxes, fig, y=-drop,
                                                                units="points"))  # fmt: skip
    fig.canvas.draw()
    height = legend.get_window_extent(renderer).height / fig.dpi
    fig.set_figheight(fig.get_figheight() + height + 0.05)


def _wrapped(text: str) -> str:
    """text on two lines, broken at the space nearest its middle outside $...$ (mathtext)."""
    spaces, inside = [], False
    for i, ch in enumerate(text):
        inside ^= ch == "$"
        if ch == " " and not inside:
            spaces.append(i)
    if not spaces:
        return text
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return text[:cut] + "\n" + text[cut + 1 :]


def _fit_axis_labels(fig, plots) -> None:
    """Axis labels longer than their panel are put on two lines."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in plots:
        frame = ax.get_window_extent(renderer)
        for label, room in ((ax.xaxis.label, frame.width), (ax.yaxis.label, frame.height)):
            extent = label.get_window_extent(renderer)
            if "\n" not in label.get_text() and max(extent.width, extent.height) > room:
                label.set_text(_wrapped(label.get_text()))


def readable(fig) -> None:
    """Every text of the figure at least MIN_FONT points (tick labels included)."""
    from matplotlib.text import Text

    fig.canvas.draw()  # creates the tick labels
    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < MIN_FONT:
            text.set_fontsize(MIN_FONT)


# ---------------------------------------------------------------------------------------------
# captions.md (its one writer).


def read_captions(out_dir: Path) -> dict[str, str]:
    """{figure name: its section's body} of out_dir/captions.md ({} when there is none)."""
    path = Path(out_dir) / CAPTIONS
    if not path.is_file():
        return {}
    sections = path.read_text().split("\n## ")[1:]
    return {s.split("\n", 1)[0].strip(): s.split("\n", 1)[1].strip() for s in sections}


def write_captions(
    out_dir: Path, new: dict[str, tuple[str, list[str]]], drop: tuple[str, ...] = ()
) -> Path:
    """Add or replace the sections of `new` ({name: (caption, file names)}) in captions.md and
    remove those in `drop` (figures no longer drawn); written atomically, sections sorted."""
    sections = read_captions(out_dir)
    for name, (caption, files) in new.items():
        sections[name] = f"Files: {', '.join(files)}\n\n{caption}"
    for name in drop:
        sections.pop(name, None)
    path = Path(out_dir) / CAPTIONS
    if not sections:
        path.unlink(missing_ok=True)
        return path
    text = "# Figure captions\n\nOne section per figure file (`--style paper`).\n"
    text += "".join(f"\n## {name}\n\n{body}\n" for name, body in sorted(sections.items()))
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
