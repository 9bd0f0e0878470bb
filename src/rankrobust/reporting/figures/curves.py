"""The curves behind claims C1-C4: accuracy on L_k(x) and H_k(x), RIG rank shares, training rank.

Each figure takes (rows, out_dir, **options), returns the written paths or raises Skip; the
runs, groups, pairs and thresholds come from rankrobust.reporting.claims, so a figure shows
exactly what the report judges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.reporting import claims as C
from rankrobust.reporting.claims.c2 import group_chance
from rankrobust.reporting.figures.style import (
    CI_NOTE,
    MARKERS,
    OKABE_ITO,
    Skip,
    ValueLabels,
    colour_for,
    columns,
    errorbar,
    grouped_curves,
    pct_axis,
    plt,
    rank_axis,
    save,
    subplots,
)
from rankrobust.reporting.intervals import mean_of


def _datasets(gs) -> str:
    return ", ".join(sorted({g.dataset for g in gs}))


def _capped(groups: list, what: str) -> tuple[list, str]:
    """At most MAX_CURVES training identities (style.grouped_curves), in their order."""
    curves, note = grouped_curves(groups, lambda g: g.label, what, lambda g: g.kind, "")
    kept = {id(g) for _, gs in curves for g in gs}
    return [g for g in groups if id(g) in kept], note


def fig_rank_accuracy(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    groups = C.sweep_groups(rows, "low")
    if not groups:
        raise Skip("no finished full-image run with a low-rank sweep (rank_sweep.low)")
    groups, note = _capped(groups, "fig-rank-accuracy")
    pyplot = plt()
    fig, (ax, ax_rel) = subplots(pyplot, 1, 2, figsize=(11.5, 4.4))
    labels, labels_rel = ValueLabels(ax), ValueLabels(ax_rel)
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    over_100 = False
    rel_top = 1.05
    for g in groups:
        c = colour_for(g.kind, index)
        ks = g.sweep_ks("low")
        all_ks |= set(ks)
        m = MARKERS.get(g.kind, "^")
        acc = [g.sweep("low", k) for k in ks]
        errorbar(ax, ks, acc, marker=m, color=c, label=g.label)
        kr = C.nearest_k(ks)
        labels.add(kr, acc[ks.index(kr)].value, c)
        clean = g.clean()
        if clean is None or not clean.value:
            continue
        ax.axhline(clean.value, color=c, ls=":", lw=1.2)
        if clean.known:
            ax.axhspan(clean.lo, clean.hi, color=c, alpha=0.08, lw=0)
        labels.add(max(ks), clean.value, c, f"clean {100 * clean.value:.1f}%")
        kept = [g.kept_paired(k) for k in ks]
        errorbar(ax_rel, ks, kept, marker=m, color=c, label=g.label)
        labels_rel.add(kr, kept[ks.index(kr)].value, c)
        over_100 |= any(e is not None and (e.value > 1 or (e.known and e.hi > 1)) for e in kept)
        rel_top = max([rel_top] + [(e.hi if e.known else e.value) + 0.03 for e in kept if e])
    kref = C.nearest_k(sorted(all_ks))
    for a in (ax, ax_rel):
        rank_axis(a, sorted(all_ks), r"rank $k$ of the low-rank test images $L_k(x)$")
        a.axvline(kref, color="grey", ls="--", lw=0.8)
    pct_axis(ax, r"top-1 accuracy on $L_k(x)$")
    pct_axis(ax_rel, r"accuracy on $L_k(x)$ / clean accuracy", top=min(rel_top, 1.6))
    ax_rel.axhline(1.0, color="black", lw=0.8)
    ax.set_title("Accuracy on rank-$k$ approximations (dotted: clean accuracy)", fontsize=10)
    ax_rel.set_title(
        f"Share of clean accuracy kept (dashed: $k$ = {kref}; paired bootstrap over images)",
        fontsize=10,
    )
    if over_100:
        ax_rel.text(
            0.98,
            0.02,
            "above 100%: accuracy on $L_k(x)$ may exceed clean accuracy\n"
            "by sampling noise (large $k$: $L_k(x) \\approx x$)",
            transform=ax_rel.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
        )
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns(2))
    labels.draw()
    labels_rel.draw()
    fig.suptitle(
        f"C1 ({_datasets(groups)}): robust models keep more accuracy on low-rank images\n"
        + CI_NOTE
        + (f"\n{note}" if note else ""),
        fontsize=10,
    )
    return save(fig, out_dir, "fig-rank-accuracy")


def fig_high_rank(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    groups = C.sweep_groups(rows, "high")
    if not groups:
        raise Skip("no finished full-image run with a high-rank sweep (rank_sweep.high)")
    groups, note = _capped(groups, "fig-high-rank")
    pyplot = plt()
    fig, ax = subplots(pyplot, figsize=(6.8, 4.4))
    labels = ValueLabels(ax)
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    for g in groups:
        c = colour_for(g.kind, index)
        ks = g.sweep_ks("high")
        all_ks |= set(ks)
        acc = [g.sweep("high", k) for k in ks]
        errorbar(ax, ks, acc, marker=MARKERS.get(g.kind, "^"), color=c, label=g.label)
        kr = C.nearest_k(ks)
        labels.add(kr, acc[ks.index(kr)].value, c)
        # the model's own chance at each k (claims.c2): its H_k predictions ignoring the image
        chance = np.array([group_chance(g, k)[0] for k in ks])
        ax.plot(ks, chance, color=c, ls="--", lw=1)
        ax.fill_between(ks, chance - C.MARGIN_C2, chance + C.MARGIN_C2, color=c, alpha=0.08, lw=0)
    ks = sorted(all_ks)
    ax.plot([], [], color=OKABE_ITO["black"], ls="--", lw=1, label="each model's chance")
    ax.axvline(C.nearest_k(ks), color="grey", ls=":", lw=0.8)
    rank_axis(ax, ks, r"rank $k$ removed: test images are $H_k(x) = x - L_k(x)$")
    pct_axis(ax, r"top-1 accuracy on $H_k(x)$")
    ax.set_title(
        f"C2 ({_datasets(groups)}): accuracy on high-rank residuals\n"
        f"dashed: each model's chance, band ± "
        f"{100 * C.MARGIN_C2:.0f} points; {CI_NOTE}" + (f"\n{note}" if note else ""),
        fontsize=9,
    )
    ax.legend(loc="best")
    labels.draw()
    return save(fig, out_dir, "fig-high-rank")


def fig_rig_spectrum(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    items = []
    for r in C.usable(rows):
        attr = C.rank_attribution(r) if r.get("kind") else None
        if attr is not None:
            items.append((r, attr))
    if not items:
        raise Skip("no finished run with RIG rank attributions (metrics.json rig or rig.npz)")
    pyplot = plt()
    fig, (ax, ax_cum) = subplots(pyplot, 1, 2, figsize=(11.5, 4.4))
    labels = ValueLabels(ax_cum)
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    top = C.TOP_RANKS_C3

    def label_of(item) -> str:
        r = item[0]
        how = r.get("threat") or (r["attack"] if r["attack"] not in (None, "none") else "")
        how = f" ({how})" if r["kind"] == "robust" and how else ""
        return f"{r['kind']}: {r['model']}{how}, {C.dataset_name(r)}" + (
            f", trained on rank {r['rank']}" if r.get("rank") is not None else ""
        )

    pooled = "runs of one label: one curve over all their images"
    curves, note = grouped_curves(
        items, label_of, "fig-rig-spectrum", lambda it: it[0]["kind"], pooled
    )
    for label, group in curves:
        r, (ranks, _) = group[0]
        same = [(g, a) for g, a in group if list(a[0]) == list(ranks)]  # one rank path
        per_rank = np.concatenate([a[1] for _, a in same])  # the images of all its runs
        c = colour_for(r["kind"], index)
        a = np.abs(per_rank).sum(1, keepdims=True)
        share = per_rank / np.where(a > 0, a, 1)  # per image: a_k / sum |a_k|
        cum = np.cumsum(np.abs(share), axis=1)
        m = MARKERS.get(r["kind"], "^")
        shown = f"{label} ({len(same)} runs)" if len(same) > 1 else label
        for target, values, bounds in ((ax, share, (-1.0, 1.0)), (ax_cum, cum, (0.0, 1.0))):
            ests = [mean_of(values[:, j], "t over images", bounds) for j in range(len(ranks))]
            errorbar(target, ranks, ests, marker=m, ms=3, color=c, label=shown)
        est = C.top_share(r) if len(same) == 1 else None
        if est is not None:
            labels.add(C.nearest_k(ranks, top), est.value, c)
        all_ks |= set(ranks)
    ks = sorted(all_ks)
    for a in (ax, ax_cum):
        rank_axis(a, ks, r"path rank $k$ (segment $L_{k-1}(x) \to L_k(x)$)")
        a.axvline(top, color="grey", ls="--", lw=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel(r"rank attribution share $a_k / \Sigma_j |a_j|$")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_title("RIG attribution share per rank (mean over images)", fontsize=10)
    pct_axis(ax_cum, r"cumulative share of $\Sigma_j |a_j|$")
    ax_cum.set_title(f"Cumulative share (dashed: top {top} ranks)", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns(2))
    labels.draw()
    fig.suptitle(
        "C3: which ranks RIG credits, natural vs robust\n"
        "error bars: 95% t-intervals over the RIG images" + (f"\n{note}" if note else ""),
        fontsize=10,
    )
    return save(fig, out_dir, "fig-rig-spectrum")


def fig_train_rank(rows: list[dict], out_dir: Path, **_: Any) -> list[Path]:
    series = C.train_rank_groups(rows)
    if not series:
        raise Skip("no finished run trained on rank-k data (a `-m rank=...` sweep)")
    pyplot = plt()
    from matplotlib.lines import Line2D

    fig, ax = subplots(pyplot, figsize=(7.2, 4.6))
    labels = ValueLabels(ax)
    index: dict[str, int] = {}
    all_ks: set[int] = set()
    handles = []
    has_robust = False
    for s in series:
        c = colour_for(s["kind"], index)
        errorbar(ax, s["ks"], s["clean"], marker="o", color=c)
        handles.append(Line2D([], [], color=c, marker="o", ms=4, label=s["label"]))
        if any(e is not None for e in s["robust"]):
            has_robust = True
            errorbar(ax, s["ks"], s["robust"], marker="s", ls="--", color=c)
        for k, e in [
            *zip(s["ks"], s["clean"], strict=True),
            *zip(s["ks"], s["robust"], strict=True),
        ]:
            if e is not None:
                labels.add(k, e.value, c)
        all_ks |= set(s["ks"])
    rank_axis(ax, sorted(all_ks), r"rank $k$ of the training and test images")
    pct_axis(ax, "top-1 accuracy")
    ax.axhline(1.0 / C.num_classes(rows), color="black", ls=":", lw=1)
    grey = OKABE_ITO["black"]
    handles += [Line2D([], [], color=grey, marker="o", ms=4, label="clean accuracy (solid)")]
    if has_robust:
        handles.append(
            Line2D([], [], color=grey, marker="s", ms=4, ls="--", label="robust accuracy (dashed)")
        )
    handles.append(Line2D([], [], color=grey, ls=":", label="chance"))
    ax.legend(handles=handles, loc="best")
    labels.draw()
    ax.set_title(
        "C4: models trained and tested on rank-$k$ data\n"
        "robust accuracy under the run's eval attack; " + CI_NOTE,
        fontsize=9,
    )
    return save(fig, out_dir, "fig-train-rank")
