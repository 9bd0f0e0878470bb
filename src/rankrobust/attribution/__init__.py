"""Attribution along image paths: the public API.

- :func:`rank_integrated_gradients`: integrated gradients along the rank path
  ``baseline -> L_1(x) -> ... -> x`` (pixel map, per-rank attribution, completeness error);
- :func:`integrated_gradients`: the same engine on the straight path (= captum IG with
  ``method="riemann_middle"``); :func:`vanilla_gradient`;
- :func:`spectral_integrated_gradients` (SIG, Kim et al. 2026, `sig`) and :func:`explain`, one
  call for gradient / IG / RIG / SIG at equal gradient evaluations per image (`methods`);
- metrics (`metrics`): :func:`diffid` (+ :func:`insertion_deletion`), :func:`sparseness` (Gini),
  :func:`complexity` (entropy), :func:`randomisation_test` (MPRT), :func:`completeness_gap`
  (a path map's relative integration error);
- captum ``GradientAttribution`` classes (NoiseTunnel, visualization): :class:`VanillaGradient`,
  :class:`IntegratedGradients`, :class:`RankIntegratedGradients`,
  :class:`SpectralIntegratedGradients`, loaded on first use since importing captum takes about
  a second.

One vocabulary, captum's, in the functions, the captum classes and :func:`explain` alike:
``target``; ``baselines`` (the path's start); ``n_steps`` (a budget of gradient evaluations
per image); ``n_steps_per_rank`` (points on each rank segment of RIG, ``baseline_steps`` on
its first); ``method`` (the quadrature rule by captum's names only: "riemann_middle", the
default, "riemann_left" for SIG, "riemann_right", "riemann_trapezoid", "gausslegendre");
``internal_batch_size`` (the most model inputs per forward/backward pass);
``additional_forward_args``.  In :func:`explain` alone ``method`` names the attribution method
("gradient", "ig", "rig", "sig"), as in its result's ``Attribution.method``.

The paths and results live in `_rig`, the quadrature and the batched path-integral engine in
`_path`, the captum class in `_captum`, the image | gradient | RIG grid in `plot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankrobust.attribution._path import (
    SUPPORTED_METHODS,
    SUPPORTED_SCORES,
    PathIntegral,
    path_integral,
    quadrature,
)
from rankrobust.attribution._rig import (
    RIGResult,
    integrated_gradients,
    rank_integrated_gradients,
    rig_schedule,
    vanilla_gradient,
)
from rankrobust.attribution.methods import METHODS, Attribution, explain
from rankrobust.attribution.metrics import (
    InsertionDeletion,
    RandomisationTest,
    completeness_gap,
    complexity,
    diffid,
    insertion_deletion,
    randomisation_test,
    sparseness,
)
from rankrobust.attribution.sig import SIGResult, spectral_integrated_gradients

if TYPE_CHECKING:
    from rankrobust.attribution._captum import (
        IntegratedGradients,
        RankIntegratedGradients,
        SpectralIntegratedGradients,
        VanillaGradient,
    )

_CAPTUM_CLASSES = (
    "IntegratedGradients",
    "RankIntegratedGradients",
    "SpectralIntegratedGradients",
    "VanillaGradient",
)

__all__ = [
    "METHODS",
    "Attribution",
    "IntegratedGradients",
    "InsertionDeletion",
    "RandomisationTest",
    "SIGResult",
    "SpectralIntegratedGradients",
    "VanillaGradient",
    "completeness_gap",
    "complexity",
    "diffid",
    "explain",
    "insertion_deletion",
    "randomisation_test",
    "rig_schedule",
    "sparseness",
    "spectral_integrated_gradients",
    "PathIntegral",
    "RIGResult",
    "RankIntegratedGradients",
    "SUPPORTED_METHODS",
    "SUPPORTED_SCORES",
    "integrated_gradients",
    "path_integral",
    "quadrature",
    "rank_integrated_gradients",
    "vanilla_gradient",
]


def __getattr__(name: str):
    if name in _CAPTUM_CLASSES:
        from rankrobust.attribution import _captum

        return getattr(_captum, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
