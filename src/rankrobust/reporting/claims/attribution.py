"""C3's second half as the field measures it: "RIG maps are cleaner than vanilla gradients".

Read from metrics.json's ``attribution`` (per-image DiffID, Gini sparseness, entropy complexity,
MPRT correlation for gradient / IG / RIG / SIG, all maps of the same images at the same number
of gradient evaluations per image).  For each run kind (natural, robust):

- the table: per method and metric, the mean over images with a t-interval, and the paired
  difference to the vanilla gradient (per-image differences, t-interval over images);
- the rule: RIG is cleaner when its Gini minus the gradient's is above 0 AND its entropy minus
  the gradient's is below 0, each judged by its paired 95% interval (holds when both
  intervals lie wholly on the rule's side, does not hold when one lies wholly on the other,
  inconclusive otherwise); one verdict per kind, then the three-valued AND over kinds;
- beside it: DiffID (faithfulness, higher = better), the MPRT sanity line (correlation once
  every layer is randomised: a map that keeps a high one explains the image, not the model)
  and each path method's completeness gap |sum(map) - (f(x) - f(baseline))| /
  |f(x) - f(baseline)| per image, median and range (how far each map is from converged: maps
  compared at equal cost are only comparable when all are near 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankrobust.reporting.claims.grouping import full_image, groups, pairs
from rankrobust.reporting.intervals import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Estimate,
    above,
    all_of,
    mean_of,
)

__all__ = [
    "GAP_THRESHOLD",
    "REFERENCE",
    "attribution_runs",
    "cleaner_maps",
    "completeness_gaps",
    "converged",
    "metric_table",
]

REFERENCE = "gradient"  # the method every other is paired against
# The verdict is drawn only from images whose RIG map converged: completeness gap at most this
# (5% of f(x) - f(baseline)); the images left out are counted in report.md.
GAP_THRESHOLD = 0.05
# metric -> (direction the rule or the field prefers, bounds of a per-image value)
METRIC_INFO = {
    "diffid": ("higher", (-1.0, 1.0)),
    "sparseness": ("higher", (0.0, 1.0)),
    "complexity": ("lower", None),
    "mprt": ("lower", (-1.0, 1.0)),
}


def attribution_runs(rows: Sequence[dict]) -> dict[str, dict]:
    """One run of each kind with attribution metrics, from a natural/robust pair when there is
    one (full-image runs), else the first run of each kind."""
    gs = groups(rows, lambda r: full_image(r) and bool(r.get("attribution")))
    for n, r in pairs(gs):
        return {"natural": n.runs[0], "robust": r.runs[0]}
    found: dict[str, dict] = {}
    for g in groups(rows, lambda r: bool(r.get("attribution"))):
        found.setdefault(g.kind, g.runs[0])
    return found


def _values(att: dict, method: str, metric: str) -> list[float | None]:
    return list(((att.get("per_image") or {}).get(method) or {}).get(metric) or [])


def _mean(values: Sequence[float | None], bounds) -> Estimate | None:
    v = [x for x in values if x is not None]
    return mean_of(v, "t over images", bounds) if v else None


def _paired(a: Sequence[float | None], b: Sequence[float | None]) -> Estimate | None:
    """Mean of per-image differences a - b with its t-interval (images where both exist)."""
    d = [x - y for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    return mean_of(d, "paired t over images", None) if d else None


def metric_table(att: dict) -> list[dict]:
    """Rows {method, metric, mean, vs_gradient} for one run's attribution block."""
    out = []
    for method in att.get("methods", []):
        for metric in att.get("metrics", []):
            bounds = METRIC_INFO.get(metric, ("", None))[1]
            values = _values(att, method, metric)
            paired = (
                _paired(values, _values(att, REFERENCE, metric)) if method != REFERENCE else None
            )
            out.append(
                {
                    "method": method,
                    "metric": metric,
                    "mean": _mean(values, bounds),
                    "vs_gradient": paired,
                }
            )
    return out


