"""Rank Integrated Gradients (RIG): the public API, as it always was.

Everything here is :mod:`rankrobust.attribution` (the package that holds the path engine, RIG, the
captum class and the plots); this module keeps `rankrobust.rig.*` working for existing code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankrobust import attribution as _attribution
from rankrobust.attribution import (
    SUPPORTED_METHODS,
    SUPPORTED_SCORES,
    PathIntegral,
    RIGResult,
    integrated_gradients,
    path_integral,
    quadrature,
    rank_integrated_gradients,
    vanilla_gradient,
)

if TYPE_CHECKING:
    from rankrobust.attribution import RankIntegratedGradients

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
    # captum is imported on first use (about a second): RankIntegratedGradients is lazy there too
    return getattr(_attribution, name)
