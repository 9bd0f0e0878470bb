"""Rank Integrated Gradients (RIG), Integrated Gradients and vanilla gradients (import them from
rankrobust.attribution, the public package; this module sits below it and below the captum class).

Rank Integrated Gradients (:func:`rank_integrated_gradients`) integrates the gradient of a class
score ``f`` along the *rank path* ``baseline -> L_1(x) -> L_2(x) -> ... -> x``, where ``L_k`` is
the best rank-k approximation of each channel (the paper's definition; README.md), and multiplies it
by the path's direction, so the attributions sum to ``f(x) - f(baseline)`` up to the reported
quadrature error ``delta``.  Integrated Gradients (:func:`integrated_gradients`) is the same on
the one-segment straight path ``baseline -> x``.

``f`` is the *logit* of the target class by default (``score="logit"``); ``score="softmax"``
uses the target's softmax probability and ``score="log_softmax"`` its log-probability.

The maths (quadrature rules, the batched path-integral engine) lives in
`_path`; this module builds the paths and names the results.  Everything here
is plain PyTorch (no Lightning, no captum at run time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rankrobust.attribution._path import (
    PathIntegral,
    _canonical_method,
    _check_batch_size,
    _check_images,
    _check_score,
    _check_steps,
    _resolve_target,
    _score,
    path_integral,
)
from rankrobust.inputs import check_baseline, check_images, check_model, check_target
from rankrobust.inputs import logits as checked_logits
from rankrobust.models import eval_mode
from rankrobust.svd import factorize, validate_rank_path


@dataclass
class RIGResult:
    """Result of :func:`rank_integrated_gradients` (and :func:`integrated_gradients`).

    Attributes:
        pixel: (N, C, H, W) pixel attribution map.
        per_rank: (N, len(ranks)) attribution of each rank segment; segment k runs from
            ``L_{ranks[k-1]}(x)`` (the baseline for k = 0) to ``L_{ranks[k]}(x)``.
        ranks: the path's ranks, strictly increasing, the last one the full rank.
        target: (N,) LongTensor, the attributed class (top label when not given).
        delta: (N,) ``sum of attributions - (f(x) - f(baseline))`` (integration error).
        relative_delta: (N,) ``|delta| / |f(x) - f(baseline)|``.
        score_input: (N,) f(x).
        score_baseline: (N,) f(baseline).
        steps_per_rank: quadrature points per segment (the first segment may differ, see
            ``baseline_steps`` of :func:`rank_integrated_gradients`).
        method: canonical name of the quadrature rule.
    """

    pixel: Tensor
    per_rank: Tensor
    ranks: list[int]
    target: Tensor
    delta: Tensor
    relative_delta: Tensor
    score_input: Tensor
    score_baseline: Tensor
    steps_per_rank: int
    method: str

    @classmethod
    def from_path(
        cls, res: PathIntegral, ranks: list[int], steps_per_rank: int, method: str
    ) -> RIGResult:
        """Name a path integral's segments by the ranks they end at."""
        return cls(
            pixel=res.pixel,
            per_rank=res.per_segment,
            ranks=ranks,
            target=res.target,
            delta=res.delta,
            relative_delta=res.relative_delta,
            score_input=res.score_input,
            score_baseline=res.score_baseline,
            steps_per_rank=steps_per_rank,
            method=method,
        )


# --------------------------------------------------------------------------------------------
# public attribution methods
# --------------------------------------------------------------------------------------------
def _resolve_baseline(baseline, x: Tensor, name: str = "baseline") -> Tensor:
    """The path's start shaped like x: "zero", "mean" (per image and channel), a number or a
    tensor broadcastable to x (inputs.check_baseline)."""
    b = check_baseline(baseline, x, name, named=("zero", "mean"))
    if b == "zero":
        return torch.zeros_like(x)
    if b == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()
    return b


