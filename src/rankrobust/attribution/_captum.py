"""Rank Integrated Gradients as a captum attribution method (import it from rankrobust.rig).

:class:`RankIntegratedGradients` is a captum ``GradientAttribution`` whose ``attribute`` follows
``captum.attr.IntegratedGradients.attribute`` (inputs, baselines, target,
additional_forward_args, internal_batch_size, return_convergence_delta), so captum's wrappers
(``NoiseTunnel``) and visualisation (``visualize_image_attr``) take it as they take IG.  The
maths is :func:`rankrobust.rig.rank_integrated_gradients`; this module only translates captum's
conventions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from captum._utils.common import _format_additional_forward_args
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from rankrobust.attribution._rig import rank_integrated_gradients
from rankrobust.errors import ConfigError

__all__ = ["RankIntegratedGradients"]


def _single(value: Any, name: str) -> Any:
    """RIG attributes one image tensor: unwrap captum's 1-tuple form."""
    if isinstance(value, tuple):
        if len(value) != 1:
            raise ConfigError(
                f"{name}: RankIntegratedGradients takes one image tensor (N, C, H, W), "
                f"got a tuple of {len(value)}"
            )
        return value[0]
    return value


class RankIntegratedGradients(GradientAttribution):
    """Rank Integrated Gradients (RIG) with captum's interface.

    RIG integrates the gradient of the target output along the rank path
    ``baseline -> L_{r_1}(x) -> ... -> L_{r_K}(x) = x`` (``L_k`` the best rank-k approximation
    of each channel) and multiplies it by the path's direction, so the attributions of an image
    sum to ``F(x) - F(baseline)`` up to the convergence delta.  With ``ranks=[min(H, W)]`` the
    path is the straight line and RIG is captum's ``IntegratedGradients`` with the same
    ``method`` and ``n_steps = n_steps_per_rank``.

    Args:
        forward_func: the model or any function ``(inputs, *additional_forward_args) ->
            (N, num_classes)``; an ``nn.Module`` runs in eval mode during ``attribute`` (every
            submodule's mode restored afterwards).
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor],
        baselines: None | int | float | Tensor | tuple = None,
        target: None | int | Sequence[int] | Tensor = None,
        additional_forward_args: Any = None,
        n_steps_per_rank: int = 8,
        ranks: Sequence[int] | None = None,
        method: str = "riemann_middle",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        baseline_steps: int | None = None,
    ) -> Tensor | tuple[Tensor, ...] | tuple[Tensor | tuple[Tensor, ...], Tensor]:
        """Attribute ``target``'s output to the pixels of ``inputs`` along the rank path.

        Args:
            inputs: (N, C, H, W) images, or a 1-tuple of them (the output takes the same form).
            baselines: None (zeros), a number, or a tensor broadcastable to ``inputs``
                (or a 1-tuple of one of those).
            target: the output index per image: an int, N ints or a tensor; None, the top
                class of ``forward_func(inputs)`` (captum requires one for 2-D outputs).
            additional_forward_args: passed after the inputs to ``forward_func``; a tensor
                with first dim N is taken per image.
            n_steps_per_rank: quadrature points per rank segment.
            ranks: strictly increasing ranks ending at min(H, W); None: every rank.
            method: quadrature rule: captum's "riemann_middle" (default), "riemann_left",
                "riemann_right", "riemann_trapezoid" (here the exact trapezoid rule),
                "gausslegendre", or the names of :func:`rankrobust.rig.quadrature`.
            internal_batch_size: the most model inputs per forward/backward pass; None puts
                all ``N * (number of path points)`` through at once, as captum does.
            return_convergence_delta: also return ``delta = sum(attributions) -
                (F(inputs) - F(baselines))`` per image.
            baseline_steps: quadrature points on the first segment (baseline -> L_{r_1});
                None: ``n_steps_per_rank``.

        Returns:
            attributions shaped like ``inputs`` (a tensor, or a 1-tuple when ``inputs`` is a
            tuple), or ``(attributions, delta)`` when ``return_convergence_delta``.
        """
        is_tuple = isinstance(inputs, tuple)
        x = _single(inputs, "inputs")
        base = _single(baselines, "baselines")
        extra = _format_additional_forward_args(additional_forward_args) or ()
        result = rank_integrated_gradients(
            self.forward_func,
            x,
            target=target,
            steps_per_rank=n_steps_per_rank,
            ranks=ranks,
            baseline="zero" if base is None else base,
            batch_size=sys.maxsize if internal_batch_size is None else internal_batch_size,
            method=method,
            baseline_steps=baseline_steps,
            additional_forward_args=extra,
            pixels=False,  # captum's NoiseTunnel hands in noisy copies outside [0, 1]
        )
        attributions = (result.pixel,) if is_tuple else result.pixel
        if return_convergence_delta:
            return attributions, result.delta
        return attributions

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def multiplies_by_inputs(self) -> bool:
        """Attributions are path gradients times the path's direction (global, like IG's)."""
        return True
