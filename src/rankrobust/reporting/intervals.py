"""95% intervals for accuracies and the quantities the claims are decided on, and the three-valued
verdicts they give (holds / does not hold / inconclusive). Pure maths, no project imports.

- One run's accuracy p on n images: the Wilson score interval
      (p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),   z = 1.96
  (unlike p ± z sqrt(p(1-p)/n) it stays inside [0, 1] and behaves near 0 and 1).
- The mean of m values (seeds of one training identity, or images): mean ± t_{.975,m-1} s/sqrt(m).
- A ratio a/c of two estimates (the delta method): se = sqrt((se_a/c)^2 + (a se_c/c^2)^2);
  the covariance is ignored, which widens the interval when a and c are positively correlated
  (accuracies on the same images are), so the interval errs on the wide side.
- A difference x - y of independent estimates: se = sqrt(se_x^2 + se_y^2) with the
  Welch-Satterthwaite degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
Z95 = 1.959964
# t_{0.975, df} for df = 1..30; above 30 the Cornish-Fisher expansion is accurate to 1e-3.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95% interval [lo, hi] (None when a count it needs is unknown).

    se and df: the standard error and degrees of freedom (inf: normal) used to combine it;
    n: the images (one run) or values (a mean) behind it; method: how the interval was made.
    """

    value: float
    lo: float | None = None
    hi: float | None = None
    se: float | None = None
    df: float = math.inf
    n: int | None = None
    method: str = "n unknown"

    @property
    def known(self) -> bool:
        return self.lo is not None and self.hi is not None

    def as_dict(self) -> dict:
        """JSON-safe: an infinite df becomes null."""
        return {
            "value": self.value,
            "lo": self.lo,
            "hi": self.hi,
            "n": self.n,
            "method": self.method,
            "se": self.se,
            "df": None if math.isinf(self.df) else self.df,
        }


def t975(df: float) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (df rounded down: wider)."""
    if math.isinf(df):
        return Z95
    if not df >= 1:
        raise ValueError(f"df={df!r}: expected degrees of freedom >= 1")
    d = int(df)
    if d <= len(_T975):
        return _T975[d - 1]
    z = Z95
    return z + (z**3 + z) / (4 * d) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * d**2)


def wilson(p: float, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion p observed on n trials."""
    if n < 1:
        raise ValueError(f"n={n!r}: expected a count >= 1")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p!r}: expected a proportion in [0, 1]")
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial(p: float, n: int | None) -> Estimate:
    """One run's accuracy p on n images (Wilson); n None gives an estimate without interval."""
    if n is None:
        return Estimate(float(p))
    lo, hi = wilson(p, int(n))
    se = math.sqrt(max(p * (1 - p), 0.25 / n) / n)  # never 0, so differences stay honest
    return Estimate(float(p), lo, hi, se, math.inf, int(n), "Wilson")


def mean_of(
    values: Sequence[float],
    method: str = "t over seeds",
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Estimate:
    """The mean of several values with its t-interval (one value: no interval), clipped to
    `bounds` (the range the values can take; None: unbounded, e.g. for ratios)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("values=[]: expected at least one value")
    m = sum(v) / len(v)
    if len(v) < 2:
        return Estimate(m, n=1)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    se = sd / math.sqrt(len(v))
    half = t975(len(v) - 1) * se
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Estimate(m, lo, hi, se, len(v) - 1, len(v), method)


def _from_se(value: float, se: float | None, df: float, n: int | None, method: str) -> Estimate:
    if se is None:
        return Estimate(value, n=n)
    half = t975(df) * se
    return Estimate(value, value - half, value + half, se, df, n, method)


def ratio(a: Estimate, c: Estimate) -> Estimate:
    """a / c with a delta-method interval (unknown when either side's is)."""
    if c.value == 0:
        return Estimate(math.nan)
    value = a.value / c.value
    if a.se is None or c.se is None:
        return Estimate(value)
    se = math.hypot(a.se / c.value, a.value * c.se / c.value**2)
    return _from_se(value, se, min(a.df, c.df), None, "delta method")


def difference(x: Estimate, y: Estimate) -> Estimate:
    """x - y for independent estimates, with the Welch-Satterthwaite degrees of freedom."""
    value = x.value - y.value
    if x.se is None or y.se is None:
        return Estimate(value)
    var = x.se**2 + y.se**2
    parts = [s**4 / d for s, d in ((x.se, x.df), (y.se, y.df)) if not math.isinf(d)]
    # no finite-df part with spread (e.g. identical seeds beside a binomial): normal df
    df = math.inf if sum(parts) == 0 or var == 0 else max(1.0, var**2 / sum(parts))
    return _from_se(value, math.sqrt(var), df, None, "difference (Welch)")


def above(est: Estimate, threshold: float) -> str:
    """holds when the whole interval lies above threshold, does not hold when it lies at or
    below it, inconclusive when it straddles it or is unknown."""
    if not est.known:
        return INCONCLUSIVE
    if est.lo > threshold:
        return HOLDS
    return FAILS if est.hi <= threshold else INCONCLUSIVE


def within(est: Estimate, low: float, high: float) -> str:
    """holds when the whole interval lies in [low, high], does not hold when it lies wholly
    outside, inconclusive otherwise."""
    if not est.known:
        return INCONCLUSIVE
    if low <= est.lo and est.hi <= high:
        return HOLDS
    return FAILS if est.lo > high or est.hi < low else INCONCLUSIVE


def all_of(verdicts: Iterable[str]) -> str:
    """Three-valued AND: one failure decides; all must hold to hold; else inconclusive."""
    v = list(verdicts)
    if FAILS in v:
        return FAILS
    return HOLDS if v and all(x == HOLDS for x in v) else INCONCLUSIVE


def fmt(est: Estimate | None, digits: int = 1) -> str:
    """'42.5% [38.1, 46.9]' (percent), '42.5% (n unknown)' or 'n/a'."""
    if est is None or est.value is None or math.isnan(est.value):
        return "n/a"
    p = f"{100 * est.value:.{digits}f}%"
    if not est.known:
        return f"{p} (n unknown)"
    return f"{p} [{100 * est.lo:.{digits}f}, {100 * est.hi:.{digits}f}]"
