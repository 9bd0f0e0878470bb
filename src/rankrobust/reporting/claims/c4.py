"""C4 (our extension, run as a sweep): models trained on rank-k data, for k in a list, and
their clean and robust accuracy as k grows.

Rule: reported, no pass/fail. Per series of runs that differ only in their training rank k:
clean and robust accuracy per k with 95% intervals, and each one's trend: Spearman's rho with k
and the change from the smallest to the largest k; "rises"/"falls" needs |rho| > 0.5 and a
change of at least FLAT_C4 whose interval excludes 0, under FLAT_C4 it is "flat", else "no
clear trend".

Measurement: metrics.json ``clean_acc`` and ``robust_acc`` of runs trained on rank-k data
(``rank`` set; grouping.train_rank_groups).

Figure: fig-train-rank (clean / robust accuracy vs training rank k).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankrobust.reporting.claims._common import REPORTED, ClaimResult, not_testable, result
from rankrobust.reporting.claims.grouping import train_rank_groups
from rankrobust.reporting.intervals import Estimate, difference

FLAT_C4 = 0.02  # a C4 change smaller than 2 accuracy points over the k range is "flat"

STATEMENT = "Models trained on rank-k data: clean and robust accuracy as k grows."
RULE = (
    "reported, no pass/fail rule (our extension): clean and robust accuracy per training "
    "rank k with 95% intervals; the trend is Spearman's rho with k and the change from the "
    "smallest to the largest k: 'rises'/'falls' needs |rho| > 0.5 and a change of at least "
    f"{100 * FLAT_C4:.0f} points whose interval excludes 0; under {100 * FLAT_C4:.0f} points "
    "'flat'; else 'no clear trend'"
)


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho with ties averaged."""
    if len(x) < 2:
        return float("nan")

    def ranks(v: Sequence[float]) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        out = np.empty(len(v))
        out[np.argsort(v, kind="stable")] = np.arange(len(v), dtype=float)
        for value in np.unique(v):
            out[v == value] = out[v == value].mean()
        return out

    rx, ry = ranks(x), ranks(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def trend(ks: Sequence[int], points: Sequence[Estimate | None]) -> dict | None:
    """The trend of accuracies with k: Spearman rho, the change from the smallest to the largest
    k with its interval, and a word: "rises"/"falls" (|rho| > 0.5, a change of at least FLAT_C4
    whose interval excludes 0), "flat" (|change| < FLAT_C4) or "no clear trend"."""
    known = [(k, e) for k, e in zip(ks, points, strict=True) if e is not None]
    if len(known) < 2:
        return None
    rho = _spearman([k for k, _ in known], [e.value for _, e in known])
    change = difference(known[-1][1], known[0][1])
    if abs(change.value) < FLAT_C4:
        word = "flat"
    elif abs(rho) > 0.5 and (not change.known or change.lo > 0 or change.hi < 0):
        word = "rises" if rho > 0 else "falls"
    else:
        word = "no clear trend"
    return {"rho": rho, "change": change, "word": word}


def decide(rows: Sequence[dict]) -> ClaimResult:
    """C4 on the run table: one comparison per training-rank series."""
    comps = []
    for s in train_rank_groups(rows):
        comps.append(
            {
                "group": s["label"],
                "ks": s["ks"],
                "clean": s["clean"],
                "robust": s["robust"],
                "clean_trend": trend(s["ks"], s["clean"]),
                "robust_trend": trend(s["ks"], s["robust"]),
            }
        )
    if any(len(c["ks"]) > 1 for c in comps):
        verdict = REPORTED
    elif comps:
        one = ", ".join(f"{c['group']} (k={c['ks'][0]})" for c in comps)
        verdict = not_testable(f"missing runs: one training rank per series ({one}); C4 needs two")
    else:
        verdict = not_testable("missing runs: no finished run trained on rank-k data (rank=k)")
    return result("C4", STATEMENT, RULE, comps, verdict)
