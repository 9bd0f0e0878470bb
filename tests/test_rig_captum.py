"""RankIntegratedGradients: RIG behind captum's attribution interface."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from torch import nn

from rankrobust.attribution import RankIntegratedGradients, rank_integrated_gradients

matplotlib.use("Agg")

HW = 8


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.Softplus(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.Softplus(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 4),
    ).eval()


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x = torch.rand(3, 3, HW, HW, generator=torch.Generator().manual_seed(1))
    return _model(), x, torch.tensor([0, 2, 3])


def test_straight_path_equals_captum_integrated_gradients(setup):
    from captum.attr import IntegratedGradients

    model, x, target = setup
    base = 0.5 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    ours, delta = RankIntegratedGradients(model).attribute(
        x, baselines=base, target=target, n_steps_per_rank=20, ranks=[HW],
        return_convergence_delta=True,
    )  # fmt: skip
    ref, ref_delta = IntegratedGradients(model).attribute(
        x, baselines=base, target=target, n_steps=20, method="riemann_middle",
        return_convergence_delta=True,
    )  # fmt: skip
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(delta, ref_delta.to(delta.dtype), rtol=1e-5, atol=1e-5)
    # captum's default rule is Gauss-Legendre: the same rule gives the same numbers too
    gl = RankIntegratedGradients(model).attribute(
        x, baselines=base, target=target, n_steps_per_rank=20, ranks=[HW], method="gausslegendre"
    )
    ref_gl = IntegratedGradients(model).attribute(x, baselines=base, target=target, n_steps=20)
    torch.testing.assert_close(gl, ref_gl, rtol=1e-5, atol=1e-5)


def test_attribute_is_rig_and_returns_the_completeness_delta(setup):
    model, x, target = setup
    attr, delta = RankIntegratedGradients(model).attribute(
        x, target=target, ranks=[1, 2, 4, HW], n_steps_per_rank=4, internal_batch_size=7,
        return_convergence_delta=True,
    )  # fmt: skip
    res = rank_integrated_gradients(
        model, x, target=target, ranks=[1, 2, 4, HW], n_steps_per_rank=4
    )
    torch.testing.assert_close(attr, res.pixel, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        gap = (
            model(x).gather(1, target[:, None])[:, 0]
            - model(0 * x).gather(1, target[:, None])[:, 0]
        )
    torch.testing.assert_close(delta, attr.sum((1, 2, 3)) - gap, rtol=1e-4, atol=1e-5)
    assert delta.abs().max() < 0.05 * gap.abs().max()  # a smooth model: close to complete
    # the return type follows the flag and the input's form
    assert isinstance(RankIntegratedGradients(model).attribute(x, target=1), torch.Tensor)
    as_tuple = RankIntegratedGradients(model).attribute((x,), target=1, n_steps_per_rank=2)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == x.shape


def test_additional_forward_args_reach_the_model_per_image(setup):
    _, x, target = setup
    model = _model()

    def scaled(inp: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return model(inp) * scale[:, None]

    scale = torch.tensor([1.0, 2.0, -1.0])
    rig = RankIntegratedGradients(scaled)
    attr = rig.attribute(x, target=target, additional_forward_args=scale, n_steps_per_rank=2)
    plain = RankIntegratedGradients(model).attribute(x, target=target, n_steps_per_rank=2)
    torch.testing.assert_close(attr, plain * scale[:, None, None, None], rtol=1e-5, atol=1e-6)


def test_noise_tunnel_and_visualisation_take_it(setup):
    from captum.attr import NoiseTunnel
    from captum.attr import visualization as viz

    model, x, target = setup
    torch.manual_seed(0)
    nt = NoiseTunnel(RankIntegratedGradients(model))
    attr = nt.attribute(
        x, nt_type="smoothgrad", nt_samples=2, target=target, stdevs=0.1, n_steps_per_rank=2
    )
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    attr_d, delta = nt.attribute(
        x, nt_type="smoothgrad", nt_samples=2, target=target, n_steps_per_rank=2,
        return_convergence_delta=True,
    )  # fmt: skip
    assert attr_d.shape == x.shape and delta.shape == (2 * x.shape[0],)
    fig, _ = viz.visualize_image_attr(
        attr[0].permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy(),
        method="blended_heat_map", sign="all", use_pyplot=False,
    )  # fmt: skip
    assert fig is not None
