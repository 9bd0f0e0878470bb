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
    _check_batch_size,
    _check_images,
    _check_method,
    _check_score,
    _check_steps,
    _resolve_target,
    _score,
    path_integral,
)
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_baseline, check_images, check_model, check_number, check_target
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
        n_steps_per_rank: quadrature points per segment (the first segment may differ, see
            ``baseline_steps`` of :func:`rank_integrated_gradients`).
        method: the quadrature rule (captum's name, e.g. "riemann_middle").
    """

    pixel: Tensor
    per_rank: Tensor
    ranks: list[int]
    target: Tensor
    delta: Tensor
    relative_delta: Tensor
    score_input: Tensor
    score_baseline: Tensor
    n_steps_per_rank: int
    method: str

    @classmethod
    def from_path(
        cls, res: PathIntegral, ranks: list[int], n_steps_per_rank: int, method: str
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
            n_steps_per_rank=n_steps_per_rank,
            method=method,
        )


# --------------------------------------------------------------------------------------------
# public attribution methods
# --------------------------------------------------------------------------------------------
def _resolve_baseline(baselines, x: Tensor, name: str = "baselines") -> Tensor:
    """The path's start shaped like x: "zero", "mean" (per image and channel), a number or a
    tensor broadcastable to x (inputs.check_baseline)."""
    b = check_baseline(baselines, x, name, named=("zero", "mean"))
    if b == "zero":
        return torch.zeros_like(x)
    if b == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()
    return b


def rig_schedule(
    n_steps: int, n_segments: int, first_share: float | None = None
) -> tuple[int, int]:
    """RIG's split of a budget of E = ``n_steps`` gradient evaluations over R rank segments.

    Rank-uniform (``first_share`` None): every segment gets ``q = E // R`` points and the
    first one (baseline -> L_1, by far the longest, where nearly all the integration error
    sits) also takes the remainder.  With ``first_share`` in (0, 1) the first segment gets
    about that share of E and the other R - 1 share the rest evenly (at least one point
    each), so the path converges at the same cost.  Returns ``(n_steps_per_rank,
    baseline_steps) = (q, E - (R - 1) q)``; total exactly E.

    Raises:
        ConfigError: E < R (fewer evaluations than rank segments), or a share outside (0, 1).
    """
    e = _check_steps(n_steps, "n_steps")
    if e < n_segments:
        raise ConfigError(
            f"n_steps={e} gradient evaluations cannot cover RIG's {n_segments} rank segments: "
            f"use n_steps >= {n_segments}"
        )
    if first_share is None or n_segments == 1:
        q = e // n_segments
    else:
        share = check_number(first_share, "first_share", 0.0, 1.0, high_open=True)
        if share <= 0.0:
            raise ConfigError(f"first_share must be in (0, 1), got {first_share}")
        q = max(1, (e - max(1, round(share * e))) // (n_segments - 1))
    return q, e - (n_segments - 1) * q


def rank_integrated_gradients(
    model: Callable[..., Tensor],
    x: Tensor,
    target=None,
    n_steps_per_rank: int = 8,
    ranks: Sequence[int] | None = None,
    baselines="zero",
    internal_batch_size: int = 256,
    method: str = "riemann_middle",
    score: str = "logit",
    baseline_steps: int | None = None,
    n_steps: int | None = None,
    channels_last: bool | None = None,
    additional_forward_args: tuple = (),
    pixels: bool = True,
) -> RIGResult:
    """Rank Integrated Gradients: Integrated Gradients along the rank path.

    The path is ``baseline -> L_{r_1}(x) -> L_{r_2}(x) -> ... -> x`` (``L_k`` the best rank-k
    approximation of each channel, unclamped, from one SVD of x; the last point is x itself),
    straight within each segment, each integrated with ``n_steps_per_rank`` points.

    Args:
        model: (B, C, H, W) -> (B, num_classes); an ``nn.Module`` is evaluated in eval mode,
            its modes restored after.
        x: (N, C, H, W) images (finite).
        target: None (top label), an int, or N ints.
        n_steps_per_rank: quadrature points per rank segment (>= 1).
        ranks: the path's ranks, strictly increasing, ending at the full rank min(H, W); None
            means every rank 1, 2, ..., full.
        baselines: "zero" (black image), "mean" (each image's per-channel mean), a number or a
            tensor broadcastable to x.
        internal_batch_size: the most model inputs evaluated at once.
        method: captum's name of the quadrature rule, "riemann_middle" (default); see
            :func:`quadrature`.
        score: "logit" (default, f = target logit), "softmax" or "log_softmax".
        baseline_steps: quadrature points for the first segment only (baseline -> L_{r_1}(x));
            None (default) uses ``n_steps_per_rank`` like every other segment.  That segment is
            by far the longest (L_1 carries most of the image's energy) and holds nearly all
            of the integration error, so raising only this count is the cheap way to shrink
            ``delta``.
        n_steps: the total budget E of gradient evaluations per image (the interface of IG
            and SIG); when given it overrides ``n_steps_per_rank`` and ``baseline_steps`` with
            the rank-uniform split of :func:`rig_schedule`.
        channels_last: model-input memory format, see :func:`path_integral` (None: auto).
        additional_forward_args: more arguments for ``model(inputs, *args)``, see
            :func:`path_integral`.
        pixels: x must be pixels in [0, 1] (0-255 or normalised images raise ValueError naming
            ``x``); False accepts any finite range (noisy copies inside captum's NoiseTunnel).

    Returns:
        :class:`RIGResult`; ``per_rank[:, k]`` is segment k's attribution, and
        ``per_rank.sum(1) == pixel.sum((1, 2, 3)) ~= f(x) - f(baseline)`` (gap in ``delta``),
        in the units of the score.

    Raises:
        ConfigError (a ValueError): a bad count, rank path, baseline, rule, batch size, score
            or target, ``n_steps`` below the number of rank segments; ValueError naming ``x``
            for images outside [0, 1] when ``pixels``.

    Source: RIG as the paper proposes it, made precise in ``/work/shared/PAPER.md`` ("RIG, as
    this project defines it"); checked against captum's IG on the one-segment path.
    """

    x = check_images(x, "x", unit_range=pixels).detach()  # the rank path of pixels in [0, 1]
    m = _check_steps(n_steps_per_rank, "n_steps_per_rank")
    rule = _check_method(method)
    _check_batch_size(internal_batch_size)
    _check_score(score)
    base = _resolve_baseline(baselines, x)
    full_rank = min(x.shape[-2], x.shape[-1])
    rank_list = validate_rank_path(ranks, full_rank)
    if n_steps is not None:
        m, baseline_steps = rig_schedule(n_steps, len(rank_list))
    first = m if baseline_steps is None else _check_steps(baseline_steps, "baseline_steps")

    # the path needs L_r only below full rank (its last point is x itself): a truncated
    # factorisation serves large images
    fac = factorize(x, max_rank=max(rank_list[:-1], default=None))
    path = [base]
    for r in rank_list[:-1]:
        path.append(fac.low_rank(r, clamp=False).to(device=x.device, dtype=x.dtype))
    path.append(x)

    res = path_integral(
        model,
        path,
        target=target,
        n_steps_per_segment=[first] + [m] * (len(rank_list) - 1),
        method=rule,
        internal_batch_size=internal_batch_size,
        score=score,
        channels_last=channels_last,
        additional_forward_args=additional_forward_args,
    )
    return RIGResult.from_path(res, rank_list, m, rule)


def integrated_gradients(
    model: Callable[..., Tensor],
    x: Tensor,
    target=None,
    n_steps: int = 50,
    baselines="zero",
    internal_batch_size: int = 256,
    method: str = "riemann_middle",
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
    ``captum.attr.IntegratedGradients`` with the same ``method`` and ``n_steps`` (captum's
    default rule is "gausslegendre", this library's "riemann_middle").  Since each RIG segment
    weights the gradient at points between consecutive low-rank images by the rank band
    ``L_k(x) - L_{k-1}(x)``, RIG is a weighted average of saliency maps taken on low-rank
    versions of the image.

    Args: ``n_steps`` quadrature points on the straight line (gradient evaluations per image);
    the others as :func:`rank_integrated_gradients` (x any finite range).  The result's
    ``ranks`` is ``[min(H, W)]``, ``per_rank`` has a single column and ``n_steps_per_rank``
    is ``n_steps``.  Raises ConfigError for the same bad arguments.
    """
    x = _check_images(x)
    m = _check_steps(n_steps)
    rule = _check_method(method)
    base = _resolve_baseline(baselines, x)
    res = path_integral(
        model,
        [base, x],
        target=target,
        n_steps_per_segment=m,
        method=rule,
        internal_batch_size=internal_batch_size,
        score=score,
        channels_last=channels_last,
        additional_forward_args=additional_forward_args,
    )
    return RIGResult.from_path(res, [min(x.shape[-2], x.shape[-1])], m, rule)


def vanilla_gradient(
    model: nn.Module,
    x: Tensor,
    target=None,
    score: str = "logit",
    internal_batch_size: int = 256,
) -> Tensor:
    """Gradient of the target score (the target logit by default) w.r.t. the input x
    (N, C, H, W), ``internal_batch_size`` images per backward pass.

    ``target=None`` uses the model's top label for each image.  The model runs in eval mode;
    its previous mode is restored and no ``.grad`` is left on its parameters.  Returns a
    tensor shaped like x (score units per pixel unit).  Raises ConfigError for a bad model,
    images, target, score or batch size.  Source: the saliency map of Simonyan et al. 2014,
    signed (captum's ``Saliency`` takes its absolute value).
    """
    check_model(model)
    x = _check_images(x)
    batch_size = _check_batch_size(internal_batch_size)
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
