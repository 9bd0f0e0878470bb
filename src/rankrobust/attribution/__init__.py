"""Attribution along image paths: the public API (`rankrobust.rig` is the same API, kept).

- :func:`rank_integrated_gradients`: integrated gradients along the rank path
  ``baseline -> L_1(x) -> ... -> x`` (pixel map, per-rank attribution, completeness error);
- :func:`integrated_gradients`: the same engine on the straight path (= captum IG with
  ``method="riemann_middle"``); :func:`vanilla_gradient`;
- :class:`RankIntegratedGradients`: RIG as a captum ``GradientAttribution`` (NoiseTunnel,
  visualization), loaded on first use since importing captum takes about a second.

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
    vanilla_gradient,
)

if TYPE_CHECKING:
    from rankrobust.attribution._captum import RankIntegratedGradients

__all__ = [
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
    if name == "RankIntegratedGradients":
        from rankrobust.attribution._captum import RankIntegratedGradients

        return RankIntegratedGradients
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
