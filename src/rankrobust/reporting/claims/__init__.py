"""The paper's claims C1-C4 and our C5 (`bases`) decided on the run table: the thresholds, the
rule of each claim and its verdict with 95% intervals. Which runs are averaged and compared:
`grouping` (its public names are re-exported here).

Data flows one way: results -> collect -> claims -> figures / report (both read this module).

Intervals (rankrobust.reporting.intervals): Wilson for one run, t over seeds for a group of
several, the delta method for a ratio, Welch for a difference; C1's share kept and its
difference are paired over images when the runs have per-image records (reporting/paired.py,
claims/rank.py holds C1 and C2). A verdict is "holds" / "does not
hold" when the interval lies wholly on one side of the rule's threshold, "inconclusive" when it
straddles it or a count it needs is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.reporting.claims import rank
from rankrobust.reporting.claims.attribution import cleaner_maps
from rankrobust.reporting.claims.bases import RULE_C5, STATEMENT_C5
from rankrobust.reporting.claims.bases import claim_c5 as _c5_comparisons
from rankrobust.reporting.claims.grouping import (
    USABLE,
    Group,
    dataset_name,
    full_image,
    groups,
    num_classes,
    pairs,
    rank_attribution,
    rig_runs,
    sweep_groups,
    top_shares,
    train_rank_groups,
    unlabelled,
    usable,
)
from rankrobust.reporting.claims.rank import (
    K_REF,
    MARGIN_C1,
    MARGIN_C2,
    nearest_k,
    not_testable,
)
from rankrobust.reporting.intervals import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Estimate,
    above,
    all_of,
    difference,
    mean_of,
)
from rankrobust.results import RIG_TOP_RANKS, number_warnings

TOP_RANKS_C3 = RIG_TOP_RANKS  # C3: the share of |rank attribution| in path ranks <= this
FLAT_C4 = 0.02  # a C4 change smaller than 2 accuracy points over the k range is "flat"
NOT_TESTABLE = not_testable("missing runs")
REPORTED = "reported"
STATEMENTS = {
    "C1": "On rank-k approximations of test images, robust models keep much more of their "
    "accuracy at small k than natural models do.",
    "C2": "On the high-rank residual H_k = x - L_k(x), natural models stay above chance for "
    "small k; robust models fall to chance.",
    "C3": "RIG attributes a robust model's prediction mostly to the top few ranks, a natural "
    "model's to more, higher ranks.",
    "C4": "Models trained on rank-k data: clean and robust accuracy as k grows.",
    "C5": STATEMENT_C5,
}
FIGURES = {
    "C1": ["fig-rank-accuracy"],
    "C2": ["fig-high-rank"],
    "C3": ["fig-rig-spectrum", "fig-rig", "fig-attribution-maps", "fig-attribution-curves"],
    "C4": ["fig-train-rank"],
    "C5": ["fig-bases-energy", "fig-bases-high", "fig-heat-maps"],
}

__all__ = [
    "FAILS",
    "HOLDS",
    "INCONCLUSIVE",
    "K_REF",
    "MARGIN_C1",
    "MARGIN_C2",
    "USABLE",
    "ClaimResult",
    "Group",
    "claims",
    "dataset_name",
    "full_image",
    "groups",
    "nearest_k",
    "not_testable",
    "num_classes",
    "pairs",
    "rank_attribution",
    "rig_runs",
    "suspect_runs",
    "sweep_groups",
    "train_rank_groups",
    "unlabelled",
    "usable",
]


# ---------------------------------------------------------------------------------------------
# RIG rank attributions (C3).


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


# ---------------------------------------------------------------------------------------------
# The claims.


@dataclass
class ClaimResult:
    claim: str
    rule: str
    verdict: str
    comparisons: list[dict] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def statement(self) -> str:
        return STATEMENTS[self.claim]

    def as_dict(self) -> dict:
        def plain(v: Any) -> Any:
            if isinstance(v, Estimate):
                return v.as_dict()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            return v

        return plain(
            {
                "claim": self.claim,
                "statement": self.statement,
                "rule": self.rule,
                "verdict": self.verdict,
                "figures": self.figures,
                "comparisons": self.comparisons,
                **self.extra,
            }
        )


def suspect_runs(rows: Sequence[dict]) -> list[dict]:
    """Usable runs whose numbers cannot be right (results.number_warnings: robust accuracy
    above the clean accuracy of the same images): [{run, warnings}], for the report."""
    return [
        {"run": r.get("run_dir"), "warnings": ws}
        for r in usable(rows)
        if (ws := r.get("warnings") or number_warnings(r))
    ]


def _suspects(gs: Sequence[Group]) -> dict:
    """{"suspect_runs": [run_dir, ...]} for the runs of groups a claim compared whose numbers
    cannot be right (`suspect_runs`), else {}."""
    runs = sorted({s["run"] for s in suspect_runs([r for g in gs for r in g.runs])})
    return {"suspect_runs": runs} if runs else {}


def _result(
    claim: str,
    rule: str,
    comps: list[dict],
    verdict: str | None = None,
    untestable: list[dict] | None = None,
    **extra: Any,
) -> ClaimResult:
    """The claim's result; `untestable`: the pairs no interval could be made for, each with
    its reason (listed in the report beside the tested ones)."""
    if verdict is None:
        verdict = all_of(c["verdict"] for c in comps) if comps else NOT_TESTABLE
    if untestable:
        extra["not_testable"] = untestable
    return ClaimResult(claim, rule, verdict, comps, FIGURES[claim], extra)


def claim_c1(rows: Sequence[dict]) -> ClaimResult:
    """Robust models keep more of their accuracy on L_k(x) (claims/rank.py)."""
    rule, verdict, comps, skipped, used = rank.claim_c1(rows)
    return _result("C1", rule, comps, verdict, skipped, **_suspects(used))


def claim_c2(rows: Sequence[dict]) -> ClaimResult:
    """Natural models stay above chance on H_k(x), robust ones fall to it (claims/rank.py)."""
    rule, verdict, comps, skipped, used = rank.claim_c2(rows)
    return _result("C2", rule, comps, verdict, skipped, **_suspects(used))


def claim_c3(rows: Sequence[dict]) -> ClaimResult:
    rule = (
        f"the robust model's mean share of |RIG rank attribution| in the top {TOP_RANKS_C3} path "
        "ranks minus the natural model's must be above 0 (95% interval over the RIG images, or "
        "over seeds), for every natural/robust pair of full-image runs"
    )
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
        verdict = not_testable(why or rank.missing_pair(gs, "RIG (rig.enabled=true)"))
    return _result(
        "C3", rule, comps, verdict, skipped,
        map_structure=map_structure(rows), cleaner_maps=cleaner_maps(rows),
    )  # fmt: skip


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


def claim_c4(rows: Sequence[dict]) -> ClaimResult:
    rule = (
        "reported, no pass/fail rule (our extension): clean and robust accuracy per training "
        "rank k with 95% intervals; the trend is Spearman's rho with k and the change from the "
        "smallest to the largest k: 'rises'/'falls' needs |rho| > 0.5 and a change of at least "
        f"{100 * FLAT_C4:.0f} points whose interval excludes 0; under {100 * FLAT_C4:.0f} points "
        "'flat'; else 'no clear trend'"
    )
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
    return ClaimResult("C4", rule, verdict, comps, FIGURES["C4"])


def claim_c5(rows: Sequence[dict]) -> ClaimResult:
    """Is it rank, or just frequency? (claims/bases.py: the matching and the intervals)."""
    verdict, comps = _c5_comparisons(rows)
    return ClaimResult("C5", RULE_C5, verdict, comps, FIGURES["C5"])


def claims(rows: Sequence[dict]) -> list[ClaimResult]:
    """C1-C5 decided on the run table."""
    return [claim_c1(rows), claim_c2(rows), claim_c3(rows), claim_c4(rows), claim_c5(rows)]
