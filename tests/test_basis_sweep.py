"""Sweeps in every basis and the Fourier / rank heat maps (evaluate.py), checked independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust import bases
from rankrobust.evaluate import (
    accuracy,
    basis_sweep,
    fourier_heat_map,
    rank_heat_map,
    rank_sweep,
)
from rankrobust.models import SmallCNN


@pytest.fixture(scope="module")
def model_and_data(cifar_images, one_thread):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, width=8).eval()
    x, y = cifar_images
    return model, x[:48], y[:48]


def test_sweep_in_every_basis(model_and_data):
    model, x, y = model_and_data
    clean = accuracy(model, x, y)
    for basis in bases.BASES:
        cuts = bases.default_cutoffs(basis, 32, 32)
        out = basis_sweep(model, x, y, basis, cuts, batch_size=20)
        assert set(out) == {"low", "high", "energy"} and list(out["low"]) == cuts
        assert out["low"][cuts[-1]] == clean  # the top cutoff is the images themselves
        energy = [out["energy"][k] for k in cuts]
        assert energy == sorted(energy) and energy[-1] == pytest.approx(1.0)
        # independent: the model on the library's clamped low-pass, one cutoff
        k = cuts[1]
        want = accuracy(model, bases.low(x, k, basis=basis, clamp=True), y)
        assert out["low"][k] == pytest.approx(want)
        want = float(bases.energy_kept(x, k, basis=basis).mean())
        assert out["energy"][k] == pytest.approx(want, abs=1e-9)
    # the svd basis agrees with rank_sweep
    ranks = [1, 2, 4, 32]
    svd = basis_sweep(model, x, y, "svd", ranks)
    ref = rank_sweep(model, x, y, ranks)
    assert svd["low"] == ref["low"]
    assert svd["high"] == pytest.approx(ref["high"], abs=1 / len(y) + 1e-9)


class _FrequencyDetector(nn.Module):
    """Class 1 when the image's projection on cos(2 pi * 3 x / W) is large, else class 0."""

    def __init__(self, H: int, W: int):
        super().__init__()
        xx = np.arange(W)[None, :] / W
        u = np.cos(2 * np.pi * 3 * xx) * np.ones((H, 1))
        self.register_buffer("u", torch.tensor(u / np.linalg.norm(u), dtype=torch.float32))

    def forward(self, x):
        proj = ((x - 0.5) * self.u).sum((-2, -1)).abs().amax(1)
        return torch.stack([torch.ones_like(proj), proj], 1)  # class 1 iff proj > 1


def test_fourier_heat_map_finds_the_one_frequency():
    x = torch.full((6, 3, 16, 16), 0.5)
    y = torch.zeros(6, dtype=torch.long)
    hm = fourier_heat_map(_FrequencyDetector(16, 16), x, y, eps=2.0, size=4)
    assert hm.freqs == list(range(-4, 5)) and hm.error.shape == (9, 9)
    want = torch.zeros(9, 9)
    want[4, 4 + 3] = want[4, 4 - 3] = 1.0  # (k_y, k_x) = (0, +-3): every image misclassified
    assert torch.equal(hm.error, want)
    # below the detector's threshold nothing is misclassified
    assert (
        hm.error.sum() > 0
        and fourier_heat_map(_FrequencyDetector(16, 16), x, y, eps=0.5, size=4).error.sum() == 0
    )


def test_rank_heat_map_matches_numpy(model_and_data):
    model, x, y = model_and_data
    x, y = x[:12], y[:12]
    hm = rank_heat_map(model, x, y, eps=3.0, ranks=[1, 2, 8], seed=5)
    gen = torch.Generator().manual_seed(5)  # the documented signs: +-1 per image and channel
    signs = (torch.randint(0, 2, (12, 3, 1, 1), generator=gen).float() * 2 - 1).numpy()
    u, _, vh = np.linalg.svd(x.double().numpy())
    for i, k in enumerate([1, 2, 8]):
        pair = u[..., :, k - 1 : k] @ vh[..., k - 1 : k, :]
        xt = np.clip(x.numpy() + 3.0 * signs * pair, 0, 1)
        with torch.no_grad():
            pred = model(torch.tensor(xt, dtype=torch.float32)).argmax(1)
        assert hm.error[i] == pytest.approx(float((pred != y).float().mean()))


