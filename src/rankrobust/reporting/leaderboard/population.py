"""Population claims P1-P3: across the models of one data set, does reliance on high-rank
structure track robustness?

    P1  Spearman(AutoAttack accuracy, kept@k)          expected positive
    P2  Spearman(AutoAttack accuracy, high@k)          expected negative
    P3  Spearman(AutoAttack accuracy, rig_top4_share)  expected positive

k is K_REF (4), or the nearest rank below it that every model's sweep measured. AutoAttack
accuracy is the leaderboard's (reported) number; a natural model without one counts as 0 (no
robustness), any other model without one is left out, with its reason. Spearman's rho is the
Pearson correlation of average ranks (ties share the mean of their positions). Its 95%
interval is a percentile bootstrap over models: `resamples` draws of n models with
replacement, each drawn as ``rng.integers(0, n, n)`` from ``numpy.random.default_rng(seed)``
in turn; a draw whose x or y values are all equal has no rho and is left out (counted as
``undefined_resamples``). Verdicts by the report's rules (reporting/intervals.py): "holds" when
the whole interval lies on the expected side of 0, "does not hold" when it lies wholly on the
other side (0 included), "inconclusive" when it straddles 0; "not testable (reason)" with fewer
than MIN_MODELS models or no spread in one of the two values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankrobust.reporting.claims import K_REF, nearest_k, not_testable
from rankrobust.reporting.intervals import Estimate, above
from rankrobust.reporting.seeds import USABLE

MIN_MODELS = 5  # fewer models than this: the claim is not testable
RESAMPLES = 2000  # bootstrap draws of the models
SEED = 0  # the bootstrap's numpy seed


@dataclass(frozen=True)
class PopulationClaim:
    """One population claim: the entry field it correlates with AutoAttack accuracy (`mode`:
    a rank sweep's "kept" or "high" at k, or a plain field), and the expected sign."""

    claim: str
    field: str
    sign: int
    statement: str

    @property
    def expected(self) -> str:
        return "positive" if self.sign > 0 else "negative"


CLAIMS = (
    PopulationClaim("P1", "kept", +1, "Models with higher AutoAttack accuracy keep a larger "
                    "share of their clean accuracy on the low-rank images L_k(x)."),
    PopulationClaim("P2", "high", -1, "Models with higher AutoAttack accuracy are less accurate "
                    "on the high-rank residual H_k(x)."),
    PopulationClaim("P3", "rig_top4_share", +1, "Models with higher AutoAttack accuracy put "
                    "more of their RIG attribution in the top 4 ranks."),
)  # fmt: skip


def _row_ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis of `v` (shape (..., n)): 1 + the values below, + half
    the other values equal (ties share the mean of their positions)."""
    below = (v[..., None, :] < v[..., :, None]).sum(-1)
    equal = (v[..., None, :] == v[..., :, None]).sum(-1)
    return below + (equal + 1) / 2.0


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r along the last axis (NaN where either side has no spread)."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    denom = np.sqrt((a**2).sum(-1) * (b**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(-1) / np.where(denom > 0, denom, 1.0), np.nan)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of `values` (shape (n,)), ties given the mean of the positions they share."""
    return _row_ranks(np.asarray(values, dtype=float))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho of paired values (shape (n,) each): Pearson's r of their average ranks;
    NaN when n < 2 or either side has no spread. Raises ValueError for unequal lengths."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values and y {len(y)}: expected pairs")
    if len(x) < 2:
        return math.nan
    return float(_row_pearson(average_ranks(x), average_ranks(y)))


# Bootstrap draws ranked at once: at most this many values per block (memory: n times that).
_BLOCK = 2_000_000


