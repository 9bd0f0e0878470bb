"""C2: on the high-rank residual H_k(x) = x - L_k(x) (which looks like noise to a person),
natural models stay above chance for small k; robust models fall to chance.

Rule: at k = K_REF (or the nearest measured rank below it), the natural model's accuracy on
H_k(x) must lie above its chance + MARGIN_C2 and the robust model's within MARGIN_C2 of its
chance, each judged by its 95% interval, for every natural/robust pair of full-image runs.

Measurement: metrics.json ``rank_sweep.high`` (accuracy on H_k(x) per k). Each model's chance
is its own: sum_c p(pred = c) p(true = c) on the images its H_k sweep evaluated, from
per_image.npz ``rank_sweep.high`` (1/classes for runs without records, flagged).

Figure: fig-high-rank (accuracy on H_k(x) vs k, natural vs robust, chance line).
"""

from __future__ import annotations

from collections.abc import Sequence

from rankrobust.reporting.claims._common import (
    K_REF,
    ClaimResult,
    nearest_k,
    result,
    suspects,
    sweep_verdict,
)
from rankrobust.reporting.claims.grouping import Group, num_classes, pairs, sweep_groups
from rankrobust.reporting.intervals import above, all_of, within
from rankrobust.reporting.paired import run_chance

MARGIN_C2 = 0.05  # "above chance" = more than chance + margin; "at chance" = within it

STATEMENT = (
    "On the high-rank residual H_k = x - L_k(x), natural models stay above chance for "
    "small k; robust models fall to chance."
)
RULE = (
    f"at k = {K_REF} (or the nearest measured rank below it), the natural model's accuracy on "
    f"H_k(x) must lie above its chance + {MARGIN_C2:.2f} and the robust model's within "
    f"{MARGIN_C2:.2f} of its chance, each judged by its 95% interval. A model's chance is the "
    "accuracy its own H_k predictions would get if they ignored the image: sum over classes "
    "c of p(predicted = c) * p(true = c) on the evaluated images (1/classes for runs without "
    "per-image records)"
)


def group_chance(g: Group, k: int) -> tuple[float, str]:
    """(chance, how): the mean over the group's runs of sum_c p(pred = c) p(true = c) on their
    H_k images, or 1/classes (flagged) when a run has no per-image record."""
    found = [run_chance(r, "high", k) for r in g.runs]
    if found and all(c is not None for c in found):
        return sum(found) / len(found), "from the predictions"
    return 1.0 / num_classes(g.runs), "1/classes (no per-image records)"


def decide(rows: Sequence[dict]) -> ClaimResult:
    """C2 on the run table; the pairs with no common rank in extra["not_testable"]."""
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
    verdict = sweep_verdict(comps, skipped, rows, "high")
    return result("C2", STATEMENT, RULE, comps, verdict, skipped, **suspects(used))
