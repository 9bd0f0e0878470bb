"""One call for every attribution method, at an equal number of gradient evaluations per image.

:func:`explain` runs the vanilla gradient, Integrated Gradients (straight path), RIG (rank path,
rank-uniform schedule) or SIG (spectral gating) on one engine (:mod:`._path`) and returns an
:class:`Attribution`.  ``n_steps`` is the budget E of gradient evaluations per image; each path
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

from rankrobust.attribution._path import _check_batch_size, _check_steps
from rankrobust.attribution._rig import (
    integrated_gradients,
    rank_integrated_gradients,
    rig_schedule,
    vanilla_gradient,
)
from rankrobust.attribution.sig import spectral_integrated_gradients
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_finite_logits
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


@torch.no_grad()
def top_label(model: Callable[..., Tensor], x: Tensor, internal_batch_size: int = 256) -> Tensor:
    """(N,) the model's top class for each image x (N, C, H, W), ``internal_batch_size``
    images per forward pass (an ``nn.Module`` in eval mode).  Raises ConfigError for
    non-finite or malformed logits."""
    batch_size = _check_batch_size(internal_batch_size)
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
    n_steps: int = 64,
    target=None,
    score: str = "logit",
    internal_batch_size: int = 256,
    overlap: float = 0.5,
    baselines="zero",
    rig_ranks: list[int] | None = None,
    rig_first_share: float | None = RIG_FIRST_SHARE,
) -> Attribution:
    """Attribution maps of ``method`` for images x (N, C, H, W) at ``n_steps`` evaluations each.

    Args:
        model: (B, C, H, W) -> (B, num_classes); an ``nn.Module`` runs in eval mode.
        x: (N, C, H, W) finite images.
        method: the attribution method, one of METHODS: "gradient", "ig", "rig" or "sig".
        n_steps: the budget E of gradient evaluations per image (the vanilla gradient costs 1
            whatever E).  IG and RIG use the "riemann_middle" rule; SIG its published left
            sum ("riemann_left").
        target: None (the top label), an int, or N ints.
        score: "logit", "softmax" or "log_softmax".
        internal_batch_size: the most model inputs per forward/backward pass.
        overlap: SIG's ramp width w in [0, 1).
        baselines: "zero", "mean", a number or a tensor broadcastable to x (path methods).
        rig_ranks: RIG's path (None: :func:`comparison_rig_ranks`).
        rig_first_share: the share of E on RIG's first segment, see :func:`rig_schedule`
            (None: every segment alike).

    Returns:
        :class:`Attribution`: ``pixel`` (N, C, H, W), ``target`` (N,), for path methods
        ``delta`` and ``relative_delta`` (N,), and ``evaluations`` per image.

    Raises:
        ConfigError: an unknown method, a budget below RIG's number of rank segments, or a bad
            argument of the method called.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; use one of {METHODS}")
    batch = internal_batch_size
    common = {"target": target, "internal_batch_size": batch, "score": score}
    if method == "gradient":
        tgt = top_label(model, x, batch) if target is None else target
        grad = vanilla_gradient(model, x, target=tgt, score=score, internal_batch_size=batch)
        tgt = torch.as_tensor(tgt, device=x.device).long().reshape(-1).expand(len(x))
        return Attribution(method, grad, tgt.clone(), None, None, 1)
    common["baselines"] = baselines
    if method == "ig":
        res = integrated_gradients(model, x, n_steps=n_steps, **common)
    elif method == "rig":
        ranks = validate_rank_path(rig_ranks, min(x.shape[-2:])) if rig_ranks else None
        ranks = ranks or comparison_rig_ranks(min(x.shape[-2:]))
        per_rank, first = rig_schedule(n_steps, len(ranks), rig_first_share)
        res = rank_integrated_gradients(
            model, x, n_steps_per_rank=per_rank, baseline_steps=first, ranks=ranks, **common
        )
    else:
        sig = spectral_integrated_gradients(
            model, x, n_steps=n_steps, overlap=overlap, method="riemann_left", **common
        )
        return Attribution(
            method, sig.pixel, sig.target, sig.delta, sig.relative_delta, sig.evaluations
        )
    return Attribution(
        method, res.pixel, res.target, res.delta, res.relative_delta, int(_check_steps(n_steps))
    )
