"""The completeness gap |sum(map) - (f(x) - f(baseline))| / |f(x) - f(baseline)| of a path map:
against captum's own convergence delta, a linear model's exact answer, and every path method
of explain() (the engine's own delta)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rankrobust.attribution import completeness_gap, explain
from rankrobust.errors import ConfigError

HW = 8


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * x  # a steep model: few quadrature points leave a clear gap


def _model() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            _Scale(),
            nn.Conv2d(3, 6, 3, padding=1),
            nn.Softplus(),
            nn.Conv2d(6, 6, 3, padding=1),
            nn.Softplus(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(24, 4),
        )
        .double()
        .eval()
    )


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x = torch.rand(5, 3, HW, HW, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return _model(), x, torch.tensor([0, 2, 3, 1, 0])


@pytest.mark.parametrize("score", ["logit", "softmax"])
def test_gap_equals_captums_convergence_delta_over_the_score_change(setup, score):
    """captum IG at few steps (a visible gap): its convergence delta, divided by f(x) - f(b)
    computed here by hand, is the gap the helper computes from captum's map."""
    from captum.attr import IntegratedGradients

    model, x, target = setup
    forward = model if score == "logit" else (lambda inp: model(inp).softmax(1))
    base = torch.full_like(x, 0.2)
    attr, delta = IntegratedGradients(forward).attribute(
        x, base, target=target, n_steps=3, method="riemann_middle",
        return_convergence_delta=True,
    )  # fmt: skip
    with torch.no_grad():
        change = forward(x)[range(5), target] - forward(base)[range(5), target]
    reference = delta.abs() / change.abs()
    gap = completeness_gap(model, x, attr, target, baselines=base, score=score)
    assert gap.shape == (5,) and reference.min() > 1e-5  # not converged: a real test
    torch.testing.assert_close(gap, reference, rtol=1e-9, atol=1e-12)


def test_linear_model_known_answers():
    """f(x) = w . x + b (class 0): IG's map w * x is exact (gap 0); twice that map is off by
    the whole change (gap 1)."""
    w = torch.rand(1, 3, HW, HW, generator=torch.Generator().manual_seed(3)) - 0.5
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * HW * HW, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.cat([w.reshape(1, -1), -w.reshape(1, -1)]))
        model[1].bias.fill_(0.7)
    x = torch.rand(4, 3, HW, HW, generator=torch.Generator().manual_seed(4))
    exact = w * x
    torch.testing.assert_close(completeness_gap(model, x, exact, 0), torch.zeros(4), atol=1e-5,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(completeness_gap(model, x, 2 * exact, 0), torch.ones(4))


@pytest.mark.parametrize("method", ["ig", "rig", "sig"])
def test_every_path_method_reports_the_gap_the_helper_recomputes(setup, method):
    model, x, target = setup
    att = explain(model, x, method, n_steps=16, target=target, score="softmax")
    gap = completeness_gap(model, x, att.pixel, target, score="softmax")
    torch.testing.assert_close(gap, att.relative_delta, rtol=1e-7, atol=1e-10)


def test_bad_arguments_name_themselves(setup):
    model, x, target = setup
    with pytest.raises(ConfigError, match="score"):
        completeness_gap(model, x, x, target, score="prob")
    with pytest.raises(ValueError, match="attributions"):
        completeness_gap(model, x, x[:, :1], target)