def completeness_gaps(att: dict) -> dict[str, dict]:
    """{method: {median, min, max, n}} of each path method's per-image completeness gap (runs
    from before per-image gaps: {median} from median_rel_delta, n None)."""
    out: dict[str, dict] = {}
    for method in att.get("methods", []):
        values = sorted(v for v in _values(att, method, "completeness_gap") if v is not None)
        if values:
            mid = len(values) // 2
            median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
            out[method] = {"median": median, "min": values[0], "max": values[-1],
                           "n": len(values)}  # fmt: skip
        elif method in (att.get("median_rel_delta") or {}):
            out[method] = {"median": att["median_rel_delta"][method], "min": None, "max": None,
                           "n": None}  # fmt: skip
    return out


def _negated(e: Estimate | None) -> Estimate | None:
    if e is None:
        return None
    lo, hi = (None, None) if not e.known else (-e.hi, -e.lo)
    return Estimate(-e.value, lo, hi, e.se, e.df, e.n, e.method)


def converged(att: dict, method: str, threshold: float = GAP_THRESHOLD) -> list[bool] | None:
    """Per image: is ``method``'s completeness gap at most ``threshold``? None when the run
    recorded no per-image gaps (then every image is used, and report.md says so)."""
    gaps = _values(att, method, "completeness_gap")
    if not gaps:
        return None
    return [g is not None and g <= threshold for g in gaps]


def _kept(values: Sequence[float | None], keep: list[bool] | None) -> list[float | None]:
    if keep is None:
        return list(values)
    return [v if k else None for v, k in zip(values, keep, strict=False)]


def cleaner_maps(rows: Sequence[dict], method: str = "rig") -> dict[str, Any]:
    """The verdict of "RIG maps are cleaner than vanilla gradients" with everything behind it.

    Only images whose ``method`` map converged (completeness gap <= GAP_THRESHOLD) count.
    Returns {"verdict", "rule", "per_kind": [{kind, run, gini_difference, entropy_difference,
    verdict, table, evaluations, n_images, n_kept, steps, completeness_gap}]}; verdict "not
    testable" without a run that has both methods' sparseness and complexity.
    """
    rule = (
        f"{method.upper()} minus vanilla gradient, paired over the same images whose "
        f"{method.upper()} map converged (completeness gap <= {GAP_THRESHOLD:g}): Gini "
        "sparseness above 0 and entropy complexity below 0, each by its 95% interval, in every "
        "run kind"
    )
    per_kind = []
    for kind, run in sorted(attribution_runs(rows).items()):
        att = run["attribution"]
        keep = converged(att, method)
        gini = _paired(
            _kept(_values(att, method, "sparseness"), keep), _values(att, REFERENCE, "sparseness")
        )
        ent = _paired(
            _kept(_values(att, method, "complexity"), keep), _values(att, REFERENCE, "complexity")
        )
        if gini is None or ent is None:
            verdict = INCONCLUSIVE
        else:
            verdict = all_of([above(gini, 0.0), above(_negated(ent), 0.0)])
        per_kind.append(
            {
                "kind": kind,
                "run": Path(run["run_dir"]).name if run.get("run_dir") else "",
                "gini_difference": gini,
                "entropy_difference": ent,
                "verdict": verdict,
                "table": metric_table(att),
                "evaluations": att.get("evaluations", {}),
                "n_images": att.get("n_images"),
                "n_kept": None if keep is None else sum(keep),
                "gap_threshold": GAP_THRESHOLD,
                "steps": att.get("steps"),
                "mprt_layers": att.get("mprt_layers", {}),
                "completeness_gap": completeness_gaps(att),
            }
        )
    tested = [k for k in per_kind if k["gini_difference"] is not None]
    verdict = all_of(k["verdict"] for k in tested) if tested else "not testable"
    assert verdict in (HOLDS, FAILS, INCONCLUSIVE, "not testable")
    return {"verdict": verdict, "rule": rule, "per_kind": per_kind}
