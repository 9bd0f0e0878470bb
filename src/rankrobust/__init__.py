"""rankrobust: a singular value perspective on model robustness (reproduction pipeline)."""

from __future__ import annotations

__version__ = "0.1.0"


def load_run(run_dir):
    """A finished run folder -> LoadedRun(model in eval mode, config, metrics); see runs.py."""
    from rankrobust.runs import load_run as _load_run

    return _load_run(run_dir)