def bootstrap(
    x: Sequence[float], y: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float, int]:
    """(lo, hi, undefined): the 2.5th and 97.5th percentiles (numpy's linear interpolation) of
    rho over `resamples` bootstrap draws of the pairs (the module docstring's protocol) and how
    many draws had no rho. (NaN, NaN, resamples) when no draw had one. Raises ValueError when
    resamples < 1 or x and y differ in length."""
    if resamples < 1:
        raise ValueError(f"resamples={resamples!r}: expected at least 1 bootstrap draw")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values and y {len(y)}: expected pairs")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xs)
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.integers(0, n, n) for _ in range(resamples)])  # (resamples, n)
    step = max(1, _BLOCK // max(1, n * n))
    rhos = np.concatenate([
        _row_pearson(_row_ranks(xs[picks[i : i + step]]), _row_ranks(ys[picks[i : i + step]]))
        for i in range(0, resamples, step)
    ])  # fmt: skip
    found = rhos[~np.isnan(rhos)]
    undefined = resamples - len(found)
    if not len(found):
        return math.nan, math.nan, undefined
    lo, hi = np.percentile(found, [2.5, 97.5])
    return float(lo), float(hi), undefined


def autoattack(e: dict) -> float | None:
    """A model's AutoAttack accuracy for the population: the reported one, 0 for a natural model
    without one, else None."""
    if e.get("autoattack_acc") is not None:
        return float(e["autoattack_acc"])
    return 0.0 if e.get("kind") == "natural" else None


def _value(e: dict, claim: PopulationClaim, k: int | None) -> float | None:
    if claim.field in ("kept", "high"):
        return None if k is None else e[claim.field].get(k)
    return e.get(claim.field)


def _column(claim: PopulationClaim, k: int | None) -> str:
    return f"{claim.field}@{k}" if claim.field in ("kept", "high") else claim.field


def _rank_k(claim: PopulationClaim, models: Sequence[dict]) -> int | None:
    """k for a sweep claim: K_REF or the nearest rank below it measured for every model that has
    a value on the sweep; None when they share no rank (or it is not a sweep claim)."""
    if claim.field not in ("kept", "high"):
        return None
    have = [{k for k, v in e[claim.field].items() if v is not None} for e in models]
    have = [ks for ks in have if ks]
    common = set.intersection(*have) if have else set()
    return nearest_k(sorted(common), K_REF) if common else None


def _verdict(claim: PopulationClaim, rho: float, lo: float, hi: float) -> str:
    """above() on the interval turned to the expected side: lo > 0 holds (or hi < 0 for an
    expected negative), the whole interval on the other side does not hold."""
    if claim.sign > 0:
        return above(Estimate(rho, lo, hi), 0.0)
    return above(Estimate(-rho, -hi, -lo), 0.0)


def rule(claim: PopulationClaim, resamples: int, seed: int) -> str:
    side = "above" if claim.sign > 0 else "below"
    what = claim.field
    if claim.field in ("kept", "high"):
        what = f"{claim.field}@k (k = {K_REF}, or the nearest rank below it every model measured)"
    return (
        f"Spearman's rho between AutoAttack accuracy (reported; natural models 0) and "
        f"{what} across the models "
        f"of one data set: holds when its 95% interval (percentile bootstrap over models, "
        f"{resamples} resamples, seed {seed}) lies {side} 0, does not hold when it lies wholly "
        f"on the other side, inconclusive when it contains 0; not testable with fewer than "
        f"{MIN_MODELS} models"
    )


def decide(
    entries: Sequence[dict], dataset: str, claim: PopulationClaim,
    resamples: int = RESAMPLES, seed: int = SEED,
) -> dict:  # fmt: skip
    """One claim on one data set's models: {claim, dataset, statement, rule, expected, column,
    k, verdict, rho, lo, hi, n_models, resamples, seed, undefined_resamples, points: [{name,
    threat_model, kind, autoattack_acc, value}], left_out: [{name, reason}]}."""
    ours = [e for e in entries if e.get("dataset") == dataset]
    left_out, usable = [], []
    for e in ours:
        if e["status"] not in USABLE:
            left_out.append({"name": e["name"], "reason": f"status {e['status']}"})
        elif autoattack(e) is None:
            reason = "no reported AutoAttack accuracy (and not a natural model)"
            left_out.append({"name": e["name"], "reason": reason})
        else:
            usable.append(e)
    k = _rank_k(claim, usable)
    column = _column(claim, k if k is not None else K_REF)
    points = []
    for e in usable:
        value = _value(e, claim, k)
        if value is None:
            zero = claim.field == "kept" and e.get("clean_acc") == 0 and e["low"]
            why = f"{column} undefined: clean accuracy 0" if zero else f"no {column}"
            left_out.append({"name": e["name"], "reason": why})
            continue
        point = {"name": e["name"], "threat_model": e.get("threat_model"), "kind": e.get("kind")}
        points.append({**point, "autoattack_acc": autoattack(e), "value": value})
    found = {
        "claim": claim.claim, "dataset": dataset, "statement": claim.statement,
        "rule": rule(claim, resamples, seed), "expected": claim.expected, "column": column,
        "k": k, "rho": None, "lo": None, "hi": None, "n_models": len(points),
        "resamples": resamples, "seed": seed, "undefined_resamples": None,
        "method": "Spearman (Pearson of average ranks); percentile bootstrap over models",
        "points": points, "left_out": left_out,
    }  # fmt: skip
    x = [p["autoattack_acc"] for p in points]
    y = [p["value"] for p in points]
    swept = claim.field in ("kept", "high") and any(e[claim.field] for e in usable)
    if k is None and swept:
        sweep = "L_k" if claim.field == "kept" else "H_k"
        found["verdict"] = not_testable(f"the {dataset} models' {sweep} sweeps share no rank")
        return found
    if len(points) < MIN_MODELS:
        why = f"fewer than {MIN_MODELS} {dataset} models with AutoAttack accuracy and {column}"
        found["verdict"] = not_testable(f"{why}: {len(points)}")
        return found
    flat = [name for name, vs in (("AutoAttack accuracy", x), (column, y)) if len(set(vs)) < 2]
    if flat:
        found["verdict"] = not_testable(f"every model has the same {flat[0]}: rho is undefined")
        return found
    rho = spearman(x, y)
    lo, hi, undefined = bootstrap(x, y, resamples, seed)
    found.update(rho=rho, undefined_resamples=undefined)
    if math.isnan(lo):
        found["verdict"] = not_testable("no bootstrap resample had a defined rho")
        return found
    found.update(lo=lo, hi=hi, verdict=_verdict(claim, rho, lo, hi))
    return found


def population(entries: Sequence[dict], resamples: int = RESAMPLES, seed: int = SEED) -> list:
    """P1-P3 for every data set in `entries` (decide), data sets in alphabetical order."""
    datasets = sorted({str(e["dataset"]) for e in entries if e.get("dataset")})
    return [decide(entries, d, c, resamples, seed) for d in datasets for c in CLAIMS]
