"""Spectral Integrated Gradients and the one-interface attribution methods (gradient, IG, RIG, SIG).

SIG is checked against an independent implementation of the PAPER.md definition written here
(numpy float64 SVD, the gating formula, one autograd call per path point, the left sum of SIG's
published code), on a small CNN and real CIFAR-10 images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust.attribution import (
    IntegratedGradients,
    RankIntegratedGradients,
    SpectralIntegratedGradients,
    explain,
    rank_integrated_gradients,
    rig_schedule,
    spectral_integrated_gradients,
)
from rankrobust.attribution.sig import spectral_path
from rankrobust.errors import ConfigError
from rankrobust.models import small_cnn


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    model = small_cnn(10, width=8).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _tiny() -> nn.Module:  # smooth, for 8x8 path-family identities
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.Softplus(), nn.Conv2d(6, 6, 3, padding=1), nn.Softplus(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4),
    ).eval()  # fmt: skip


def _reference_sig(model, x, target, m, overlap):
    """PAPER.md's SIG, independently: per channel D = x - 0 = sum s_i u_i v_i^T (float64),
    t_i = (1 - w)(1 - s_i/s_1), gamma(a) = sum_i clamp((a - t_i)/w, 0, 1) s_i u_i v_i^T, and
    A = sum_{j<m} grad p_target(gamma(j/m)) * (gamma((j+1)/m) - gamma(j/m))."""
    d = x.double().numpy()
    u, s, vh = np.linalg.svd(d, full_matrices=False)  # (N, C, H, R), (N, C, R), (N, C, R, W)
    t = (1 - overlap) * (1 - s / s[..., :1])

    def gamma(a: float) -> np.ndarray:
        g = np.clip((a - t) / overlap, 0.0, 1.0) if overlap > 0 else (a > t).astype(float)
        return np.einsum("nchr,ncr,ncrw->nchw", u, g * s, vh)

    points = [gamma(j / m) for j in range(m + 1)]
    total = np.zeros_like(d)
    for j in range(m):
        p = torch.tensor(points[j], dtype=torch.float32, requires_grad=True)
        prob = torch.softmax(model(p), dim=1)[torch.arange(len(x)), target]
        (g,) = torch.autograd.grad(prob.sum(), p)
        total += g.double().numpy() * (points[j + 1] - points[j])
    return torch.from_numpy(total)


@pytest.mark.parametrize("overlap", [0.5, 0.2])
def test_sig_equals_an_independent_implementation_on_cifar10(cifar_images, one_thread, overlap):
    images, _ = cifar_images
    x = images[:4]
    model = _cnn()
    target = model(x).argmax(1)
    ref = _reference_sig(model, x, target, m=24, overlap=overlap)
    softmax_model = nn.Sequential(model, nn.Softmax(dim=1))
    ours, delta = SpectralIntegratedGradients(softmax_model).attribute(
        x, target=target, n_steps=24, overlap=overlap, method="riemann_left",
        return_convergence_delta=True,
    )  # fmt: skip
    scale = ref.abs().max().item()
    torch.testing.assert_close(ours.double(), ref, rtol=1e-3, atol=1e-4 * scale)
    # the convergence delta is the completeness gap of these very numbers
    with torch.no_grad():
        gap = (
            softmax_model(x)[torch.arange(4), target]
            - softmax_model(torch.zeros_like(x))[torch.arange(4), target]
        )
    torch.testing.assert_close(delta, ours.sum((1, 2, 3)) - gap, rtol=1e-4, atol=1e-6)


def test_sig_path_ends_at_the_input_and_is_monotone_in_alpha(cifar_images):
    x = cifar_images[0][:2]
    path = spectral_path(x, torch.zeros_like(x), 8, overlap=0.5)
    assert len(path) == 9
    assert torch.equal(path[0], torch.zeros_like(x)) and torch.equal(path[-1], x)
    # energy of gamma(alpha) grows with alpha (components only switch on)
    energy = torch.stack([p.pow(2).sum((1, 2, 3)) for p in path])
    assert bool((energy[1:] >= energy[:-1] - 1e-4).all())


def test_rank_uniform_schedule_is_rigs_rank_path():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    model, target = _tiny(), torch.tensor([0, 2, 3])
    rig = rank_integrated_gradients(
        model, x, target=target, n_steps_per_rank=3, method="riemann_middle"
    )
    sig = spectral_integrated_gradients(
        model, x, target=target, n_steps=8 * 3, method="riemann_middle", schedule="rank_uniform"
    )
    torch.testing.assert_close(sig.pixel, rig.pixel, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sig.delta, rig.delta, rtol=1e-4, atol=1e-5)
    # the path's vertices alpha = k/R are the low-rank approximations L_k(x)
    path = spectral_path(x, torch.zeros_like(x), 8, schedule="rank_uniform")
    from rankrobust.svd import factorize

    fac = factorize(x)
    for k in (1, 3, 7):
        torch.testing.assert_close(path[k], fac.low_rank(k, clamp=False), atol=1e-5, rtol=0)


def test_overlap_to_zero_gives_the_step_path_of_strongest_first_partial_sums():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    model, m = _tiny(), 16
    steps = spectral_path(x, torch.zeros_like(x), m, overlap=0.0)
    # every vertex is, per channel, a partial sum of the strongest components: L_k, k = the
    # number of components with 1 - s_i/s_1 < alpha (independent numpy SVD)
    u, s, vh = np.linalg.svd(x.double().numpy(), full_matrices=False)
    for j in (1, 5, 12):
        k = ((1 - s / s[..., :1]) < j / m).sum(-1)  # (N, C)
        for n in range(2):
            for c in range(3):
                kk = int(k[n, c])
                low = (u[n, c, :, :kk] * s[n, c, :kk]) @ vh[n, c, :kk]
                np.testing.assert_allclose(steps[j][n, c].numpy(), low, atol=1e-5)
    # and SIG is continuous as the overlap shrinks to 0
    a0 = spectral_integrated_gradients(model, x, n_steps=m, overlap=0.0).pixel
    a_small = spectral_integrated_gradients(model, x, n_steps=m, overlap=1e-7).pixel
    a_half = spectral_integrated_gradients(model, x, n_steps=m, overlap=0.5).pixel
    err_small, err_half = (a_small - a0).abs().max(), (a_half - a0).abs().max()
    assert err_small < 1e-4 * a0.abs().max() < err_half


def test_straight_path_class_equals_captum_integrated_gradients():
    from captum.attr import IntegratedGradients as CaptumIG

    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    model, target = _tiny(), torch.tensor([1, 0, 3])
    for method in ("riemann_middle", "gausslegendre", "riemann_left"):
        ours, d = IntegratedGradients(model).attribute(
            x, target=target, n_steps=12, method=method, return_convergence_delta=True
        )
        ref, rd = CaptumIG(model).attribute(
            x, target=target, n_steps=12, method=method, return_convergence_delta=True
        )
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(d, rd.to(d.dtype), rtol=1e-5, atol=1e-6)


class _Counter(nn.Module):
    """Counts the images that go through the model with gradients on (gradient evaluations)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.graded = net, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.graded += x.shape[0]
        return self.net(x)


