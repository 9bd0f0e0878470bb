"""rankrobust: a singular value perspective on model robustness (reproduction pipeline).

The top level is the library a researcher imports (svd, attacks, models, evaluate, attribution /
rig, data, inputs, errors, results, runs); `pipeline/` (Hydra + Lightning), `launch/` (scale-out)
and `reporting/` (tables, claims, figures, report, dashboard) sit above it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.2.0"

# Module names before the package showed its layers (0.1) -> where they live now. Importing or
# `python -m`-running an old name still works for one release, with a DeprecationWarning.
MOVED = {
    "analyses": "pipeline.analyses",
    "build": "pipeline.build",
    "callbacks": "pipeline.callbacks",
    "checks": "pipeline.checks",
    "loggers": "pipeline.loggers",
    "module": "pipeline.lightning_module",
    "resolvers": "pipeline.resolvers",
    "seeding": "pipeline.seeding",
    "task": "pipeline.task",
    "data.module": "pipeline.datamodule",
    "gpus": "launch.gpus",
    "claims": "reporting.claims",
    "claims_groups": "reporting.claims.grouping",
    "collect": "reporting.collect",
    "dashboard": "reporting.dashboard",
    "figures": "reporting.figures",
    "figures_claims": "reporting.figures.curves",
    "figures_images": "reporting.figures.images",
    "figures_style": "reporting.figures.style",
    "intervals": "reporting.intervals",
    "report": "reporting.report",
    "wandb_offline": "reporting.wandb_offline",
    "checkpoints": "models.checkpoints",
    "external": "models.external",
    "photos": "data.photos",
    "rig_plot": "attribution.plot",
    "_rig": "attribution._rig",
    "_path": "attribution._path",
    "_captum": "attribution._captum",
}


class _MovedLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new place (the same module object)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.new}; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:  # already executed under its new name
        pass

    def get_code(self, fullname: str):  # `python -m rankrobust.<old>` runs the new module
        spec = _runnable(self.new)
        return spec.loader.get_code(spec.name)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        prefix = __name__ + "."
        old = fullname[len(prefix) :] if fullname.startswith(prefix) else None
        if old not in MOVED:
            return None
        new = f"{prefix}{MOVED[old]}"
        # origin: what `python -m` puts in sys.argv[0] (argparse's program name)
        return importlib.util.spec_from_loader(
            fullname, _MovedLoader(new), origin=_runnable(new).origin
        )


def _runnable(name: str):
    """The spec `python -m name` runs: the module, or a package's __main__."""
    spec = importlib.util.find_spec(name)
    if spec.submodule_search_locations:
        spec = importlib.util.find_spec(name + ".__main__") or spec
    return spec


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())


def load_run(run_dir, **kwargs):
    """A finished run folder -> LoadedRun(model in eval mode, config, metrics); see runs.py."""
    from rankrobust.runs import load_run as _load_run

    return _load_run(run_dir, **kwargs)
