"""report.md's section on "RIG maps are cleaner than vanilla gradients" (C3's attribution part):
the verdict, which images it was drawn from, and per run kind the method x metric table with each
method's completeness gap. reporting.claims.attribution decides; this only renders."""

from __future__ import annotations

import math

from rankrobust.reporting.intervals import Estimate

__all__ = ["ATTRIBUTION_HOW_TO_READ", "attribution_lines"]

ATTRIBUTION_HOW_TO_READ = (
    "Each cell: the mean over the same test images with a t-interval, then, in brackets after "
    "'vs gradient', the paired difference to the vanilla gradient (per-image differences, "
    "t-interval). Every path method gets the same number of gradient evaluations per image. "
    "DiffID (SIG's insertion minus deletion, in [-1, 1]): higher = more faithful. Gini "
    "sparseness (Quantus `Sparseness`): higher = more concentrated. Entropy complexity "
    "(Quantus `Complexity`): lower = simpler. MPRT (Spearman correlation with the map of the "
    "fully randomised model): lower = the map depends on the model (a sanity check, not a "
    "quality score). Completeness gap |sum(map) - (f(x) - f(black))| / |f(x) - f(black)|: "
    "median [range] over the images; 0 = the path integral converged."
)


def _gap(g: dict | None) -> str:
    """'0.005 [0.002, 0.011]' (median [min, max] of a method's completeness gaps) or 'n/a'."""
    if not g:
        return "n/a"
    span = f" [{g['min']:.3f}, {g['max']:.3f}]" if g.get("min") is not None else ""
    return f"{g['median']:.3f}{span}"


def _num(e: Estimate | None, digits: int = 3) -> str:
    """'0.412 [0.380, 0.444]' (plain numbers, not percent) or 'n/a'."""
    if e is None or e.value is None or math.isnan(e.value):
        return "n/a"
    if not e.known:
        return f"{e.value:.{digits}f}"
    return f"{e.value:.{digits}f} [{e.lo:.{digits}f}, {e.hi:.{digits}f}]"


def _kept_line(k: dict) -> str:
    """Which images the verdict of one run kind was drawn from."""
    if k.get("n_kept") is None:
        return "Per-image completeness gaps not recorded (an older run): every image used."
    left = (k["n_images"] or 0) - k["n_kept"]
    return (f"Verdict from the {k['n_kept']} images whose RIG map converged (completeness gap "
            f"<= {k['gap_threshold']:g}); {left} left out.")  # fmt: skip


def attribution_lines(cm: dict) -> list[str]:
    """C3's attribution part: the verdict of "RIG maps are cleaner than vanilla gradients" and,
    per run kind, the method x metric table (reporting.claims.attribution decides)."""
    lines = ["", f"### RIG maps are cleaner than vanilla gradients: **{cm['verdict']}**", ""]
    lines += [f"Rule: {cm['rule']}.", "", ATTRIBUTION_HOW_TO_READ]
    for k in cm["per_kind"]:
        evals = ", ".join(f"{m} {e}" for m, e in k["evaluations"].items())
        lines += [
            "",
            f"**{k['kind']}** (`{k['run']}`, {k['n_images']} images; gradient evaluations per "
            f"image: {evals}): Gini RIG - gradient {_num(k['gini_difference'])}, entropy RIG - "
            f"gradient {_num(k['entropy_difference'])}: **{k['verdict']}**. {_kept_line(k)}",
            "",
        ]
        metrics = list(dict.fromkeys(r["metric"] for r in k["table"]))
        gaps = k.get("completeness_gap") or {}
        lines += ["| method | " + " | ".join(metrics) + " | completeness gap |",
                  "|---" * (len(metrics) + 2) + "|"]  # fmt: skip
        by = {(r["method"], r["metric"]): r for r in k["table"]}
        for method in dict.fromkeys(r["method"] for r in k["table"]):
            cells = []
            for metric in metrics:
                r = by[(method, metric)]
                cell = _num(r["mean"])
                if r["vs_gradient"] is not None:
                    cell += f" (vs gradient {_num(r['vs_gradient'])})"
                cells.append(cell)
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {_gap(gaps.get(method))} |")
        mprt = k.get("mprt_layers") or {}
        if mprt:
            sanity = "; ".join(
                f"{m} {v['mean_correlation'][-1]:.2f}" for m, v in mprt.items()
                if v.get("mean_correlation")
            )  # fmt: skip
            lines += ["", f"Randomisation sanity (mean Spearman after all layers): {sanity}."]
    return lines
