"""rankrobust: a singular value perspective on model robustness (reproduction pipeline).

The top level is the library a researcher imports (svd, attacks, models, evaluate, attribution,
data, inputs, errors, results, runs); `pipeline/` (Hydra + Lightning), `launch/` (scale-out)
and `reporting/` (tables, claims, figures, report, dashboard) sit above it.
"""

from __future__ import annotations

__version__ = "0.2.0"


def load_run(run_dir, **kwargs):
    """A finished run folder -> LoadedRun(model in eval mode, config, metrics); see runs.py."""
    from rankrobust.runs import load_run as _load_run

    return _load_run(run_dir, **kwargs)
