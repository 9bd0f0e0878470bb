"""C1 and C2, the rank-sweep claims: the rules, their intervals and why a pair is not testable.

C1's shares kept and their difference are paired when both models' runs have per-image records
(reporting/paired.py: a paired bootstrap over images, hierarchical over seeds); old run folders
without them keep the unpaired rule (the delta method for a ratio, Welch for a difference),
flagged "unpaired". C2's chance is each model's own: sum_c p(pred = c) p(true = c) on the images
its H_k sweep evaluated (1/classes for runs without records, flagged).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from rankrobust.reporting.claims.grouping import Group, num_classes, pairs, sweep_groups
from rankrobust.reporting.intervals import Estimate, above, all_of, difference, within
from rankrobust.reporting.paired import NotPairable, has_records, paired_c1, run_chance

K_REF = 4  # the rank the C1/C2 rules look at (the nearest measured rank below it if absent)
MARGIN_C1 = 0.05  # robust must keep this much more of its clean accuracy than natural
MARGIN_C2 = 0.05  # "above chance" = more than chance + margin; "at chance" = within it
UNPAIRED = "unpaired"


def not_testable(reason: str) -> str:
    """The verdict of a claim no pair could test, with the reason in brackets."""
    return f"not testable ({reason})"


def nearest_k(ks: Sequence[int], k: int = K_REF) -> int:
    below = [x for x in ks if x <= k]
    return max(below) if below else min(ks)


def missing_pair(gs: Sequence[Group], what: str) -> str:
    """'missing runs: ...' for groups `gs` (the runs having `what`) that gave no pair: none at
    all, no run of one kind, or no natural and robust run sharing data and architecture."""
    if not gs:
        return f"missing runs: no finished full-image run has {what}"
    kinds = {g.kind for g in gs}
    have = "; ".join(g.label for g in gs)
    lacking = [k for k in ("natural", "robust") if k not in kinds]
    if lacking:
        return f"missing runs: no {' or '.join(lacking)} run with {what} (have: {have})"
    return f"missing runs: no natural and robust run share data and architecture (have: {have})"


def _missing(rows: Sequence[dict], mode: str) -> str:
    sweep = "L_k" if mode == "low" else "H_k"
    return missing_pair(sweep_groups(rows, mode), f"a rank sweep on {sweep}(x)")


def _verdict(comps: list[dict], skipped: list[dict], rows: Sequence[dict], mode: str) -> str:
    if comps:
        return all_of(c["verdict"] for c in comps)
    if skipped:
        return not_testable("; ".join(dict.fromkeys(s["reason"] for s in skipped)))
    return not_testable(_missing(rows, mode))


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


def claim_c1(rows: Sequence[dict]) -> tuple[str, str, list[dict], list[dict], list[Group]]:
    """(rule, verdict, comparisons, not-testable pairs [{natural, robust, reason}], groups used)."""
    rule = (
        f"at k = {K_REF} (or the nearest measured rank below it), the robust model's accuracy on "
        "L_k(x) divided by its clean accuracy on the same images minus the natural model's (the "
        f"difference in share of clean accuracy kept) must exceed {MARGIN_C1:.2f}: holds when its "
        "95% interval lies above, does not hold when it lies at or below, for every "
        "natural/robust pair. Interval: paired bootstrap over the images both models evaluated "
        "(seeds, then images, with several seeds); runs without per-image records: unpaired "
        "(delta method, Welch)"
    )
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
    return rule, _verdict(comps, skipped, rows, "low"), comps, skipped, used


def group_chance(g: Group, k: int) -> tuple[float, str]:
    """(chance, how): the mean over the group's runs of sum_c p(pred = c) p(true = c) on their
    H_k images, or 1/classes (flagged) when a run has no per-image record."""
    found = [run_chance(r, "high", k) for r in g.runs]
    if found and all(c is not None for c in found):
        return sum(found) / len(found), "from the predictions"
    return 1.0 / num_classes(g.runs), "1/classes (no per-image records)"


def claim_c2(rows: Sequence[dict]) -> tuple[str, str, list[dict], list[dict], list[Group]]:
    """(rule, verdict, comparisons, not-testable pairs, groups used)."""
    rule = (
        f"at k = {K_REF} (or the nearest measured rank below it), the natural model's accuracy on "
        f"H_k(x) must lie above its chance + {MARGIN_C2:.2f} and the robust model's within "
        f"{MARGIN_C2:.2f} of its chance, each judged by its 95% interval. A model's chance is the "
        "accuracy its own H_k predictions would get if they ignored the image: sum over classes "
        "c of p(predicted = c) * p(true = c) on the evaluated images (1/classes for runs without "
        "per-image records)"
    )
    comps, skipped, used = [], [], []
    for n, r in pairs(sweep_groups(rows, "high")):
        common = sorted(set(n.sweep_ks("high")) & set(r.sweep_ks("high")))
        if not common:
            skipped.append({"natural": n.label, "robust": r.label,
                            "reason": "no common ranks in the two models' H_k sweeps"})  # fmt: skip
            continue
        k = nearest_k(common)
        (chance_n, how_n), (chance_r, how_r) = group_chance(n, k), group_chance(r, k)
        an, ar = n.sweep("high", k), r.sweep("high", k)
        natural_part = above(an, chance_n + MARGIN_C2)
        robust_part = within(ar, chance_r - MARGIN_C2, chance_r + MARGIN_C2)
        used += [n, r]
        comps.append(
            {
                "natural": n.label,
                "robust": r.label,
                "k": k,
                "natural_chance": chance_n,
                "robust_chance": chance_r,
                "chance_from": how_n if how_n == how_r else f"natural {how_n}, robust {how_r}",
                "natural_acc_k": an,
                "robust_acc_k": ar,
                "natural_above_chance": natural_part,
                "robust_at_chance": robust_part,
                "verdict": all_of([natural_part, robust_part]),
            }
        )
    return rule, _verdict(comps, skipped, rows, "high"), comps, skipped, used
