"""C5 (ours, reported, no pass/fail): is it rank, or just frequency? At the same energy kept,
the robust-minus-natural accuracy gap on low-pass images in the SVD basis (rank) and in the
Fourier basis (radius).

Rule: for each natural/robust pair of full-image runs with a basis sweep, at each energy kept e
in ``LEVELS_C5``: each model's accuracy on the low-pass images of every basis at energy kept e,
the robust-minus-natural gap per basis, and the SVD gap minus the Fourier gap. Energy kept is a
property of the test images, not of the model, so natural and robust runs on the same test
images are compared at the same cutoffs.

Measurement: metrics.json ``basis_sweep`` (per basis: ``energy``, ``low``, ``high`` per cutoff)
and ``basis_sweep_n``.

Matching: a run's accuracy at energy e is interpolated linearly in log(1 - e) between the two
measured cutoffs whose energies bracket e (None outside the measured range, never
extrapolated; the top cutoff, energy 1, is not a point on that axis).

Intervals: one run: Wilson on basis_sweep_n images, treating the interpolated accuracy as a
proportion on those images (an approximation); several seeds: t over seeds; differences: Welch
(conservative here: natural and robust see the same images, SVD and Fourier too).

Figures: fig-bases-energy (low-pass accuracy vs energy kept, one line per basis), fig-bases-high
(the same for high-pass images), fig-heat-maps (Fourier heat map and its rank analogue).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rankrobust.reporting.claims._common import (
    REPORTED,
    ClaimResult,
    missing_pair,
    not_testable,
    result,
)
from rankrobust.reporting.claims.grouping import Group, full_image, groups, pairs
from rankrobust.reporting.intervals import Estimate, binomial, difference, mean_of

LEVELS_C5 = (0.95, 0.97, 0.99)  # energy kept at which the bases are compared
BASES_C5 = ("svd", "fourier", "dct", "wavelet")  # the order of the columns (rankrobust.bases)

STATEMENT = (
    "Is it rank, or just frequency? At the same energy kept, the robust-minus-natural accuracy "
    "gap on low-pass images in the SVD basis (rank) and in the Fourier basis (radius)."
)
RULE = (
    "reported, no pass/fail rule (our extension): at each energy kept e in "
    f"{', '.join(f'{e:g}' for e in LEVELS_C5)}, each model's low-pass accuracy in each basis "
    "(interpolated linearly in log(1 - e) between the measured cutoffs), the robust-minus-natural "
    "gap per basis and the SVD gap minus the Fourier gap, with 95% intervals (Wilson on the "
    "sweep's images for one run, t over seeds, Welch for differences)"
)


def _log_gap(e: float) -> float:
    return math.log(max(1.0 - e, 1e-12))


def acc_at_energy(parts: dict, e: float, mode: str = "low") -> float | None:
    """A run's accuracy on ``mode`` images at energy kept e: linear in log(1 - e) between the
    cutoffs that bracket e; None when e lies outside the measured energies."""
    energy, acc = parts.get("energy") or {}, parts.get(mode) or {}
    # the top cutoff (energy 1: the images themselves) is no point on a log(1 - e) axis
    points = sorted(
        (float(energy[k]), float(acc[k])) for k in acc if k in energy and energy[k] < 1 - 1e-9
    )
    for (e0, a0), (e1, a1) in zip(points, points[1:], strict=False):
        if e0 <= e <= e1:
            if e1 - e0 < 1e-12:
                return a0
            t = (_log_gap(e) - _log_gap(e0)) / (_log_gap(e1) - _log_gap(e0))
            return a0 + t * (a1 - a0)
    if len(points) == 1 and abs(points[0][0] - e) < 1e-12:
        return points[0][1]
    return None


def _basis_parts(row: dict, basis: str) -> dict | None:
    return (row.get("basis_sweep") or {}).get(basis)


def group_at_energy(g: Group, basis: str, e: float) -> Estimate | None:
    """The group's low-pass accuracy in ``basis`` at energy kept e (Wilson / t over seeds)."""
    vals = []
    for r in g.runs:
        parts = _basis_parts(r, basis)
        acc = None if parts is None else acc_at_energy(parts, e)
        if acc is None:
            return None
        vals.append((acc, r))
    if not vals:
        return None
    if len(vals) == 1:
        acc, r = vals[0]
        n = r.get("basis_sweep_n")
        return binomial(min(max(acc, 0.0), 1.0), int(n) if n else None)
    return mean_of([v for v, _ in vals])


def _has_sweep(row: dict) -> bool:
    sweep = row.get("basis_sweep") or {}
    return full_image(row) and "svd" in sweep and "fourier" in sweep


def decide(rows: Sequence[dict]) -> ClaimResult:
    """C5 on the run table: "reported" when a pair has both sweeps, else not testable.
    One comparison per pair and energy level: {basis}_natural / {basis}_robust accuracies,
    {basis}_difference (robust - natural) and svd_minus_fourier_difference, as Estimates."""
    comps = []
    for n, r in pairs(groups(rows, _has_sweep)):
        present = [b for b in BASES_C5 if all(_basis_parts(x, b) for x in n.runs + r.runs)]
        for e in LEVELS_C5:
            gaps: dict[str, Estimate] = {}
            entry: dict = {"natural": n.label, "robust": r.label, "energy": e}
            for basis in present:
                an, ar = group_at_energy(n, basis, e), group_at_energy(r, basis, e)
                if an is None or ar is None:
                    continue
                gaps[basis] = difference(ar, an)
                entry[f"{basis}_natural"], entry[f"{basis}_robust"] = an, ar
            if "svd" not in gaps or "fourier" not in gaps:
                continue
            for basis, gap in gaps.items():
                entry[f"{basis}_difference"] = gap
            entry["svd_minus_fourier_difference"] = difference(gaps["svd"], gaps["fourier"])
            comps.append(entry)
    gs = groups(rows, _has_sweep)
    if comps:
        verdict = REPORTED
    elif pairs(gs):
        verdict = not_testable(
            "no energy level at which both models' SVD and Fourier sweeps could be compared"
        )
    else:
        verdict = not_testable(missing_pair(gs, "SVD and Fourier basis sweeps"))
    return result("C5", STATEMENT, RULE, comps, verdict)


def group_points(g: Group, basis: str, mode: str = "low") -> list[tuple[float, Estimate]]:
    """(mean energy kept, accuracy Estimate) per cutoff common to the group's runs, sorted by
    energy; the top cutoff (energy kept 1, the images themselves) is left out."""
    sweeps = [_basis_parts(r, basis) or {} for r in g.runs]
    common = set.intersection(
        *[set(s.get(mode) or {}) & set(s.get("energy") or {}) for s in sweeps]
    )
    out = []
    for k in common:
        energy = float(np.mean([s["energy"][k] for s in sweeps]))
        if energy >= 1 - 1e-9:
            continue
        accs = [float(s[mode][k]) for s in sweeps]
        if len(accs) == 1:
            n = g.runs[0].get("basis_sweep_n")
            est = binomial(accs[0], int(n) if n else None)
        else:
            est = mean_of(accs)
        out.append((energy, est))
    return sorted(out, key=lambda p: p[0])


def sweep_groups_bases(rows: Sequence[dict]) -> list[Group]:
    """Full-image groups whose runs all have a basis sweep."""
    return groups(rows, lambda r: full_image(r) and bool(r.get("basis_sweep")))
