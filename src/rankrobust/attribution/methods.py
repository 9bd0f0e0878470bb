"""One call for every attribution method, at an equal number of gradient evaluations per image.

:func:`explain` runs the vanilla gradient, Integrated Gradients (straight path), RIG (rank path,
rank-uniform schedule) or SIG (spectral gating) on one engine (:mod:`._path`) and returns an
:class:`Attribution`.  ``steps`` is the budget E of gradient evaluations per image; each path
method spends exactly E (IG: E points on the straight line; SIG: E alpha intervals; RIG: the
rank path's R segments share E, see :func:`rig_schedule`), so a comparison of maps is a
comparison at equal cost.  The vanilla gradient always costs 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rankrobust.attribution._path import _check_steps
from rankrobust.attribution._rig import (
    integrated_gradients,
    rank_integrated_gradients,
    vanilla_gradient,
)
from rankrobust.attribution.sig import spectral_integrated_gradients
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_finite_logits, check_number
from rankrobust.inputs import logits as checked_logits
from rankrobust.models import eval_mode
from rankrobust.svd import validate_rank_path

__all__ = [
    "METHODS",
    "METRICS",
    "RIG_FIRST_SHARE",
    "Attribution",
    "comparison_rig_ranks",
    "default_rig_ranks",
    "explain",
    "rig_schedule",
    "top_label",
]

METHODS = ("gradient", "ig", "rig", "sig")
METRICS = ("diffid", "sparseness", "complexity", "mprt")  # rankrobust.attribution.metrics
# The share of RIG's budget on its first segment in explain() (rig_schedule): measured on the
# demo's CIFAR-10 models at 32 evaluations, with comparison_rig_ranks it halves the median
# completeness gap of the rank-uniform split over every rank (docs/attribution.md).
RIG_FIRST_SHARE = 0.6


@dataclass
class Attribution:
    """Maps of one method for N images.

    Attributes:
        method: "gradient", "ig", "rig" or "sig".
        pixel: (N, C, H, W) attribution.
        target: (N,) attributed class.
        delta: (N,) completeness gap of a path method (None for the vanilla gradient).
        relative_delta: (N,) ``|delta| / |f(x) - f(baseline)|`` (None for the gradient).
        evaluations: gradient evaluations per image.
    """

    method: str
    pixel: Tensor
    target: Tensor
    delta: Tensor | None
    relative_delta: Tensor | None
    evaluations: int


def default_rig_ranks(full_rank: int) -> list[int]:
    """Every rank for images up to 32 pixels a side; else 1, 2, 4, ..., full (geometric): the
    default ranks of RIG's path and of the rank sweep (the one rule)."""
    if full_rank <= 32:
        return list(range(1, full_rank + 1))
    ranks, k = [], 1
    while k < full_rank:
        ranks.append(k)
        k *= 2
    return ranks + [full_rank]


def comparison_rig_ranks(full_rank: int) -> list[int]:
    """RIG's path when methods are compared at equal cost: ranks 1, 4, 16, ... (powers of 4
    below the full rank), then the full rank (32: [1, 4, 16, 32]; 224: [1, 4, 16, 64, 224]).
    A few segments, so that each gets several of the budget's points: at 32 evaluations the
    path through every rank has one point per segment and a median completeness gap of ~0.3
    on the demo's models, this one ~0.01-0.03."""
    ranks, k = [], 1
    while k < full_rank:
        ranks.append(k)
        k *= 4
    return ranks + [full_rank]


def rig_schedule(steps: int, n_segments: int, first_share: float | None = None) -> tuple[int, int]:
    """RIG's split of a budget of E = ``steps`` evaluations over R segments.

    Rank-uniform (``first_share`` None): every segment gets ``q = E // R`` points and the
    first one (baseline -> L_1, by far the longest, where nearly all the integration error
    sits) also takes the remainder.  With ``first_share`` in (0, 1) the first segment gets
    about that share of E and the other R - 1 share the rest evenly (at least one point
    each), so the path converges at the same cost.  Returns ``(steps_per_rank,
    baseline_steps) = (q, E - (R - 1) q)``; total exactly E.

    Raises:
        ConfigError: E < R (fewer evaluations than rank segments), or a share outside (0, 1).
    """
    e = _check_steps(steps, "steps")
    if e < n_segments:
        raise ConfigError(
            f"steps={e} gradient evaluations cannot cover RIG's {n_segments} rank segments: "
            f"use steps >= {n_segments}"
        )
    if first_share is None or n_segments == 1:
        q = e // n_segments
    else:
        share = check_number(first_share, "first_share", 0.0, 1.0, high_open=True)
        if share <= 0.0:
            raise ConfigError(f"first_share must be in (0, 1), got {first_share}")
        q = max(1, (e - max(1, round(share * e))) // (n_segments - 1))
    return q, e - (n_segments - 1) * q


@torch.no_grad()
def top_label(model: Callable[..., Tensor], x: Tensor, batch_size: int = 256) -> Tensor:
    """(N,) the model's top class for each image (an ``nn.Module`` in eval mode)."""
    ctx = eval_mode(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
    with ctx:
        return torch.cat(
            [
                check_finite_logits(checked_logits(model, x[i : i + batch_size])).argmax(1)
                for i in range(0, len(x), batch_size)
            ]
        )


def explain(
    model: Callable[..., Tensor],
    x: Tensor,
    method: str,
    steps: int = 64,
    target=None,
    score: str = "logit",
    batch_size: int = 256,
    overlap: float = 0.5,
    baseline="zero",
    rig_ranks: list[int] | None = None,
    rig_first_share: float | None = RIG_FIRST_SHARE,
) -> Attribution:
    """Attribution maps of ``method`` for images x (N, C, H, W) at ``steps`` evaluations each.

    IG and RIG use the midpoint rule; SIG uses its published left sum (``riemann_left``).
    ``target`` None explains the top label; ``score`` is "logit", "softmax" or "log_softmax".
    RIG's path runs through ``rig_ranks`` (None: :func:`comparison_rig_ranks`), its budget
    split by :func:`rig_schedule` with ``rig_first_share`` (None: every segment alike).

    Raises:
        ConfigError: an unknown method, or a budget below RIG's number of rank segments.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; use one of {METHODS}")
    common = {"target": target, "batch_size": batch_size, "score": score, "baseline": baseline}
    if method == "gradient":
        tgt = top_label(model, x, batch_size) if target is None else target
        grad = vanilla_gradient(model, x, target=tgt, score=score, batch_size=batch_size)
        tgt = torch.as_tensor(tgt, device=x.device).long().reshape(-1).expand(len(x))
        return Attribution(method, grad, tgt.clone(), None, None, 1)
    if method == "ig":
        res = integrated_gradients(model, x, steps=steps, **common)
    elif method == "rig":
        ranks = validate_rank_path(rig_ranks, min(x.shape[-2:])) if rig_ranks else None
        ranks = ranks or comparison_rig_ranks(min(x.shape[-2:]))
        per_rank, first = rig_schedule(steps, len(ranks), rig_first_share)
        res = rank_integrated_gradients(
            model, x, steps_per_rank=per_rank, baseline_steps=first, ranks=ranks, **common
        )
    else:
        sig = spectral_integrated_gradients(
            model, x, n_steps=steps, overlap=overlap, method="left", **common
        )
        return Attribution(
            method, sig.pixel, sig.target, sig.delta, sig.relative_delta, sig.evaluations
        )
    return Attribution(
        method, res.pixel, res.target, res.delta, res.relative_delta, int(_check_steps(steps))
    )
