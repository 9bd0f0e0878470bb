"""C3: RIG attributes a robust model's prediction mostly to the top few ranks and a natural
model's to more, higher ranks; RIG pixel maps are cleaner than vanilla gradients.

Rule (the verdict): the robust model's mean share of |RIG rank attribution| in the top
TOP_RANKS_C3 path ranks minus the natural model's must be above 0, judged by its 95% interval
(over the RIG images, or over seeds), for every natural/robust pair of full-image runs. Beside
it, not part of the verdict: the "cleaner maps" verdict (claims/attribution.py) and how
structured the pixel maps are (`map_structure`).

Measurement: metrics.json ``rig`` (``top4_share``, ``mean_per_rank``, ``ranks``) and rig.npz
(``per_rank`` per image, ``pixel`` and ``vanilla`` maps); metrics.json ``attribution`` for the
method comparison.

Figures: fig-rig-spectrum (rank attribution share vs rank), fig-rig (image | gradient | RIG),
fig-attribution-maps and fig-attribution-curves (the method comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.reporting.claims._common import ClaimResult, missing_pair, not_testable, result
from rankrobust.reporting.claims.attribution import cleaner_maps
from rankrobust.reporting.claims.grouping import (
    Group,
    full_image,
    groups,
    pairs,
    rank_attribution,
    rig_runs,
    top_shares,
)
from rankrobust.reporting.intervals import Estimate, above, difference, mean_of
from rankrobust.results import RIG_TOP_RANKS

TOP_RANKS_C3 = RIG_TOP_RANKS  # C3: the share of |rank attribution| in path ranks <= this

STATEMENT = (
    "RIG attributes a robust model's prediction mostly to the top few ranks, a natural "
    "model's to more, higher ranks."
)
RULE = (
    f"the robust model's mean share of |RIG rank attribution| in the top {TOP_RANKS_C3} path "
    "ranks minus the natural model's must be above 0 (95% interval over the RIG images, or "
    "over seeds), for every natural/robust pair of full-image runs"
)


def top_share(row: dict) -> Estimate | None:
    """A run's mean top-rank share, t over its RIG images (metrics.json alone: n unknown)."""
    attr = rank_attribution(row)
    if attr is None:
        share = (row.get("rig") or {}).get("top4_share")
        return None if share is None else Estimate(float(share))
    shares = top_shares(*attr, TOP_RANKS_C3)
    shares = shares[~np.isnan(shares)]
    if len(shares) == 0:
        return None
    if len(shares) == 1:  # the mean profile only (metrics.json): the spread is unknown
        share = (row.get("rig") or {}).get("top4_share", shares[0])
        return Estimate(float(share))
    return mean_of(shares.tolist(), "t over images")


def group_top_share(g: Group) -> Estimate | None:
    per_run = [e for r in g.runs if (e := top_share(r)) is not None]
    if not per_run:
        return None
    return per_run[0] if len(per_run) == 1 else mean_of([e.value for e in per_run])


def map_structure(rows: Sequence[dict], top: int = TOP_RANKS_C3) -> list[dict]:
    """How structured the pixel maps in rig.npz are: the share of each channel-summed,
    mean-centred |map|'s energy (sum of squared singular values) in its top `top` singular
    values, mean over images with a t-interval, for RIG and vanilla-gradient maps."""
    out = []
    for kind, r in sorted(rig_runs(rows).items()):
        with np.load(r["rig_npz"]) as z:
            if "pixel" not in z.files or "vanilla" not in z.files:
                continue
            entry: dict[str, Any] = {"kind": kind, "run": Path(r["run_dir"]).name}
            for key in ("pixel", "vanilla"):
                maps = np.abs(z[key]).sum(1)
                maps = maps - maps.mean(axis=(1, 2), keepdims=True)  # the constant part aside
                sv = np.linalg.svd(maps, compute_uv=False) ** 2
                share = sv[:, :top].sum(1) / np.maximum(sv.sum(1), 1e-30)
                entry["rig" if key == "pixel" else key] = mean_of(share.tolist(), "t over images")
        out.append(entry)
    return out


def decide(rows: Sequence[dict]) -> ClaimResult:
    """C3 on the run table; extra: map_structure and cleaner_maps (claims/attribution.py)."""
    gs = groups(rows, lambda r: full_image(r) and (bool(r.get("rig")) or bool(r.get("rig_npz"))))
    comps, skipped = [], []
    for n, r in pairs(gs):
        sn, sr = group_top_share(n), group_top_share(r)
        if sn is None or sr is None:
            run = (n if sn is None else r).runs[0].get("run_dir")
            skipped.append({"natural": n.label, "robust": r.label,
                            "reason": f"no RIG rank attribution in run {run}"})  # fmt: skip
            continue
        diff = difference(sr, sn)
        comps.append(
            {
                "natural": n.label,
                "robust": r.label,
                "natural_top_share": sn,
                "robust_top_share": sr,
                "share_difference": diff,
                "verdict": above(diff, 0.0),
            }
        )
    verdict = None
    if not comps:
        why = "; ".join(dict.fromkeys(x["reason"] for x in skipped))
        verdict = not_testable(why or missing_pair(gs, "RIG (rig.enabled=true)"))
    return result(
        "C3", STATEMENT, RULE, comps, verdict, skipped,
        map_structure=map_structure(rows), cleaner_maps=cleaner_maps(rows),
    )  # fmt: skip
