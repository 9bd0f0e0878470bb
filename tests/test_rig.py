"""Tests for rankrobust.attribution: RIG, IG (vs captum) and vanilla gradients on tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rankrobust.attribution import (
    integrated_gradients,
    path_integral,
    quadrature,
    rank_integrated_gradients,
    vanilla_gradient,
)
from rankrobust.errors import ConfigError
from rankrobust.svd import factorize

HW = 8  # full rank 8: 8 segments x 8 steps = 64 evaluations per image


def _tiny_cnn(num_classes: int = 3, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        act(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        act(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(32, num_classes),
    )


def _synthetic(n: int, hw: int = HW, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise plus one of three fixed class patterns, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    patterns = torch.rand(3, 3, hw, hw, generator=torch.Generator().manual_seed(2))
    x = (0.5 * torch.rand(n, 3, hw, hw, generator=g) + 0.5 * patterns[y]).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor]:
    """A small ReLU CNN trained briefly (full batch, Adam) to ~100% train accuracy."""
    torch.manual_seed(0)
    model = _tiny_cnn()
    x, y = _synthetic(128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, f"the fixture model did not train (acc {acc:.2f})"
    x_test, _ = _synthetic(16, seed=7)
    return model, x_test


# ------------------------------------------------------------------------------ (a) completeness
def test_completeness_rig_trained_relu_cnn(trained):
    """Completeness on a briefly trained ReLU CNN, 8 points per rank segment.

    Nearly all of the integration error sits in the first segment, baseline -> L_1(x), the
    longest one (L_1 carries most of the image).  With 8 midpoints there, the median relative
    |delta| of briefly trained ReLU CNNs ranged 0.5%-12% over seeds; 64 points on that one
    segment (``baseline_steps=64``, +56 evaluations) brought it to <= 1% in all 20 cases tried.
    """
    model, x = trained
    res = rank_integrated_gradients(model, x, n_steps_per_rank=8, baseline_steps=64)
    assert res.ranks == list(range(1, HW + 1))
    assert res.pixel.shape == x.shape
    assert res.per_rank.shape == (x.shape[0], HW)
    with torch.no_grad():
        t = res.target[:, None]
        gap = model(x).gather(1, t)[:, 0] - model(torch.zeros_like(x)).gather(1, t)[:, 0]
    torch.testing.assert_close(res.score_input - res.score_baseline, gap, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(res.delta, res.per_rank.sum(1) - gap, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(res.relative_delta, res.delta.abs() / gap.abs())
    assert res.relative_delta.median().item() <= 0.02, res.relative_delta
    # the plain rule (8 points on every segment, the first included) is coarser but close
    plain = rank_integrated_gradients(model, x, n_steps_per_rank=8)
    assert plain.relative_delta.median().item() <= 0.15, plain.relative_delta
    assert plain.relative_delta.median() >= res.relative_delta.median()


def test_completeness_smooth_model_and_softmax_score():
    torch.manual_seed(3)
    model = _tiny_cnn(act=nn.Softplus).eval()
    x, _ = _synthetic(4)
    res = rank_integrated_gradients(model, x, n_steps_per_rank=8, baselines="mean")
    assert res.relative_delta.max().item() < 0.02
    prob = rank_integrated_gradients(model, x, n_steps_per_rank=8, score="softmax")
    with torch.no_grad():
        p = model(x).softmax(1).gather(1, prob.target[:, None])[:, 0]
    torch.testing.assert_close(prob.score_input, p)
    assert prob.relative_delta.median().item() < 0.02


def test_rig_segments_match_score_differences_on_the_rank_path():
    """Each segment's attribution is f(L_k) - f(L_{k-1}) up to quadrature error."""
    torch.manual_seed(4)
    model = _tiny_cnn(act=nn.Softplus).eval()
    x, _ = _synthetic(2)
    ranks = [1, 2, 4, HW]
    res = rank_integrated_gradients(model, x, ranks=ranks, n_steps_per_rank=16)
    fac = factorize(x)
    pts = [torch.zeros_like(x)] + [fac.low_rank(r) for r in ranks[:-1]] + [x]
    with torch.no_grad():
        f = torch.stack([model(p).gather(1, res.target[:, None])[:, 0] for p in pts], 1)
    torch.testing.assert_close(res.per_rank, f[:, 1:] - f[:, :-1], rtol=0.02, atol=2e-3)


