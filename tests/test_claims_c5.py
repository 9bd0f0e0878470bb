"""Claim C5 (is it rank, or just frequency?): matched-energy gaps checked by np.interp."""

from __future__ import annotations

import numpy as np
import pytest
from fake_runs import fake_bases, make_outputs

from rankrobust.reporting.claims import claims
from rankrobust.reporting.claims.c5 import LEVELS_C5, acc_at_energy
from rankrobust.reporting.collect import collect


def _interp(parts: dict, e: float) -> float:
    """Independent: np.interp on x = log(1 - energy) (decreasing, so reversed)."""
    ks = [k for k in parts["low"] if parts["energy"][k] < 1]
    x = np.log(1 - np.array([parts["energy"][k] for k in ks]))
    y = np.array([parts["low"][k] for k in ks])
    order = np.argsort(x)
    return float(np.interp(np.log(1 - e), x[order], y[order]))


def test_c5_gaps_at_matched_energy(tmp_path):
    rows = collect(make_outputs(tmp_path / "outputs"))
    c5 = {c.claim: c for c in claims(rows)}["C5"]
    assert c5.verdict == "reported" and [x["energy"] for x in c5.comparisons] == list(LEVELS_C5)
    nat, rob = fake_bases(False)["basis_sweep"], fake_bases(True)["basis_sweep"]
    for x in c5.comparisons:
        e = x["energy"]
        for basis in ("svd", "fourier", "wavelet"):
            measured = [v for v in nat[basis]["energy"].values() if v < 1]
            if not min(measured) <= e <= max(measured):  # never extrapolated
                assert f"{basis}_difference" not in x
                continue
            want = _interp(rob[basis], e) - _interp(nat[basis], e)
            assert x[f"{basis}_difference"].value == pytest.approx(want, abs=1e-9)
            gap = x[f"{basis}_difference"]
            assert gap.lo < gap.value < gap.hi  # Welch of two Wilson intervals (n = 1000)
        diff = x["svd_minus_fourier_difference"]
        want = x["svd_difference"].value - x["fourier_difference"].value
        assert diff.value == pytest.approx(want) and diff.lo < diff.value < diff.hi
        assert "dct_difference" not in x  # no dct sweep in these runs


def test_energy_outside_the_sweep_is_not_extrapolated():
    parts = {"low": {1: 0.2, 2: 0.5}, "energy": {1: 0.9, 2: 0.95}}
    assert acc_at_energy(parts, 0.8) is None and acc_at_energy(parts, 0.99) is None
    assert acc_at_energy(parts, 0.9) == pytest.approx(0.2)
    assert acc_at_energy(parts, 0.95) == pytest.approx(0.5)


def test_c5_not_testable_without_both_sweeps(tmp_path):
    rows = collect(make_outputs(tmp_path / "outputs"))
    for r in rows:
        r.pop("basis_sweep", None)
    c5 = {c.claim: c for c in claims(rows)}["C5"]
    assert c5.verdict.startswith("not testable") and c5.comparisons == []
