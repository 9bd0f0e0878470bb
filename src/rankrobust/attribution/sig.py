"""Spectral Integrated Gradients (SIG; Kim, Lim, Lee, Choi, KDD 2026, arXiv 2605.19607).

Like RIG, SIG integrates gradients along a path that adds an image's SVD components from the
strongest to the weakest; it differs in *when* each component is switched on.  Per channel, per
image, with ``D = x - baseline = sum_i s_i u_i v_i^T`` (``/work/shared/PAPER.md``):

    r_i = s_i / s_1,   t_i = (1 - w)(1 - r_i),   w = overlap
    gamma(alpha) = baseline + sum_i clamp((alpha - t_i) / w, 0, 1) s_i u_i v_i^T,  alpha in [0, 1]

(``w = 0``: a step, component i is on for alpha > t_i).  The attribution is the path integral
``int_0^1 grad f(gamma(alpha)) * gamma'(alpha) d alpha``, discretised as SIG's published code
does: on the grid ``alpha_j = j / m`` (m intervals) with the gradient at each interval's start
times the step of the path, ``A = sum_j grad f(gamma(alpha_j)) * (gamma(alpha_{j+1}) -
gamma(alpha_j))`` (method ``"riemann_left"``, captum's name).  ``"riemann_middle"`` /
``"riemann_right"`` / ``"riemann_trapezoid"`` take the gradient at the middle / end / both ends
of each interval's chord instead.  Every rule costs m gradient evaluations (trapezoid: 2m).

``schedule="rank_uniform"`` swaps SIG's gating for RIG's: component i ramps on alone over
``[(i-1)/R, i/R]`` (R = min(H, W)), so ``gamma(k/R) = L_k(x)`` and the path is RIG's rank path.

This is plain PyTorch on the engine of :mod:`rankrobust.attribution._path`: the grid points of
gamma are the vertices of a polyline, and each interval is one engine segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rankrobust.attribution._path import (
    PathIntegral,
    _check_images,
    _check_method,
    _check_steps,
    path_integral,
)
from rankrobust.attribution._rig import _resolve_baseline
from rankrobust.errors import ConfigError

__all__ = ["SCHEDULES", "SIGResult", "sig_gates", "spectral_integrated_gradients", "spectral_path"]

SCHEDULES = ("strength", "rank_uniform")
# engine rule and the quadrature points it takes per interval (one interval = one segment)
_RULE_POINTS = {"riemann_left": 1, "riemann_right": 1, "riemann_middle": 1, "riemann_trapezoid": 2}


@dataclass
class SIGResult:
    """Result of :func:`spectral_integrated_gradients` for N images.

    Attributes:
        pixel: (N, C, H, W) attribution map.
        per_interval: (N, m) attribution of each alpha interval [j/m, (j+1)/m].
        target: (N,) attributed class.
        delta: (N,) completeness gap ``pixel.sum - (f(x) - f(baseline))``.
        relative_delta: (N,) ``|delta| / |f(x) - f(baseline)|``.
        score_input, score_baseline: (N,) f(x), f(baseline).
        n_steps: m, the number of alpha intervals; overlap, schedule, method: as called.
        evaluations: gradient evaluations per image (m, or 2m for the trapezoid rule).
    """

    pixel: Tensor
    per_interval: Tensor
    target: Tensor
    delta: Tensor
    relative_delta: Tensor
    score_input: Tensor
    score_baseline: Tensor
    n_steps: int
    overlap: float
    schedule: str
    method: str
    evaluations: int


def _check_overlap(overlap: float) -> float:
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
        raise ConfigError(f"overlap must be a number in [0, 1), got {overlap!r}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ConfigError(f"overlap must lie in [0, 1), got {overlap!r}")
    return float(overlap)


def sig_gates(
    singular_values: Tensor, alphas: Tensor, overlap: float = 0.5, schedule: str = "strength"
) -> Tensor:
    """How far each component is switched on at each alpha: (len(alphas), ..., R) in [0, 1].

    ``singular_values`` is (..., R), descending along the last dim (one row per image channel).
    ``strength`` (SIG): ``clamp((alpha - t_i)/w, 0, 1)``, ``t_i = (1 - w)(1 - s_i/s_1)``; for
    ``w = 0`` a step ``1[alpha > t_i]``.  A channel with ``s_1 = 0`` has nothing to switch on
    (its gates are those of r_i = 0, harmless since every s_i = 0).  ``rank_uniform`` (RIG):
    component i ramps on over ``[(i-1)/R, i/R]``, whatever the overlap.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    w = _check_overlap(overlap)
    s = singular_values
    a = alphas.to(device=s.device, dtype=s.dtype).reshape(-1, *([1] * s.dim()))
    r_count = s.shape[-1]
    if schedule == "rank_uniform":
        start = torch.arange(r_count, device=s.device, dtype=s.dtype) / r_count
        return ((a - start) * r_count).clamp(0.0, 1.0)
    top = s[..., :1]
    strength = torch.where(top > 0, s / top.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
    start = (1.0 - w) * (1.0 - strength)
    if w == 0.0:
        return (a > start).to(s.dtype)
    return ((a - start) / w).clamp(0.0, 1.0)


def spectral_path(
    x: Tensor, baseline: Tensor, n_steps: int, overlap: float = 0.5, schedule: str = "strength"
) -> list[Tensor]:
    """The m + 1 grid points ``gamma(j/m)``, j = 0..m, each (N, C, H, W).

    ``gamma(0)`` is the baseline and ``gamma(1)`` is x itself (every gate is 1 at alpha = 1),
    so the path's end points are exact; the points between are built from one thin SVD of
    ``x - baseline`` (per image, per channel).
    """
    from rankrobust.svd import factorize  # the SVD is only needed here

    m = _check_steps(n_steps, "n_steps")
    fac = factorize(x - baseline)
    alphas = torch.arange(1, m, dtype=fac.S.dtype, device=fac.S.device) / m
    gates = sig_gates(fac.S, alphas, overlap, schedule)  # (m - 1, N, C, R)
    inner = torch.einsum("nchr,jncr,ncrw->jnchw", fac.U, gates * fac.S, fac.Vh)
    inner = inner.to(dtype=x.dtype) + baseline
    return [baseline, *inner.unbind(0), x]


def spectral_integrated_gradients(
    model: Callable[..., Tensor],
    x: Tensor,
    target=None,
    n_steps: int = 64,
    overlap: float = 0.5,
    baselines="zero",
    method: str = "riemann_left",
    schedule: str = "strength",
    internal_batch_size: int = 256,
    score: str = "logit",
    channels_last: bool | None = None,
    additional_forward_args: tuple = (),
) -> SIGResult:
    """Spectral Integrated Gradients of ``model``'s ``target`` score for images x.

    Args:
        model: (B, C, H, W) -> (B, num_classes); an ``nn.Module`` runs in eval mode.
        x: (N, C, H, W) finite images.
        target: None (top label), an int, or N ints.
        n_steps: m, the number of alpha intervals (gradient evaluations per image).
        overlap: w in [0, 1): the width of each component's ramp (0.5 in SIG).
        baselines: "zero" (SIG's black image), "mean", a number or a broadcastable tensor.
        method: "riemann_left" (SIG's published sum, default), "riemann_middle",
            "riemann_right" or "riemann_trapezoid" (captum's names).
        schedule: "strength" (SIG's gating) or "rank_uniform" (RIG's rank path).
        internal_batch_size: most model inputs per forward/backward pass.
        score: "logit", "softmax" (SIG's published f) or "log_softmax".
        channels_last, additional_forward_args: see :func:`rankrobust.attribution.path_integral`.

    Returns:
        :class:`SIGResult`: ``pixel`` (N, C, H, W), ``per_interval`` (N, m) and ``delta`` (N,)
        in the units of the score.

    Raises:
        ConfigError: a bad n_steps, overlap, method (e.g. "gausslegendre", whose nodes are not
            a grid of intervals), schedule, baseline or target.
    """
    x = _check_images(x)
    m = _check_steps(n_steps, "n_steps")
    w = _check_overlap(overlap)
    rule = _check_method(method)
    if rule not in _RULE_POINTS:
        raise ConfigError(
            f"SIG integrates over a grid of alpha intervals: method must be riemann_left, "
            f"riemann_middle, riemann_right or riemann_trapezoid, got {method!r}"
        )
    base = _resolve_baseline(baselines, x)
    path = spectral_path(x, base, m, w, schedule)
    res: PathIntegral = path_integral(
        model,
        path,
        target=target,
        n_steps_per_segment=_RULE_POINTS[rule],
        method=rule,
        internal_batch_size=internal_batch_size,
        score=score,
        channels_last=channels_last,
        additional_forward_args=additional_forward_args,
    )
    return SIGResult(
        pixel=res.pixel,
        per_interval=res.per_segment,
        target=res.target,
        delta=res.delta,
        relative_delta=res.relative_delta,
        score_input=res.score_input,
        score_baseline=res.score_baseline,
        n_steps=m,
        overlap=w,
        schedule=schedule,
        method=rule,
        evaluations=m * _RULE_POINTS[rule],
    )