def rank_integrated_gradients(
    model: Callable[..., Tensor],
    x: Tensor,
    target=None,
    steps_per_rank: int = 8,
    ranks: Sequence[int] | None = None,
    baseline="zero",
    batch_size: int = 256,
    method: str = "midpoint",
    score: str = "logit",
    baseline_steps: int | None = None,
    channels_last: bool | None = None,
    additional_forward_args: tuple = (),
    pixels: bool = True,
) -> RIGResult:
    """Rank Integrated Gradients: Integrated Gradients along the rank path.

    The path is ``baseline -> L_{r_1}(x) -> L_{r_2}(x) -> ... -> x`` (``L_k`` the best rank-k
    approximation of each channel, unclamped, from one SVD of x; the last point is x itself),
    straight within each segment, each integrated with ``steps_per_rank`` points.

    Args:
        model: (B, C, H, W) -> (B, num_classes); an ``nn.Module`` is evaluated in eval mode,
            its modes restored after.
        x: (N, C, H, W) images (finite).
        target: None (top label), an int, or N ints.
        steps_per_rank: quadrature points per segment (>= 1).
        ranks: the path's ranks, strictly increasing, ending at the full rank min(H, W); None
            means every rank 1, 2, ..., full.
        baseline: "zero" (black image), "mean" (each image's per-channel mean) or a tensor
            broadcastable to x.
        batch_size: the most model inputs evaluated at once.
        method: quadrature rule, see :func:`quadrature`.
        score: "logit" (default, f = target logit), "softmax" or "log_softmax".
        baseline_steps: quadrature points for the first segment only (baseline -> L_{r_1}(x));
            None (default) uses ``steps_per_rank`` like every other segment.  That segment is
            by far the longest (L_1 carries most of the image's energy) and holds nearly all
            of the integration error, so raising only this count is the cheap way to shrink
            ``delta``.
        channels_last: model-input memory format, see :func:`path_integral` (None: auto).
        additional_forward_args: more arguments for ``model(inputs, *args)``, see
            :func:`path_integral`.
        pixels: x must be pixels in [0, 1] (0-255 or normalised images raise ValueError naming
            ``x``); False accepts any finite range (noisy copies inside captum's NoiseTunnel).

    Returns:
        :class:`RIGResult`; ``per_rank[:, k]`` is segment k's attribution, and
        ``per_rank.sum(1) == pixel.sum((1, 2, 3)) ~= f(x) - f(baseline)`` (gap in ``delta``).
    """

    x = check_images(x, "x", unit_range=pixels).detach()  # the rank path of pixels in [0, 1]
    m = _check_steps(steps_per_rank, "steps_per_rank")
    canon = _canonical_method(method)
    _check_batch_size(batch_size)
    _check_score(score)
    base = _resolve_baseline(baseline, x)
    full_rank = min(x.shape[-2], x.shape[-1])
    rank_list = validate_rank_path(ranks, full_rank)
    first = m if baseline_steps is None else _check_steps(baseline_steps, "baseline_steps")

    # the path needs L_r only below full rank (its last point is x itself): a truncated
    # factorisation serves large images
    fac = factorize(x, max_rank=max(rank_list[:-1], default=None))
    path = [base]
    for r in rank_list[:-1]:
        path.append(fac.low_rank(r, clamp=False).to(device=x.device, dtype=x.dtype))
    path.append(x)

    steps = [first] + [m] * (len(rank_list) - 1)
    res = path_integral(
        model,
        path,
        target=target,
        steps=steps,
        method=canon,
        batch_size=batch_size,
        score=score,
        channels_last=channels_last,
        additional_forward_args=additional_forward_args,
    )
    return RIGResult.from_path(res, rank_list, m, canon)


def integrated_gradients(
    model: Callable[..., Tensor],
    x: Tensor,
    target=None,
    steps: int = 50,
    baseline="zero",
    batch_size: int = 256,
    method: str = "midpoint",
    score: str = "logit",
    channels_last: bool | None = None,
    additional_forward_args: tuple = (),
) -> RIGResult:
    """Integrated Gradients (Sundararajan et al. 2017) on the straight path baseline -> x.

    How RIG relates to IG: both integrate the gradient of the target score along a path from
    the baseline to x and multiply by the path's direction, so the attributions sum to
    ``f(x) - f(baseline)`` (completeness).  IG uses the straight line; RIG
    (:func:`rank_integrated_gradients`) uses the rank path through the low-rank approximations
    ``L_1(x), L_2(x), ...``, i.e. RIG is IG along the rank path.  With a one-segment straight
    path (``ranks=[full_rank]``) RIG reduces to exactly this function, which reproduces
    ``captum.attr.IntegratedGradients`` (midpoint here == captum's ``riemann_middle``).  Since
    each RIG segment weights the gradient at points between consecutive low-rank images by
    the rank band ``L_k(x) - L_{k-1}(x)``, RIG is a weighted average of saliency maps taken on
    low-rank versions of the image.

    Same engine and arguments as :func:`rank_integrated_gradients`; the result's ``ranks`` is
    ``[min(H, W)]`` and ``per_rank`` has a single column.
    """
    x = _check_images(x)
    m = _check_steps(steps)
    canon = _canonical_method(method)
    base = _resolve_baseline(baseline, x)
    res = path_integral(
        model,
        [base, x],
        target=target,
        steps=m,
        method=canon,
        batch_size=batch_size,
        score=score,
        channels_last=channels_last,
        additional_forward_args=additional_forward_args,
    )
    return RIGResult.from_path(res, [min(x.shape[-2], x.shape[-1])], m, canon)


def vanilla_gradient(
    model: nn.Module, x: Tensor, target=None, score: str = "logit", batch_size: int = 256
) -> Tensor:
    """Gradient of the target score (the target logit by default) w.r.t. the input.

    ``target=None`` uses the model's top label for each image.  The model runs in eval mode;
    its previous mode is restored and no ``.grad`` is left on its parameters.  Returns a
    tensor shaped like x.
    """
    check_model(model)
    x = _check_images(x)
    batch_size = _check_batch_size(batch_size)
    score = _check_score(score)
    check_target(target, x.shape[0])
    grads = []
    with eval_mode(model):
        for lo in range(0, x.shape[0], batch_size):
            inp = x[lo : lo + batch_size].clone().requires_grad_(True)
            with torch.enable_grad():
                logits = checked_logits(model, inp)
                t = _resolve_target(
                    None if target is None else _slice_target(target, lo, inp.shape[0], x),
                    logits.detach(),
                )
                (g,) = torch.autograd.grad(_score(logits, t, score).sum(), inp)
            grads.append(g)
    return torch.cat(grads)


def _slice_target(target, lo: int, count: int, x: Tensor):
    return check_target(target, x.shape[0], "target")[lo : lo + count]
