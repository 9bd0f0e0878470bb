"""Rank Integrated Gradients as a captum attribution method (import it from rankrobust.attribution).

:class:`RankIntegratedGradients` is a captum ``GradientAttribution`` whose ``attribute`` follows
``captum.attr.IntegratedGradients.attribute`` (inputs, baselines, target,
additional_forward_args, internal_batch_size, return_convergence_delta), so captum's wrappers
(``NoiseTunnel``) and visualisation (``visualize_image_attr``) take it as they take IG.  The
maths is :func:`rankrobust.attribution.rank_integrated_gradients`; this module only translates
captum's conventions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from captum._utils.common import _format_additional_forward_args
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from rankrobust.attribution._rig import (
    integrated_gradients,
    rank_integrated_gradients,
    vanilla_gradient,
)
from rankrobust.attribution.sig import spectral_integrated_gradients
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_baseline, check_images, check_int, check_target

__all__ = [
    "IntegratedGradients",
    "RankIntegratedGradients",
    "SpectralIntegratedGradients",
    "VanillaGradient",
]


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
        n_steps: int | None = None,
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
            method: quadrature rule, captum's names: "riemann_middle" (default),
                "riemann_left", "riemann_right", "riemann_trapezoid" (here the exact
                trapezoid rule, see :func:`rankrobust.attribution.quadrature`) or
                "gausslegendre".
            internal_batch_size: the most model inputs per forward/backward pass; None puts
                all ``N * (number of path points)`` through at once, as captum does.
            return_convergence_delta: also return ``delta = sum(attributions) -
                (F(inputs) - F(baselines))`` per image.
            baseline_steps: quadrature points on the first segment (baseline -> L_{r_1});
                None: ``n_steps_per_rank``.
            n_steps: the total budget E of gradient evaluations per image (the interface
                of IG and SIG); when given it overrides ``n_steps_per_rank`` and
                ``baseline_steps`` with the rank-uniform split of
                :func:`rankrobust.attribution.rig_schedule`.

        Returns:
            attributions shaped like ``inputs`` (a tensor, or a 1-tuple when ``inputs`` is a
            tuple), or ``(attributions, delta)`` when ``return_convergence_delta``.
        """
        is_tuple = isinstance(inputs, tuple)
        x, base, extra, batch = _unpack(
            inputs, baselines, additional_forward_args, internal_batch_size, target
        )
        result = rank_integrated_gradients(
            self.forward_func,
            x,
            target=target,
            n_steps_per_rank=n_steps_per_rank,
            ranks=ranks,
            baselines=base,
            internal_batch_size=batch,
            method=method,
            baseline_steps=baseline_steps,
            n_steps=n_steps,
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


def _unpack(inputs, baselines, additional_forward_args, internal_batch_size, target=None):
    """captum's arguments checked under captum's names (inputs.py), then unwrapped for the
    engine: (x, baseline, extra args, batch size)."""
    x = check_images(_single(inputs, "inputs"), "inputs", unit_range=False)
    extra = _format_additional_forward_args(additional_forward_args) or ()
    batch = (
        sys.maxsize
        if internal_batch_size is None
        else check_int(internal_batch_size, "internal_batch_size")
    )
    base = _single(baselines, "baselines")
    base = "zero" if base is None else check_baseline(base, x, "baselines")
    check_target(target, x.shape[0], "target")
    return x, base, extra, batch


def _pack(pixel: Tensor, is_tuple: bool, delta: Tensor | None):
    attributions = (pixel,) if is_tuple else pixel
    return attributions if delta is None else (attributions, delta)


class VanillaGradient(GradientAttribution):
    """The gradient of the target output w.r.t. the input (signed; captum's ``Saliency`` takes
    its absolute value by default), one gradient evaluation per image."""

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor],
        target: None | int | Sequence[int] | Tensor = None,
        internal_batch_size: int | None = None,
    ) -> Tensor | tuple[Tensor]:
        """``d F_target / d inputs``, shaped like ``inputs``; ``target`` None: the top class."""
        x, _, _, batch = _unpack(inputs, None, None, internal_batch_size, target)
        pixel = vanilla_gradient(self.forward_func, x, target=target, internal_batch_size=batch)
        return _pack(pixel, isinstance(inputs, tuple), None)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False


class IntegratedGradients(GradientAttribution):
    """Integrated Gradients (Sundararajan et al. 2017) on the straight path, on this project's
    engine: equal to ``captum.attr.IntegratedGradients`` with the same ``method`` and
    ``n_steps`` (captum's default is "gausslegendre"; here "riemann_middle")."""

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor],
        baselines: None | int | float | Tensor | tuple = None,
        target: None | int | Sequence[int] | Tensor = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "riemann_middle",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ):
        """As captum's ``IntegratedGradients.attribute`` (n_steps gradient evaluations)."""
        x, base, extra, batch = _unpack(
            inputs, baselines, additional_forward_args, internal_batch_size, target
        )
        res = integrated_gradients(
            self.forward_func, x, target=target, n_steps=n_steps, baselines=base,
            internal_batch_size=batch, method=method, additional_forward_args=extra,
        )  # fmt: skip
        return _pack(
            res.pixel, isinstance(inputs, tuple), res.delta if return_convergence_delta else None
        )

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


class SpectralIntegratedGradients(GradientAttribution):
    """Spectral Integrated Gradients (Kim et al., KDD 2026) with captum's interface.

    Integrates along ``gamma(alpha) = baseline + sum_i clamp((alpha - t_i)/w, 0, 1) s_i u_i
    v_i^T`` (the SVD of ``inputs - baselines`` per channel, ``t_i = (1 - w)(1 - s_i/s_1)``,
    ``w = overlap``); see :mod:`rankrobust.attribution.sig`.  With ``method="riemann_left"`` and
    ``n_steps=m`` it is the m-interval left sum of SIG's published code.  SIG's published
    ``f`` is the softmax probability: pass ``forward_func = softmax of the model`` for it.
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
        n_steps: int = 64,
        overlap: float = 0.5,
        method: str = "riemann_left",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        schedule: str = "strength",
    ):
        """Attribute ``target``'s output to the pixels of ``inputs`` along SIG's path.

        Args:
            inputs, baselines, target, additional_forward_args, internal_batch_size,
                return_convergence_delta: as captum's ``IntegratedGradients.attribute``.
            n_steps: m alpha intervals = m gradient evaluations per image (2m for
                "riemann_trapezoid").
            overlap: w in [0, 1), the width of each component's ramp.
            method: "riemann_left" (SIG's), "riemann_middle", "riemann_right" or
                "riemann_trapezoid".
            schedule: "strength" (SIG) or "rank_uniform" (RIG's rank path).
        """
        x, base, extra, batch = _unpack(
            inputs, baselines, additional_forward_args, internal_batch_size, target
        )
        res = spectral_integrated_gradients(
            self.forward_func, x, target=target, n_steps=n_steps, overlap=overlap,
            baselines=base, method=method, schedule=schedule, internal_batch_size=batch,
            additional_forward_args=extra,
        )  # fmt: skip
        return _pack(
            res.pixel, isinstance(inputs, tuple), res.delta if return_convergence_delta else None
        )

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def multiplies_by_inputs(self) -> bool:
        return True