@pytest.mark.parametrize(
    ("method", "per_image"), [("gradient", 1), ("ig", 40), ("rig", 40), ("sig", 40)]
)
def test_every_method_spends_the_same_gradient_evaluations(method, per_image):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    model = _Counter(_tiny())
    out = explain(model, x, method, n_steps=40)
    assert model.graded == per_image * 2 == out.evaluations * 2
    assert out.pixel.shape == x.shape and out.target.shape == (2,)
    assert (out.delta is None) == (method == "gradient")


def test_rig_schedule_splits_the_budget_exactly():
    assert rig_schedule(64, 32) == (2, 2)
    per, first = rig_schedule(70, 32)
    assert per == 2 and first + 31 * per == 70
    with pytest.raises(ConfigError, match="steps >= 32"):
        rig_schedule(16, 32)
    # RIG's captum class takes the same total budget
    x = torch.rand(1, 3, 8, 8)
    model = _Counter(_tiny())
    RankIntegratedGradients(model).attribute(x, target=0, n_steps=20)
    assert model.graded == 20


def test_noise_tunnel_takes_sig_and_bad_arguments_raise():
    from captum.attr import NoiseTunnel

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    model = _tiny()
    sig = SpectralIntegratedGradients(model)
    plain = sig.attribute(x, target=1, n_steps=8)
    smooth = NoiseTunnel(sig).attribute(
        x, nt_type="smoothgrad", nt_samples=2, stdevs=0.0, target=1, n_steps=8
    )
    torch.testing.assert_close(smooth, plain, rtol=1e-5, atol=1e-6)
    noisy = NoiseTunnel(sig).attribute(x, nt_samples=2, stdevs=0.1, target=1, n_steps=8)
    assert not torch.allclose(noisy, plain)
    with pytest.raises(ConfigError, match="overlap"):
        sig.attribute(x, target=1, overlap=1.0)
    with pytest.raises(ConfigError, match="riemann_left"):
        sig.attribute(x, target=1, method="gausslegendre")
    with pytest.raises(ConfigError, match="schedule"):
        sig.attribute(x, target=1, schedule="fourier")
