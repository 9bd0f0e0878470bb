"""The analyses as plain functions: rank sweep, perturbation spectrum, RIG (analyses.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rankrobust.attacks import pgd_linf
from rankrobust.pipeline import analyses


def _datamodule(x, y, classes=("a", "b", "c", "d")):
    return SimpleNamespace(
        test_tensors=lambda raw=False, n=None, seed=None: (x[:n], y[:n]),
        test_index=lambda n=None, seed=None: torch.arange(len(y))[:n].numpy(),
        test_set=SimpleNamespace(classes=classes),
    )


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))


def test_perturbation_spectrum_is_the_mean_singular_values_of_images_and_perturbations():
    x, y = torch.rand(10, 3, 8, 8), torch.randint(0, 4, (10,))

    def attack(m, xb, yb):
        return pgd_linf(m, xb, yb, eps=8 / 255, step_size=2 / 255, steps=3)

    settings = analyses.SpectrumSettings(n_images=6)
    out = analyses.run_perturbation_spectrum(_model(), _datamodule(x, y), settings, attack, 4)
    spec = out["perturbation_spectrum"]
    assert spec["n_images"] == 6 and len(spec["clean"]) == 8 and len(spec["perturbation"]) == 8
    expected = torch.linalg.svdvals(x[:6]).mean((0, 1))  # reference: LAPACK per channel
    assert spec["clean"] == pytest.approx(expected.tolist(), rel=1e-4)
    assert all(0 < s <= 8 * (8 / 255) + 1e-6 for s in spec["perturbation"])  # <= Frobenius norm
    assert spec["clean"] == sorted(spec["clean"], reverse=True)


def test_rank_sweep_at_full_rank_equals_clean_accuracy_and_robust_keys_appear():
    x, y = torch.rand(12, 3, 8, 8), torch.randint(0, 4, (12,))
    model = _model()
    clean = (model(x).argmax(1) == y).float().mean().item()

    def attack(m, xb, yb, pixels=True):  # pixels=False: the H_k residuals leave [0, 1]
        return pgd_linf(m, xb, yb, eps=8 / 255, step_size=2 / 255, steps=2, pixels=pixels)

    settings = analyses.SweepSettings(ranks=[1, 8], robust=True, n_robust=6)
    out = analyses.run_rank_sweep(model, _datamodule(x, y), settings, attack, batch_size=5)
    sweep = out["rank_sweep"]
    assert out["rank_sweep_n"] == {"low": 12, "high": 12, "low_robust": 6, "high_robust": 6}
    assert set(sweep) == {"low", "high", "low_robust", "high_robust"}
    assert sweep["low"][8] == pytest.approx(clean)  # L_8 of 8x8 images is the image
    assert sorted(sweep["low"]) == [1, 8]


def test_default_ranks_every_rank_for_small_images_and_geometric_for_large():
    assert analyses.default_ranks(4) == [1, 2, 3, 4]
    assert analyses.default_ranks(224) == [1, 2, 4, 8, 16, 32, 64, 128, 224]


def test_rig_writes_its_files_and_shares_sum_to_one(tmp_path):
    x, y = torch.rand(6, 3, 8, 8), torch.randint(0, 4, (6,))
    settings = analyses.RIGSettings(enabled=True, n_images=3, steps_per_rank=2, baseline_steps=4)
    out = analyses.run_rig(_model(), _datamodule(x, y), settings, tmp_path, title="RIG: test")[
        "rig"
    ]
    assert out["ranks"] == list(range(1, 9)) and out["n_images"] == 3
    assert sum(out["mean_per_rank"]) == pytest.approx(1.0, abs=1e-5)
    arrays = np.load(tmp_path / "rig.npz")
    # completeness: the rank attributions add up to the pixel attribution of each image
    np.testing.assert_allclose(
        arrays["per_rank"].sum(1), arrays["pixel"].reshape(3, -1).sum(1), rtol=1e-4, atol=1e-5
    )
    assert (tmp_path / "rig.png").stat().st_size > 5_000