def test_cli_sweeps_every_basis_on_the_cifar_copy(tmp_path):
    """One short run on the real CIFAR-10 copy: every basis swept, heat maps, a Fourier-trained
    transform; metrics.json keeps accuracy and energy kept per cutoff."""
    from conftest import CIFAR_TARBALL
    from helpers import run_cli

    from rankrobust.results import read_metrics

    if not CIFAR_TARBALL.is_file():
        pytest.skip("CIFAR-10 JPEG copy absent")
    args = [
        "dataset=image_folder", f"dataset.root={CIFAR_TARBALL}", "model=small_cnn",
        "model.width=8", "trainer=cpu", "trainer.max_epochs=1", "logger=none",
        "dataset.n_train=128", "dataset.n_test=60", "eval.n_robust=0", "rig.enabled=false",
        "analysis.perturbation_spectrum=false", "sweep.ranks=[1,4,32]",
        "sweep.bases=[svd,fourier,dct,wavelet]", "sweep.cutoffs.fourier=[0,2,8,23]",
        "sweep.cutoffs.svd=[1,4,32]", "sweep.cutoffs.dct=[0,4,44]", "sweep.cutoffs.wavelet=[0,2,5]",
        "analysis.heat_maps=true", "analysis.heat_map_size=2", "analysis.heat_map_n_images=20",
        "analysis.heat_map_ranks=[1,8,32]", "rank=4", "transform.basis=fourier",
        "transform.apply_to=[train]", "trainer.enable_progress_bar=false", "hydra.run.dir=run",
        "analysis.for_rank_trained=all",  # a rank-trained run: ask for its sweeps
    ]  # fmt: skip
    result = run_cli(*args, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "ok" and m["basis_sweep_n"] == 60
    assert m["config"]["transform_basis"] == "fourier" and "fourier-low4" in m["config"]["name"]
    sweep = m["basis_sweep"]
    assert set(sweep) == set(bases.BASES)
    assert sorted(sweep["fourier"]["low"]) == [0, 2, 8, 23]
    assert sorted(sweep["wavelet"]["energy"]) == [0, 2, 5]
    for parts in sweep.values():
        energy = [parts["energy"][k] for k in sorted(parts["energy"])]
        assert energy == sorted(energy) and energy[-1] == pytest.approx(1.0)
        top = max(parts["low"])
        assert parts["low"][top] == pytest.approx(m["clean_acc"])  # test set untransformed
    assert sweep["svd"]["low"] == m["rank_sweep"]["low"]
    heat = m["heat_maps"]
    assert np.asarray(heat["fourier"]["error"]).shape == (5, 5) and heat["rank"]["ranks"] == [
        1,
        8,
        32,
    ]
    assert "fourier low-pass" in result.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweep.cutoffs.fourier=[0,24]", "sweep.cutoffs.fourier=24 is not valid"),
        ("sweep.cutoffs.svd=[0]", "sweep.cutoffs.svd=0"),
        ("sweep.bases=[svd,jpeg]", "sweep.bases="),
        ("sweep.wavelet=sym9", "sweep.wavelet='sym9'"),
        ("+sweep.cutoffs.jpeg=[1]", "sweep.cutoffs.jpeg is not a basis"),
        ("analysis.heat_map_eps=0", "analysis.heat_map_eps=0"),
        ("transform.basis=fourier rank=30", "0 <= rank <= 23"),
        ("transform.basis=jpeg rank=2", "basis"),
        ("transform=band transform.basis=fourier", "an SVD band"),
    ],
)
def test_bad_basis_settings_stop_before_training(override, message):
    from helpers import FAST, make_cfg

    from rankrobust.errors import ConfigError
    from rankrobust.pipeline.checks import check_config

    cfg = make_cfg(*FAST, *override.split())
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        check_config(cfg)


def test_the_basis_sweep_at_small_scale_takes_a_subset_of_the_rank_sweeps_images():
    """sweep.basis_n_images: the demo sweeps four bases on fewer images than the rank sweep; they
    are some of the rank sweep's own images, so the two stay comparable."""
    from rankrobust.pipeline.analyses import SweepSettings, run_basis_sweep
    from rankrobust.pipeline.datamodule import ImageDataModule

    dm = ImageDataModule("synthetic", n_train=8, n_test=50, image_size=8, augment=False)
    dm.setup("test")
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return x.flatten(1)[:, :10]

    model = Spy()
    model.p = nn.Parameter(torch.zeros(1))  # test_tensors' device comes from the parameters
    settings = SweepSettings(n_images=40, bases=["fourier"], cutoffs={"fourier": [0, 2]},
                             modes=["low"], basis_n_images=12)  # fmt: skip
    out = run_basis_sweep(model, dm, settings, batch_size=1000)
    assert out["basis_sweep_n"] == 12 and set(seen) == {12}
    rank_sweep_images, _ = dm.test_tensors(raw=True, n=40)
    basis_images, _ = dm.test_tensors(raw=True, n=12)
    same = (basis_images.flatten(1)[:, None] == rank_sweep_images.flatten(1)[None]).all(-1)
    assert same.any(1).all()  # every basis-sweep image is one of the rank sweep's
    # never more than the rank sweep's images; None = the rank sweep's n_images
    assert (
        run_basis_sweep(
            model,
            dm,
            SweepSettings(
                n_images=40,
                bases=["fourier"],
                cutoffs={"fourier": [0]},
                modes=["low"],
                basis_n_images=500,
            ),
            1000,
        )["basis_sweep_n"]
        == 40
    )
    assert (
        run_basis_sweep(
            model,
            dm,
            SweepSettings(n_images=30, bases=["fourier"], cutoffs={"fourier": [0]}, modes=["low"]),
            1000,
        )["basis_sweep_n"]
        == 30
    )
