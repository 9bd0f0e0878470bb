"""rankrobust: a singular value perspective on model robustness (reproduction pipeline).

The top level is the library a researcher imports (svd, attacks, models, evaluate, attribution,
data, inputs, errors, results, runs); `pipeline/` (Hydra + Lightning), `launch/` (scale-out)
and `reporting/` (tables, claims, figures, report, dashboard) sit above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"


__all__ = ["load_run"]

if TYPE_CHECKING:
    from rankrobust.runs import load_run


def __getattr__(name: str):
    """``rankrobust.load_run`` is :func:`rankrobust.runs.load_run` itself (its signature and
    docstring), imported on first use so that ``import rankrobust`` does not import torch."""
    if name == "load_run":
        from rankrobust.runs import load_run

        return load_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
