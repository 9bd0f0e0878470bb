"""The population claims' scatter figures: one per claim and data set, one point per model
(named beside it, coloured by threat model, marker by kind), AutoAttack accuracy on x.

Drawn in the project's figure style (reporting/figures/style.py: palette, axes, value labels
placed in free space), saved as PNG only (the page inlines it; a zoo of many data sets draws
three figures per data set), written whole (files.py).
"""

from __future__ import annotations

from pathlib import Path

from rankrobust.files import save_figure
from rankrobust.reporting.figures.style import (
    MARKERS,
    OKABE_ITO,
    ValueLabels,
    pct_axis,
    plt,
    subplots,
)

LABEL_ROOM = 0.3  # room right of the right-most point for its name, in spans of the x values
MIN_POINTS = 2  # a scatter of fewer models shows nothing
# Threat model -> colour (Okabe-Ito); any other threat model is black.
THREAT_COLOURS = {
    "none": OKABE_ITO["blue"],
    "Linf": OKABE_ITO["vermillion"],
    "L2": OKABE_ITO["green"],
    "corruptions": OKABE_ITO["orange"],
}
AXIS_LABELS = {
    "kept": "share of clean accuracy kept on $L_{k}(x)$",
    "high": "accuracy on $H_{k}(x)$",
    "rig_top4_share": "RIG attribution share of the top 4 ranks",
}


def figure_name(found: dict) -> str:
    """The figure's file stem: fig-population-<claim>-<dataset>."""
    return f"fig-population-{found['claim']}-{found['dataset']}"


def _colour(threat_model: str | None) -> str:
    return THREAT_COLOURS.get(str(threat_model), OKABE_ITO["black"])


def _headline(found: dict) -> str:
    if found["lo"] is None:
        return f"{found['verdict']}; n = {found['n_models']}"
    return (
        f"Spearman rho = {found['rho']:+.2f} [{found['lo']:+.2f}, {found['hi']:+.2f}] "
        f"(n = {found['n_models']}, expected {found['expected']}): {found['verdict']}"
    )


def fig_population(found: dict, out_dir: Path) -> list[Path]:
    """The scatter of one claim (population.decide's result) -> out_dir/<figure_name>.png;
    returns the paths ([] when the claim has fewer than MIN_POINTS points: nothing to see)."""
    points = found["points"]
    if len(points) < MIN_POINTS:
        return []
    pyplot = plt()
    from matplotlib.lines import Line2D

    fig, ax = subplots(pyplot, figsize=(7.2, 4.8))
    labels = ValueLabels(ax)
    seen_threats: dict[str, str] = {}
    seen_kinds: set[str] = set()
    for p in points:
        colour = _colour(p["threat_model"])
        marker = MARKERS.get(str(p["kind"]), "D")
        ax.plot(p["autoattack_acc"], p["value"], marker=marker, color=colour, ls="none", ms=6)
        labels.add(p["autoattack_acc"], p["value"], colour, p["name"])
        seen_threats[str(p["threat_model"])] = colour
        seen_kinds.add(str(p["kind"]))
    handles = [Line2D([], [], color=c, marker="o", ls="none", label=f"threat model {t}")
               for t, c in sorted(seen_threats.items())]  # fmt: skip
    handles += [Line2D([], [], color="grey", marker=MARKERS.get(k, "D"), ls="none", label=k)
                for k in sorted(seen_kinds)]  # fmt: skip
    ax.legend(handles=handles, loc="best")
    ax.set_xlabel("AutoAttack accuracy (reported; natural models 0)")
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    field = found["column"].split("@")[0]
    what = AXIS_LABELS.get(field, found["column"]).replace("{k}", str(found["k"]))
    top = max(1.02, max(p["value"] for p in points) + 0.02)
    pct_axis(ax, what, top=top)
    xs = [p["autoattack_acc"] for p in points]
    span = (max(xs) - min(xs)) or 0.1
    ax.set_xlim(min(xs) - 0.05 * span, max(xs) + LABEL_ROOM * span)  # the names need room
    labels.draw()
    ax.set_title(
        f"{found['claim']} ({found['dataset']}): {found['column']} vs AutoAttack accuracy\n"
        + _headline(found),
        fontsize=9,
    )
    path = save_figure(fig, Path(out_dir) / f"{figure_name(found)}.png", bbox_inches="tight")
    pyplot.close(fig)
    return [path]