# ------------------------------------------------------------------------------ (b) captum
@pytest.mark.parametrize("method", ["riemann_middle", "riemann_left", "gausslegendre"])
def test_straight_path_matches_captum(trained, method):
    from captum.attr import IntegratedGradients

    model, x = trained
    target = torch.tensor([0, 1, 2, 1] * 4)
    # a non-constant baseline: a flat image puts exact ties into max-pooling at alpha = 0
    base = 0.5 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    # the same memory layout as captum's inputs, so both run the same float operations
    res = integrated_gradients(
        model,
        x,
        target=target,
        n_steps=20,
        baselines=base,
        method=method,
        internal_batch_size=64,
        channels_last=False,
    )
    ref, delta = IntegratedGradients(model).attribute(
        x,
        baselines=base,
        target=target,
        n_steps=20,
        method=method,
        internal_batch_size=64,
        return_convergence_delta=True,
    )
    torch.testing.assert_close(res.pixel, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(res.delta, delta.to(res.delta.dtype), rtol=1e-4, atol=1e-4)


def test_rig_with_one_full_rank_segment_is_ig(trained):
    model, x = trained
    rig = rank_integrated_gradients(model, x[:4], ranks=[HW], n_steps_per_rank=10)
    ig = integrated_gradients(model, x[:4], n_steps=10)
    assert rig.ranks == [HW] and rig.per_rank.shape == (4, 1)
    torch.testing.assert_close(rig.pixel, ig.pixel, rtol=1e-5, atol=1e-6)


def test_batch_size_does_not_change_results(trained):
    model, x = trained
    a = rank_integrated_gradients(
        model, x[:3], ranks=[2, 5, HW], n_steps_per_rank=3, internal_batch_size=1
    )
    b = rank_integrated_gradients(
        model, x[:3], ranks=[2, 5, HW], n_steps_per_rank=3, internal_batch_size=7
    )
    torch.testing.assert_close(a.pixel, b.pixel, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.per_rank, b.per_rank, rtol=1e-5, atol=1e-6)


def test_memory_format_does_not_change_results(trained):
    model, x = trained
    a = rank_integrated_gradients(model, x[:3], n_steps_per_rank=2, channels_last=True)
    b = rank_integrated_gradients(model, x[:3], n_steps_per_rank=2, channels_last=False)
    torch.testing.assert_close(a.pixel, b.pixel, rtol=1e-4, atol=1e-5)
    assert a.pixel.is_contiguous()


def test_batching_respects_batch_size(trained):
    model, x = trained
    sizes: list[int] = []
    hook = model.register_forward_pre_hook(lambda mod, inp: sizes.append(inp[0].shape[0]))
    try:
        rank_integrated_gradients(model, x[:5], n_steps_per_rank=8, internal_batch_size=100)
    finally:
        hook.remove()
    assert max(sizes) <= 100
    # 5 images x 8 segments x 8 steps = 320 gradient points in ceil(320/100) = 4 passes, plus
    # one no-grad pass for f(x) and f(baseline)
    assert sorted(sizes) == [10, 20, 100, 100, 100]


# ------------------------------------------------------------------------------ (c) sums
def test_per_rank_sums_equal_pixel_sums(trained):
    model, x = trained
    res = rank_integrated_gradients(model, x[:6], n_steps_per_rank=4, baselines="mean")
    torch.testing.assert_close(res.per_rank.sum(1), res.pixel.sum((1, 2, 3)), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ (d) target
def test_target_defaults_to_top_label(trained):
    model, x = trained
    with torch.no_grad():
        top = model(x).argmax(1)
    res = rank_integrated_gradients(model, x, n_steps_per_rank=2)
    assert res.target.dtype == torch.long
    assert torch.equal(res.target, top)
    explicit = rank_integrated_gradients(model, x, target=top, n_steps_per_rank=2)
    torch.testing.assert_close(res.pixel, explicit.pixel)
    other = rank_integrated_gradients(model, x, target=(top + 1) % 3, n_steps_per_rank=2)
    assert not torch.allclose(other.pixel, res.pixel)
    scalar = integrated_gradients(model, x, target=2, n_steps=4)
    assert scalar.target.tolist() == [2] * x.shape[0]


def test_vanilla_gradient(trained):
    model, x = trained
    x = x[:4]
    g = vanilla_gradient(model, x)
    assert g.shape == x.shape
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
    torch.testing.assert_close(g, xr.grad)
    g1 = vanilla_gradient(model, x, target=1, internal_batch_size=3)
    xr.grad = None
    model(xr)[:, 1].sum().backward()
    torch.testing.assert_close(g1, xr.grad)
    for p in model.parameters():
        p.grad = None


# ------------------------------------------------------------------------------ (e) rank subsets
def test_rank_subset(trained):
    model, _ = trained
    torch.manual_seed(5)
    x = torch.rand(3, 3, 32, 32)
    model32 = model  # adaptive pooling: any input size works
    ranks = [1, 2, 4, 8, 32]
    res = rank_integrated_gradients(model32, x, ranks=ranks, n_steps_per_rank=2)
    assert res.ranks == ranks
    assert res.per_rank.shape == (3, len(ranks))
    assert res.pixel.shape == x.shape
    assert torch.isfinite(res.pixel).all()
    torch.testing.assert_close(res.per_rank.sum(1), res.pixel.sum((1, 2, 3)), rtol=1e-4, atol=1e-4)


def test_general_engine_custom_path(trained):
    model, x = trained
    x = x[:2]
    mid = 0.5 * x
    res = path_integral(
        model, [torch.zeros_like(x), mid, x], n_steps_per_segment=[4, 6], method="riemann_right"
    )
    assert res.per_segment.shape == (2, 2)
    torch.testing.assert_close(res.per_segment.sum(1), res.pixel.sum((1, 2, 3)))


@pytest.mark.parametrize(
    ("method", "m", "degree"),
    [("riemann_middle", 4, 1), ("riemann_middle", 3, 1), ("riemann_trapezoid", 4, 1),
     ("riemann_left", 4, 0), ("riemann_right", 4, 0), ("gausslegendre", 3, 5)],
)  # fmt: skip
def test_quadrature_integrates_polynomials_up_to_its_degree(method, m, degree):
    """int_0^1 a^d da = 1/(d+1): exact up to the rule's degree of exactness, not beyond."""
    a, w = quadrature(method, m)
    for d in range(degree + 1):
        assert float((w * a**d).sum()) == pytest.approx(1 / (d + 1), abs=1e-12)
    d = degree + 1
    assert abs(float((w * a**d).sum()) - 1 / (d + 1)) > 1e-4


class _Quadratic(nn.Module):
    """Class-0 logit f(x) = sum(A x^2 + B x), class-1 logit 0: grad f = 2 A x + B is linear in x."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        self.B = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.A * x**2 + self.B * x).flatten(1).sum(1)
        return torch.stack([f, torch.zeros_like(f)], 1)


@pytest.mark.parametrize("method", ["riemann_middle", "riemann_trapezoid", "gausslegendre"])
def test_ig_and_rig_are_exact_for_a_quadratic_model(method):
    """Along any straight segment the integrand is linear in alpha, so every rule exact for
    linear functions integrates it exactly: IG = A (x^2 - b^2) + B (x - b) per pixel, and
    along the rank path these telescope to the same map, with segment k worth f(L_k) - f(L_k-1).
    """
    x = torch.rand(2, 3, HW, HW, dtype=torch.float64)
    base = 0.3 * torch.rand(2, 3, HW, HW, dtype=torch.float64)
    model = _Quadratic(x.shape[1:])
    with torch.no_grad():
        exact = model.A * (x**2 - base**2) + model.B * (x - base)
    ig = integrated_gradients(model, x, target=0, n_steps=3, baselines=base, method=method)
    torch.testing.assert_close(ig.pixel, exact, rtol=1e-10, atol=1e-10)
    ranks = [1, 3, HW]
    rig = rank_integrated_gradients(
        model, x, target=0, ranks=ranks, n_steps_per_rank=2, baselines=base, method=method
    )
    torch.testing.assert_close(rig.pixel, exact, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(rig.delta, torch.zeros_like(rig.delta), rtol=0, atol=1e-8)
    fac = factorize(x, dtype=torch.float64)
    points = [base] + [fac.low_rank(r) for r in ranks[:-1]] + [x]
    with torch.no_grad():
        f = torch.stack([model(p)[:, 0] for p in points], 1)
    torch.testing.assert_close(rig.per_rank, f[:, 1:] - f[:, :-1], rtol=1e-8, atol=1e-8)


def test_left_rule_misses_the_known_amount_on_a_quadratic_model():
    """The left rule with m points on a linear integrand c0 + c1 a gives c0 + c1 (m-1)/(2m): for
    f = sum(A x^2) from 0 to x, c1 = 2 A x^2, so the error is -A x^2 / m per pixel."""
    x = torch.rand(1, 3, HW, HW, dtype=torch.float64)
    model = _Quadratic(x.shape[1:])
    with torch.no_grad():
        model.B.zero_()
    ig = integrated_gradients(model, x, target=0, n_steps=4, method="riemann_left")
    with torch.no_grad():
        expected = model.A * x**2 * (1 - 1 / 4)
    torch.testing.assert_close(ig.pixel, expected, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------ (f) bad input
def test_bad_input_raises_config_error(trained):
    model, x = trained
    x = x[:2]
    with pytest.raises(ConfigError, match="steps_per_rank must be an integer >= 1"):
        rank_integrated_gradients(model, x, n_steps_per_rank=0)
    with pytest.raises(ConfigError, match="n_steps must be an integer >= 1"):
        integrated_gradients(model, x, n_steps=0)
    with pytest.raises(ConfigError, match=r"ranks=\[1, 4, 2, 8\] .* must be positive and increase"):
        rank_integrated_gradients(model, x, ranks=[1, 4, 2, 8])
    with pytest.raises(ConfigError, match=r"must end at full rank \(8\)"):
        rank_integrated_gradients(model, x, ranks=[1, 2, 4])
    with pytest.raises(ConfigError, match="must be positive and increase"):
        rank_integrated_gradients(model, x, ranks=[0, 8])
    with pytest.raises(ConfigError, match="must be positive and increase"):
        rank_integrated_gradients(model, x, ranks=[])
    with pytest.raises(ConfigError, match="integers"):
        rank_integrated_gradients(model, x, ranks=[1.5, 8])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ConfigError, match="NaN or infinite"):
        rank_integrated_gradients(model, bad)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        integrated_gradients(model, bad)
    with pytest.raises(ConfigError, match="NaN or infinite"):
        vanilla_gradient(model, bad)
    for other in ("simpson", "midpoint", "left", "trapezoid", "Riemann_Middle"):  # captum's only
        with pytest.raises(ConfigError, match="unknown integration method.*riemann_middle"):
            rank_integrated_gradients(model, x, method=other)
    with pytest.raises(ConfigError, match="unknown baseline"):
        rank_integrated_gradients(model, x, baselines="blur")
    with pytest.raises(ConfigError, match="does not broadcast"):
        rank_integrated_gradients(model, x, baselines=torch.zeros(5, 3, 8, 8))
    with pytest.raises(ConfigError, match="target: labels must be class indices"):
        rank_integrated_gradients(model, x, target=3)
    with pytest.raises(ConfigError, match="entries but the batch has 2"):
        rank_integrated_gradients(model, x, target=[0, 1, 2])
    with pytest.raises(ConfigError, match=r"shape \(N, C, H, W\)"):
        rank_integrated_gradients(model, x[0])
    with pytest.raises(ConfigError, match="internal_batch_size"):
        rank_integrated_gradients(model, x, internal_batch_size=0)
    with pytest.raises(ConfigError, match="trapezoid rule needs at least 2"):
        integrated_gradients(model, x, n_steps=1, method="riemann_trapezoid")


# ------------------------------------------------------------------------------ (g) side effects
def test_model_mode_restored_and_no_param_grads(trained):
    model, x = trained
    model.train()
    model[4].eval()  # a mixed state must come back exactly as it was
    before = [m.training for m in model.modules()]
    bn = model[3]
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    rank_integrated_gradients(model, x[:2], n_steps_per_rank=2)
    integrated_gradients(model, x[:2], n_steps=3)
    vanilla_gradient(model, x[:2])
    assert [m.training for m in model.modules()] == before
    assert all(p.grad is None for p in model.parameters())
    # eval mode during the call: BatchNorm statistics untouched, dropout off (deterministic)
    torch.testing.assert_close(bn.running_mean, stats[0])
    torch.testing.assert_close(bn.running_var, stats[1])
    a = rank_integrated_gradients(model, x[:2], n_steps_per_rank=2)
    b = rank_integrated_gradients(model, x[:2], n_steps_per_rank=2)
    torch.testing.assert_close(a.pixel, b.pixel)
    model.eval()


def test_works_under_no_grad_and_input_untouched(trained):
    model, x = trained
    x = x[:2].clone().requires_grad_(True)
    x_before = x.detach().clone()
    with torch.no_grad():
        res = rank_integrated_gradients(model, x, n_steps_per_rank=2)
    assert not res.pixel.requires_grad
    assert x.grad is None
    torch.testing.assert_close(x.detach(), x_before)
