"""C1: on rank-k approximations of test images, robust models keep much more of their accuracy
at small k than natural models do.

Rule: at k = K_REF (or the nearest measured rank below it), the robust model's share of clean
accuracy kept on L_k(x) minus the natural model's must exceed MARGIN_C1, judged by its 95%
interval, for every natural/robust pair of full-image runs.

Measurement: metrics.json ``rank_sweep.low`` (accuracy on L_k(x) per k) and ``clean_acc``;
per_image.npz ``clean`` and ``rank_sweep.low`` pair the two models over the images both
evaluated (reporting/paired.py: a paired bootstrap over images, hierarchical over seeds). Run
folders without per-image records keep the unpaired rule (the delta method for a ratio, Welch
for a difference), flagged "unpaired".

Figure: fig-rank-accuracy (accuracy on L_k(x) vs k, natural vs robust).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from rankrobust.reporting.claims._common import (
    K_REF,
    ClaimResult,
    nearest_k,
    result,
    suspects,
    sweep_verdict,
)
from rankrobust.reporting.claims.grouping import Group, pairs, sweep_groups
from rankrobust.reporting.intervals import Estimate, above, difference
from rankrobust.reporting.paired import NotPairable, has_records, paired_c1

MARGIN_C1 = 0.05  # robust must keep this much more of its clean accuracy than natural
UNPAIRED = "unpaired"

STATEMENT = (
    "On rank-k approximations of test images, robust models keep much more of their accuracy "
    "at small k than natural models do."
)
RULE = (
    f"at k = {K_REF} (or the nearest measured rank below it), the robust model's accuracy on "
    "L_k(x) divided by its clean accuracy on the same images minus the natural model's (the "
    f"difference in share of clean accuracy kept) must exceed {MARGIN_C1:.2f}: holds when its "
    "95% interval lies above, does not hold when it lies at or below, for every "
    "natural/robust pair. Interval: paired bootstrap over the images both models evaluated "
    "(seeds, then images, with several seeds); runs without per-image records: unpaired "
    "(delta method, Welch)"
)


def _unpaired(e: Estimate | None, low: float | None = None) -> Estimate | None:
    """An unpaired estimate flagged so, its interval clipped below at `low` (a share's 0)."""
    if e is None:
        return None
    lo = e.lo if e.lo is None or low is None else max(e.lo, low)
    return dataclasses.replace(e, lo=lo, method=f"{UNPAIRED}: {e.method}")


def _zero_clean(g: Group) -> str | None:
    zero = [r.get("run_dir") for r in g.runs if r.get("clean_acc") == 0]
    if zero:
        return f"share kept undefined: clean accuracy is 0 in {g.kind} run {zero[0]}"
    return None


def decide(rows: Sequence[dict]) -> ClaimResult:
    """C1 on the run table; the pairs no interval could be made for in extra["not_testable"]."""
    comps, skipped, used = [], [], []
    for n, r in pairs(sweep_groups(rows, "low")):
        who = {"natural": n.label, "robust": r.label}
        common = sorted(set(n.sweep_ks("low")) & set(r.sweep_ks("low")))
        if not common:
            skipped.append({**who, "reason": "no common ranks in the two models' L_k sweeps"})
            continue
        k = nearest_k(common)
        zero = _zero_clean(n) or _zero_clean(r)
        if zero:
            skipped.append({**who, "reason": zero})
            continue
        entry = {**who, "k": k, "natural_acc_k": n.sweep("low", k), "natural_clean": n.clean()}
        entry.update(robust_acc_k=r.sweep("low", k), robust_clean=r.clean())
        if all(has_records(x, "clean", "rank_sweep.low") for x in n.runs + r.runs):
            try:
                found = paired_c1(n.runs, r.runs, k)
            except NotPairable as why:
                skipped.append({**who, "reason": str(why)})
                continue
            kept_n, kept_r, diff = found.natural_kept, found.robust_kept, found.difference
            entry["pairing"] = f"paired on {found.n_images} images, {found.n_seeds} seed(s)"
        else:
            kept_n, kept_r = _unpaired(n.kept(k), 0.0), _unpaired(r.kept(k), 0.0)
            if kept_n is None or kept_r is None or math.isnan(kept_n.value * kept_r.value):
                skipped.append({**who, "reason": "share kept undefined (no clean accuracy)"})
                continue
            diff = _unpaired(difference(kept_r, kept_n))
            entry["pairing"] = f"{UNPAIRED} (runs without per-image records)"
        used += [n, r]
        entry.update(natural_kept=kept_n, robust_kept=kept_r, kept_difference=diff)
        entry["verdict"] = above(diff, MARGIN_C1)
        comps.append(entry)
    verdict = sweep_verdict(comps, skipped, rows, "low")
    return result("C1", STATEMENT, RULE, comps, verdict, skipped, **suspects(used))
